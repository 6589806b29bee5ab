"""Exactness: a streamed output against the offline one, shifted by the delay; the delay measured by an impulse.

Used by the test suite, the demo, the conversion's verification and the exporters' self-checks.

**The bar in a dtype other than float64.** A stream computes the same sums as the offline model in
another order (per buffer, with cached frames), so in float32 the two differ by rounding. How much
depends on the model: a deep model whose float32 offline output is itself 1e-3 away from its float64
output streams as far from it. float64 proves the structure (max abs error 1e-10: an off-by-one frame,
a lost cache, a wrong delay line are all far above it); in the model's own dtype a stream is judged
against the model's own rounding, :func:`rounding_bar`: a small multiple (:data:`ROUNDING_MULTIPLE`)
of how far the model's offline output in that dtype is from its float64 output, plus the project's
relative bar (1e-5 of the peak) as a floor. An exactly rounded model keeps the plain 1e-5 bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch
from torch import Tensor, nn


def stream_signal(model: Callable[[Tensor], Tensor], x: Tensor, sizes: Sequence[int]) -> Tensor:
    """Feed ``x`` ``[batch, channels, time]`` to ``model`` in consecutive buffers of ``sizes`` and concatenate.

    ``sizes`` must add up to ``x``'s length.
    """
    if sum(sizes) != x.size(-1):
        raise ValueError(f"buffer sizes add up to {sum(sizes)}, the signal has {x.size(-1)} frames")
    outputs: List[Tensor] = []
    start = 0
    with torch.no_grad():
        for size in sizes:
            outputs.append(model(x[..., start : start + size]))
            start += size
    return torch.cat(outputs, -1)


#: how many times the model's own rounding (its offline output in its dtype against float64) a stream in that
#: dtype may differ from the offline output. Streamed and offline sums round differently: measured, the stream
#: is 2 to 3.5 times as far from offline as offline is from float64 (the shipped model in float32, on music and
#: on a sine); 16 leaves room for other CPUs' kernels. An off-by-one frame is orders of magnitude beyond, and the
#: float64 check, which proves the structure, comes first.
ROUNDING_MULTIPLE = 16.0
#: the floor of the bar in float32 and other dtypes: relative to the offline output's peak
RELATIVE_FLOOR = 1e-5


def rounding_bar(own_error: float, scale: float) -> float:
    """The largest max abs error accepted between a stream and its offline output in a dtype other than float64.

    Args:
        own_error: max abs difference between the model's offline output in that dtype and its float64
            offline output, on the same input (the model's own rounding).
        scale: peak of the offline output (max abs).

    Returns:
        ``RELATIVE_FLOOR * scale + ROUNDING_MULTIPLE * own_error``.

    >>> rounding_bar(0.0, 2.0)  # an exactly rounded model: the plain relative bar
    2e-05
    >>> rounding_bar(1e-3, 1.0) > 1e-3  # a deep model 1e-3 off float64 in float32: its stream as far is accepted
    True
    """
    return RELATIVE_FLOOR * max(scale, 1e-30) + ROUNDING_MULTIPLE * max(own_error, 0.0)


@dataclass
class Comparison:
    """How a streamed output matches the offline output shifted by ``delay``."""

    max_abs_error: float
    max_rel_error: float
    compared_frames: int
    offline_scale: float


def compare_streamed(streamed: Tensor, offline: Tensor, delay: int, warmup: int = 0, edge: int = 0) -> Comparison:
    """Compare ``streamed[t + delay]`` with ``offline[t]`` for ``warmup <= t < len - edge``.

    ``warmup`` and ``edge`` are counted in offline frames; the compared range starts at
    ``-delay`` at the earliest and ends where the streamed output ends.
    """
    # a negative delay (a model that pads more than it looks ahead) means the stream never emits
    # the first -delay offline frames: start where the streamed output has a counterpart
    warmup = max(warmup, -delay)
    stop = min(offline.size(-1) - edge, streamed.size(-1) - delay)
    if stop <= warmup:
        return Comparison(float("nan"), float("nan"), 0, 0.0)
    a = streamed[..., warmup + delay : stop + delay]
    b = offline[..., warmup:stop]
    error = (a - b).abs().max().item()
    scale = b.abs().max().item()
    return Comparison(error, error / max(scale, 1e-30), stop - warmup, scale)


def measure_delay(
    model: nn.Module,
    offline: Callable[[Tensor], Tensor],
    channels: int,
    buffer: int,
    buffers: int = 8,
    dtype: torch.dtype = torch.float64,
) -> Optional[int]:
    """Measure by an impulse how many output frames the streamed output lags the offline one.

    Streams an impulse (and silence, to cancel biases) through ``model`` and runs both
    through ``offline``; the delay is the shift between the first frames where the
    impulse responses differ from silence. Returns None if no response is seen.
    """
    from streamify.runtime.state import reset

    length = buffer * buffers
    impulse = torch.zeros(1, channels, length, dtype=dtype)
    impulse[:, :, length // 4] = 1.0
    silence = torch.zeros_like(impulse)
    sizes = [buffer] * buffers
    reset(model)
    streamed_impulse = stream_signal(model, impulse, sizes)
    reset(model)
    streamed_silence = stream_signal(model, silence, sizes)
    reset(model)
    with torch.no_grad():
        offline_response = offline(impulse) - offline(silence)
    streamed_response = streamed_impulse - streamed_silence
    tolerance = 1e-9 if dtype == torch.float64 else 1e-5
    onset_streamed = _onset(streamed_response, tolerance)
    onset_offline = _onset(offline_response, tolerance)
    if onset_streamed is None or onset_offline is None:
        return None
    return onset_streamed - onset_offline


def _onset(response: Tensor, tolerance: float) -> Optional[int]:
    active = (response.abs() > tolerance * max(response.abs().max().item(), 1.0)).flatten(0, -2).any(0)
    indices = torch.nonzero(active)
    return int(indices[0]) if indices.numel() else None
