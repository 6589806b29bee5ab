"""Streams are not thread-safe: a call that overlaps another on the same stream is refused.

Issue "The house": one stream called from two threads at once raced silently. Every test here
is deterministic: a gate layer holds the first call open (on an ``Event``) while the second
thread calls, so the overlap is certain, whatever the machine's load.
"""

import threading
from typing import Callable, Dict, List, Optional, Tuple

import pytest
import torch
from torch import Tensor, nn

from core_cases import assert_exact, assert_identical, signal, stream
from streamify import StreamingError, StreamingModule, convert, initial_state, step
from streamify.layers import Conv1d, Heads, Sequential
from streamify.runtime.buffering import AnyLengthStream

#: the refusal's words (the message also says what to do)
BUSY = "already running a buffer on another thread"
#: how long a test waits for the other thread before failing (never reached when the guard works)
WAIT_S = 20.0

#: gates by key: a call through a gate sets ``entered`` and waits for ``release``; "raise" makes it raise
GATES: Dict[str, Tuple[threading.Event, threading.Event]] = {}
FAILING: Dict[str, bool] = {}


class Gate(StreamingModule):
    """An identity layer whose streaming call can be held open or made to raise (TorchScript-compatible)."""

    def __init__(self, channels: int, key: str) -> None:
        super().__init__()
        self.in_channels = channels
        self.out_channels = channels
        self.key = key

    def stream(self, x: Tensor) -> Tensor:
        self._gate(self.key)
        return x.clone()

    def offline(self, x: Tensor) -> Tensor:
        return x.clone()

    @torch.jit.ignore
    def _gate(self, key: str) -> None:
        if FAILING.get(key, False):
            raise RuntimeError("gate: failing on purpose")
        if key in GATES:
            entered, release = GATES[key]
            entered.set()
            assert release.wait(WAIT_S), "the test never released the gate"


def gated(key: str) -> Sequential:
    """A float64 model with a gate between two convs (delay 2 frames)."""
    torch.manual_seed(0)
    return Sequential(Conv1d(2, 3, 3, padding=1), Gate(3, key), Conv1d(3, 2, 3, padding=1)).double()


def script(model: nn.Module) -> nn.Module:
    return torch.jit.script(model)


MAKERS: Dict[str, Callable[[nn.Module], nn.Module]] = {"eager": lambda m: m, "scripted": script}


class Held:
    """Run ``call(x)`` on another thread, held open inside the gate ``key`` until :meth:`release`."""

    def __init__(self, key: str, call: Callable[[Tensor], object], x: Tensor) -> None:
        self.key = key
        GATES[key] = (threading.Event(), threading.Event())
        self.result: List[object] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self._run(call, x)))
        self.thread.start()
        assert GATES[key][0].wait(WAIT_S), "the first call never reached the gate"
        assert not self.result, f"the first call ended before the gate: {self.result}"

    def _run(self, call: Callable[[Tensor], object], x: Tensor) -> object:
        try:
            with torch.no_grad():
                return call(x)
        except Exception as error:  # handed to the test thread
            GATES[self.key][0].set()
            return error

    def release(self) -> object:
        GATES[self.key][1].set()
        self.thread.join(WAIT_S)
        del GATES[self.key]
        assert len(self.result) == 1
        return self.result[0]


def refused(call: Callable[[], object]) -> str:
    """The message of the error ``call`` raises (a StreamingError in eager Python, a TorchScript error else)."""
    with pytest.raises((StreamingError, torch.jit.Error)) as caught, torch.no_grad():
        call()
    return str(caught.value)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_a_second_thread_is_refused_while_a_buffer_runs(kind: str) -> None:
    key = "second-" + kind
    model = MAKERS[kind](gated(key))
    reference = gated(key)
    x = signal(1, 48)
    held = Held(key, model, x[..., :16])
    message = refused(lambda: model(x[..., 16:32]))
    assert BUSY in message and "one stream per thread" in message and "Sequential" in message
    first = held.release()
    assert isinstance(first, Tensor)
    # the refused call changed nothing: the stream goes on from this thread, exactly
    rest = stream(model, x[..., 16:], [16, 16])
    assert_identical(torch.cat([first, rest], -1), stream(reference, x, [16, 16, 16]))
    assert_exact(torch.cat([first, rest], -1), reference.offline(x), reference.delay)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_any_length_stream_refuses_a_second_thread(kind: str) -> None:
    key = "any-" + kind
    model = MAKERS[kind](AnyLengthStream(gated(key)))
    x = signal(1, 30)
    held = Held(key, model, x[..., :10])
    assert BUSY in refused(lambda: model(x[..., 10:20]))
    assert isinstance(held.release(), Tensor)
    rest = stream(model, x[..., 10:], [10, 10])
    reference = gated(key)
    assert_exact(torch.cat([held.result[0], rest], -1), reference.offline(x), reference.delay)


