"""Live audio at the device's rate for a model at another: soxr's streaming resamplers around the model.

The output must be the offline resampled path (resample down, the offline model delayed by its own delay at
its rate, resample up) delayed by the latency reported, sample for sample (float32 error): through the
engine driven block by block, and through a JACK server at 48 kHz for a model at 22.05 kHz.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr
import torch
from host_models import small_codec
from test_engine import run_engine

from streamify.host import HostModel, LiveEngine, load_host_model, start_live
from streamify.host.resampled import LIVE_QUALITY, ResampledModel, plan_prefill

DEVICE, MODEL = 48000, 22050


def resampled_path(x: np.ndarray, model_delay: int, delay: int) -> np.ndarray:
    """``[channels, time]`` at the device's rate through the offline path: soxr down, the offline model delayed
    by ``model_delay`` samples at its rate, soxr up; then delayed by ``delay`` device samples."""
    down = soxr.resample(x.T, DEVICE, MODEL, quality=LIVE_QUALITY).T
    with torch.inference_mode():
        y = small_codec()(torch.from_numpy(np.ascontiguousarray(down, np.float32))[:, None]).numpy()[:, 0]
    y = np.concatenate([np.zeros((y.shape[0], model_delay), np.float32), y], axis=1)
    up = soxr.resample(np.ascontiguousarray(y.T), MODEL, DEVICE, quality=LIVE_QUALITY).T
    out = np.zeros_like(x)
    n = min(x.shape[1] - delay, up.shape[1])
    out[:, delay : delay + n] = up[:, :n]
    return out


def probe(channels: int, frames: int) -> np.ndarray:
    t = np.arange(frames) / DEVICE
    rng = np.random.default_rng(2)
    rows = [
        0.3 * np.sin(2 * np.pi * (100 + 900 * c) * t * (1 + t)) + 0.05 * rng.standard_normal(frames)
        for c in range(channels)
    ]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("channels, block", [(1, 1024), (2, 256)])
def test_engine_at_the_device_rate_equals_the_offline_resampled_path_delayed(channels, block):
    model = load_host_model("host_models:small_codec", sample_rate=MODEL)
    engine = LiveEngine(model, block, DEVICE, channels=channels)
    assert isinstance(engine.model, ResampledModel) and engine.buffer == block
    m, prefill = engine.model.plan(block)
    assert m == model.multiple * -(-(block * MODEL // DEVICE + 1) // model.multiple)
    x = probe(channels, 3 * DEVICE)
    y = run_engine(engine, x, block)
    whole = prefill + engine.buffering  # device samples; the model's own delay is taken at its rate
    assert engine.latency == pytest.approx(whole + model.delay * DEVICE / MODEL)
    expected = resampled_path(x, model.delay, whole)
    end = x.shape[1] - 4096  # the offline resampler sees the end of the signal, the stream does not yet
    np.testing.assert_allclose(y[:, :end], expected[:, :end], rtol=0, atol=1e-5)
    assert np.abs(expected[:, :end]).max() > 0.05
    for wrong in (whole - 1, whole + 1):  # one device sample off is far outside the bar
        assert np.abs(y[:, :end] - resampled_path(x, model.delay, wrong)[:, :end]).max() > 1e-3
    assert engine.model.underruns == 0 and engine.stats.late_buffers == 0
    notes = engine.report().notes
    assert any(
        f"resampled {DEVICE} Hz -> {MODEL} Hz -> {DEVICE} Hz" in note and f"{prefill} samples" in note for note in notes
    )


class Through(HostModel):
    """Gives its input back (what the FIFO's counts depend on is only how many samples move)."""

    kind = "test"

    def _run(self, frames: np.ndarray) -> np.ndarray:
        return frames.copy()

    def reset(self) -> None:
        pass


def test_the_silence_planned_covers_the_streams_bursts():
    """The FIFO never runs dry over 30 s of buffers (the wrapper counts it), for several buffer sizes."""
    for n in (256, 1000, 4096):
        wrapped = ResampledModel(Through("through", 1, 1, 1, 1, 256, 0, MODEL), DEVICE)
        x = np.zeros((1, 1, n), np.float32)
        for _ in range(30 * DEVICE // n):
            wrapped(x)
        assert wrapped.underruns == 0 and wrapped.grown == 0, n
    assert plan_prefill(DEVICE, MODEL, 1024, 1024) > 1024


def test_a_burst_later_than_planned_plays_silence_and_grows_the_delay_said():
    wrapped = ResampledModel(Through("through", 1, 1, 1, 1, 256, 0, MODEL), DEVICE)
    before = wrapped.delay_at(1024)
    wrapped._plans[1024] = (wrapped.plan(1024)[0], 0)  # no silence planned: the first buffers find nothing
    x = probe(1, 1024)[None]
    y = wrapped(x)
    np.testing.assert_array_equal(y, 0.0)
    assert wrapped.underruns == 1 and wrapped.grown == 1024 and before > 1024
    assert any("resampler underruns: 1" in note for note in wrapped.notes(1024))


class Failing(Through):
    """Gives its input back, except at call ``at``, where it raises."""

    def __init__(self, at: int) -> None:
        super().__init__("failing", 1, 1, 1, 1, 256, 0, MODEL)
        self.at, self.calls = at, 0

    def _run(self, frames: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("the model broke")
        return frames.copy()


def test_a_model_error_gives_silence_and_the_stream_stays_aligned():
    from streamify.host.models import HostError

    x = probe(1, 80 * 1024)[None]
    clean, broken = (
        ResampledModel(Through("through", 1, 1, 1, 1, 256, 0, MODEL), DEVICE),
        ResampledModel(Failing(20), DEVICE),
    )
    expected = np.concatenate([clean(x[..., i : i + 1024]) for i in range(0, x.shape[-1], 1024)], -1)
    got, failures = [], 0
    for i in range(0, x.shape[-1], 1024):
        try:
            got.append(broken(x[..., i : i + 1024]))
        except HostError:
            failures += 1
            got.append(np.zeros((1, 1, 1024), np.float32))  # what the engine plays instead
    got = np.concatenate(got, -1)
    assert failures == 1
    differs = np.flatnonzero(np.abs(got - expected)[0, 0] > 1e-5)  # beyond float32 rounding
    # the buffer the host silenced, and the model buffer's silence when it comes out, the FIFO's delay later,
    # each spread by soxr's filters; after them the output is back in line (misaligned, it would differ to the end)
    reach = broken.plan(1024)[1] + 4 * 1024
    assert differs.size > 0 and differs[-1] - differs[0] < reach, (differs[0], differs[-1], reach)
    assert differs[-1] < x.shape[-1] - 20 * 1024


def test_methods_with_latent_frames_are_not_resampled():
    from streamify.host.models import HostError

    encoder = torch.nn.Conv1d(1, 2, 4, stride=4).eval()
    with pytest.raises(HostError, match="cannot be resampled; run the device at 22050 Hz"):
        LiveEngine(load_host_model(encoder, channels=1, sample_rate=MODEL), 1024, DEVICE)


def test_jack_at_48k_runs_a_22k_model_and_equals_the_resampled_path(jack_server):
    pytest.importorskip("jack")
    from test_live import _run_rig

    model = load_host_model("host_models:small_codec", sample_rate=MODEL)
    with start_live(model, "jack", name="streamify-resampled") as session:
        engine = session.engine
        if engine.sample_rate != DEVICE:
            pytest.skip(f"the running JACK server runs at {engine.sample_rate} Hz, not {DEVICE}")
        whole = engine.model.plan(engine.buffer)[1] + engine.buffering
        assert engine.latency == pytest.approx(whole + model.delay * DEVICE / MODEL)
        ports = ("streamify-resampled:in_1", "streamify-resampled:out_1")
        player, recorder, signal = _run_rig(ports, 2.0, whole + DEVICE // 10)
        report = session.close()
    assert report.xruns == 0 and report.late == 0 and engine.model.underruns == 0, report.text()
    assert any("soxr" in note and "latency" in note for note in report.notes)
    pre = player.start_frame - session.first_frame  # the stream's input: silence until the signal
    x = np.concatenate([np.zeros(pre, np.float32), signal, np.zeros(whole + DEVICE, np.float32)])[None]
    expected = resampled_path(x, model.delay, whole)[0]
    index = recorder.start_frame - session.first_frame + np.arange(len(recorder.data))
    valid = index < pre + len(signal)
    assert valid.sum() > 0.9 * len(signal)
    np.testing.assert_allclose(recorder.data[valid], expected[index[valid]], rtol=0, atol=1e-5)
    assert np.abs(expected[index[valid]]).max() > 0.05


@pytest.mark.slow
def test_portaudio_on_a_device_without_the_models_rate_resamples(jack_server):
    sd = pytest.importorskip("sounddevice")
    import contextlib
    import time

    with contextlib.suppress(sd.PortAudioError):  # another test may have terminated PortAudio already
        sd._terminate()
    sd._initialize()  # PortAudio lists the JACK host API only if a server ran when it initialised
    try:
        devices = [d for d in sd.query_devices() if "JACK" in sd.query_hostapis(d["hostapi"])["name"]]
        assert devices, "PortAudio sees no JACK device (libportaudio2 without JACK?)"
        if int(devices[0]["default_samplerate"]) != DEVICE:
            pytest.skip(f"the JACK server runs at {devices[0]['default_samplerate']} Hz, not {DEVICE}")
        model = load_host_model("host_models:small_codec", sample_rate=MODEL)
        with start_live(model, "portaudio", device=devices[0]["index"], block=1024) as session:
            assert session.engine.sample_rate == DEVICE and isinstance(session.engine.model, ResampledModel)
            time.sleep(1.0)
            report = session.close()
    finally:
        sd._terminate()
    assert report.sample_rate == DEVICE and report.errors == 0 and report.buffer_seconds.size > 10
    assert any("soxr" in note for note in report.notes)


def test_without_a_jack_server_the_hint_starts_one_that_now_works(monkeypatch):
    pytest.importorskip("jack")
    from streamify.host.models import HostError

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "streamify-test-no-such-server")  # no server by that name runs
    model = load_host_model("host_models:small_codec", sample_rate=MODEL)
    with pytest.raises(HostError) as raised:
        start_live(model, "jack")
    said = str(raised.value)
    assert "no JACK server is running" in said and "`jackd -d dummy -r 48000 -p 1024 &`" in said
    assert f"-r {MODEL} spares the resampling" in said and "--backend portaudio" in said
