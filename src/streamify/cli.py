"""The ``streamify`` command line.

One Typer app, one function per command. ``demo`` streams music through the shipped
trained model (:func:`streamify.models.pretrained`) and checks the result against offline; ``info``
reports a model's streaming layers. Each command is a function decorated with ``@app.command()``
(``demo`` and ``info`` here; ``export``, ``data``, ``process``, ``live``, ``train``, ``serve`` and ``send`` registered by
their feature's ``register(app)``, see :func:`_register_commands`), doing its work through the library
(so that it stays testable without the CLI) and printing with :func:`console`.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import streamify
from streamify.cli_errors import fail, one_line, run_guarded
from streamify.exactness import RELATIVE_FLOOR, ROUNDING_MULTIPLE, Comparison, compare_streamed, rounding_bar
from streamify.layers import StreamingModule
from streamify.runtime.state import reset

app = typer.Typer(
    name="streamify",
    help="Run convolutional audio networks in real time, exactly: streaming with cached padding.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: exactness bars of streamed against offline output (the project's bar, see docs/conversion.md, "Verification")
FLOAT64_MAX_ABS_ERROR = 1e-10
FLOAT32_MAX_REL_ERROR = RELATIVE_FLOOR


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


def float32_accuracy(model: torch.nn.Module, x: torch.Tensor, run: StreamRun, delay: int) -> tuple:
    """``(stream error, offline error)``: max abs differences of the float32 stream (shifted by ``delay``)
    and of the float32 offline output to the float64 offline output, over the compared samples."""
    import copy

    exact = copy.deepcopy(model).to(torch.float64)
    with torch.no_grad():
        reference = exact(x.to(torch.float64))
    n = min(run.streamed.size(-1) - delay, reference.size(-1))
    stream_error = (run.streamed[..., delay : delay + n].double() - reference[..., :n]).abs().max().item()
    offline_error = (run.offline[..., :n].double() - reference[..., :n]).abs().max().item()
    return stream_error, offline_error


def demo_stream(model: torch.nn.Module, buffer_multiple_of: int, dtype: torch.dtype) -> StreamingModule:
    """The streaming form of the demo's model: ``streamify.convert`` of its ``forward`` (a seeded example)."""
    from streamify.convert import convert

    generator = torch.Generator().manual_seed(0)
    example = 0.1 * torch.randn(1, 1, 64 * buffer_multiple_of, generator=generator, dtype=dtype)
    return convert(model.to(dtype), example, method="forward")


@app.command()
def demo(
    input: Annotated[
        Optional[Path], typer.Option("--input", help="Audio file to stream (needs soundfile; soxr to resample).")
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", help="Write the streamed output here (aligned with the input, same length)."),
    ] = None,
    buffer: Annotated[
        int, typer.Option(min=1, help="Samples per streamed buffer (a multiple of the model's 512).")
    ] = 2048,
    threads: Annotated[
        Optional[int], typer.Option(min=1, help="Torch CPU threads (default 1: real-time work on one core).")
    ] = None,
    seconds: Annotated[
        Optional[float], typer.Option(min=0.0, help="Stream only the first SECONDS of the input.")
    ] = None,
    dtype: Annotated[DType, typer.Option(help="Compute type; float64 shows exactness to rounding.")] = DType.float32,
) -> None:
    """Stream music through the shipped trained model, buffer by buffer, and check it against offline.

    The model is the 'small' RAVE-style autoencoder trained on generated music (docs/models.md), streamed by streamify.convert; the input is a built-in clip of held-out music unless --input is given. Prints the latency, the threads, the real-time factor (flagged above 1) and the error of the stream against the offline output shifted by the latency. Exits with status 1 if the error exceeds 1e-10 absolute (float64), or in float32 1e-5 of the peak plus 16 times the model's own float32 rounding (its float32 offline output against float64).
    """
    from streamify.models.clip import write_audio
    from streamify.models.shipped import pretrained

    out = console()
    torch.set_num_threads(threads if threads is not None else 1)
    try:
        if input is not None and output is not None:
            from streamify.host.guards import check_not_input

            check_not_input(input, output, overwrite_input=False, option=None)  # never over the input
        model = pretrained()
        model.use_noise = False  # the deterministic path: every streamed sample is checked against offline
        rate, multiple = model.sample_rate, model.ratio
        if buffer % multiple:
            raise typer.BadParameter(
                f"{buffer} is not a multiple of the model's buffer multiple {multiple}; try {max(multiple, buffer - buffer % multiple)}",
                param_hint="--buffer",
            )
        x, source = _demo_input(input, seconds, rate)
        length = x.size(-1)
        stream = demo_stream(model, multiple, dtype.torch)
        # whole buffers, and the latency's worth of silence after the input: the stream then gives all of it
        buffers = max(1, math.ceil((length + stream.delay) / buffer))
        x = torch.nn.functional.pad(x, (0, buffers * buffer - length)).to(dtype.torch)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
            transient=True,
        ) as progress:
            run = stream_and_compare(stream, x, buffer, progress)
        if output is not None:
            write_audio(output, run.streamed[..., stream.delay : stream.delay + length], rate)
    except streamify.StreamingError as error:
        fail(error)

    audio_seconds = x.size(-1) / rate  # what was streamed: the input, then silence up to whole buffers
    passed, bar = _demo_verdict(model, x, run, stream.delay, dtype)
    table = _demo_table(
        model,
        stream,
        run,
        dtype,
        rate=rate,
        buffer=buffer,
        source=f"{source}: {length / rate:g} s at {rate} Hz, streamed in {buffers} buffers of {buffer}",
        factor=run.stream_seconds / audio_seconds,
        threads=threads,
        output=output,
        result=("[green]PASS[/green] " if passed else "[red]FAIL[/red] ") + bar,
    )
    out.print(table)
    if not passed:
        raise typer.Exit(code=1)


