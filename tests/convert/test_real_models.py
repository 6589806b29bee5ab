"""Conversion of published audio models (random weights, float64, and float32 at 1e-5 relative): encodec, snac, moshi.

Issue "Automatic conversion", the bar, items 1-3: the converted model streamed in
irregular buffers equals the unmodified model's offline output shifted by the reported
delay, max abs error <= 1e-10. Zero-padded models are exact from the first frame
(warm-up 0); with reflect padding only the start of a stream differs, and the
comparison starts after a warm-up (see the encodec reflect tests for how it was chosen).
Each test also checks that enough frames were compared and that the comparison one
frame off fails (helpers.assert_streams_exactly).

The packages come from the ``convert`` extra (installed with ``--no-deps``); the model
modules are imported without the packages' heavy ``__init__`` (see conftest.py).
"""

from __future__ import annotations

import importlib.util
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import assert_streams_exactly, irregular_sizes, make_signal
from streamify import StreamingError
from streamify.convert import convert
from streamify.exactness import compare_streamed, stream_signal
from streamify.runtime.state import reset

TOL = 1e-10


@pytest.fixture(autouse=True)
def _quiet_and_seeded():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
        yield


def _convert(model: nn.Module, channels: int, frames: int, **kwargs):
    """Convert ``model.double()`` with a random example of ``frames`` frames."""
    model = model.double().eval()
    example = make_signal(1, channels, frames, seed=1)
    return model, convert(model, example, **kwargs)


def _assert_offline_is_the_original(stream, model: nn.Module, channels: int, frames: int) -> None:
    """The stream's reference (a private copy, weight norms folded) computes what the user's model computes."""
    x = make_signal(2, channels, frames, seed=5)
    with torch.no_grad():
        error = (stream.offline(x) - model(x)).abs().max().item()
    assert error <= 1e-12, f"the converter's copy of the model differs from the model by {error:.3e}"


# ---------------------------------------------------------------------------- encodec

ENCODEC_CONFIG = dict(channels=1, dimension=8, n_filters=4, ratios=[4, 2], n_residual_layers=1)


@pytest.mark.parametrize("lstm", [1, 2])
def test_encodec_encoder_zero_padding_exact_from_first_frame(encodec_seanet, lstm):
    """SConv1d pads inside forward (constant mode), 1x1 shortcut convs, weight_norm hooks, an SLSTM."""
    model, stream = _convert(encodec_seanet.SEANetEncoder(**ENCODEC_CONFIG, lstm=lstm, pad_mode="constant"), 1, 512)
    assert stream.buffer_multiple == 8 and stream.ratio == 8
    assert stream.delay >= 0
    comparison = assert_streams_exactly(stream, 1, frames=2048, min_compared=200)
    assert comparison.max_abs_error <= TOL
    _assert_offline_is_the_original(stream, model, 1, 512)


@pytest.mark.parametrize("lstm", [1, 2])
def test_encodec_decoder_zero_padding_exact_from_first_frame(encodec_seanet, lstm):
    model, stream = _convert(encodec_seanet.SEANetDecoder(**ENCODEC_CONFIG, lstm=lstm, pad_mode="constant"), 8, 64)
    assert stream.buffer_multiple == 1 and stream.ratio == Fraction(1, 8)
    comparison = assert_streams_exactly(stream, 8, frames=256, min_compared=1500)
    assert comparison.max_abs_error <= TOL
    _assert_offline_is_the_original(stream, model, 8, 64)


def _start_error_profile(stream, channels: int, frames: int, seed: int = 3):
    """Streamed versus offline (shifted by the delay), max abs error per output frame, over a fresh stream."""
    x = make_signal(2, channels, frames, seed)
    sizes = irregular_sizes(frames, stream.buffer_multiple, seed)
    reset(stream)
    streamed = stream_signal(stream, x, sizes)
    with torch.no_grad():
        offline = stream.offline(x)
    n = min(offline.size(-1), streamed.size(-1) - stream.delay)
    return streamed, offline, (streamed[..., stream.delay : stream.delay + n] - offline[..., :n]).abs().amax((0, 1))


# Reflect padding: the stream cannot know the frames that reflection reads before the start,
# so its first frames differ; the SLSTM carries that difference in its state, where it decays
# geometrically instead of ending after a receptive field. Measured on these configurations
# (seeds 0-3, 1 and 2 LSTM layers): below 1e-10 after at most 46 latent frames (encoder output
# frames; 367 decoder output samples = 46 latent frames). The warm-ups below take about three
# times that, and the tests check both that the start does differ and that the rest is exact.
ENCODER_REFLECT_WARMUP = 128  # latent frames (encoder output)
DECODER_REFLECT_WARMUP = 128 * 8  # audio samples (decoder output)


