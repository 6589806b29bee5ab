"""Single-producer single-consumer ring buffers of audio, preallocated, without locks.

Positions are absolute sample counts (Python ints, never wrapped); a slot is ``position % capacity``.
The producer copies the samples first and publishes the new write position after, so the consumer
never sees a sample before it is written. Under CPython one attribute assignment is atomic, which is
all the two threads share. Neither side allocates audio-sized memory, waits or takes a lock.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class Ring:
    """``channels`` rings of ``capacity`` float32 samples (``data``: ``[channels, capacity]``).

    Attributes:
        write_pos: samples written so far (absolute position of the next write).
        read_pos: samples consumed so far (absolute position of the next read).
    """

    def __init__(self, channels: int, capacity: int, filled: int = 0) -> None:
        if filled > capacity:
            raise ValueError(f"cannot prefill {filled} samples into a ring of {capacity}")
        self.channels = int(channels)
        self.capacity = int(capacity)
        self.data = np.zeros((self.channels, self.capacity), dtype=np.float32)
        self.read_pos = 0
        self.write_pos = int(filled)  # the first `filled` samples are zeros

    def available(self) -> int:
        """Samples written and not yet read (negative after the consumer skipped ahead of the producer)."""
        return self.write_pos - self.read_pos

    def space(self) -> int:
        """Samples the producer may write without overwriting unread ones."""
        return self.capacity - max(0, self.write_pos - self.read_pos)

    def write(self, channels: Sequence[np.ndarray], n: int, offset: int = 0) -> None:
        """Copy ``channels[c][offset:offset + n]`` at the write position, then publish them."""
        self.write_at(channels, n, self.write_pos, offset)
        self.write_pos += n

    def write_at(self, channels: Sequence[np.ndarray], n: int, position: int, offset: int) -> None:
        """Copy ``channels[c][offset:offset + n]`` to absolute ``position`` (does not publish)."""
        start = position % self.capacity
        first = min(n, self.capacity - start)
        data = self.data
        for c in range(self.channels):
            source = channels[c]
            data[c, start : start + first] = source[offset : offset + first]
            if first < n:
                data[c, : n - first] = source[offset + first : offset + n]

    def read(self, channels: Sequence[np.ndarray], n: int, offset: int = 0) -> None:
        """Copy the next ``n`` samples of each channel into ``channels[c][offset:offset + n]`` and consume them."""
        start = self.read_pos % self.capacity
        first = min(n, self.capacity - start)
        data = self.data
        for c in range(self.channels):
            target = channels[c]
            target[offset : offset + first] = data[c, start : start + first]
            if first < n:
                target[offset + first : offset + n] = data[c, : n - first]
        self.read_pos += n

    def skip(self, n: int) -> None:
        """Consume ``n`` samples without reading them (the consumer moves on when they are late)."""
        self.read_pos += n
