"""A JACK test rig: one client plays a known signal, another records; both note JACK frame times.

Two clients, not one: a client that both feeds and listens to the client under test would make a
cycle in JACK's graph, which JACK breaks with one period of extra delay.
"""

from __future__ import annotations

import threading
from typing import Optional

import jack
import numpy as np


class Player:
    """Plays zeros, then ``signal`` from the first cycle after :meth:`play` (frame time ``start_frame``)."""

    def __init__(self, signal: np.ndarray, name: str = "test-player") -> None:
        self.signal = np.asarray(signal, dtype=np.float32)
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.outports.register("out")
        self.start_frame: Optional[int] = None
        self.position = 0
        self._go = False
        self.done = threading.Event()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        out = self.port.get_array()
        out.fill(0.0)
        if not self._go:
            return
        if self.start_frame is None:
            self.start_frame = self.client.last_frame_time
        n = min(frames, len(self.signal) - self.position)
        if n > 0:
            out[:n] = self.signal[self.position : self.position + n]
            self.position += n
        else:
            self.done.set()

    def play(self) -> None:
        self._go = True

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class Recorder:
    """Records ``length`` samples from its port from the first cycle after :meth:`record` (``start_frame``)."""

    def __init__(self, length: int, name: str = "test-recorder") -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.inports.register("in")
        self.data = np.zeros(length, dtype=np.float32)
        self.start_frame: Optional[int] = None
        self.position = 0
        self._go = False
        self.done = threading.Event()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        if not self._go:
            return
        if self.start_frame is None:
            self.start_frame = self.client.last_frame_time
        n = min(frames, len(self.data) - self.position)
        if n > 0:
            self.data[self.position : self.position + n] = self.port.get_array()[:n]
            self.position += n
        else:
            self.done.set()

    def record(self) -> None:
        self._go = True

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()
