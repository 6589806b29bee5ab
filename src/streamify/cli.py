"""The ``streamify`` command line.

One Typer app, one function per command. ``demo`` streams a generated signal through
the built-in demo autoencoder and checks the result against offline. Later commands
(``info``, ``export``, ``bench``) are added the same way: a function decorated with
``@app.command()`` here, doing its work through the library (so that it stays testable
without the CLI) and printing with :func:`console`.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, List, Optional

import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import streamify
from streamify.check import Comparison, compare_streamed
from streamify.layers import StreamingModule
from streamify.state import reset

app = typer.Typer(
    name="streamify",
    help="Run convolutional audio networks in real time, exactly: streaming with cached padding.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: exactness bars of streamed against offline output (see docs/streaming-rules.md)
FLOAT64_MAX_ABS_ERROR = 1e-10
FLOAT32_MAX_REL_ERROR = 1e-5


class DType(str, Enum):
    """Floating-point types a command can compute in."""

    float32 = "float32"
    float64 = "float64"

    @property
    def torch(self) -> torch.dtype:
        return torch.float32 if self is DType.float32 else torch.float64


def console() -> Console:
    """The console commands print to (stdout; created per call so that test runners capture it)."""
    return Console(highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"streamify {streamify.__version__} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the versions of streamify and torch and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Run convolutional audio networks in real time, exactly: streaming with cached padding."""


# ---------------------------------------------------------------------------------------------- demo


@dataclass
class StreamRun:
    """What streaming a signal buffer by buffer through a model gave, against offline."""

    streamed: torch.Tensor
    offline: torch.Tensor
    comparison: Comparison
    buffer_seconds: List[float]
    cache_bytes: int

    @property
    def stream_seconds(self) -> float:
        return sum(self.buffer_seconds)


def stream_and_compare(
    model: StreamingModule, x: torch.Tensor, buffer: int, progress: Optional[Progress] = None
) -> StreamRun:
    """Stream ``x`` through ``model`` from a fresh stream in buffers of ``buffer``, run offline, compare.

    The comparison is ``streamed[t + delay]`` against ``offline[t]`` from ``t = 0``
    (no warm-up excluded: a fresh stream is ``delay`` zeros then the offline output).
    """
    length = x.size(-1)
    if length % buffer != 0:
        raise ValueError(f"the signal's {length} samples are not a whole number of {buffer}-sample buffers")
    reset(model)
    outputs: List[torch.Tensor] = []
    times: List[float] = []
    task = progress.add_task("streaming", total=length // buffer) if progress is not None else None
    with torch.no_grad():
        for start in range(0, length, buffer):
            chunk = x[..., start : start + buffer]
            began = time.perf_counter()
            outputs.append(model(chunk))
            times.append(time.perf_counter() - began)
            if progress is not None and task is not None:
                progress.advance(task)
        cache_bytes = model.cache_bytes
        streamed = torch.cat(outputs, -1)
        offline = model.offline(x)
    reset(model)
    return StreamRun(streamed, offline, compare_streamed(streamed, offline, model.delay, warmup=0), times, cache_bytes)


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def _samples(n: float, sample_rate: int) -> str:
    return f"{n:g} samples ({1000.0 * n / sample_rate:.2f} ms)"


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(min=0.0, help="Length of the test signal in seconds.")] = 2.0,
    sample_rate: Annotated[
        int, typer.Option(min=1, help="Sample rate in Hz (sets the ms figures and the signal).")
    ] = 16000,
    buffer: Annotated[
        int, typer.Option(min=1, help="Samples per streamed buffer (a multiple of the buffer multiple, 8).")
    ] = 512,
    dtype: Annotated[DType, typer.Option(help="Compute type; float64 shows exactness to rounding.")] = DType.float64,
    seed: Annotated[int, typer.Option(help="Seed of the model's weights and of the test signal.")] = 0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Torch CPU threads (default: torch's choice).")] = None,
) -> None:
    """Stream a generated signal through the built-in demo autoencoder and check it against offline.

    Prints the latency, the buffer multiple, the receptive field, the cache memory, the max error of the streamed output against the offline output shifted by the latency, and the real-time factor. Exits with status 1 if the error exceeds 1e-10 (float64) or 1e-5 relative (float32).
    """
    from streamify.models.demo import build_demo_autoencoder, demo_signal

    out = console()
    if threads is not None:
        torch.set_num_threads(threads)
    model = build_demo_autoencoder(channels=1, seed=seed).to(dtype.torch)
    multiple = model.buffer_multiple
    if buffer % multiple != 0:
        raise typer.BadParameter(
            f"{buffer} is not a multiple of the demo model's buffer multiple {multiple}; try {max(multiple, buffer - buffer % multiple)}",
            param_hint="--buffer",
        )
    buffers = max(1, math.ceil(seconds * sample_rate / buffer))  # whole buffers, at least the requested length
    x = demo_signal(sample_rate=sample_rate, seed=seed, dtype=dtype.torch, length=buffers * buffer)

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    ) as progress:
        run = stream_and_compare(model, x, buffer, progress)

    ratio = model.ratio  # input samples per output frame (1 for the autoencoder)
    latency = float(model.delay * ratio)
    comparison = run.comparison
    audio_seconds = x.size(-1) / sample_rate
    if dtype is DType.float64:
        passed = comparison.max_abs_error <= FLOAT64_MAX_ABS_ERROR
        bar = f"max abs error <= {FLOAT64_MAX_ABS_ERROR:g}"
    else:
        passed = comparison.max_rel_error <= FLOAT32_MAX_REL_ERROR
        bar = f"max relative error <= {FLOAT32_MAX_REL_ERROR:g}"
    parameters = sum(p.numel() for p in model.parameters())

    table = Table(title="streamify demo: streamed vs offline", show_header=True)
    table.add_column("quantity")
    table.add_column("value")
    table.add_row("model", f"demo autoencoder ({parameters} parameters), {dtype.value}")
    table.add_row("signal", f"{audio_seconds:g} s at {sample_rate} Hz, {buffers} buffers of {buffer}")
    table.add_row("latency (model delay)", _samples(latency, sample_rate))
    table.add_row("latency incl. buffering", _samples(latency + buffer, sample_rate))
    table.add_row("buffer multiple", f"{multiple} samples")
    table.add_row("receptive field", _samples(model.receptive_field, sample_rate))
    table.add_row("cache memory", f"{run.cache_bytes} B ({_human_bytes(run.cache_bytes)})")
    table.add_row("max abs error vs offline", f"{comparison.max_abs_error:.3e}")
    table.add_row("max relative error", f"{comparison.max_rel_error:.3e}")
    table.add_row("compared samples", f"{comparison.compared_frames} (offline shifted by the latency)")
    table.add_row("time per buffer (median)", f"{1000.0 * statistics.median(run.buffer_seconds):.3f} ms")
    table.add_row("real-time factor", f"{run.stream_seconds / audio_seconds:.4f} (compute time / audio time)")
    table.add_row("result", ("[green]PASS[/green] " if passed else "[red]FAIL[/red] ") + bar)
    out.print(table)
    if not passed:
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------------------- info


