"""What ``streamify demo`` does: stream music through the shipped trained model and judge it against offline.

The model is :func:`streamify.models.pretrained` (not the untrained demo autoencoder of
:mod:`streamify.models.demo`, the ``demo`` model spec), converted by :func:`streamify.convert`; the signal is
the built-in clip or an audio file. It is streamed buffer by buffer by :func:`streamify.exactness.stream_signal`
(each call timed), and the stream is compared with the offline output shifted by the model's delay. The command
itself (its options) is in :mod:`streamify.cli`.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import Tensor, nn

from streamify.exactness import (
    RELATIVE_FLOOR,
    ROUNDING_MULTIPLE,
    Comparison,
    compare_streamed,
    rounding_bar,
    stream_signal,
)
from streamify.layer_report import human_bytes
from streamify.layers.base import StreamingError, StreamingModule
from streamify.runtime.state import reset

#: exactness bars of streamed against offline output (the project's bar, see docs/conversion.md, "Verification")
FLOAT64_MAX_ABS_ERROR = 1e-10
FLOAT32_MAX_REL_ERROR = RELATIVE_FLOOR


class DType(str, Enum):
    """Floating-point types the demo can compute in."""

    float32 = "float32"
    float64 = "float64"

    @property
    def torch(self) -> torch.dtype:
        return torch.float32 if self is DType.float32 else torch.float64


@dataclass
class StreamRun:
    """What streaming a signal buffer by buffer through a model gave, against offline.

    Shape:
        streamed, offline: ``[batch, channels, time]`` (output frames).
    """

    streamed: Tensor
    offline: Tensor
    comparison: Comparison
    buffer_seconds: List[float]
    cache_bytes: int

    @property
    def stream_seconds(self) -> float:
        return sum(self.buffer_seconds)


def stream_and_compare(
    model: StreamingModule, x: Tensor, buffer: int, progress: Optional[Progress] = None
) -> StreamRun:
    """Stream ``x`` ``[batch, channels, time]`` through ``model`` from a fresh stream in buffers of ``buffer``
    samples (each call timed), run it offline, compare.

    The comparison is ``streamed[t + delay]`` against ``offline[t]`` from ``t = 0`` (no warm-up excluded: a fresh
    stream is ``delay`` zeros then the offline output).
    """
    length = x.size(-1)
    if length % buffer != 0:
        raise ValueError(f"the signal's {length} samples are not a whole number of {buffer}-sample buffers")
    times: List[float] = []
    task = progress.add_task("streaming", total=length // buffer) if progress is not None else None

    def timed(chunk: Tensor) -> Tensor:
        began = time.perf_counter()
        y = model(chunk)
        times.append(time.perf_counter() - began)
        if progress is not None and task is not None:
            progress.advance(task)
        return y

    reset(model)
    streamed = stream_signal(timed, x, [buffer] * (length // buffer))
    with torch.no_grad():
        cache_bytes = model.cache_bytes
        offline = model.offline(x)
    reset(model)
    return StreamRun(streamed, offline, compare_streamed(streamed, offline, model.delay, warmup=0), times, cache_bytes)


def float32_accuracy(model: nn.Module, x: Tensor, run: StreamRun, delay: int) -> Tuple[float, float]:
    """``(stream error, offline error)``: max abs differences of the float32 stream (shifted by ``delay``)
    and of the float32 offline output to the float64 offline output, over the compared samples."""
    exact = copy.deepcopy(model).to(torch.float64)
    with torch.no_grad():
        reference = exact(x.to(torch.float64))
    n = min(run.streamed.size(-1) - delay, reference.size(-1))
    stream_error = (run.streamed[..., delay : delay + n].double() - reference[..., :n]).abs().max().item()
    offline_error = (run.offline[..., :n].double() - reference[..., :n]).abs().max().item()
    return stream_error, offline_error


def demo_stream(model: nn.Module, buffer_multiple_of: int, dtype: torch.dtype) -> StreamingModule:
    """The streaming form of the demo's model: ``streamify.convert`` of its ``forward`` (a seeded example)."""
    from streamify.convert import convert

    generator = torch.Generator().manual_seed(0)
    example = 0.1 * torch.randn(1, 1, 64 * buffer_multiple_of, generator=generator, dtype=dtype)
    return convert(model.to(dtype), example, method="forward")


def demo_input(input: Optional[Path], seconds: Optional[float], rate: int) -> Tuple[Tensor, str]:
    """The demo's signal ``[1, 1, time]`` at ``rate`` Hz (the built-in clip or ``input``, cut to ``seconds``) and
    where it comes from."""
    from streamify.models.clip import builtin_clip, read_audio

    x = builtin_clip() if input is None else read_audio(input, rate)
    source = "built-in clip (held-out music)" if input is None else str(input)
    if seconds is not None:
        x = x[..., : max(1, int(seconds * rate))]
    return x, source


@dataclass
class Demo:
    """A finished demo run: the model, its stream, the streamed signal and how it compared.

    Attributes:
        x: the streamed signal ``[1, 1, time]``: the input, then silence up to whole buffers past the latency.
        length: samples of the input in ``x``.
        source: where the input came from, and how it was streamed.
    """

    model: nn.Module
    stream: StreamingModule
    run: StreamRun
    x: Tensor
    length: int
    rate: int
    buffer: int
    dtype: DType
    source: str


