"""Published architectures the rest of the suite does not use, built with random weights (no downloads):
each converts exactly, or is refused for its true reason.

* Vocos (``vocos``): the ConvNeXt backbone (depthwise conv, LayerNorm and Linear over channels, layer
  scale) and the ResNet backbone (HiFiGAN-style ResBlock1 with weight norm).
* DAC, Descript Audio Codec (``descript-audio-codec``): the encoder and decoder (a TorchScript Snake,
  weight-normed convs, residual units that crop their skip by a shape difference).
* BigVGAN (``bigvgan``): the anti-aliased AMP residual block (Activation1d: an upsampler and a
  downsampler whose filters are buffers expanded to the channel count read from the shape, replicate
  padding; Snake and SnakeBeta activations).
* RAVE v2 (``acids-rave``): the encoder and generator as published, built from cached_conv's own
  layers with caching off (the way every RAVE model is trained): convs that pad inside their own
  ``forward``, aligned branches.
* Demucs v2 (``demucs``, source separation): refused for its true reason, the padding of the input
  to ``valid_length(length)``, which depends on the length of the whole signal.

The packages are installed with ``pip install --no-deps vocos==0.1.0 descript-audio-codec==1.0.0
bigvgan==2.4.1 demucs==4.0.1 julius==0.2.8 acids-rave==2.3.1 gin-config==0.5.0``; their model modules import with torch, numpy and einops only (DAC's I/O helpers
import ``audiotools`` and ``tqdm``, vocos' IMDCT ``scipy``: where absent, they are replaced by empty
stand-in modules). Under CI (``CI=true``) a missing package fails these tests instead of skipping them.
"""

from __future__ import annotations

import sys
import warnings

import pytest
import torch
from torch import nn

from conftest import _Stub, published_module
from helpers import assert_streams_exactly, warmup_frames
from streamify import StreamingError
from streamify.convert import convert

TOL = 1e-10


@pytest.fixture(autouse=True)
def _quiet_and_seeded():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
        yield
    # the stand-in modules leave sys.modules once the model modules hold them: a later test's package
    # probing (e.g. lightning's find_spec of torchaudio or librosa) must not see them
    for name in [name for name, module in sys.modules.items() if isinstance(module, _Stub)]:
        del sys.modules[name]


