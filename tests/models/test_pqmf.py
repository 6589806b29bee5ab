"""The PQMF bank of streamify.models.pqmf: its filters are the documented design, to the last bit that matters.

A filter tap off by 1 % barely moves a round trip (the bank is only nearly perfect-reconstruction:
-59 dB), so the round trip alone cannot guard the design. These tests check (1) that both halves
hold exactly the cosine-modulated filters of the docstring's formula built on
:func:`design_prototype`, (2) that the prototype is the linear-phase (symmetric) low-pass whose
reconstruction defect the golden-section search minimised (reference values measured with this
design, float64, deterministic), and (3) the round trip's error against its reference value.
"""

from __future__ import annotations

import math

import pytest
import torch

from streamify.models.pqmf import PQMFAnalysis, PQMFSynthesis, _reconstruction_defect, design_prototype, kaiser_beta

#: (bands, taps) -> (reconstruction defect of the prototype, round-trip relative RMS error), measured in float64
REFERENCE = {(16, 256): (4.554049e-4, 1.0777776e-3), (8, 128): (4.590212e-4, 1.0814262e-3)}
CASES = sorted(REFERENCE)


def _formula(bands: int, taps: int) -> torch.Tensor:
    """``h_k[n] = 2 p[n] cos((2k + 1) pi / (2M) (n - (N - 1) / 2) + (-1)^k pi / 4)``, scaled to unit paraunitary gain."""
    p = design_prototype(bands, taps)
    rows = []
    for k in range(bands):
        phase = (-1) ** k * math.pi / 4
        angle = [(2 * k + 1) * math.pi / (2 * bands) * (n - (taps - 1) / 2) + phase for n in range(taps)]
        rows.append([2 * p[n].item() * math.cos(a) for n, a in enumerate(angle)])
    bank = torch.tensor(rows, dtype=torch.float64)
    return bank / math.sqrt(2 * p.square().sum().item())


@pytest.mark.parametrize("bands, taps", CASES)
def test_both_halves_hold_the_documented_filters(bands: int, taps: int) -> None:
    want = _formula(bands, taps)
    for half in (PQMFAnalysis(bands, taps), PQMFSynthesis(bands, taps)):
        weights = half.conv.weight.detach().double().squeeze(1)
        assert weights.shape == want.shape
        # the layers keep float32 weights: each the float64 design's tap rounded to float32 (one ulp at most)
        bound = want.abs() * 2.0**-23 + 1e-45
        worst = ((weights - want).abs() / bound).max().item()
        assert worst <= 1.0, f"a tap differs from the design by {worst:.3g} times float32 rounding"


@pytest.mark.parametrize("bands, taps", CASES)
def test_the_prototype_is_the_symmetric_low_pass_of_the_design(bands: int, taps: int) -> None:
    p = design_prototype(bands, taps)
    assert torch.equal(p, p.flip(0)), "a linear-phase prototype is symmetric"
    defect, _ = REFERENCE[(bands, taps)]
    assert _reconstruction_defect(p, bands) == pytest.approx(defect, rel=1e-5)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-4)  # unit DC gain (the windowed sinc's)
    assert kaiser_beta(100.0) == pytest.approx(0.1102 * (100 - 8.7))


@pytest.mark.parametrize("bands, taps", CASES)
def test_the_round_trip_error_is_the_design_s(bands: int, taps: int) -> None:
    analysis, synthesis = PQMFAnalysis(bands, taps).double(), PQMFSynthesis(bands, taps).double()
    x = torch.randn(1, 1, bands * 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = synthesis(analysis(x))
    inner = slice(2 * taps, -2 * taps)
    error = ((y - x)[..., inner].square().mean() / x[..., inner].square().mean()).sqrt().item()
    _, reference = REFERENCE[(bands, taps)]
    assert error == pytest.approx(reference, rel=1e-4)
