"""The ``streamify`` command line.

One Typer app, one function per command. ``demo`` streams music through the shipped
trained model (:func:`streamify.models.pretrained`) and checks the result against offline; ``info``
reports a model's streaming layers. Each command is a function decorated with ``@app.command()``
(``demo`` and ``info`` here; ``export``, ``data``, ``process``, ``live``, ``train``, ``serve`` and ``send`` registered by
their feature's ``register(app)``, see :func:`_register_commands`), doing its work through the library
(so that it stays testable without the CLI) and printing with :func:`console`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import torch
import typer
from rich.console import Console
from rich.table import Table

import streamify
from streamify.cli_errors import fail, one_line, run_guarded
from streamify.demo_run import DType
from streamify.layer_report import human_bytes

app = typer.Typer(
    name="streamify",
    help="Run convolutional audio networks in real time, exactly: streaming with cached padding.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    from streamify.demo_run import report, run_demo

    out = console()
    torch.set_num_threads(threads if threads is not None else 1)
    try:
        result = run_demo(input, output, buffer, seconds, dtype, out)
    except streamify.StreamingError as error:
        fail(error)
    passed, table = report(result, threads, output)
    out.print(table)
    if not passed:
        raise typer.Exit(code=1)


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
    from streamify.layer_report import inspect as inspect_model
    from streamify.loading import kind_of, resolve, to_stream

    out = console()
    model = chosen_model(model, model_option)
    if kind_of(model).exported:
        out.print(_describe_exported(model))
        return
    try:
        resolved = resolve(model, weights, channels=channels, sample_rate=sample_rate)
        sample_rate = resolved.sample_rate or 48000
        stream = to_stream(resolved, method, length)
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
            human_bytes(layer.cache_bytes),
        )
    out.print(table)
    totals = Table(title="totals", show_header=False)
    latency = float(report.latency_samples)
    totals.add_row(
        "latency", f"{report.delay} output frames = {latency:g} samples ({1000 * latency / sample_rate:.2f} ms)"
    )
    totals.add_row("rate", f"{report.ratio} input samples per output frame")
    totals.add_row("buffer multiple", f"{report.buffer_multiple} samples")
    field = "unbounded (recurrent)" if report.receptive_field < 0 else f"{report.receptive_field} samples"
    totals.add_row("receptive field", field)
    totals.add_row("cache memory", f"{human_bytes(report.cache_bytes)} for {batch} stream(s)")
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
