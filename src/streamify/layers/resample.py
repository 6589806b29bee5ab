"""Streaming integer-factor upsampling along time (nearest and linear).

``nearest`` repeats each frame ``scale`` times: no state, delay ``input_delay * scale``.
``linear`` (PyTorch's ``align_corners=False``) is a transposed convolution with a
triangular kernel, streamed by overlap-add; it reaches one input frame ahead, so it
adds ``scale // 2`` output frames of delay. PyTorch clamps at the signal's ends where
the kernel reads zeros instead: only the first and last frames of a stream differ.
"""

from __future__ import annotations

from fractions import Fraction
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv_transpose import OverlapAdd


def linear_kernel_numerators(scale: int) -> List[int]:
    """Triangular kernel of linear interpolation by ``scale``, times ``2 * scale`` (whole numbers).

    Output frame ``t = j * scale + u`` of input frame ``j`` gets weight
    ``max(0, 1 - |u + 1/2 - scale/2| / scale) = max(0, 2 * scale - |2u + 1 - scale|) / (2 * scale)``
    for ``u`` from ``-(scale // 2)`` on (the kernel's left offset); trailing zeros are dropped.
    """
    start = -(scale // 2)
    numerators = [max(0, 2 * scale - abs(2 * u + 1 - scale)) for u in range(start, start + 2 * scale)]
    while numerators[-1] == 0:
        numerators.pop()
    return numerators


def check_scale(scale_factor: float, where: str) -> int:
    """The integer upsampling factor, or an error naming ``where``."""
    if int(scale_factor) != scale_factor or scale_factor < 1:
        raise StreamingError(
            f"streamify: {where}: scale_factor must be a positive integer, got {scale_factor}; "
            "fractional resampling cannot keep a fixed frame grid"
        )
    return int(scale_factor)


def upsample(scale_factor: int, mode: str = "nearest") -> StreamingModule:
    """A streaming upsampler by ``scale_factor``: ``mode`` ``'nearest'`` or ``'linear'``.

    >>> from streamify.layers import upsample
    >>> type(upsample(2)).__name__, type(upsample(4, mode="linear")).__name__
    ('NearestUpsample', 'LinearUpsample')
    """
    if mode == "nearest":
        return NearestUpsample(scale_factor)
    if mode == "linear":
        return LinearUpsample(scale_factor)
    raise StreamingError(f"streamify: upsample: mode {mode!r} cannot stream; use 'nearest' or 'linear'")


class NearestUpsample(StreamingModule):
    """Streaming nearest-neighbour upsampling by an integer ``scale_factor``.

    Shape:
        input ``[batch, channels, n]``, any ``n``; output ``[batch, channels, n * scale_factor]``,
        in step with the offline output (``delay = input_delay * scale_factor``).

    >>> import torch
    >>> from streamify.layers import NearestUpsample
    >>> NearestUpsample(2)(torch.tensor([[[1.0, 2.0]]]))
    tensor([[[1., 1., 2., 2.]]])
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
    """Streaming linear interpolation by an integer ``scale_factor`` (``align_corners=False``).

    The first ``scale_factor // 2`` output frames of a fresh stream differ from offline, which
    repeats the first input frame before the start of the signal; every later frame is exact.

    Shape:
        input ``[batch, channels, n]``, any ``n``; output ``[batch, channels, n * scale_factor]``,
        ``delay`` frames behind the offline output.

    >>> import torch
    >>> from streamify.layers import LinearUpsample
    >>> up = LinearUpsample(2)
    >>> x = torch.randn(1, 3, 8)
    >>> y = torch.cat([up(x[..., :4]), up(x[..., 4:])], -1)
    >>> y.shape, up.delay
    (torch.Size([1, 3, 16]), 1)
    >>> torch.allclose(y[..., 2:], up.offline(x)[..., 1:15], atol=1e-6)
    True
    """

    def __init__(self, scale_factor: int) -> None:
        scale = check_scale(scale_factor, "LinearUpsample")
        numerators = linear_kernel_numerators(scale)
        super().__init__(len(numerators), scale, scale // 2, -1)
        self.scale = scale
        # whole numbers rather than a weight buffer: .float() / .to() would round a buffer (and
        # TorchScript builds float lists through float32); the weights are made in the input's dtype
        self.kernel_numerators: List[int] = numerators

    def starts_exact(self) -> bool:
        return False  # offline repeats the first frame before the signal; a fresh stream has zeros there

    def stream(self, x: Tensor) -> Tensor:
        x = self._mask_input(x)
        channels = x.size(1)
        kernel = torch.tensor(self.kernel_numerators, device=x.device).to(x.dtype) / (2 * self.scale)
        weight = kernel.view(1, 1, -1).expand(channels, 1, kernel.numel())
        full = F.conv_transpose1d(x, weight, None, self.scale, 0, 0, channels)
        return self._overlap_add(full, x.size(-1))

    def offline(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=float(self.scale), mode="linear", align_corners=False)
