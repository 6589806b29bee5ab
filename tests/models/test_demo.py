"""``streamify demo`` streams the shipped trained model exactly; the demo autoencoder of the tests too."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from streamify import demo_run
from streamify.cli import app
from streamify.exactness import compare_streamed, measure_delay, stream_signal
from streamify.layers import Sequential
from streamify.models import build_demo_autoencoder, demo_signal
from streamify.runtime.state import reset


@pytest.fixture(scope="module")
def model64() -> Sequential:
    return build_demo_autoencoder().to(torch.float64)


def test_timing_attributes(model64: Sequential) -> None:
    assert isinstance(model64, Sequential)
    assert model64.ratio == 1
    assert model64.buffer_multiple == 8
    assert model64.delay > 0
    assert model64.receptive_field > model64.delay
    assert model64.in_channels == 1 and model64.out_channels == 1


@pytest.mark.parametrize(
    "sizes",
    [
        [512] * 16,
        [8, 16, 24, 1000 - 8 - 16 - 24 + 8, 2048, 8, 4096 + 1000],  # irregular, each a multiple of 8
        [8] * 200,
    ],
    ids=["fixed-512", "irregular", "tiny-8"],
)
def test_streams_exactly_from_a_fresh_stream(model64: Sequential, sizes: list) -> None:
    x = demo_signal(length=sum(sizes), dtype=torch.float64, seed=1)
    reset(model64)
    streamed = stream_signal(model64, x, sizes)
    with torch.no_grad():
        offline = model64.offline(x)
    comparison = compare_streamed(streamed, offline, model64.delay, warmup=0)
    assert comparison.compared_frames == x.size(-1) - model64.delay
    assert comparison.max_abs_error <= 1e-10
    assert comparison.offline_scale > 1e-3  # the check compares a real signal, not silence
    # a fresh stream starts with exactly `delay` zero frames
    assert torch.count_nonzero(streamed[..., : model64.delay]) == 0


def test_reported_delay_is_the_measured_delay(model64: Sequential) -> None:
    assert measure_delay(model64, model64.offline, channels=1, buffer=256, buffers=8) == model64.delay


def test_float32_within_relative_bar() -> None:
    model = build_demo_autoencoder()
    x = demo_signal(length=4096, dtype=torch.float32)
    streamed = stream_signal(model, x, [512] * 8)
    with torch.no_grad():
        offline = model.offline(x)
    assert compare_streamed(streamed, offline, model.delay).max_rel_error <= 1e-5


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_scripted_model_matches_eager_and_offline() -> None:
    model = build_demo_autoencoder().to(torch.float64)
    scripted = torch.jit.script(model)  # before it has ever run: no lazily created state
    x = demo_signal(length=3072, dtype=torch.float64, seed=2)
    sizes = [256, 512, 8, 1024 - 8, 1280]
    eager = stream_signal(model, x, sizes)
    script = stream_signal(scripted, x, sizes)
    assert torch.equal(eager, script)
    with torch.no_grad():
        offline = model.offline(x)
    assert compare_streamed(script, offline, model.delay).max_abs_error <= 1e-10
    scripted.reset(None)
    assert torch.equal(stream_signal(scripted, x, sizes), script)


def test_multichannel_batch_streams_exactly() -> None:
    model = build_demo_autoencoder(channels=2, seed=3).to(torch.float64)
    x = torch.cat([demo_signal(channels=2, length=2048, seed=s, dtype=torch.float64) for s in range(3)])
    streamed = stream_signal(model, x, [128] * 16)
    with torch.no_grad():
        offline = model.offline(x)
    assert streamed.shape == (3, 2, 2048)
    assert compare_streamed(streamed, offline, model.delay).max_abs_error <= 1e-10


def test_weights_are_deterministic_and_leave_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = build_demo_autoencoder(seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = build_demo_autoencoder(seed=0)
    c = build_demo_autoencoder(seed=1)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_demo_signal_is_seeded_and_bounded() -> None:
    x = demo_signal(seconds=0.5, sample_rate=8000)
    assert x.shape == (1, 1, 4000) and x.dtype == torch.float64
    assert torch.equal(x, demo_signal(seconds=0.5, sample_rate=8000))
    assert not torch.equal(x, demo_signal(seconds=0.5, sample_rate=8000, seed=1))
    assert 0.1 < x.abs().max() < 1.0


# ---------------------------------------------------------------------------------------------- streamify demo

runner = CliRunner()


def test_pretrained_is_the_trained_small_model() -> None:
    from streamify.models import pretrained, rave
    from streamify.models.clip import builtin_clip
    from streamify.training.losses import multiscale_spectral_distance

    model = pretrained()
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert (model.sample_rate, model.ratio, model.latent_size, model.config.name) == (22050, 512, 16, "small")
    clip = builtin_clip()
    assert clip.shape[:2] == (1, 1) and clip.size(-1) == 6 * 22050 and 0.1 < clip.abs().max() <= 1
    torch.manual_seed(0)
    untrained = rave("small").eval()
    model.use_noise = untrained.use_noise = False
    x = clip[..., : 512 * 128]
    with torch.no_grad():
        trained_distance = multiscale_spectral_distance(model(x), x)
        untrained_distance = multiscale_spectral_distance(untrained(x), x)
    assert trained_distance < 0.8 * untrained_distance  # the shipped weights were trained


def test_demo_streams_the_trained_model_exactly_on_one_thread() -> None:
    result = runner.invoke(app, ["demo", "--seconds", "1"])
    assert result.exit_code == 0, result.output
    for label in ("latency (model delay)", "latency incl. buffering", "real-time factor", "max relative error", "PASS"):
        assert label in result.output
    assert re.search(r"threads\s*│\s*1 \(torch intra-op\), the real-time default", result.output)
    assert "built-in clip" in result.output


def test_demo_float64_and_threads_option() -> None:
    threads = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["demo", "--seconds", "0.5", "--dtype", "float64", "--threads", "2"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "max abs error <= 1e-10" in result.output and "PASS" in result.output
    assert re.search(r"threads\s*│\s*2 \(torch intra-op\)\s", result.output)


def test_demo_fails_when_the_stream_is_off_by_one_sample(monkeypatch) -> None:
    original = demo_run.demo_stream

    def broken(*args, **kwargs):
        stream = original(*args, **kwargs)
        stream.delay += 1  # what a wrong latency would give: the check must see it
        return stream

    monkeypatch.setattr(demo_run, "demo_stream", broken)
    result = runner.invoke(app, ["demo", "--seconds", "0.5"])
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_demo_flags_a_real_time_factor_above_one(monkeypatch) -> None:
    original = demo_run.stream_and_compare

    def slow(*args, **kwargs):
        run = original(*args, **kwargs)
        run.buffer_seconds = [10.0 for _ in run.buffer_seconds]
        return run

    monkeypatch.setattr(demo_run, "stream_and_compare", slow)
    result = runner.invoke(app, ["demo", "--seconds", "0.5"])
    assert result.exit_code == 0, result.output
    assert "slower than real time" in result.output


def test_demo_input_and_output_files(tmp_path) -> None:
    soundfile = pytest.importorskip("soundfile")
    pytest.importorskip("soxr")
    t = torch.arange(44100) / 44100
    soundfile.write(tmp_path / "in.wav", (0.3 * torch.sin(2 * torch.pi * 440 * t)).numpy(), 44100)
    result = runner.invoke(app, ["demo", "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.wav")])
    assert result.exit_code == 0, result.output
    audio, rate = soundfile.read(tmp_path / "out.wav")
    assert rate == 22050 and audio.shape == (22050,)  # the input's 1 s, resampled to 22.05 kHz
    assert 0.01 < abs(audio).max() <= 1.0
    # float32 judged by the model's own rounding: the bar is printed with the offline's own error against float64
    assert "own rounding" in result.output and "PASS" in result.output
    short = runner.invoke(app, ["demo", "--input", str(tmp_path / "in.wav"), "--seconds", "0.01"])
    assert short.exit_code == 0 and "PASS" in short.output  # shorter than the latency: still all compared
    missing = runner.invoke(app, ["demo", "--input", str(tmp_path / "missing.wav")])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_demo_runs_without_the_optional_packages() -> None:
    code = (
        "import sys\n"
        "for name in ('lightning', 'soundfile', 'soxr', 'matplotlib', 'tensorboard'):\n"
        "    sys.modules[name] = None\n"
        "from streamify.cli import main\n"
        "sys.argv = ['streamify', 'demo', '--seconds', '0.5']\n"
        "main()\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "PASS" in completed.stdout


def test_demo_input_fails_when_the_stream_is_off_by_one_sample(tmp_path, monkeypatch) -> None:
    """The float32 bar follows the model's own rounding, and still sees one sample of wrong latency."""
    soundfile = pytest.importorskip("soundfile")
    pytest.importorskip("soxr")
    t = torch.arange(22050) / 22050
    soundfile.write(tmp_path / "in.wav", (0.3 * torch.sin(2 * torch.pi * 440 * t)).numpy(), 22050)
    original = demo_run.demo_stream

    def broken(*args, **kwargs):
        stream = original(*args, **kwargs)
        stream.delay += 1
        return stream

    monkeypatch.setattr(demo_run, "demo_stream", broken)
    result = runner.invoke(app, ["demo", "--input", str(tmp_path / "in.wav"), "--seconds", "0.5"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "own rounding" in result.output
