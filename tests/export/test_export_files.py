"""Exported files are written whole or not at all: a failed write leaves the old file loadable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from streamify import StreamingError
from streamify.export import export_nn_tilde
from streamify.export.files import write_atomically

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _model(channels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, channels, 3, padding=1), nn.Conv1d(channels, 1, 3, padding=1)).eval()


_WRITE_UNDER_LIMIT = """
import resource, signal, sys, torch
from torch import nn
sys.path.insert(0, {src!r})
from streamify import StreamingError
from streamify.export import export_nn_tilde, export_onnx
torch.manual_seed(0)
model = nn.Sequential(nn.Conv1d(1, 512, 9, padding=4), nn.Conv1d(512, 1, 9, padding=4)).eval()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
try:
    if {path!r}.endswith(".onnx"):
        export_onnx(model, {path!r}, torch.randn(1, 1, 256), sample_rate=16000)
    else:
        export_nn_tilde(model, {path!r}, torch.randn(1, 1, 256), sample_rate=16000)
except StreamingError as error:
    print("REFUSED", error)
    sys.exit(0)
print("WROTE")
"""


@pytest.mark.slow  # two exports, one in a subprocess
@pytest.mark.parametrize("suffix", [".ts", ".onnx"])
def test_a_write_failing_under_a_size_limit_raises_and_keeps_the_old_file(tmp_path, suffix):
    if suffix == ".onnx":
        pytest.importorskip("onnx")
        ort = pytest.importorskip("onnxruntime")
    path = tmp_path / f"model{suffix}"
    small = _model(1)
    if suffix == ".onnx":
        from streamify.export import export_onnx

        export_onnx(small, path, torch.randn(1, 1, 256), sample_rate=16000)
    else:
        export_nn_tilde(small, path, torch.randn(1, 1, 256), sample_rate=16000)
    before = path.read_bytes()
    # the new model is bigger (36 kB of weights): its file cannot fit under a limit just above the old file's size
    limit = len(before) + 1024
    script = _WRITE_UNDER_LIMIT.format(src=SRC, limit=limit, path=str(path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]  # no abort, no traceback: a clean refusal
    assert "REFUSED" in result.stdout and "failed" in result.stdout and str(path) in result.stdout, result.stdout
    assert path.read_bytes() == before  # the old file is untouched ...
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # ... and no partial file remains
    if suffix == ".onnx":
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    else:
        loaded = torch.jit.load(str(path))
        assert loaded.get_methods() == ["forward"]


def test_write_atomically_replaces_whole_files_and_names_the_failure(tmp_path):
    path = tmp_path / "sub" / "file.bin"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    with pytest.raises(StreamingError, match="not-a-folder"):
        write_atomically(blocker / "file.bin", b"x")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["file.bin"]
