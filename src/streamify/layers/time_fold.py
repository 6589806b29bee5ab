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
(``"(m t) -> m t"``) would need the whole signal: it cannot stream.
"""

from __future__ import annotations

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
