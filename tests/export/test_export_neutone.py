"""Neutone FX files (``streamify export MODEL -o x.nm``), checked as the plugin drives them.

The plugin (and these tests) load the file with neutone-sdk's ``load_neutone_model``, call
``set_daw_sample_rate_and_buffer_size(rate, n)`` and ``reset``, then ``forward`` once per DAW buffer
``[channels, n]``; it reports ``calc_buffering_delay_samples() + calc_model_delay_samples()`` to the DAW.
At the model's rate the output must be the offline output delayed by exactly that; at another DAW rate
(the plugin resamples) its delay must be within a few ms of it. Needs the ``neutone`` extra (docs/daw.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from helpers import skip_or_fail_in_ci
from streamify.convert import convert
from streamify.exactness import compare_streamed
from streamify.export.commands import register
from streamify.layers.base import StreamingError

try:
    from neutone_sdk.utils import load_neutone_model
except (ImportError, OSError) as error:  # OSError: a torchaudio whose CUDA library does not load
    load_neutone_model = None
    NEUTONE_MISSING = f"neutone-sdk does not import ({error}); see docs/daw.md, 'Installing neutone-sdk'"

from streamify.export.neutone import (  # noqa: E402
    KNOB_DIMENSION,
    KNOB_OFFSET,
    KNOB_SCALE,
    play_like_plugin,
    read_neutone_info,
    reported_delay,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*torch\\.jit.*is deprecated:DeprecationWarning")

RATE = 48000
#: DAW buffer sizes of the sweep: powers of two from 64 to 4096, and one that is not
SWEEP = (64, 128, 256, 512, 1024, 2048, 4096, 1000)
TOL = 1e-5  # float32, relative to the offline peak: an off-by-one-sample delay is ~1e-1 here

runner = CliRunner()

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class StereoEffect(nn.Module):
        '''The input plus a small strided conv path (buffer multiple 4) with look-ahead (a delay).'''

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv1d(2, 8, 7, padding=3), nn.Tanh(),
                nn.Conv1d(8, 8, 4, stride=2, padding=1), nn.ELU(),
                nn.Conv1d(8, 8, 4, stride=2, padding=1), nn.ELU(),
                nn.ConvTranspose1d(8, 8, 4, stride=2, padding=1), nn.Tanh(),
                nn.ConvTranspose1d(8, 2, 4, stride=2, padding=1),
            )

        def forward(self, x):
            return x + 0.2 * self.body(x)

    def stereo_effect():
        torch.manual_seed(0)
        return StereoEffect().eval()
    """
)


@pytest.fixture(autouse=True)
def _needs_neutone():
    if load_neutone_model is None:
        skip_or_fail_in_ci(NEUTONE_MISSING)


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """streamify (test app)."""

    register(app)
    return app


def _export(args, cwd: Path) -> None:
    old = os.getcwd()
    os.chdir(cwd)  # factories are looked up in the current directory first, as python -m does
    try:
        result = runner.invoke(_app(), ["export", *args])
    finally:
        os.chdir(old)
        sys.modules.pop("neutone_factories", None)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def effect_file(tmp_path_factory) -> Path:
    """The small factory model, exported by the command line (format from the suffix)."""
    folder = tmp_path_factory.mktemp("neutone")
    (folder / "neutone_factories.py").write_text(FACTORY)
    path = folder / "effect.nm"
    _export(["neutone_factories:stereo_effect", "-o", str(path), "--sample-rate", str(RATE), "--length", "4096",
             "--name", "stereo effect", "--author", "streamify tests", "--tag", "test"], folder)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def effect_model(effect_file):
    sys.path.insert(0, str(effect_file.parent))
    try:
        import neutone_factories
    finally:
        sys.path.remove(str(effect_file.parent))
        sys.modules.pop("neutone_factories", None)
    return neutone_factories.stereo_effect()


def _signal(channels: int, length: int, seed: int = 0) -> torch.Tensor:
    return 0.5 * torch.randn(channels, length, generator=torch.Generator().manual_seed(seed))


def test_metadata_from_the_model_and_the_command_line(effect_file):
    info = read_neutone_info(effect_file)
    assert info["model_name"] == "stereo effect" and info["model_authors"] == ["streamify tests"]
    assert info["tags"] == ["test"] and info["model_type"] == "stereo-stereo"
    assert info["native_sample_rates"] == [RATE]
    # every common size rounded up to a multiple of the stream's buffer multiple (4 here)
    assert info["native_buffer_sizes"] == [64, 128, 256, 512, 1024, 2048, 4096]
    assert "Latency 11 samples" in info["technical_description"]  # the stream's delay (checked below)
    assert [p["used"] for p in info["neutone_parameters"].values()] == [False]  # no knob for a plain effect
    from streamify.cli import app

    shown = runner.invoke(app, ["info", str(effect_file)])  # read from the archive, the file is not run
    assert shown.exit_code == 0 and "Neutone FX model" in shown.output and "stereo effect" in shown.output, shown.output