def run_demo(
    input: Optional[Path], output: Optional[Path], buffer: int, seconds: Optional[float], dtype: DType, out: Console
) -> Demo:
    """Stream the shipped model over the clip or ``input`` in buffers of ``buffer`` samples (a progress bar on
    ``out``), write the aligned stream to ``output`` if given.

    Raises:
        StreamingError: ``buffer`` is not a multiple of the model's buffer multiple, or an input or output
            cannot be used (``output`` is never the input).
    """
    from streamify.models.clip import write_audio
    from streamify.models.shipped import pretrained

    if input is not None and output is not None:
        from streamify.host.guards import check_not_input

        check_not_input(input, output, overwrite_input=False, option=None)  # never over the input
    model = pretrained()
    model.use_noise = False  # the deterministic path: every streamed sample is checked against offline
    rate, multiple = model.sample_rate, model.ratio
    if buffer % multiple:
        raise StreamingError(
            f"streamify: --buffer {buffer} is not a multiple of the model's buffer multiple {multiple}; "
            f"try --buffer {max(multiple, buffer - buffer % multiple)}"
        )
    x, source = demo_input(input, seconds, rate)
    length = x.size(-1)
    stream = demo_stream(model, multiple, dtype.torch)
    # whole buffers, and the latency's worth of silence after the input: the stream then gives all of it
    buffers = max(1, math.ceil((length + stream.delay) / buffer))
    x = torch.nn.functional.pad(x, (0, buffers * buffer - length)).to(dtype.torch)
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=out, transient=True) as progress:
        run = stream_and_compare(stream, x, buffer, progress)
    if output is not None:
        write_audio(output, run.streamed[..., stream.delay : stream.delay + length], rate)
    source = f"{source}: {length / rate:g} s at {rate} Hz, streamed in {buffers} buffers of {buffer}"
    return Demo(model, stream, run, x, length, rate, buffer, dtype, source)


def verdict(demo: Demo) -> Tuple[bool, str]:
    """Whether the demo's stream meets the exactness bar of its dtype, and the bar as printed.

    float64: max abs error 1e-10. float32: the stream against the float32 offline output, judged by the model's
    own float32 rounding (:func:`streamify.exactness.rounding_bar`, the rule of ``streamify.convert``'s
    verification): 1e-5 of the peak plus a small multiple of how far the float32 offline output is from the
    float64 offline output on the same input. An exact stream passes on any machine; one sample off does not.
    """
    comparison = demo.run.comparison
    if demo.dtype is DType.float64:
        return comparison.max_abs_error <= FLOAT64_MAX_ABS_ERROR, f"max abs error <= {FLOAT64_MAX_ABS_ERROR:g}"
    stream_error, offline_error = float32_accuracy(demo.model, demo.x, demo.run, demo.stream.delay)
    bar = rounding_bar(offline_error, comparison.offline_scale)
    passed = comparison.compared_frames > 0 and comparison.max_abs_error <= bar
    text = (
        f"max abs error {comparison.max_abs_error:.2e} <= {bar:.2e}: {FLOAT32_MAX_REL_ERROR:g} x peak + "
        f"{ROUNDING_MULTIPLE:g} x the float32 offline's own rounding {offline_error:.2e} (vs float64; "
        f"the stream's: {stream_error:.2e})"
    )
    return passed, text


def _samples(n: float, sample_rate: int) -> str:
    return f"{n:g} samples ({1000.0 * n / sample_rate:.2f} ms)"


def report(demo: Demo, threads: Optional[int], output: Optional[Path]) -> Tuple[bool, Table]:
    """Whether the demo passed, and its report: the model, its input, latency, memory, threads, error and speed."""
    passed, bar = verdict(demo)
    stream, run, rate = demo.stream, demo.run, demo.rate
    latency, comparison = float(stream.delay), run.comparison
    parameters = sum(p.numel() for p in demo.model.parameters())
    factor = run.stream_seconds / (demo.x.size(-1) / rate)  # compute time over audio time (the padding included)
    table = Table(title="streamify demo: the trained model, streamed vs offline", show_header=True)
    table.add_column("quantity")
    table.add_column("value")
    table.add_row("model", f"RAVE-style 'small', trained on music ({parameters} parameters), {demo.dtype.value}")
    table.add_row("input", demo.source)
    table.add_row("latency (model delay)", _samples(latency, rate))
    table.add_row("latency incl. buffering", _samples(latency + demo.buffer, rate))
    table.add_row("buffer multiple", f"{stream.buffer_multiple} samples")
    table.add_row("receptive field", _samples(stream.receptive_field, rate))
    table.add_row("cache memory", f"{run.cache_bytes} B ({human_bytes(run.cache_bytes)})")
    default = "" if threads is not None else ", the real-time default"
    table.add_row("threads", f"{torch.get_num_threads()} (torch intra-op){default}")
    table.add_row("max abs error vs offline", f"{comparison.max_abs_error:.3e}")
    table.add_row("max relative error", f"{comparison.max_rel_error:.3e}")
    table.add_row("compared samples", f"{comparison.compared_frames} (offline shifted by the latency)")
    table.add_row("time per buffer (median)", f"{1000.0 * statistics.median(run.buffer_seconds):.3f} ms")
    slow = " [red]above 1: slower than real time on this machine[/red]" if factor > 1 else ""
    table.add_row("real-time factor", f"{factor:.4f} (compute time / audio time){slow}")
    if output is not None:
        table.add_row("output", f"{output} (the stream without its latency: aligned with the input)")
    table.add_row("result", ("[green]PASS[/green] " if passed else "[red]FAIL[/red] ") + bar)
    return passed, table
