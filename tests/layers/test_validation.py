"""Validation of streamed buffers: refused calls name the layer and the accepted values, and change nothing.

Issue "Streaming core", section 4 (Validation).
"""

from __future__ import annotations

from typing import Callable, Dict

import pytest
import torch
from torch import Tensor

from core_cases import (
    assert_exact,
    assert_identical,
    build,
    signal,
    sizes_of,
    stream,
)
from streamify import StreamingError
from streamify.layers import Conv1d, Sequential, StreamingModule


def state_snapshot(model: torch.nn.Module) -> Dict[str, object]:
    """Copies of every state tensor and counter of every streaming module."""
    found: Dict[str, object] = {}
    for name, module in model.named_modules():
        if isinstance(module, StreamingModule):
            for buffer in module.state_names():
                found[f"{name}.{buffer}"] = getattr(module, buffer).clone()
            for counter in ("stream_batch", "warm_left", "out_warm_left"):
                found[f"{name}.{counter}"] = getattr(module, counter)
    return found


def assert_state_equal(a: Dict[str, object], b: Dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], Tensor):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), f"{key} changed"
        else:
            assert a[key] == b[key], f"{key} changed from {a[key]} to {b[key]}"


#: a bad buffer for a model, from a good one, and what its error message must contain
BAD_BUFFERS: Dict[str, Callable[[StreamingModule, Tensor], Tensor]] = {
    "length": lambda model, x: x[..., : model.buffer_multiple + 1],
    "channels": lambda model, x: torch.cat([x, x[:, :1]], 1),
    "dtype": lambda model, x: x.float(),
    "two_dims": lambda model, x: x[0],
    "nan": lambda model, x: x.index_fill(2, torch.tensor([1]), float("nan")),
    "inf": lambda model, x: x.index_fill(2, torch.tensor([0]), float("-inf")),
}


def expected_fragments(problem: str, model: StreamingModule) -> list:
    """Fragments the message must hold: the accepted values of the refused property."""
    return {
        "length": [f"buffer_multiple={model.buffer_multiple}", f"length {model.buffer_multiple + 1}"],
        "channels": [f"expected {model.in_channels} input channels", "got 3"],
        "dtype": ["expected dtype torch.float64", "got torch.float32"],
        "two_dims": ["[batch, channels, time]", "got 2 dimensions"],
        "nan": ["NaN or infinite"],
        "inf": ["NaN or infinite"],
    }[problem]


# strided and upsampling models (buffer_multiple > 1), recurrent state, a container of each kind
KINDS = ["conv_strided", "conv_transpose", "lstm", "sequential", "branches", "residual", "heads", "nested"]


@pytest.mark.parametrize("problem", list(BAD_BUFFERS))
@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_buffer_names_the_layer_and_the_accepted_values_and_changes_nothing(kind: str, problem: str) -> None:
    model = build(kind)
    model.check_finite = True
    if problem == "length" and model.buffer_multiple == 1:
        # every length is accepted: refuse the empty buffer instead
        bad_length = True
    else:
        bad_length = False
    x = signal(3, 12 * model.buffer_multiple)
    sizes = sizes_of(model, [4, 4, 4])
    reference = stream(build(kind), x, sizes)

    first = stream(model, x[..., : sizes[0]], sizes[:1])
    before = state_snapshot(model)
    good = x[..., sizes[0] : sizes[0] + sizes[1]]
    bad = good[..., :0] if bad_length else BAD_BUFFERS[problem](model, good)
    with pytest.raises(StreamingError) as error:
        model(bad)
    message = str(error.value)
    assert message.startswith("streamify: " + model.layer_name + ":"), message
    fragments = ["length 0", "buffer_multiple=1"] if bad_length else expected_fragments(problem, model)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert_state_equal(state_snapshot(model), before)

    # the stream carries on as if the refused call never happened
    rest = stream(model, x[..., sizes[0] :], sizes[1:])
    if isinstance(first, list):
        joined = [torch.cat([a, b], -1) for a, b in zip(first, rest)]
    else:
        joined = torch.cat([first, rest], -1)
    assert_identical(joined, reference)


@pytest.mark.parametrize("problem", list(BAD_BUFFERS))
def test_a_refused_first_buffer_allocates_nothing(problem: str) -> None:
    model = build("sequential")
    model.check_finite = True
    x = signal(3, 4 * model.buffer_multiple)
    with pytest.raises(StreamingError):
        model(BAD_BUFFERS[problem](model, x))
    assert model.cache_bytes == 0
    assert all(m.stream_batch == 0 for m in model.modules() if isinstance(m, StreamingModule))
    # a good stream then starts fresh, with whatever batch size it brings, and is exact
    y = stream(model, x[:2], sizes_of(model, [1, 3]))
    assert_identical(y, stream(build("sequential"), x[:2], sizes_of(model, [1, 3])))


def test_non_finite_values_pass_unless_checks_are_asked_for() -> None:
    model = build("conv")
    assert model.check_finite is False
    x = signal(1, 8)
    x[0, 0, 3] = float("nan")
    y = model(x)
    assert torch.isnan(y).any()


def test_lengths_that_are_multiples_of_buffer_multiple_are_all_accepted() -> None:
    """A stride-2 then stride-2 model accepts 4, 8, 12, ... and refuses 2 and 6."""
    model = Sequential(Conv1d(2, 2, 4, stride=2, padding=1), Conv1d(2, 2, 4, stride=2, padding=1)).double()
    assert model.buffer_multiple == 4
    for n in (2, 6):
        with pytest.raises(StreamingError, match=r"buffer_multiple=4 \(e\.g\. 4, 8, 16\)"):
            model(signal(1, n))
    x = signal(1, 4 * 10)
    y = stream(model, x, [4, 12, 8, 16])
    assert y.shape == (1, 2, 10)
    assert_exact(y, model.offline(x), model.delay, min_frames=6, edge=1)


def test_the_error_names_the_root_module() -> None:
    """A layer used on its own names itself; in a model, the root is named (the one the host calls)."""
    conv = Conv1d(2, 3, 3, padding=1).double()
    with pytest.raises(StreamingError, match=r"^streamify: Conv1d: expected 2 input channels, got 5"):
        conv(signal(1, 4, channels=5))
    model = Sequential(Conv1d(2, 3, 3, padding=1), Conv1d(3, 3, 3, padding=1)).double()
    with pytest.raises(StreamingError, match=r"^streamify: Sequential: expected 2 input channels, got 3"):
        model(signal(1, 4, channels=3))


def test_streaming_error_is_a_runtime_error() -> None:
    assert issubclass(StreamingError, RuntimeError)
