"""Sessions without Ray: buffer numbering, and resumption after a lost replica giving exactly `process`'s output."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamify.host import load_host_model, process_array
from streamify.serve.protocol import ProtocolError, Start
from streamify.serve.session import Session, fork, plan_recovery

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = {}


def model(spec: str):
    if spec not in MODELS:
        MODELS[spec] = load_host_model(spec)
    return MODELS[spec]


def signal(channels: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 48000
    tone = 0.4 * np.sin(2 * np.pi * 220 * (1 + np.arange(channels))[:, None] * t)
    return (tone + 0.2 * rng.standard_normal((channels, length))).astype(np.float32)


def run_session(spec: str, audio: np.ndarray, buffer: int, cuts, recovery: str = "auto") -> np.ndarray:
    """Stream ``audio`` as a client would, the replica lost at each ``(taken, received)`` of ``cuts``: after the
    session took ``taken`` more buffers, of whose outputs the client received ``received``."""
    template = model(spec)
    plan = plan_recovery(template, buffer, recovery)
    total = -(-audio.shape[1] // buffer)
    padded = np.zeros((audio.shape[0], total * buffer), np.float32)
    padded[:, : audio.shape[1]] = audio
    outputs, snapshot = {}, None
    cuts = list(cuts)
    while len(outputs) < total:
        next_out = len(outputs)
        held = snapshot if plan.mode == "snapshot" else None
        start = Start("s", buffer, audio.shape[0], next_out, held[0] if held else None)
        session = Session(fork(template), start, buffer, plan)
        if held:
            session.restore(*held)
        assert session.first <= next_out
        if plan.mode == "replay" and next_out >= plan.history + plan.align:
            assert session.first > 0  # a restart from its history, not a replay of everything
        taken, received = cuts.pop(0) if cuts else (total, total)
        pending = []
        for seq in range(session.first, total):
            out, snap = session.feed(seq, padded[:, seq * buffer : (seq + 1) * buffer])
            if snap is not None:
                snapshot = (seq + 1, snap)
            if out is not None:
                pending.append((seq, out))
            if seq + 1 - session.first >= taken:
                break
        for seq, out in pending[: max(received, 0)]:
            assert seq not in outputs, f"output {seq} sent twice"
            outputs[seq] = out
        if plan.mode == "snapshot" and snapshot is not None and snapshot[0] > len(outputs):
            snapshot = None  # the client keeps only a snapshot up to what it received (conservative)
    assert sorted(outputs) == list(range(total))
    return np.concatenate([outputs[i] for i in range(total)], axis=1)[:, : audio.shape[1]]


CASES = [
    ("demo", 1, 512),
    ("demo", 2, 200),  # two channels as batch items; 200 is not a multiple of 8: the any-length path
    ("serve_models:strided_codec", 1, 24),  # strided phase: restarts on even buffer numbers
    ("serve_models:strided_codec", 1, 64),
    ("serve_models:recurrent_net", 1, 32),  # snapshots
]


@pytest.mark.parametrize("spec,channels,buffer", CASES)
@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_resumed_session_equals_process(spec, channels, buffer, data):
    audio = signal(channels, 24 * buffer + 7, seed=buffer)
    expected, _ = process_array(model(spec), audio, buffer)
    cuts = data.draw(st.lists(st.tuples(st.integers(1, 30), st.integers(0, 30)), max_size=4))
    got = run_session(spec, audio, buffer, cuts)
    np.testing.assert_array_equal(got, expected)


def test_snapshot_recovery_of_a_conv_model_equals_process():
    audio = signal(1, 30 * 256, seed=3)
    expected, _ = process_array(model("demo"), audio, 256)
    got = run_session("demo", audio, 256, [(9, 4), (7, 7), (3, 0)], recovery="snapshot")
    np.testing.assert_array_equal(got, expected)


def test_replay_restarts_late_and_a_short_replay_is_not_exact():
    """A resumed session replays only its history (it does not restart from buffer 0); one buffer of history
    instead is not exact: the test sees a replay that reaches back too little."""
    spec, buffer = "serve_models:strided_codec", 16
    plan = plan_recovery(model(spec), buffer)
    assert plan.mode == "replay" and plan.history >= 3
    audio = signal(1, 40 * buffer, seed=5)
    expected, _ = process_array(model(spec), audio, buffer)
    np.testing.assert_array_equal(run_session_with_plan(plan, spec, audio, buffer), expected)
    short = type(plan)("replay", 1, plan.align, 0)
    assert not np.array_equal(run_session_with_plan(short, spec, audio, buffer), expected)


def run_session_with_plan(plan, spec, audio, buffer):
    """Lose the replica after buffer 20 (every output received), resume with ``plan``."""
    total = -(-audio.shape[1] // buffer)
    padded = np.zeros((1, total * buffer), np.float32)
    padded[:, : audio.shape[1]] = audio
    outputs = {}
    for cut in (20, total):
        start = Start("s", buffer, 1, len(outputs))
        session = Session(fork(model(spec)), start, buffer, plan)
        assert session.first == plan.restart_from(len(outputs)) and (not outputs or session.first > 0)
        for seq in range(session.first, cut):
            out, _ = session.feed(seq, padded[:, seq * buffer : (seq + 1) * buffer])
            if out is not None:
                outputs[seq] = out
    return np.concatenate([outputs[i] for i in range(total)], axis=1)[:, : audio.shape[1]]


def test_numbering_is_idempotent_and_refuses_gaps():
    session = Session(fork(model("demo")), Start("s", 64, 1), 64, plan_recovery(model("demo"), 64))
    x = signal(1, 64, 0)
    out, _ = session.feed(0, x)
    assert out is not None
    assert session.feed(0, x) == (None, None)  # the same buffer again: ignored
    with pytest.raises(ProtocolError, match="buffer 2 arrived before buffer 1"):
        session.feed(2, x)


def test_recurrent_model_refuses_replay():
    from streamify.host import HostError

    with pytest.raises(HostError, match="unbounded receptive field"):
        plan_recovery(model("serve_models:recurrent_net"), 32, "replay")
