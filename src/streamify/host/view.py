"""The terminal view of a live run (rich): input and output meters, worker load, lateness, xruns, errors."""

from __future__ import annotations

import math
import time
from typing import List, Optional

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streamify.host.live import LiveSession
from streamify.host.report import samples_ms

FLOOR_DB = -60.0
WIDTH = 30


def meter(peak: float, width: int = WIDTH) -> Text:
    """A peak meter: ``-60 dBFS`` (empty) to ``0 dBFS`` (full), green, yellow above -12, red above -3."""
    db = 20 * math.log10(peak) if peak > 0 else -math.inf
    filled = 0 if db <= FLOOR_DB else min(width, round(width * (db - FLOOR_DB) / -FLOOR_DB))
    text = Text()
    for i in range(width):
        level = FLOOR_DB + (i + 1) * -FLOOR_DB / width
        style = "red" if level > -3 else "yellow" if level > -12 else "green"
        text.append("█" if i < filled else "·", style=style if i < filled else "dim")
    text.append(f" {db:6.1f} dBFS" if db > -math.inf else "   -inf dBFS")
    return text


class LiveView:
    """Renders a :class:`LiveSession` (``view.render()`` for ``rich.live.Live``); the load is over the last refresh."""

    def __init__(self, session: LiveSession, title: str) -> None:
        self.session = session
        self.title = title
        began = session.stats.started or time.perf_counter()  # the first refresh shows the load since the start
        self._last = (began, 0.0)
        self._load = 0.0
        self.started = began

    def _recent_load(self) -> float:
        now, compute = time.perf_counter(), self.session.stats.compute_seconds
        then, before = self._last
        if now - then >= 0.25:
            self._load = (compute - before) / (now - then)
            self._last = (now, compute)
        return self._load

    def render(self) -> Panel:
        engine = self.session.engine
        stats = engine.stats
        rate = engine.sample_rate
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        for c, peak in enumerate(engine.in_peaks):
            table.add_row(f"in {c + 1}", meter(float(peak)))
        for c, peak in enumerate(engine.out_peaks):
            table.add_row(f"out {c + 1}", meter(float(peak)))
        load = self._recent_load()
        table.add_row("worker load", meter_load(load))
        table.add_row(
            "latency",
            f"{samples_ms(engine.latency, rate)} = model {samples_ms(engine.model.delay_at(engine.buffer), rate)} "
            f"+ buffering {engine.buffering}",
        )
        table.add_row(
            "blocks",
            f"{stats.blocks} of {engine.block} samples, {stats.buffers} model buffers of {engine.buffer} "
            f"({time.perf_counter() - self.started:.1f} s)",
        )
        table.add_row(
            "late",
            f"{stats.late_buffers} buffers, {stats.late_blocks} blocks silenced; over deadline {stats.over_deadline}",
        )
        table.add_row("xruns", str(stats.xruns))
        errors = f"{stats.errors}" + (f"  last: {stats.last_error}" if stats.last_error else "")
        table.add_row("model errors", Text(errors, style="red" if stats.errors else ""))
        lines: List = [
            table,
            Text(f"worker: {engine.threads} intra-op thread(s), {engine.priority}; Ctrl-C stops", style="dim"),
        ]
        return Panel(Group(*lines), title=self.title, title_align="left")


def meter_load(load: float, width: int = WIDTH) -> Text:
    """Worker load 0-100% as a bar (red above 70%: late buffers are near)."""
    filled = min(width, round(width * load))
    style = "red" if load > 0.7 else "yellow" if load > 0.5 else "green"
    return Text("█" * filled, style=style) + Text("·" * (width - filled), style="dim") + Text(f" {100 * load:5.1f} %")


def snapshot(session: LiveSession, title: str, width: Optional[int] = 100) -> str:
    """The view as plain text (for logs and docs)."""
    import io

    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(LiveView(session, title).render())
    return console.export_text()
