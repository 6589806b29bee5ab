"""Building blocks of the RAVE-style model: padded convs, residual dilated units, resampling, noise.

Every conv pads so that a stride-``s`` conv maps ``n`` frames to ``n / s``: the total padding
``span - stride`` is split evenly (``causal=False``, "same") or put all on the left
(``causal=True``: no look-ahead). Plain ``torch.nn`` only: :func:`streamify.convert` streams them.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

SLOPE = 0.2  # LeakyReLU negative slope


def conv_padding(kernel: int, stride: int = 1, dilation: int = 1, causal: bool = False) -> Tuple[int, int]:
    """``(left, right)`` zero padding that maps ``n`` frames to ``n / stride``."""
    total = (kernel - 1) * dilation + 1 - stride
    if total < 0:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) is shorter than its stride {stride}")
    return (total, 0) if causal else (total // 2, total - total // 2)


class Conv(nn.Module):
    """``nn.Conv1d`` with "same" (or causal) padding: ``[B, cin, n]`` -> ``[B, cout, n / stride]``."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
        norm: bool = False,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        left, right = conv_padding(kernel, stride, dilation, causal)
        inner = left if left == right else 0
        self.padding = (0, 0) if left == right else (left, right)
        conv = nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation, padding=inner, groups=groups, bias=bias)
        self.conv = _weight_norm(conv) if norm else conv

    def forward(self, x: Tensor) -> Tensor:
        if self.padding != (0, 0):
            x = F.pad(x, self.padding)
        return self.conv(x)


class Upsample(nn.Module):
    """LeakyReLU then a transposed conv (kernel ``2 r``, stride ``r``): ``[B, cin, n]`` -> ``[B, cout, n r]``.

    Non-causal: padding ``r / 2`` on each side ("same", ``r`` even). Causal: no padding, the last
    ``r`` frames cropped, so that output frame ``t`` depends on input frames up to ``t / r`` only.
    """

    def __init__(self, cin: int, cout: int, ratio: int, causal: bool = False, norm: bool = False) -> None:
        super().__init__()
        if ratio % 2 and not causal:
            raise ValueError(f"a 'same' upsampling needs an even ratio, got {ratio}")
        self.ratio = ratio
        self.causal = causal
        conv = nn.ConvTranspose1d(cin, cout, 2 * ratio, stride=ratio, padding=0 if causal else ratio // 2)
        self.conv = _weight_norm(conv) if norm else conv

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.leaky_relu(x, SLOPE))
        if self.causal:
            y = y[..., : y.size(-1) - self.ratio]
        return y


class Downsample(nn.Module):
    """LeakyReLU then a strided conv (kernel ``2 r``, stride ``r``): ``[B, cin, n]`` -> ``[B, cout, n / r]``."""

    def __init__(self, cin: int, cout: int, ratio: int, causal: bool = False, norm: bool = False) -> None:
        super().__init__()
        self.conv = Conv(cin, cout, 2 * ratio, stride=ratio, causal=causal, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.leaky_relu(x, SLOPE))


class DilatedUnit(nn.Module):
    """``x + conv1x1(lrelu(conv_k_dilated(lrelu(x))))``: RAVE v2's residual dilated unit, ``[B, C, n]``."""

    def __init__(self, channels: int, kernel: int, dilation: int, causal: bool = False, norm: bool = False) -> None:
        super().__init__()
        self.conv = Conv(channels, channels, kernel, dilation=dilation, causal=causal, norm=norm)
        self.out = Conv(channels, channels, 1, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.out(F.leaky_relu(self.conv(F.leaky_relu(x, SLOPE)), SLOPE))


def bandpass_bank(bands: int, taps: int) -> Tensor:
    """``[bands, taps]`` float64 Hann-windowed band-pass filters splitting ``[0, pi]`` into ``bands`` equal bands."""
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    window = torch.hann_window(taps, periodic=False, dtype=torch.float64)
    edges = torch.linspace(0.0, 1.0, bands + 1, dtype=torch.float64)  # in units of pi

    def lowpass(cut: float) -> Tensor:
        return cut * torch.sinc(cut * n)

    return torch.stack([(lowpass(float(hi)) - lowpass(float(lo))) * window for lo, hi in zip(edges, edges[1:])])


class NoiseSynth(nn.Module):
    """Filtered noise, one amplitude per noise band and frame: ``[B, C, n]`` features -> ``[B, M, n]`` noise.

    A small strided conv net reads the decoder's last features and gives ``M * K`` amplitudes
    (``M`` PQMF bands, ``K`` noise bands each) at ``1 / prod(ratios)`` of the band rate; they are
    held (nearest upsampling) and modulate uniform white noise, which a fixed band-pass filter bank
    (a grouped conv) shapes and sums per PQMF band.
    """

    def __init__(
        self,
        channels: int,
        pqmf_bands: int,
        noise_bands: int,
        ratios: Sequence[int],
        taps: int = 33,
        causal: bool = False,
        norm: bool = False,
    ) -> None:
        super().__init__()
        self.pqmf_bands = pqmf_bands
        self.noise_bands = noise_bands
        layers = []
        for ratio in ratios:
            layers.append(Downsample(channels, channels, ratio, causal=causal, norm=norm))
        self.net = nn.Sequential(*layers)
        self.amplitudes = Conv(channels, pqmf_bands * noise_bands, 3, causal=causal, norm=norm)
        self.hold = nn.Upsample(scale_factor=float(math.prod(ratios)), mode="nearest")
        self.filters = Conv(pqmf_bands * noise_bands, pqmf_bands, taps, causal=causal, groups=pqmf_bands, bias=False)
        with torch.no_grad():
            bank = bandpass_bank(noise_bands, taps).repeat(pqmf_bands, 1).unsqueeze(1)  # [M K, 1, taps]
            self.filters.conv.weight.copy_(bank.view(pqmf_bands, noise_bands, taps))
        self.filters.conv.weight.requires_grad_(False)

    def forward(self, features: Tensor) -> Tensor:
        amplitude = torch.sigmoid(self.amplitudes(F.leaky_relu(self.net(features), SLOPE)) - 5.0)
        amplitude = self.hold(amplitude)
        noise = torch.rand_like(amplitude) * 2.0 - 1.0
        return self.filters(noise * amplitude)
