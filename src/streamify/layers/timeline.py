"""The time algebra of streaming layers, written once: what a stream is like after each layer.

A stream at some point of a model is described by a :class:`Timing`: its delay (frames behind the
offline signal at that point; negative when it runs ahead, after a pad), its ratio (model input
samples per frame) and its receptive field (model input samples one frame depends on). Passing it
through a layer is a fold step (:meth:`Fold.place`):

1. **Lead guard.** A stream ahead of offline lacks the first offline frames. Only layers that declare
   ``takes_early_stream`` (window ops: their cache stands for those frames; time shifts) may take it;
   any other layer needs a delay line of :func:`lead_frames` frames in front of it first.
2. **Configuration.** The layer is configured with the delay that reaches it (its caches are sized
   from that) and reports its own output delay.
3. **Outgoing timing.** Rates multiply, receptive fields add up (unbounded after a recurrence), and the
   layer's accepted buffer lengths become a constraint on the model's input length
   (:func:`streamify.timing.frames_multiple`); the fold keeps their least common multiple.

Several streams that meet (a sum, a concatenation over channels, the merge of branches) are aligned
by :func:`align`: they must run at one rate, and every stream but the most delayed gets a delay line.

Both builders of streaming models use this module: the hand-built containers
(:mod:`streamify.layers.containers`) and the converter's graph rewriters
(:mod:`streamify.convert.emit`). The pure formulas (cache lengths, multiples) are in
:mod:`streamify.timing`.

>>> from streamify.layers import Conv1d
>>> fold = Fold()
>>> after = fold.place(Conv1d(1, 2, 4, stride=2, padding=1), Timing())
>>> after.delay, after.ratio, after.field, fold.buffer_multiple
(1, Fraction(2, 1), Fraction(4, 1), 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import List, Optional, Sequence, Tuple

from torch import nn

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.shift import Delay
from streamify.timing import frames_multiple, lcm_all


@dataclass(frozen=True)
class Timing:
    """Where a stream stands in time.

    Attributes:
        delay: frames by which the stream lags the offline signal (negative: it runs ahead).
        ratio: model input samples per frame of this stream.
        field: receptive field in model input samples (``None``: unbounded, after a recurrence).
    """

    delay: int = 0
    ratio: Fraction = Fraction(1)
    field: Optional[Fraction] = Fraction(1)


def catch_up(delay: int) -> int:
    """Frames of a delay line that bring a stream of ``delay`` to delay 0 if it runs ahead (else 0)."""
    return max(0, -delay)


def lead_frames(layer: StreamingModule, delay: int) -> int:
    """Frames of the delay line that ``layer`` needs in front of it when fed a stream of ``delay``.

    A stream ahead of offline (``delay < 0``) reaches only layers that take an early stream.
    """
    return 0 if layer.takes_early_stream else catch_up(delay)


def outgoing(layer: StreamingModule, timing: Timing) -> Timing:
    """The timing after ``layer``, configured for a stream of ``timing`` (pure: nothing is changed)."""
    field = None
    if timing.field is not None and layer.receptive_field >= 0:
        field = timing.field + (layer.receptive_field - 1) * timing.ratio
    return Timing(layer.delay, timing.ratio * layer.ratio, field)


class Fold:
    """The fold over the layers of a model: configures each layer, keeps the model's buffer multiple.

    Attributes:
        multiples: the input-length units required so far (model input samples); their lcm is
            :attr:`buffer_multiple`.
    """

    def __init__(self) -> None:
        self.multiples: List[int] = []

    def place(self, layer: StreamingModule, timing: Timing) -> Timing:
        """Configure ``layer`` for a stream of ``timing`` and return the stream's timing after it.

        The caller puts the delay line of :func:`lead_frames` in front first (a :class:`LeadGuard`
        already in the chain is sized here).
        """
        if isinstance(layer, LeadGuard):
            layer.frames = catch_up(timing.delay)
        layer.configure(timing.delay)
        self.require(timing.ratio, layer.buffer_multiple)
        after = outgoing(layer, timing)
        self.require(after.ratio, 1)
        return after

    def require(self, ratio: Fraction, multiple: int) -> None:
        """A signal at ``ratio`` must come in whole multiples of ``multiple`` frames."""
        self.multiples.append(frames_multiple(ratio, multiple))

    @property
    def buffer_multiple(self) -> int:
        """The smallest model input length unit that every layer placed so far accepts."""
        return lcm_all(self.multiples)


def in_phase(delay: int, m: int) -> int:
    """Frames of the delay line that bring a stream of ``delay`` to the next multiple of ``m`` (at least 0).

    A layer that groups every ``m`` frames into one (a time fold, a decimation) is then in phase with
    offline: each buffer's groups start where offline's do.

    >>> in_phase(3, 4), in_phase(8, 4), in_phase(-2, 4)
    (1, 0, 2)
    """
    return -(-max(delay, 0) // m) * m - delay


def grouped(timing: Timing, m: int, span: int) -> Timing:
    """The timing after every ``m`` frames of an in-phase stream become one frame that reads ``span`` of them."""
    field = None if timing.field is None else timing.field + (span - 1) * timing.ratio
    return Timing(timing.delay // m, timing.ratio * m, field)


class RatesDiffer(StreamingError):
    """Streams that meet run at different rates (``ratios``: their input samples per frame, sorted)."""

    def __init__(self, ratios: Sequence[Fraction]) -> None:
        self.ratios = sorted(set(ratios))
        super().__init__(f"streamify: streams at different rates {', '.join(str(r) for r in self.ratios)} meet")


@dataclass(frozen=True)
class Alignment:
    """Streams brought to one delay: the common ``timing`` and each stream's delay line (frames)."""

    timing: Timing
    lines: Tuple[int, ...]


