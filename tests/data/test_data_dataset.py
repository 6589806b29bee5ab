"""The set builder: split rule, disjoint held-out files, extension that keeps files, settings checked."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from streamify.data.dataset import Clip, DataToolMissing, build, is_test_index, require_file, require_program

RATE = 8000


def _make(seed: int):
    def make(index: int) -> Clip:
        rng = np.random.default_rng([seed, index])
        seconds = float(rng.uniform(1.0, 2.0))
        t = np.arange(int(seconds * RATE)) / RATE
        return Clip(
            0.5 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t), meta={"i": index}, files={f"side/{index}.txt": b"x"}
        )

    return make


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*/*.wav")}


def test_split_extension_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "set"
    summary = build(out, "tone", _make(1), minutes=0.25, seed=1, sample_rate=RATE, jobs=2)
    first = _hashes(out)
    assert summary.total_seconds >= 15.0
    assert summary.files["test"] >= 1 and summary.files["train"] >= 5
    train = {p.name for p in (out / "train").glob("*.wav")}
    test = {p.name for p in (out / "test").glob("*.wav")}
    assert train and test and not train & test
    assert all(is_test_index(int(name[5:10])) for name in test)
    assert not any(is_test_index(int(name[5:10])) for name in train)
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [e["index"] for e in manifest] == list(range(len(manifest)))
    assert abs(sum(e["seconds"] for e in manifest) - summary.total_seconds) < 1e-3
    info = soundfile.info(out / manifest[0]["path"])
    assert info.samplerate == RATE and info.channels == 1 and info.subtype == "PCM_16"
    assert (out / "side" / "0.txt").is_file()
    saved = json.loads((out / "summary.json").read_text())
    assert saved["files"] == summary.files and saved["sample_rate"] == RATE

    # extension keeps every existing file byte for byte and adds new ones
    bigger = build(out, "tone", _make(1), minutes=0.5, seed=1, sample_rate=RATE)
    after = _hashes(out)
    assert all(after[name] == digest for name, digest in first.items())
    assert len(after) > len(first) and bigger.total_seconds >= 30.0
    # the same set made in one go is identical (jobs do not change the files)
    again = tmp_path / "again"
    build(again, "tone", _make(1), minutes=0.5, seed=1, sample_rate=RATE, jobs=1)
    assert _hashes(again) == after


def test_other_settings_are_refused(tmp_path: Path) -> None:
    build(tmp_path, "tone", _make(1), minutes=0.05, seed=1, sample_rate=RATE)
    with pytest.raises(ValueError, match="seed=1"):
        build(tmp_path, "tone", _make(2), minutes=0.1, seed=2, sample_rate=RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        build(tmp_path, "tone", _make(1), minutes=0.1, seed=1, sample_rate=16000)


def test_missing_tools_name_the_apt_package(tmp_path: Path) -> None:
    with pytest.raises(DataToolMissing, match="apt-get install some-package"):
        require_program("no-such-program-streamify", "some-package")
    with pytest.raises(DataToolMissing, match="apt-get install fluid-soundfont-gm"):
        require_file(tmp_path / "none.sf2", "fluid-soundfont-gm", "the soundfont")


def test_register_adds_the_data_commands() -> None:
    import typer
    from typer.testing import CliRunner

    from streamify.data.cli import register

    parent = typer.Typer()

    @parent.command()
    def other() -> None:  # a second command, so that Typer keeps ``data`` as a group
        pass

    register(parent)
    result = CliRunner().invoke(parent, ["data", "--help"])
    assert result.exit_code == 0 and "speech" in result.output and "music" in result.output
    result = CliRunner().invoke(parent, ["data", "music", "--help"])
    assert result.exit_code == 0 and "--minutes" in result.output and "--seed" in result.output


def test_a_file_or_an_uncreatable_folder_is_refused_naming_the_path(tmp_path: Path) -> None:
    from streamify.data.dataset import DataPathError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataPathError, match=f"{tmp_path / 'afile'} is a file, not a folder"):
        build(tmp_path / "afile", "tone", _make(1), minutes=0.05, seed=1, sample_rate=RATE)
    if Path("/proc/self").is_dir():
        with pytest.raises(DataPathError, match="cannot create the folder /proc/streamify-qa"):
            build(Path("/proc/streamify-qa"), "tone", _make(1), minutes=0.05, seed=1, sample_rate=RATE)


def test_an_empty_test_split_is_said(tmp_path: Path) -> None:
    summary = build(tmp_path / "set", "tone", _make(1), minutes=0.01, seed=1, sample_rate=RATE)
    assert summary.files["test"] == 0
    assert len(summary.warnings) == 1 and "test split is empty" in summary.warnings[0]
    assert json.loads((tmp_path / "set" / "summary.json").read_text())["warnings"] == summary.warnings
    bigger = build(tmp_path / "set", "tone", _make(1), minutes=0.25, seed=1, sample_rate=RATE)
    assert bigger.files["test"] >= 1 and bigger.warnings == []


@pytest.mark.parametrize("where", ["file", "proc"])
def test_cli_path_errors_are_one_line_exit_2(tmp_path: Path, need, where: str) -> None:
    from typer.testing import CliRunner

    from streamify.data.cli import app

    need("espeak-ng")
    if where == "file":
        target = tmp_path / "afile"
        target.write_text("x")
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc here")
        target = Path("/proc/streamify-qa")
    result = CliRunner().invoke(app, ["speech", str(target), "--minutes", "0.05"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(target) in lines[0], result.output
    assert "bug" not in result.output and "Traceback" not in result.output