def _demo_input(input: Optional[Path], seconds: Optional[float], rate: int) -> tuple[torch.Tensor, str]:
    """The demo's signal ``[1, 1, time]`` at ``rate`` Hz (the built-in clip or ``input``, cut to ``seconds``) and
    where it comes from."""
    from streamify.models.clip import builtin_clip, read_audio

    x = builtin_clip() if input is None else read_audio(input, rate)
    source = "built-in clip (held-out music)" if input is None else str(input)
    if seconds is not None:
        x = x[..., : max(1, int(seconds * rate))]
    return x, source


def _demo_verdict(
    model: torch.nn.Module, x: torch.Tensor, run: StreamRun, delay: int, dtype: DType
) -> tuple[bool, str]:
    """Whether the demo's stream meets the exactness bar of ``dtype``, and the bar as printed.

    float64: max abs error 1e-10. float32: the stream against the float32 offline output, judged by the model's
    own float32 rounding (:func:`streamify.exactness.rounding_bar`, the rule of ``streamify.convert``'s
    verification): 1e-5 of the peak plus a small multiple of how far the float32 offline output is from the
    float64 offline output on the same input. An exact stream passes on any machine; one sample off does not.
    """
    comparison = run.comparison
    if dtype is DType.float64:
        return comparison.max_abs_error <= FLOAT64_MAX_ABS_ERROR, f"max abs error <= {FLOAT64_MAX_ABS_ERROR:g}"
    stream_error, offline_error = float32_accuracy(model, x, run, delay)
    bar = rounding_bar(offline_error, comparison.offline_scale)
    passed = comparison.compared_frames > 0 and comparison.max_abs_error <= bar
    text = (
        f"max abs error {comparison.max_abs_error:.2e} <= {bar:.2e}: {FLOAT32_MAX_REL_ERROR:g} x peak + "
        f"{ROUNDING_MULTIPLE:g} x the float32 offline's own rounding {offline_error:.2e} (vs float64; "
        f"the stream's: {stream_error:.2e})"
    )
    return passed, text


def _demo_table(
    model: torch.nn.Module,
    stream: StreamingModule,
    run: StreamRun,
    dtype: DType,
    *,
    rate: int,
    buffer: int,
    source: str,
    factor: float,
    threads: Optional[int],
    output: Optional[Path],
    result: str,
) -> Table:
    """The demo's report: the model, its input, latency, memory, threads, the error and the speed."""
    latency = float(stream.delay)
    comparison = run.comparison
    parameters = sum(p.numel() for p in model.parameters())
    table = Table(title="streamify demo: the trained model, streamed vs offline", show_header=True)
    table.add_column("quantity")
    table.add_column("value")
    table.add_row("model", f"RAVE-style 'small', trained on music ({parameters} parameters), {dtype.value}")
    table.add_row("input", source)
    table.add_row("latency (model delay)", _samples(latency, rate))
    table.add_row("latency incl. buffering", _samples(latency + buffer, rate))
    table.add_row("buffer multiple", f"{stream.buffer_multiple} samples")
    table.add_row("receptive field", _samples(stream.receptive_field, rate))
    table.add_row("cache memory", f"{run.cache_bytes} B ({_human_bytes(run.cache_bytes)})")
    table.add_row(
        "threads",
        f"{torch.get_num_threads()} (torch intra-op)" + ("" if threads is not None else ", the real-time default"),
    )
    table.add_row("max abs error vs offline", f"{comparison.max_abs_error:.3e}")
    table.add_row("max relative error", f"{comparison.max_rel_error:.3e}")
    table.add_row("compared samples", f"{comparison.compared_frames} (offline shifted by the latency)")
    table.add_row("time per buffer (median)", f"{1000.0 * statistics.median(run.buffer_seconds):.3f} ms")
    slow = " [red]above 1: slower than real time on this machine[/red]" if factor > 1 else ""
    table.add_row("real-time factor", f"{factor:.4f} (compute time / audio time){slow}")
    if output is not None:
        table.add_row("output", f"{output} (the stream without its latency: aligned with the input)")
    table.add_row("result", result)
    return table


