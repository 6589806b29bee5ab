"""Pseudo-quadrature mirror filter bank (PQMF): the band split and merge of RAVE-style models.

A cosine-modulated filter bank of ``M`` bands built from one linear-phase low-pass
prototype (a Kaiser-windowed sinc) whose cut-off is chosen so that the bank is nearly
perfect-reconstruction (Lin & Vaidyanathan, "A Kaiser window approach for the design
of prototype filters of cosine modulated filterbanks", IEEE SPL 1998): the prototype's
autocorrelation must vanish at every non-zero multiple of ``2 M``.

Both halves are plain ``torch.nn`` layers with frozen weights, so that the converter
streams them like any conv:

* :class:`PQMFAnalysis`: a strided ``nn.Conv1d`` (stride ``M``, one filter per band);
* :class:`PQMFSynthesis`: its adjoint, an ``nn.ConvTranspose1d`` with the same filters.

The modulation is written into the filters (no alternating-sign polyphase trick), and
the padding is symmetric, so ``synthesis(analysis(x)) ~ x`` with no delay offline.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def kaiser_beta(attenuation_db: float) -> float:
    """Kaiser's window parameter for a stop-band attenuation in dB."""
    if attenuation_db > 50:
        return 0.1102 * (attenuation_db - 8.7)
    if attenuation_db >= 21:
        return 0.5842 * (attenuation_db - 21) ** 0.4 + 0.07886 * (attenuation_db - 21)
    return 0.0


def _prototype(cutoff: float, taps: int, beta: float) -> Tensor:
    """``[taps]`` float64 Kaiser-windowed sinc low-pass, cut-off ``cutoff`` rad/sample, unit DC gain."""
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    ideal = cutoff / math.pi * torch.sinc(cutoff * n / math.pi)
    window = torch.kaiser_window(taps, periodic=False, beta=beta, dtype=torch.float64)
    return ideal * window


def _reconstruction_defect(prototype: Tensor, bands: int) -> float:
    """Largest autocorrelation of the prototype at non-zero multiples of ``2 M``, relative to lag 0."""
    taps = prototype.numel()
    auto = torch.nn.functional.conv1d(
        prototype.view(1, 1, -1), prototype.view(1, 1, -1), padding=taps - 1
    ).flatten()  # lags -(taps - 1) .. taps - 1
    centre = taps - 1
    lags = torch.arange(2 * bands, taps, 2 * bands)
    if lags.numel() == 0:
        return 0.0
    return float((auto[centre + lags].abs().max() / auto[centre]).item())


def design_prototype(bands: int, taps: int, attenuation_db: float = 100.0) -> Tensor:
    """The nearly-PR prototype ``[taps]`` (float64): golden-section search of the cut-off in ``(0, pi / M)``."""
    beta = kaiser_beta(attenuation_db)
    low, high = 0.3 * math.pi / bands, 0.9 * math.pi / bands
    golden = (math.sqrt(5) - 1) / 2

    def cost(cutoff: float) -> float:
        return _reconstruction_defect(_prototype(cutoff, taps, beta), bands)

    a, b = high - golden * (high - low), low + golden * (high - low)
    fa, fb = cost(a), cost(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - golden * (high - low)
            fa = cost(a)
        else:
            low, a, fa = a, b, fb
            b = low + golden * (high - low)
            fb = cost(b)
    return _prototype((low + high) / 2, taps, beta)


def pqmf_filters(bands: int, taps: int, attenuation_db: float = 100.0) -> Tensor:
    """``[bands, taps]`` float64 analysis filters ``h_k``, scaled so that the bank is (nearly) paraunitary.

    ``h_k[n] = 2 p[n] cos((2k + 1) pi / (2M) (n - (N - 1) / 2) + (-1)^k pi / 4)``; the synthesis
    filters are their time reverses, which is what a transposed conv with the same weights computes.
    """
    prototype = design_prototype(bands, taps, attenuation_db)
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    k = torch.arange(bands, dtype=torch.float64).unsqueeze(1)
    phase = (-1.0) ** k * math.pi / 4
    bank = 2 * prototype * torch.cos((2 * k + 1) * math.pi / (2 * bands) * n + phase)
    # paraunitary: a transposed conv with the same filters (the adjoint) reconstructs at unit gain
    return bank / math.sqrt(2 * prototype.square().sum().item())


class PQMFAnalysis(nn.Module):
    """Band split: ``[batch, 1, n]`` -> ``[batch, M, n / M]`` (``n`` a multiple of ``M``).

    A strided conv of the ``M`` analysis filters, zero-padded by ``(taps - M) / 2`` on each side
    (``causal``: all ``taps - M`` on the left).
    """

    def __init__(self, bands: int, taps: int, causal: bool = False) -> None:
        super().__init__()
        if (taps - bands) % 2:
            raise ValueError(f"PQMF: taps - bands must be even, got {taps} - {bands}")
        self.bands = bands
        total = taps - bands
        self.padding = (total, 0) if causal else (total // 2, total // 2)
        self.conv = nn.Conv1d(1, bands, taps, stride=bands, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(pqmf_filters(bands, taps).unsqueeze(1))
        self.conv.weight.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.pad(x, self.padding))


class PQMFSynthesis(nn.Module):
    """Band merge: ``[batch, M, m]`` -> ``[batch, 1, m M]``: the transposed conv of the analysis filters.

    ``causal``: the transposed conv keeps its first ``m M`` outputs (no look-ahead) instead of
    cropping ``(taps - M) / 2`` on each side.
    """

    def __init__(self, bands: int, taps: int, causal: bool = False) -> None:
        super().__init__()
        if (taps - bands) % 2:
            raise ValueError(f"PQMF: taps - bands must be even, got {taps} - {bands}")
        self.bands = bands
        self.causal = causal
        self.crop = taps - bands
        padding = 0 if causal else (taps - bands) // 2
        self.conv = nn.ConvTranspose1d(bands, 1, taps, stride=bands, padding=padding, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(pqmf_filters(bands, taps).unsqueeze(1))
        self.conv.weight.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.causal:
            y = y[..., : y.size(-1) - self.crop]
        return y
