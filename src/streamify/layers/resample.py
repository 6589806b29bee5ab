"""Streaming integer-factor upsampling along time (nearest and linear).

``nearest`` repeats each frame ``scale`` times: no state, delay ``input_delay * scale``.
``linear`` (PyTorch's ``align_corners=False``) is a transposed convolution with a
triangular kernel, streamed by overlap-add; it reaches one input frame ahead, so it
adds ``scale // 2`` output frames of delay. PyTorch clamps at the signal's ends where
the kernel reads zeros instead: only the first and last frames of a stream differ.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv_transpose import OverlapAdd


def linear_kernel(scale: int) -> torch.Tensor:
    """Triangular kernel of linear interpolation by ``scale`` (float64), and its left offset ``scale // 2``.

    Output frame ``t = j * scale + u`` of input frame ``j`` gets weight
    ``max(0, 1 - |u + 1/2 - scale/2| / scale)`` for ``u`` in ``[-scale // 2, ...)``.
    """
    start = -(scale // 2)
    offsets = torch.arange(start, start + 2 * scale, dtype=torch.float64)
    weights = torch.clamp(1 - (offsets + 0.5 - scale / 2).abs() / scale, min=0)
    last = int(torch.nonzero(weights).max())
    return weights[: last + 1]


def check_scale(scale_factor: float, where: str) -> int:
    """The integer upsampling factor, or an error naming ``where``."""
    if int(scale_factor) != scale_factor or scale_factor < 1:
        raise StreamingError(
            f"streamify: {where}: scale_factor must be a positive integer, got {scale_factor}; "
            "fractional resampling cannot keep a fixed frame grid"
        )
    return int(scale_factor)


def upsample(scale_factor: int, mode: str = "nearest") -> StreamingModule:
    """A streaming upsampler by ``scale_factor``: ``mode`` ``'nearest'`` or ``'linear'``."""
    if mode == "nearest":
        return NearestUpsample(scale_factor)
    if mode == "linear":
        return LinearUpsample(scale_factor)
    raise StreamingError(f"streamify: upsample: mode {mode!r} cannot stream; use 'nearest' or 'linear'")


class NearestUpsample(StreamingModule):
    """Streaming nearest-neighbour upsampling by an integer ``scale_factor``.

    Input ``[batch, channels, n]``, output ``[batch, channels, n * scale_factor]``.
    """

    def __init__(self, scale_factor: int) -> None:
        super().__init__()
        self.scale = check_scale(scale_factor, "NearestUpsample")
        self.masks_input = False
        self._set_ratio(Fraction(1, self.scale))
        self._configure()

    def _configure(self) -> None:
        self.delay = self.input_delay * self.scale

    def stream(self, x: Tensor) -> Tensor:
        return torch.repeat_interleave(x, self.scale, dim=-1)

    def offline(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=float(self.scale), mode="nearest")


class LinearUpsample(OverlapAdd):
    """Streaming linear interpolation by an integer ``scale_factor`` (``align_corners=False``)."""

    def __init__(self, scale_factor: int) -> None:
        scale = check_scale(scale_factor, "LinearUpsample")
        kernel = linear_kernel(scale)
        super().__init__(kernel.numel(), scale, scale // 2, -1)
        self.scale = scale
        self.register_buffer("kernel", kernel.to(torch.get_default_dtype()).view(1, 1, -1))

    def stream(self, x: Tensor) -> Tensor:
        x = self._mask_input(x)
        channels = x.size(1)
        # the weights are recomputed in x's dtype: the buffer holds them rounded to the dtype the
        # module had at construction (float32 weights in a float64 stream are off by ~1e-8)
        size = self.kernel.size(-1)
        offsets = torch.arange(size, dtype=x.dtype, device=x.device) - float(self.scale // 2)
        kernel = torch.clamp(1.0 - (offsets + 0.5 - self.scale / 2.0).abs() / self.scale, min=0.0)
        weight = kernel.view(1, 1, size).expand(channels, 1, size)
        full = F.conv_transpose1d(x, weight, None, self.scale, 0, 0, channels)
        return self._overlap_add(full, x.size(-1))

    def offline(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=float(self.scale), mode="linear", align_corners=False)
