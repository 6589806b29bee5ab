"""A per-layer account of a streaming model: delays, rates, caches, and the totals a host needs."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple

import torch
from torch import nn

from streamify.layers.base import StreamingModule
from streamify.layers.containers import Branches, Sequential


@dataclass
class LayerReport:
    """One streaming layer: its delays (frames at its input / output rate) and cache."""

    name: str
    kind: str
    input_delay: int
    delay: int
    input_rate: Fraction  # model input samples per frame at the layer's input
    output_rate: Fraction
    cache_bytes: int


@dataclass
class ModelReport:
    """A streaming model's totals (cache sizes for ``batch`` streams)."""

    name: str
    delay: int
    ratio: Fraction
    latency_samples: Fraction
    latency_ms: Optional[float]
    sample_rate: Optional[int]
    buffer_multiple: int
    receptive_field: int
    cache_bytes: int
    batch: int
    layers: List[LayerReport] = field(default_factory=list)

    def table(self) -> str:
        """The report as plain text."""
        rows = [("layer", "kind", "in delay", "delay", "rate in->out", "cache")]
        for layer in self.layers:
            rows.append(
                (
                    layer.name,
                    layer.kind,
                    str(layer.input_delay),
                    str(layer.delay),
                    f"{layer.input_rate}->{layer.output_rate}",
                    human_bytes(layer.cache_bytes),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
        ms = f" = {self.latency_ms:.2f} ms at {self.sample_rate} Hz" if self.latency_ms is not None else ""
        field_text = "unbounded" if self.receptive_field < 0 else f"{self.receptive_field} samples"
        lines += [
            "",
            f"model: {self.name}",
            f"latency: {self.delay} output frames = {_number(self.latency_samples)} input samples{ms}",
            f"rate: {self.ratio} input samples per output frame",
            f"buffer multiple: {self.buffer_multiple} samples",
            f"receptive field: {field_text}",
            f"cache memory: {human_bytes(self.cache_bytes)} for batch {self.batch}",
        ]
        return "\n".join(lines)


def human_bytes(n: int) -> str:
    """``n`` bytes for a reader: ``"512 B"``, ``"1.5 KiB"``, ``"2.0 MiB"``, ``"3.1 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):.2f}"


def _leaves(module: StreamingModule, rate: Fraction, name: str) -> Iterator[Tuple[str, StreamingModule, Fraction]]:
    """Leaf streaming layers with the rate (model samples per frame) at their input."""
    input_ratios = getattr(module, "input_ratios", None)
    if input_ratios is not None and hasattr(module, "graph"):
        for layer, layer_rate in zip(module.graph.streams, input_ratios):
            yield layer.layer_name, layer, layer_rate
    elif isinstance(module, Sequential):
        for i, layer in enumerate(module.layers):
            yield from _leaves(layer, rate, f"{name}.{i}")
            rate = rate * layer.ratio
    elif isinstance(module, Branches):
        for i, path in enumerate(module.paths):
            yield from _leaves(path, rate, f"{name}.branch{i}")
    else:
        yield name, module, rate


def inspect(model: nn.Module, sample_rate: Optional[int] = None, batch: int = 1, show: bool = True) -> ModelReport:
    """Report ``model``'s per-layer delay, rate and cache, and its totals.

    The caches are measured on a copy that streams one buffer of silence for
    ``batch`` streams. Prints the table when ``show`` is True.
    """
    if not isinstance(model, StreamingModule):
        raise TypeError("streamify.inspect takes a streaming model (streamify layers or streamify.convert's result)")
    probe = copy.deepcopy(model)
    probe.reset()
    channels = probe.in_channels if probe.in_channels > 0 else 1
    with torch.no_grad():
        probe(torch.zeros(batch, channels, probe.buffer_multiple, dtype=probe.dtype_marker.dtype))
    layers = [
        LayerReport(
            name=name,
            kind=type(layer).__name__,
            input_delay=layer.input_delay,
            delay=layer.delay,
            input_rate=rate,
            output_rate=rate * layer.ratio,
            cache_bytes=layer.cache_bytes,
        )
        for name, layer, rate in _leaves(probe, Fraction(1), probe.layer_name)
    ]
    latency = probe.delay * probe.ratio
    report = ModelReport(
        name=probe.layer_name,
        delay=probe.delay,
        ratio=probe.ratio,
        latency_samples=latency,
        latency_ms=None if sample_rate is None else float(latency) * 1000.0 / sample_rate,
        sample_rate=sample_rate,
        buffer_multiple=probe.buffer_multiple,
        receptive_field=probe.receptive_field,
        cache_bytes=probe.cache_bytes,
        batch=batch,
    )
    report.layers = layers
    if show:
        print(report.table())
    return report