def _convert(model: nn.Module, channels: int, frames: int):
    model = model.double().eval()
    return convert(
        model, torch.randn(1, channels, frames, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    )


class ChannelsFirst(nn.Module):
    """Vocos backbones return ``[batch, frames, channels]``: give the converter ``[batch, channels, frames]``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x).transpose(1, 2)


def test_vocos_convnext_backbone_exact():
    models = published_module("vocos", "models")
    stream = _convert(ChannelsFirst(models.VocosBackbone(8, 16, 32, num_layers=2)), 8, 64)
    assert stream.delay == 9  # the embedding conv (kernel 7) and two depthwise kernel-7 convs: 3 frames each
    assert assert_streams_exactly(stream, 8, frames=256).max_abs_error <= TOL


def test_vocos_resnet_backbone_exact():
    models = published_module("vocos", "models")
    stream = _convert(ChannelsFirst(models.VocosResNetBackbone(8, 16, num_blocks=1)), 8, 64)
    assert assert_streams_exactly(stream, 8, frames=256).max_abs_error <= TOL


def test_vocos_istft_head_refused_at_its_overlap_add():
    """The ISTFT head ("same" padding): the inverse FFT per frame passes (it runs over frequencies), the
    overlap-add by ``F.fold`` over time has no rule: refused there, with vocos' source line."""
    spectral = published_module("vocos", "spectral_ops", stubs=("scipy",))  # scipy: only its IMDCT uses it

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.istft = spectral.ISTFT(n_fft=16, hop_length=4, win_length=16, padding="same")

        def forward(self, x):
            spec = torch.complex(x[:, :9], x[:, 9:])
            return self.istft(spec).unsqueeze(1)

    with pytest.raises(
        StreamingError,
        match=r"functional.fold in layer 'istft' \(vocos.spectral_ops.ISTFT\) at .*vocos/spectral_ops.py.*mixes time frames",
    ):
        convert(Head(), torch.randn(1, 18, 32))


@pytest.mark.parametrize("rates", [[2, 4], [3, 5]])
def test_dac_encoder_exact(rates):
    dac = published_module("dac", "model.dac", stubs=("audiotools", "tqdm"))
    stride = rates[0] * rates[1]
    stream = _convert(dac.Encoder(4, rates, 8), 1, 32 * stride)
    assert stream.ratio == stride and stream.buffer_multiple == stride
    assert assert_streams_exactly(stream, 1, frames=96 * stride).max_abs_error <= TOL


def test_dac_decoder_exact():
    dac = published_module("dac", "model.dac", stubs=("audiotools", "tqdm"))
    stream = _convert(dac.Decoder(8, 16, [4, 2]), 8, 32)
    assert stream.ratio == pytest.approx(1 / 8)
    assert assert_streams_exactly(stream, 8, frames=128).max_abs_error <= TOL


def test_bigvgan_anti_aliased_amp_block_exact_after_warmup():
    act = published_module("bigvgan", "alias_free_activation.torch.act")
    activations = published_module("bigvgan", "activations")

    class AMPBlock(nn.Module):
        """BigVGAN's AMPBlock1 shape: dilated convs between anti-aliased Snake activations, residual."""

        def __init__(self, channels: int = 4) -> None:
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=d, dilation=d) for d in (1, 3))
            self.acts = nn.ModuleList(
                [
                    act.Activation1d(activations.SnakeBeta(channels, alpha_logscale=True)),
                    act.Activation1d(activations.Snake(channels)),
                ]
            )

        def forward(self, x):
            for conv, activation in zip(self.convs, self.acts):
                x = x + conv(activation(x))
            return x

    stream = _convert(AMPBlock(), 4, 128)
    # replicate padding in the resamplers: only the start of a stream differs (the verification
    # compared it with zero padding, exactly); here the comparison starts after the receptive field
    comparison = assert_streams_exactly(stream, 4, frames=512, warmup=warmup_frames(stream))
    assert comparison.max_abs_error <= TOL


