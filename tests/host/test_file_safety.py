"""``streamify process`` loses nothing: it refuses to write over its input (also through links) unless asked,
removes the partial files of killed runs (its own, of dead processes only), refuses NaN and infinite input
samples unless told to zero them, and writes at the input's rate and sample format by default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from streamify.cli import app
from streamify.host import HostError, load_host_model, process_file
from streamify.host.guards import non_finite, partial_path, remove_stale_partials

runner = CliRunner()
RATE = 48000
ROOT = Path(__file__).resolve().parents[2]


def tone(frames: int = 4800, level: float = 0.5) -> np.ndarray:
    return (level * np.sin(2 * np.pi * 440 * np.arange(frames) / RATE)).astype(np.float32)


def process(*args: str):
    return runner.invoke(app, ["process", *args, "-m", "host_models:small_codec"])


def one_error_line(result, words: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], result.output


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("link", ["same path", "symbolic link", "hard link"])
def test_the_input_is_never_the_output_unless_asked(tmp_path, link):
    source = tmp_path / "song.wav"
    sf.write(str(source), tone(), RATE, subtype="PCM_16")
    before = source.read_bytes()
    destination = {"same path": source, "symbolic link": tmp_path / "link.wav", "hard link": tmp_path / "hard.wav"}[
        link
    ]
    if link == "symbolic link":
        destination.symlink_to(source)
    elif link == "hard link":
        os.link(source, destination)
    one_error_line(process(str(source), str(destination)), "is the input")
    assert source.read_bytes() == before
    assert "--overwrite-input" in process(str(source), str(destination)).output
    # asked for explicitly: replaced atomically once the run succeeded; a symbolic link is followed (the input
    # is replaced, the link stays); a hard link is broken (the name given gets the output, as sed -i does)
    result = process(str(source), str(destination), "--overwrite-input")
    assert result.exit_code == 0, result.output
    replaced = destination if link == "hard link" else source
    assert replaced.read_bytes() != before and sf.info(str(replaced)).frames == 4800
    if link == "symbolic link":
        assert destination.is_symlink()
    if link == "hard link":
        assert source.read_bytes() == before


def test_demo_does_not_write_over_its_input_either(tmp_path):
    sf.write(str(tmp_path / "in.wav"), tone(), RATE, subtype="PCM_16")
    before = (tmp_path / "in.wav").read_bytes()
    result = runner.invoke(app, ["demo", "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "in.wav")])
    assert result.exit_code == 2 and "is the input" in " ".join(result.output.split()), result.output
    assert (tmp_path / "in.wav").read_bytes() == before


def test_stale_partials_of_dead_processes_are_removed_and_no_others(tmp_path):
    sf.write(str(tmp_path / "in.wav"), tone(), RATE)
    stale = partial_path(tmp_path / "out.wav", dead_pid())
    stale.write_bytes(b"half")
    other_stale = partial_path(tmp_path / "other.flac", dead_pid())
    other_stale.write_bytes(b"half")
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        running = partial_path(tmp_path / "out.wav", writer.pid)  # a process that runs: maybe writing
        running.write_bytes(b"in progress")
        not_ours = tmp_path / ".out.wav.notapid.partial"
        not_ours.write_bytes(b"someone else's")
        result = process(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"))
    finally:
        writer.kill()
        writer.wait()
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not other_stale.exists()
    assert running.exists() and not_ours.exists()
    assert remove_stale_partials(tmp_path) == [running]  # its process has ended now


def test_a_run_killed_while_writing_leaves_a_partial_that_the_next_run_removes(tmp_path):
    sf.write(str(tmp_path / "in.wav"), tone(), RATE)
    script = (
        "import os, signal, soundfile\n"
        "from streamify.host import load_host_model, process_file\n"
        "real = soundfile.write\n"
        "def dying(path, *args, **kwargs):\n"
        "    with open(path, 'wb') as f:\n"
        "        f.write(b'RIFF half a file')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "soundfile.write = dying\n"
        f"process_file({str(tmp_path / 'in.wav')!r}, {str(tmp_path / 'out.wav')!r},"
        " load_host_model('host_models:small_codec'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(Path(__file__).parent)])}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partials = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert [p.name for p in partials] == [f".out.wav.{int(partials[0].name.split('.')[-2])}.partial"]
    assert process(str(tmp_path / "in.wav"), str(tmp_path / "out.wav")).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_nan_and_infinite_input_samples_are_refused_with_where_or_zeroed_when_asked(tmp_path):
    x = np.stack([tone(), tone()])
    x[1, 2400] = np.nan  # channel 2 at 50 ms
    x[0, 3600:3602] = np.inf
    sf.write(str(tmp_path / "in.wav"), x.T, RATE, subtype="FLOAT")
    result = process(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"))
    one_error_line(result, "holds 3 NaN and infinite samples")
    assert "first at 0.050 s (sample 2400, channel 2)" in result.output and "--nan zero" in result.output
    assert not (tmp_path / "out.wav").exists()
    result = process(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--nan", "zero")
    assert result.exit_code == 0, result.output
    written, _ = sf.read(str(tmp_path / "out.wav"), always_2d=True)
    assert np.isfinite(written).all()
    clean = x.copy()
    clean[~np.isfinite(clean)] = 0.0
    expected = process_file(  # the same as a file that had zeros there
        _write(tmp_path / "clean.wav", clean), tmp_path / "expected.wav", load_host_model("host_models:small_codec")
    )
    assert expected.report is not None
    np.testing.assert_array_equal(written, sf.read(str(tmp_path / "expected.wav"), always_2d=True)[0])
    with pytest.raises(HostError, match="1 NaN sample"):
        non_finite(np.array([[0.0, np.nan]], np.float32), RATE, "x")


def _write(path: Path, x: np.ndarray) -> Path:
    sf.write(str(path), x.T, RATE, subtype="FLOAT")
    return path


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_output_at_the_input_rate_and_sample_format_by_default(tmp_path, subtype):
    sf.write(str(tmp_path / "in.wav"), tone(4410, 0.3), 44100, subtype=subtype)
    model = ["--sample-rate", "48000"]
    assert process(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), *model).exit_code == 0
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.samplerate, info.subtype, info.frames) == (44100, subtype, 4410)
    result = process(str(tmp_path / "in.wav"), str(tmp_path / "m.wav"), *model, "--model-rate", "--subtype", "FLOAT")
    assert result.exit_code == 0, result.output
    info = sf.info(str(tmp_path / "m.wav"))
    assert (info.samplerate, info.subtype, info.frames) == (48000, "FLOAT", 4800)


def test_an_input_format_that_cannot_hold_the_output_gives_float_and_says_so(tmp_path):
    from test_file_checks import loud_model

    sf.write(str(tmp_path / "in.wav"), tone(), RATE, subtype="PCM_16")
    result = process_file(tmp_path / "in.wav", tmp_path / "out.wav", load_host_model(loud_model(), channels=1), 480)
    assert result.subtype == "FLOAT" and result.clipped == 0
    assert any("the input's PCM_16 does not fit" in note for note in result.report.notes)
    explicit = process_file(
        tmp_path / "in.wav", tmp_path / "o16.wav", load_host_model(loud_model(), channels=1), 480, subtype="PCM_16"
    )
    assert explicit.subtype == "PCM_16" and explicit.clipped > 0
