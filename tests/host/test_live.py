"""Live: a test JACK client plays a known signal into the host, another records its output.

The recording must equal the offline model's output delayed by the latency the host reports
(float32 error), with no xruns and no late buffers, through JACK-Client and through PortAudio's
JACK backend; a model that raises gives silence and a log line, and the client stays alive.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

jack = pytest.importorskip("jack")

from jack_tools import Player, Recorder  # noqa: E402

from streamify.host import HostModel, load_host_model, start_live  # noqa: E402
from streamify.host.models import TorchModel  # noqa: E402

RATE = 48000


def probe_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp plus noise at -12 dB: every sample matters, a one-sample misalignment shows."""
    t = np.arange(int(seconds * RATE)) / RATE
    chirp = np.sin(2 * np.pi * (50 * t + 2000 * t**2 / seconds))
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.35 * chirp + 0.1 * noise).astype(np.float32)


def offline(model: TorchModel, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.stream.offline(torch.from_numpy(x)[None, None]).numpy()[0, 0]


def _connect(client, source: str, destination: str) -> None:
    client.connect(source, destination)


def _run_rig(session_ports, seconds: float, latency: int, settle: float = 0.4):
    """Play ``seconds`` of the test signal through the ports ``(input, output)``; the player and recording."""
    signal = probe_signal(seconds)
    player = Player(signal)
    recorder = Recorder(len(signal) + latency + 4096)
    try:
        in_port, out_port = session_ports
        _connect(player.client, "test-player:out", in_port)
        _connect(recorder.client, out_port, "test-recorder:in")
        time.sleep(settle)  # the model's input is silence for longer than its receptive field
        recorder.record()
        player.play()
        assert recorder.done.wait(seconds + 10), "the recording did not complete"
        return player, recorder, signal
    finally:
        player.close()
        recorder.close()


def _check_against_offline(model, signal, player, recorder, latency, stream_start=None):
    """``recorded[j] == offline(input)[frame(j) - latency]``, input = silence then the signal.

    With ``stream_start`` (the host's first frame) the whole run from the fresh stream is checked;
    without, the silence before the signal is taken as 0.5 s (longer than the receptive field)
    and the check starts 1000 samples into it.
    """
    pre = player.start_frame - stream_start if stream_start is not None else RATE // 2
    x = np.concatenate([np.zeros(pre, np.float32), signal, np.zeros(latency + 8192, np.float32)])
    y = offline(model, x)
    index = recorder.start_frame + np.arange(len(recorder.data)) - player.start_frame + pre - latency
    valid = (index >= (0 if stream_start is not None else 1000)) & (index < len(y))
    expected = np.where(index >= 0, y[np.clip(index, 0, len(y) - 1)], 0.0)
    error = np.abs(recorder.data[valid] - expected[valid])
    peak = np.abs(expected[valid]).max()
    assert valid.sum() > 0.9 * len(signal)
    assert peak > 0.1
    return float(error.max()), float(peak)


@pytest.mark.slow
def test_jack_live_equals_offline_delayed_by_reported_latency(jack_server):
    model = load_host_model("host_models:small_codec")
    with start_live(model, "jack", name="streamify-live-test") as session:
        assert session.engine.block == 1024 and session.engine.sample_rate == RATE
        latency = session.latency
        assert latency == model.delay + 1024  # one buffer of double buffering when buffer == block
        player, recorder, signal = _run_rig(("streamify-live-test:in_1", "streamify-live-test:out_1"), 10.0, latency)
        report = session.close()
    error, peak = _check_against_offline(model, signal, player, recorder, latency, session.first_frame)
    assert error <= 1e-5 * peak, f"max error {error:.3g} against a peak of {peak:.3g}"
    assert report.xruns == 0, report.text()
    assert report.late == 0 and session.stats.late_blocks == 0, report.text()
    assert report.real_time_factor < 0.5
    assert report.audio_seconds >= 10.0


@pytest.mark.slow
def test_portaudio_jack_backend_equals_offline_delayed(jack_server):
    sd = pytest.importorskip("sounddevice")
    sd._terminate()
    sd._initialize()  # PortAudio lists the JACK host API only if a server ran when it initialised
    try:
        _portaudio_run(sd)
    finally:
        sd._terminate()  # PortAudio's JACK client goes now, not at exit after the test server stopped (it aborts)


def _portaudio_run(sd):
    devices = [d for d in sd.query_devices() if "JACK" in sd.query_hostapis(d["hostapi"])["name"]]
    assert devices, "PortAudio sees no JACK device (libportaudio2 without JACK?)"
    model = load_host_model("host_models:small_codec")
    with start_live(model, "portaudio", device=devices[0]["index"], block=1024) as session:
        latency = session.latency
        probe = jack.Client("test-probe", no_start_server=True)
        try:
            ins = probe.get_ports("PortAudio", is_input=True, is_audio=True)
            outs = probe.get_ports("PortAudio", is_output=True, is_audio=True)
            assert len(ins) == 1 and len(outs) == 1, [p.name for p in ins + outs]
            for port in (ins[0], outs[0]):
                for other in probe.get_all_connections(port):
                    if port.is_input:
                        probe.disconnect(other, port)
                    else:
                        probe.disconnect(port, other)
        finally:
            probe.close()
        player, recorder, signal = _run_rig((ins[0].name, outs[0].name), 10.0, latency)
        report = session.close()
    error, peak = _check_against_offline(model, signal, player, recorder, latency)
    assert error <= 1e-5 * peak, f"max error {error:.3g} against a peak of {peak:.3g}"
    assert report.xruns == 0 and report.late == 0, report.text()
    assert report.audio_seconds >= 10.0


class Flaky(HostModel):
    """The small codec, raising while ``failing`` is set."""

    kind = "torch"

    def __init__(self, inner: HostModel) -> None:
        super().__init__("flaky", 1, 1, 1, 1, inner.multiple, inner.delay, inner.sample_rate)
        self.inner = inner
        self.failing = False

    def _run(self, frames: np.ndarray) -> np.ndarray:
        if self.failing:
            raise RuntimeError("the model broke")
        return self.inner._run(frames)

    def reset(self) -> None:
        self.inner.reset()


@pytest.mark.slow
def test_model_that_raises_gives_silence_and_keeps_running(jack_server, caplog):
    model = Flaky(load_host_model("host_models:small_codec"))
    signal = probe_signal(1.0)
    with (
        caplog.at_level(logging.WARNING, logger="streamify.host"),
        start_live(model, "jack", name="streamify-flaky-test") as session,
    ):
        player = Player(np.tile(signal, 4))
        try:
            player.client.connect("test-player:out", "streamify-flaky-test:in_1")
            player.play()
            model.failing = True
            time.sleep(0.3)  # buffers computed before the failure drain out
            recorder = Recorder(RATE // 2)
            recorder.client.connect("streamify-flaky-test:out_1", "test-recorder:in")
            recorder.record()
            assert recorder.done.wait(5)
            recorder.close()
            silent = recorder.data.copy()
            blocks = session.stats.blocks
            model.failing = False
            time.sleep(0.3)
            recorder = Recorder(RATE // 2)
            recorder.client.connect("streamify-flaky-test:out_1", "test-recorder:in")
            recorder.record()
            assert recorder.done.wait(5)
            recorder.close()
        finally:
            player.close()
        assert session.stats.blocks > blocks  # the client kept running
        report = session.close()
    assert np.all(silent == 0.0)
    assert np.abs(recorder.data).max() > 0.05  # sound again once the model recovered
    assert report.errors > 10
    assert any("model error" in r.getMessage() and "the model broke" in r.getMessage() for r in caplog.records)


def test_live_command_runs_reports_and_closes(jack_server):
    from typer.testing import CliRunner

    from streamify.cli import app

    result = CliRunner().invoke(
        app,
        ["live", "-m", "host_models:small_codec", "--seconds", "1.5", "--name", "streamify-cli-test", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    for words in (
        "worker: 1 intra-op thread",
        "in 1",
        "out 1",
        "worker load",
        "total latency",
        "xruns",
        "late buffers",
    ):
        assert words in result.output, result.output
    probe = jack.Client("test-probe-after", no_start_server=True)
    try:  # the client closed: its ports are gone
        assert not probe.get_ports("streamify-cli-test")
    finally:
        probe.close()


def test_live_command_refusals_one_line_exit_2(jack_server):
    from typer.testing import CliRunner

    from streamify.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["live", "-m", "host_models:stereo_mixer", "--channels", "3", "--seconds", "0.1"])
    assert result.exit_code == 2 and "has 3 channels but the model" in result.output, result.output
    result = runner.invoke(app, ["live", "-m", "host_models:small_codec", "--buffer", "1000", "--seconds", "0.1"])
    assert result.exit_code == 2 and "neither a multiple nor a divisor" in result.output, result.output
    result = runner.invoke(app, ["live", "-m", "host_models:small_codec", "--in", "no-such-port:x", "--seconds", "0.1"])
    assert result.exit_code == 2 and "no JACK output port matches" in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("stop, said", [("SIGINT", "Ctrl-C"), ("SIGINT-background", "Ctrl-C"), ("SIGTERM", "SIGTERM")])
def test_signals_close_cleanly_with_the_report(jack_server, stop, said):
    """Ctrl-C, SIGINT to a background job (which starts with SIGINT ignored, as a shell's ``&`` does) and SIGTERM
    all stop the client, join the worker and print the report, exit status 0."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(Path(__file__).parent)])}
    name = f"streamify-{stop.lower()}"

    def as_background_job() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        [sys.executable, "-m", "streamify", "live", "-m", "host_models:small_codec", "--name", name, "--no-view"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=as_background_job if stop.endswith("background") else None,
    )
    try:
        probe = jack.Client(f"test-probe-{stop.lower()}", no_start_server=True)
        try:
            deadline = time.monotonic() + 60
            while not probe.get_ports(f"{name}:out_1") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert probe.get_ports(f"{name}:out_1"), "the live client did not start"
            time.sleep(1.0)
            process.send_signal(signal.SIGTERM if stop == "SIGTERM" else signal.SIGINT)
            output, _ = process.communicate(timeout=30)
            assert not probe.get_ports(name)  # the client is gone
        finally:
            probe.close()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert f"stopping ({said})" in output and "total latency" in output and "Traceback" not in output, output
