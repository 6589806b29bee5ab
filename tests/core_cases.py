"""Models and helpers shared by the state, validation, TorchScript and container tests.

Every model here takes 2 input channels and is built in float64 from a fixed seed, so
that two calls of :func:`build` give identical models (same weights, fresh state).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Union

import torch
from torch import Tensor, nn

from streamify.exactness import compare_streamed
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
    StreamingModule,
)

#: max abs error of a float64 stream against its reference
TOL = 1e-10

Output = Union[Tensor, List[Tensor]]

#: one model per layer kind, then containers; all take 2 input channels
FACTORIES: Dict[str, Callable[[], StreamingModule]] = {
    "conv": lambda: Conv1d(2, 3, 3, padding="same"),
    "conv_strided": lambda: Conv1d(2, 3, 4, stride=2, padding=1),
    "conv_reflect": lambda: Conv1d(2, 3, 5, dilation=2, padding=4, padding_mode="reflect"),
    "conv_transpose": lambda: ConvTranspose1d(2, 3, 6, stride=2, padding=1),
    "avg_pool": lambda: AvgPool1d(2),
    "max_pool": lambda: MaxPool1d(3, 1, 1),
    "nearest": lambda: NearestUpsample(2),
    "linear": lambda: LinearUpsample(3),
    "delay": lambda: Delay(3),
    "crop": lambda: Crop(2, 1),
    "pad": lambda: Pad(2, 1),
    "lstm": lambda: LSTM(2, 4),
    "gru": lambda: GRU(2, 4, num_layers=2),
    "pointwise": lambda: Pointwise(nn.Tanh()),
    "sequential": lambda: Sequential(
        Conv1d(2, 4, 3, padding=1),
        nn.ReLU(),
        Conv1d(4, 4, 4, stride=2, padding=1),
        LSTM(4, 4),
        ConvTranspose1d(4, 2, 5, 2, 1),
        LinearUpsample(2),
        AvgPool1d(2),
    ),
    "branches": lambda: Branches(
        Conv1d(2, 3, 5, padding=2),
        Sequential(Conv1d(2, 3, 4, stride=2, padding=1), NearestUpsample(2)),
        Conv1d(2, 3, 1),
        merge="cat",
    ),
    "residual": lambda: Residual(Sequential(Conv1d(2, 2, 3, padding=2, dilation=2), nn.ELU(), Conv1d(2, 2, 1))),
    "heads": lambda: Heads(
        Conv1d(2, 3, 3, padding=1),
        Sequential(Conv1d(2, 3, 4, stride=2, padding=1), GRU(3, 2)),
        Sequential(Conv1d(2, 3, 3, padding=1), ConvTranspose1d(3, 3, 4, 2, 1)),
    ),
    "nested": lambda: Sequential(
        Residual(Conv1d(2, 2, 3, padding=1)),
        Branches(Sequential(Conv1d(2, 2, 4, stride=2, padding=1), NearestUpsample(2)), Delay(1), merge="prod"),
        Pad(1, 0),
        MaxPool1d(2),
        LSTM(2, 3),
    ),
}

LAYER_KINDS = [name for name in FACTORIES if name not in ("sequential", "branches", "residual", "heads", "nested")]
CONTAINER_KINDS = ["sequential", "branches", "residual", "heads", "nested"]
ALL_KINDS = list(FACTORIES)


def build(name: str, seed: int = 0) -> StreamingModule:
    """A fresh float64 model ``name``; the same ``seed`` gives the same weights."""
    torch.manual_seed(seed)
    return FACTORIES[name]().double()


def signal(batch: int, frames: int, channels: int = 2, seed: int = 0) -> Tensor:
    """A reproducible float64 random signal ``[batch, channels, frames]``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, frames, generator=generator, dtype=torch.float64)


def sizes_of(model: nn.Module, units: Sequence[int]) -> List[int]:
    """Buffer sizes ``units * buffer_multiple``."""
    return [u * model.buffer_multiple for u in units]


def stream(model: Callable[[Tensor], Output], x: Tensor, sizes: Sequence[int]) -> Output:
    """Feed ``x`` in buffers of ``sizes``; concatenate the outputs (per head for a list output)."""
    assert sum(sizes) == x.size(-1), (sizes, x.size(-1))
    outputs = []
    start = 0
    with torch.no_grad():
        for size in sizes:
            outputs.append(model(x[..., start : start + size]))
            start += size
    if isinstance(outputs[0], list):
        return [torch.cat([out[i] for out in outputs], -1) for i in range(len(outputs[0]))]
    return torch.cat(outputs, -1)


def as_list(output: Output) -> List[Tensor]:
    return output if isinstance(output, list) else [output]


def max_diff(a: Output, b: Output) -> float:
    """Largest abs difference of two outputs of the same shapes (shapes are asserted equal)."""
    worst = 0.0
    for u, v in zip(as_list(a), as_list(b), strict=True):
        assert u.shape == v.shape, (u.shape, v.shape)
        if u.numel():
            worst = max(worst, (u - v).abs().max().item())
    return worst


def assert_same(a: Output, b: Output, tol: float = TOL) -> None:
    """Equal shapes, and values within ``tol``."""
    diff = max_diff(a, b)
    assert diff <= tol, f"outputs differ by {diff}"


def assert_identical(a: Output, b: Output) -> None:
    """Bitwise equal outputs."""
    for u, v in zip(as_list(a), as_list(b), strict=True):
        assert u.shape == v.shape, (u.shape, v.shape)
        assert torch.equal(u, v), f"outputs differ by {(u - v).abs().max().item()}"


def assert_exact(
    streamed: Tensor, offline: Tensor, delay: int, warmup: int = 0, min_frames: int = 8, edge: int = 4
) -> None:
    """Streamed output equals the offline one shifted by ``delay``, from offline frame ``warmup`` on.

    Zero-padded models need no warm-up; linear upsampling (clamped at the signal's start offline)
    and reflect padding differ from offline at the first frames.
    """
    comparison = compare_streamed(streamed, offline, delay, warmup=warmup, edge=edge)
    assert comparison.compared_frames >= min_frames, comparison
    assert comparison.max_abs_error <= TOL, comparison
    # the comparison is not vacuous: a wrong delay would fail it
    off_by_one = compare_streamed(streamed, offline, delay + 1, warmup=warmup, edge=edge)
    assert not off_by_one.max_abs_error <= TOL, "the comparison does not see a one-frame shift"