# ---------------------------------------------------------------------------------------------- info


@app.command()
def info(
    model: Annotated[
        Optional[str],
        typer.Argument(
            help="'demo' or 'pretrained' (built-in), 'package.module:factory', a checkpoint of streamify train "
            "(.ckpt) or RAVE weights (.pt), or an exported .ts / .onnx / .nm file. A .ts or .nm file is a program (TorchScript "
            "runs its code when loaded): info reads its metadata from the archive without loading it; load only "
            "files you trust. Also --model/-m (default: demo).",
            show_default=False,
        ),
    ] = None,
    model_option: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="The model, as the MODEL argument (-m is --model everywhere)."),
    ] = None,
    weights: Annotated[Optional[str], typer.Option(help="State dict to load (torch.save; weights_only).")] = None,
    channels: Annotated[
        Optional[int],
        typer.Option(min=1, help="Input channels of the model (default: guessed from its first conv, as export does)."),
    ] = None,
    sample_rate: Annotated[
        Optional[int],
        typer.Option(min=1, help="Sample rate, for latencies in ms (default: the model's sample_rate, else 48000)."),
    ] = None,
    method: Annotated[str, typer.Option(help="Method to convert (forward, encode, decode...).")] = "forward",
    length: Annotated[int, typer.Option(min=1, help="Length of the conversion example, in samples.")] = 32768,
    batch: Annotated[int, typer.Option(min=1, help="Streams, for the cache memory.")] = 1,
) -> None:
    """Per-layer delay, rate and cache of a streaming model, and its latency, buffer multiple and memory.

    For an exported .ts or .onnx file: its methods, rates, delays and versions, read from the file's metadata without running the file (.ts files are programs: load only files you trust).
    """
    from streamify.export.commands import chosen_model
    from streamify.inspect import inspect as inspect_model
    from streamify.models.loading import guess_channels, load_model, streaming_model

    out = console()
    model = chosen_model(model, model_option)
    if model.lower().endswith((".ts", ".onnx", ".nm")):
        out.print(_describe_exported(model))
        return
    try:
        loaded = load_model(model, weights)
        if channels is None:
            channels = guess_channels(loaded)
        if sample_rate is None:
            sample_rate = int(getattr(loaded, "sample_rate", 48000))
        stream = streaming_model(loaded, channels, length, method)
        report = inspect_model(stream, sample_rate=sample_rate, batch=batch, show=False)
    except streamify.StreamingError as error:
        fail(error)
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


def _describe_exported(model: str):
    """The table of an exported file, or a one-line refusal (missing, truncated, not written by streamify)."""
    from pathlib import Path

    from streamify.export import describe_file

    path = Path(model)
    if not path.is_file():
        state = "is a folder" if path.exists() else "does not exist"
        fail(f"{model} {state}; give the path of a file written by streamify export")
    try:
        return describe_file(path)
    except streamify.StreamingError as error:
        fail(error)
    except Exception as error:  # a truncated archive, another kind of file
        fail(
            f"cannot read {model}: {type(error).__name__}: {one_line(str(error), 200)}; the file is truncated or was "
            "not written by streamify export: export the model again"
        )


def _register_commands() -> None:
    """Commands that live with their feature: ``export`` (streamify.export), ``data`` (streamify.data),
    ``process`` and ``live`` (streamify.host), ``train`` (streamify.training), ``serve`` and ``send``
    (streamify.serve). The benchmarks are not part of
    the package: ``python benchmarks/run.py`` in a checkout."""
    from streamify.export.commands import register as register_export

    register_export(app)
    from streamify.data.cli import register as register_data

    register_data(app)
    from streamify.host.cli import register as register_host  # process, live

    register_host(app)
    from streamify.training.cli import register as register_train  # imports lightning only when run

    register_train(app)
    from streamify.serve.cli import register as register_serve  # serve, send: imports ray only when run

    register_serve(app)


_register_commands()


def main() -> None:
    """Entry point of the ``streamify`` script and of ``python -m streamify``: a refusal or an unexpected
    error ends as one line on stderr and exit status 2 (the traceback with ``STREAMIFY_TRACEBACK=1``)."""
    run_guarded(lambda: app(prog_name="streamify"))
