"""Quality measures of a reconstruction ``y`` against its input ``x`` (both ``[n]`` or ``[1, 1, n]`` float tensors).

Log spectra are floored at :data:`FLOOR_DB` below a full-scale sine (spectra are scaled by the window's sum,
so a full-scale sine peaks near 0.5): the speech set has exact digital silence, where an unfloored log would
measure nothing but the model's -120 dB hiss.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

#: STFT sizes of the multiscale spectral distance (hop: a quarter of the size)
SCALES = (2048, 1024, 512, 256, 128)
#: floor of every log spectrum, in dB below a full-scale sine
FLOOR_DB = 80.0
_FLOOR = 0.5 * 10 ** (-FLOOR_DB / 20)  # amplitude floor on window-normalised magnitudes


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1).to(torch.float64)


def magnitude(x: Tensor, size: int, hop: int) -> Tensor:
    """``[bins, frames]`` STFT magnitude of ``x`` (Hann window of ``size``, centred), divided by the window's sum."""
    window = torch.hann_window(size, dtype=torch.float64)
    spectrum = torch.stft(_flat(x), size, hop, window=window, center=True, return_complex=True)
    return spectrum.abs() / window.sum()


def multiscale_spectral_distance(y: Tensor, x: Tensor, scales: Sequence[int] = SCALES) -> float:
    """Mean over STFT sizes of the L1 distance of floored natural-log magnitudes plus the spectral convergence
    ``||A - B|| / ||B||`` (``A``, ``B`` the magnitudes of ``y`` and ``x``). 0 for identical signals."""
    total = 0.0
    used = 0
    for size in scales:
        if size > _flat(x).numel():
            continue
        a, b = magnitude(y, size, size // 4), magnitude(x, size, size // 4)
        log_l1 = (a.clamp_min(_FLOOR).log() - b.clamp_min(_FLOOR).log()).abs().mean()
        convergence = (a - b).norm() / b.norm().clamp_min(1e-12)
        total += float(log_l1 + convergence)
        used += 1
    if not used:
        raise ValueError(f"signal of {_flat(x).numel()} samples is shorter than every STFT size {tuple(scales)}")
    return total / used


def mel_filterbank(sample_rate: int, size: int, mels: int) -> Tensor:
    """``[mels, size // 2 + 1]`` triangular filters equally spaced on the HTK mel scale from 0 Hz to Nyquist."""

    def to_mel(f: Tensor) -> Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def to_hz(m: Tensor) -> Tensor:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    bins = torch.linspace(0.0, sample_rate / 2, size // 2 + 1, dtype=torch.float64)
    top = to_mel(torch.tensor(sample_rate / 2, dtype=torch.float64))
    edges = to_hz(torch.linspace(0.0, float(top), mels + 2, dtype=torch.float64))
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def log_mel_distance(y: Tensor, x: Tensor, sample_rate: int, size: int = 2048, hop: int = 256, mels: int = 80) -> float:
    """Mean absolute difference of floored log10 mel magnitudes (``mels`` bands), in bels of amplitude
    (multiply by 20 for dB)."""
    bank = mel_filterbank(sample_rate, size, mels)
    floor = _FLOOR
    a = (bank @ magnitude(y, size, hop)).clamp_min(floor).log10()
    b = (bank @ magnitude(x, size, hop)).clamp_min(floor).log10()
    return float((a - b).abs().mean())


def _boundaries(n: int, buffer: int, margin: int) -> Tensor:
    """Boundary positions ``k * buffer`` (``k >= 1``) with ``margin`` samples of signal on both sides."""
    positions = torch.arange(buffer, n, buffer)
    return positions[(positions >= margin) & (positions <= n - margin)]


def boundary_jump_db(y: Tensor, reference: Tensor, buffer: int) -> float:
    """Discontinuity of ``y`` at the buffer boundaries (``k * buffer``, ``k >= 1``): the mean energy of its
    sample-to-sample steps there over the mean energy of the steps of ``reference`` (the offline output)
    everywhere, in dB. About 0 dB for an output that does not know the buffer grid; clicks make it positive.
    NaN if the signal spans no boundary."""
    a, b = _flat(y), _flat(reference)
    positions = _boundaries(a.numel(), buffer, 1)
    if positions.numel() == 0:
        return math.nan
    steps = (a[positions] - a[positions - 1]).square().mean()
    typical = (b[1:] - b[:-1]).square().mean().clamp_min(1e-30)
    return float(10 * torch.log10(steps.clamp_min(1e-30) / typical))


def boundary_error_db(y: Tensor, reference: Tensor, buffer: int, width: int = 32) -> float:
    """Energy of the error ``y - reference`` within ``width`` samples of each buffer boundary, over the energy of
    ``reference`` there, in dB (-inf where ``y`` equals the reference there; NaN if no boundary)."""
    a, b = _flat(y), _flat(reference)
    positions = _boundaries(a.numel(), buffer, width)
    if positions.numel() == 0:
        return math.nan
    index = (positions[:, None] + torch.arange(-width, width)).flatten()
    error = (a[index] - b[index]).square().sum()
    if error == 0:
        return -math.inf
    return float(10 * torch.log10(error / b[index].square().sum().clamp_min(1e-30)))
