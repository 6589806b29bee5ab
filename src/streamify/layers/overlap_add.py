"""Overlap-add: frames of ``size`` samples laid ``step`` samples apart and summed into a signal.

Offline, frame ``j`` of ``[batch, ..., size, frames]`` (time last) is added at samples ``j * step + [0, size)``
of a signal of ``(frames - 1) * step + size`` samples, of which ``padding`` samples are dropped at each
end: what ``F.fold(cols, (1, t), (1, size), stride=(1, step), padding=(0, padding))`` computes for
``cols = frames.reshape(batch, channels * size, frames)``. Streaming, each call adds its frames' contributions
to the tail that the previous call left, emits the first ``n * step`` samples (no later frame reaches them)
and keeps the rest, ``max(size - step, 0)`` samples, as the next tail: the transposed convolution's rule
(:class:`~streamify.layers.conv_transpose.OverlapAdd`) with an identity kernel::

    delay = d_in * step + padding            # in samples
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from streamify.layers.base import StreamingError
from streamify.layers.conv_transpose import OverlapAdd
from streamify.layers.framing import _flat_channels


def overlap_add(frames: Tensor, step: int) -> Tensor:
    """Sum ``frames`` ``[batch, rows, size, n]`` laid ``step`` apart: ``[batch, rows, (n - 1) * step + size]``."""
    batch, rows, size, n = frames.size(0), frames.size(1), frames.size(2), frames.size(3)
    if size == step:  # frames side by side: a reshape
        return frames.transpose(-1, -2).reshape(batch, rows, n * size)
    length = (n - 1) * step + size
    full = F.fold(frames.reshape(batch, rows * size, n), [1, length], [1, size], [1, 1], [0, 0], [1, step])
    return full.view(batch, rows, length)


class OverlapAddFrames(OverlapAdd):
    """Streaming overlap-add of frames ``[batch, ..., size, frames]`` (time last) into a signal.

    Args:
        size: samples per frame.
        step: samples between the starts of consecutive frames (the hop).
        padding: samples dropped at each end of the offline signal (``F.fold``'s time padding); streaming,
            the left ones become delay.

    State: ``tail`` ``[batch, rows, max(size - step, 0)]`` partial samples, ``rows`` the product of the
    axes between batch and frame.

    Shape:
        input ``[batch, ..., size, n]``, any ``n``; output ``[batch, ..., n * step]``, ``delay`` samples
        behind the offline signal (ratio ``1 / step``).

    >>> import torch
    >>> from streamify.layers import OverlapAddFrames
    >>> ola = OverlapAddFrames(4, 2)
    >>> frames = torch.randn(1, 3, 4, 10)
    >>> y = torch.cat([ola(frames[..., :3]), ola(frames[..., 3:])], -1)
    >>> y.shape, ola.delay
    (torch.Size([1, 3, 20]), 0)
    >>> torch.allclose(y, ola.offline(frames)[..., :20], atol=1e-6)
    True
    """

    def __init__(self, size: int, step: int, padding: int = 0) -> None:
        if size < 1 or padding < 0:
            raise StreamingError(
                f"streamify: OverlapAddFrames: size must be >= 1 and padding >= 0, got size {size}, padding {padding}"
            )
        super().__init__(size, step, padding, -1)
        self.size = int(size)
        self.input_rank = -3
        self.input_layout = "[batch, ..., size, time]"
        self.changes_layout = True

    def _tail_channels(self, x: Tensor) -> int:
        return _flat_channels(x, 2)

    def stream(self, x: Tensor) -> Tensor:
        x = self._mask_input(x)
        batch, n = x.size(0), x.size(-1)
        lead = list(x.shape[:-2])
        full = overlap_add(x.reshape(batch, -1, self.size, n), self.stride)
        y = self._overlap_add(full, n) if self.tail_len > 0 or self.size != self.stride else full
        return y.reshape(lead + [n * self.stride])

    def offline(self, x: Tensor) -> Tensor:
        batch, n = x.size(0), x.size(-1)
        full = overlap_add(x.reshape(batch, -1, self.size, n), self.stride)
        full = full.narrow(-1, self.padding, full.size(-1) - 2 * self.padding)
        return full.reshape(list(x.shape[:-2]) + [full.size(-1)])

    def extra_repr(self) -> str:
        return f"size={self.size}, step={self.stride}, padding={self.padding}, delay={self.delay}"
