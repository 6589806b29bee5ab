"""The live engine without an audio device: ring buffers, double-buffering latency, lateness.

The host callback is played by the test: blocks go through :meth:`LiveEngine.process` and the
test waits for the worker between blocks (a fast worker), or makes the model slow on purpose.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from host_models import coarse_codec, small_codec

from streamify.host import HostModel, LiveEngine, load_host_model
from streamify.host.live import buffering_latency, default_buffer
from streamify.host.ring import Ring


def test_ring_wraps_around_and_keeps_order():
    ring = Ring(2, 10)
    source = np.arange(60, dtype=np.float32).reshape(2, 30)
    target = np.zeros((2, 30), np.float32)
    for start in range(0, 30, 7):
        n = min(7, 30 - start)
        ring.write(source, n, start)
        ring.read(target, n, start)
    np.testing.assert_array_equal(target, source)
    assert ring.available() == 0 and ring.space() == 10


def run_engine(engine: LiveEngine, x: np.ndarray, block: int, slow_at=None) -> np.ndarray:
    """Feed ``x`` ``[channels, time]`` block by block; wait for the worker after each block except around ``slow_at``."""
    out = np.zeros((engine.layout.output_channels, x.shape[1]), np.float32)
    engine.start()
    try:
        for i, start in enumerate(range(0, x.shape[1], block)):
            engine.process(x[:, start : start + block], out[:, start : start + block])
            ready = (start + block) // engine.buffer
            deadline = time.monotonic() + 5
            while engine.stats.buffers < ready and time.monotonic() < deadline and i != slow_at:
                time.sleep(0.0005)
    finally:
        engine.stop()
    return out


def offline(x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return small_codec()(torch.from_numpy(x)[:, None]).numpy()[:, 0]


@pytest.mark.parametrize("block, buffer", [(256, 1024), (1024, 1024), (1024, 256), (64, None)])
def test_output_is_offline_delayed_by_model_delay_plus_buffering(block, buffer):
    model = load_host_model("host_models:small_codec")
    engine = LiveEngine(model, block, 48000, buffer=buffer)
    assert engine.buffer == (buffer or default_buffer(model, block))
    assert engine.buffering == buffering_latency(engine.buffer, block) == 2 * max(engine.buffer, block) - block
    x = np.random.default_rng(1).standard_normal((1, 16384)).astype(np.float32) * 0.3
    y = run_engine(engine, x, block)
    latency = engine.latency
    assert latency == model.delay + engine.buffering
    expected = np.zeros_like(y)
    expected[:, latency:] = offline(x)[:, : x.shape[1] - latency]
    np.testing.assert_allclose(y, expected, rtol=0, atol=2e-6)
    assert engine.stats.late_blocks == 0 and engine.stats.late_buffers == 0 and engine.stats.errors == 0


def test_channels_as_batch_items():
    model = load_host_model("host_models:small_codec")
    engine = LiveEngine(model, 512, 48000, channels=3)
    assert engine.layout.batch == 3
    x = np.random.default_rng(2).standard_normal((3, 8192)).astype(np.float32) * 0.3
    y = run_engine(engine, x, 512)
    latency = engine.latency
    np.testing.assert_allclose(y[:, latency:], offline(x)[:, : 8192 - latency], rtol=0, atol=2e-6)


class Slow(HostModel):
    """The small codec; one call sleeps for ``pause`` seconds."""

    def __init__(self, inner: HostModel, slow_call: int, pause: float) -> None:
        super().__init__("slow", 1, 1, 1, 1, inner.multiple, inner.delay, None)
        self.inner, self.calls, self.slow_call, self.pause = inner, 0, slow_call, pause

    def _run(self, frames):
        self.calls += 1
        if self.calls == self.slow_call:
            time.sleep(self.pause)
        return self.inner._run(frames)

    def reset(self):
        self.inner.reset()


def test_late_buffer_gives_silence_and_the_stream_stays_aligned():
    inner = load_host_model("host_models:small_codec")
    model = Slow(inner, slow_call=3 + 4, pause=0.3)  # 3 warm-up calls, then the 4th buffer of the run
    engine = LiveEngine(model, 512, 48000)
    x = np.random.default_rng(3).standard_normal((1, 512 * 24)).astype(np.float32) * 0.3
    # the host does not wait for the worker at the block that completes buffer 4: the next ones find it late
    out = np.zeros_like(x)
    engine.start()
    try:
        for i, start in enumerate(range(0, x.shape[1], 512)):
            engine.process(x[:, start : start + 512], out[:, start : start + 512])
            if i == 3:
                continue  # buffer 3 (0-based) is being computed slowly; the host goes on in real time
            deadline = time.monotonic() + (0.0 if 3 < i < 6 else 5)
            while engine.stats.buffers < i + 1 and time.monotonic() < deadline:
                time.sleep(0.0005)
    finally:
        engine.stop()
    assert engine.stats.late_blocks >= 1 and engine.stats.late_buffers >= 1
    latency = engine.latency
    expected = np.zeros_like(x)
    expected[:, latency:] = offline(x)[:, : x.shape[1] - latency]
    silent = np.all(out.reshape(-1, 512) == 0, axis=1)
    assert silent[4:6].any()  # blocks the late buffer should have filled: silence
    # after the late buffers, the output is back at the same latency, exactly
    np.testing.assert_allclose(out[:, 512 * 12 :], expected[:, 512 * 12 :], rtol=0, atol=2e-6)


def test_host_blocks_smaller_than_the_model_multiple_are_accumulated():
    model = load_host_model("host_models:coarse_codec")
    assert model.multiple == 16 and model.delay > 0
    engine = LiveEngine(model, 4, 48000)  # host blocks of 4 samples: 4 blocks make one model buffer
    assert engine.buffer == 16 and engine.buffering == 2 * 16 - 4
    x = np.random.default_rng(4).standard_normal((1, 2048)).astype(np.float32) * 0.3
    y = run_engine(engine, x, 4)
    latency = engine.latency
    with torch.inference_mode():
        reference = coarse_codec()(torch.from_numpy(x)[None]).numpy()[0]
    expected = np.zeros_like(y)
    expected[:, latency:] = reference[:, : x.shape[1] - latency]
    np.testing.assert_allclose(y, expected, rtol=0, atol=2e-6)
    assert engine.stats.late_blocks == 0
