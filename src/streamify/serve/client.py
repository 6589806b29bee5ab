"""The reference client of ``streamify serve``: one signal as one session, with reconnection and exact resumption.

The client numbers its input buffers, keeps what a resumption needs (here: the whole signal, and the last
state snapshot in snapshot recovery), and when its connection breaks (a replica died, the network
failed) reconnects and asks for the first output it has not received; the server rebuilds the state
(:mod:`streamify.serve.session`) and the client sends again the buffers it asks for. Outputs are kept
by number: none is written twice, and the run fails unless every one arrived.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from streamify.host.report import samples_ms
from streamify.layers.base import StreamingError
from streamify.serve import protocol as p


class ServeError(StreamingError):
    """The server refused or ended the session, or could not be reached again; the message says why."""


class _Lost(Exception):
    """The connection broke (or never opened): reconnect and resume."""


@dataclass
class SendReport:
    """What a session measured: round trips per buffer, lateness when paced, reconnections.

    Attributes:
        sample_rate: the model's rate (or the signal's, for a model that records none), Hz.
        buffer: samples per buffer.
        model_delay: the model's delay at this buffer, samples.
        sent, received: Unix-like monotonic times of each buffer's first send and of its output's arrival, s.
        realtime: whether buffers were paced in real time (lateness is counted only then).
        late: paced buffers whose output came later than one buffer period after the buffer was complete.
        reconnections: connections opened again after one broke.
        resent: input buffers sent again after a reconnection (the replay).
        replicas: the replicas the session ran on, in order.
        notes: extra lines (resampling, compensation).
    """

    sample_rate: int
    buffer: int
    model_delay: int
    sent: np.ndarray
    received: np.ndarray
    realtime: bool
    late: int = 0
    reconnections: int = 0
    resent: int = 0
    replicas: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def period(self) -> float:
        """One buffer of audio, seconds: a paced buffer's output is late after this."""
        return self.buffer / self.sample_rate

    @property
    def round_trips(self) -> np.ndarray:
        """Seconds from each buffer's first send to its output's arrival."""
        return self.received - self.sent

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.round_trips, q)) if len(self.sent) else 0.0

    def rows(self) -> List[Tuple[str, str]]:
        sr, n = self.sample_rate, len(self.sent)
        trips = 1000 * self.round_trips
        rows = [
            ("sample rate", f"{sr} Hz"),
            ("buffer", samples_ms(self.buffer, sr)),
            ("model latency", samples_ms(self.model_delay, sr)),
            (
                "total latency (live)",
                samples_ms(self.model_delay + self.buffer, sr) + " while round trips fit a buffer",
            ),
            ("audio", f"{n * self.buffer / sr:.2f} s in {n} buffers"),
            (
                "round trip",
                f"p50 {np.percentile(trips, 50):.2f} ms, p99 {np.percentile(trips, 99):.2f} ms, "
                f"max {np.max(trips):.2f} ms (a buffer lasts {1000 * self.period:.2f} ms)",
            ),
        ]
        if self.realtime:
            rows.append(("late buffers", f"{self.late} of {n} (output later than a buffer after its input)"))
        else:
            rows.append(("late buffers", "not paced (--realtime paces the buffers and counts them)"))
        rows.append(("replicas", " -> ".join(self.replicas)))
        if self.reconnections:
            rows.append(("reconnections", f"{self.reconnections}, {self.resent} buffers sent again"))
        rows += [("note", note) for note in self.notes]
        return rows

    def text(self) -> str:
        width = max(len(label) for label, _ in self.rows())
        return "\n".join(f"{label:<{width}}  {value}" for label, value in self.rows())

    def table(self):
        """A rich table of :meth:`rows`."""
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for label, value in self.rows():
            table.add_row(label, value)
        return table


@dataclass
class ClientOptions:
    """How a session is sent.

    Attributes:
        buffer: samples per buffer (``None``: the server's).
        realtime: pace buffers in real time (buffer ``i`` sent when its last sample would have been captured).
        compensate: stream ``delay`` more samples of zeros and drop the first ``delay`` (the output lines up).
        session: the session id (default: a random one).
        window: at most this many buffers sent ahead of the outputs received (not paced runs).
        timeout_s: a connection with no message for this long while outputs are due is taken as lost.
        retry_s: give up when no replica takes the session again within this long.
    """

    buffer: Optional[int] = None
    realtime: bool = False
    compensate: bool = False
    session: Optional[str] = None
    window: int = 16
    timeout_s: float = 10.0
    retry_s: float = 30.0


