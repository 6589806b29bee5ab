"""Helpers of the exactness tests: signals, buffer schedules, streamed-versus-offline assertions.

The bar (issue "Streaming core", section "The bar: exactness"): the concatenated
streamed output equals the offline output of the same model shifted by ``delay``,
max abs error <= 1e-10 in float64 (relative <= 1e-5 in float32), after a warm-up
(0 for zero-padded models: a fresh stream then outputs ``delay`` zero frames followed
by the offline output) and away from the right edge.

Every assertion here also checks that enough frames were compared (no vacuous pass)
and that the same comparison one frame off (``delay - 1``, ``delay + 1``) fails by
far: the tolerance catches an off-by-one delay.
"""

from __future__ import annotations

import math
import os
import random
from typing import List, Optional, Sequence

import pytest
import torch
from torch import Tensor, nn

from streamify.exactness import Comparison, compare_streamed, stream_signal
from streamify.runtime.state import reset

#: max abs error of a float64 stream
ABS_TOL = 1e-10
#: max relative error (to the offline output's peak) of a float32 stream
REL_TOL_FLOAT32 = 1e-5
#: a comparison one frame off must fail by this factor over the tolerance (float64: abs, float32: rel)
SHIFT_MARGIN = 1e4
#: default minimum of compared frames per output
MIN_COMPARED = 16


