"""Builders of the corpus's models: published architectures with small configurations and random weights.

Each builder returns a float64 model in eval mode that takes and returns ``[batch, channels, time]``;
the thin wrappers below adapt the packages' own layouts (channels last, waveforms ``[batch, time]``,
tuples of outputs) without changing what the models compute.
"""

from __future__ import annotations

from typing import Callable

import torch
from corpus_imports import load
from torch import Tensor, nn


def seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return factory().double().eval()

    return build


class Select(nn.Module):
    """The first output of a model that returns a tuple (quantized signal, codes, losses ...)."""

    def __init__(self, model: nn.Module, index: int = 0) -> None:
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[self.index]


class ChannelsLast(nn.Module):
    """A model that takes ``[batch, time, channels]`` (and returns it), given ``[batch, channels, time]``."""

    def __init__(self, model: nn.Module, transpose_output: bool = True) -> None:
        super().__init__()
        self.model, self.transpose_output = model, transpose_output

    def forward(self, x: Tensor) -> Tensor:
        y = self.model(x.transpose(1, 2))
        y = y[0] if isinstance(y, tuple) else y
        return y.transpose(1, 2) if self.transpose_output else y


class Waveform(nn.Module):
    """A model that takes ``[batch, time]`` waveforms, given ``[batch, 1, time]``."""

    def __init__(self, model: nn.Module, time_last: bool = True) -> None:
        super().__init__()
        self.model, self.time_last = model, time_last

    def forward(self, x: Tensor) -> Tensor:
        y = self.model(x[:, 0])
        if y.dim() == 2:
            return y.unsqueeze(1)
        return y if self.time_last else y.transpose(-1, -2)


class Flat(nn.Module):
    """A separator's ``[batch, sources, channels, time]`` output as ``[batch, sources * channels, time]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).flatten(1, 2)


# ------------------------------------------------------------------------------------------ parallel-wavegan


def _pwg(name: str):
    return getattr(load("parallel_wavegan", "models", stubs=("h5py",)), name)


def melgan(causal: bool = False) -> nn.Module:
    return _pwg("MelGANGenerator")(in_channels=8, channels=32, upsample_scales=[2, 2], stacks=2, use_causal_conv=causal)


def pwg_hifigan() -> nn.Module:
    return _pwg("HiFiGANGenerator")(
        in_channels=8,
        channels=32,
        upsample_scales=(2, 2),
        upsample_kernel_sizes=(4, 4),
        resblock_kernel_sizes=(3, 5),
        resblock_dilations=[(1, 3), (1, 3)],
    )


class MultiBandMelGAN(nn.Module):
    """Multi-band MelGAN: a MelGAN emitting 4 sub-bands, merged by parallel-wavegan's PQMF synthesis."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = _pwg("MelGANGenerator")(
            in_channels=8, out_channels=4, channels=32, upsample_scales=[2], stacks=1
        )
        self.pqmf = _pwg("PQMF")(subbands=4, taps=32)

    def forward(self, x: Tensor) -> Tensor:
        return self.pqmf.synthesis(self.generator(x))


