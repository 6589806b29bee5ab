"""A failed write of ``streamify process`` says why: a full disk is named as such, not "System error."

The disk is made full for real: soundfile's writer is pointed at ``/dev/full``, where every write
fails with ENOSPC inside libsndfile, exactly as on a full disk (no root, no mount needed).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from streamify.cli import app

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


@pytest.fixture
def full_disk(monkeypatch):
    """Every ``soundfile.write`` goes to /dev/full (ENOSPC), whatever file it was asked for."""
    real = sf.write

    def to_full(file, *args, **kwargs):
        return real("/dev/full", *args, **kwargs)

    monkeypatch.setattr(sf, "write", to_full)


def test_process_on_a_full_disk_says_the_disk_is_full(tmp_path, full_disk) -> None:
    audio = (0.1 * np.sin(np.arange(4096) / 10)).astype(np.float32)
    with sf.SoundFile(str(tmp_path / "in.wav"), "w", 48000, 1, "FLOAT") as handle:
        handle.write(audio)
    result = CliRunner().invoke(
        app, ["process", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "-m", "host_models:small_codec"]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "the disk is full" in lines[0] and "System error" not in lines[0], lines[0]
    assert str(tmp_path / "out.wav") in lines[0] and "another disk" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]  # no output, no partial file


def test_other_system_errors_name_their_cause(tmp_path) -> None:
    from streamify.host.files import write_failure

    error = OSError(13, "Permission denied")
    message = write_failure(tmp_path / "out.wav", error, 100)
    assert message == f"streamify: cannot write {tmp_path / 'out.wav'}: [Errno 13] Permission denied"