def make_signal(batch: int, channels: int, frames: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    """A reproducible random signal ``[batch, channels, frames]``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, frames, generator=generator, dtype=torch.float64).to(dtype)


def irregular_sizes(total: int, multiple: int, seed: int = 0, max_units: int = 4) -> List[int]:
    """Buffer sizes adding up to ``total``, each a multiple of ``multiple``, varying from call to call."""
    if total % multiple:
        raise ValueError(f"{total} is not a multiple of {multiple}")
    rng = random.Random(seed)
    units = total // multiple
    sizes = []
    while units > 0:
        take = min(units, rng.randint(1, max_units))
        sizes.append(take * multiple)
        units -= take
    return sizes


def warmup_frames(model: nn.Module, extra_input_frames: int = 0) -> int:
    """Offline output frames that a non-zero start (reflect, replicate, linear clamp, ...) can reach.

    ``receptive_field`` (input frames) plus ``extra_input_frames`` (e.g. left pads that shift the
    offline output), turned into output frames, plus one frame of slack.
    """
    field = model.receptive_field
    if field < 0:
        raise ValueError("an unbounded receptive field has no finite warm-up")
    return math.ceil((field + extra_input_frames) / model.ratio) + 1


def signal_length(model: nn.Module, warmup: int, min_compared: int, frames: Optional[int] = None) -> int:
    """An input length, a multiple of ``buffer_multiple``, long enough for ``min_compared`` compared frames."""
    multiple = model.buffer_multiple
    if frames is None:
        field = max(model.receptive_field, 1)
        needed_out = max(model.delay, 0) + warmup + 2 * min_compared + math.ceil(field / model.ratio)
        frames = math.ceil(needed_out * model.ratio) + field
    units = max(math.ceil(frames / multiple), 6)
    return units * multiple


def _check(
    comparison: Comparison,
    streamed: Tensor,
    offline: Tensor,
    delay: int,
    warmup: int,
    edge: int,
    min_compared: int,
    dtype: torch.dtype,
    what: str,
    check_shift: Optional[bool],
) -> None:
    assert comparison.compared_frames >= min_compared, (
        f"{what}: only {comparison.compared_frames} frames compared (need {min_compared}); "
        f"streamed {streamed.size(-1)}, offline {offline.size(-1)}, delay {delay}, warmup {warmup}"
    )
    assert comparison.offline_scale > 0, f"{what}: the offline output is all zeros: nothing was tested"
    if dtype == torch.float64:
        assert comparison.max_abs_error <= ABS_TOL, (
            f"{what}: max abs error {comparison.max_abs_error:.3e} (delay {delay})"
        )
    else:
        assert comparison.max_rel_error <= REL_TOL_FLOAT32, (
            f"{what}: max relative error {comparison.max_rel_error:.3e} (delay {delay})"
        )
    if check_shift is None:  # only where the offline output changes over time (random models may be flat)
        compared = offline[..., warmup + 1 : offline.size(-1) - edge - 1]
        check_shift = compared.size(-1) > 1 and compared.diff(dim=-1).abs().max().item() > SHIFT_MARGIN * ABS_TOL
    if check_shift:
        for wrong in (delay - 1, delay + 1):
            shifted = compare_streamed(streamed, offline, wrong, warmup + 1, edge + 1)
            assert shifted.compared_frames > 0
            if dtype == torch.float64:
                error, bar = shifted.max_abs_error, SHIFT_MARGIN * ABS_TOL
            else:
                error, bar = shifted.max_rel_error, SHIFT_MARGIN / 100 * REL_TOL_FLOAT32
            assert error > bar, (
                f"{what}: the comparison at the wrong delay {wrong} nearly passes too "
                f"(error {error:.3e}): the test could not see an off-by-one delay"
            )


def assert_streams_exactly(
    model: nn.Module,
    channels: Optional[int] = None,
    *,
    frames: Optional[int] = None,
    batch: int = 2,
    sizes: Optional[Sequence[int]] = None,
    seed: int = 0,
    warmup: int = 0,
    edge: int = 0,
    min_compared: int = MIN_COMPARED,
    dtype: torch.dtype = torch.float64,
    check_shift: Optional[bool] = True,
) -> Comparison:
    """Stream a random signal through ``model`` (a fresh stream) and compare with its offline output.

    ``channels`` defaults to ``model.in_channels``; ``sizes`` to an irregular schedule of
    multiples of ``model.buffer_multiple``; ``warmup`` and ``edge`` are offline frames left out
    at the start and the end. With ``warmup`` 0, the model must be exact from the first frame:
    its first ``delay`` streamed frames are zeros and the rest is the offline output.
    ``check_shift``: the comparison one frame off must fail (None: unless the offline output is flat).
    """
    model = model.to(dtype)
    if channels is None:
        channels = model.in_channels
        assert channels > 0, "give the channel count of a model that accepts any"
    if sizes is None:
        length = signal_length(model, warmup, min_compared, frames)
        sizes = irregular_sizes(length, model.buffer_multiple, seed)
    length = sum(sizes)
    assert all(size % model.buffer_multiple == 0 for size in sizes)
    x = make_signal(batch, channels, length, seed, dtype)
    reset(model)
    streamed = stream_signal(model, x, sizes)
    reset(model)
    with torch.no_grad():
        offline = model.offline(x)
    delay = model.delay
    assert streamed.size(-1) * model.ratio == length, "the stream emitted a wrong number of frames"
    if warmup == 0 and delay > 0:
        assert streamed[..., :delay].abs().max().item() == 0.0, "a fresh stream must start with delay zero frames"
    comparison = compare_streamed(streamed, offline, delay, warmup, edge)
    what = f"{type(model).__name__} sizes={list(sizes)[:6]}..."
    _check(comparison, streamed, offline, delay, warmup, edge, min_compared, dtype, what, check_shift)
    return comparison


def stream_heads(model: nn.Module, x: Tensor, sizes: Sequence[int]) -> List[Tensor]:
    """Like :func:`streamify.exactness.stream_signal` for a model that returns a list of heads."""
    outputs: List[List[Tensor]] = []
    start = 0
    with torch.no_grad():
        for size in sizes:
            outputs.append(model(x[..., start : start + size]))
            start += size
    return [torch.cat([step[i] for step in outputs], -1) for i in range(len(outputs[0]))]


def assert_heads_stream_exactly(
    model: nn.Module,
    channels: int,
    *,
    frames: int,
    batch: int = 2,
    seed: int = 0,
    min_compared: int = MIN_COMPARED,
) -> List[Comparison]:
    """Each head of a :class:`streamify.layers.Heads` streams its offline head, lagging by ``delays[i]``."""
    model = model.double()
    length = math.ceil(frames / model.buffer_multiple) * model.buffer_multiple
    sizes = irregular_sizes(length, model.buffer_multiple, seed)
    x = make_signal(batch, channels, length, seed)
    reset(model)
    streamed = stream_heads(model, x, sizes)
    reset(model)
    with torch.no_grad():
        offline = model.offline(x)
    assert len(streamed) == len(offline) == len(model.delays)
    comparisons = []
    for i, (s, o, delay) in enumerate(zip(streamed, offline, model.delays)):
        comparison = compare_streamed(s, o, delay)
        _check(comparison, s, o, delay, 0, 0, min_compared, torch.float64, f"head {i}", True)
        comparisons.append(comparison)
    return comparisons


#: import name -> the name pip installs it by, where they differ (``pip install --no-deps dac`` installs nothing useful)
DISTRIBUTIONS = {
    "dac": "descript-audio-codec",
    "rave": "acids-rave",
    "cached_conv": "cached-conv",
    "gin": "gin-config",
    "jack": "JACK-Client",
}


def install_hint(package: str) -> str:
    """``pip install --no-deps <distribution>`` for the import name ``package`` (the name on PyPI)."""
    return f"pip install --no-deps {DISTRIBUTIONS.get(package, package)}"


def skip_or_fail_in_ci(message: str) -> None:
    """Skip the calling test for want of an optional package; on CI (``CI=true``), where every extra the
    tests use is installed, fail instead: a missing package there is a broken install, not an option."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{message} (CI=true: the tests' extras must be installed)")
    pytest.skip(message)


def small_codec() -> nn.Sequential:
    """A small seeded codec ``[B, 1, T] -> [B, 1, T]``: a conv, a stride-2 conv and a transposed conv (seed 0)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv1d(4, 4, 4, stride=2, padding=1),
        nn.ConvTranspose1d(4, 1, 2, 2),
    ).eval()
