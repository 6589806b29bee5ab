"""The session protocol of ``streamify serve``: one WebSocket connection = one session = one stream.

Written out for other clients in docs/serve.md ("Protocol"). Text frames are JSON objects with a
``"type"``; binary frames are a 16-byte header and a payload:

* header: 4 ASCII bytes ``kind`` (``AUDI`` audio, ``SNAP`` state snapshot), 4 reserved bytes (zero),
  then ``seq``, the buffer number, unsigned 64-bit little-endian;
* ``AUDI`` payload: ``channels x buffer`` float32 little-endian samples, channel after channel
  (``[channels, buffer]``, C order); an output buffer carries the number of the input buffer it answers;
* ``SNAP`` payload: a NumPy ``.npz`` archive of the stream's state before input buffer ``seq``
  (arrays only, read with ``allow_pickle=False``).

This module is free of Ray and of any WebSocket library: both ends build and parse frames with it.
"""

from __future__ import annotations

import io
import json
import re
import struct
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

PROTOCOL = 1
HEADER = struct.Struct("<4s4xQ")
AUDIO = b"AUDI"
SNAPSHOT = b"SNAP"
#: the session id: what clients put in ``start`` (and in the ``x-session-id`` header for replica affinity)
SESSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

#: WebSocket close codes the server uses (RFC 6455)
CLOSE_DONE = 1000  # the session ended (after "done")
CLOSE_GOING_AWAY = 1001  # the server shuts down (after "closing")
CLOSE_PROTOCOL = 1008  # the client broke the protocol (after "error")
CLOSE_SERVER_ERROR = 1011  # the model or the server failed (after "error")
CLOSE_TRY_LATER = 1013  # the server is draining: it takes no new session (after "error", retry elsewhere)


class ProtocolError(ValueError):
    """A frame or message that breaks the protocol; the message says which and what was expected."""


def audio_frame(seq: int, samples: np.ndarray) -> bytes:
    """A binary ``AUDI`` frame: buffer ``seq`` of ``samples`` ``[channels, n]`` (sent as float32 little-endian)."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    return HEADER.pack(AUDIO, int(seq)) + data.tobytes()


def snapshot_frame(seq: int, payload: bytes) -> bytes:
    """A binary ``SNAP`` frame: the state before input buffer ``seq`` (``payload`` from :func:`encode_state`)."""
    return HEADER.pack(SNAPSHOT, int(seq)) + payload


def parse_frame(frame: bytes) -> Tuple[bytes, int, memoryview]:
    """``(kind, seq, payload)`` of a binary frame; :class:`ProtocolError` for a short frame or an unknown kind."""
    if len(frame) < HEADER.size:
        raise ProtocolError(f"a binary frame of {len(frame)} bytes is shorter than the {HEADER.size}-byte header")
    kind, seq = HEADER.unpack_from(frame)
    if kind not in (AUDIO, SNAPSHOT):
        raise ProtocolError(f"unknown binary frame kind {kind!r}; expected {AUDIO!r} or {SNAPSHOT!r}")
    return kind, seq, memoryview(frame)[HEADER.size :]


def audio_samples(payload: memoryview, channels: int, buffer: int) -> np.ndarray:
    """The ``[channels, buffer]`` float32 array of an ``AUDI`` payload; :class:`ProtocolError` for another size."""
    expected = channels * buffer * 4
    if len(payload) != expected:
        raise ProtocolError(
            f"an audio frame holds {len(payload)} bytes of samples; expected {expected} "
            f"({channels} channel(s) x {buffer} samples x 4 bytes, float32)"
        )
    return np.frombuffer(payload, dtype="<f4").reshape(channels, buffer).astype(np.float32)


def encode_state(state: Dict[str, Any]) -> bytes:
    """A snapshot (name -> tensor or array) as ``.npz`` bytes (no pickles)."""
    arrays = {
        name: np.asarray(value.detach().cpu() if hasattr(value, "detach") else value) for name, value in state.items()
    }
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def decode_state(payload: bytes) -> Dict[str, np.ndarray]:
    """The arrays of a ``.npz`` snapshot; :class:`ProtocolError` for anything else (pickled objects are refused)."""
    try:
        with np.load(io.BytesIO(bytes(payload)), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise ProtocolError(f"a snapshot frame does not hold a .npz archive of arrays: {error}") from error


def message(kind: str, **fields: Any) -> str:
    """A text frame: ``{"type": kind, ...fields}`` as JSON."""
    return json.dumps({"type": kind, **fields})


def parse_message(text: str) -> Dict[str, Any]:
    """A text frame's JSON object; :class:`ProtocolError` when it is not an object with a ``"type"``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"a text frame is not JSON: {error}") from error
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ProtocolError('a text frame must be a JSON object with a "type"')
    return value


@dataclass(frozen=True)
class Start:
    """The client's first message: which session, buffer and channels, and where to resume.

    Attributes:
        session: the session id (letters, digits, ``._:-``; at most 128).
        buffer: samples per buffer (``None``: the server's ``--buffer``).
        channels: channels of the client's audio.
        resume_next: on a reconnection, the first output buffer the client has not received (0: a new session).
        resume_snapshot: the ``seq`` of the snapshot the client sends right after this message (snapshot recovery).
    """

    session: str
    buffer: Optional[int]
    channels: int
    resume_next: int = 0
    resume_snapshot: Optional[int] = None

    def to_text(self) -> str:
        resume = None
        if self.resume_next or self.resume_snapshot is not None:
            resume = {"next": self.resume_next, "snapshot": self.resume_snapshot}
        return message(
            "start", protocol=PROTOCOL, session=self.session, buffer=self.buffer, channels=self.channels, resume=resume
        )

    @classmethod
    def parse(cls, fields: Dict[str, Any]) -> Start:
        """From a parsed ``start`` message; :class:`ProtocolError` naming the field that is wrong."""
        if fields.get("type") != "start":
            raise ProtocolError(f'the first message must be {{"type": "start", ...}}, got type {fields.get("type")!r}')
        if fields.get("protocol", PROTOCOL) != PROTOCOL:
            raise ProtocolError(
                f"protocol version {fields.get('protocol')!r} is not served; this server speaks {PROTOCOL}"
            )
        session = fields.get("session")
        if not isinstance(session, str) or not SESSION_ID.match(session):
            raise ProtocolError(f"session {session!r} must be 1 to 128 letters, digits or ._:-")
        buffer = fields.get("buffer")
        if buffer is not None and (not _whole(buffer) or buffer <= 0):
            raise ProtocolError(f"buffer {buffer!r} must be a positive integer (samples) or null")
        channels = fields.get("channels")
        if not _whole(channels) or not 1 <= channels <= 64:
            raise ProtocolError(f"channels {channels!r} must be an integer from 1 to 64")
        resume = fields.get("resume") or {}
        if not isinstance(resume, dict):
            raise ProtocolError('resume must be null or {"next": int, "snapshot": int or null}')
        next_out, snapshot = resume.get("next", 0), resume.get("snapshot")
        if not _whole(next_out) or next_out < 0 or (snapshot is not None and (not _whole(snapshot) or snapshot < 0)):
            raise ProtocolError(f"resume {resume!r}: next and snapshot must be buffer numbers >= 0")
        if snapshot is not None and snapshot > next_out:
            raise ProtocolError(f"resume: the snapshot ({snapshot}) lies after the next output wanted ({next_out})")
        return cls(session, buffer, channels, next_out, snapshot)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
