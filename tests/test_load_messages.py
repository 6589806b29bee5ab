"""Files streamify cannot use are named for what they are, in one line: no PyTorch advice to unpickle, no escape codes.

``--weights`` and checkpoints are read with ``torch.load(weights_only=True)``; ``info`` reads a ``.ts`` file's
metadata without running it, and refuses a damaged archive instead of showing its metadata.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from streamify.cli import app

runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code, lines


def _files(folder: Path) -> dict:
    module = torch.nn.Sequential(torch.nn.Conv1d(1, 1, 3, padding=1))
    torch.save(module, folder / "module.pt")
    with (folder / "plain.pkl").open("wb") as handle:
        pickle.dump({"weight": [1.0, 2.0]}, handle)
    torch.save(module.state_dict(), folder / "good.pt")
    data = (folder / "good.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    (folder / "empty.pt").write_bytes(b"")
    return {
        "module.pt": "holds Python objects besides tensors (torch.nn.modules.container.Sequential)",
        "plain.pkl": "is a Python pickle (pickle.dump), not a file written by torch.save",
        "truncated.pt": "is truncated",
        "empty.pt": "is empty (0 bytes)",
    }


def _clean(line: str) -> None:
    assert "\x1b[" not in line and "weights_only=False" not in line and "weights_only` set to `False" not in line
    assert "likely a bug" not in line


def test_weights_that_cannot_be_loaded_are_named_for_what_they_are(tmp_path) -> None:
    for name, said in _files(tmp_path).items():
        code, lines = _invoke("export", "demo", "--weights", str(tmp_path / name), "-o", str(tmp_path / "x.ts"))
        errors = [line for line in lines if line.startswith("error:")]
        assert code == 2 and len(errors) == 1, lines
        assert said in errors[0], errors[0]
        if name in ("module.pt", "plain.pkl"):
            assert "truncated" not in errors[0], errors[0]
        _clean(errors[0])
    assert not (tmp_path / "x.ts").exists()


def test_checkpoints_that_cannot_be_loaded_are_named_for_what_they_are(tmp_path) -> None:
    for name, said in _files(tmp_path).items():
        if not name.endswith(".pt"):
            continue
        code, lines = _invoke("info", str(tmp_path / name))
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: cannot read checkpoint"), lines
        assert said in lines[0], lines[0]
        _clean(lines[0])


@pytest.fixture(scope="module")
def demo_ts(tmp_path_factory) -> Path:
    from streamify.export import export_nn_tilde
    from streamify.models.demo import build_demo_autoencoder

    path = tmp_path_factory.mktemp("ts") / "demo.ts"
    export_nn_tilde(build_demo_autoencoder().eval(), path, torch.randn(1, 1, 1024))
    return path


def test_info_refuses_a_damaged_ts_and_shows_a_sound_one(demo_ts, tmp_path) -> None:
    code, lines = _invoke("info", str(demo_ts))
    assert code == 0 and any("forward" in line for line in lines)
    data = bytearray(demo_ts.read_bytes())
    with zipfile.ZipFile(demo_ts) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)  # the weights or the code
    start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra) + member.file_size // 2
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    code, lines = _invoke("info", str(damaged))
    assert code == 2 and len(lines) == 1, lines
    assert "is damaged" in lines[0] and member.filename in lines[0] and "export the model again" in lines[0]


def test_info_on_an_empty_onnx_names_the_path(tmp_path) -> None:
    pytest.importorskip("onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    code, lines = _invoke("info", str(tmp_path / "empty.onnx"))
    assert code == 2 and len(lines) == 1, lines
    assert "PosixPath" not in lines[0] and str(tmp_path / "empty.onnx") in lines[0] and "is empty" in lines[0]