@pytest.mark.parametrize("lstm", [1, 2])
def test_encodec_encoder_reflect_padding_exact_after_warmup(encodec_seanet, lstm):
    model, stream = _convert(encodec_seanet.SEANetEncoder(**ENCODEC_CONFIG, lstm=lstm), 1, 512)
    assert stream.receptive_field == -1  # the LSTM: no finite receptive field
    frames = 8 * (ENCODER_REFLECT_WARMUP + 400)
    streamed, offline, profile = _start_error_profile(stream, 1, frames)
    assert profile[:4].max() > 1e-6, "reflect padding must make the start of a stream differ (else test zero padding)"
    comparison = compare_streamed(streamed, offline, stream.delay, warmup=ENCODER_REFLECT_WARMUP)
    assert comparison.compared_frames >= 350
    assert comparison.max_abs_error <= TOL, comparison
    assert compare_streamed(streamed, offline, stream.delay + 1, warmup=ENCODER_REFLECT_WARMUP).max_abs_error > 1e-6
    _assert_offline_is_the_original(stream, model, 1, 512)


@pytest.mark.parametrize("lstm", [1, 2])
def test_encodec_decoder_reflect_padding_exact_after_warmup(encodec_seanet, lstm):
    model, stream = _convert(encodec_seanet.SEANetDecoder(**ENCODEC_CONFIG, lstm=lstm), 8, 64)
    frames = DECODER_REFLECT_WARMUP // 8 + 300
    streamed, offline, profile = _start_error_profile(stream, 8, frames)
    assert profile[:4].max() > 1e-6, "reflect padding must make the start of a stream differ"
    comparison = compare_streamed(streamed, offline, stream.delay, warmup=DECODER_REFLECT_WARMUP)
    assert comparison.compared_frames >= 2000
    assert comparison.max_abs_error <= TOL, comparison
    assert compare_streamed(streamed, offline, stream.delay + 1, warmup=DECODER_REFLECT_WARMUP).max_abs_error > 1e-6
    _assert_offline_is_the_original(stream, model, 8, 64)


@pytest.mark.slow
def test_encodec_default_width_reflect_encoder_decoder(encodec_seanet):
    """The published shape (24 kHz EnCodec: 32 filters, dimension 128, ratios 8-5-4-2 = hop 320, 2 LSTM layers, reflect).

    Measured: the start difference falls below 1e-10 after 41 latent frames (encoder) and
    10741 samples = 34 latent frames (decoder); the warm-up is 120 latent frames.
    """
    encoder, stream = _convert(encodec_seanet.SEANetEncoder(lstm=2), 1, 320 * 16)
    assert stream.buffer_multiple == 320 and stream.ratio == 320
    streamed, offline, profile = _start_error_profile(stream, 1, 320 * 300)
    comparison = compare_streamed(streamed, offline, stream.delay, warmup=120)
    assert comparison.compared_frames >= 150
    assert comparison.max_abs_error <= TOL, comparison
    decoder, stream = _convert(encodec_seanet.SEANetDecoder(lstm=2), 128, 16)
    assert stream.ratio == Fraction(1, 320)
    streamed, offline, profile = _start_error_profile(stream, 128, 300)
    comparison = compare_streamed(streamed, offline, stream.delay, warmup=120 * 320)
    assert comparison.compared_frames >= 150 * 320
    assert comparison.max_abs_error <= TOL, comparison


def test_encodec_converted_encoder_scripts(encodec_seanet):
    _, stream = _convert(encodec_seanet.SEANetEncoder(**ENCODEC_CONFIG, lstm=1, pad_mode="constant"), 1, 512)
    scripted = torch.jit.script(stream)
    x = make_signal(2, 1, 8 * 40, seed=2)
    sizes = irregular_sizes(x.size(-1), stream.buffer_multiple, 2)
    reset(stream)
    eager = stream_signal(stream, x, sizes)
    scripted.reset()
    assert torch.equal(stream_signal(scripted, x, sizes), eager)


# ---------------------------------------------------------------------------- snac


@pytest.mark.parametrize("depthwise", [True, False])
def test_snac_encoder_odd_strides_exact_from_first_frame(snac_layers, depthwise):
    """Strides 3 and 7 (kernel 2s, padding ceil(s/2)), depthwise residual convs, scripted Snake, parametrized weight norm."""
    model, stream = _convert(
        snac_layers.Encoder(d_model=4, strides=[3, 7], depthwise=depthwise, attn_window_size=None), 1, 21 * 24
    )
    assert stream.buffer_multiple == 21 and stream.ratio == 21
    comparison = assert_streams_exactly(stream, 1, frames=21 * 160, min_compared=100)
    assert comparison.max_abs_error <= TOL
    _assert_offline_is_the_original(stream, model, 1, 21 * 24)


