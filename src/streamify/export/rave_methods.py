"""The three methods of ``rave export``'s file, as one plain module built from a trained acids-rave model.

:class:`RaveMethods` holds acids-rave's own PQMF, encoder and decoder (caching off) and the run's latent
statistics, and computes offline what ``rave export`` writes (``ScriptedRAVE`` of acids-rave's
``scripts/export.py``, variational models):

* ``encode``: PQMF analysis of each channel, the encoder, the posterior, minus the run's ``latent_mean``,
  projected on its ``latent_pca``, cut to the first ``latent_size`` dimensions (set by the fidelity);
* ``decode``: the cut dimensions filled, projected back, plus ``latent_mean``, the decoder (with its noise
  synthesizer where the config has one, wrapped in :class:`NoiseGain`), PQMF synthesis;
* ``forward``: ``decode(encode(x))``.

``rave export``'s file draws random numbers: the posterior sample (mean + std x N(0, 1)) and N(0, 1) noise
in the cut dimensions, and the noise synthesizer of configs that have one draws uniform noise. Here all three
are scaled by buffers ``noise_gain``: 1 draws them as ``rave export``
does (:func:`streamify.convert` keeps the draws with ``allow_random=True``: drawn per buffer, frame by
frame); 0 (the default) takes their expected values, the posterior mean, 0 in the cut dimensions and no
synthesized noise, exactly. With 0 the methods are deterministic, and a stream can be checked against this offline
computation; the draws are then switched on in the converted streams (:func:`set_noise_gain`).
"""

from __future__ import annotations

import copy
import math
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamify.layers.base import StreamingError

#: ``rave export``'s default ``--fidelity``
DEFAULT_FIDELITY = 0.95
#: the buffer that scales the random draws (0: expected values, 1: ``rave export``'s draws)
NOISE_GAIN = "noise_gain"
#: the value the gains hold while a method is converted: a converter may rename buffers (``const0``), and the
#: gains are found again in the converted stream by this value (:func:`noise_gain_names`)
NOISE_MARK = 0.7853981633974483


def noise_gain_names(module: nn.Module) -> List[str]:
    """Names of the noise gains below ``module``: buffers named ``noise_gain``, or scalars holding
    :data:`NOISE_MARK` (in their dtype), as a converter leaves them."""

    def marked(buffer: Tensor) -> bool:
        mark = float(torch.tensor(NOISE_MARK, dtype=buffer.dtype)) if buffer.is_floating_point() else None
        return buffer.dim() == 0 and mark is not None and float(buffer) == mark

    named = [n for n, _ in module.named_buffers() if n == NOISE_GAIN or n.endswith("." + NOISE_GAIN)]
    return named + [n for n, b in module.named_buffers() if n not in named and marked(b)]


def set_noise_gain(module: nn.Module, gain: float, names: Optional[Sequence[str]] = None) -> int:
    """Set the buffers ``names`` of ``module`` (default: those named ``noise_gain``) to ``gain``; returns how many
    were set."""
    wanted = set(names) if names is not None else None
    count = 0
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            named = name == NOISE_GAIN or name.endswith("." + NOISE_GAIN)
            if (wanted is None and named) or (wanted is not None and name in wanted):
                buffer.fill_(gain)
                count += 1
    return count


def latent_size_for(fidelity_curve: Tensor, fidelity: float) -> int:
    """The latent dimensions ``rave export --fidelity`` keeps: the first where the run's cumulative explained
    variance exceeds ``fidelity`` (at least 1), rounded up to a power of two (capped at the latent size)."""
    if not 0.0 < fidelity < 1.0:
        raise StreamingError(
            f"streamify: --fidelity must be between 0 and 1 (rave export's range: .1 to .999), got {fidelity}"
        )
    size = max(int(np.argmax(fidelity_curve.detach().cpu().numpy() > fidelity)), 1)
    return min(2 ** math.ceil(math.log2(size)), int(fidelity_curve.numel()))


def check_supported(model: nn.Module) -> None:
    """Refuse the RAVE variants this export does not cover yet, saying which."""
    rave = __import__("rave")
    if not isinstance(model.encoder, rave.blocks.VariationalEncoder):
        raise StreamingError(
            f"streamify: RAVE runs with a {type(model.encoder).__name__} are not exported yet (only variational "
            "encoders, the v1/v2/v3 configs); use rave export for this run"
        )
    if model.input_mode != "pqmf" or model.output_mode != "pqmf":
        raise StreamingError(
            f"streamify: RAVE runs with input mode {model.input_mode!r} / output mode {model.output_mode!r} are not "
            "exported yet (only the PQMF modes of the v1/v2/v3 configs); use rave export for this run"
        )
    if any(type(m).__name__ == "AdaptiveInstanceNormalization" for m in model.modules()):
        raise StreamingError("streamify: RAVE runs with AdaIN (adain.gin) are not exported yet; use rave export")


