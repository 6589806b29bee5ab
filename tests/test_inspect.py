"""streamify.inspect: per-layer delays, rates and caches, and the totals."""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import nn

import streamify
import streamify.layers as sl


def test_inspect_hand_built_model_reports_layers_and_totals(capsys):
    model = sl.Sequential(
        sl.Conv1d(1, 4, 3, padding=1),
        nn.ReLU(),
        sl.Conv1d(4, 4, 4, stride=2, padding=1),
        sl.ConvTranspose1d(4, 1, 4, 2, 1),
    )
    report = streamify.inspect(model, sample_rate=48000, batch=2)
    printed = capsys.readouterr().out
    assert [layer.kind for layer in report.layers] == ["Conv1d", "Pointwise", "Conv1d", "ConvTranspose1d"]
    assert [layer.output_rate for layer in report.layers] == [1, 1, 2, 1]
    assert report.delay == model.delay
    assert report.latency_samples == model.delay * model.ratio
    assert abs(report.latency_ms - model.delay / 48.0) < 1e-12
    assert report.buffer_multiple == 2
    # caches of batch 2 in float32: conv1 2 frames x 1 ch, conv2 3 x 4, tail 2 x 1, plus warm-up counters
    conv1 = report.layers[0].cache_bytes
    assert conv1 >= 2 * 1 * 2 * 4
    assert report.cache_bytes >= sum(layer.cache_bytes for layer in report.layers)
    assert "latency" in printed and "ms at 48000 Hz" in printed and "buffer multiple: 2" in printed
    assert model.stream_batch == 0, "inspect works on a copy: the model's stream is untouched"


def test_inspect_converted_model_lists_graph_layers():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv1d(1, 2, 5, padding=2)
            self.b = nn.Conv1d(2, 2, 3, stride=3)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    stream = streamify.convert(Net(), torch.randn(1, 1, 60))
    report = streamify.inspect(stream, show=False)
    names = [layer.name for layer in report.layers]
    assert names == ["a:Conv1d", "b:Conv1d"]
    assert report.layers[1].output_rate == Fraction(3)
    assert report.ratio == 3 and report.buffer_multiple == 3
    assert report.latency_samples == stream.delay * 3
