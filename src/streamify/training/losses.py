"""Training losses: multiscale spectral distance, KL divergence, adversarial hinge and feature matching."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: STFT sizes of the multiscale spectral distance (hop = size / 4)
SCALES = (2048, 1024, 512, 256, 128)

_windows: Dict[Tuple[int, torch.dtype, torch.device], Tensor] = {}


def _magnitude(x: Tensor, size: int) -> Tensor:
    key = (size, x.dtype, x.device)
    window = _windows.get(key)
    if window is None:
        window = _windows[key] = torch.hann_window(size, dtype=x.dtype, device=x.device)
    spectrum = torch.stft(x.reshape(-1, x.size(-1)), size, size // 4, window=window, center=True, return_complex=True)
    return spectrum.abs()


def multiscale_spectral_distance(y: Tensor, x: Tensor, scales: Sequence[int] = SCALES, eps: float = 1e-7) -> Tensor:
    """Distance of ``y`` to ``x`` (both ``[B, C, n]``): the sum over STFT sizes of the log-magnitude L1
    distance and the relative Frobenius (spectral convergence) distance. 0 for identical signals."""
    total = y.new_zeros(())
    for size in scales:
        if size > x.size(-1):
            continue
        a, b = _magnitude(y, size), _magnitude(x, size)
        total = total + (torch.log(a + eps) - torch.log(b + eps)).abs().mean()
        total = total + (a - b).norm() / b.norm().clamp_min(eps)
    return total


def kl_divergence(mean: Tensor, std: Tensor) -> Tensor:
    """KL of the posterior ``N(mean, std^2)`` to ``N(0, 1)``: summed over latent channels, averaged over batch and frames."""
    variance = std.square()
    return 0.5 * (mean.square() + variance - torch.log(variance) - 1).sum(1).mean()


def discriminator_hinge(real_scores: List[Tensor], fake_scores: List[Tensor]) -> Tensor:
    """Hinge loss of the discriminators: ``relu(1 - D(x)) + relu(1 + D(y))``, averaged, summed over discriminators."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_scores, fake_scores))


def generator_hinge(fake_scores: List[Tensor]) -> Tensor:
    """The generator's side of the hinge loss: ``-D(y)``, averaged, summed over discriminators."""
    return sum(-f.mean() for f in fake_scores)


def feature_matching(real_features: List[List[Tensor]], fake_features: List[List[Tensor]]) -> Tensor:
    """L1 distance between the discriminators' hidden features of real and generated audio (real ones detached)."""
    total = 0.0
    count = 0
    for reals, fakes in zip(real_features, fake_features):
        for r, f in zip(reals, fakes):
            total = total + (r.detach() - f).abs().mean() / r.detach().abs().mean().clamp_min(1e-5)
            count += 1
    return total / max(count, 1)
