"""Framing: cut the time axis into frames of ``size`` samples every ``step`` samples (``Tensor.unfold``).

Offline, ``x.unfold(-1, size, step)`` turns ``[batch, ..., t]`` into ``[batch, ..., frames, size]``, frame
``j`` holding samples ``j * step .. j * step + size - 1``. That is a window op of span ``size`` and stride
``step`` without padding, so it streams as one (:class:`~streamify.layers.conv.WindowOp`): it keeps the last
``cache`` input samples, at least ``size - step``, and as many more as put its frames on the offline grid
whatever the delay ``d_in`` of the stream feeding it (the phase delay line of a strided conv)::

    low   = max(0, size - step)
    cache = low + (-d_in - low) mod step
    delay = (cache + d_in) / step            # in frames

Streaming layers keep time last: the output is ``[batch, ..., size, frames]``, the offline layout with its
last two axes swapped (``movedim(-1, -2)`` gives torch's). ``F.unfold`` with kernel ``(1, size)`` and stride
``(1, step)`` over ``[batch, channels, 1, t]`` is the same op: its ``[batch, channels * size, frames]`` is the
output reshaped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamify.layers.conv import WindowOp


def _flat_channels(x: Tensor, kept: int) -> int:
    """How many rows the axes between the batch and the last ``kept`` axes of ``x`` hold."""
    rows = 1
    for size in x.shape[1 : x.dim() - kept]:
        rows *= size
    return rows


class Frame(WindowOp):
    """Streaming framing: ``x.unfold(-1, size, step)`` along time, time kept last.

    Args:
        size: samples per frame.
        step: samples between the starts of consecutive frames (the hop).

    State: ``cache`` ``[batch, rows, cache_len]`` input samples, ``rows`` the product of the axes between
    batch and time.

    Shape:
        input ``[batch, ..., n]``, ``n`` a multiple of ``step`` (``buffer_multiple``); output
        ``[batch, ..., size, n / step]``, ``delay`` frames behind the offline frames
        ``x.unfold(-1, size, step).movedim(-1, -2)`` (ratio ``step``).

    >>> import torch
    >>> from streamify.layers import Frame
    >>> frame = Frame(4, 2)
    >>> frame.delay, frame.buffer_multiple, frame.cache_len
    (1, 2, 2)
    >>> x = torch.arange(12.0).view(1, 1, 12)
    >>> y = torch.cat([frame(x[..., :6]), frame(x[..., 6:])], -1)
    >>> y.shape
    torch.Size([1, 1, 4, 6])
    >>> torch.equal(y[..., 1:], frame.offline(x)[..., :5])
    True
    >>> y[0, 0, :, 1]  # the first offline frame, one frame late
    tensor([0., 1., 2., 3.])
    """

    def __init__(self, size: int, step: int) -> None:
        super().__init__(size, step, 1, 0, -1)
        self.size = int(size)
        self.step = int(step)
        self.input_rank = -2
        self.input_layout = "[batch, ..., time]"
        self.changes_layout = True

    def _allocate(self, x: Tensor) -> None:
        rows = _flat_channels(x, 1)
        self.cache = torch.full((x.size(0), rows, self.cache_len), self.pad_value, dtype=x.dtype, device=x.device)

    def stream(self, x: Tensor) -> Tensor:
        batch, n = x.size(0), x.size(-1)
        lead = list(x.shape[:-1])
        z = self._windows_input(x.reshape(batch, -1, n))
        y = self._window(z)
        return y.reshape(lead + [self.size, n // self.step])

    def _window(self, z: Tensor) -> Tensor:
        return z.unfold(-1, self.size, self.step).transpose(-1, -2)

    def offline(self, x: Tensor) -> Tensor:
        return x.unfold(-1, self.size, self.step).transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"size={self.size}, step={self.step}, delay={self.delay}, cache={self.cache_len}"
