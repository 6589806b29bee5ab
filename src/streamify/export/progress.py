"""Stages of an export, said as they begin: conversion, checks, tuning, writing.

The exporters call :func:`stage` as each stage begins; nothing is shown unless a caller installed a
reporter with :func:`reporting` (``streamify export`` does: one line per stage on stderr, with a
spinner on a terminal), so that the library stays silent for programs that call it.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

_REPORTER: ContextVar[Optional[Callable[[str], None]]] = ContextVar("streamify_export_reporter", default=None)


def stage(text: str) -> None:
    """Say that the export now does ``text`` ("converting forward"), to the installed reporter if any."""
    report = _REPORTER.get()
    if report is not None:
        report(text)


@contextlib.contextmanager
def reporting(report: Callable[[str], None]) -> Iterator[None]:
    """Send the stages of exports run inside the block to ``report``."""
    token = _REPORTER.set(report)
    try:
        yield
    finally:
        _REPORTER.reset(token)
