"""A model at another rate than the audio device's, run live through soxr's streaming resamplers.

Each device buffer of ``n`` samples goes through ``soxr.ResampleStream`` to the model's rate; the model runs
on whole model buffers of ``m`` samples as they fill; its output goes through a second stream back to the
device's rate, into a FIFO that starts with ``prefill`` samples of silence, and the next ``n`` samples are
taken from there. soxr's streams give the same samples as resampling the whole signal at once, but in bursts
(its filters work on blocks): the FIFO's silence covers the largest gap between what the device needs and
what the streams have given, bounded from what each stream holds back at most (:func:`plan_prefill`). The output is thus exactly::

    resample_up(model_stream(resample_down(x)))  delayed by ``prefill`` device samples,

so the total delay is ``prefill + model delay * device rate / model rate`` device samples (not a whole
number in general). Should a burst ever come later than planned, the missing samples are played as silence
and the delay grows by as many, counted (``underruns``) and reported: never a silent misalignment.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from streamify.host.models import HostError, HostModel

#: soxr quality of the live streams: "HQ" (soxr's default) holds back about a third as much as "VHQ"
LIVE_QUALITY = "HQ"
#: input samples and chunks :func:`most_pending` runs a stream for
PLAN_SAMPLES, PLAN_CALLS = 1 << 18, 2000


def model_buffer(model: HostModel, n: int, device_rate: int) -> int:
    """The model buffer for device buffers of ``n`` samples: the model's multiple at least as long as ``n``
    samples at the model's rate."""
    wanted = math.ceil(n * model.sample_rate / device_rate)
    return max(1, math.ceil(wanted / model.multiple)) * model.multiple


