"""Framing (``Tensor.unfold``), overlap-add (``F.fold``) and time folded into an axis and back, streamed exactly.

Each layer is streamed in float64 with random buffer schedules, fed streams of several delays (late streams
start with garbage that must not leak into the output), and compared with its offline op, to 1e-10 with the
comparison one frame off failing by far.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from time_axis_checks import assert_scripted_streams_as_eager, assert_stream_matches, schedule, stream_signal

from streamify.layers import (
    STFT,
    Conv1d,
    Frame,
    MergeTime,
    OverlapAddFrames,
    Pad,
    Sequential,
    SplitTime,
    StreamingError,
)
from streamify.runtime.state import get_state, set_state

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _signal(shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------- Frame


@SETTINGS
@given(
    size=st.integers(1, 12),
    step=st.integers(1, 12),
    input_delay=st.integers(0, 9),
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    seed=st.integers(0, 10**6),
)
def test_frame_streams_unfold_exactly(size, step, input_delay, lead, seed):
    frame = Frame(size, step).double()
    frame.configure(input_delay)
    frames = frame.delay + 12 + size // step
    length = frames * step - input_delay % step  # the late stream's length, garbage included, divides by step
    length += step * (length < size + 8 * step)
    x = _signal([2, *lead, length], seed)
    assert_stream_matches(frame, x, input_delay=input_delay, seed=seed)


@pytest.mark.parametrize(
    "size, step, input_delay, cache, delay", [(4, 2, 0, 2, 1), (4, 2, 1, 3, 2), (8, 3, 0, 6, 2), (2, 5, 3, 2, 1)]
)
def test_frame_timing_follows_the_strided_cache_rule(size, step, input_delay, cache, delay):
    frame = Frame(size, step)
    frame.configure(input_delay)
    assert (frame.cache_len, frame.delay, frame.buffer_multiple, frame.ratio) == (cache, delay, step, step)
    assert (cache + input_delay) % step == 0 and cache >= max(size - step, 0)


@pytest.mark.parametrize("pad", [1, 3, 7])
def test_frame_after_a_pad_streams_the_padded_frames(pad):
    """A stream ahead of offline (negative delay): the cache stands for the pad's zeros, as for convs.

    ``F.unfold`` with padding ``(0, pad)`` (``aten.im2col``) is this pad then the framing."""
    model = Sequential(Pad(pad, pad), Frame(6, 2)).double()
    x = _signal([2, 3, 80])
    cols = F.unfold(x.unsqueeze(2), (1, 6), padding=(0, pad), stride=(1, 2))
    assert torch.equal(model.offline(x).reshape(2, 3 * 6, -1), cols)
    assert_stream_matches(model, x)


def test_frame_is_f_unfold_reshaped():
    x = _signal([2, 3, 50])
    frames = Frame(7, 3).offline(x)
    cols = F.unfold(x.unsqueeze(2), (1, 7), stride=(1, 3))
    assert torch.equal(frames.reshape(2, 3 * 7, -1), cols)
    assert torch.equal(frames.movedim(-1, -2), x.unfold(-1, 7, 3))


def test_explicit_steps_equal_the_stateful_stream():
    """streamify.step from initial_state (the ONNX path: masks and positions computed as tensors)."""
    import streamify

    model = Sequential(Conv1d(1, 2, 3, padding=1), Frame(6, 2), OverlapAddFrames(6, 2, 1)).double()
    x = _signal([2, 1, 48])
    sizes = schedule(48, model.buffer_multiple, seed=5)
    expected = stream_signal(model, x, sizes)
    state = streamify.initial_state(model, batch=2)
    outputs, start = [], 0
    for size in sizes:
        y, state = streamify.step(model, x[..., start : start + size], state)
        outputs.append(y)
        start += size
    assert torch.equal(torch.cat(outputs, -1), expected)


# ---------------------------------------------------------------- OverlapAddFrames


@SETTINGS
@given(
    size=st.integers(1, 12),
    step=st.integers(1, 12),
    padding=st.integers(0, 4),
    input_delay=st.integers(0, 6),
    seed=st.integers(0, 10**6),
)
def test_overlap_add_streams_exactly(size, step, padding, input_delay, seed):
    padding = min(padding, size // 2)
    ola = OverlapAddFrames(size, step, padding).double()
    frames = _signal([2, 3, size, 24], seed)
    assert_stream_matches(ola, frames, input_delay=input_delay, seed=seed, check_shift=step > 0)
    assert ola.delay == input_delay * step + padding


@pytest.mark.parametrize("size, step, padding", [(4, 2, 0), (6, 2, 1), (5, 5, 0), (3, 4, 1)])
def test_overlap_add_is_f_fold(size, step, padding):
    frames = _signal([2, 3, size, 9])
    length = 8 * step + size - 2 * padding
    cols = frames.reshape(2, 3 * size, 9)
    folded = F.fold(cols, (1, length), (1, size), stride=(1, step), padding=(0, padding))
    assert torch.allclose(OverlapAddFrames(size, step, padding).offline(frames), folded.view(2, 3, length), atol=1e-13)


def test_frames_then_overlap_add_rebuild_the_signal():
    """unfold then fold: each sample times the number of frames over it, streamed through both layers."""
    model = Sequential(Frame(8, 2), OverlapAddFrames(8, 2)).double()
    assert model.ratio == 1 and model.delay == 3 * 2  # Frame: 3 frames late, so 3 * 2 samples
    x = _signal([2, 1, 64])
    assert_stream_matches(model, x, min_compared=40)


# ---------------------------------------------------------------- SplitTime, MergeTime


@SETTINGS
@given(factor=st.integers(1, 8), input_delay=st.integers(0, 9), seed=st.integers(0, 10**6))
def test_split_time_is_the_reshape_with_time_slow(factor, input_delay, seed):
    split = SplitTime(factor).double()
    split.configure(input_delay)
    assert split.cache_len == (-input_delay) % factor
    assert split.delay == (input_delay + split.cache_len) // factor
    length = (split.delay + 12) * factor - input_delay % factor
    x = _signal([2, 3, length], seed)
    offline = split.offline(x)
    assert torch.equal(offline, x[..., : offline.size(-1) * factor].view(2, 3, -1, factor).movedim(-1, -2))
    assert_stream_matches(split, x, input_delay=input_delay, seed=seed)


@SETTINGS
@given(factor=st.integers(1, 8), input_delay=st.integers(0, 9), seed=st.integers(0, 10**6))
def test_merge_time_is_the_reshape_with_time_slow(factor, input_delay, seed):
    merge = MergeTime(factor).double()
    frames = _signal([2, 3, factor, 12], seed)
    assert torch.equal(merge.offline(frames), frames.movedim(-1, -2).reshape(2, 3, 12 * factor))
    assert_stream_matches(merge, frames, input_delay=input_delay, seed=seed)
    assert merge.delay == input_delay * factor and merge.tail_len == 0


def test_pixel_shuffle_around_a_conv_streams_exactly():
    """A 1-D pixel unshuffle / shuffle pair with a padded conv between them at the low rate."""

    class Flatten(torch.nn.Module):  # [batch, c, m, t] -> [batch, c * m, t]
        def forward(self, x):
            return x.flatten(1, 2)

    class Unflatten(torch.nn.Module):  # [batch, c * m, t] -> [batch, c, m, t]
        def forward(self, x):
            return x.unflatten(1, (2, 4))

    model = Sequential(
        Conv1d(1, 2, 3, padding=1), SplitTime(4), Flatten(), Conv1d(8, 8, 5, padding=2), Unflatten(), MergeTime(4)
    )
    model = model.double()
    assert model.buffer_multiple == 4 and model.ratio == 1
    x = _signal([2, 1, 160])
    assert_stream_matches(model, x, min_compared=60)


# ---------------------------------------------------------------- state, TorchScript, refusals


@pytest.mark.parametrize(
    "make",
    [lambda: Frame(6, 4), lambda: SplitTime(4), lambda: STFT(8, 4, window=torch.hann_window(8))],
    ids=["Frame", "SplitTime", "STFT"],
)
def test_framing_state_snapshot_resumes_the_stream(make):
    layer = make().double()
    layer.configure(3)
    x = _signal([2, 2, 96])
    sizes = schedule(96, layer.buffer_multiple, seed=1)
    whole = stream_signal(layer, x, sizes)
    layer.reset()
    half = len(sizes) // 2
    head = sum(sizes[:half])
    first = stream_signal(layer, x[..., :head], sizes[:half])
    snapshot = get_state(layer)
    stream_signal(layer, x[..., head:], sizes[half:])  # run on, then go back
    set_state(layer, snapshot)
    assert torch.equal(torch.cat([first, stream_signal(layer, x[..., head:], sizes[half:])], -1), whole)


def test_overlap_add_state_snapshot_and_item_reset():
    ola = OverlapAddFrames(6, 2, 1).double()
    frames = _signal([2, 3, 6, 20])
    whole = stream_signal(ola, frames, [3, 5, 4, 8])
    ola.reset()
    first = stream_signal(ola, frames[..., :8], [3, 5])
    snapshot = get_state(ola)
    assert snapshot["tail"].shape == (2, 3, 4)
    stream_signal(ola, frames[..., 8:], [4, 8])
    set_state(ola, snapshot)
    assert torch.equal(torch.cat([first, stream_signal(ola, frames[..., 8:], [4, 8])], -1), whole)
    # an item reset starts that item afresh and leaves the other one alone
    ola.reset()
    stream_signal(ola, frames[..., :8], [8])
    ola.reset([1])
    y = ola(frames[..., 8:])
    fresh = OverlapAddFrames(6, 2, 1).double()
    assert torch.equal(y[1], fresh(frames[1:, ..., 8:])[0])
    assert torch.allclose(y[0], whole[0, :, 16:], rtol=0, atol=1e-12)  # other buffer sizes: other sum order


@pytest.mark.parametrize(
    "make, shape, input_delay",
    [
        (lambda: Frame(5, 3), [3, 2, 2, 36], 2),
        (lambda: SplitTime(4), [3, 2, 32], 3),
        (lambda: OverlapAddFrames(5, 2, 1), [3, 2, 5, 16], 2),
        (lambda: MergeTime(3), [3, 2, 3, 16], 1),
    ],
    ids=["Frame", "SplitTime", "OverlapAddFrames", "MergeTime"],
)
def test_scripts_and_streams_as_eager(make, shape, input_delay):
    layer = make().double()
    length = shape[-1] - input_delay  # the late stream, garbage included, keeps the schedule's length
    assert_scripted_streams_as_eager(layer, _signal(shape[:-1] + [length]), input_delay)


def test_refusals_name_the_layout():
    with pytest.raises(StreamingError, match=r"expected a buffer \[batch, \.\.\., size, time\], got 2 dimensions"):
        OverlapAddFrames(4, 2)(torch.zeros(4, 8))
    with pytest.raises(StreamingError, match="lengths must be positive multiples of buffer_multiple=3"):
        Frame(4, 3)(torch.zeros(1, 1, 8))
    with pytest.raises(StreamingError, match="size must be >= 1"):
        OverlapAddFrames(0, 2)


# ---------------------------------------------------------------- reading a reshape's effect on time


def _shapes(pattern, lengths=(64, 96)):
    """Input and output shapes of ``pattern`` (a function of the time length) at two lengths."""
    pairs = [pattern(t) for t in lengths]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.parametrize(
    "name, pattern, dim, expected",
    [
        ("b c (t m) -> b c t m", lambda t: ((2, 3, t), (2, 3, t // 4, 4)), 2, ("split", 4, 2)),
        ("b (t m) c -> b t (m c)", lambda t: ((2, t, 3), (2, t // 4, 12)), 1, ("split", 4, 1)),
        ("b c (t m) -> b (c t) m", lambda t: ((2, 3, t), (2, 3 * t // 4, 4)), 2, None),
        ("b c t m -> b c (t m)", lambda t: ((2, 3, t, 4), (2, 3, 4 * t)), 2, ("merge", 4, 2)),
        ("b t m c -> b (t m) c", lambda t: ((2, t, 4, 3), (2, 4 * t, 3)), 1, ("merge", 4, 1)),
        ("b t (m c) -> b (t m) c", lambda t: ((2, t, 12), (2, 4 * t, 3)), 1, ("merge", 4, 1)),
        ("b c t -> b c 1 t", lambda t: ((2, 3, t), (2, 3, 1, t)), 2, ("keep", 1, 3)),
        ("b 1 t -> b t", lambda t: ((2, 1, t), (2, t)), 2, ("keep", 1, 1)),
        ("b c t -> b (c t)", lambda t: ((2, 3, t), (2, 3 * t)), 2, None),
        ("b (m t) -> b m t", lambda t: ((2, t), (2, 4, t // 4)), 1, None),
        ("b c t m -> b (c t m)", lambda t: ((2, 3, t, 4), (2, 12 * t)), 2, None),
    ],
)
def test_time_reshape_reads_splits_merges_and_refusals(name, pattern, dim, expected):
    from streamify.layers.time_fold import time_reshape

    found = time_reshape(*_shapes(pattern), dim)
    assert (None if found is None else (found.kind, found.factor, found.dim)) == expected, name


def test_time_reshape_split_is_what_split_time_streams():
    """The reading of PQMF's ``"b c (t m) -> b c t m"`` and SplitTime agree on the data, not only the shapes."""
    from streamify.layers.time_fold import time_reshape

    x = _signal([2, 3, 64])
    reading = time_reshape([(2, 3, 64), (2, 3, 96)], [(2, 3, 16, 4), (2, 3, 24, 4)], 2)
    layer = SplitTime(reading.factor)
    assert torch.equal(layer.offline(x).movedim(-1, reading.dim), x.view(2, 3, 16, 4))
    merged = MergeTime(reading.factor).offline(layer.offline(x))
    assert torch.equal(merged, x)