def endpoint(url: str) -> str:
    """``url`` with its path ending in ``/``: the endpoint is the application's root (``ws://HOST:PORT/ROUTE/``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class _Client:
    """One session's state across its connections (see the module docstring)."""

    def __init__(self, url: str, audio: np.ndarray, rate: int, options: ClientOptions) -> None:
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise ServeError(f"streamify: expected audio [channels, time] with samples, got shape {audio.shape}")
        self.url, self.audio, self.rate, self.options = endpoint(url), audio.astype(np.float32), rate, options
        self.session = options.session or uuid.uuid4().hex
        self.ready: Optional[Dict] = None
        self.snapshot: Optional[Tuple[int, bytes]] = None
        self.next_out = 0
        self.highest_sent = -1
        self.progress = asyncio.Event()
        self.done = False
        self.lost_since: Optional[float] = None
        self.report: Optional[SendReport] = None
        self.notes: List[str] = []

    # ------------------------------------------------------------------ the signal, once the model is known
    def _prepare(self, ready: Dict) -> None:
        from streamify.host.files import resample

        rate = int(ready.get("sample_rate") or self.rate)
        if rate != self.rate:
            self.audio = resample(self.audio, self.rate, rate)
            self.notes.append(f"resampled {self.rate} Hz -> {rate} Hz (soxr, very high quality)")
        n, delay = int(ready["buffer"]), int(ready["delay"])
        self.shift = delay if self.options.compensate else 0
        if self.shift:
            self.notes.append(f"compensated: the model's delay of {delay} samples removed")
        self.length = self.audio.shape[1]
        self.total = max(1, -(-(self.length + self.shift) // n))
        self.inputs = np.zeros((self.audio.shape[0], self.total * n), np.float32)
        self.inputs[:, : self.length] = self.audio
        self.outputs = np.zeros((int(ready["out_channels"]), self.total * n), np.float32)
        self.got = np.zeros(self.total, bool)
        self.sent = np.full(self.total, np.nan)
        self.received = np.full(self.total, np.nan)
        self.report = SendReport(rate, n, delay, self.sent, self.received, self.options.realtime, notes=self.notes)
        self.t0 = time.monotonic()

    def result(self) -> np.ndarray:
        return self.outputs[:, self.shift : self.shift + self.length]

    # ------------------------------------------------------------------ connections
    async def run(self) -> None:
        attempt = 0
        while not self.done:
            try:
                await self._connection(attempt)
            except _Lost as lost:
                now = time.monotonic()
                self.lost_since = self.lost_since or now
                if now - self.lost_since > self.options.retry_s:
                    raise ServeError(
                        f"streamify: lost the session at buffer {self.next_out} of {getattr(self, 'total', '?')} "
                        f"({lost}); no replica of {self.url} took it again within {self.options.retry_s:g} s"
                    ) from None
                attempt += 1
                await asyncio.sleep(min(0.5, 0.02 * 2 ** min(attempt, 5)))

    async def _connection(self, attempt: int) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        # the first reconnection asks for the same replica (alive after a network failure); later ones anywhere
        key = self.session if attempt <= 1 else f"{self.session}.{attempt}"
        try:
            ws = await connect(
                self.url,
                additional_headers={"x-session-id": key},
                max_size=None,
                open_timeout=self.options.timeout_s,
                ping_interval=None,
                close_timeout=2,
            )
        except InvalidURI as error:
            raise ServeError(f"streamify: {self.url} is not a WebSocket URL (ws://HOST:PORT): {error}") from None
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as error:
            raise _Lost(f"cannot connect: {error}") from None
        try:
            async with ws:
                await self._session(ws, attempt)
        except (ConnectionClosed, OSError, asyncio.TimeoutError) as error:
            if not self.done:
                raise _Lost(f"connection lost: {error}") from None

    async def _session(self, ws, attempt: int) -> None:
        ready = self.ready
        snapshot = self.snapshot if ready is not None and ready["recovery"] == "snapshot" else None
        channels = self.audio.shape[0]
        start = p.Start(self.session, self.options.buffer, channels, self.next_out, snapshot[0] if snapshot else None)
        await ws.send(start.to_text())
        if snapshot:
            await ws.send(p.snapshot_frame(*snapshot))
        fields = self._check(p.parse_message(await asyncio.wait_for(ws.recv(), self.options.timeout_s)), "ready")
        if self.ready is None:
            self.ready = fields
            self._prepare(fields)
        elif attempt:
            self.report.reconnections += 1
        for key in ("buffer", "out_channels", "delay", "recovery"):
            if fields[key] != self.ready[key]:
                raise ServeError(
                    f"streamify: the replica that resumed the session has {key} {fields[key]}, not {self.ready[key]}"
                )
        self.lost_since = None
        self.report.replicas.append(str(fields.get("replica")))
        first = int(fields["from"])
        self.report.resent += max(0, self.highest_sent + 1 - first)
        sender = asyncio.ensure_future(self._send(ws, first))
        try:
            await self._receive(ws)
        finally:
            sender.cancel()
            if sender.done() and not sender.cancelled() and sender.exception() is not None:
                raise sender.exception()

    def _check(self, fields: Dict, expected: str) -> Dict:
        kind = fields["type"]
        if kind == "error":
            if fields.get("retry"):
                raise _Lost(f"refused: {fields.get('message')}")
            raise ServeError(f"streamify: the server refused the session: {fields.get('message')}")
        if kind == "closing":
            raise ServeError(
                f"streamify: the server ended the session at buffer {self.next_out}: {fields.get('reason')}"
            )
        if kind != expected:
            raise ServeError(f"streamify: expected a {expected!r} message from the server, got {kind!r}")
        return fields

    async def _send(self, ws, first: int) -> None:
        n = self.report.buffer
        window = math.inf if self.options.realtime else self.options.window
        for seq in range(first, self.total):
            while seq >= self.next_out + window:
                self.progress.clear()
                await self.progress.wait()
            if np.isnan(self.sent[seq]):
                if self.options.realtime:
                    await asyncio.sleep(max(0.0, self.t0 + (seq + 1) * self.report.period - time.monotonic()))
                self.sent[seq] = time.monotonic()
            await ws.send(p.audio_frame(seq, self.inputs[:, seq * n : (seq + 1) * n]))
            self.highest_sent = max(self.highest_sent, seq)
        await ws.send(p.message("end", buffers=self.total))

    async def _receive(self, ws) -> None:
        n, out_channels = self.report.buffer, self.outputs.shape[0]
        while True:
            frame = await asyncio.wait_for(ws.recv(), self.options.timeout_s + self.report.period)
            if isinstance(frame, str):
                self._check(p.parse_message(frame), "done")
                if not self.got.all():
                    raise ServeError(
                        f"streamify: the server ended the session with outputs missing from {self.next_out}"
                    )
                self.done = True
                return
            kind, seq, payload = p.parse_frame(frame)
            if kind == p.SNAPSHOT:
                if self.snapshot is None or seq >= self.snapshot[0]:
                    self.snapshot = (seq, bytes(payload))
                continue
            if seq >= self.total:
                raise ServeError(f"streamify: the server sent output {seq} of a session of {self.total} buffers")
            if not self.got[seq]:  # a second copy of an output (never expected) is dropped, not written twice
                self.outputs[:, seq * n : (seq + 1) * n] = p.audio_samples(payload, out_channels, n)
                self.got[seq] = True
                self.received[seq] = time.monotonic()
                while self.next_out < self.total and self.got[self.next_out]:
                    self.next_out += 1
                self.progress.set()


def stream_array(
    url: str, audio: np.ndarray, rate: int, options: Optional[ClientOptions] = None
) -> Tuple[np.ndarray, SendReport]:
    """Send ``audio`` ``[channels, time]`` at ``rate`` Hz to the server at ``url`` as one session.

    Returns the output ``[out_channels, time']`` float32 at the model's rate (the signal is resampled with
    soxr when the model records another) and the :class:`SendReport`. Errors are :class:`ServeError`.
    """
    client = _Client(url, audio, rate, options or ClientOptions())
    asyncio.run(client.run())
    report = client.report
    if report.realtime:
        due = client.t0 + (np.arange(client.total) + 2) * report.period
        report.late = int(np.sum(report.received > due))
    return client.result(), report
