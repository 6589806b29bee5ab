"""Hyper-parameters of the RAVE-style model family (:mod:`streamify.models.rave`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, Tuple


@dataclass(frozen=True)
class RaveConfig:
    """One preset: audio rate, band split, encoder / decoder shapes, latent and noise synthesizer.

    ``ratios`` are the strides of the encoder (and, reversed, of the decoder) at the band rate;
    the total ratio (audio samples per latent frame) is ``bands * prod(ratios)``.
    """

    name: str
    sample_rate: int
    bands: int = 16
    pqmf_taps: int = 256
    capacity: int = 96
    ratios: Tuple[int, ...] = (4, 4, 4, 2)
    dilations: Tuple[Tuple[int, ...], ...] = ((1, 3, 9), (1, 3, 9), (1, 3, 9), (1, 3))
    kernel: int = 3
    latent: int = 128
    noise_bands: int = 5
    noise_ratios: Tuple[int, ...] = (2, 2, 2)
    noise_taps: int = 33

    @property
    def ratio(self) -> int:
        """Audio samples per latent frame."""
        return self.bands * math.prod(self.ratios)

    def scaled(self, **changes) -> RaveConfig:
        """A copy with some fields changed (tests use tiny variants)."""
        return replace(self, **changes)


#: RAVE v2 as published (``configs/v2.gin``): 48 kHz, 16 bands, ratio 2048, latent 128, about 31.5 M parameters
V2 = RaveConfig("v2", sample_rate=48000)

#: trains on a 2-core CPU in about an hour: 22.05 kHz, 16 bands, ratio 512, latent 16
SMALL = RaveConfig(
    "small",
    sample_rate=22050,
    bands=16,
    pqmf_taps=256,
    capacity=32,
    ratios=(4, 4, 2),
    dilations=((1, 3, 9), (1, 3, 9), (1, 3)),
    latent=16,
    noise_bands=4,
    noise_ratios=(2, 2),
)

PRESETS: Dict[str, RaveConfig] = {"small": SMALL, "v2": V2}


def preset(name: str) -> RaveConfig:
    """The preset called ``name`` (``"small"`` or ``"v2"``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown RAVE preset {name!r}; choose one of {sorted(PRESETS)}") from None
