"""float32 judged by its own rounding (issue 20, pattern 10).

A deep model whose float32 offline output is itself 2e-4 to 4e-4 off its float64 output streams exactly in
float32 (its stream is as far from offline as rounding makes it): conversion accepts it. The float64
check still proves the structure, so a planted off-by-one is refused; and a layer that loses precision
only in float32 is refused with a message about precision, never "a bug of streamify".
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import streamify
from helpers import assert_streams_exactly, make_signal
from streamify import StreamingError
from streamify.exactness import compare_streamed, rounding_bar, stream_signal
from streamify.layers import Conv1d
from streamify.layers.torch_layers import unregister
from streamify.runtime.state import reset


class ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: dilated 'same' convs in residual pairs, leaky ReLU before each."""

    def __init__(self, channels: int, kernel: int, dilations=(1, 3, 5)) -> None:
        super().__init__()
        pad = [d * (kernel - 1) // 2 for d in dilations]
        self.dilated = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=p) for d, p in zip(dilations, pad)
        )
        self.plain = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for a, b in zip(self.dilated, self.plain):
            x = x + b(F.leaky_relu(a(F.leaky_relu(x, 0.1)), 0.1))
        return x


class Smoother(nn.Module):
    """A user layer (F.conv1d, 5 taps) that the tests teach the converter with a planted defect."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 5, padding=2)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.conv.weight, self.conv.bias, padding=2)


class HiFiGANLike(nn.Module):
    """HiFi-GAN V1's generator, scaled down (3 upsamplings by 2, ResBlock1 of kernels 3, 7, 11), weights x ``gain``.

    With ``gain`` 3.2 its activations grow by two orders of magnitude before the final tanh: the samples that
    tanh does not saturate (2 % of them) are small differences of large sums, and its float32 output is 2e-4 to
    4e-4 off its float64 output (rounding, not a defect: 20 to 40 times float32's bar of 1e-5 of the peak). ``smoother``: a :class:`Smoother` after the
    input conv. Shape: ``[batch, 8, frames]`` (mel frames) -> ``[batch, 1, 8 * frames]``.
    """

    def __init__(self, gain: float = 3.2, smoother: bool = False, channels: int = 32) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.pre = nn.Conv1d(8, channels, 7, padding=3)
            self.smoother = Smoother(channels) if smoother else nn.Identity()
            self.ups, self.blocks = nn.ModuleList(), nn.ModuleList()
            for i in range(3):
                self.ups.append(nn.ConvTranspose1d(channels >> i, channels >> (i + 1), 4, stride=2, padding=1))
                self.blocks.append(nn.ModuleList(ResBlock(channels >> (i + 1), k) for k in (3, 7, 11)))
            self.post = nn.Conv1d(channels >> 3, 1, 7, padding=3)
            with torch.no_grad():
                for parameter in self.parameters():
                    if parameter.dim() > 1:
                        parameter.mul_(gain)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = self.smoother(self.pre(x))
        for up, blocks in zip(self.ups, self.blocks):
            x = up(F.leaky_relu(x, 0.1))
            x = sum(block(x) for block in blocks) / len(blocks)
        return torch.tanh(self.post(F.leaky_relu(x)))


def _own_error(model: nn.Module, x: Tensor) -> float:
    """How far the model's float32 offline output is from its float64 output on ``x``."""
    with torch.no_grad():
        return (model(x).double() - copy.deepcopy(model).double()(x.double())).abs().max().item()


@pytest.fixture
def registered():
    added = []

    def add(cls, handler):
        streamify.register(cls, handler)
        added.append(cls)

    yield add
    for cls in added:
        unregister(cls)


def test_a_deep_float32_model_converts_and_is_judged_by_its_own_rounding():
    model = HiFiGANLike()
    x = make_signal(1, 8, 128, seed=3, dtype=torch.float32)
    own = _own_error(model, x)
    assert 1e-4 < own < 5e-2, own  # far beyond float32's 1e-5 of the peak: the model's own rounding
    stream = streamify.convert(model, make_signal(1, 8, 64, seed=1, dtype=torch.float32))
    # in float32, the stream is as close to offline as the model's own rounding allows, and one frame off is not
    reset(stream)
    streamed = stream_signal(stream, x, [8] * 16)
    with torch.no_grad():
        offline = model(x)
    exact = compare_streamed(streamed, offline, stream.delay)
    assert exact.compared_frames > 100
    assert exact.max_abs_error <= rounding_bar(own, exact.offline_scale)
    for wrong in (stream.delay - 1, stream.delay + 1):
        shifted = compare_streamed(streamed, offline, wrong, warmup=1, edge=1)
        assert shifted.max_abs_error > 10 * rounding_bar(own, shifted.offline_scale), wrong
    # its structure, in float64: exact to 1e-10, an off-by-one delay seen
    stream64 = streamify.convert(copy.deepcopy(model).double(), make_signal(1, 8, 64, seed=1))
    assert stream64.delay == stream.delay
    assert_streams_exactly(stream64, 8, frames=96)


def test_the_same_model_with_a_planted_off_by_one_is_refused(registered):
    class Misreported(Conv1d):
        """A streaming conv that reports one frame of delay more than it has."""

        def _configure(self) -> None:
            super()._configure()
            self.delay += 1

    registered(Smoother, lambda m: Misreported.from_torch(m.conv))
    with pytest.raises(StreamingError) as info:
        streamify.convert(HiFiGANLike(smoother=True), make_signal(1, 8, 64, seed=1, dtype=torch.float32))
    message = str(info.value)
    assert "verification failed" in message and "torch.float64" in message, message
    assert "smoother" in message and "Misreported" in message, message  # the planted layer, by name
    assert "own rounding" not in message  # not taken for rounding


def test_a_layer_that_loses_precision_in_float32_is_refused_without_blaming_streamify(registered):
    class Lossy(Conv1d):
        """A streaming conv whose float32 stream rounds through bfloat16 (its float64 stream is exact)."""

        def stream(self, x: Tensor) -> Tensor:
            y = super().stream(x)
            return y.to(torch.bfloat16).to(y.dtype) if y.dtype == torch.float32 else y

    registered(Smoother, lambda m: Lossy.from_torch(m.conv))
    model = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), Smoother(4), nn.Conv1d(4, 2, 3, padding=1))
    with pytest.raises(StreamingError) as info:
        streamify.convert(model, make_signal(1, 2, 64, seed=1, dtype=torch.float32))
    message = str(info.value)
    assert "float64 copy streams exactly" in message and "loses precision" in message, message
    assert "2:Lossy" in message, message  # the layer beyond its own rounding
    assert "bug of streamify" not in message
    # the same layers in float64 convert and stream exactly: the structure was right
    stream = streamify.convert(model.double(), make_signal(1, 2, 64, seed=1))
    assert_streams_exactly(stream, 2, frames=128)
