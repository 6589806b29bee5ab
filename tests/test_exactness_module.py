"""streamify.exactness: streamed output against offline shifted by the delay."""

from __future__ import annotations

import pytest
import torch

from streamify.exactness import compare_streamed, stream_signal


def test_stream_signal_concatenates_the_buffers_and_refuses_sizes_that_miss_the_length():
    x = torch.arange(10.0).view(1, 1, 10)
    calls = []

    def model(chunk):
        calls.append(chunk.size(-1))
        return 2 * chunk

    assert torch.equal(stream_signal(model, x, [3, 5, 2]), 2 * x) and calls == [3, 5, 2]
    with pytest.raises(ValueError, match="buffer sizes add up to 9, the signal has 10 frames"):
        stream_signal(model, x, [4, 5])


def test_compare_streamed_aligns_by_the_delay_and_counts_the_frames():
    offline = torch.randn(1, 2, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    streamed = torch.cat([torch.zeros(1, 2, 3, dtype=torch.float64), offline[..., :17]], -1)  # delay 3
    exact = compare_streamed(streamed, offline, 3)
    assert exact.max_abs_error == 0.0 and exact.compared_frames == 17
    assert compare_streamed(streamed, offline, 2).max_abs_error > 0.1  # a wrong delay shows
    assert compare_streamed(streamed, offline, 3, warmup=5, edge=2).compared_frames == 12  # frames 5 to 16
    early = offline[..., 4:]  # delay -4: the stream never emits the first 4 offline frames
    assert compare_streamed(early, offline, -4).max_abs_error == 0.0
    assert compare_streamed(early, offline, -4).compared_frames == 16
