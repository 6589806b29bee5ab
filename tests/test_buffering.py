"""AnyLengthStream: buffers of any length, the offline output delayed by exactly the reported latency."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from streamify import StreamingError
from streamify.convert import convert
from streamify.runtime.buffering import AnyLengthStream, dtype_name, extra_latency_frames


def _model() -> nn.Module:
    """Strides 4 and 3 (buffer multiple 12), look-ahead, a transposed conv back to audio rate (float64)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv1d(1, 4, 5, padding=2),
            nn.ELU(),
            nn.Conv1d(4, 6, 8, stride=4, padding=2),
            nn.Conv1d(6, 6, 3, stride=3),
            nn.ELU(),
            nn.ConvTranspose1d(6, 1, 12, 12),
        )
    return model.double().eval()


MODEL = _model()
STREAM = convert(MODEL, torch.randn(1, 1, 240, dtype=torch.float64))
SIGNAL = torch.randn(2, 1, 720, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
OFFLINE = MODEL(SIGNAL).detach()


def _run(stream, lengths):
    out, start = [], 0
    with torch.no_grad():
        for n in lengths:
            out.append(stream(SIGNAL[..., start : start + n]))
            start += n
    return torch.cat(out, -1), start


def _error_after(y: torch.Tensor, lag: int) -> float:
    return float((y[..., lag:] - OFFLINE[..., : y.size(-1) - lag]).abs().max())


def test_latency_rule():
    assert STREAM.buffer_multiple == 12
    assert [extra_latency_frames(n, 2048) for n in (256, 512, 1024, 2048, 4096)] == [1792, 1536, 1024, 0, 0]
    assert extra_latency_frames(5, 12) == 11 and extra_latency_frames(8, 12) == 8 and extra_latency_frames(24, 12) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), scripted=st.booleans())
def test_any_length_is_offline_delayed_by_delay_plus_extra(n, scripted):
    stream = AnyLengthStream(convert(MODEL, torch.randn(1, 1, 240, dtype=torch.float64)))
    if scripted:
        stream = torch.jit.script(stream)
    y, length = _run(stream, [n] * (SIGNAL.size(-1) // n))
    lag = STREAM.delay + stream.extra_output_frames(n)
    assert y.size(-1) == length
    assert torch.all(y[..., :lag] == 0)
    assert _error_after(y, lag) <= 1e-10
    if lag < length:
        assert (y[..., lag : lag + 24] != 0).any()  # the latency is exact: the signal starts right there


def test_length_changes_continue_when_covered_and_restart_otherwise():
    stream = AnyLengthStream(convert(MODEL, torch.randn(1, 1, 240, dtype=torch.float64)))
    # started at 8 (extra 8): 4 and 16 keep the held-back input within 8 frames, the stream goes on
    y, _ = _run(stream, [8, 8, 4, 16, 8, 4, 4] + [8] * 80)
    assert _error_after(y, STREAM.delay + 8) <= 1e-10
    # started at 24 (extra 0): a 5-frame buffer is not covered: the stream restarts with the latency of 5
    stream.reset()
    _run(stream, [24, 24])
    with torch.no_grad():
        restarted = torch.cat([stream(SIGNAL[..., i : i + 5]) for i in range(0, 600, 5)], -1)
    assert stream.extra == 11  # 12 - gcd(5, 12)
    assert _error_after(restarted, STREAM.delay + stream.extra_output_frames(5)) <= 1e-10


def test_refused_buffers_change_nothing_and_name_dtypes():
    stream = AnyLengthStream(convert(MODEL, torch.randn(1, 1, 240, dtype=torch.float64)))
    with torch.no_grad():
        first = stream(SIGNAL[..., :8])
        for bad, message in (
            (torch.zeros(8), "3 dimensions|dimensions"),
            (torch.zeros(1, 2, 8, dtype=torch.float64), "input channels"),
            (torch.zeros(1, 1, 8), "expected dtype float64, got float32"),
            (torch.zeros(1, 1, 0, dtype=torch.float64), "buffer length 0"),
        ):
            with pytest.raises(StreamingError, match=message):
                stream(bad)
        rest = torch.cat([stream(SIGNAL[..., i : i + 8]) for i in range(8, 720, 8)], -1)
    assert _error_after(torch.cat([first, rest], -1), STREAM.delay + 8) <= 1e-10
    assert dtype_name(torch.int32) == "int32" and torch.jit.script(dtype_name)(torch.bfloat16) == "bfloat16"