@pytest.mark.parametrize("depthwise", [True, False])
def test_snac_decoder_output_padding_exact_from_first_frame(snac_layers, depthwise):
    """Transposed convs of stride 7 and 3 with output_padding 1, residual units that crop their skip by a shape difference."""
    model, stream = _convert(
        snac_layers.Decoder(32, 32, [7, 3], noise=False, depthwise=depthwise, attn_window_size=None), 32, 24
    )
    assert stream.buffer_multiple == 1 and stream.ratio == Fraction(1, 21)
    comparison = assert_streams_exactly(stream, 32, frames=120, min_compared=1500)
    assert comparison.max_abs_error <= TOL
    _assert_offline_is_the_original(stream, model, 32, 24)


@pytest.mark.parametrize("depthwise", [True, False])
def test_tuned_snac_decoder_and_encodec_encoder_stay_exact(snac_layers, encodec_seanet, depthwise):
    """streamify.tune picks products per conv and row count (depthwise convs: grouped); exactness holds."""
    import streamify

    _, decoder = _convert(
        snac_layers.Decoder(32, 32, [7, 3], noise=False, depthwise=depthwise, attn_window_size=None), 32, 24
    )
    report = streamify.tune(decoder, [4, 16], [1, 2], rounds=2)
    assert report.layers and any(row.chosen != "generic" for row in report.layers)
    assert assert_streams_exactly(decoder, 32, frames=120, min_compared=1500).max_abs_error <= TOL
    _, encoder = _convert(encodec_seanet.SEANetEncoder(**ENCODEC_CONFIG, lstm=1, pad_mode="constant"), 1, 512)
    streamify.tune(encoder, [64, 512], [1, 3], rounds=2)
    assert assert_streams_exactly(encoder, 1, frames=2048, min_compared=200, batch=3).max_abs_error <= TOL


def test_snac_encoder_decoder_round_trip_scripts(snac_layers):
    """The scripted Snake (a TorchScript function) survives in a scripted stream."""
    _, stream = _convert(snac_layers.Encoder(d_model=4, strides=[3, 7], attn_window_size=None), 1, 21 * 24)
    scripted = torch.jit.script(stream)
    x = make_signal(1, 1, 21 * 30, seed=4)
    sizes = irregular_sizes(x.size(-1), stream.buffer_multiple, 4)
    reset(stream)
    eager = stream_signal(stream, x, sizes)
    scripted.reset()
    assert torch.equal(stream_signal(scripted, x, sizes), eager)


def test_snac_noise_blocks_convert_and_are_verified_with_zero_draws(snac_layers):
    """The noise blocks draw randn at the signal's length: kept without allow_random, drawn per buffer,
    verified with the draws replaced by zeros (and exact then, one frame off failing)."""
    from streamify.convert.draws import ZeroDraws
    from streamify.exactness import compare_streamed, stream_signal

    model = snac_layers.Decoder(32, 32, [7, 3], noise=True, depthwise=True, attn_window_size=None).double()
    stream = convert(model, make_signal(1, 32, 24, seed=1))
    assert stream.random_kept
    x = make_signal(2, 32, 96, seed=2)
    stream.reset()
    with ZeroDraws():
        offline, streamed = model(x), stream_signal(stream, x, [24, 48, 24])
    assert compare_streamed(streamed, offline, stream.delay).max_abs_error <= TOL
    assert compare_streamed(streamed, offline, stream.delay + 1).max_abs_error > 1e-6


def test_snac_noise_blocks_allowed_stream_exactly_with_noise_weights_zeroed(snac_layers):
    """With allow_random the noise (drawn at each buffer's length) is kept; zeroing its gain makes the stream exact."""
    model = snac_layers.Decoder(32, 32, [7, 3], noise=True, depthwise=True, attn_window_size=None).double()
    for module in model.modules():
        if type(module).__name__ == "NoiseBlock":
            module.linear.parametrizations.weight.original0.data.zero_()  # weight-norm gain g = 0
    model, stream = _convert(model, 32, 24, allow_random=True)
    comparison = assert_streams_exactly(stream, 32, frames=120, min_compared=1500)
    assert comparison.max_abs_error <= TOL