class PQMFAnalysis(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pqmf = _pwg("PQMF")(subbands=4, taps=32)

    def forward(self, x: Tensor) -> Tensor:
        return self.pqmf.analysis(x)


class WaveNetVocoder(nn.Module):
    """Parallel WaveGAN's generator, noise and (audio-rate) conditioning given as input channels."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = _pwg("ParallelWaveGANGenerator")(
            layers=6,
            stacks=2,
            residual_channels=8,
            gate_channels=16,
            skip_channels=8,
            aux_channels=4,
            aux_context_window=0,
            upsample_conditional_features=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x[:, :1], x[:, 1:])


# --------------------------------------------------------------------------------- asteroid-filterbanks


def fb(encoder: bool, bank: str, n_filters: int, kernel: int, stride: int, **kwargs) -> nn.Module:
    filterbanks = load("asteroid_filterbanks")
    fb = getattr(filterbanks, bank)(n_filters, kernel, stride=stride, **kwargs)
    return filterbanks.Encoder(fb) if encoder else filterbanks.Decoder(fb)


# ------------------------------------------------------------------------------------------------ asteroid


def tdconvnet(norm: str) -> nn.Module:
    masknn = load("asteroid", "masknn", stubs=("huggingface_hub",), skip_init=True)
    return Flat(
        masknn.TDConvNet(
            in_chan=16, n_src=2, n_blocks=2, n_repeats=1, bn_chan=16, hid_chan=32, skip_chan=16, norm_type=norm
        )
    )


def dprnn() -> nn.Module:
    masknn = load("asteroid", "masknn", stubs=("huggingface_hub",), skip_init=True)
    return Flat(
        masknn.DPRNN(
            in_chan=16, n_src=2, bn_chan=16, hid_size=16, chunk_size=8, hop_size=4, n_repeats=1, norm_type="cLN"
        )
    )


def convtasnet() -> nn.Module:
    models = load("asteroid", "models", stubs=("huggingface_hub",), skip_init=True)
    model = models.ConvTasNet(
        n_src=2,
        n_filters=16,
        kernel_size=16,
        stride=8,
        n_blocks=2,
        n_repeats=1,
        bn_chan=16,
        hid_chan=32,
        skip_chan=16,
        norm_type="cLN",
    )
    return model


# ------------------------------------------------------------------------------------------------- nnAudio


def nnaudio(name: str, **kwargs) -> nn.Module:
    features = load("nnAudio", "features")
    return Waveform(getattr(features, name)(verbose=False, **kwargs))


# ------------------------------------------------------------------------------------------------ pytorch-tcn


def tcn(**kwargs) -> nn.Module:
    tcn = load("pytorch_tcn")
    options = dict(kernel_size=3, dropout=0.0, causal=True, use_norm="weight_norm")
    options.update(kwargs)
    return tcn.TCN(4, [8, 8], **options)


# ------------------------------------------------------------------------------------------------- openunmix


class Unmix(nn.Module):
    """Open-Unmix on a magnitude spectrogram ``[batch, bins, frames]`` (one audio channel)."""

    def __init__(self, unidirectional: bool) -> None:
        super().__init__()
        model = load("openunmix", "model")
        self.unmix = model.OpenUnmix(
            nb_bins=16, nb_channels=1, hidden_size=16, nb_layers=1, unidirectional=unidirectional
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.unmix(x.unsqueeze(1)).squeeze(1)


class UnmixSpectrogram(nn.Module):
    """Open-Unmix's front end: its STFT (torch.stft) and the magnitude of each bin."""

    def __init__(self) -> None:
        super().__init__()
        transforms = load("openunmix", "transforms")
        self.stft = transforms.TorchSTFT(n_fft=32, n_hop=8, center=False)
        self.norm = transforms.ComplexNorm(mono=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.stft(x))[:, 0]


# --------------------------------------------------------------------------------------------------- diffsptk


def dsptk(name: str, *args, **kwargs) -> nn.Module:
    return getattr(load("diffsptk"), name)(*args, **kwargs)


class FramesLast(nn.Module):
    """A diffsptk module of a waveform ``[batch, time]`` giving ``[batch, frames, features]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x[:, 0]).transpose(1, 2)


# ------------------------------------------------------------------------------------- vector-quantize-pytorch


def vq(name: str, **kwargs) -> nn.Module:
    return getattr(load("vector_quantize_pytorch"), name)(**kwargs)


# -------------------------------------------------------------------------------------------------- speechbrain


def _speechbrain(module: str, name: str):
    return getattr(load("speechbrain", module, skip_init=True), name)


def sb_hifigan() -> nn.Module:
    return _speechbrain("lobes.models.HifiGAN", "HifiganGenerator")(
        in_channels=8,
        out_channels=1,
        resblock_type="1",
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
        resblock_kernel_sizes=[3, 5],
        upsample_kernel_sizes=[4, 4],
        upsample_initial_channel=32,
        upsample_factors=[2, 2],
    )


def sb_ecapa() -> nn.Module:
    ecapa = _speechbrain("lobes.models.ECAPA_TDNN", "ECAPA_TDNN")(
        8, lin_neurons=8, channels=[16, 16, 16, 16, 48], attention_channels=8, res2net_scale=2, se_channels=8
    )
    return ChannelsLast(ecapa)


def sb_xvector() -> nn.Module:
    xvector = _speechbrain("lobes.models.Xvector", "Xvector")(
        in_channels=8,
        tdnn_blocks=3,
        tdnn_channels=[16, 16, 16],
        tdnn_kernel_sizes=[5, 3, 1],
        tdnn_dilations=[1, 2, 1],
        lin_neurons=8,
    )
    return ChannelsLast(xvector)


# ------------------------------------------------------------------------------------------------- transformers


def _hf(name: str):
    return getattr(load("transformers"), name)


def speecht5_hifigan() -> nn.Module:
    config = _hf("SpeechT5HifiGanConfig")(
        model_in_dim=8,
        upsample_initial_channel=32,
        upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4],
        resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 3], [1, 3]],
    )
    model = _hf("SpeechT5HifiGan")(config)
    nn.init.normal_(model.mean)
    nn.init.uniform_(model.scale, 0.5, 1.5)
    return SpectrogramIn(model)


class SpectrogramIn(nn.Module):
    """A vocoder of ``[batch, frames, mels]`` giving ``[batch, samples]``, as ``[batch, channels, time]`` in and out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.transpose(1, 2)).unsqueeze(1)