@app.command()
def info(
    model: Annotated[
        str, typer.Argument(help="'demo' (built-in), 'package.module:factory', or an exported .ts file.")
    ] = "demo",
    weights: Annotated[Optional[str], typer.Option(help="State dict to load (torch.save; weights_only).")] = None,
    channels: Annotated[int, typer.Option(min=1, help="Input channels of the model.")] = 1,
    sample_rate: Annotated[int, typer.Option(min=1, help="Sample rate, for latencies in ms.")] = 48000,
    method: Annotated[str, typer.Option(help="Method to convert (forward, encode, decode...).")] = "forward",
    length: Annotated[int, typer.Option(min=1, help="Length of the conversion example, in samples.")] = 32768,
    batch: Annotated[int, typer.Option(min=1, help="Streams, for the cache memory.")] = 1,
) -> None:
    """Per-layer delay, rate and cache of a streaming model, and its latency, buffer multiple and memory."""
    from streamify.inspect import inspect as inspect_model
    from streamify.models.loading import load_model, streaming_model

    out = console()
    if model.endswith((".ts", ".onnx")):
        from streamify.export import describe_file

        try:
            out.print(describe_file(model))
        except streamify.StreamingError as error:
            out.print(f"[red]error:[/red] {error}")
            raise typer.Exit(code=2) from error
        return
    try:
        stream = streaming_model(load_model(model, weights), channels, length, method)
        report = inspect_model(stream, sample_rate=sample_rate, batch=batch, show=False)
    except streamify.StreamingError as error:
        out.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    table = Table(title=f"{report.name}: streaming layers")
    for column in ("layer", "kind", "in delay", "delay", "rate in -> out", "cache"):
        table.add_column(column, justify="left" if column in ("layer", "kind") else "right", overflow="fold")
    for layer in report.layers:
        table.add_row(
            layer.name,
            layer.kind,
            str(layer.input_delay),
            str(layer.delay),
            f"{layer.input_rate} -> {layer.output_rate}",
            _human_bytes(layer.cache_bytes),
        )
    out.print(table)
    totals = Table(title="totals", show_header=False)
    totals.add_row("latency", f"{report.delay} output frames = {_samples(float(report.latency_samples), sample_rate)}")
    totals.add_row("rate", f"{report.ratio} input samples per output frame")
    totals.add_row("buffer multiple", f"{report.buffer_multiple} samples")
    field = "unbounded (recurrent)" if report.receptive_field < 0 else f"{report.receptive_field} samples"
    totals.add_row("receptive field", field)
    totals.add_row("cache memory", f"{_human_bytes(report.cache_bytes)} for {batch} stream(s)")
    out.print(totals)


def _register_commands() -> None:
    """Commands that live with their feature: ``export`` (streamify.export), ``data`` (streamify.data),
    ``bench`` (streamify.bench)."""
    from streamify.export.commands import register as register_export

    register_export(app)
    from streamify.data.cli import register as register_data

    register_data(app)
    from streamify.training.cli import register as register_train  # imports lightning only when run

    register_train(app)
    try:
        from streamify.bench.commands import register as register_bench
    except ImportError:  # pragma: no cover - the bench package is optional in a source checkout
        return
    register_bench(app)


_register_commands()


def main() -> None:
    """Entry point of the ``streamify`` script and of ``python -m streamify``."""
    app(prog_name="streamify")