def test_snac_local_attention_streams_window_by_window(snac_layers):
    """SNAC's local attention folds time into windows of 8 frames (rearrange "b (w n) c"), time the slow
    index, and attends within each window: the op-level capture streams it window by window (the buffer
    holds whole windows, a delay line puts them in phase with offline)."""
    model = snac_layers.Encoder(d_model=16, strides=[3, 7], attn_window_size=8).double()
    stream = convert(model, make_signal(1, 1, 21 * 64, seed=1))
    assert stream.buffer_multiple == 21 * 8
    assert assert_streams_exactly(stream, 1, frames=21 * 64 * 4).max_abs_error <= 1e-10


def test_global_attention_over_time_is_refused():
    class Attend(nn.Module):
        def forward(self, x):
            q = x.transpose(1, 2)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q).transpose(1, 2)

    with pytest.raises(StreamingError, match=r"reads the whole time axis \(attention\)") as info:
        convert(Attend(), make_signal(1, 2, 64, seed=1))
    assert "test_real_models.py" in str(info.value)


# ---------------------------------------------------------------------------- moshi

MOSHI_CONFIG = dict(channels=1, dimension=8, n_filters=4, ratios=[4, 2], causal=True, pad_mode="constant")


def _moshi_streaming(model, x: torch.Tensor, sizes) -> torch.Tensor:
    """moshi's own streaming: ``with model.streaming(batch)``, one call per buffer."""
    outputs, start = [], 0
    with torch.no_grad(), model.streaming(x.size(0)):
        for size in sizes:
            outputs.append(model(x[..., start : start + size]))
            start += size
    return torch.cat(outputs, -1)


@pytest.mark.parametrize("norm", ["none", "weight_norm"])
@pytest.mark.parametrize("true_skip", [False, True])
def test_moshi_encoder_exact_and_equal_to_moshi_streaming(moshi_seanet, norm, true_skip):
    """moshi's StreamingConv1d pads by concatenating zeros (torch.cat([state.previous, x])) and asserts T % stride."""
    model, stream = _convert(
        moshi_seanet.SEANetEncoder(**MOSHI_CONFIG, norm=norm, true_skip=true_skip, n_residual_layers=2), 1, 512
    )
    assert stream.delay == 0, "a causal model streams without delay"
    assert stream.buffer_multiple == 8 and stream.ratio == 8
    comparison = assert_streams_exactly(stream, 1, frames=8 * 200, min_compared=150)
    assert comparison.max_abs_error <= TOL
    _assert_offline_is_the_original(stream, model, 1, 512)
    x = make_signal(2, 1, 8 * 200, seed=7)
    sizes = irregular_sizes(x.size(-1), 8, 7)
    reset(stream)
    ours = stream_signal(stream, x, sizes)
    theirs = _moshi_streaming(model, x, sizes)
    assert ours.shape == theirs.shape and ours.size(-1) == 200
    assert (ours - theirs).abs().max().item() <= TOL


@pytest.mark.parametrize("norm", ["none", "weight_norm"])
def test_moshi_decoder_exact_and_equal_to_moshi_streaming(moshi_seanet, norm):
    """moshi's StreamingConvTranspose1d trims K - S samples at the right offline and carries them when streaming."""
    model, stream = _convert(
        moshi_seanet.SEANetDecoder(**MOSHI_CONFIG, norm=norm, true_skip=False, n_residual_layers=2), 8, 64
    )
    assert stream.delay == 0 and stream.buffer_multiple == 1 and stream.ratio == Fraction(1, 8)
    comparison = assert_streams_exactly(stream, 8, frames=256, min_compared=1500)
    assert comparison.max_abs_error <= TOL
    _assert_offline_is_the_original(stream, model, 8, 64)
    x = make_signal(2, 8, 256, seed=8)
    sizes = irregular_sizes(x.size(-1), 1, 8)
    reset(stream)
    ours = stream_signal(stream, x, sizes)
    theirs = _moshi_streaming(model, x, sizes)
    assert ours.shape == theirs.shape and ours.size(-1) == 256 * 8
    assert (ours - theirs).abs().max().item() <= TOL


def test_moshi_example_of_an_odd_number_of_hops_converts(moshi_seanet):
    """The converter also traces a probe twice as long (and one batch item more): moshi's
    ``assert T % stride == 0`` holds on it for any example moshi itself accepts."""
    model = moshi_seanet.SEANetEncoder(**MOSHI_CONFIG).double()
    stream = convert(model, make_signal(1, 1, 8 * 65, seed=1))
    comparison = assert_streams_exactly(stream, 1, frames=1024, min_compared=100)
    assert comparison.max_abs_error <= TOL