def _through_layer(x, out_shape, dim, reading):
    """The recipe in docs/streaming-rules.md section 10: a reshape of ``x`` (time axis ``dim``) through the layer
    that streams it, with time moved last around the layer and the other axes regrouped (pointwise)."""
    lead = list(x.shape[:dim])
    if reading.kind == "split":
        y = SplitTime(reading.factor).offline(x.movedim(dim, -1))  # [*lead, *tail, m, n]
        y = y.movedim(-1, dim).movedim(-1, dim + 1)  # [*lead, n, m, *tail]
    else:
        m = reading.factor
        z = x.reshape(lead + [x.size(dim), m, -1])  # [*lead, t, m, rest]
        y = MergeTime(m).offline(z.movedim(dim, -1).movedim(dim, -2))  # [*lead, rest, t * m]
        y = y.movedim(-1, dim)  # [*lead, t * m, rest]
    return y.reshape(out_shape)


@pytest.mark.parametrize(
    "pattern, dim",
    [
        (lambda t: ((2, 3, t), (2, 3, t // 4, 4)), 2),
        (lambda t: ((2, t, 3), (2, t // 4, 12)), 1),
        (lambda t: ((2, 1, t), (2, t // 4, 4)), 2),
        (lambda t: ((2, 3, t, 4), (2, 3, 4 * t)), 2),
        (lambda t: ((2, t, 4, 3), (2, 4 * t, 3)), 1),
        (lambda t: ((2, t, 12), (2, 4 * t, 3)), 1),
    ],
)
def test_reshapes_through_split_and_merge_layers_equal_torch(pattern, dim):
    from streamify.layers.time_fold import time_reshape

    in_shapes, out_shapes = _shapes(pattern)
    reading = time_reshape(in_shapes, out_shapes, dim)
    assert reading is not None and reading.kind in ("split", "merge")
    x = _signal(in_shapes[0])
    expected = x.reshape(out_shapes[0])
    assert torch.equal(_through_layer(x, out_shapes[0], dim, reading), expected)
