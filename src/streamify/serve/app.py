"""The Ray Serve application: a WebSocket endpoint whose connections are sessions (see docs/serve.md).

Each replica loads the model once; every connection gets its own stream of it (:func:`fork`) and
runs its buffers on the replica's model thread, one buffer at a time in arrival order. A connection
lives on one replica for its whole life; the ``x-session-id`` header routes a session's reconnections
back to the same replica while it lives (consistent hashing), and anywhere else when it died.

A :class:`Control` actor, created by ``streamify serve``, starts the graceful drain: replicas then take
no new session, let running ones end until the deadline, and close those left with ``closing``.
"""

import asyncio
import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Set

import ray
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from ray import serve

from streamify.layers.base import StreamingError
from streamify.serve import protocol as p
from streamify.serve.session import Session, fork, plan_recovery

CONTROL_NAMESPACE = "streamify"
LOG = logging.getLogger("ray.serve")
CONSISTENT_HASH_ROUTER = "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter"
#: seconds a new connection may take to send its start message (and snapshot)
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServeConfig:
    """What every replica needs: the model, the default buffer, recovery, threads, and the control actor's name."""

    model: str
    weights: Optional[str] = None
    sample_rate: Optional[int] = None
    buffer: int = 2048
    recovery: str = "auto"
    snapshot_seconds: float = 1.0
    threads: int = 1
    control: Optional[str] = None


@ray.remote(num_cpus=0)
class Control:
    """Coordinates the drain of one application: a deadline set once, and the replicas' live session counts."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.deadline = 0.0
        self.counts: Dict[str, tuple] = {}

    async def drain(self, seconds: float) -> None:
        """Start the drain: sessions may run ``seconds`` more."""
        self.deadline = time.time() + seconds
        self.started.set()

    async def wait_drain(self) -> float:
        """Wait until the drain starts; returns its deadline (Unix time)."""
        await self.started.wait()
        return self.deadline

    async def report(self, replica: str, active: int, served: int, closed: int) -> None:
        """A replica's sessions: running now, served since it started, closed at the drain deadline."""
        self.counts[replica] = (active, served, closed, time.time())

    async def active(self, fresh_s: float = 3.0) -> int:
        """Sessions running on the replicas that reported in the last ``fresh_s`` seconds."""
        now = time.time()
        return sum(active for active, _, _, when in self.counts.values() if now - when <= fresh_s)

    async def totals(self) -> tuple:
        """``(sessions served, sessions closed at the drain deadline)`` over every replica that reported."""
        return tuple(sum(counts[i] for counts in self.counts.values()) for i in (1, 2))


api = FastAPI()


