"""The speech set: espeak-ng reads generated paragraphs; tiny sets."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from streamify.data import cli as data_cli
from streamify.data.dataset import DataToolMissing
from streamify.data.speech import build_speech, speech_clip


def test_a_clip_is_speech_at_the_rate_and_deterministic(need) -> None:
    need("espeak-ng")
    a = speech_clip(1, 0, 48000)
    b = speech_clip(1, 0, 48000)
    c = speech_clip(2, 0, 48000)
    assert np.array_equal(a.audio, b.audio) and a.meta == b.meta
    assert a.meta["text"] != c.meta["text"]
    seconds = a.audio.size / 48000
    assert 3.0 < seconds < 60.0
    assert np.std(a.audio) > 0.02
    # espeak-ng speaks at 22050 Hz: resampled to 48 kHz, nothing of it lies above 11.025 kHz
    spectrum = np.abs(np.fft.rfft(a.audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(a.audio.size, 1 / 48000)
    assert spectrum[freqs > 11500].sum() < 1e-6 * spectrum.sum()
    assert spectrum[(freqs > 80) & (freqs < 4000)].sum() > 0.5 * spectrum.sum()


def test_tiny_set_varies_speakers_and_holds_out_files(need, tmp_path: Path) -> None:
    need("espeak-ng")
    summary = build_speech(tmp_path, minutes=2.5, seed=3, sample_rate=44100, jobs=2)
    manifest = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(manifest) >= 6 and summary.files["test"] >= 1
    assert summary.sample_rate == 44100
    assert len({e["language"] for e in manifest}) >= 2 and len({e["variant"] for e in manifest}) >= 3
    for entry in manifest:
        audio, rate = soundfile.read(tmp_path / entry["path"])
        assert rate == 44100 and audio.ndim == 1 and np.std(audio) > 0.01
        assert abs(audio.size / rate - entry["seconds"]) < 1e-3
    train = {p.name for p in (tmp_path / "train").iterdir()}
    test = {p.name for p in (tmp_path / "test").iterdir()}
    assert test and not train & test


def test_missing_espeak_is_one_line_naming_the_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataToolMissing, match=r"apt-get install espeak-ng"):
        build_speech(tmp_path / "set", minutes=0.1)
    result = CliRunner().invoke(data_cli.app, ["speech", str(tmp_path / "set"), "--minutes", "0.1"])
    assert result.exit_code == 2
    assert "apt-get install espeak-ng" in result.output and "Traceback" not in result.output
