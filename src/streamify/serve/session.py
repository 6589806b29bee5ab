"""One served stream, as a replica runs it: buffer numbering, resumption and recovery (no Ray, no sockets).

A session owns its own copy of the model's stream (:func:`fork`: weights shared with the replica's
model, state its own) and takes numbered input buffers in order. Numbering makes every step
idempotent: a buffer already taken is ignored, a gap is refused, and the output of buffer ``seq``
carries ``seq``.

When a replica dies, the client reconnects (to any replica) and says which output it needs next,
``r``; the new session rebuilds the exact state the old one had before buffer ``r`` (:class:`Recovery`):

* ``replay`` (a model with a bounded receptive field, every conv model): the state before buffer ``r``
  is a function of the last ``delay + receptive field - 1`` input samples only. The session starts a
  fresh stream a few buffers earlier (:meth:`Recovery.restart_from`, on a buffer number that keeps
  the strided layers' phase), the client sends those buffers again, and their output is dropped.
  The same buffers go through the same computation, so the outputs from ``r`` on are the very ones
  the old session would have sent.
* ``snapshot`` (recurrent layers: the state depends on the whole past): the session sends the
  client a snapshot of its state (:meth:`streamify.host.models.TorchModel.get_state`) every few
  buffers; the client keeps the last one and the input since, and sends them back to resume.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from streamify.host.files import channel_layout
from streamify.host.models import HostError, HostModel, TorchModel
from streamify.serve.protocol import ProtocolError, Start, decode_state, encode_state

RECOVERY_MODES = ("auto", "replay", "snapshot")


@dataclass(frozen=True)
class Recovery:
    """How a session's state is rebuilt on another replica, for one model and buffer size.

    Attributes:
        mode: ``"replay"`` or ``"snapshot"``.
        history: replay: input buffers before the first output not received that a restart needs
            (a client keeps ``history + align - 1`` of them); 0 for snapshots.
        align: replay: restarts happen on buffer numbers that are multiples of this (``M / gcd(N, M)``,
            ``M`` the model's buffer multiple, ``N`` the buffer), so that strided layers keep their phase.
        snapshot_every: snapshot: buffers between two snapshots; 0 for replay.
    """

    mode: str
    history: int
    align: int
    snapshot_every: int

    def restart_from(self, next_out: int, snapshot: Optional[int] = None) -> int:
        """The first input buffer a session resuming at output ``next_out`` needs (``snapshot``: the client's)."""
        if self.mode == "snapshot":
            return snapshot or 0
        first = max(0, next_out - self.history)
        return first - first % self.align


def plan_recovery(model: HostModel, buffer: int, mode: str = "auto", snapshot_seconds: float = 1.0) -> Recovery:
    """The :class:`Recovery` of ``model`` streamed in buffers of ``buffer`` samples.

    ``mode``: ``"auto"`` replays where the receptive field is bounded and snapshots otherwise;
    ``"replay"`` refuses an unbounded one; ``"snapshot"`` always snapshots, every ``snapshot_seconds``
    of audio (at the model's rate, 48 kHz where it records none).
    """
    if mode not in RECOVERY_MODES:
        raise HostError(f"streamify: recovery {mode!r} is not one of {RECOVERY_MODES}")
    field = int(getattr(model, "receptive_field", -1))
    if mode == "replay" and field < 0:
        raise HostError(
            f"streamify: {model.name} has an unbounded receptive field (recurrent layers): its state cannot be "
            "rebuilt by replaying input; use --recovery snapshot (or auto)"
        )
    if mode == "snapshot" or field < 0:
        rate = model.sample_rate or 48000
        return Recovery("snapshot", 0, 1, max(1, round(snapshot_seconds * rate / buffer)))
    delay = model.delay_at(buffer) or 0
    history = math.ceil((delay + field - 1) / buffer)
    return Recovery("replay", history, model.multiple // math.gcd(buffer, model.multiple), 0)


def fork(model: HostModel) -> TorchModel:
    """A fresh stream of ``model`` for one session: its own state, the weights shared (not copied)."""
    if not isinstance(model, TorchModel):
        raise HostError(
            f"streamify: serve runs PyTorch models (a factory, 'pretrained', 'demo' or a checkpoint), not a "
            f"{model.kind} file like {model.name}; serve the model it was exported from"
        )
    shared = {id(tensor): tensor for tensor in model.stream.parameters()}
    stream = copy.deepcopy(model.stream, shared)
    stream.reset()
    return TorchModel(stream, model.name, model.sample_rate)


class Session:
    """A stream with numbered buffers (see the module docstring).

    Shape:
        :meth:`feed` takes ``[channels, buffer]`` float32 and returns ``[out_channels, buffer]`` float32,
        ``out_channels`` = :attr:`out_channels` (a 1-channel model takes each channel as a batch item).
    """

    def __init__(self, model: TorchModel, start: Start, buffer: int, recovery: Recovery) -> None:
        model.check_buffer(buffer)
        self.model = model
        self.start = start
        self.buffer = buffer
        self.recovery = recovery
        self.layout = channel_layout(model, start.channels, "the session's audio")
        self.out_channels = self.layout.output_channels
        self.first = recovery.restart_from(start.resume_next, start.resume_snapshot)
        self.next_in = self.first
        self.send_from = start.resume_next
        self.taken = 0
        model.reset()

    def restore(self, seq: int, payload: bytes) -> None:
        """Put the stream in the snapshot's state (the ``SNAP`` frame the client sent after ``start``)."""
        if self.recovery.mode != "snapshot":
            raise ProtocolError("this session recovers by replay: it takes no snapshot")
        if seq != self.start.resume_snapshot:
            raise ProtocolError(
                f"the snapshot frame is numbered {seq}; the start message announced {self.start.resume_snapshot}"
            )
        arrays = decode_state(payload)
        self.model.set_state({name: torch.from_numpy(np.array(value)) for name, value in arrays.items()})

    def feed(self, seq: int, samples: np.ndarray) -> Tuple[Optional[np.ndarray], Optional[bytes]]:
        """Take input buffer ``seq`` ``[channels, buffer]``.

        Returns ``(output, snapshot)``: the output ``[out_channels, buffer]`` (``None`` for a buffer already
        taken, or one whose output the client already has) and, every ``snapshot_every`` buffers in snapshot
        recovery, the state before buffer ``seq + 1`` as ``.npz`` bytes. :class:`ProtocolError` for a gap.
        """
        if seq < self.next_in:
            return None, None  # sent again after a reconnection: already taken
        if seq > self.next_in:
            raise ProtocolError(
                f"input buffer {seq} arrived before buffer {self.next_in}: send buffers in order, none left out"
            )
        y = self.model(self.layout.to_model(samples))
        self.next_in += 1
        self.taken += 1
        snapshot = None
        every = self.recovery.snapshot_every
        if every and self.next_in % every == 0 and self.next_in > (self.start.resume_snapshot or 0):
            snapshot = encode_state(self.model.get_state())
        return (self.layout.from_model(y) if seq >= self.send_from else None), snapshot

    def ready_fields(self) -> Dict[str, object]:
        """The fields of the ``ready`` message (see docs/serve.md)."""
        model = self.model
        return {
            "session": self.start.session,
            "model": model.name,
            "buffer": self.buffer,
            "channels": self.start.channels,
            "out_channels": self.out_channels,
            "sample_rate": model.sample_rate,
            "delay": model.delay_at(self.buffer),
            "recovery": self.recovery.mode,
            "history": self.recovery.history + self.recovery.align - 1,
            "snapshot_every": self.recovery.snapshot_every or None,
            "from": self.first,
            "next": self.send_from,
        }
