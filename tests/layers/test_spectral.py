"""STFT and ISTFT streamed exactly, and FFTs local to a frame or over channels (pointwise in time).

Float64, random settings (hypothesis), random buffer schedules, streams of several input delays (late
streams start with garbage): to 1e-10 against ``torch.stft`` / ``torch.istft`` themselves, the comparison
one frame off failing by far. ``pad_mode='reflect'`` differs only in the frames that read the left pad.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from time_axis_checks import assert_scripted_streams_as_eager, assert_stream_matches, schedule, stream_signal
from torch import nn

from helpers import assert_streams_exactly
from streamify.layers import (
    ISTFT,
    STFT,
    AvgPool1d,
    Conv1d,
    Frame,
    OverlapAddFrames,
    Pad,
    Pointwise,
    Sequential,
    StreamingError,
)
from streamify.runtime.state import get_state, set_state

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _signal(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _spectrum(shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(shape, generator=generator, dtype=torch.float64)
    return torch.complex(real, torch.randn(shape, generator=generator, dtype=torch.float64))


def _window(kind: str, length: int, seed: int) -> torch.Tensor:
    if kind == "hann":
        return torch.hann_window(length, dtype=torch.float64)
    return 0.2 + torch.rand(length, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


spectral_settings = st.fixed_dictionaries(
    {
        "n_fft": st.integers(2, 32),
        "hop": st.floats(0.05, 1.0),
        "win": st.floats(0.3, 1.0),
        "window": st.sampled_from(["hann", "random"]),
        "center": st.sampled_from([True, True, True, False]),  # uncentered: torch.istft refuses most windows
        "normalized": st.booleans(),
        "onesided": st.booleans(),
    }
)


def _shape(s):
    """n_fft, hop, win_length from hypothesis' fractions."""
    n_fft = s["n_fft"]
    win_length = max(1, round(s["win"] * n_fft))
    return n_fft, max(1, round(s["hop"] * win_length)), win_length


# ---------------------------------------------------------------- STFT


