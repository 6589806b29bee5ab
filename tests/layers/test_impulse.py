"""The reported ``delay`` equals the delay measured with an impulse, for every layer kind.

Each layer is measured on its own and fed by a delayed, decimated stream (after a
strided conv with look-ahead), where its delay depends on the stream that feeds it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from streamify.exactness import measure_delay
from streamify.layers import (
    GRU,
    LSTM,
    AvgPool1d,
    Branches,
    Conv1d,
    ConvTranspose1d,
    Crop,
    Delay,
    Heads,
    LinearUpsample,
    MaxPool1d,
    NearestUpsample,
    Pad,
    Pointwise,
    Residual,
    Sequential,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


#: one entry per layer kind (and a few shapes of each): name, factory, input channels
LAYERS = [
    ("conv", lambda: Conv1d(2, 3, 5, padding=2), 2),
    ("conv-causal", lambda: Conv1d(2, 3, 5, padding=(4, 0)), 2),
    ("conv-lookahead-strided", lambda: Conv1d(2, 3, 4, stride=3, padding=(0, 3), dilation=2), 2),
    ("conv-same-groups", lambda: Conv1d(4, 4, 6, padding="same", groups=2), 4),
    ("conv-reflect", lambda: Conv1d(2, 3, 7, stride=2, padding=3, padding_mode="reflect"), 2),
    ("conv-replicate", lambda: Conv1d(2, 3, 3, padding=(2, 1), padding_mode="replicate"), 2),
    ("conv-over-padded", lambda: Conv1d(2, 3, 1, padding=2), 2),
    ("convT-6-2-1-0", lambda: ConvTranspose1d(2, 3, 6, 2, 1), 2),
    ("convT-5-2-1-0", lambda: ConvTranspose1d(2, 3, 5, 2, 1), 2),
    ("convT-14-7-4-1", lambda: ConvTranspose1d(2, 3, 14, 7, 4, 1), 2),
    ("convT-4-2-0-0", lambda: ConvTranspose1d(2, 3, 4, 2, 0), 2),
    ("convT-16-8-4-0", lambda: ConvTranspose1d(2, 3, 16, 8, 4), 2),
    ("convT-dilated-groups", lambda: ConvTranspose1d(4, 2, 3, 2, 2, 1, groups=2, dilation=3), 4),
    ("avgpool", lambda: AvgPool1d(4, 2, 1), 2),
    ("avgpool-no-pad-count", lambda: AvgPool1d(3, 1, 1, count_include_pad=False), 2),
    ("maxpool", lambda: MaxPool1d(3, 2, 1), 2),
    ("maxpool-dilated", lambda: MaxPool1d(3, 1, 2, dilation=2), 2),
    ("nearest", lambda: NearestUpsample(3), 2),
    ("linear-2", lambda: LinearUpsample(2), 2),
    ("linear-5", lambda: LinearUpsample(5), 2),
    ("delay", lambda: Delay(3), 2),
    ("crop", lambda: Crop(3, 1), 2),
    ("pad", lambda: Pad(2, 1), 2),
    ("lstm", lambda: LSTM(2, 3, num_layers=2), 2),
    ("gru", lambda: GRU(2, 3), 2),
    ("pointwise", lambda: Pointwise(nn.Tanh()), 2),
    ("sequential", lambda: Sequential(Conv1d(2, 3, 3, padding=(0, 2)), nn.ELU(), Conv1d(3, 2, 4, stride=2)), 2),
    ("residual", lambda: Residual(Sequential(nn.ELU(), Conv1d(2, 2, 3, dilation=3, padding=3))), 2),
    (
        "branches",
        lambda: Branches(
            Conv1d(2, 3, 4, stride=2, padding=(0, 3)),
            Sequential(Conv1d(2, 3, 3, padding=1), AvgPool1d(2)),
            merge="cat",
        ),
        2,
    ),
    (
        "autoencoder",
        lambda: Sequential(
            Conv1d(2, 4, 4, stride=2, padding=1),
            nn.ELU(),
            Conv1d(4, 4, 8, stride=4, padding=2),
            ConvTranspose1d(4, 4, 8, 4, 2),
            NearestUpsample(2),
            Conv1d(4, 2, 3, padding=1),
        ),
        2,
    ),
]


def _buffer(model: nn.Module) -> int:
    """A buffer length that puts the impulse (at a quarter of 8 buffers) after the stream's warm-up."""
    multiple = model.buffer_multiple
    field = max(model.receptive_field, 1)
    reach = abs(model.delay) * model.ratio + field + 16
    return multiple * max(1, math.ceil(reach / (2 * multiple)))


def _measure(model: nn.Module, channels: int) -> int:
    model = model.double()
    measured = measure_delay(model, model.offline, channels, _buffer(model))
    assert measured is not None, "no impulse response: nothing was measured"
    return measured


@pytest.mark.parametrize("name, factory, channels", LAYERS, ids=[entry[0] for entry in LAYERS])
def test_impulse_delay(name, factory, channels):
    model = factory()
    assert _measure(model, channels) == model.delay


@pytest.mark.parametrize("name, factory, channels", LAYERS, ids=[entry[0] for entry in LAYERS])
def test_impulse_delay_after_delayed_stream(name, factory, channels):
    """Fed by a stream that lags offline and runs at half the rate: the delay follows."""
    front = Conv1d(2, channels, 5, stride=2, padding=(0, 3))  # output n / 2 frames, delay 2
    model = Sequential(front, factory())
    assert _measure(model, 2) == model.delay


class _Head(nn.Module):
    def __init__(self, heads: Heads, index: int) -> None:
        super().__init__()
        self.heads = heads
        self.index = index

    def forward(self, x):
        return self.heads(x)[self.index]


def test_impulse_delay_heads():
    heads = Heads(
        Conv1d(2, 3, 3, padding=(0, 2)),
        Sequential(Conv1d(2, 2, 4, stride=2, padding=1), LSTM(2, 2)),
        Sequential(Conv1d(2, 2, 8, stride=4, padding=(3, 3)), ConvTranspose1d(2, 2, 4, 2, 1)),
    ).double()
    assert len(set(heads.delays)) > 1
    for i, delay in enumerate(heads.delays):
        measured = measure_delay(_Head(heads, i), lambda x, i=i: heads.offline(x)[i], 2, 4 * heads.buffer_multiple)
        assert measured == delay
