"""A per-item reset of an AnyLengthStream restarts that item exactly as a fresh stream, queued output included."""

from __future__ import annotations

import torch

from streamify.convert import convert
from streamify.runtime.buffering import AnyLengthStream
from test_buffering import MODEL, SIGNAL


def _stream() -> AnyLengthStream:
    return AnyLengthStream(convert(MODEL, torch.randn(1, 1, 240, dtype=torch.float64)))


def _feed(stream: AnyLengthStream, x: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([stream(x[..., i : i + n]) for i in range(0, x.size(-1), n)], -1)


def test_a_reset_item_restarts_fresh_and_the_other_goes_on() -> None:
    n = 8  # multiple 12: 8 frames of extra latency, whole multiples at calls 1, 4, 7... (no input held back)
    stream = _stream()
    whole = _feed(_stream(), SIGNAL, n)  # both items, never reset
    head = _feed(stream, SIGNAL[..., : 5 * n], n)  # five calls, then a reset of item 0
    stream.reset([0])
    tail = _feed(stream, SIGNAL[..., 5 * n :], n)
    # applied at call 7 (frame 48), the first later call that starts with no input held back
    fresh = _feed(_stream(), SIGNAL[:1, :, 6 * n :], n)
    lag = stream.stream.delay + stream.extra_output_frames(n)
    assert lag > 0 and torch.all(fresh[..., :lag] == 0)
    assert torch.allclose(tail[:1, :, n:], fresh, rtol=0, atol=1e-12), "item 0 does not restart as a fresh stream"
    assert torch.allclose(torch.cat([head, tail], -1)[1:], whole[1:], rtol=0, atol=1e-12), "item 1 was disturbed"
    assert torch.allclose(tail[:1, :, :n], whole[:1, :, 5 * n : 6 * n], rtol=0, atol=1e-12)
