"""Time folded into an axis of its own and back: the reshapes ``(t m) -> t, m`` and ``t, m -> (t m)``.

A reshape that splits the time axis ``t`` into ``(t / m, m)`` with time the slow index (einops'
``"b c (t m) -> b c t m"``, acids-rave's polyphase PQMF analysis, a 1-D pixel unshuffle) turns every ``m``
consecutive samples into one frame: :class:`SplitTime`, framing with ``size = step = m``. Frame ``j`` must
hold samples ``j * m .. j * m + m - 1`` of the offline signal, so a stream of delay ``d_in`` is first delayed
by ``(-d_in) mod m`` samples (the phase delay line, kept as the cache)::

    cache = (-d_in) mod m                      # samples
    delay = (d_in + cache) / m                 # frames; ratio x m; buffer multiple x m

The reverse, merging a time axis (slow) with an axis of ``m`` (fast) into one (``"b c t m -> b c (t m)"``,
``CachedPQMF.inverse``'s last reshape, a 1-D pixel shuffle, a noise synthesiser's frames laid end to end), is
:class:`MergeTime`: stateless, ``delay = d_in * m`` samples, ratio / m. Time as the fast index of a split
(``"(m t) -> m t"``) would need the whole signal: it cannot stream. :func:`time_reshape` reads which of
these a reshape is from its shapes at two signal lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Set

from streamify.layers.framing import Frame
from streamify.layers.overlap_add import OverlapAddFrames


class SplitTime(Frame):
    """Fold every ``factor`` consecutive samples into one frame: ``[batch, ..., n]`` to ``[batch, ..., factor, n / factor]``.

    Offline, ``x.view(*lead, t // factor, factor)`` with time last (``movedim(-1, -2)`` of it). State: ``cache``
    ``[batch, rows, (-input_delay) mod factor]``, the phase delay line.

    Shape:
        input ``[batch, ..., n]``, ``n`` a multiple of ``factor``; output ``[batch, ..., factor, n / factor]``,
        ``delay`` frames behind the offline frames.

    >>> import torch
    >>> from streamify.layers import SplitTime
    >>> split = SplitTime(2)
    >>> split(torch.arange(6.0).view(1, 1, 6))
    tensor([[[[0., 2., 4.],
              [1., 3., 5.]]]])
    >>> split.configure(1)  # fed a stream one sample late: one more sample of delay puts frames in phase
    >>> split.cache_len, split.delay
    (1, 1)
    """

    def __init__(self, factor: int) -> None:
        super().__init__(factor, factor)


class MergeTime(OverlapAddFrames):
    """Lay frames of ``factor`` samples end to end: ``[batch, ..., factor, n]`` to ``[batch, ..., n * factor]``.

    Offline, ``x.movedim(-2, -1).reshape(*lead, t * factor)``; streaming the same reshape, no state.

    Shape:
        input ``[batch, ..., factor, n]``, any ``n``; output ``[batch, ..., n * factor]``,
        ``delay = input_delay * factor`` samples behind the offline signal.

    >>> import torch
    >>> from streamify.layers import MergeTime
    >>> MergeTime(2)(torch.tensor([[[[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]]]))
    tensor([[[0., 1., 2., 3., 4., 5.]]])
    """

    def __init__(self, factor: int) -> None:
        super().__init__(factor, factor)
        self.masks_input = False  # a reshape: frames before the offline start stay before it


@dataclass(frozen=True)
class TimeReshape:
    """How a contiguous reshape moves the time axis (see :func:`time_reshape`).

    Attributes:
        kind: ``'keep'`` (time stays one axis of its own), ``'split'`` (time, slow, and an axis of
            ``factor``: :class:`SplitTime`) or ``'merge'`` (time, slow, with the next ``factor`` values:
            :class:`MergeTime`).
        factor: ``m`` (1 for ``'keep'``).
        dim: the output's time axis.
    """

    kind: str
    factor: int
    dim: int


def _product(sizes: Sequence[int]) -> int:
    result = 1
    for size in sizes:
        result *= int(size)
    return result


def _reading(size: int, length: int, rest: int, after: int, j: int) -> Optional[TimeReshape]:
    """Output axis ``j`` of ``size`` (``rest`` values after it), where the input has time ``length``, then ``after``."""
    if size == length and rest == after:
        return TimeReshape("keep", 1, j)
    if size < length and length % size == 0 and rest == (length // size) * after:
        return TimeReshape("split", length // size, j)
    if size > length and size % length == 0 and rest * (size // length) == after:
        return TimeReshape("merge", size // length, j)
    return None


def _candidates(in_shape: Sequence[int], out_shape: Sequence[int], dim: int) -> Set[TimeReshape]:
    """The readings of one reshape of ``in_shape`` (time axis ``dim``) into ``out_shape`` that keep time slow."""
    before, length, after = _product(in_shape[:dim]), int(in_shape[dim]), _product(in_shape[dim + 1 :])
    found: Set[TimeReshape] = set()
    running = 1
    for j, size in enumerate(out_shape):
        if running == before and size > 0:
            reading = _reading(int(size), length, _product(out_shape[j + 1 :]), after, j)
            if reading is not None:
                found.add(reading)
        running *= int(size)
    return found


def time_reshape(
    in_shapes: Sequence[Sequence[int]], out_shapes: Sequence[Sequence[int]], dim: int
) -> Optional[TimeReshape]:
    """How a reshape (``view``, ``_unsafe_view``, ``reshape``, ``flatten``) moves time, or None if it cannot stream.

    ``in_shapes`` and ``out_shapes`` are the shapes of the input and output for two signal lengths (the
    example's and a probe's: time is what changes between them), ``dim`` the input's time axis. Time
    must stay the slow index: split into ``(t / m, m)`` (ratio x ``m``), merged with the ``m`` values that
    follow it (ratio / ``m``), or kept. The axes around it may be regrouped freely (pointwise in time).
    None where time would become a fast index (``(m t)``), merge with what precedes it, or the readings of
    the two lengths disagree.

    >>> from streamify.layers.time_fold import time_reshape
    >>> time_reshape([(2, 1, 64), (2, 1, 96)], [(2, 1, 16, 4), (2, 1, 24, 4)], 2)  # "b c (t m) -> b c t m"
    TimeReshape(kind='split', factor=4, dim=2)
    >>> time_reshape([(2, 3, 10, 4), (2, 3, 15, 4)], [(2, 3, 40), (2, 3, 60)], 2)  # "b c t m -> b c (t m)"
    TimeReshape(kind='merge', factor=4, dim=2)
    >>> time_reshape([(2, 64), (2, 96)], [(2, 4, 16), (2, 4, 24)], 1) is None  # "(m t) -> m t": time fast
    True
    """
    readings: Optional[Set[TimeReshape]] = None
    for in_shape, out_shape in zip(in_shapes, out_shapes):
        found = _candidates(in_shape, out_shape, dim)
        readings = found if readings is None else readings & found
    if not readings or len(readings) != 1:
        return None
    return readings.pop()
