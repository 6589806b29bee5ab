"""``streamify process`` never writes silently wrong and never wastes the work: clipping is counted and said,
the output path is checked before processing, and a model's own error is shown by its real cause, briefly."""

from __future__ import annotations

import warnings
from typing import List

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from streamify.cli import app
from streamify.host import HostError, clipping, load_host_model, process_file, write_audio
from streamify.host.models import error_cause

runner = CliRunner()
RATE = 48000


def loud_model() -> torch.nn.Module:
    """``y = 3 x``: a 1x1 convolution whose output goes beyond full scale for inputs above 1/3."""
    conv = torch.nn.Conv1d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(3.0)
    return conv.eval()


def write_input(path, frames: int = 4800) -> np.ndarray:
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(frames) / RATE)).astype(np.float32)
    sf.write(str(path), x, RATE, subtype="FLOAT")
    return x


def test_pcm_output_beyond_full_scale_is_written_clipped_counted_and_said(tmp_path):
    x = write_input(tmp_path / "in.wav")
    expected = int(np.count_nonzero(np.abs(3 * x) > 1))
    assert expected > 0
    result = process_file(tmp_path / "in.wav", tmp_path / "out.flac", load_host_model(loud_model(), channels=1), 480)
    assert result.subtype == "PCM_16"
    assert result.clipped == expected
    assert result.clipping.peak == pytest.approx(1.5, rel=1e-3)
    assert any(f"{expected} samples clipped" in note for note in result.report.notes)
    # FLOAT keeps them: nothing clipped
    kept = process_file(tmp_path / "in.wav", tmp_path / "out.wav", load_host_model(loud_model(), channels=1), 480)
    assert kept.subtype == "FLOAT" and kept.clipped == 0
    assert np.max(np.abs(sf.read(str(tmp_path / "out.wav"))[0])) == pytest.approx(1.5, rel=1e-3)
    # the API's write_audio warns with the count too
    with pytest.warns(UserWarning, match=f"{expected} samples clipped"):
        write_audio(tmp_path / "w.flac", 3 * x[None], RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_audio(tmp_path / "w.wav", 3 * x[None], RATE)
    assert clipping(np.array([[0.5, -1.0, 1.0]]), "PCM_16").clipped == 0


def test_cli_warns_with_the_count_and_the_fix_and_gain_avoids_it(tmp_path, monkeypatch):
    write_input(tmp_path / "in.wav")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "loudmods.py").write_text(
        "import torch\n"
        "def loud():\n"
        "    conv = torch.nn.Conv1d(1, 1, 1, bias=False)\n"
        "    torch.nn.init.constant_(conv.weight, 3.0)\n"
        "    return conv\n"
    )
    result = runner.invoke(app, ["process", str(tmp_path / "in.wav"), str(tmp_path / "o.flac"), "-m", "loudmods:loud"])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "samples clipped" in warning[0] and "--subtype FLOAT" in warning[0], result.output
    assert "--gain -3.6" in warning[0]
    args = ["process", str(tmp_path / "in.wav"), str(tmp_path / "g.flac"), "-m", "loudmods:loud", "--gain", "-3.6"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "clipped" not in result.output, result.output
    assert np.max(np.abs(sf.read(str(tmp_path / "g.flac"))[0])) <= 1.0


class Counting(torch.nn.Module):
    def __init__(self, calls: List[int]) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 1, 3, padding=1)
        self.calls = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(1)
        return self.conv(x)


@pytest.mark.parametrize(
    "destination, words",
    [
        ("missing/o.wav", "folder"),
        ("o.mp9", "unknown audio format"),
        ("folder.wav", "it is a folder"),
    ],
)
def test_output_path_refused_before_any_processing(tmp_path, destination, words):
    write_input(tmp_path / "in.wav")
    (tmp_path / "folder.wav").mkdir()
    calls: List[int] = []
    model = load_host_model(Counting(calls), channels=1)
    calls.clear()
    with pytest.raises(HostError, match=words):
        process_file(tmp_path / "in.wav", tmp_path / destination, model, 480)
    assert calls == []


def test_cli_refuses_a_missing_folder_before_loading_the_model(tmp_path):
    write_input(tmp_path / "in.wav")
    result = runner.invoke(
        app, ["process", str(tmp_path / "in.wav"), str(tmp_path / "nonexist" / "o.wav"), "-m", "no_such_module:f"]
    )
    assert result.exit_code == 2
    assert "folder" in result.output and "does not exist" in result.output and "no_such_module" not in result.output


@pytest.fixture(scope="module")
def raiser_ts(tmp_path_factory):
    class Raiser(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("forward_params", torch.tensor([1, 1, 1, 1]))
            self.n = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.n += 1
            if self.n > 5:
                raise RuntimeError("boom after 5 calls")
            return x * 0.5

    path = tmp_path_factory.mktemp("raiser") / "raiser.ts"
    torch.jit.script(Raiser()).save(str(path))
    return path


def test_torchscript_error_gives_the_user_message_first(raiser_ts):
    model = load_host_model(str(raiser_ts))
    x = np.zeros((1, 1, 64), np.float32)
    for _ in range(5):
        model(x)
    with pytest.raises(HostError) as caught:
        model(x)
    message = str(caught.value)
    assert message.startswith("streamify: RuntimeError: boom after 5 calls"), message
    assert len(message) < 120 and "\n" not in message
    assert error_cause(caught.value.__cause__) == "RuntimeError: boom after 5 calls"
    assert error_cause(ValueError("bad\nsecond line")) == "ValueError: bad"


def test_cli_process_error_is_the_cause_briefly(tmp_path, raiser_ts):
    write_input(tmp_path / "in.wav")
    result = runner.invoke(
        app, ["process", str(tmp_path / "in.wav"), str(tmp_path / "o.wav"), "-m", str(raiser_ts), "--buffer", "64"]
    )
    assert result.exit_code == 2
    line = [line for line in result.output.splitlines() if line.startswith("error:")][0]
    assert "RuntimeError: boom after 5 calls" in line and len(line) < 150, line
    assert not (tmp_path / "o.wav").exists()


def test_live_engine_logs_the_cause(raiser_ts, caplog):
    from streamify.host import LiveEngine

    engine = LiveEngine(load_host_model(str(raiser_ts)), 64, RATE, buffer=64)
    x = np.zeros((1, 64 * 12), np.float32)
    out = np.zeros_like(x)
    import time

    engine.start()
    try:
        for start in range(0, x.shape[1], 64):
            engine.process(x[:, start : start + 64], out[:, start : start + 64])
            deadline = time.monotonic() + 5
            while engine.stats.buffers < (start + 64) // 64 and time.monotonic() < deadline:
                time.sleep(0.0005)
    finally:
        engine.stop()
    assert engine.stats.errors > 0
    assert engine.stats.last_error == "RuntimeError: boom after 5 calls"
    assert any("boom after 5 calls" in record.getMessage() for record in caplog.records)
