"""Live audio through a model: the audio callback, the worker thread, and the JACK and PortAudio backends.

The audio callback only copies: host blocks into the input ring, the output ring into the host's
output (or silence when the worker is late), peaks into preallocated meters, and wakes the worker
through a non-blocking pipe. The worker thread takes ``buffer`` samples at a time from the input
ring, runs the model and writes the result into the output ring.

Latency, double buffering as nn~ does it: with host blocks of ``H`` samples and model buffers of
``N`` (a multiple of ``H``, or a divisor of it), the output ring starts with
``P = 2 * max(N, H) - H`` samples of silence, so that each model buffer has one buffer period
(``max(N, H)`` samples of time) to be computed. The output is the model's output delayed by
``P``: total latency ``model delay + P`` samples, i.e. ``delay + N`` when ``N == H``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import select
import sys
import threading
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from streamify.extras import missing_message
from streamify.host.devices import input_device, sounddevice
from streamify.host.files import Layout, channel_layout
from streamify.host.models import HostError, HostModel, error_cause
from streamify.host.report import RunReport
from streamify.host.ring import Ring

log = logging.getLogger("streamify.host")


def default_buffer(model: HostModel, block: int) -> int:
    """The model buffer for host blocks of ``block`` samples: the least common multiple of both."""
    return block * model.multiple // math.gcd(block, model.multiple)


def buffering_latency(buffer: int, block: int) -> int:
    """Samples the double buffering adds: ``2 * max(buffer, block) - block``."""
    return 2 * max(buffer, block) - block


@dataclass
class LiveStats:
    """Counters of a live run (read by the view while it runs).

    Attributes:
        blocks: host callbacks so far.
        buffers: model calls so far.
        late_blocks: host blocks that got (partly) silence because the worker had not delivered yet.
        late_buffers: model buffers delivered after part of them should have been played.
        over_deadline: model calls slower than one buffer period.
        xruns: xruns the backend reported.
        errors: model calls that raised (silence instead).
        overflows: host blocks written over unread input (the worker fell a whole ring behind).
        compute_seconds: total time in the model.
        started: ``time.perf_counter()`` at start.
    """

    blocks: int = 0
    buffers: int = 0
    late_blocks: int = 0
    late_buffers: int = 0
    over_deadline: int = 0
    xruns: int = 0
    errors: int = 0
    overflows: int = 0
    compute_seconds: float = 0.0
    started: float = 0.0
    last_error: str = ""


class LiveEngine:
    """The real-time core, independent of the backend.

    Args:
        model: the model (reset and warmed up at :meth:`start`).
        block: host block size in samples (``H``).
        sample_rate: the host's rate in Hz; a model that records another rate is run through soxr's streaming
            resamplers (:class:`streamify.host.resampled.ResampledModel`), their latency included.
        channels: host input channels (default: the model's input channels).
        buffer: model buffer ``N`` in samples (default :func:`default_buffer`).
        threads: the worker's intra-op threads (PyTorch, process-wide; ONNX Runtime sessions get theirs at load).
        realtime: run the worker thread at the lowest real-time priority when the system allows it.
    """

    def __init__(
        self,
        model: HostModel,
        block: int,
        sample_rate: int,
        channels: Optional[int] = None,
        buffer: Optional[int] = None,
        threads: int = 1,
        realtime: bool = True,
    ) -> None:
        if model.sample_rate and model.sample_rate != sample_rate:
            from streamify.host.resampled import ResampledModel

            model = ResampledModel(model, sample_rate)  # the device's rate, resampled to the model's and back
        self.model = model
        self.block = int(block)
        self.sample_rate = int(sample_rate)
        self.layout: Layout = channel_layout(model, channels or model.in_channels, "the live input")
        self.buffer = int(buffer) if buffer else default_buffer(model, self.block)
        model.check_buffer(self.buffer)
        if self.buffer % self.block != 0 and self.block % self.buffer != 0:
            raise HostError(
                f"streamify: a model buffer of {self.buffer} samples is neither a multiple nor a divisor of the host's "
                f"{self.block}-sample blocks; use --buffer {default_buffer(model, self.block)}"
            )
        self.threads = int(threads)
        self.realtime = realtime
        self.priority = "normal priority"
        self.buffering = buffering_latency(self.buffer, self.block)
        period = max(self.buffer, self.block)
        self.inputs = Ring(self.layout.channels, 8 * period)
        self.outputs = Ring(self.layout.output_channels, 8 * period + self.buffering, filled=self.buffering)
        self.in_peaks = np.zeros(self.layout.channels, dtype=np.float32)
        self.out_peaks = np.zeros(self.layout.output_channels, dtype=np.float32)
        self._scratch = np.zeros(self.block, dtype=np.float32)
        self._work = np.zeros((self.layout.channels, self.buffer), dtype=np.float32)
        self._silence = np.zeros((self.layout.output_channels, self.buffer), dtype=np.float32)
        self.stats = LiveStats()
        self.buffer_seconds: List[float] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._switch_interval = sys.getswitchinterval()

    # ------------------------------------------------------------------ latency
    @property
    def latency(self) -> Optional[float]:
        """Total latency in samples: the model's delay plus the buffering (``None``: delay unknown; not a whole
        number where the model is resampled, see :mod:`streamify.host.resampled`)."""
        delay = self.model.delay_at(self.buffer)
        return None if delay is None else delay + self.buffering

    # ------------------------------------------------------------------ the audio callback
    def process(self, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> None:
        """One host callback: ``inputs[c]`` / ``outputs[c]`` are float32 arrays (or views) of equal length.

        Copies only; never waits, takes no lock and allocates no audio-sized memory. Callbacks longer
        than ``block`` are taken in pieces of ``block``; shorter ones as they come (the latency stays
        exact: the output ring's silence sets it, not the block size).
        """
        n = len(outputs[0]) if len(outputs) else len(inputs[0])
        block = self.block
        if n <= block:
            self._process(inputs, outputs, 0, n)
        else:
            for offset in range(0, n, block):
                self._process(inputs, outputs, offset, min(block, n - offset))

    def _process(self, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], offset: int, n: int) -> None:
        stats = self.stats
        scratch = self._scratch[:n] if n != self.block else self._scratch
        whole = offset == 0 and n == len(outputs[0])
        for c in range(self.layout.channels):
            np.abs(inputs[c] if whole else inputs[c][offset : offset + n], out=scratch)
            self.in_peaks[c] = scratch.max()
        rin = self.inputs
        if rin.space() < n:
            stats.overflows += 1
        rin.write(inputs, n, offset)
        rout = self.outputs
        if rout.available() >= n:
            rout.read(outputs, n, offset)
        else:
            for c in range(self.layout.output_channels):
                outputs[c][offset : offset + n] = 0.0
            rout.skip(n)
            stats.late_blocks += 1
        for c in range(self.layout.output_channels):
            np.abs(outputs[c] if whole else outputs[c][offset : offset + n], out=scratch)
            self.out_peaks[c] = scratch.max()
        stats.blocks += 1
        if rin.available() >= self.buffer:
            try:  # noqa: SIM105 (no context-manager object in the callback)
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # the worker has wake-ups pending already

    # ------------------------------------------------------------------ the worker
    def start(self) -> None:
        """Reset and warm up the model, then start the worker thread (before the backend starts calling)."""
        from streamify.host.models import set_torch_threads

        set_torch_threads(self.threads)
        self.model.warm_up(self.layout.batch, self.buffer)
        sys.setswitchinterval(0.001)  # the callback waits at most this long for the GIL
        gc.collect()
        gc.freeze()  # a collection that starts inside the callback only walks objects made since now
        self.stats.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="streamify-worker", daemon=True)
        self._thread.start()
        self._ready.wait(10)  # the worker has set its priority

    def _raise_priority(self) -> None:
        """Run this (the worker) thread at the lowest real-time priority when the system allows it.

        SCHED_FIFO 1 is below any audio thread (JACK's run at 10 and above) and above every ordinary
        process: on a busy machine the worker is not left waiting for a core. Recorded in ``priority``.
        """
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))  # 0: the calling thread (Linux)
            self.priority = "real-time priority (SCHED_FIFO 1)"
        except (AttributeError, OSError) as error:
            self.priority = f"normal priority (real-time refused: {getattr(error, 'strerror', None) or error})"

    def _run(self) -> None:
        if self.realtime:
            self._raise_priority()
        self._ready.set()
        n = self.buffer
        deadline = n / self.sample_rate
        rin, rout, stats = self.inputs, self.outputs, self.stats
        layout = self.layout
        while not self._stop.is_set():
            if rin.available() < n:
                ready, _, _ = select.select([self._wake_r], [], [], 0.05)
                if ready:
                    os.read(self._wake_r, 4096)
                continue
            rin.read(self._work, n)
            began = time.perf_counter()
            try:
                y = layout.from_model(self.model(layout.to_model(self._work)))
            except Exception as error:  # a model error must not stop the audio: silence instead
                y = self._silence
                stats.errors += 1
                stats.last_error = error_cause(
                    error.__cause__ if isinstance(error, HostError) and error.__cause__ else error
                )
                if stats.errors == 1 or stats.errors % 100 == 0:
                    log.warning(
                        "model error at buffer %d (%d so far), output silenced: %s",
                        stats.buffers,
                        stats.errors,
                        stats.last_error,
                    )
            seconds = time.perf_counter() - began
            self.buffer_seconds.append(seconds)
            stats.compute_seconds += seconds
            stats.over_deadline += seconds > deadline
            position = rout.write_pos
            skip = min(n, max(0, rout.read_pos - position))
            if skip:
                stats.late_buffers += 1
            while rout.write_pos + n - rout.read_pos > rout.capacity and not self._stop.is_set():
                time.sleep(0.001)  # never happens at steady state: the ring holds 8 periods
            if skip < n:
                rout.write_at(y, n - skip, position + skip, skip)
            rout.write_pos = position + n
            stats.buffers += 1

    def stop(self) -> None:
        """Stop the worker (after the backend stopped calling :meth:`process`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        sys.setswitchinterval(self._switch_interval)
        gc.unfreeze()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def load(self) -> float:
        """Worker load so far: time in the model over time elapsed."""
        elapsed = time.perf_counter() - self.stats.started
        return self.stats.compute_seconds / elapsed if elapsed > 0 else 0.0

    def report(self, xruns: int = 0) -> RunReport:
        """The run's figures (live: late buffers, xruns, errors)."""
        seconds = np.asarray(self.buffer_seconds)
        notes = [
            f"worker: {self.threads} intra-op thread{'s' if self.threads != 1 else ''} (--threads), {self.priority}",
            f"host blocks of {self.block} samples, model buffers of {self.buffer}, "
            f"{self.layout.batch} batch item{'s' if self.layout.batch != 1 else ''}",
            f"worker load {100 * self.load():.1f}%, host blocks with silence for lateness: {self.stats.late_blocks}",
        ]
        if self.stats.overflows:
            notes.append(f"input overflows: {self.stats.overflows}")
        if hasattr(self.model, "notes"):  # resampled: the resampling and its latency
            notes += self.model.notes(self.buffer)
        return RunReport(
            self.sample_rate,
            self.buffer,
            self.model.delay_at(self.buffer),
            self.buffering,
            seconds,
            self.stats.blocks * self.block / self.sample_rate,
            live=True,
            xruns=xruns,
            late=self.stats.late_buffers,
            errors=self.stats.errors,
            notes=notes,
        )


class LiveSession:
    """A running live stream: the engine and its backend. :meth:`close` stops both and returns the report."""

    backend = "?"

    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.closed = False

    @property
    def stats(self) -> LiveStats:
        return self.engine.stats

    @property
    def latency(self) -> Optional[float]:
        return self.engine.latency

    def _stop_backend(self) -> None:
        raise NotImplementedError

    def close(self) -> RunReport:
        """Stop the audio, then the worker; the figures of the run."""
        if not self.closed:
            self.closed = True
            try:
                self._stop_backend()
            finally:
                self.engine.stop()
        return self.engine.report(self.engine.stats.xruns)

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rate_hint(model: HostModel) -> str:
    rate = model.sample_rate
    return f"; -r {rate} spares the resampling to the model's {rate} Hz" if rate and rate != 48000 else ""


class JackSession(LiveSession):
    """A JACK client (JACK-Client) with ports ``in_1..`` and ``out_1..``.

    Attributes:
        client: the ``jack.Client``.
        first_frame: JACK frame time of the first block processed (``None`` before it).
    """

    backend = "jack"

    def __init__(
        self,
        model: HostModel,
        name: str = "streamify",
        channels: Optional[int] = None,
        buffer: Optional[int] = None,
        threads: int = 1,
        connect_in: Sequence[str] = (),
        connect_out: Sequence[str] = (),
        realtime: bool = True,
    ) -> None:
        try:
            import jack
        except ImportError as error:
            raise HostError(missing_message("jack", "live", "the JACK backend") or str(error)) from error
        try:
            client = jack.Client(name, no_start_server=True)
        except jack.JackError as error:
            raise HostError(
                "streamify: no JACK server is running: start one (a sound card: `jackd -d alsa -r 48000 -p 1024 &`; "
                f"none: `jackd -d dummy -r 48000 -p 1024 &`{_rate_hint(model)}), or use --backend portaudio"
            ) from error
        try:
            engine = LiveEngine(model, client.blocksize, client.samplerate, channels, buffer, threads, realtime)
        except Exception:
            client.close()
            raise
        super().__init__(engine)
        self.client = client
        self.first_frame: Optional[int] = None
        self.inports = [client.inports.register(f"in_{c + 1}") for c in range(engine.layout.channels)]
        self.outports = [client.outports.register(f"out_{c + 1}") for c in range(engine.layout.output_channels)]
        inports, outports = self.inports, self.outports
        ins: List[np.ndarray] = [np.zeros(engine.block, dtype=np.float32)] * len(inports)
        outs: List[np.ndarray] = [np.zeros(engine.block, dtype=np.float32)] * len(outports)
        stats = engine.stats

        def process(frames: int) -> None:
            if self.first_frame is None:
                self.first_frame = client.last_frame_time
            for c, port in enumerate(inports):
                ins[c] = port.get_array()
            for c, port in enumerate(outports):
                outs[c] = port.get_array()
            engine.process(ins, outs)

        def xrun(delay: float) -> None:
            stats.xruns += 1

        client.set_process_callback(process)
        client.set_xrun_callback(xrun)
        engine.start()
        try:
            client.activate()
            self._connect(connect_in, self.inports, outputs=False)
            self._connect(connect_out, self.outports, outputs=True)
        except Exception:
            self.close()
            raise

    def _connect(self, patterns: Sequence[str], ports: Sequence, outputs: bool) -> None:
        import jack

        for i, pattern in enumerate(patterns):
            found = self.client.get_ports(pattern, is_audio=True, is_input=outputs, is_output=not outputs)
            if not found:
                raise HostError(f"streamify: no JACK {'input' if outputs else 'output'} port matches {pattern!r}")
            for other in found:
                try:
                    if outputs:
                        self.client.connect(ports[i % len(ports)], other)
                    else:
                        self.client.connect(other, ports[i % len(ports)])
                except jack.JackError as error:
                    raise HostError(f"streamify: cannot connect to JACK port {other.name}: {error}") from error

    def _stop_backend(self) -> None:
        try:
            self.client.deactivate()
        finally:
            self.client.close()


class PortAudioSession(LiveSession):
    """A PortAudio duplex stream (sounddevice), on ``device`` (name or index; default: PortAudio's default).

    ``block`` is the device's period the engine plans for (samples). Unless ``fixed_block``, PortAudio is
    asked for no particular callback size (``blocksize=0``): it then calls with the device's own period and
    adds no buffering of its own (asking for a fixed size adds one period through JACK, measured).
    PortAudio's own idea of the device's latency is recorded in the report.
    """

    backend = "portaudio"

    def __init__(
        self,
        model: HostModel,
        block: int = 1024,
        sample_rate: Optional[int] = None,
        channels: Optional[int] = None,
        buffer: Optional[int] = None,
        threads: int = 1,
        device=None,
        fixed_block: bool = False,
        realtime: bool = True,
    ) -> None:
        sd = sounddevice()
        info = input_device(sd, device)
        layout = channel_layout(model, channels or model.in_channels, "the live input")
        rate = sample_rate or _portaudio_rate(sd, device, model, layout, int(info["default_samplerate"]))
        engine = LiveEngine(model, block, rate, layout.channels, buffer, threads, realtime)
        super().__init__(engine)
        stats = engine.stats

        def callback(indata, outdata, frames, when, status) -> None:
            if status.input_overflow or status.output_underflow or status.input_underflow or status.output_overflow:
                stats.xruns += 1
            engine.process(indata.T, outdata.T)

        try:
            self.stream = sd.Stream(
                samplerate=rate,
                blocksize=block if fixed_block else 0,
                device=device,
                channels=(layout.channels, layout.output_channels),
                dtype="float32",
                callback=callback,
            )
        except (ValueError, sd.PortAudioError) as error:
            raise HostError(f"streamify: cannot open a PortAudio stream: {str(error).splitlines()[0]}") from error
        engine.start()
        self.stream.start()
        latency_in, latency_out = self.stream.latency
        self.device_note = (
            f"PortAudio ({sd.query_hostapis(sd.query_devices(self.stream.device[1])['hostapi'])['name']}) reports "
            f"device latencies of {1000 * latency_in:.1f} ms in and {1000 * latency_out:.1f} ms out, outside these figures"
        )

    def close(self) -> RunReport:
        report = super().close()
        report.notes.append(self.device_note)
        return report

    def _stop_backend(self) -> None:
        try:
            self.stream.stop()
        finally:
            self.stream.close()


def _portaudio_rate(sd, device, model: HostModel, layout: Layout, default: int) -> int:
    """The model's rate where the device takes it (no resampling), else the device's default rate."""
    if not model.sample_rate or model.sample_rate == default:
        return model.sample_rate or default
    try:
        sd.check_input_settings(device, channels=layout.channels, samplerate=model.sample_rate)
        sd.check_output_settings(device, channels=layout.output_channels, samplerate=model.sample_rate)
    except (ValueError, sd.PortAudioError):
        return default  # resampled to the model's rate and back (ResampledModel)
    return model.sample_rate


def start_live(
    model: HostModel,
    backend: str = "jack",
    buffer: Optional[int] = None,
    channels: Optional[int] = None,
    threads: int = 1,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    name: str = "streamify",
    block: int = 1024,
    device=None,
    fixed_block: bool = False,
    realtime: bool = True,
) -> LiveSession:
    """Start streaming live audio through ``model``; :meth:`LiveSession.close` (or ``with``) stops it.

    ``backend="jack"``: a JACK client named ``name`` (block and rate are the server's), its inputs connected
    from the ports matching ``inputs`` and its outputs to those matching ``outputs``.
    ``backend="portaudio"``: a sounddevice stream on ``device``, planned for periods of ``block`` samples
    (see :class:`PortAudioSession`). ``realtime``: the worker asks for the lowest real-time priority.
    """
    if backend == "jack":
        return JackSession(model, name, channels, buffer, threads, inputs, outputs, realtime)
    if backend == "portaudio":
        return PortAudioSession(model, block, None, channels, buffer, threads, device, fixed_block, realtime)
    raise HostError(f"streamify: unknown live backend {backend!r}; use jack or portaudio")
