"""``streamify info`` and the command line's model loading."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from streamify import StreamingError
from streamify.cli import app
from streamify.loading import load_model, streaming_model

runner = CliRunner()


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def make():
                return nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 1, 4, stride=2, padding=1))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models:make"
    sys.modules.pop("my_models", None)


def test_info_on_the_builtin_model():
    result = runner.invoke(app, ["info", "--sample-rate", "16000"])
    assert result.exit_code == 0, result.output
    assert "latency" in result.output and "74 output frames" in result.output
    assert "buffer multiple" in result.output and "8 samples" in result.output


def test_info_converts_a_factory_model(factory_module):
    result = runner.invoke(app, ["info", factory_module, "--sample-rate", "16000", "--length", "256"])
    assert result.exit_code == 0, result.output
    assert "2 output frames = 4 samples (0.25 ms)" in result.output
    assert "2 input samples per output frame" in result.output


def test_info_guesses_the_channels_and_reads_the_models_sample_rate(tmp_path, monkeypatch):
    # a stereo model whose sample_rate attribute sets the ms figures: no --channels, no --sample-rate needed
    (tmp_path / "stereo_models.py").write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def make():
                model = nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.Conv1d(4, 2, 4, stride=2, padding=1))
                model.sample_rate = 16000
                return model
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        result = runner.invoke(app, ["info", "stereo_models:make", "--length", "256"])
    finally:
        sys.modules.pop("stereo_models", None)
    assert result.exit_code == 0, result.output
    assert "2 output frames = 4 samples (0.25 ms)" in result.output


def test_weights_are_loaded_with_weights_only(factory_module, tmp_path):
    model = load_model(factory_module)
    state = {k: torch.full_like(v, 0.5) for k, v in model.state_dict().items()}
    path = tmp_path / "w.pt"
    torch.save(state, path)
    loaded = load_model(factory_module, path)
    assert all(torch.all(v == 0.5) for v in loaded.state_dict().values())
    torch.save({"weights": object()}, tmp_path / "evil.pt")
    with pytest.raises(
        StreamingError, match=r"evil\.pt holds Python objects besides tensors \(.*object\).*weights_only=True"
    ):
        load_model(factory_module, tmp_path / "evil.pt")


def test_info_exits_2_when_the_conversion_refuses(tmp_path, monkeypatch):
    """A refusal is a failure of the command: status 2 and the reason in one line (it once exited 0)."""
    (tmp_path / "refused_models.py").write_text(
        textwrap.dedent(
            """
            import torch
            import torch.nn as nn

            class Reverse(nn.Module):
                def forward(self, x):
                    return torch.flip(x, [-1])

            def make():
                return nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), Reverse())
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        result = runner.invoke(app, ["info", "refused_models:make", "--length", "256"])
    finally:
        sys.modules.pop("refused_models", None)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "flip" in lines[0], result.output
    assert "latency" not in result.output


def test_bad_model_names_are_explained():
    with pytest.raises(StreamingError, match="package.module:factory"):
        load_model("nonsense")
    with pytest.raises(StreamingError, match="cannot import"):
        load_model("no_such_module_xyz:make")


def test_streaming_model_converts_plain_models_only():
    plain = nn.Conv1d(1, 1, 3, padding=1)
    stream = streaming_model(plain, channels=1, length=64)
    assert stream.delay == 1
    demo = load_model("demo")
    assert streaming_model(demo, channels=1) is demo
