"""State of streaming modules: batch-sized caches, reset, per-item reset, copies, batch changes, cache_bytes.

Issue "Streaming core", section 3 (State) and the state half of section 2 (cache memory).
"""

from __future__ import annotations

import copy
from typing import Dict, List, Sequence, Tuple

import pytest
import torch
from torch import Tensor

from core_cases import (
    ALL_KINDS,
    assert_exact,
    assert_identical,
    assert_same,
    build,
    max_diff,
    signal,
    sizes_of,
    stream,
)
from streamify import StreamingError
from streamify.layers import GRU, LSTM, Conv1d, ConvTranspose1d, Delay, Pointwise, Sequential, StreamingModule


def state_tensors(model: torch.nn.Module) -> Dict[str, Tensor]:
    """Every state buffer of every streaming module (caches and warm-up positions)."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, StreamingModule):
            for buffer in module.state_names():
                found[f"{name}.{buffer}"] = getattr(module, buffer)
    return found


# ---------------------------------------------------------------- caches sized for the batch


@pytest.mark.parametrize("batch", [1, 3, 7, 70])
def test_caches_are_sized_for_the_batch_they_see(batch: int) -> None:
    """No fixed maximum (the reference library stops at 64): every cache has the stream's batch size."""
    model = build("sequential")
    assert model.cache_bytes == 0, "no cache may exist before the first call"
    assert all(t.size(0) == 0 for t in state_tensors(model).values())
    x = signal(batch, 16 * model.buffer_multiple)
    y = stream(model, x, sizes_of(model, [1, 3, 2, 4, 6]))
    tensors = state_tensors(model)
    assert len(tensors) >= 8
    for name, tensor in tensors.items():
        assert tensor.size(0) == batch, f"{name} has shape {tuple(tensor.shape)} for a batch of {batch}"
    # the linear upsampler clamps at the signal's start offline: its first output frame differs
    assert_exact(y, model.offline(x), model.delay, warmup=1)


def test_caches_follow_a_new_batch_size_after_reset() -> None:
    model = build("sequential")
    x7 = signal(7, 8 * model.buffer_multiple, seed=1)
    stream(model, x7, sizes_of(model, [4, 4]))
    bytes7 = model.cache_bytes
    model.reset()
    assert model.cache_bytes == 0
    x1 = signal(1, 8 * model.buffer_multiple, seed=2)
    y1 = stream(model, x1, sizes_of(model, [4, 4]))
    for name, tensor in state_tensors(model).items():
        assert tensor.size(0) == 1, name
    assert bytes7 == 7 * model.cache_bytes
    assert_identical(y1, stream(build("sequential"), x1, sizes_of(model, [4, 4])))


# ---------------------------------------------------------------- cache_bytes

#: (factory, state bytes per batch item besides the 16 bytes of warm-up positions of each streaming module,
#: number of streaming modules). Worked out by hand from the layers' docstrings.
CACHE_CASES: Dict[str, Tuple] = {
    # span 4, stride 2, left pad 1: cache 3 frames (timing.strided_cache) x 2 channels x 8 bytes
    "conv_strided": (lambda: Conv1d(2, 3, 4, stride=2, padding=1), 3 * 2 * 8, 1),
    # 'same' k=3: cache 2 frames x 2 channels
    "conv_same": (lambda: Conv1d(2, 3, 3, padding="same"), 2 * 2 * 8, 1),
    # causal k=3 (padding (2, 0)): cache 2 frames
    "conv_causal": (lambda: Conv1d(2, 3, 3, padding=(2, 0)), 2 * 2 * 8, 1),
    # tail of span - stride = 6 - 2 = 4 output frames x 3 output channels
    "conv_transpose": (lambda: ConvTranspose1d(2, 3, 6, stride=2, padding=1), 4 * 3 * 8, 1),
    # hidden and cell [num_layers=1, 4]
    "lstm": (lambda: LSTM(2, 4), (4 + 4) * 8, 1),
    # hidden [num_layers=2, 4], no cell
    "gru": (lambda: GRU(2, 4, num_layers=2), 2 * 4 * 8, 1),
    # delay line of 3 frames x 2 channels
    "delay": (lambda: Delay(3), 3 * 2 * 8, 1),
    "pointwise": (lambda: Pointwise(torch.nn.Tanh()), 0, 1),
    # conv k=3 p=1: cache 2 x 2 ch; then the strided conv fed a stream delayed by 1 needs a cache of 2
    # frames (phase (1 - 1 - 2) mod 2 = 0 on top of span - stride = 2) x 3 channels; 3 streaming modules
    "sequential": (
        lambda: Sequential(Conv1d(2, 3, 3, padding=1), Conv1d(3, 3, 4, stride=2, padding=1)),
        (2 * 2 + 2 * 3) * 8,
        3,
    ),
}