# ---------------------------------------------------------------------------- float32

#: max relative error (to the offline output's peak) of a float32 stream; the comparison one sample off must
#: exceed FLOAT32_SHIFT_BAR, so that the bar can tell an off-by-one delay
FLOAT32_REL_TOL = 1e-5
FLOAT32_SHIFT_BAR = 1e-3

FLOAT32_MODELS = {
    # fixture, builder, input channels, example length, signal length, min compared output frames
    "encodec-encoder": (
        "encodec_seanet",
        lambda m: m.SEANetEncoder(**ENCODEC_CONFIG, lstm=2, pad_mode="constant"),
        1,
        512,
        2048,
        200,
    ),
    "encodec-decoder": (
        "encodec_seanet",
        lambda m: m.SEANetDecoder(**ENCODEC_CONFIG, lstm=2, pad_mode="constant"),
        8,
        64,
        256,
        1500,
    ),
    "snac-encoder": (
        "snac_layers",
        lambda m: m.Encoder(d_model=4, strides=[3, 7], depthwise=True, attn_window_size=None),
        1,
        21 * 24,
        21 * 160,
        100,
    ),
    "snac-decoder": (
        "snac_layers",
        lambda m: m.Decoder(32, 32, [7, 3], noise=False, depthwise=True, attn_window_size=None),
        32,
        24,
        120,
        1500,
    ),
    "moshi-encoder": (
        "moshi_seanet",
        lambda m: m.SEANetEncoder(**MOSHI_CONFIG, norm="weight_norm", true_skip=False, n_residual_layers=2),
        1,
        512,
        8 * 200,
        150,
    ),
    "moshi-decoder": (
        "moshi_seanet",
        lambda m: m.SEANetDecoder(**MOSHI_CONFIG, norm="weight_norm", true_skip=False, n_residual_layers=2),
        8,
        64,
        256,
        1500,
    ),
}


@pytest.mark.parametrize("name", list(FLOAT32_MODELS))
def test_float32_streams_equal_the_float32_model_within_1e_5(request, name):
    """Converted and streamed in float32 (what hosts run), against the user's own float32 model offline."""
    fixture, build, channels, example_length, length, min_compared = FLOAT32_MODELS[name]
    model = build(request.getfixturevalue(fixture)).float().eval()
    stream = convert(model, make_signal(1, channels, example_length, seed=1, dtype=torch.float32))
    assert all(p.dtype == torch.float32 for p in stream.parameters())
    x = make_signal(2, channels, length, seed=5, dtype=torch.float32)
    reset(stream)
    streamed = stream_signal(stream, x, irregular_sizes(length, stream.buffer_multiple, 5))
    assert streamed.dtype == torch.float32
    with torch.no_grad():
        offline = model(x)
    comparison = compare_streamed(streamed, offline, stream.delay, warmup=0)
    assert comparison.compared_frames >= min_compared, comparison
    assert comparison.offline_scale > 0
    assert comparison.max_rel_error <= FLOAT32_REL_TOL, comparison
    # one sample off fails by far: the bar can see an off-by-one delay in float32 too
    for wrong in (stream.delay - 1, stream.delay + 1):
        shifted = compare_streamed(streamed, offline, wrong, warmup=1, edge=1)
        assert shifted.compared_frames > 0 and shifted.max_rel_error > FLOAT32_SHIFT_BAR, (wrong, shifted)


# ---------------------------------------------------------------------------- the tests' own policy


def _conftest():
    spec = importlib.util.spec_from_file_location("convert_conftest_copy", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outcome(package: str, submodule: str):
    """What ``import_model_module`` does to the calling test: ("failed" | "skipped" | "imported", message)."""
    try:
        _conftest().import_model_module(package, submodule)
    except pytest.fail.Exception as error:
        return "failed", str(error)
    except pytest.skip.Exception as error:
        return "skipped", str(error)
    return "imported", ""


@pytest.mark.parametrize("ci", ["true", None])
def test_a_published_model_that_cannot_be_imported_fails_on_ci_and_skips_elsewhere(monkeypatch, ci):
    """On CI every published model must be there: its absence is a failure, not a silent skip."""
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    expected = "failed" if ci == "true" else "skipped"
    outcome, message = _outcome("no_such_package_xyz", "modules")
    assert outcome == expected and "no_such_package_xyz is not installed" in message
    if importlib.util.find_spec("encodec") is not None:  # a package that is there, a module that is not
        outcome, message = _outcome("encodec", "no_such_module")
        assert outcome == expected and "encodec.no_such_module cannot be imported" in message