@serve.ingress(api)
class StreamServer:
    """One replica: the model, a thread that runs it, and the sessions connected here."""

    def __init__(self, config: Dict[str, Any]) -> None:
        import torch

        from streamify.host.models import load_host_model

        self.config = ServeConfig(**config)
        torch.set_num_threads(self.config.threads)
        self.model = load_host_model(self.config.model, self.config.weights, sample_rate=self.config.sample_rate)
        fork(self.model)  # refuse a model kind serve cannot run, at deployment
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="streamify-model")
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.sessions: Set[asyncio.Event] = set()
        self.served = 0
        self.closed = 0
        self.draining = False
        self.watcher: Optional[asyncio.Task] = None

    @staticmethod
    async def _refuse(ws: WebSocket, text: str, code: int, retry: bool) -> None:
        """Send ``error`` and close with ``code``; a connection already gone is left alone."""
        LOG.warning("streamify: session refused or ended (close code %d): %s", code, text)
        try:
            await ws.send_text(p.message("error", message=text, retry=retry))
            await ws.close(code, reason=text.encode()[:120].decode(errors="ignore"))
        except (RuntimeError, WebSocketDisconnect):
            pass

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)

    def _control(self):
        if self.config.control is None:
            return None
        try:
            return ray.get_actor(self.config.control, namespace=CONTROL_NAMESPACE)
        except ValueError:
            return None

    def _report(self) -> None:
        control = self._control()
        if control is not None:
            control.report.remote(self.replica, len(self.sessions), self.served, self.closed)

    async def _watch_drain(self) -> None:
        control = self._control()
        if control is None:
            return
        try:
            deadline = await control.wait_drain.remote()
        except ray.exceptions.RayError:
            return  # the control actor is gone (its driver ended): nothing to coordinate
        self.draining = True
        while self.sessions and time.time() < deadline:
            self._report()
            await asyncio.sleep(0.25)
        self.closed += len(self.sessions)
        for stop in list(self.sessions):
            stop.set()
        await asyncio.sleep(0.2)  # let the sessions send "closing"
        self._report()

    @api.websocket("/")
    async def session(self, ws: WebSocket) -> None:
        """One session: ``start`` (and a snapshot), ``ready``, numbered buffers both ways, ``end``, ``done``."""
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self._watch_drain())
        await ws.accept()
        if self.draining:  # read the start message first: the refusal then answers it, in order
            with contextlib.suppress(asyncio.TimeoutError, WebSocketDisconnect):
                await asyncio.wait_for(ws.receive(), START_TIMEOUT_S)
            text = "the server is shutting down and takes no new session; try another server"
            await self._refuse(ws, text, p.CLOSE_TRY_LATER, True)
            return
        stop = asyncio.Event()
        self.sessions.add(stop)
        self.served += 1
        self._report()
        try:
            await self._serve(ws, stop)
        except WebSocketDisconnect:
            pass  # the client left (or lost its connection): it resumes on a new one
        except p.ProtocolError as error:
            await self._refuse(ws, f"protocol: {error}", p.CLOSE_PROTOCOL, False)
        except asyncio.TimeoutError:
            await self._refuse(ws, f"protocol: no start message within {START_TIMEOUT_S:g} s", p.CLOSE_PROTOCOL, False)
        except StreamingError as error:
            await self._refuse(ws, str(error).removeprefix("streamify: "), p.CLOSE_PROTOCOL, False)
        except Exception as error:  # the model failed: say so, the session cannot go on
            await self._refuse(ws, f"server error: {type(error).__name__}: {error}", p.CLOSE_SERVER_ERROR, False)
        finally:
            self.sessions.discard(stop)
            self._report()

    async def _serve(self, ws: WebSocket, stop: asyncio.Event) -> None:
        start = p.Start.parse(p.parse_message(await asyncio.wait_for(ws.receive_text(), START_TIMEOUT_S)))
        buffer = start.buffer or self.config.buffer
        config = self.config
        plan = plan_recovery(self.model, buffer, config.recovery, config.snapshot_seconds)
        session = await self._run(lambda: Session(fork(self.model), start, buffer, plan))
        if start.resume_snapshot is not None:
            kind, seq, payload = p.parse_frame(await asyncio.wait_for(ws.receive_bytes(), START_TIMEOUT_S))
            if kind != p.SNAPSHOT:
                raise p.ProtocolError("a start message with resume.snapshot must be followed by that SNAP frame")
            await self._run(session.restore, seq, payload)
        fields = session.ready_fields()
        await ws.send_text(p.message("ready", protocol=p.PROTOCOL, replica=self.replica, pid=os.getpid(), **fields))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                received = asyncio.ensure_future(ws.receive())
                await asyncio.wait({received, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not received.done():
                    received.cancel()
                    await ws.send_text(p.message("closing", reason="the server shuts down", next=session.next_in))
                    await ws.close(p.CLOSE_GOING_AWAY)
                    return
                if await self._take(ws, session, received.result()):
                    return
        finally:
            stopped.cancel()

    async def _take(self, ws: WebSocket, session: Session, incoming: dict) -> bool:
        """Handle one incoming message; True when the session is over."""
        if incoming["type"] == "websocket.disconnect":
            return True
        if incoming.get("bytes") is not None:
            kind, seq, payload = p.parse_frame(incoming["bytes"])
            if kind != p.AUDIO:
                raise p.ProtocolError("a SNAP frame is taken only right after a start message that announces it")
            samples = p.audio_samples(payload, session.start.channels, session.buffer)
            out, snapshot = await self._run(session.feed, seq, samples)
            if out is not None:
                await ws.send_bytes(p.audio_frame(seq, out))
            if snapshot is not None:
                await ws.send_bytes(p.snapshot_frame(session.next_in, snapshot))
            return False
        fields = p.parse_message(incoming.get("text") or "")
        if fields["type"] != "end":
            raise p.ProtocolError(
                f"unexpected message type {fields['type']!r} during a session (expected audio or end)"
            )
        if fields.get("buffers", session.next_in) != session.next_in:
            raise p.ProtocolError(f"end says {fields.get('buffers')} buffers, the session took {session.next_in}")
        await ws.send_text(p.message("done", buffers=session.next_in))
        await ws.close(p.CLOSE_DONE)
        return True


def application(config: ServeConfig, replicas: int, replica_cpus: float, max_sessions: int, drain_s: float):
    """The bound Ray Serve application (``serve.run`` it) of ``replicas`` replicas of ``config``'s model."""
    from ray.serve.config import RequestRouterConfig

    deployment = serve.deployment(StreamServer, name="StreamServer").options(
        num_replicas=replicas,
        ray_actor_options={"num_cpus": replica_cpus},
        max_ongoing_requests=max_sessions,
        graceful_shutdown_timeout_s=drain_s + 5.0,
        graceful_shutdown_wait_loop_s=0.5,
        request_router_config=RequestRouterConfig(
            request_router_class=CONSISTENT_HASH_ROUTER,
            request_router_kwargs={"num_fallback_replicas": max(0, min(2, replicas - 1))},
        ),
    )
    return deployment.bind(asdict(config))


def replica_processes(app: str) -> Dict[str, int]:
    """``{replica id: PID}`` of the application's live replicas, from Ray's actor table (the GCS).

    The replicas are the actors named ``SERVE_REPLICA::<app>#<deployment>#<id>``; ``ray list actors`` shows
    the same table (it needs Ray's dashboard; this reads it directly).
    """
    from ray._private import state

    found = {}
    for actor in state.actors().values():
        name = actor.get("Name") or ""
        if actor.get("State") == "ALIVE" and name.startswith(f"SERVE_REPLICA::{app}#"):
            found[name.rsplit("#", 1)[-1]] = int(actor["Pid"])
    return found
