"""Running one corpus entry: build, convert, check the verdict; shared by the suite and ``benchmarks/corpus.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from corpus_entries import Entry

from helpers import assert_streams_exactly, warmup_frames
from streamify import StreamingError
from streamify.convert import convert

#: the outcomes counted by benchmarks/corpus.py
EXACT = "exact"
REFUSED_TRUE = "refused for the true reason"
REFUSED_STREAMABLE = "refused though streamable"
REFUSED_MISNAMED = "refused, cause misnamed"
CONVERTED_UNSTREAMABLE = "converted though marked refused"
CRASH = "crash"
WRONG = "silently wrong"
OUTCOMES = (EXACT, REFUSED_TRUE, REFUSED_STREAMABLE, REFUSED_MISNAMED, CONVERTED_UNSTREAMABLE, CRASH, WRONG)


class MisnamedCause(AssertionError):
    """A model that cannot stream was refused, but the message does not name the true cause."""


class NotRefused(AssertionError):
    """A model marked as unable to stream was converted."""


@dataclass
class Outcome:
    kind: str  # one of OUTCOMES
    detail: str


def example(entry: Entry) -> torch.Tensor:
    """The conversion example: seeded noise ``[1, channels, frames]`` in float64."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(1, entry.channels, entry.frames, dtype=torch.float64, generator=generator)


def check(entry: Entry, model: torch.nn.Module) -> None:
    """Convert ``model`` (built from ``entry``) and check its verdict; raise on any departure.

    A ``streams`` entry: converts (a refusal raises :class:`StreamingError`) and streams exactly
    (float64, irregular buffers, off-by-one delays seen; after the warm-up for reflect paddings), else
    ``AssertionError``. A refused entry: refused with a message matching ``entry.match``, else
    :class:`MisnamedCause` or :class:`NotRefused`.
    """
    if entry.streams:
        stream = convert(model, example(entry))
        warmup = warmup_frames(stream) if entry.reflect else 0
        assert_streams_exactly(stream, entry.channels, frames=max(4 * entry.frames, 256), warmup=warmup)
        return
    try:
        convert(model, example(entry))
    except StreamingError as error:
        if not re.search(entry.match, str(error), re.IGNORECASE):
            raise MisnamedCause(f"{entry.verdict}, but the message does not say so: {error}") from error
        return
    raise NotRefused(f"{entry.name} is marked '{entry.verdict}' but converted")


def outcome(entry: Entry, model: torch.nn.Module) -> Outcome:
    """What the converter does with ``entry``, as one of :data:`OUTCOMES`."""
    try:
        check(entry, model)
    except StreamingError as error:
        return Outcome(REFUSED_STREAMABLE, str(error))
    except MisnamedCause as error:
        return Outcome(REFUSED_MISNAMED, str(error))
    except NotRefused as error:
        return Outcome(CONVERTED_UNSTREAMABLE, str(error))
    except AssertionError as error:
        return Outcome(WRONG, str(error))
    except Exception as error:  # noqa: BLE001 - a crash of the converter is an outcome to count
        return Outcome(CRASH, f"{type(error).__name__}: {error}")
    return Outcome(EXACT if entry.streams else REFUSED_TRUE, "")
