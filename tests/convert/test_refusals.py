"""What cannot stream is refused with an error naming the op, its source line and a fix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from streamify import StreamingError
from streamify.convert import convert


def _conv():
    return nn.Conv1d(2, 2, 3, padding=1)


class GlobalMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        y = self.conv(x)
        return y - y.mean(-1, keepdim=True)


class WithGroupNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()
        self.norm = nn.GroupNorm(1, 2)

    def forward(self, x):
        return self.norm(self.conv(x))


class WithAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        q = self.conv(x).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q).transpose(1, 2)


class WithNoise(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        y = self.conv(x)
        return y + 0.1 * torch.randn_like(y)


class LengthScaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        return self.conv(x) / x.shape[-1]


class KeepsTheEnd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        return self.conv(x)[..., -16:]


class Cumulative(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = _conv()

    def forward(self, x):
        return torch.cumsum(self.conv(x), dim=-1)


class Flip(nn.Module):
    def forward(self, x):
        return torch.flip(x, dims=[-1])


class ReturnsFinalState(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x.permute(2, 0, 1))
        return h.permute(1, 2, 0)


class TimeSplit(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=-1)
        return a + b


CASES = [
    (GlobalMean, "time axis", "y - y.mean(-1, keepdim=True)"),
    (WithGroupNorm, "whole time axis", "self.norm(self.conv(x))"),
    (WithAttention, "whole time axis", "scaled_dot_product_attention"),
    (LengthScaled, "signal length", "x.shape[-1]"),
    (KeepsTheEnd, "end of the signal", "[..., -16:]"),
    (Cumulative, "time axis", "torch.cumsum"),
    (Flip, "whole signal", "torch.flip"),
    (ReturnsFinalState, "final state", "self.lstm"),
    (TimeSplit, "splits along time", "x.chunk"),
]


@pytest.mark.parametrize("cls, reason, source", CASES, ids=[c[0].__name__ for c in CASES])
def test_refused_with_op_source_line_and_fix(cls, reason, source):
    with pytest.raises(StreamingError) as info:
        convert(cls(), torch.randn(1, 2, 64))
    message = str(info.value)
    assert reason in message
    assert source in message, message
    assert "test_refusals.py" in message, "the message names the source file and line"
    assert ";" in message, "the message ends with a suggested fix"


def test_random_ops_convert_and_are_verified_with_zero_draws():
    """Noise no longer needs allow_random: streamed with real draws, verified with draws of zeros."""
    stream = convert(WithNoise(), torch.randn(1, 2, 64))
    assert stream.random_kept


def test_random_ops_allowed_on_request():
    stream = convert(WithNoise(), torch.randn(1, 2, 64), allow_random=True)
    y = stream(torch.randn(1, 2, 32))
    assert y.shape == (1, 2, 32)


def test_example_must_be_three_dimensional():
    with pytest.raises(StreamingError, match=r"\[batch, channels, time\]"):
        convert(_conv(), torch.randn(2, 64))


def test_missing_method_is_named():
    with pytest.raises(StreamingError, match="no method 'encode'"):
        convert(_conv(), torch.randn(1, 2, 64), method="encode")


def test_an_example_with_the_wrong_channel_count_is_named_as_such():
    # the example's length is fine (a multiple of every stride): the refusal must not blame the length
    model = nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.Conv1d(4, 1, 4, stride=2, padding=1))
    with pytest.raises(StreamingError, match=r"example has 2 channels but the first conv \(0: Conv1d\) takes 1"):
        convert(model, torch.randn(1, 2, 256))