@pytest.mark.parametrize("case", list(CACHE_CASES))
@pytest.mark.parametrize("batch", [1, 3, 7])
def test_cache_bytes_known_values(case: str, batch: int) -> None:
    factory, per_item, modules = CACHE_CASES[case]
    model = factory().double()
    assert model.cache_bytes == 0
    assert sum(isinstance(m, StreamingModule) for m in model.modules()) == modules
    stream(model, signal(batch, 8), [2, 2, 4])
    assert model.cache_bytes == batch * (per_item + 16 * modules)
    model.reset()
    assert model.cache_bytes == 0


def test_cache_bytes_follow_the_dtype() -> None:
    model = Conv1d(2, 3, 4, stride=2, padding=1)  # float32: 4 bytes per cached sample
    stream(model, signal(3, 8).float(), [4, 4])
    assert model.cache_bytes == 3 * (3 * 2 * 4 + 16)


# ---------------------------------------------------------------- reset()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_reset_returns_to_a_fresh_stream(kind: str) -> None:
    """After reset(), the model streams exactly as a brand-new one (even with another batch size)."""
    model = build(kind)
    stream(model, signal(2, 6 * model.buffer_multiple, seed=5), sizes_of(model, [1, 2, 3]))
    model.reset()
    assert model.cache_bytes == 0
    x = signal(3, 12 * model.buffer_multiple)
    sizes = sizes_of(model, [2, 1, 5, 4])
    assert_identical(stream(model, x, sizes), stream(build(kind), x, sizes))


# ---------------------------------------------------------------- reset(indices)

Schedule = Sequence[Tuple[int, List[int]]]


def run_schedule(model, x: Tensor, schedule: Schedule):
    """Stream ``x`` in buffers of ``units * buffer_multiple``, resetting the listed items before each buffer."""
    outputs = []
    start = 0
    with torch.no_grad():
        for units, indices in schedule:
            if indices:
                model.reset(indices)
            size = units * model.buffer_multiple
            outputs.append(model(x[..., start : start + size]))
            start += size
    if isinstance(outputs[0], list):
        return [torch.cat([o[i] for o in outputs], -1) for i in range(len(outputs[0]))]
    return torch.cat(outputs, -1)


def expected_per_item(kind: str, x: Tensor, schedule: Schedule, item: int):
    """Item ``item``'s output: fresh single-item streams restarted at each of its reset points."""
    pieces = []
    start = 0
    segment: List[int] = []
    multiple = build(kind).buffer_multiple

    def flush(begin: int, sizes: List[int]) -> None:
        if sizes:
            pieces.append(stream(build(kind), x[item : item + 1, :, begin : begin + sum(sizes)], sizes))

    begin = 0
    for units, indices in schedule:
        if item in indices:
            flush(begin, segment)
            begin, segment = start, []
        segment.append(units * multiple)
        start += units * multiple
    flush(begin, segment)
    if isinstance(pieces[0], list):
        return [torch.cat([p[i] for p in pieces], -1) for i in range(len(pieces[0]))]
    return torch.cat(pieces, -1)


def item_of(output, item: int):
    if isinstance(output, list):
        return [o[item : item + 1] for o in output]
    return output[item : item + 1]


STATELESS = ("pointwise", "crop", "pad", "nearest", "avg_pool")  # no cache to reset

SCHEDULES = {
    # reset item 1 once, mid-stream
    "one": [(2, []), (1, []), (3, [1]), (1, []), (2, []), (3, [])],
    # reset item 1, then items 0 and 2 one short buffer later (while item 1 may still warm up),
    # then item 1 again
    "overlapping": [(3, []), (1, [1]), (1, [0, 2]), (2, []), (1, [1]), (4, [])],
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_reset_of_chosen_items(kind: str, schedule: str) -> None:
    """Batch 3: a reset item restarts as a fresh stream of its input; the others do not notice."""
    plan = SCHEDULES[schedule]
    model = build(kind)
    frames = sum(u for u, _ in plan) * model.buffer_multiple
    x = signal(3, frames, seed=3)
    streamed = run_schedule(model, x, plan)
    never_reset = run_schedule(build(kind), x, [(u, []) for u, _ in plan])
    reset_items = {i for _, indices in plan for i in indices}
    for item in range(3):
        if item in reset_items:
            assert_same(item_of(streamed, item), expected_per_item(kind, x, plan, item))
        else:
            assert_same(item_of(streamed, item), item_of(never_reset, item))
    if schedule == "one" and kind not in STATELESS:
        # the reset did change item 1: the checks above are not vacuous
        assert max_diff(item_of(streamed, 1), item_of(never_reset, 1)) > 1e-6


def test_reset_of_an_item_outside_the_batch_is_refused_and_changes_nothing() -> None:
    model = build("sequential")
    x = signal(3, 12 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4, 4])
    reference = stream(build("sequential"), x, sizes)
    first = stream(model, x[..., : sizes[0]], sizes[:1])
    with pytest.raises(StreamingError, match=r"index 3 .*batch of 3"):
        model.reset([0, 3])
    rest = stream(model, x[..., sizes[0] :], sizes[1:])
    assert_identical(torch.cat([first, rest], -1), reference)


