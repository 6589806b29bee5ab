"""A RAVE-v2-style variational autoencoder for audio, in plain PyTorch (Caillon & Esling, 2021).

``[B, 1, n]`` audio -> PQMF analysis (``M`` bands, ``[B, M, n / M]``) -> encoder (residual dilated
units and strided convs) -> posterior mean and scale ``[B, latent, n / ratio]`` -> decoder (transposed
convs and residual units) -> ``M`` band signals with amplitude modulation, plus filtered noise ->
PQMF synthesis -> ``[B, 1, n]``.

Every layer pads symmetrically ("same"); ``causal=True`` builds the same architecture with left
padding only (no look-ahead anywhere, PQMF included). No streaming layer is inside:
:func:`streamify.convert` streams ``encode``, ``decode`` and ``forward``.
"""

from __future__ import annotations

from typing import List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from streamify.models.blocks import SLOPE, Conv, DilatedUnit, Downsample, NoiseSynth, Upsample
from streamify.models.pqmf import PQMFAnalysis, PQMFSynthesis
from streamify.models.presets import RaveConfig
from streamify.models.presets import preset as _preset


def _dilations(config: RaveConfig) -> List[Tuple[int, ...]]:
    if len(config.dilations) != len(config.ratios):
        raise ValueError(f"{len(config.dilations)} dilation groups for {len(config.ratios)} ratios")
    return [tuple(d) for d in config.dilations]


class Encoder(nn.Module):
    """``[B, M, n]`` bands -> ``[B, 2 latent, n / prod(ratios)]`` (posterior mean, then pre-softplus scale)."""

    def __init__(self, config: RaveConfig, causal: bool, norm: bool) -> None:
        super().__init__()
        k = config.kernel
        channels = config.capacity
        layers: List[nn.Module] = [Conv(config.bands, channels, 2 * k + 1, causal=causal, norm=norm)]
        for ratio, dilations in zip(config.ratios, _dilations(config)):
            layers += [DilatedUnit(channels, k, d, causal=causal, norm=norm) for d in dilations]
            layers.append(Downsample(channels, 2 * channels, ratio, causal=causal, norm=norm))
            channels *= 2
        layers += [nn.LeakyReLU(SLOPE), Conv(channels, 2 * config.latent, k, causal=causal, norm=norm)]
        self.net = nn.Sequential(*layers)

    def forward(self, bands: Tensor) -> Tensor:
        return self.net(bands)


class Decoder(nn.Module):
    """``[B, latent, m]`` -> ``[B, capacity, m prod(ratios)]`` features at the band rate."""

    def __init__(self, config: RaveConfig, causal: bool, norm: bool) -> None:
        super().__init__()
        k = config.kernel
        channels = config.capacity * 2 ** len(config.ratios)
        layers: List[nn.Module] = [Conv(config.latent, channels, k, causal=causal, norm=norm)]
        for ratio, dilations in zip(reversed(config.ratios), reversed(_dilations(config))):
            layers.append(Upsample(channels, channels // 2, ratio, causal=causal, norm=norm))
            channels //= 2
            layers += [DilatedUnit(channels, k, d, causal=causal, norm=norm) for d in dilations]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class RAVE(nn.Module):
    """The autoencoder. Attributes: ``sample_rate`` (Hz), ``ratio`` (samples per latent frame),
    ``latent_size``, ``causal``, ``use_noise`` (False: no noise synthesizer, every method deterministic).

    Methods (``n`` a multiple of ``ratio``):

    * ``encode(x)``: ``[B, 1, n]`` -> ``[B, latent, n / ratio]`` (posterior mean);
    * ``decode(z)``: ``[B, latent, m]`` -> ``[B, 1, m ratio]``;
    * ``forward(x)``: ``decode(encode(x))``, the reconstruction through the posterior mean.
    """

    def __init__(self, config: RaveConfig, causal: bool = False, weight_norm: bool = False) -> None:
        super().__init__()
        self.config = config
        self.sample_rate = int(config.sample_rate)
        self.ratio = int(config.ratio)
        self.latent_size = int(config.latent)
        self.causal = bool(causal)
        self.use_noise = True
        bands = config.bands
        self.analysis = PQMFAnalysis(bands, config.pqmf_taps, causal=causal)
        self.encoder = Encoder(config, causal, weight_norm)
        self.decoder = Decoder(config, causal, weight_norm)
        self.to_bands = Conv(config.capacity, 2 * bands, 2 * config.kernel + 1, causal=causal, norm=weight_norm)
        self.noise = NoiseSynth(
            config.capacity,
            bands,
            config.noise_bands,
            config.noise_ratios,
            taps=config.noise_taps,
            causal=causal,
            norm=weight_norm,
        )
        self.synthesis = PQMFSynthesis(bands, config.pqmf_taps, causal=causal)

    def posterior(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``[B, 1, n]`` -> posterior ``(mean, std)``, each ``[B, latent, n / ratio]``."""
        mean, scale = self.encoder(self.analysis(x)).chunk(2, 1)
        return mean, F.softplus(scale) + 1e-4

    def encode(self, x: Tensor) -> Tensor:
        """``[B, 1, n]`` audio -> ``[B, latent, n / ratio]`` posterior mean."""
        return self.encoder(self.analysis(x))[:, : self.latent_size]

    def decode(self, z: Tensor) -> Tensor:
        """``[B, latent, m]`` -> ``[B, 1, m ratio]`` audio."""
        return self.synthesis(self.decode_bands(z))

    def decode_bands(self, z: Tensor) -> Tensor:
        """``[B, latent, m]`` -> ``[B, M, m ratio / M]`` band signals (before the PQMF synthesis)."""
        features = self.decoder(z)
        wave, amplitude = self.to_bands(F.leaky_relu(features, SLOPE)).chunk(2, 1)
        bands = torch.tanh(wave) * torch.sigmoid(amplitude)
        if self.use_noise:
            bands = bands + self.noise(features)
        return bands

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction through the posterior mean: ``[B, 1, n]`` -> ``[B, 1, n]``."""
        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"preset={c.name}, sample_rate={c.sample_rate}, ratio={self.ratio}, latent={c.latent}, causal={self.causal}"
        )


def rave(preset: Union[str, RaveConfig] = "small", causal: bool = False, weight_norm: bool = False) -> RAVE:
    """A RAVE-style model with fresh random weights (seed it with ``torch.manual_seed``).

    Args:
        preset: ``"small"`` (22.05 kHz, ratio 512, about 2 M parameters) or ``"v2"``
            (48 kHz, ratio 2048, about 31.5 M parameters), or a :class:`RaveConfig`.
        causal: left padding only (no look-ahead): streams with no latency beyond the PQMF filters'.
        weight_norm: weight-normed convs (training); :func:`fold_weight_norm` removes them.
    """
    config = preset if isinstance(preset, RaveConfig) else _preset(preset)
    return RAVE(config, causal=causal, weight_norm=weight_norm)


def fold_weight_norm(model: nn.Module) -> nn.Module:
    """Replace every weight-norm parametrization of ``model`` (in place) by the plain weight it computes."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model