def test_demucs_refused_for_its_length_dependent_padding():
    """Demucs pads its input to ``valid_length(T)`` (a length computed from the whole signal's), then
    trims: a stream never knows T, so the refusal names that line of demucs, not a capture failure."""
    demucs = published_module("demucs", "demucs", stubs=("dora", "omegaconf"))  # training-time helpers only

    class Stems(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.separator = demucs.Demucs(
                sources=["drums", "bass", "other", "vocals"],
                audio_channels=2,
                channels=8,
                depth=4,
                resample=False,
                lstm_layers=0,
                normalize=False,
            )

        def forward(self, x):
            return self.separator(x).flatten(1, 2)  # [batch, sources * channels, time]

    model = Stems()
    with pytest.raises(StreamingError) as refusal:
        _convert(model, 2, model.separator.valid_length(8192))
    message = str(refusal.value)
    assert "demucs.py" in message and "valid_length" in message, message
    assert "depends on the signal length" in message, message


RAVE_STUBS = ("torchaudio", "GPUtil", "librosa", "lmdb", "pytorch_lightning")  # training-time imports (scipy is real)


def test_rave_v2_encoder_and_generator_from_cached_conv_layers_exact():
    """acids-rave's EncoderV2 and GeneratorV2 (random weights, reduced capacity): every conv is a
    ``cached_conv`` layer with caching off, padding in its own ``forward`` before a ``padding=0`` conv.
    Taking them for plain torch convs would drop that padding (the wrong delay, a stream of garbage)."""
    blocks = published_module("rave", "blocks", stubs=RAVE_STUBS)
    kwargs = dict(capacity=8, ratios=[4, 2, 2], latent_size=4, kernel_size=3, dilations=[1, 3, 9])
    encoder = blocks.EncoderV2(data_size=4, n_out=2, **kwargs)
    stream = _convert(encoder, 4, 256)
    assert stream.ratio == 16
    assert assert_streams_exactly(stream, 4, frames=2048).max_abs_error <= TOL
    generator = blocks.GeneratorV2(data_size=4, amplitude_modulation=True, **kwargs)
    stream = _convert(generator, 4, 32)
    assert assert_streams_exactly(stream, 4, frames=128).max_abs_error <= TOL


def _rave_pqmf():
    """acids-rave's pqmf module; its filter design calls scipy names that newer scipy renamed
    (``signal.kaiser``, ``firwin(nyq=)``, scalar ``kaiserord``): shimmed here, the filters unchanged."""
    import numpy as np
    import scipy.signal
    import scipy.signal.windows

    if not hasattr(scipy.signal, "kaiser"):
        scipy.signal.kaiser = scipy.signal.windows.kaiser
    pqmf = published_module("rave", "pqmf", stubs=RAVE_STUBS)

    def firwin(n, cutoff, window=None, nyq=None, **kwargs):
        return scipy.signal.firwin(n, cutoff, window=window, fs=2 * nyq if nyq else 2, **kwargs)

    def kaiserord(ripple, width):
        return scipy.signal.kaiserord(float(np.ravel(ripple)[0]), float(np.ravel(width)[0]))

    pqmf.firwin, pqmf.kaiserord = firwin, kaiserord
    return pqmf


class RaveV2(nn.Module):
    """acids-rave's RAVE v2 as ``rave.RAVE`` composes it (``encode``: the PQMF analysis with batch and
    channels reshaped together, the variational encoder; ``decode``: the generator, the PQMF inverse),
    at reduced capacity; ``forward`` decodes the posterior mean (RAVE's own samples it)."""

    def __init__(self, bands: int = 16, latent: int = 4) -> None:
        super().__init__()
        pqmf, blocks = _rave_pqmf(), published_module("rave", "blocks", stubs=RAVE_STUBS)
        kwargs = dict(capacity=8, ratios=[4, 2], latent_size=latent, kernel_size=3, dilations=[1, 3])
        self.pqmf = pqmf.CachedPQMF(attenuation=100, n_band=bands)
        self.encoder = blocks.VariationalEncoder(
            lambda n_channels: blocks.EncoderV2(data_size=bands, n_out=2, n_channels=n_channels, **kwargs)
        )
        self.decoder = blocks.GeneratorV2(data_size=bands, amplitude_modulation=True, **kwargs)

    def encode(self, x):
        batch = x.shape[:-2]
        x = self.pqmf(x.reshape(-1, 1, x.shape[-1]))
        return self.encoder(x.reshape(*batch, -1, x.shape[-1]))

    def decode(self, z):
        batch = z.shape[:-2]
        y = self.decoder(z)
        y = self.pqmf.inverse(y.reshape(y.shape[0], -1, y.shape[-1]))
        return y.reshape(*batch, 1, -1)

    def forward(self, x):
        return self.decode(self.encode(x).chunk(2, 1)[0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rave_v2_whole_with_its_pqmf(dtype):
    """The whole RAVE v2, PQMF included: its analysis multiplies bands by a periodic sign mask written in
    place, its inverse folds bands into time (reshape), and the encoder reads a buffer flag in Python
    (``if self.warmed_up:``). 128 samples per latent frame: the fold and the strides."""
    model = RaveV2().to(dtype).eval()
    stream = convert(model, torch.randn(1, 1, 2048, dtype=dtype, generator=torch.Generator().manual_seed(1)))
    assert stream.ratio == 1 and stream.buffer_multiple == 128
    comparison = assert_streams_exactly(stream, 1, frames=8192, dtype=dtype, check_shift=dtype == torch.float64)
    if dtype == torch.float64:
        assert comparison.max_abs_error <= TOL
    else:  # the project's float32 bar: relative to the peak
        assert comparison.max_rel_error <= 1e-5