def align(timings: Sequence[Timing], takes_early_stream: bool = False) -> Alignment:
    """Align streams that meet frame by frame on the most delayed one.

    Args:
        timings: the streams, all at one rate (else :class:`RatesDiffer`).
        takes_early_stream: whether what consumes them may take a stream ahead of offline; if not, the
            common delay is at least 0 (the delay lines double as the lead guard).

    >>> align([Timing(1), Timing(3)]).lines
    (2, 0)
    >>> align([Timing(-2), Timing(-1)]).timing.delay, align([Timing(-2), Timing(-1)], True).timing.delay
    (0, -1)
    """
    ratios = {t.ratio for t in timings}
    if len(ratios) > 1:
        raise RatesDiffer(list(ratios))
    delays = [t.delay for t in timings]
    target = max(delays) if takes_early_stream else max([0] + delays)
    fields = [t.field for t in timings]
    field = None if any(f is None for f in fields) else max(fields)
    return Alignment(Timing(target, ratios.pop(), field), tuple(target - d for d in delays))


def align_in_time(timings: Sequence[Timing]) -> Tuple[int, ...]:
    """Delay lines (in each stream's frames) that make streams at different rates lag by one time.

    Each stream then lags by the same number of model input samples where the rates allow it, else by
    the next whole frame (as :class:`~streamify.layers.containers.Heads` does).

    >>> align_in_time([Timing(2, Fraction(1)), Timing(1, Fraction(2))])
    (0, 0)
    >>> align_in_time([Timing(1, Fraction(1)), Timing(1, Fraction(4))])
    (3, 0)
    """
    target = max(t.delay * t.ratio for t in timings)
    return tuple(math.ceil((target - t.delay * t.ratio) / t.ratio) for t in timings)


class LeadGuard(Delay):
    """A delay line that brings a stream running ahead of offline (negative delay, after a pad) back to delay 0.

    Such a stream lacks the first offline frames (the pad's); window ops stand for them
    with their cache, but any other layer would lose them: :func:`guarded` puts a guard before
    those layers, and :meth:`Fold.place` sizes it (0 frames when not needed).
    """

    def __init__(self) -> None:
        super().__init__(0)


def may_lead(module: nn.Module) -> bool:
    """Whether ``module`` can output a stream ahead of offline from one that is not (it holds a pad)."""
    return any(isinstance(m, StreamingModule) and m.makes_early_stream for m in module.modules())


def guarded(layers: Sequence[StreamingModule]) -> List[StreamingModule]:
    """``layers`` with a :class:`LeadGuard` before each layer that may get a stream ahead of offline
    and cannot take it (decided from the chain's structure, before any configuration)."""
    out: List[StreamingModule] = []
    leading = False
    for layer in layers:
        if leading and not layer.takes_early_stream:
            out.append(LeadGuard())
            leading = False
        out.append(layer)
        leading = may_lead(layer) or (leading and layer.keeps_early_stream)
    return out
