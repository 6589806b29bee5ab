"""The figures a host run ends with: latency, real-time factor, the slowest buffer against its deadline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np


def samples_ms(n: Optional[float], sample_rate: int) -> str:
    """``"1024 samples (21.33 ms)"``; ``"unknown"`` for ``None``."""
    if n is None:
        return "unknown"
    return f"{n:g} samples ({1000.0 * n / sample_rate:.2f} ms)"


@dataclass
class RunReport:
    """What a run through a model measured.

    Attributes:
        sample_rate: the rate the model ran at, Hz.
        buffer: samples per model call.
        model_delay: the model's own delay, samples (``None``: unknown; live through a resampler, it includes
            the resampling and need not be whole).
        buffering: samples the host's buffering adds live (double buffering: ``2 * max(buffer, block) - block``).
        buffer_seconds: compute time of each model call, seconds.
        audio_seconds: audio processed, seconds.
        live: whether these are figures of a live run (late buffers were heard) or of a file run (would have been).
        xruns, late, errors, dropped: live accounting (see :class:`streamify.host.live.LiveStats`).
        notes: extra lines (threads, resampling, compensation).
    """

    sample_rate: int
    buffer: int
    model_delay: Optional[float]
    buffering: int
    buffer_seconds: np.ndarray
    audio_seconds: float
    live: bool = False
    xruns: int = 0
    late: Optional[int] = None
    errors: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def latency(self) -> Optional[float]:
        """Total latency live, samples: the model's delay plus the buffering (``None`` if the delay is unknown)."""
        return None if self.model_delay is None else self.model_delay + self.buffering

    @property
    def deadline(self) -> float:
        """Seconds a model call may take live: one buffer of audio."""
        return self.buffer / self.sample_rate

    @property
    def real_time_factor(self) -> float:
        """Compute time over audio time (under 1: faster than real time)."""
        return float(np.sum(self.buffer_seconds)) / self.audio_seconds if self.audio_seconds > 0 else 0.0

    @property
    def slowest(self) -> float:
        return float(np.max(self.buffer_seconds)) if len(self.buffer_seconds) else 0.0

    @property
    def over_deadline(self) -> int:
        """Model calls that took longer than their deadline."""
        return int(np.sum(np.asarray(self.buffer_seconds) > self.deadline))

    def rows(self) -> List[Tuple[str, str]]:
        sr = self.sample_rate
        calls = len(self.buffer_seconds)
        rows = [
            ("sample rate", f"{sr} Hz"),
            ("buffer", samples_ms(self.buffer, sr)),
            ("model latency", samples_ms(self.model_delay, sr)),
            ("buffering latency" + ("" if self.live else " (live)"), samples_ms(self.buffering, sr)),
            ("total latency" + ("" if self.live else " (live)"), samples_ms(self.latency, sr)),
            ("audio", f"{self.audio_seconds:.2f} s in {calls} model calls"),
            ("real-time factor", f"{self.real_time_factor:.3f}"),
            (
                "slowest buffer",
                f"{1000 * self.slowest:.2f} ms against a deadline of {1000 * self.deadline:.2f} ms"
                + f" ({100 * self.slowest / self.deadline:.0f}%)",
            ),
        ]
        if self.live:
            late = self.late if self.late is not None else self.over_deadline
            rows += [
                ("late buffers", f"{late} of {calls} (output not ready in time)"),
                ("xruns", str(self.xruns)),
                ("model errors", f"{self.errors} (silence instead)"),
            ]
        else:
            rows.append(("late buffers (live)", f"{self.over_deadline} of {calls} would have been late"))
        rows += [("note", note) for note in self.notes]
        return rows

    def table(self):
        """A rich table of :meth:`rows`."""
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for label, value in self.rows():
            table.add_row(label, value)
        return table

    def text(self) -> str:
        width = max(len(label) for label, _ in self.rows())
        return "\n".join(f"{label:<{width}}  {value}" for label, value in self.rows())
