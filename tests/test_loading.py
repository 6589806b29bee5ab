"""streamify.loading: one room resolves a model spec for every command, the host and serve."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import assert_streams_exactly
from streamify import StreamingError
from streamify.loading import Kind, example, guess_channels, kind_of, resolve, to_stream


class Stereo(nn.Module):
    """Two channels in (its first conv's), one out; records its rate."""

    sample_rate = 44100

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_kind_of_reads_the_spec_without_loading(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.gin").write_text("")
    cases = {
        "demo": Kind.builtin,
        "pretrained": Kind.builtin,
        "model.ts": Kind.torchscript,
        "MODEL.ONNX": Kind.onnx,
        "fx.nm": Kind.neutone,
        "mymodel:build": Kind.factory,
        "weights.pt": Kind.checkpoint,
        "last.ckpt": Kind.checkpoint,  # no config.gin near it: streamify train's checkpoint
        str(run): Kind.rave_run,
    }
    assert {spec: kind_of(spec) for spec in cases} == cases
    assert kind_of(Stereo()) is Kind.module
    assert [k for k in Kind if k.exported] == [Kind.torchscript, Kind.onnx, Kind.neutone]


def test_a_module_resolves_with_its_first_convs_channels_and_its_rate() -> None:
    resolved = resolve(Stereo())
    assert (resolved.kind, resolved.spec, resolved.channels, resolved.channels_guessed) == (
        Kind.module,
        "Stereo",
        2,
        True,
    )
    assert (resolved.sample_rate, resolved.streaming, resolved.delay, resolved.path) == (44100, False, None, None)
    given = resolve(Stereo(), channels=2, sample_rate=48000)
    assert (given.channels_guessed, given.sample_rate) == (False, 48000)


def test_to_stream_converts_exactly(tmp_path) -> None:
    """load -> channels -> example -> convert, in one function: the stream equals offline from the first sample."""
    stream = to_stream(resolve(Stereo()), length=256, dtype=torch.float64)
    assert stream.in_channels == 2
    assert assert_streams_exactly(stream, 2, frames=1024).max_abs_error <= 1e-10


def test_a_streaming_model_is_used_as_it_is() -> None:
    resolved = resolve("demo")
    assert resolved.streaming and resolved.delay == resolved.module.delay and not resolved.channels_guessed
    assert to_stream(resolved) is resolved.module


def test_exported_files_are_found_not_loaded(tmp_path) -> None:
    path = tmp_path / "model.ts"
    path.write_bytes(b"not opened here")
    resolved = resolve(str(path))
    assert (resolved.kind, resolved.module, resolved.path, resolved.streaming) == (Kind.torchscript, None, path, True)
    with pytest.raises(StreamingError, match="streams as it is in a host"):
        to_stream(resolved)
    with pytest.raises(StreamingError, match=r"--weights do not apply to the exported TorchScript file"):
        resolve(str(path), weights="w.pt")
    with pytest.raises(StreamingError, match="model file .*missing.onnx does not exist"):
        resolve(str(tmp_path / "missing.onnx"))


def test_the_first_conv_is_found_once_for_guessing_and_for_refusals() -> None:
    """The channel guess and the converter's channel refusal read the same first conv."""
    from streamify.convert.trial_runs import _channel_mismatch, first_conv

    model = Stereo()
    assert first_conv(model)[0] == "net.0: Conv1d" and guess_channels(model) == 2
    assert guess_channels(nn.ReLU()) == 1
    assert "the first conv (net.0: Conv1d) takes 2" in _channel_mismatch(model, example(1, 16))
    assert _channel_mismatch(model, example(2, 16)) is None


def test_the_example_is_seeded() -> None:
    assert torch.equal(example(2, 64), example(2, 64)) and example(1, 8, torch.float64).dtype == torch.float64


def test_the_package_docstring_example_runs() -> None:
    import doctest

    import streamify.loading

    result = doctest.testmod(streamify.loading)
    assert result.attempted >= 1 and result.failed == 0