@pytest.mark.parametrize("n", SWEEP)
def test_streams_exactly_at_daw_buffer_sizes_with_the_reported_delay(effect_file, effect_model, n):
    module, _ = load_neutone_model(str(effect_file))
    length = n * (6 + 8192 // n)
    x = _signal(2, length)
    y = play_like_plugin(module, x, RATE, n)
    delay = reported_delay(module)
    assert int(module.calc_model_delay_samples()) == convert(effect_model, torch.randn(1, 2, 4096)).delay == 11
    assert not module.is_resampling()
    with torch.no_grad():
        offline = effect_model(x.unsqueeze(0))
    result = compare_streamed(y.unsqueeze(0), offline, delay)
    assert result.compared_frames >= length - delay - 1 and result.max_rel_error <= TOL, (n, delay, result)
    for wrong in (delay - 1, delay + 1):  # the test sees a delay off by one sample
        assert compare_streamed(y.unsqueeze(0), offline, wrong).max_rel_error > 100 * TOL
    assert y[:, :delay].abs().max() == 0  # the delay is silence: a fresh stream starts clean


def test_reset_starts_a_fresh_stream(effect_file):
    module, _ = load_neutone_model(str(effect_file))
    x = _signal(2, 512 * 8)
    first = play_like_plugin(module, x, RATE, 512)
    module.forward(_signal(2, 512, seed=3))  # state left from other audio...
    second = play_like_plugin(module, x, RATE, 512)  # ...is gone after reset (play_like_plugin resets)
    assert torch.equal(first, second)


def _xcorr_lag(y: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple:
    """The lag (samples) at which ``y`` best matches ``reference`` (Pearson correlation: means removed, the
    model's DC would dominate otherwise), and the correlation there."""
    best, best_lag = -2.0, 0
    length = min(len(y), len(reference))
    for lag in range(0, max_lag + 1):
        a, b = y[lag:length], reference[: length - lag]
        a, b = a - a.mean(), b - b.mean()
        c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        if c > best:
            best, best_lag = c, lag
    return best_lag, best


def _band_limited_noise(channels: int, length: int, rate: int, seed: int = 0) -> torch.Tensor:
    """Noise below 4 kHz (made at 8 kHz, resampled to ``rate`` by soxr): what a resampler passes almost untouched,
    and whose correlation has one sharp peak."""
    import soxr

    low = np.random.default_rng(seed).standard_normal((length * 8000 // rate + 64, channels)).astype(np.float32)
    return torch.from_numpy(0.3 * soxr.resample(low, 8000, rate).T[:, :length].copy())


def measured_delay(module, model, x: torch.Tensor, daw_rate: int, model_rate: int, n: int) -> tuple:
    """Stream ``x`` ``[channels, time]`` through a loaded file at ``daw_rate`` in buffers of ``n``, and find the lag
    of its output behind the offline model run at its own rate between two soxr resamplings (cross-correlation).

    Returns ``(measured, reported, correlation, output)``, delays in samples at ``daw_rate``.
    """
    import soxr

    y = play_like_plugin(module, x, daw_rate, n)
    reported = reported_delay(module)
    x_native = torch.from_numpy(soxr.resample(x.T.numpy(), daw_rate, model_rate).T.copy())
    x_native = x_native[:, : x_native.shape[1] // 64 * 64]  # a whole number of the model's strides
    with torch.no_grad():
        out_native = model(x_native.unsqueeze(0))[0]
    reference = soxr.resample(out_native.T.numpy(), model_rate, daw_rate).T[0]
    lag, correlation = _xcorr_lag(y[0].numpy(), reference, max_lag=reported + daw_rate // 50)
    return lag, reported, correlation, y


@pytest.mark.parametrize("n", [256, 512, 1000])
def test_resampled_rate_delay_within_a_few_ms_of_the_reported_one(effect_file, effect_model, n):
    """The 48 kHz effect in a 44.1 kHz session: the plugin resamples (neutone's resampler, buffer by buffer)."""
    module, _ = load_neutone_model(str(effect_file))
    daw_rate = 44100
    x = _band_limited_noise(2, n * (16384 // n), daw_rate)
    measured, reported, correlation, y = measured_delay(module, effect_model, x, daw_rate, RATE, n)
    assert module.is_resampling()
    assert torch.isfinite(y).all() and correlation > 0.9, correlation
    assert abs(measured - reported) <= daw_rate * 3 // 1000, (measured, reported)  # within 3 ms


def test_streaming_layers_are_called_through_the_interface(effect_file):
    """Each streaming layer sits behind export/dispatch.py's interface, so that TorchScript compiles each layer type
    once rather than one inlined graph per shape: without it the pretrained file's first DAW calls took 13-19 s."""
    loaded = torch.jit.load(str(effect_file))
    kinds = [module.original_name for _, module in loaded.named_modules()]
    assert kinds.count("LayerCall") >= kinds.count("Conv1d") > 0, kinds  # one per streaming layer


def test_file_loads_and_streams_without_streamify(effect_file):
    """The plugin has no streamify: a fresh interpreter with streamify hidden loads and runs the file."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["streamify"] = None  # any import of streamify fails
        import torch
        from neutone_sdk.utils import load_neutone_model
        module, meta = load_neutone_model({str(effect_file)!r})
        module.set_daw_sample_rate_and_buffer_size({RATE}, 256)
        module.reset()
        x = 0.5 * torch.randn(2, 256 * 8, generator=torch.Generator().manual_seed(0))
        y = torch.cat([module.forward(x[:, i:i + 256]).clone() for i in range(0, x.shape[1], 256)], 1)
        assert not any(name.startswith("streamify") for name in sys.modules if sys.modules[name] is not None)
        torch.save(y, {str(effect_file.with_suffix(".out.pt"))!r})
        print(module.calc_buffering_delay_samples() + module.calc_model_delay_samples())
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    module, _ = load_neutone_model(str(effect_file))
    here = play_like_plugin(module, _signal(2, 256 * 8), RATE, 256)
    assert int(done.stdout.split()[-1]) == reported_delay(module)
    assert torch.equal(torch.load(effect_file.with_suffix(".out.pt")), here)


def test_refusals_are_one_line_before_any_conversion(tmp_path):
    from streamify.export.neutone import export_neutone

    model = torch.nn.Conv1d(1, 1, 3, padding=1)
    with pytest.raises(StreamingError, match="--name must have 1 to 30 characters"):
        export_neutone(model, tmp_path / "x.nm", torch.randn(1, 1, 512), RATE, name="x" * 31)
    with pytest.raises(StreamingError, match="Neutone FX models are mono or stereo"):
        export_neutone(torch.nn.Conv1d(3, 3, 3, padding=1), tmp_path / "x.nm", torch.randn(1, 3, 512), RATE)
    with pytest.raises(StreamingError, match="audio-to-audio"):
        export_neutone(torch.nn.Conv1d(1, 1, 4, stride=4), tmp_path / "x.nm", torch.randn(1, 1, 512), RATE)
    assert not (tmp_path / "x.nm").exists()


# ------------------------------------------------------------------------------------- the pretrained model


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory) -> Path:
    """``streamify export pretrained -o x.nm``: the shipped RAVE-style model (22050 Hz, mono), once."""
    folder = tmp_path_factory.mktemp("neutone-pretrained")
    path = folder / "pretrained.nm"
    _export(["pretrained", "-o", str(path)], folder)
    return path


@pytest.fixture(scope="module")
def pretrained_model():
    from streamify.loading import load_model

    return load_model("pretrained")


@pytest.mark.slow
def test_pretrained_exact_at_its_rate_with_knobs_at_rest(pretrained_file, pretrained_model):
    info = read_neutone_info(pretrained_file)
    native = info["native_sample_rates"]
    assert native == [22050] and info["native_buffer_sizes"] == [512, 1024, 2048, 4096]
    assert [p["name"] for p in info["neutone_parameters"].values()] == [KNOB_SCALE, KNOB_OFFSET, KNOB_DIMENSION]
    module, _ = load_neutone_model(str(pretrained_file))
    n = 1000  # not a divisor of any native size: the plugin queues to 1024 (buffering delay 2000)
    x = _signal(1, n * 20)  # 11256 samples past the reported delay
    y = play_like_plugin(module, x, 22050, n)
    delay = reported_delay(module)
    assert (int(module.calc_buffering_delay_samples()), int(module.calc_model_delay_samples())) == (2000, 6744)
    with torch.no_grad():
        offline = pretrained_model(x.unsqueeze(0))
    result = compare_streamed(y.unsqueeze(0), offline, delay)
    assert result.compared_frames > 11000 and result.max_rel_error <= 1e-4, result  # float32, 30 layers deep
    assert compare_streamed(y.unsqueeze(0), offline, delay + 1).max_rel_error > 0.1


@pytest.mark.slow
def test_pretrained_knobs_edit_the_latents_after_reload(pretrained_file):
    """The knobs write into the stream's latent scale and offset: explicit default values give the output without
    parameters bit for bit; other values change it."""
    module, _ = load_neutone_model(str(pretrained_file))
    n = 512
    x = _signal(1, n * 16, seed=1)  # 1448 samples past the model delay (6744)

    def run(values):
        module.set_daw_sample_rate_and_buffer_size(22050, n)
        module.reset()
        params = None if values is None else torch.tensor(values).view(4, 1).repeat(1, n)
        with torch.no_grad():
            return torch.cat([module.forward(x[:, i : i + n], params).clone() for i in range(0, x.shape[1], n)], -1)

    rest = run(None)
    assert rest.abs().max() > 0.1  # the signal outlasts the delay
    assert torch.equal(run([0.5, 0.5, 0.0, 0.0]), rest)
    edited = {
        values: run(list(values)) for values in ((0.0, 0.5, 0.0, 0.0), (0.5, 0.9, 0.0, 0.0), (0.5, 0.9, 0.1, 0.0))
    }
    for values, output in edited.items():
        assert torch.isfinite(output).all() and (output - rest).abs().max() > 1e-2, values
    assert not torch.equal(edited[(0.5, 0.9, 0.1, 0.0)], edited[(0.5, 0.9, 0.0, 0.0)])  # one latent vs all


def _impulse_delay(module, model, daw_rate: int, model_rate: int, n: int) -> tuple:
    """The plugin's delay measured with an impulse: the response to an impulse minus the response to silence (the
    model's own output of silence cancels), cross-correlated with the same difference from the offline model at its
    own rate (soxr between the rates). Returns ``(measured, reported, correlation, response)``."""
    import soxr

    length = n * (daw_rate // n)  # 1 s: the impulse at 0.25 s, its response and the delay (~0.35 s) fit
    impulse = torch.zeros(1, length)
    impulse[0, length // 4] = 1.0
    response = play_like_plugin(module, impulse, daw_rate, n) - play_like_plugin(module, 0 * impulse, daw_rate, n)
    reported = reported_delay(module)
    native = torch.from_numpy(soxr.resample(impulse.T.numpy(), daw_rate, model_rate).T.copy())
    native = native[:, : native.shape[1] // 512 * 512]
    with torch.no_grad():
        offline = model(native.unsqueeze(0))[0] - model(0 * native.unsqueeze(0))[0]
    reference = soxr.resample(offline.T.numpy(), model_rate, daw_rate).T[0]
    lag, correlation = _xcorr_lag(response[0].numpy(), reference, max_lag=reported + daw_rate // 50)
    return lag, reported, correlation, response


@pytest.mark.slow
@pytest.mark.parametrize("daw_rate", [44100, 48000])
def test_pretrained_resampled_delay_within_a_few_ms_of_the_reported_one(pretrained_file, pretrained_model, daw_rate):
    module, _ = load_neutone_model(str(pretrained_file))
    measured, reported, correlation, response = _impulse_delay(module, pretrained_model, daw_rate, 22050, 512)
    assert module.is_resampling() and torch.isfinite(response).all()
    assert correlation > 0.8, correlation  # the same response, through neutone's resampler
    assert abs(measured - reported) <= daw_rate * 3 // 1000, (measured, reported)  # within 3 ms


def test_without_neutone_sdk_the_command_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [name for name in sys.modules if name == "neutone_sdk" or name.startswith("neutone_sdk.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "neutone_sdk", None)  # import neutone_sdk fails
    result = runner.invoke(_app(), ["export", "demo", "-o", str(tmp_path / "x.nm")])
    assert result.exit_code == 2, result.output
    assert "neutone-sdk does not import" in result.output and "docs/daw.md" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.nm").exists()


def test_format_from_the_suffix_or_the_option():
    from pathlib import Path as P

    from streamify.export.commands import ExportFormat, _format_of

    assert _format_of(P("x.nm"), None) is ExportFormat.neutone
    assert _format_of(P("x.NM"), None) is ExportFormat.neutone
    assert _format_of(P("model.bin"), ExportFormat.neutone) is ExportFormat.neutone
    with pytest.raises(typer.BadParameter, match=r"\.ts, \.onnx or \.nm"):
        _format_of(P("model.bin"), None)
