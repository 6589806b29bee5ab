"""The music set: fluidsynth renders the generated pieces; tiny sets (pieces of a few seconds)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from streamify.data import cli as data_cli
from streamify.data.dataset import DataToolMissing, is_test_index
from streamify.data.music import build_music, music_clip

SHORT = (2.0, 4.0)  # seconds asked per piece; a piece has at least 4 bars


def test_a_clip_is_music_at_the_rate_and_deterministic(need) -> None:
    need("fluidsynth")
    a = music_clip(5, 3, 44100, keep_midi=True, piece_seconds=SHORT)
    b = music_clip(5, 3, 44100, piece_seconds=SHORT)
    c = music_clip(6, 3, 44100, piece_seconds=SHORT)
    assert a.audio.ndim == 1 and np.array_equal(a.audio, b.audio)
    assert a.audio.size != c.audio.size or not np.array_equal(a.audio, c.audio)
    seconds = a.audio.size / 44100
    assert 3.0 < seconds < 25.0
    rms = np.sqrt(np.mean(a.audio.astype(np.float64) ** 2))
    assert rms > 0.02, "the render is not silent"
    assert np.max(np.abs(a.audio)) == pytest.approx(10 ** (a.meta["peak_db"] / 20), rel=1e-3)
    # not silent for long stretches: most 0.5 s windows carry sound
    windows = a.audio[: a.audio.size // 22050 * 22050].reshape(-1, 22050)
    assert np.mean(np.sqrt(np.mean(windows**2, axis=1)) > 0.1 * rms) > 0.7
    assert set(a.files) == {"midi/music_00003.mid"} and a.files["midi/music_00003.mid"].startswith(b"MThd")
    # most energy is musical (below 5 kHz), not noise
    spectrum = np.abs(np.fft.rfft(a.audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(a.audio.size, 1 / 44100)
    assert spectrum[freqs < 5000].sum() > 0.9 * spectrum.sum()


@pytest.mark.slow
def test_tiny_set_has_disjoint_held_out_files(need, tmp_path: Path) -> None:
    need("fluidsynth")
    summary = build_music(tmp_path, minutes=0.9, seed=2, sample_rate=48000, piece_seconds=SHORT, jobs=2)
    manifest = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) >= 6 and summary.files["test"] >= 1
    for entry in manifest:
        audio, rate = soundfile.read(tmp_path / entry["path"])
        assert rate == 48000 and audio.ndim == 1 and np.std(audio) > 0.01
        assert entry["split"] == ("test" if is_test_index(entry["index"]) else "train")
        assert (tmp_path / "midi" / f"music_{entry['index']:05d}.mid").is_file()
    train = {p.name for p in (tmp_path / "train").iterdir()}
    test = {p.name for p in (tmp_path / "test").iterdir()}
    assert test and not train & test
    assert len({e["arrangement"] for e in manifest}) >= 2


def test_missing_fluidsynth_is_one_line_naming_the_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataToolMissing, match=r"apt-get install fluidsynth"):
        build_music(tmp_path / "set", minutes=0.1)
    result = CliRunner().invoke(data_cli.app, ["music", str(tmp_path / "set"), "--minutes", "0.1"])
    assert result.exit_code == 2
    assert "apt-get install fluidsynth" in result.output and "Traceback" not in result.output


def test_missing_mido_is_one_line_naming_the_extra(monkeypatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mido", None)  # import mido raises ImportError
    monkeypatch.delitem(sys.modules, "streamify.data.music", raising=False)
    monkeypatch.delitem(sys.modules, "streamify.data.midi", raising=False)
    result = CliRunner().invoke(data_cli.app, ["music", str(tmp_path / "set"), "--minutes", "0.1"])
    assert result.exit_code == 2
    assert "package mido" in result.output and "pip install 'streamify[data]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "set").exists()
