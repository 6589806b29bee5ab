"""The demo autoencoder: a small convolutional autoencoder built only from streamify layers.

Its shapes are those of real neural audio codecs, scaled down: an encoder of
``'same'``-padded convolutions, residual units of dilated convolutions and strided
downsampling convolutions (total ratio 8), a latent bottleneck, and a decoder of
transposed convolutions (kernel ``2 * stride``, padding ``stride // 2``) and a nearest
upsampler. Weights are random but deterministic (seeded), so the demo, the tests
and the docs all see the same model. It is not trained: what it shows is that the
streamed output equals the offline output, delayed by the reported latency.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from streamify.layers import Conv1d, ConvTranspose1d, NearestUpsample, Residual, Sequential

#: strides of the encoder's downsampling convolutions (total ratio 8)
DEMO_STRIDES = (2, 4)


def residual_unit(channels: int, dilation: int) -> Residual:
    """``x + conv1x1(elu(conv3_dilated(elu(x))))``: a SEANet/RAVE-style residual unit."""
    return Residual(
        Sequential(
            nn.ELU(),
            Conv1d(channels, channels, 3, dilation=dilation, padding="same"),
            nn.ELU(),
            Conv1d(channels, channels, 1),
        )
    )


def _encoder(channels: int, width: int, latent: int, strides: Sequence[int]) -> List[nn.Module]:
    layers: List[nn.Module] = [Conv1d(channels, width, 7, padding="same")]
    for stride in strides:
        layers += [residual_unit(width, 1), residual_unit(width, 3), nn.ELU()]
        layers.append(Conv1d(width, 2 * width, 2 * stride, stride=stride, padding=stride // 2))
        width *= 2
    layers += [nn.ELU(), Conv1d(width, latent, 3, padding="same")]
    return layers


def _decoder(channels: int, width: int, latent: int, strides: Sequence[int]) -> List[nn.Module]:
    # width: the encoder's widest width; the decoder mirrors the encoder
    first, *rest = list(reversed(strides))
    layers: List[nn.Module] = [Conv1d(latent, width, 7, padding="same"), nn.ELU()]
    # the first (largest) upsampling: a transposed conv
    layers.append(ConvTranspose1d(width, width // 2, 2 * first, stride=first, padding=first // 2))
    width //= 2
    layers += [residual_unit(width, 1), residual_unit(width, 3), nn.ELU()]
    # the remaining upsamplings: nearest upsampler then a 'same' conv
    for stride in rest:
        layers += [NearestUpsample(stride), Conv1d(width, width // 2, 2 * stride + 1, padding="same")]
        width //= 2
        layers += [residual_unit(width, 1), nn.ELU()]
    layers += [Conv1d(width, channels, 7, padding="same"), nn.Tanh()]
    return layers


def build_demo_autoencoder(channels: int = 1, seed: int = 0, width: int = 8, latent: int = 8) -> Sequential:
    """The demo autoencoder (encoder then decoder) with deterministic random weights.

    Args:
        channels: audio channels in and out.
        seed: seed of the weights; the global random state is left untouched.
        width: channels of the first encoder layer (doubled at each downsampling).
        latent: channels of the latent bottleneck.

    Returns:
        A float32 :class:`streamify.layers.Sequential` at ratio 1 (audio in, audio out);
        ``.to(torch.float64)`` for exact comparisons.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = _encoder(channels, width, latent, DEMO_STRIDES)
        widest = width * 2 ** len(DEMO_STRIDES)
        decoder = _decoder(channels, widest, latent, DEMO_STRIDES)
        model = Sequential(*encoder, *decoder)
    return model.eval()


def demo_signal(
    seconds: float = 2.0,
    sample_rate: int = 16000,
    channels: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    length: int = -1,
) -> torch.Tensor:
    """A seeded test signal ``[1, channels, length]``: three sines (220, 660 and 3000 Hz) and white noise.

    ``length`` (samples) overrides ``seconds``; the peak stays below 1.
    """
    n = int(round(seconds * sample_rate)) if length < 0 else length
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    signal = torch.zeros(channels, n, dtype=torch.float64)
    for c in range(channels):
        phase = 2 * torch.pi * torch.rand(3, generator=generator, dtype=torch.float64)
        signal[c] += 0.4 * torch.sin(2 * torch.pi * 220.0 * t + phase[0])
        signal[c] += 0.25 * torch.sin(2 * torch.pi * 660.0 * t + phase[1])
        signal[c] += 0.1 * torch.sin(2 * torch.pi * 3000.0 * t + phase[2])
        signal[c] += 0.05 * torch.randn(n, generator=generator, dtype=torch.float64)
    return signal.unsqueeze(0).to(dtype)
