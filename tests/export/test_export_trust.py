"""``streamify info x.ts`` reads the metadata without running the file: TorchScript files are programs."""

from __future__ import annotations

import json
from typing import Tuple

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from streamify import StreamingError
from streamify.cli import app
from streamify.export import read_info

runner = CliRunner()

INFO = {
    "format": "nn~ TorchScript",
    "streamify_version": "0.0-test",
    "torch_version": torch.__version__,
    "sample_rate": 48000,
    "methods": {
        "forward": {
            "in_channels": 1,
            "in_ratio": 1,
            "out_channels": 1,
            "out_ratio": 1,
            "delay_frames": 3,
            "delay_samples": 3,
            "buffer_multiple_samples": 1,
            "receptive_field_samples": 7,
            "checked_buffer_sizes": [256],
        }
    },
}


class Booby(nn.Module):
    """A module whose ``__setstate__`` (run by ``torch.jit.load``) raises: running the file shows."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value

    @torch.jit.export
    def __getstate__(self) -> Tuple[int, bool]:
        return (self.value, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[int, bool]) -> None:
        raise RuntimeError("the file's code ran")


@pytest.fixture
def crafted(tmp_path):
    path = tmp_path / "crafted.ts"
    torch.jit.save(torch.jit.script(Booby()), str(path), _extra_files={"streamify.json": json.dumps(INFO)})
    with pytest.raises(Exception, match="the file's code ran"):
        torch.jit.load(str(path))  # loading runs the file's code ...
    return path


def test_info_reads_the_metadata_without_running_the_file(crafted):
    assert read_info(crafted) == INFO  # ... reading its metadata does not
    result = runner.invoke(app, ["info", str(crafted)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "forward" in result.output and "3 samples" in result.output


def test_info_refuses_files_that_are_not_streamify_archives(tmp_path):
    truncated = tmp_path / "truncated.ts"
    truncated.write_bytes(b"PK\x03\x04 not a whole archive")
    plain = tmp_path / "plain.ts"
    torch.jit.save(torch.jit.script(nn.Identity()), str(plain))
    with pytest.raises(StreamingError, match="not a TorchScript file"):
        read_info(truncated)
    with pytest.raises(StreamingError, match="not written by streamify"):
        read_info(plain)
    with pytest.raises(StreamingError, match="no such file"):
        read_info(tmp_path / "missing.ts")
    for path in (truncated, plain):
        result = runner.invoke(app, ["info", str(path)])
        assert result.exit_code == 2 and "error" in result.output, result.output


def test_info_help_says_ts_files_are_programs():
    result = runner.invoke(app, ["info", "--help"])
    assert result.exit_code == 0
    assert "program" in result.output and "trust" in result.output
