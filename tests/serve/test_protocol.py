"""The protocol's frames and messages, and the commands' refusals (no Ray: nothing here starts a cluster)."""

from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from typer.testing import CliRunner

from streamify.cli import app
from streamify.serve import protocol as p


def test_audio_frame_round_trip_and_layout():
    samples = np.arange(6, dtype=np.float32).reshape(2, 3)
    frame = p.audio_frame(7, samples)
    assert frame[:4] == b"AUDI" and frame[4:8] == bytes(4) and int.from_bytes(frame[8:16], "little") == 7
    assert np.frombuffer(frame[16:], "<f4").tolist() == [0, 1, 2, 3, 4, 5]  # channel after channel
    kind, seq, payload = p.parse_frame(frame)
    assert (kind, seq) == (p.AUDIO, 7)
    np.testing.assert_array_equal(p.audio_samples(payload, 2, 3), samples)
    with pytest.raises(p.ProtocolError, match=r"holds 24 bytes .*expected 12 \(1 channel"):
        p.audio_samples(payload, 1, 3)


@pytest.mark.parametrize(
    "frame,match", [(b"AUDI", "shorter than the 16-byte header"), (b"WHAT" + bytes(12), "unknown")]
)
def test_bad_frames_are_refused(frame, match):
    with pytest.raises(p.ProtocolError, match=match):
        p.parse_frame(frame)


def test_snapshot_round_trip_refuses_pickles():
    import torch

    state = {"a.cache": torch.randn(1, 3, 2), "a.warm_pos": torch.tensor([4]), "a.stream_batch": torch.tensor(1)}
    arrays = p.decode_state(p.encode_state(state))
    assert sorted(arrays) == sorted(state)
    np.testing.assert_array_equal(arrays["a.cache"], state["a.cache"].numpy())
    pickled = io.BytesIO()
    np.savez(pickled, evil=np.array([object()], dtype=object))
    with pytest.raises(p.ProtocolError, match="npz"):
        p.decode_state(pickled.getvalue())


def test_start_message_round_trip_and_refusals():
    start = p.Start("s-1", 512, 2, resume_next=9, resume_snapshot=8)
    assert p.Start.parse(p.parse_message(start.to_text())) == start
    for fields, match in [
        ({"type": "end"}, "first message"),
        ({"type": "start", "session": "a b", "channels": 1}, "session"),
        ({"type": "start", "session": "s", "channels": 0}, "channels"),
        ({"type": "start", "session": "s", "channels": 1, "buffer": -2}, "buffer"),
        ({"type": "start", "session": "s", "channels": 1, "resume": {"next": 2, "snapshot": 5}}, "after the next"),
        ({"type": "start", "session": "s", "channels": 1, "protocol": 9}, "protocol version"),
    ]:
        with pytest.raises(p.ProtocolError, match=match):
            p.Start.parse(fields)
    with pytest.raises(p.ProtocolError, match="not JSON"):
        p.parse_message("{")


def test_serve_refuses_an_onnx_file_in_one_line(tmp_path):
    model = tmp_path / "codec.onnx"
    model.write_bytes(b"not onnx")
    result = CliRunner().invoke(app, ["serve", str(model)])
    assert result.exit_code == 2
    assert "cannot load" in result.output and len(result.output.strip().splitlines()) == 1


def test_send_says_when_no_server_answers(tmp_path):
    import soundfile as sf

    source = tmp_path / "in.wav"
    sf.write(source, np.zeros(1000, np.float32), 16000)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    result = CliRunner().invoke(
        app, ["send", str(source), str(tmp_path / "out.wav"), "--url", f"ws://127.0.0.1:{port}", "--retry", "0"]
    )
    assert result.exit_code == 2
    assert "no replica of ws://127.0.0.1" in result.output and "cannot connect" in result.output
    assert not (tmp_path / "out.wav").exists()