@SETTINGS
@given(
    s=spectral_settings,
    pad_mode=st.sampled_from(["constant", "reflect"]),
    input_delay=st.integers(0, 6),
    seed=st.integers(0, 10**6),
)
def test_stft_streams_torch_stft_exactly(s, pad_mode, input_delay, seed):
    n_fft, hop, win_length = _shape(s)
    window = _window(s["window"], win_length, seed)
    kwargs = dict(center=s["center"], normalized=s["normalized"], onesided=s["onesided"])
    stft = STFT(n_fft, hop, win_length, window, pad_mode=pad_mode, **kwargs).double()
    stft.configure(input_delay)
    frames = stft.delay + 12 + math.ceil(n_fft / hop)
    x = _signal([2, 3, frames * hop - input_delay % hop], seed)
    expected = torch.stft(
        x.reshape(6, -1), n_fft, hop, win_length, window, pad_mode=pad_mode, return_complex=True, **kwargs
    )
    assert torch.equal(stft.offline(x), expected.reshape(2, 3, *expected.shape[-2:]))
    warmup = math.ceil((n_fft // 2) / hop) if s["center"] and pad_mode == "reflect" else 0
    assert_stream_matches(stft, x, input_delay=input_delay, seed=seed, warmup=warmup)


def test_stft_as_captured_reflect_pad_then_uncentered_stft():
    """What torch.export records for torch.stft(center=True): aten.pad (reflect) then aten.stft without centering."""
    n_fft, hop = 16, 4
    window = torch.hann_window(n_fft, dtype=torch.float64)
    model = Sequential(Pad(n_fft // 2, n_fft // 2, "reflect"), STFT(n_fft, hop, window=window, center=False)).double()
    x = _signal([2, 1, 160])
    assert torch.equal(model.offline(x)[:, 0], torch.stft(x[:, 0], n_fft, hop, window=window, return_complex=True))
    assert model.delay == STFT(n_fft, hop, window=window).delay == 1
    assert_stream_matches(model, x, warmup=2)


# ---------------------------------------------------------------- ISTFT


@SETTINGS
@given(s=spectral_settings, input_delay=st.integers(0, 5), seed=st.integers(0, 10**6))
def test_istft_streams_torch_istft_exactly_or_refuses_as_torch(s, input_delay, seed):
    n_fft, hop, win_length = _shape(s)
    window = _window(s["window"], win_length, seed)
    kwargs = dict(center=s["center"], normalized=s["normalized"], onesided=s["onesided"])
    freqs = n_fft // 2 + 1 if s["onesided"] else n_fft
    spec = _spectrum([2, 3, freqs, 16 + math.ceil(n_fft / hop)], seed)
    try:
        istft = ISTFT(n_fft, hop, win_length, window, **kwargs).double()
    except StreamingError as error:
        event("refused as torch.istft refuses")
        reason = "window overlap add min" if "NOLA" in str(error) else "expected 0 < hop_length <= win_length"
        with pytest.raises(RuntimeError, match=reason):
            torch.istft(spec[0], n_fft, hop, win_length, window, **kwargs)
        return
    event("streamed")
    expected = torch.istft(spec.reshape(6, freqs, -1), n_fft, hop, win_length, window, **kwargs)
    assert torch.allclose(istft.offline(spec), expected.reshape(2, 3, -1), rtol=0, atol=1e-13)
    assert_stream_matches(istft, spec, input_delay=input_delay, seed=seed, min_compared=8)
    assert istft.delay == input_delay * hop + (n_fft // 2 if s["center"] else 0)


@pytest.mark.parametrize("pad_mode, warmup", [("constant", 0), ("reflect", 16)])
def test_stft_then_istft_rebuild_the_signal(pad_mode, warmup):
    """Analysis then synthesis streamed one after the other: the input again, ``delay`` samples late."""
    window = torch.hann_window(32, dtype=torch.float64)
    model = Sequential(STFT(32, 8, window=window, pad_mode=pad_mode), ISTFT(32, 8, window=window)).double()
    assert (model.ratio, model.buffer_multiple, model.delay) == (
        1,
        8,
        1 * 8 + 16,
    )  # STFT 1 frame late, ISTFT adds n_fft // 2
    x = _signal([2, 1, 400])
    comparison = assert_stream_matches(model, x, warmup=warmup, min_compared=300)
    assert torch.allclose(model.offline(x), x, atol=1e-12)
    assert comparison.max_abs_error < 1e-12


def test_stft_then_istft_in_float32_is_as_close_as_float32_rounding():
    window = torch.hann_window(64)
    model = Sequential(STFT(64, 16, window=window, pad_mode="constant"), ISTFT(64, 16, window=window))
    assert_streams_exactly(model, 1, frames=1024, dtype=torch.float32)


def test_istft_state_snapshot_and_item_reset():
    window = torch.hann_window(16, dtype=torch.float64)
    istft = ISTFT(16, 4, window=window).double()
    spec = _spectrum([2, 1, 9, 24])
    whole = stream_signal(istft, spec, [5, 3, 8, 8])
    istft.reset()
    first = stream_signal(istft, spec[..., :8], [5, 3])
    snapshot = get_state(istft)
    assert snapshot["position"].tolist() == [32, 32] and snapshot["tail"].shape == (2, 1, 12)
    stream_signal(istft, spec[..., 8:], [8, 8])
    set_state(istft, snapshot)
    assert torch.equal(torch.cat([first, stream_signal(istft, spec[..., 8:], [8, 8])], -1), whole)
    istft.reset()
    stream_signal(istft, spec[..., :8], [8])
    istft.reset([0])  # item 0 starts afresh: its envelope restarts with its position
    y = istft(spec[..., 8:])
    assert torch.equal(y[0], ISTFT(16, 4, window=window).double()(spec[:1, ..., 8:])[0])
    assert torch.allclose(y[1], whole[1, :, 32:], rtol=0, atol=1e-12)


def test_explicit_steps_equal_the_stateful_stream():
    """streamify.step from initial_state (the ONNX path: masks and the ISTFT's position as tensors)."""
    import streamify

    window = torch.hann_window(16, dtype=torch.float64)
    model = Sequential(Conv1d(1, 1, 3, padding=1), STFT(16, 4, window=window), ISTFT(16, 4, window=window)).double()
    x = _signal([2, 1, 96])
    sizes = schedule(96, model.buffer_multiple, seed=5)
    expected = stream_signal(model, x, sizes)
    state = streamify.initial_state(model, batch=2)
    outputs, start = [], 0
    for size in sizes:
        y, state = streamify.step(model, x[..., start : start + size], state)
        outputs.append(y)
        start += size
    assert torch.equal(torch.cat(outputs, -1), expected)


@pytest.mark.parametrize("center", [True, False])
def test_spectral_layers_script_and_stream_as_eager(center):
    window = torch.hann_window(12, dtype=torch.float64)
    stft = STFT(16, 4, 12, window, center=center, pad_mode="constant").double()
    assert_scripted_streams_as_eager(stft, _signal([3, 2, 62]), input_delay=2)
    istft = ISTFT(16, 4, 12, window, center=True).double()
    assert_scripted_streams_as_eager(istft, _spectrum([3, 2, 9, 14]), input_delay=2)


def test_spectral_refusals_say_what_and_why():
    with pytest.raises(StreamingError, match="NOLA"):
        ISTFT(8, 8, window=torch.hann_window(8))  # no overlap: the envelope is 0 at every frame start
    istft = ISTFT(8, 2, window=torch.hann_window(8, dtype=torch.float64)).double()
    with pytest.raises(StreamingError, match="expected dtype torch.complex128, got torch.float64"):
        istft(torch.zeros(1, 1, 5, 4, dtype=torch.float64))
    stft = STFT(8, 2).double()
    with pytest.raises(StreamingError, match="expected dtype torch.float64, got torch.complex128"):
        stft(torch.zeros(1, 1, 4, dtype=torch.complex128))
    with pytest.raises(StreamingError, match="pad_mode 'wrap'"):
        STFT(8, 2, pad_mode="wrap")
    with pytest.raises(StreamingError, match="win_length must be in"):
        STFT(8, 2, win_length=9)


# ---------------------------------------------------------------- FFTs within frames: nothing special


class FilterFrames(nn.Module):
    """Filters each frame ``[..., size, time]`` by a fixed FIR through rfft / irfft along the frame axis."""

    def __init__(self, size: int, taps: torch.Tensor) -> None:
        super().__init__()
        self.n = size + taps.numel() - 1
        self.register_buffer("response", torch.fft.rfft(taps, n=self.n).unsqueeze(-1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(frames, n=self.n, dim=-2) * self.response
        return torch.fft.irfft(spectrum, n=self.n, dim=-2)


class ChannelSpectrum(nn.Module):
    """Magnitude of the FFT over the channel axis of ``[batch, channels, time]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft(x, dim=1).abs()


def test_fft_within_frames_is_pointwise_in_time():
    """Frame, FFT filtering per block (overlap-add FFT convolution): the frame-local FFT needs no rule."""
    taps = _signal([5], seed=4)
    size, step = 8, 8
    model = Sequential(
        Frame(size, step), Pointwise(FilterFrames(size, taps)), OverlapAddFrames(size + 4, step)
    ).double()
    x = _signal([2, 2, 256])
    assert_stream_matches(model, x, min_compared=100)
    # offline it is the FIR over the whole signal, to rounding
    fir = torch.nn.functional.conv1d(x.reshape(4, 1, -1), taps.flip(0).view(1, 1, -1), padding=4)
    assert torch.allclose(model.offline(x).reshape(4, -1)[..., : 256 - 8], fir[:, 0, : 256 - 8], atol=1e-12)


def test_fft_over_channels_is_pointwise_in_time():
    model = Sequential(Conv1d(1, 8, 3, padding=1), Pointwise(ChannelSpectrum()), AvgPool1d(3, 1, padding=1)).double()
    x = _signal([2, 1, 64])
    assert_stream_matches(model, x, sizes=schedule(64, 1, seed=2), min_compared=40)
