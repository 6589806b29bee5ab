"""streamify.state: reset, get_state / set_state snapshots and set_streaming over whole models.

Issue "Streaming core", section 3 (State): "the whole state can be read and restored (a host
can snapshot a stream)".
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import streamify
from core_cases import (
    ALL_KINDS,
    assert_identical,
    assert_same,
    build,
    signal,
    sizes_of,
    stream,
)
from streamify import StreamingError, StreamingModule, get_state, reset, set_state, set_streaming
from streamify.layers import LSTM, AvgPool1d, Conv1d, ConvTranspose1d, LinearUpsample, Sequential
from streamify.runtime.state import get_state_names, state_layout

COUNTERS = ("stream_batch", "warm_left", "out_warm_left")

KINDS = ["sequential", "nested", "heads", "lstm", "conv_transpose", "linear"]


def cat(a, b):
    if isinstance(a, list):
        return [torch.cat([u, v], -1) for u, v in zip(a, b)]
    return torch.cat([a, b], -1)


def test_the_state_api_is_exported_at_the_top_level() -> None:
    assert streamify.reset is reset and streamify.get_state is get_state
    assert streamify.set_state is set_state and streamify.set_streaming is set_streaming


@pytest.mark.parametrize("kind", KINDS)
def test_a_restored_snapshot_continues_identically(kind: str) -> None:
    model = build(kind)
    x = signal(3, 16 * model.buffer_multiple)
    sizes = sizes_of(model, [1, 3, 4, 2, 6])
    split = sizes[0]  # a short first buffer: the snapshot is taken in the middle of the warm-up
    reference = stream(build(kind), x, sizes)
    head = stream(model, x[..., :split], sizes[:1])
    snapshot = get_state(model)
    assert sorted(snapshot) == sorted(get_state_names(model))
    tail = stream(model, x[..., split:], sizes[1:])
    assert_identical(cat(head, tail), reference)

    # back to the snapshot: the same continuation, even after the model streamed something else
    stream(model, signal(3, 4 * model.buffer_multiple, seed=7), sizes_of(model, [4]))
    set_state(model, snapshot)
    assert_identical(stream(model, x[..., split:], sizes[1:]), tail)

    # into an identical fresh model, which then carries the stream on (a host moving a stream)
    other = build(kind)
    set_state(other, snapshot)
    # set_state copies: changing the snapshot afterwards does not reach the model
    for value in snapshot.values():
        if value.is_floating_point():
            value.fill_(123.0)
    assert_identical(stream(other, x[..., split:], sizes[1:]), tail)


def test_a_snapshot_brings_its_batch_size() -> None:
    model = build("sequential")
    x = signal(3, 8 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4])
    head = stream(model, x[..., : sizes[0]], sizes[:1])
    snapshot = get_state(model)
    other = build("sequential")
    stream(other, signal(5, sizes[0]), sizes[:1])  # streaming batch 5
    set_state(other, snapshot)  # now a batch-3 stream
    tail = stream(other, x[..., sizes[0] :], sizes[1:])
    assert_identical(cat(head, tail), stream(build("sequential"), x, sizes))
    with pytest.raises(StreamingError, match="batch size changed from 3 to 5"):
        other(signal(5, sizes[0]))


def test_the_snapshot_of_a_fresh_model_restores_a_fresh_stream() -> None:
    model = build("nested")
    fresh = get_state(model)
    assert all(v.numel() == 0 for k, v in fresh.items() if not k.endswith(("stream_batch", "warm_left")))
    x = signal(2, 8 * model.buffer_multiple)
    sizes = sizes_of(model, [3, 5])
    stream(model, x, sizes)
    set_state(model, fresh)
    assert model.cache_bytes == 0
    assert_identical(stream(model, x, sizes), stream(build("nested"), x, sizes))


def test_stream_state_is_not_part_of_the_state_dict() -> None:
    """Weights load the same whether a model has streamed or not."""
    model = build("sequential")
    keys = set(model.state_dict())
    stream(model, signal(3, 8 * model.buffer_multiple), sizes_of(model, [8]))
    assert set(model.state_dict()) == keys
    assert not keys & set(get_state_names(model))
    fresh = build("sequential", seed=1)
    fresh.load_state_dict(model.state_dict())
    x = signal(2, 8 * model.buffer_multiple)
    model.reset()
    assert_identical(stream(fresh, x, sizes_of(model, [8])), stream(model, x, sizes_of(model, [8])))


def mismatches(snapshot):
    """Snapshots that do not fit the ``sequential`` model, and what the error must say."""
    missing = dict(snapshot)
    del missing["layers.0.cache"]
    extra = dict(snapshot, **{"layers.9.cache": torch.zeros(1)})
    wrong_length = dict(snapshot, **{"layers.0.cache": snapshot["layers.0.cache"][..., :1]})
    wrong_batch = dict(snapshot, **{"layers.3.hidden": snapshot["layers.3.hidden"][:2]})
    wrong_channels = dict(snapshot, **{"layers.0.cache": torch.cat([snapshot["layers.0.cache"]] * 2, 1)})

    # a wrong type in the LAST module's entries: the entries before it fit, yet nothing may be restored
    def changed(entry, value):
        return dict(snapshot, **{entry: value})

    tail = snapshot["layers.6.cache"]
    return {
        "float32": (
            changed("layers.6.cache", tail.float()),
            r"'layers\.6\.cache' has the wrong dtype: expected torch\.float64, got torch\.float32",
        ),
        "int32": (
            changed("layers.6.cache", tail.to(torch.int32)),
            r"'layers\.6\.cache' has the wrong dtype: expected torch\.float64, got torch\.int32",
        ),
        "meta": (
            changed("layers.6.cache", tail.to("meta")),
            r"'layers\.6\.cache' has the wrong device: expected cpu, got meta",
        ),
        "positions_float": (
            changed("layers.6.warm_pos", snapshot["layers.6.warm_pos"].double()),
            r"'layers\.6\.warm_pos' has the wrong dtype: expected torch\.int64, got torch\.float64",
        ),
        "not_a_tensor": (
            changed("layers.6.cache", tail.numpy()),
            r"'layers\.6\.cache' has the wrong type: expected a torch\.Tensor, got ndarray",
        ),
        "counter_float": (
            changed("layers.6.warm_left", torch.tensor(1.5)),
            r"'layers\.6\.warm_left' has the wrong dtype: expected an integer dtype \(torch\.int64\), got torch\.float32",
        ),
        "counter_meta": (
            changed("layers.6.stream_batch", torch.tensor(3, device="meta")),
            r"'layers\.6\.stream_batch' has the wrong device",
        ),
        "counter_shape": (
            changed("layers.6.stream_batch", torch.tensor([3, 3])),
            r"'layers\.6\.stream_batch' has the wrong shape: expected a scalar \(\), got \(2,\)",
        ),
        "none": (None, r"expected a snapshot \(the dict that get_state\(\) returns\), got NoneType"),
        "missing": (missing, r"missing \['layers\.0\.cache'\]"),
        "extra": (extra, r"unknown \['layers\.9\.cache'\]"),
        "wrong_length": (wrong_length, r"'layers\.0\.cache' has shape \(3, 2, 1\).*Sequential\.0:Conv1d"),
        "wrong_batch": (wrong_batch, r"'layers\.3\.hidden' has shape \(2, 1, 4\).*batch 3"),
        "wrong_channels": (wrong_channels, r"'layers\.0\.cache' has shape \(3, 4, 2\)"),
    }


WRONG_TYPES = ["float32", "int32", "meta", "positions_float", "not_a_tensor", "counter_float", "counter_meta"]


@pytest.mark.parametrize(
    "case",
    ["none", "missing", "extra", "wrong_length", "wrong_batch", "wrong_channels", "other_model", "other_architecture"]
    + WRONG_TYPES
    + ["counter_shape"],
)
def test_a_snapshot_that_does_not_fit_is_refused_and_changes_nothing(case: str) -> None:
    model = build("sequential")
    x = signal(3, 12 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4, 4])
    reference = stream(build("sequential"), x, sizes)
    head = stream(model, x[..., : sizes[0]], sizes[:1])
    if case == "other_model":
        # the same layer names, other kernel sizes: the caches have other lengths
        torch.manual_seed(0)
        other = Sequential(
            Conv1d(2, 4, 5, padding=2),
            nn.ReLU(),
            Conv1d(4, 4, 4, stride=2, padding=1),
            LSTM(4, 4),
            ConvTranspose1d(4, 2, 5, 2, 1),
            LinearUpsample(2),
            AvgPool1d(2),
        ).double()
        assert get_state_names(other) == get_state_names(model)
        stream(other, x[..., : sizes[0]], sizes[:1])
        with pytest.raises(StreamingError, match=r"'layers\.0\.cache' has shape \(3, 2, 4\)"):
            set_state(model, get_state(other))
    elif case == "other_architecture":
        other = Sequential(Conv1d(2, 4, 3, padding=1), nn.ReLU()).double()
        stream(other, x[..., : sizes[0]], sizes[:1])
        with pytest.raises(StreamingError, match=r"does not fit this model \(missing \['layers\.2\."):
            set_state(model, get_state(other))
    else:
        snapshot, pattern = mismatches(get_state(model))[case]
        with pytest.raises(StreamingError, match=pattern):
            set_state(model, snapshot)
    tail = stream(model, x[..., sizes[0] :], sizes[1:])
    assert_identical(cat(head, tail), reference)


def test_a_float32_model_refuses_a_float64_snapshot_and_streams_on() -> None:
    """float64 entries in a float32 model broke every later call; int32 ones gave wrong output silently."""
    model = build("sequential").float()
    x = signal(3, 12 * model.buffer_multiple).float()
    sizes = sizes_of(model, [4, 4, 4])
    reference = stream(build("sequential").float(), x, sizes)
    head = stream(model, x[..., : sizes[0]], sizes[:1])
    snapshot = get_state(model)
    for dtype in (torch.float64, torch.int32, torch.float16):
        wrong = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in snapshot.items()}
        with pytest.raises(StreamingError, match=rf"has the wrong dtype: expected torch\.float32, got {dtype}"):
            set_state(model, wrong)
    tail = stream(model, x[..., sizes[0] :], sizes[1:])
    assert_identical(cat(head, tail), reference)
    # the right snapshot is still taken, and detached from any graph
    restored = {k: (v.requires_grad_(True) if v.is_floating_point() else v) for k, v in snapshot.items()}
    set_state(model, restored)
    assert not any(m.cache.requires_grad for m in model.modules() if hasattr(m, "cache"))
    assert_identical(stream(model, x[..., sizes[0] :], sizes[1:]), tail)


class Host(nn.Module):
    """A plain module holding two streaming models, as an application would."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = build("sequential")
        self.voice = build("lstm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(x), self.voice(x)], 1)


def test_reset_over_a_host_module_resets_every_streaming_model() -> None:
    host = Host()
    x = signal(3, 16 * host.encoder.buffer_multiple)
    sizes = sizes_of(host.encoder, [4, 4, 8])
    reference = stream(Host(), x, sizes)
    stream(host, signal(2, 8, seed=3), [4, 4])
    reset(host)
    assert host.encoder.cache_bytes == 0 and host.voice.cache_bytes == 0
    assert_identical(stream(host, x, sizes), reference)
    # per item: item 1 restarts in both models
    reset(host)
    stream(host, x[..., : sizes[0]], sizes[:1])
    reset(host, [1])
    y = stream(host, x[..., sizes[0] :], sizes[1:])
    fresh_item = stream(Host(), x[1:2, :, sizes[0] :], sizes[1:])
    assert_same(y[1:2], fresh_item)
    assert_same(y[[0, 2]], reference[[0, 2], :, sizes[0] :])
    # the host's snapshot covers both models
    names = get_state_names(host)
    assert any(n.startswith("encoder.") for n in names) and any(n.startswith("voice.") for n in names)


def test_set_streaming_reaches_nested_modules() -> None:
    host = Host()
    set_streaming(host, False)
    modules = [m for m in host.modules() if isinstance(m, streamify.StreamingModule)]
    assert len(modules) > 5 and not any(m.streaming for m in modules)
    x = signal(2, 30)
    with torch.no_grad():
        assert_identical(host.encoder(x), host.encoder.offline(x))
        assert_identical(host.voice(x), host.voice.offline(x))
    assert host.encoder.cache_bytes == 0
    set_streaming(host, True)
    assert all(m.streaming for m in modules)


# ---------------------------------------------------------------- explicit state: step(model, x, state)


def step_through(model, x, sizes, state):
    """Chain ``streamify.step`` over buffers of ``sizes``; the outputs concatenated, and the last state."""
    outputs = []
    start = 0
    for size in sizes:
        y, state = streamify.step(model, x[..., start : start + size], state)
        outputs.append(y)
        start += size
    if isinstance(outputs[0], list):
        return [torch.cat(heads, -1) for heads in zip(*outputs)], state
    return torch.cat(outputs, -1), state


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_step_chained_from_the_initial_state_equals_the_stateful_stream(kind: str) -> None:
    model = build(kind)
    x = signal(3, 24 * model.buffer_multiple)
    sizes = sizes_of(model, [1, 3, 2, 5, 1, 4, 8])  # short first buffers: inside every warm-up
    expected = stream(build(kind), x, sizes)
    state = streamify.initial_state(model, batch=3, channels=2)
    assert sorted(state) == sorted(slot.name for slot in state_layout(model))
    before = get_state(model)
    got, _ = step_through(model, x, sizes, state)
    # the explicit path (tensor-op masks, per-item recurrent lengths) against the stateful one, float64
    assert_same(got, expected, tol=1e-12)
    for name, value in get_state(model).items():  # the model's own stream was not touched
        assert torch.equal(value, before[name]), name
    # and it is back in stateful mode: it streams on from a fresh stream, as before
    assert not any(m.explicit_state for m in model.modules() if isinstance(m, StreamingModule))
    assert_identical(stream(model, x, sizes), expected)


@pytest.mark.parametrize("kind", ["sequential", "nested", "heads"])
def test_step_leaves_the_given_state_unchanged_and_can_replay_it(kind: str) -> None:
    model = build(kind)
    x = signal(2, 2 * model.buffer_multiple)
    state = streamify.initial_state(model, batch=2, channels=2)
    copies = {name: value.clone() for name, value in state.items()}
    y1, next1 = streamify.step(model, x, state)
    y2, next2 = streamify.step(model, x, state)  # the same state again: the same step
    assert_identical(y1, y2)
    for name in state:
        assert torch.equal(state[name], copies[name]), f"{name} was modified in place"
        assert torch.equal(next1[name], next2[name])
    assert any(not torch.equal(next1[name], state[name]) for name in state), "a step moves the state"


@pytest.mark.parametrize("kind", ["sequential", "nested"])
def test_a_stateful_stream_continues_with_step_from_its_snapshot(kind: str) -> None:
    """The state tensors of get_state are step's state: a stream can move between the two ways."""
    model = build(kind)
    x = signal(2, 16 * model.buffer_multiple)
    sizes = sizes_of(model, [1, 2, 5, 8])
    expected = stream(build(kind), x, sizes)
    head = stream(model, x[..., : sizes[0]], sizes[:1])  # stateful, stopped inside the warm-up
    snapshot = get_state(model)
    state = {slot.name: snapshot[slot.name] for slot in state_layout(model)}
    tail, _ = step_through(model, x[..., sizes[0] :], sizes[1:], state)
    assert_same(cat(head, tail), expected, tol=1e-12)


@settings(max_examples=15, deadline=None)
@given(units=st.lists(st.integers(1, 6), min_size=1, max_size=8), batch=st.integers(1, 3))
def test_step_equals_the_stateful_stream_at_any_buffer_schedule(units, batch) -> None:
    model = build("nested")  # a delayed LSTM (warm-up skipped per item), a pad, a max pool, branches
    sizes = sizes_of(model, units)
    x = signal(batch, sum(sizes))
    expected = stream(build("nested"), x, sizes)
    got, _ = step_through(model, x, sizes, streamify.initial_state(model, batch=batch))
    assert_same(got, expected, tol=1e-12)


def test_step_refuses_a_state_that_does_not_fit() -> None:
    model = build("sequential")
    x = signal(3, 2 * model.buffer_multiple)
    state = streamify.initial_state(model, batch=3)
    missing = dict(state)
    del missing["layers.0.cache"]
    with pytest.raises(
        StreamingError, match=r"step: the state does not fit this model \(missing \['layers\.0\.cache'\]"
    ):
        streamify.step(model, x, missing)
    with pytest.raises(StreamingError, match=r"step: the entry 'layers\.0\.cache' has shape \(2, 2, 2\).*batch 3"):
        streamify.step(model, x, dict(state, **{"layers.0.cache": state["layers.0.cache"][:2]}))
    with pytest.raises(StreamingError, match=r"step: the state entry 'layers\.0\.cache' has the wrong dtype"):
        streamify.step(model, x, dict(state, **{"layers.0.cache": state["layers.0.cache"].float()}))
    with pytest.raises(StreamingError, match=r"accepts any channel count; pass channels="):
        streamify.initial_state(build("max_pool"), batch=1)


def test_the_state_layout_is_declared_once_per_layer() -> None:
    """state_layout, get_state, initial_state and cache_bytes read the same declaration."""
    model = build("sequential")
    names = [slot.name for slot in state_layout(model)]
    assert "layers.3.hidden" in names and "layers.3.cell" in names and "layers.0.cache" in names
    assert "warm_pos" in names and "out_warm_pos" in names, "the root's warm-up positions"
    assert set(names) == set(get_state_names(model)) - {n for n in get_state_names(model) if n.endswith(COUNTERS)}
    stream(model, signal(2, 4 * model.buffer_multiple), sizes_of(model, [4]))
    snapshot = get_state(model)
    assert model.cache_bytes == sum(snapshot[n].nelement() * snapshot[n].element_size() for n in names)


@pytest.mark.parametrize(
    "kind", ["branches", "nested", "lstm", "conv_transpose"]
)  # no LinearUpsample: inexact at the start
def test_step_output_is_the_offline_output_delayed_exactly(kind: str) -> None:
    """``step`` against the offline model itself (not only the stateful stream): exact at the model's
    delay from the first frame, and far off one frame either side."""
    from streamify.exactness import compare_streamed

    model = build(kind)
    x = signal(2, 24 * model.buffer_multiple)
    sizes = sizes_of(model, [1, 3, 2, 5, 1, 4, 8])
    got, _ = step_through(model, x, sizes, streamify.initial_state(model, batch=2, channels=2))
    with torch.no_grad():
        offline = model.offline(x)
    exact = compare_streamed(got, offline, model.delay)
    assert exact.compared_frames > 16 and exact.max_abs_error <= 1e-10, exact
    for off in (model.delay - 1, model.delay + 1):
        assert compare_streamed(got, offline, off).max_abs_error > 1e-3, f"one frame off ({off}) matched"


def _warming_model() -> StreamingModule:
    """Inner layers that mask their first input frames (input delay 4 and 5) under a root that zeroes 5 frames."""
    torch.manual_seed(5)
    return Sequential(
        Conv1d(2, 3, 5, padding=(0, 4)), Conv1d(3, 3, 3, padding=1), AvgPool1d(3, 1, 1), Conv1d(3, 2, 3, padding=1)
    ).double()


@pytest.mark.parametrize("first", [1, 2, 3])
def test_a_snapshot_taken_during_the_warm_up_restores_both_counters(first: int) -> None:
    """Each warm-up counter (input mask of inner layers, output zeros of the root) is restored as it was."""
    x = signal(2, 40)
    sizes = [first, 1, 2, 5, 40 - first - 8]
    reference = stream(_warming_model(), x, sizes)
    model = _warming_model()
    head = stream(model, x[..., :first], sizes[:1])
    snapshot = get_state(model)
    inner = {k: int(v) for k, v in snapshot.items() if k.endswith(".warm_left")}
    assert snapshot["out_warm_left"] > 0 and any(v > 0 for v in inner.values()), "not taken during the warm-up"
    assert any(int(snapshot[k.replace(".warm_left", ".out_warm_left")]) != v for k, v in inner.items())
    other = _warming_model()
    stream(other, signal(2, 12, seed=3), [12])  # a stream long past its warm-up, then the snapshot
    set_state(other, snapshot)
    assert_identical(cat(head, stream(other, x[..., first:], sizes[1:])), reference)


def test_step_refuses_an_unknown_state_entry() -> None:
    model = build("sequential")
    x = signal(3, 2 * model.buffer_multiple)
    state = streamify.initial_state(model, batch=3)
    with pytest.raises(
        StreamingError, match=r"step: the state does not fit this model \(missing \[\], unknown \['lyers"
    ):
        streamify.step(model, x, dict(state, **{"lyers.0.cache": state["layers.0.cache"]}))
    renamed = {("layers.9.cache" if k == "layers.0.cache" else k): v for k, v in state.items()}
    with pytest.raises(StreamingError, match=r"unknown \['layers\.9\.cache'\]"):
        streamify.step(model, x, renamed)
