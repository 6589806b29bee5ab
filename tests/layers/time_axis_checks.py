"""Checks shared by the tests of the layers that move time between axes (framing, overlap-add, STFT, ISTFT).

Their inputs or outputs are not ``[batch, channels, time]`` signals (frames ``[batch, channels, size, time]``,
complex spectrograms), so these checks take the input itself. A layer may be fed a stream that lags the
offline input by ``input_delay`` frames: the stream then starts with that many frames of garbage (random,
large), which the layer must treat as the warm-up they are.
"""

from __future__ import annotations

import random
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from streamify.exactness import Comparison, compare_streamed, stream_signal
from streamify.layers import StreamingModule

#: max abs error of a float64 stream (as tests/helpers.py)
ABS_TOL = 1e-10
#: a comparison one frame off must fail by this factor over the tolerance
SHIFT_MARGIN = 1e4


def schedule(total: int, multiple: int, seed: int, max_units: int = 5) -> List[int]:
    """Buffer sizes adding up to ``total``, each a positive multiple of ``multiple``, varying from call to call."""
    assert total % multiple == 0, (total, multiple)
    rng = random.Random(seed)
    units, sizes = total // multiple, []
    while units > 0:
        take = min(units, rng.randint(1, max_units))
        sizes.append(take * multiple)
        units -= take
    return sizes


def with_garbage(x: Tensor, frames: int, seed: int = 99) -> Tensor:
    """``x`` after ``frames`` frames of large random values (a stream ``frames`` frames late)."""
    generator = torch.Generator().manual_seed(seed)
    shape = list(x.shape[:-1]) + [frames]
    if x.is_complex():
        garbage = torch.complex(
            torch.randn(shape, generator=generator, dtype=torch.float64),
            torch.randn(shape, generator=generator, dtype=torch.float64),
        ).to(x.dtype)
    else:
        garbage = torch.randn(shape, generator=generator, dtype=torch.float64).to(x.dtype)
    return torch.cat([100 * garbage, x], -1)


def assert_stream_matches(
    model: StreamingModule,
    x: Tensor,
    *,
    input_delay: int = 0,
    sizes: Optional[Sequence[int]] = None,
    seed: int = 0,
    warmup: int = 0,
    min_compared: int = 8,
    check_shift: bool = True,
) -> Comparison:
    """Stream ``x`` (``input_delay`` frames late) through ``model`` and compare with ``model.offline(x)``.

    ``warmup``: offline output frames left out at the start (0: exact from the first frame, after
    ``delay`` zero frames). The comparison one output frame off must fail by far.
    """
    model.configure(input_delay)
    stream_in = with_garbage(x, input_delay) if input_delay > 0 else x
    total = stream_in.size(-1)
    if sizes is None:
        sizes = schedule(total, model.buffer_multiple, seed)
    streamed = stream_signal(model, stream_in, sizes)
    model.reset()
    with torch.no_grad():
        offline = model.offline(x)
    delay = model.delay
    assert streamed.size(-1) * model.ratio == total, "the stream emitted a wrong number of frames"
    if warmup == 0 and delay > 0:
        assert streamed[..., :delay].abs().max().item() == 0.0, "a fresh stream must start with delay zero frames"
    comparison = compare_streamed(streamed, offline, delay, warmup)
    what = f"{model!r} input_delay={input_delay} sizes={list(sizes)[:8]}"
    assert comparison.compared_frames >= min_compared, f"{what}: only {comparison.compared_frames} frames compared"
    assert comparison.offline_scale > 0, f"{what}: the offline output is all zeros"
    assert comparison.max_abs_error <= ABS_TOL, f"{what}: max abs error {comparison.max_abs_error:.3e}"
    if check_shift:
        for wrong in (delay - 1, delay + 1):
            shifted = compare_streamed(streamed, offline, wrong, warmup + 1, 1)
            assert shifted.compared_frames > 0
            assert shifted.max_abs_error > SHIFT_MARGIN * ABS_TOL, (
                f"{what}: the comparison at the wrong delay {wrong} nearly passes too ({shifted.max_abs_error:.3e})"
            )
    return comparison


def assert_scripted_streams_as_eager(eager: StreamingModule, x: Tensor, input_delay: int = 0) -> None:
    """``torch.jit.script`` of a fresh copy streams ``x`` bit for bit as ``eager``, resets included."""
    import copy

    eager.configure(input_delay)
    scripted = torch.jit.script(copy.deepcopy(eager))
    x = with_garbage(x, input_delay) if input_delay > 0 else x
    sizes = schedule(x.size(-1), eager.buffer_multiple, seed=3)
    first = stream_signal(eager, x, sizes)
    assert torch.equal(stream_signal(scripted, x, sizes), first)
    scripted.reset([0])
    eager.reset([0])
    assert torch.equal(stream_signal(scripted, x, sizes), stream_signal(eager, x, sizes))
    scripted.reset()
    assert torch.equal(stream_signal(scripted, x, sizes), first)
    eager.reset()