def most_pending(in_rate: int, out_rate: int, chunk: int, quality: str = LIVE_QUALITY) -> float:
    """The most output samples a soxr stream from ``in_rate`` to ``out_rate`` holds back, fed ``chunk`` samples
    at a time (:meth:`soxr.ResampleStream.delay` after each chunk, over ``PLAN_SAMPLES`` input samples and at
    least ``PLAN_CALLS`` chunks: it settles within a few hundred chunks)."""
    import soxr

    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
    zeros = np.zeros(chunk, np.float32)
    most = 0.0
    for _ in range(max(PLAN_CALLS, -(-PLAN_SAMPLES // chunk))):
        stream.resample_chunk(zeros)
        most = max(most, stream.delay())
    return most


def plan_prefill(device_rate: int, model_rate: int, n: int, m: int, quality: str = LIVE_QUALITY) -> int:
    """Samples of silence the output FIFO needs so that each device buffer of ``n`` finds its samples there.

    After ``k`` device buffers the FIFO has been given ``k n`` samples less what is still on the way: the
    samples the first stream holds back and those waiting for a whole model buffer (``m - 1`` at most), both
    at the model's rate, and those the second stream holds back. The sum of their largest values
    (:func:`most_pending`), plus the buffer being asked for, bounds what can be missing at any call.
    """
    ratio = device_rate / model_rate
    held_in = most_pending(device_rate, model_rate, n, quality)
    held_out = most_pending(model_rate, device_rate, m, quality)
    return n + math.ceil((held_in + m - 1) * ratio + held_out) + 2  # 2: the streams' counts round


class ResampledModel:
    """``model`` as a host model at ``device_rate``: device buffers resampled to its rate and back (soxr, streaming).

    Only for methods at audio rate both ways (latent frames cannot be resampled). Takes any device buffer
    ``n`` (:attr:`any_length`); its delay (:meth:`delay_at`) is in device samples and includes the
    resampling's. ``underruns``: bursts that came later than planned (silence played, the delay grew by
    ``grown`` samples). A model buffer that raises is replaced by silence and the error raised after the
    call has taken its samples: the stream stays aligned.

    Shape:
        ``[batch, in_channels, n]`` float32 at ``device_rate`` → ``[batch, out_channels, n]`` float32.
    """

    any_length = True
    in_ratio = out_ratio = multiple = frame = 1

    def __init__(self, model: HostModel, device_rate: int, quality: str = LIVE_QUALITY) -> None:
        if model.sample_rate is None:
            raise HostError(f"streamify: {model.name} does not record its rate: there is nothing to resample to")
        if model.in_ratio != 1 or model.out_ratio != 1:
            raise HostError(
                f"streamify: the model runs at {model.sample_rate} Hz and the audio device at {device_rate} Hz, but "
                f"its method takes or gives frames of {max(model.in_ratio, model.out_ratio)} samples, which cannot be "
                f"resampled; run the device at {model.sample_rate} Hz"
            )
        self.model = model
        self.name = model.name
        self.kind = model.kind
        self.in_channels, self.out_channels = model.in_channels, model.out_channels
        self.sample_rate = int(device_rate)
        self.model_rate = int(model.sample_rate)
        self.quality = quality
        self.underruns = 0
        self.grown = 0
        self._plans: dict = {}
        self._streams: Optional[Tuple[object, object]] = None
        self._batch = 0
        self._waiting: List[np.ndarray] = []
        self._fifo = np.zeros((0, 0), np.float32)

    # ------------------------------------------------------------------ the buffer contract
    def check_buffer(self, n: int) -> None:
        if n <= 0:
            raise HostError(f"streamify: a buffer of {n} samples is not a positive number of samples")

    def extra_latency(self, n: int) -> int:
        return 0

    def plan(self, n: int) -> Tuple[int, int]:
        """``(model buffer, FIFO silence)`` for device buffers of ``n`` samples (computed once per ``n``)."""
        if n not in self._plans:
            m = model_buffer(self.model, n, self.sample_rate)
            self._plans[n] = (m, plan_prefill(self.sample_rate, self.model_rate, n, m, self.quality))
        return self._plans[n]

    def delay_at(self, n: int) -> Optional[float]:
        """Device samples between the offline model's output (resampled) and this stream's, for buffers of ``n``."""
        m, prefill = self.plan(n)
        delay = self.model.delay_at(m)
        return None if delay is None else prefill + self.grown + delay * self.sample_rate / self.model_rate

    @property
    def delay(self) -> Optional[float]:
        return None if self.model.delay is None else self.model.delay * self.sample_rate / self.model_rate

    def notes(self, n: int) -> List[str]:
        """Report lines: the resampling, its latency, and any underrun."""
        m, prefill = self.plan(n)
        said = [
            f"resampled {self.sample_rate} Hz -> {self.model_rate} Hz -> {self.sample_rate} Hz (soxr {self.quality}, "
            f"streaming): {prefill} samples of latency for its bursts; model buffers of {m} samples at "
            f"{self.model_rate} Hz; the model's delay of {self.model.delay_at(m)} samples there counts "
            f"{self.delay_at(n) - prefill - self.grown:.2f} here"
        ]
        if self.underruns:
            said.append(f"resampler underruns: {self.underruns} (silence played; the latency grew by {self.grown})")
        return said

    # ------------------------------------------------------------------ the stream
    def reset(self) -> None:
        self.model.reset()
        self._streams = None
        self._waiting = []
        self._batch = 0

    def warm_up(self, batch: int, n: int, calls: int = 3) -> None:
        self.model.warm_up(batch, self.plan(n)[0], calls)
        self.reset()

    def _start(self, batch: int, n: int) -> None:
        import soxr

        self.model.reset()
        self._batch = batch
        rates = (self.sample_rate, self.model_rate)
        self._streams = (
            soxr.ResampleStream(*rates, batch * self.in_channels, dtype="float32", quality=self.quality),
            soxr.ResampleStream(*rates[::-1], batch * self.out_channels, dtype="float32", quality=self.quality),
        )
        self._waiting = []
        self._fifo = np.zeros((self.plan(n)[1] + self.grown, batch * self.out_channels), np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``[batch, in_channels, n]`` at the device's rate → ``[batch, out_channels, n]``, one buffer later in
        the stream (see the module docstring for the delay)."""
        batch, channels, n = x.shape
        if channels != self.in_channels:
            raise HostError(f"streamify: {self.name}: expected a buffer [batch, {self.in_channels}, n], got {x.shape}")
        if self._streams is None or batch != self._batch:
            self._start(batch, n)
        down, up = self._streams
        m = self.plan(n)[0]
        self._waiting.append(down.resample_chunk(np.ascontiguousarray(x.reshape(batch * channels, n).T)))
        waiting = np.concatenate(self._waiting) if len(self._waiting) > 1 else self._waiting[0]
        given = [self._fifo]
        used = 0
        failed: Optional[Exception] = None
        while len(waiting) - used >= m:
            chunk = np.ascontiguousarray(waiting[used : used + m].T).reshape(batch, channels, m)
            used += m
            try:
                y = self.model(chunk)
            except Exception as error:  # silence in its place: the stream and its delay go on unchanged
                failed = failed or error
                y = np.zeros((batch, self.out_channels, m), np.float32)
            given.append(up.resample_chunk(np.ascontiguousarray(y.reshape(batch * self.out_channels, m).T)))
        self._waiting = [waiting[used:]]
        fifo = np.concatenate(given) if len(given) > 1 else self._fifo
        if len(fifo) < n:  # a burst later than planned: silence now, the delay grows by as much
            missing = n - len(fifo)
            self.underruns += 1
            self.grown += missing
            fifo = np.concatenate([np.zeros((missing, fifo.shape[1]), np.float32), fifo])
        self._fifo = fifo[n:]
        if failed is not None:  # said after the FIFO moved on: the host plays silence for this buffer
            raise failed
        return np.ascontiguousarray(fifo[:n].T).reshape(batch, self.out_channels, n)

    def describe(self) -> str:
        return (
            f"{self.model.describe()}; resampled {self.sample_rate} <-> {self.model_rate} Hz live "
            f"(soxr {self.quality}, streaming)"
        )
