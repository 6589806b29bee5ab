"""Input a stream never holds: the frames a zero ``Pad`` adds before the offline signal's start.

A max pool after such a pad reads those frames as zeros offline; streaming, its cache stands for
them and must hold zeros too, not the pool's own ``-inf`` padding. A random signal of both signs
rarely shows a wrong frame (the max of a window usually comes from a positive sample), so these
tests feed a signal below zero everywhere: any cache frame left at ``-inf`` (or at any value other
than 0) changes an output frame by at least the signal's smallest magnitude (0.5).
"""

from __future__ import annotations

import pytest
import torch

from helpers import ABS_TOL
from streamify.exactness import compare_streamed, stream_signal
from streamify.layers import AvgPool1d, Conv1d, MaxPool1d, Pad, Sequential
from streamify.runtime.state import reset

POOLS = {
    "max3": lambda: MaxPool1d(3, 1),
    "max3_stride2_pad1": lambda: MaxPool1d(3, 2, 1),
    "max5": lambda: MaxPool1d(5, 1),
    "max4_stride2": lambda: MaxPool1d(4, 2),
    "max3_dilation2": lambda: MaxPool1d(3, 1, 0, 2),
}


def negative_signal(batch: int, channels: int, frames: int, seed: int = 0) -> torch.Tensor:
    """``[batch, channels, frames]`` float64 in ``[-1.5, -0.5)``: every sample below zero."""
    generator = torch.Generator().manual_seed(seed)
    return -0.5 - torch.rand(batch, channels, frames, generator=generator, dtype=torch.float64)


def assert_exact_from_the_start(model: Sequential, x: torch.Tensor, unit: int) -> None:
    sizes = [unit * k for k in (1, 2, 1, 3)]
    sizes.append(x.size(-1) - sum(sizes))
    reset(model)
    streamed = stream_signal(model, x, sizes)
    reset(model)
    with torch.no_grad():
        offline = model.offline(x)
    comparison = compare_streamed(streamed, offline, model.delay)
    assert comparison.compared_frames >= 16
    assert comparison.max_abs_error <= ABS_TOL, f"max abs error {comparison.max_abs_error:.3g} (delay {model.delay})"
    # not vacuous: the offline output starts with windows that read only the pad's zeros and the signal
    assert (offline[..., : max(-model.delay, 1)] == 0).any() or model.delay >= 0


@pytest.mark.parametrize("left", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_a_max_pool_after_a_pad_reads_its_zeros_on_a_negative_signal(left: int, pool: str) -> None:
    model = Sequential(Pad(left, 1), POOLS[pool]()).double()
    x = negative_signal(2, 2, 48 * model.buffer_multiple)
    assert_exact_from_the_start(model, x, model.buffer_multiple)


@pytest.mark.parametrize("left", [1, 2, 5])
def test_a_conv_then_pad_then_max_pool_streams_exactly(left: int) -> None:
    conv = Conv1d(2, 2, 3, padding=(0, 2)).double()
    with torch.no_grad():  # a conv whose output is below zero everywhere for a negative input
        conv.weight.copy_(torch.full_like(conv.weight, 0.2))
        conv.bias.fill_(-0.1)
    model = Sequential(conv, Pad(left), MaxPool1d(3, 1))
    assert_exact_from_the_start(model, negative_signal(2, 2, 64, seed=1), 1)


def test_an_avg_pool_after_a_pad_counts_the_zeros() -> None:
    model = Sequential(Pad(3, 1), AvgPool1d(4, 2, 2)).double()
    assert_exact_from_the_start(model, negative_signal(2, 2, 96, seed=2), model.buffer_multiple)


@pytest.mark.parametrize("left", [3, 4, 5])
def test_a_strided_conv_after_a_pad_keeps_the_frames_of_the_pad_itself(left: int) -> None:
    """Offline, a strided conv's first windows over the pad's zeros give its bias (not zero): the stream must
    emit them too (delay >= 0), since the next conv reads them through its own padding."""
    torch.manual_seed(2)
    strided = Conv1d(2, 2, 3, stride=2)
    with torch.no_grad():
        strided.bias.copy_(torch.tensor([0.7, -0.4]))
    model = Sequential(Pad(left), strided, Conv1d(2, 2, 3, padding=1)).double()
    assert model.layers[1].delay >= 0
    x = torch.randn(2, 2, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert_exact_from_the_start(model, x, model.buffer_multiple)