def test_reset_of_items_before_any_call_is_a_fresh_stream() -> None:
    model = build("sequential")
    model.reset([0])
    x = signal(3, 8 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4])
    assert_identical(stream(model, x, sizes), stream(build("sequential"), x, sizes))


# ---------------------------------------------------------------- copies


@pytest.mark.parametrize("kind", ["sequential", "heads", "nested", "lstm", "conv_transpose"])
def test_deep_copies_stream_independently(kind: str) -> None:
    original = build(kind)
    twin = copy.deepcopy(original)
    multiple = original.buffer_multiple
    xa = signal(3, 12 * multiple, seed=1)
    xb = signal(1, 12 * multiple, seed=2)
    sizes_a = sizes_of(original, [2, 3, 1, 6])
    sizes_b = sizes_of(original, [1, 5, 4, 2])
    out_a, out_b = [], []
    start_a = start_b = 0
    with torch.no_grad():
        for size_a, size_b in zip(sizes_a, sizes_b):
            out_a.append(original(xa[..., start_a : start_a + size_a]))
            out_b.append(twin(xb[..., start_b : start_b + size_b]))
            start_a += size_a
            start_b += size_b
    cat = lambda outs: (  # noqa: E731
        [torch.cat([o[i] for o in outs], -1) for i in range(len(outs[0]))]
        if isinstance(outs[0], list)
        else torch.cat(outs, -1)
    )
    assert_identical(cat(out_a), stream(build(kind), xa, sizes_a))
    assert_identical(cat(out_b), stream(build(kind), xb, sizes_b))


@pytest.mark.parametrize("kind", ["sequential", "branches", "gru"])
def test_a_copy_taken_mid_stream_carries_on_and_leaves_the_original_alone(kind: str) -> None:
    model = build(kind)
    x = signal(3, 12 * model.buffer_multiple)
    sizes = sizes_of(model, [3, 1, 4, 4])
    reference = stream(build(kind), x, sizes)
    head = stream(model, x[..., : sum(sizes[:2])], sizes[:2])
    fork = copy.deepcopy(model)
    # the fork streams something else first: the original must not notice
    stream(fork, signal(3, sum(sizes[2:]), seed=9), sizes[2:])
    tail = stream(model, x[..., sum(sizes[:2]) :], sizes[2:])
    assert_identical(torch.cat([head, tail], -1), reference)
    # a second fork taken at the same point continues exactly as the original did
    model.reset()
    stream(model, x[..., : sum(sizes[:2])], sizes[:2])
    fork2 = copy.deepcopy(model)
    assert_identical(stream(fork2, x[..., sum(sizes[:2]) :], sizes[2:]), tail)


# ---------------------------------------------------------------- batch changes mid-stream


@pytest.mark.parametrize("kind", ["conv_strided", "lstm", "sequential", "branches", "heads", "nested"])
@pytest.mark.parametrize("new_batch", [2, 4])
def test_changing_batch_mid_stream_is_refused_and_changes_nothing(kind: str, new_batch: int) -> None:
    model = build(kind)
    x = signal(3, 12 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4, 4])
    reference = stream(build(kind), x, sizes)
    state_before = None
    first = stream(model, x[..., : sizes[0]], sizes[:1])
    state_before = {k: v.clone() for k, v in state_tensors(model).items()}
    other = signal(new_batch, sizes[1], seed=4)
    with pytest.raises(StreamingError) as error:
        model(other)
    message = str(error.value)
    assert model.layer_name in message
    assert "from 3 to " + str(new_batch) in message and "reset()" in message
    for name, tensor in state_tensors(model).items():
        assert torch.equal(tensor, state_before[name]), f"{name} changed in a refused call"
    rest = stream(model, x[..., sizes[0] :], sizes[1:])
    if isinstance(first, list):
        joined = [torch.cat([a, b], -1) for a, b in zip(first, rest)]
    else:
        joined = torch.cat([first, rest], -1)
    assert_identical(joined, reference)
    # after a reset, the new batch size is welcome
    model.reset()
    assert_identical(stream(model, other, sizes[1:2]), stream(build(kind), other, sizes[1:2]))


@pytest.mark.parametrize("kind", ["sequential", "nested", "heads"])
def test_reset_of_items_then_a_call_with_grad_enabled(kind: str) -> None:
    """States written under no_grad (a host's stream) may be reset per item and used with grad on.

    The recurrent layers of these models are fed a delayed stream: after a per-item reset they
    run their warm-up, which writes the reset item's state in place.
    """
    model = build(kind)
    x = signal(3, 12 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4, 4])
    # under no_grad, past the warm-up (the states are then outputs of the recurrent layers)
    stream(model, x[..., : sizes[0] + sizes[1]], sizes[:2])
    model.reset([1])
    start = sizes[0] + sizes[1]
    with torch.enable_grad():
        y = model(x[..., start:])
    expected = stream(build(kind), x[1:2, :, start:], sizes[2:])
    assert_same(item_of(y, 1), expected)