class NoiseGain(nn.Module):
    """acids-rave's noise synthesizer (``NoiseGeneratorV2``, unchanged inside) with its output scaled by
    ``noise_gain``: 1 is the synthesizer, 0 its expected value (zero: its filtered uniform noise has mean 0).

    Shape:
        ``[B, C, n]`` decoder features -> ``[B, bands, n]`` noise at the band rate (as the synthesizer's).
    """

    def __init__(self, synthesizer: nn.Module) -> None:
        super().__init__()
        self.synthesizer = synthesizer
        self.register_buffer(NOISE_GAIN, torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return self.synthesizer(x) * self.noise_gain


class RaveMethods(nn.Module):
    """``encode``, ``decode`` and ``forward`` of a trained RAVE, as ``rave export`` computes them offline.

    Attributes: ``sample_rate`` (Hz), ``channels`` (audio channels), ``latent_size`` (kept dimensions),
    ``full_latent_size``, ``ratio`` (audio samples per latent frame).

    Shape:
        ``encode``: ``[B, channels, n]`` -> ``[B, latent_size, n / ratio]``; ``decode``: ``[B, latent_size, m]``
        -> ``[B, channels, m ratio]``; ``forward``: ``[B, channels, n]`` -> ``[B, channels, n]``.
    """

    def __init__(self, model: nn.Module, fidelity: float = DEFAULT_FIDELITY) -> None:
        super().__init__()
        check_supported(model)
        # copies: converting this module (.double(), ...) leaves the caller's model as it is
        self.pqmf = copy.deepcopy(model.pqmf)
        self.encoder = copy.deepcopy(model.encoder)
        self.decoder = copy.deepcopy(model.decoder)
        if getattr(self.decoder, "noise_module", None) is not None:
            self.decoder.noise_module = NoiseGain(self.decoder.noise_module)
        self.register_buffer(NOISE_GAIN, torch.zeros(()))
        self.register_buffer("latent_pca", model.latent_pca.detach().clone())
        self.register_buffer("latent_mean", model.latent_mean.detach().clone())
        self.sample_rate = int(model.sr)
        self.channels = int(model.n_channels)
        self.full_latent_size = int(model.latent_size)
        self.latent_size = latent_size_for(model.fidelity, fidelity)
        self.bands = int(getattr(self.pqmf, "n_band", 1))
        with torch.no_grad():
            probe = torch.zeros(1, self.channels, 2**14)
            self.ratio = probe.size(-1) // self.encode(probe).size(-1)

    def _analysis(self, x: Tensor) -> Tensor:
        """Each channel into its PQMF bands: ``[B, C, n]`` -> ``[B, C bands, n / bands]`` (as RAVE's encode)."""
        batch = x.size(0)
        bands = self.pqmf(x.reshape(-1, 1, x.size(-1)))
        return bands.reshape(batch, -1, bands.size(-1))

    def _synthesis(self, y: Tensor) -> Tensor:
        """The decoder's bands back to audio: ``[B, C bands, m]`` -> ``[B, C, m bands]`` (as RAVE's decode)."""
        batch = y.size(0)
        y = y.reshape(batch * self.channels, -1, y.size(-1))
        y = self.pqmf.inverse(y)
        return y.reshape(batch, self.channels, -1)

    def encode(self, x: Tensor) -> Tensor:
        """Audio to the kept latent dimensions: the posterior sampled (``noise_gain`` 1) or at its mean (0)."""
        # the variational encoder's own network: its wrapper only detaches the output in training
        # (``if self.warmed_up``, a test of a buffer that a capture would have to guard on)
        mean, scale = self.encoder.encoder(self._analysis(x)).chunk(2, 1)
        std = F.softplus(scale) + 1e-4  # acids-rave's VariationalEncoder.reparametrize
        z = mean + std * torch.randn_like(mean) * self.noise_gain
        z = z - self.latent_mean.unsqueeze(-1)
        z = F.conv1d(z, self.latent_pca.unsqueeze(-1))
        return z[:, : self.latent_size, :]

    def decode(self, z: Tensor) -> Tensor:
        """Kept latent dimensions to audio, the cut dimensions filled with N(0, 1) noise (``noise_gain`` 1) or 0."""
        # the projection back of [z, noise], the two parts apart: with noise_gain 0 the second adds exact zeros
        z = F.conv1d(z, self.latent_pca[: self.latent_size].t().unsqueeze(-1))
        cut = self.full_latent_size - self.latent_size
        if cut > 0:
            noise = torch.randn_like(z)[:, :cut, :] * self.noise_gain
            z = z + F.conv1d(noise, self.latent_pca[self.latent_size :].t().unsqueeze(-1))
        z = z + self.latent_mean.unsqueeze(-1)
        return self._synthesis(self.decoder(z))

    def forward(self, x: Tensor) -> Tensor:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))


__all__ = [
    "DEFAULT_FIDELITY",
    "NOISE_GAIN",
    "NoiseGain",
    "RaveMethods",
    "check_supported",
    "latent_size_for",
    "set_noise_gain",
]