def test_heads_refuse_a_second_thread() -> None:
    torch.manual_seed(0)
    model = Heads(Sequential(Conv1d(2, 3, 3, padding=1), Gate(3, "heads")), Conv1d(2, 1, 4, stride=2, padding=1))
    model = model.double()
    held = Held("heads", model, signal(1, 8))
    assert BUSY in refused(lambda: model(signal(1, 8)))
    assert isinstance(held.release(), list)


def test_a_step_and_a_call_exclude_each_other() -> None:
    model = gated("step")
    x = signal(1, 16)
    state = initial_state(model, 1)
    # a stateful call runs: a step from another thread would lend the model's buffers under it
    held = Held("step", model, x)
    assert BUSY in refused(lambda: step(model, x, state))
    held.release()
    # a step runs: a stateful call would read the step's state
    held = Held("step", lambda b: step(model, b, state), x)
    assert BUSY in refused(lambda: model(x))
    y, _ = held.release()
    fresh = gated("step")
    assert_identical(y, stream(fresh, x, [16]))
    # the step gave the guard back, and left the model's own stream as it was (one buffer in)
    assert_identical(stream(model, x, [16]), stream(fresh, x, [16]))


@pytest.mark.parametrize("kind", list(MAKERS))
def test_one_stream_used_by_threads_one_after_another_is_exact(kind: str) -> None:
    model = MAKERS[kind](gated("unused"))
    x = signal(2, 64)
    outputs: List[Optional[Tensor]] = [None] * 4
    for index in range(4):

        def run(i: int = index) -> None:
            with torch.no_grad():
                outputs[i] = model(x[..., 16 * i : 16 * (i + 1)])

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(WAIT_S)
    reference = gated("unused")
    streamed = torch.cat([y for y in outputs if y is not None], -1)
    assert_exact(streamed, reference.offline(x), reference.delay)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_a_call_that_raised_midway_is_refused_until_reset(kind: str) -> None:
    key = "raise-" + kind
    model = MAKERS[kind](gated(key))
    x = signal(1, 48)
    stream(model, x[..., :16], [16])
    FAILING[key] = True
    try:
        with pytest.raises((RuntimeError, torch.jit.Error), match="failing on purpose"), torch.no_grad():
            model(x[..., 16:32])
    finally:
        del FAILING[key]
    # the state is half-advanced: refused (saying to reset) rather than streamed wrong
    assert "call reset()" in refused(lambda: model(x[..., 16:32]))
    model.reset()
    reference = gated(key)
    assert_exact(stream(model, x, [16, 16, 16]), reference.offline(x), reference.delay)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_a_refused_buffer_leaves_the_stream_usable(kind: str) -> None:
    model = MAKERS[kind](gated("refused"))
    x = signal(1, 32)
    assert "channels" in refused(lambda: model(signal(1, 8, channels=3)))
    reference = gated("refused")
    assert_exact(stream(model, x, [8, 24]), reference.offline(x), reference.delay)


def test_a_scripted_converted_model_keeps_the_guard() -> None:
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv1d(2, 1, 3, padding=1))
    scripted = torch.jit.script(convert(plain, torch.randn(1, 1, 64)))
    scripted.busy = True  # what a call running on another thread holds
    assert BUSY in refused(lambda: scripted(torch.randn(1, 1, 16)))
    scripted.reset()
    assert scripted(torch.randn(1, 1, 16)).shape == (1, 1, 16)


def test_an_onnx_stream_refuses_a_second_thread(tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from streamify.export import OnnxStream, export_onnx

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv1d(2, 1, 3, padding=1))
    export_onnx(plain, tmp_path / "m.onnx", torch.randn(1, 1, 64))
    runner, reference = OnnxStream(tmp_path / "m.onnx"), OnnxStream(tmp_path / "m.onnx")
    run = runner.session.run_with_iobinding

    def held_run(binding) -> None:  # the session's run, held open inside a gate
        Gate(1, "onnx")._gate("onnx")
        run(binding)

    runner.session.run_with_iobinding = held_run
    x = torch.randn(1, 1, 48)
    held = Held("onnx", runner, x[..., :16])
    message = refused(lambda: runner(x[..., 16:32]))
    assert BUSY in message and "reset()" not in message
    first = held.release()

    def failing_run(binding) -> None:
        raise RuntimeError("session failed")

    runner.session.run_with_iobinding = failing_run
    with pytest.raises(RuntimeError, match="session failed"):
        runner(x[..., 16:32])
    # ONNX Runtime's state advances only on success: no reset needed, the stream goes on exactly
    runner.session.run_with_iobinding = run
    got = torch.cat([first, runner(x[..., 16:32]), runner(x[..., 32:])], -1)
    expected = torch.cat([reference(x[..., i : i + 16]) for i in (0, 16, 32)], -1)
    assert torch.equal(got, expected)