class UnivNet(nn.Module):
    """UnivNet (location-variable convolutions): mel frames and noise given as input channels."""

    def __init__(self) -> None:
        super().__init__()
        config = _hf("UnivNetConfig")(
            model_in_channels=8,
            model_hidden_channels=8,
            num_mel_bins=8,
            resblock_kernel_sizes=[3, 3],
            resblock_stride_sizes=[2, 2],
            resblock_dilation_sizes=[[1, 3], [1, 3]],
            kernel_predictor_num_blocks=1,
            kernel_predictor_hidden_channels=8,
        )
        self.model = _hf("UnivNetModel")(config)

    def forward(self, x: Tensor) -> Tensor:
        mel, noise = x[:, :8].transpose(1, 2), x[:, 8:].transpose(1, 2)
        return self.model(mel, noise_sequence=noise, return_dict=False)[0].unsqueeze(1)


def dac(part: str) -> nn.Module:
    config = _hf("DacConfig")(
        encoder_hidden_size=4,
        downsampling_ratios=[2, 2],
        decoder_hidden_size=16,
        upsampling_ratios=[2, 2],
        hidden_size=16,
        codebook_dim=4,
        n_codebooks=2,
        codebook_size=16,
        hop_length=4,
    )
    return getattr(_hf("DacModel")(config), part)


def mimi(part: str) -> nn.Module:
    config = _hf("MimiConfig")(
        hidden_size=16,
        num_filters=4,
        upsampling_ratios=[2, 2],
        codebook_size=16,
        codebook_dim=16,
        num_quantizers=2,
        num_hidden_layers=1,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=16,
        vector_quantization_hidden_dimension=16,
        upsample_groups=16,
    )
    if part == "encoder":
        return load("transformers", "models.mimi.modeling_mimi").MimiEncoder(config)
    return MimiTransformer(load("transformers", "models.mimi.modeling_mimi").MimiTransformerModel(config))


class MimiTransformer(nn.Module):
    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, x: Tensor) -> Tensor:
        return self.transformer(x.transpose(1, 2), return_dict=False)[0].transpose(1, 2)


def wav2vec2_features(norm: str) -> nn.Module:
    config = _hf("Wav2Vec2Config")(
        feat_extract_norm=norm,
        conv_dim=[8, 8, 8],
        conv_stride=[5, 2, 2],
        conv_kernel=[10, 3, 3],
        num_feat_extract_layers=3,
    )
    return Waveform(_hf("Wav2Vec2Model")(config).feature_extractor)
