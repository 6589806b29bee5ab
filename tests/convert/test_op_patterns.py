"""The patterns of issue 20 that the fx tracer refused though they stream, converted by the op-level capture
(streamed == offline in float64, exact from the first frame, one frame off fails), or refused naming their
true cause. Each model is small: the whole file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_streams_exactly
from streamify import StreamingError
from streamify.convert import convert
from streamify.exactness import compare_streamed, stream_signal

TOL = 1e-10


def _stream(model: nn.Module, channels: int = 2, frames: int = 64, warmup: int = 0):
    model = model.double().eval()
    example = torch.randn(1, channels, frames, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    stream = convert(model, example)
    assert stream.capture == "aten", "converted at the op level"
    comparison = assert_streams_exactly(stream, channels, frames=8 * frames, warmup=warmup)
    assert comparison.max_abs_error <= TOL
    return stream


# 1. in-place ops on a conv's output
class InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.act(self.conv(x))
        y[:, :2] = torch.softmax(y[:, :2], 1)
        y[:, 0] /= np.sqrt(8)
        return y


def test_1_in_place_ops_on_a_conv_output():
    assert _stream(InPlace()).delay == 1


# 2. new-style weight norm on a conv subclass with its own forward
class PaddedConv(nn.Conv1d):
    def forward(self, x):
        return super().forward(F.pad(x, (2, 0)))


def test_2_parametrized_weight_norm_on_a_conv_subclass():
    conv = nn.utils.parametrizations.weight_norm(PaddedConv(2, 4, 3))
    assert _stream(nn.Sequential(conv, nn.Tanh())).delay == 0


# 3. a module built inside forward
class BuiltPerCall(nn.Module):
    def forward(self, x):
        x = nn.ReflectionPad1d(2)(x)
        conv = nn.Conv1d(2, 3, 5, dtype=x.dtype)
        with torch.no_grad():
            conv.weight.copy_(torch.linspace(-1, 1, 30, dtype=torch.float64).view(3, 2, 5))
            conv.bias.zero_()
        return conv(x)


def test_3_modules_built_in_forward():
    # reflect padding: only the first frames differ from offline in a stream (the warm-up)
    stream = _stream(BuiltPerCall(), warmup=4)
    assert stream.delay == 2


# 4. matmul with the constant on the left contracts channels (a filterbank)
class Filterbank(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fb", torch.randn(5, 2))

    def forward(self, x):
        return torch.log1p(torch.matmul(self.fb, x).abs())


def test_4_matmul_with_a_constant_on_the_left():
    assert _stream(Filterbank()).delay == 0


def test_4_matmul_over_time_is_refused():
    class OverTime(nn.Module):
        def forward(self, x):
            return torch.matmul(x, torch.ones(64, 64, dtype=x.dtype))

    with pytest.raises(StreamingError, match=r"matmul at .*test_op_patterns.py.* over the time axis"):
        convert(OverTime(), torch.randn(1, 2, 64))


# 5. FFT over an axis that is not time
class ChannelFFT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 3, padding=1)

    def forward(self, x):
        spectrum = torch.fft.rfft(self.conv(x), dim=1)
        return torch.cat([spectrum.real, spectrum.imag], 1)


def test_5_fft_over_channels():
    assert _stream(ChannelFFT()).delay == 1


def test_5_fft_over_time_is_refused_for_that():
    class TimeFFT(nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x, dim=-1).abs()

    with pytest.raises(StreamingError, match=r"FFT over the time axis"):
        convert(TimeFFT(), torch.randn(1, 2, 64))


# 6. 2-D convs over [B, 1, C, T] with (k, 1) / (1, k) kernels and nearest stretch along time
class Vocoder2d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.along_time = nn.Conv2d(1, 2, (1, 3), padding=(0, 1))
        self.along_freq = nn.Conv2d(2, 1, (3, 1), padding=(1, 0))
        self.stretch = nn.Upsample(scale_factor=(1, 2), mode="nearest")

    def forward(self, x):
        y = self.along_freq(torch.relu(self.along_time(x.unsqueeze(1))))
        return self.stretch(y).squeeze(1)


def test_6_two_d_convs_with_time_last():
    stream = _stream(Vocoder2d(), channels=4)
    assert stream.ratio == pytest.approx(0.5)


def test_6_a_kernel_over_both_axes_is_refused():
    conv = nn.Conv2d(1, 1, 3, padding=1)

    class Both(nn.Module):
        def forward(self, x):
            return conv(x.unsqueeze(1)).squeeze(1)

    with pytest.raises(StreamingError, match=r"2-D window over time and another axis"):
        convert(Both(), torch.randn(1, 4, 64))


# 7. time folded into channels and back (a pixel shuffle pair), time the slow index
class PixelShuffle(nn.Module):
    def __init__(self, m: int = 4) -> None:
        super().__init__()
        self.m = m
        self.conv = nn.Conv1d(2 * m, 2 * m, 3, padding=1)

    def forward(self, x):
        b, c, t = x.shape
        y = x.reshape(b, c, t // self.m, self.m).permute(0, 1, 3, 2).reshape(b, c * self.m, t // self.m)
        y = self.conv(y)
        y = y.reshape(b, c, self.m, t // self.m).permute(0, 1, 3, 2).reshape(b, c, t)
        return y


def test_7_time_folded_into_channels_and_back():
    stream = _stream(PixelShuffle())
    assert stream.buffer_multiple == 4 and stream.delay == 4  # one folded frame: 4 samples


def test_7_a_fold_after_an_odd_delay_is_put_in_phase():
    model = nn.Sequential(nn.Conv1d(2, 2, 4, padding=(1)), nn.ConstantPad1d((0, 1), 0.0), PixelShuffle(4))
    _stream(model)


def test_7_time_as_the_fast_index_is_refused():
    class Interleave(nn.Module):
        def forward(self, x):
            b, c, t = x.shape
            return x.reshape(b, c, 2, t // 2).transpose(2, 3).reshape(b, c, t)

    with pytest.raises(StreamingError, match=r"fast index"):
        convert(Interleave(), torch.randn(1, 2, 64))


# 8. a constant stretched to the signal's length
class Conditioned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Parameter(torch.randn(1, 3, 1))
        self.conv = nn.Conv1d(5, 2, 3, padding=1)

    def forward(self, x):
        cond = self.emb.repeat(x.shape[0], 1, x.shape[-1])
        return self.conv(torch.cat([x, cond], 1)) + cond[:, :2]


def test_8_a_constant_stretched_to_the_length():
    _stream(Conditioned())


# 9. Python around the ops: finfo, numpy scalars, stack of chunks
class PythonAround(nn.Module):
    def forward(self, x):
        eps = torch.finfo(x.dtype).eps
        y = x / np.float64(2) + eps
        return torch.stack(torch.chunk(y, 2, dim=-2), dim=-1).flatten(-2)[:, :, ::1].reshape(x.shape[0], 1, -1)


def test_9_python_around_the_ops():
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3, padding=1)
            self.pa = PythonAround()

        def forward(self, x):
            return self.pa(self.conv(x))

    stream = _stream(Model())
    assert stream.ratio == pytest.approx(0.5)  # two channels interleaved into one: twice the frames


# random ops: a noise synthesizer's draws sized from the signal, and posterior sampling
class NoisySynth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)

    def forward(self, x):
        b, _, t = x.shape
        mean, scale = self.conv(x).chunk(2, 1)
        z = torch.randn_like(mean) * F.softplus(scale) + mean  # posterior sampling
        noise = torch.rand(b, 1, t, dtype=x.dtype) * 2 - 1  # noise at the signal's length
        return z + 0.1 * noise


def test_random_ops_stream_real_draws_and_are_verified_with_zeros():
    from streamify.convert.draws import ZeroDraws

    model = NoisySynth().double().eval()
    stream = convert(model, torch.randn(1, 2, 64, dtype=torch.float64))
    assert stream.capture == "aten" and stream.random_kept and stream.delay == 1
    x = torch.randn(2, 2, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stream.reset()
    with ZeroDraws():  # the structure around the draws: exact, and one frame off fails
        offline = model(x)
        streamed = stream_signal(stream, x, [32, 64, 96, 64])
    assert compare_streamed(streamed, offline, stream.delay).max_abs_error <= TOL
    assert compare_streamed(streamed, offline, stream.delay + 1).max_abs_error > 1e-3
    x = x[:1, :, :32]
    stream.reset()
    first = stream(x)
    stream.reset()
    assert not torch.equal(first, stream(x)), "streamed with real draws, new for each buffer"


def test_register_an_op_rule_and_a_refusal():
    """streamify.register takes aten ops as well as module classes: a refusal for an op, then removed."""
    import streamify
    from streamify.convert.rules import unregister_op

    class Tanh(nn.Module):
        def forward(self, x):
            return torch.tanh(x)

    streamify.register(torch.ops.aten.tanh, refusal="saturates; use a clip")
    try:
        with pytest.raises(
            StreamingError, match=r"aten.tanh in the model at .*test_op_patterns.py.*saturates; use a clip"
        ):
            convert(Tanh(), torch.randn(1, 2, 32), capture="ops")
    finally:
        unregister_op(torch.ops.aten.tanh)
    assert convert(Tanh(), torch.randn(1, 2, 32), capture="ops").delay == 0


def test_decimation_by_a_strided_slice():
    """``x[..., 1::3]`` after an odd-delay conv: every third frame, in phase with offline."""

    class Decimate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 4, padding=2)

        def forward(self, x):
            return self.conv(x)[..., 1::3]

    stream = _stream(Decimate(), frames=66)
    assert stream.ratio == 3 and stream.buffer_multiple == 3
