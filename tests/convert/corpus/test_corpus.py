"""The corpus of published models (tests/convert/corpus/corpus_entries.py): every verdict, checked.

A ``streams`` entry must convert and stream exactly; a refused one must be refused with a message that
names its true cause. Entries where today's converter falls short carry ``xfail(strict=True)`` limited
to that shortfall (a refusal of a streamable model, or a misnamed cause): any other failure (a crash, a
stream that is not exact) fails the suite, and so does an unexpected pass, so that the mark is removed
when the converter improves. A missing package skips its entries (fails them under ``CI=true``).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from corpus_check import MisnamedCause, check
from corpus_entries import ENTRIES, Entry
from corpus_imports import PackageMissing

from helpers import skip_or_fail_in_ci
from streamify import StreamingError


def _marks(entry: Entry) -> list:
    if not entry.known:
        return []
    raises = StreamingError if entry.streams else MisnamedCause
    return [pytest.mark.xfail(strict=True, raises=raises, reason=entry.known)]


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name, marks=_marks(e)) for e in ENTRIES])
def test_corpus_verdict(entry: Entry) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = entry.build()
    except PackageMissing as error:
        skip_or_fail_in_ci(str(error))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(entry, model)


def test_corpus_size() -> None:
    """The issue's bar: at least 30 configurations of at least 10 packages, both verdicts present."""
    assert len(ENTRIES) >= 30
    assert len({entry.package for entry in ENTRIES}) >= 10
    assert len({entry.name for entry in ENTRIES}) == len(ENTRIES)
    assert any(entry.streams for entry in ENTRIES) and any(not entry.streams for entry in ENTRIES)
    for entry in ENTRIES:
        assert entry.streams or (entry.verdict.startswith("refused: ") and entry.match), entry.name
        assert not entry.known or entry.known.startswith("issue 20"), entry.name


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
