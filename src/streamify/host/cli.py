"""The ``process`` and ``live`` commands (registered on the ``streamify`` app by :func:`register`)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console

MODEL_HELP = (
    "A factory 'package.module:factory' (with --weights), a checkpoint of our models, 'demo', 'pretrained', "
    "an acids-rave run (its folder or a .ckpt in it), an nn~ TorchScript file (.ts) or an ONNX file with "
    "explicit state (.onnx)."
)


class NonFinite(str, Enum):
    """What ``process`` does with NaN and infinite input samples."""

    refuse = "refuse"
    zero = "zero"


class Backend(str, Enum):
    """Live audio backends."""

    jack = "jack"
    portaudio = "portaudio"


def _fail(error: BaseException) -> typer.Exit:
    """Print ``error`` as one line on stderr; the exit (status 2) to raise. A missing optional package names
    the extra that installs it."""
    from rich.markup import escape

    from streamify.cli_errors import command_name, one_line
    from streamify.extras import missing_message

    missing = missing_message(error.name, command_name()) if isinstance(error, ModuleNotFoundError) else None
    message = one_line(missing or str(error)) or type(error).__name__
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}", markup=True)
    return typer.Exit(code=2)


def _load(model: str, weights, method, channels, sample_rate, threads):
    from streamify.host.models import load_host_model, set_torch_threads

    said = set_torch_threads(threads)
    return load_host_model(model, weights, method, channels, sample_rate, threads), said


def process(
    source: Annotated[Path, typer.Argument(help="Input audio file (any format soundfile reads).")],
    destination: Annotated[Path, typer.Argument(help="Output audio file (.wav, .flac, .ogg, ...).")],
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)],
    weights: Annotated[Optional[str], typer.Option(help="State dict for a factory (torch.save; weights_only).")] = None,
    method: Annotated[str, typer.Option(help="Method to run: forward, encode, decode.")] = "forward",
    buffer: Annotated[
        int, typer.Option(min=1, help="Samples per model call (not a multiple of the model's: more latency, reported).")
    ] = 2048,
    compensate: Annotated[
        bool, typer.Option(help="Remove the model's delay: the output lines up with the input.")
    ] = False,
    resample_back: Annotated[
        bool,
        typer.Option(
            "--resample-back/--model-rate",
            help="Write the output at the input's rate (soxr; default) or at the model's.",
        ),
    ] = True,
    channels: Annotated[
        Optional[int], typer.Option(min=1, help="PyTorch models: input channels to convert with (default: guessed).")
    ] = None,
    sample_rate: Annotated[
        Optional[int], typer.Option(min=1, help="The model's rate in Hz when the model does not record it.")
    ] = None,
    subtype: Annotated[
        Optional[str],
        typer.Option(
            help="Sample format of the output: FLOAT, PCM_16, PCM_24, ... (soundfile subtypes). Default: the input's "
            "where the output format takes it and it holds the output, else FLOAT where the format has it."
        ),
    ] = None,
    nan: Annotated[
        NonFinite,
        typer.Option(help="Input samples that are NaN or infinite: refuse the file (default) or zero them."),
    ] = NonFinite.refuse,
    overwrite_input: Annotated[
        bool,
        typer.Option("--overwrite-input", help="Allow the output to be the input: replaced once the run succeeded."),
    ] = False,
    threads: Annotated[int, typer.Option(min=1, help="Intra-op threads of the model.")] = 1,
    gain: Annotated[
        float, typer.Option(help="Gain in dB applied to the output before writing (e.g. -6 to avoid clipping).")
    ] = 0.0,
) -> None:
    """Stream an audio file through a model buffer by buffer, as a host would, and write the result.

    The file is resampled to the model's rate with soxr when they differ, and the output back to the input's (--model-rate: left at the model's), in the input's sample format where it holds the output. A multichannel file goes through a 1-channel model as batch items (as mc.nn~), or through a model with as many input channels as the file. Ends with the latency, the real-time factor and the slowest buffer against its deadline. The output file is written only on success, never over the input unless --overwrite-input; an input holding NaN or infinite samples is refused unless --nan zero.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streamify.host.files import check_destination, process_file
    from streamify.host.guards import check_not_input
    from streamify.host.models import HostError

    out = Console(highlight=False)
    try:
        if not source.is_file():
            raise HostError(f"streamify: input file {source} does not exist")
        check_not_input(source, destination, overwrite_input)
        check_destination(destination, subtype)
        host_model, said = _load(model, weights, method, channels, sample_rate, threads)
        out.print(f"model: {host_model.describe()}; {said}")
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=out
        ) as progress:
            task = progress.add_task("processing", total=None)

            def on_buffer(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = process_file(
                source,
                destination,
                host_model,
                buffer,
                compensate,
                resample_back,
                subtype,
                on_buffer=on_buffer,
                gain_db=gain,
                nan=nan.value,
                overwrite_input=overwrite_input,
            )
    except Exception as error:  # a command line ends with one line, whatever broke
        raise _fail(error) from error
    out.print(result.report.table())
    out.print(
        f"[green]wrote[/green] {destination} ({result.channels} channel{'s' if result.channels != 1 else ''}, "
        f"{result.output_rate} Hz, {result.subtype})"
    )
    said = result.clipping.warning(destination) if result.clipping is not None else None
    if said:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[yellow]warning:[/yellow] {said}")


def live(
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)],
    weights: Annotated[Optional[str], typer.Option(help="State dict for a factory (torch.save; weights_only).")] = None,
    method: Annotated[str, typer.Option(help="Method to run: forward, encode, decode.")] = "forward",
    backend: Annotated[Backend, typer.Option(help="jack (JACK-Client) or portaudio (sounddevice).")] = Backend.jack,
    buffer: Annotated[
        Optional[int], typer.Option(min=1, help="Samples per model call (default: the host block, or a multiple).")
    ] = None,
    inputs: Annotated[
        Optional[List[str]], typer.Option("--in", help="JACK: output port(s) to connect to the inputs (regex).")
    ] = None,
    outputs: Annotated[
        Optional[List[str]], typer.Option("--out", help="JACK: input port(s) to connect the outputs to (regex).")
    ] = None,
    channels: Annotated[
        Optional[int],
        typer.Option(min=1, help="Input channels (default: the model's; a 1-channel model takes more as batch items)."),
    ] = None,
    sample_rate: Annotated[
        Optional[int], typer.Option(min=1, help="The model's rate in Hz when the model does not record it.")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Intra-op threads of the worker (1 keeps it real-time).")] = 1,
    realtime: Annotated[
        bool, typer.Option(help="Run the worker at the lowest real-time priority (SCHED_FIFO 1) when allowed.")
    ] = True,
    name: Annotated[str, typer.Option(help="JACK client name.")] = "streamify",
    block: Annotated[int, typer.Option(min=1, help="PortAudio: the device period the engine plans for.")] = 1024,
    device: Annotated[Optional[str], typer.Option(help="PortAudio device (name or index).")] = None,
    seconds: Annotated[Optional[float], typer.Option(min=0.0, help="Stop after this long (default: Ctrl-C).")] = None,
    view: Annotated[bool, typer.Option(help="Show the live view (meters, load, lateness).")] = True,
) -> None:
    """Stream live audio through a model: a JACK client or a PortAudio stream, until Ctrl-C (or SIGTERM).

    The audio callback only copies through preallocated ring buffers; the model runs on a worker thread one buffer behind (double buffering, as nn~): latency = model delay + 2 * max(buffer, block) - block samples, reported. A model error gives silence and a log line. Ends with the report: latency, real-time factor, slowest buffer, late buffers, xruns.
    """
    from rich.live import Live

    from streamify.host.devices import backend_module
    from streamify.host.live import start_live
    from streamify.host.view import LiveView

    out = Console(highlight=False)
    logging.basicConfig(format="streamify: %(message)s", level=logging.WARNING)
    chosen_device = int(device) if device is not None and device.isdigit() else device
    try:
        backend_module(backend.value)  # a missing backend is said before the model loads (seconds)
        host_model, said = _load(model, weights, method, None, sample_rate, threads)
        out.print(f"model: {host_model.describe()}")
        session = start_live(
            host_model,
            backend.value,
            buffer,
            channels,
            threads,
            inputs or (),
            outputs or (),
            name,
            block,
            chosen_device,
            realtime=realtime,
        )
    except Exception as error:  # a command line ends with one line, whatever broke
        raise _fail(error) from error
    engine = session.engine
    out.print(
        f"{backend.value}: {engine.sample_rate} Hz, blocks of {engine.block}, model buffers of {engine.buffer}; "
        f"worker: {said} (--threads), {engine.priority}; latency "
        f"{f'{engine.latency:g}' if engine.latency is not None else 'unknown'} samples"
    )
    title = f"streamify live: {host_model.name} ({backend.value})"
    began = time.monotonic()
    stop = _StopOnSignals()
    try:
        with stop:
            if view:
                live_view = LiveView(session, title)
                with Live(live_view.render(), console=out, refresh_per_second=8, transient=False) as screen:
                    while not stop.wait(seconds, began, 0.125):
                        screen.update(live_view.render())
            else:
                while not stop.wait(seconds, began, 0.1):
                    pass
    except KeyboardInterrupt:
        stop.said = "Ctrl-C"
    finally:
        if stop.said:
            out.print(f"stopping ({stop.said})")
        report = session.close()
    out.print(report.table())


class _StopOnSignals:
    """Within ``with``: SIGINT and SIGTERM end the run cleanly (the report printed), even where SIGINT came
    ignored (a background job of a shell); the previous handlers come back after."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.said = ""
        self._previous: dict = {}

    def _handle(self, number: int, frame) -> None:
        self.said = "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name
        self.event.set()

    def __enter__(self) -> _StopOnSignals:
        for name in self.SIGNALS:
            number = getattr(signal, name, None)
            if number is not None and threading.current_thread() is threading.main_thread():
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def wait(self, seconds: Optional[float], began: float, step: float) -> bool:
        """Sleep up to ``step`` seconds; whether the run is over (a signal, or ``seconds`` elapsed)."""
        if seconds is not None:
            step = min(step, max(0.0, began + seconds - time.monotonic()))
        return self.event.wait(step) or (seconds is not None and time.monotonic() - began >= seconds)


def register(app: typer.Typer) -> None:
    """Add ``process`` and ``live`` to ``app``."""
    app.command(name="process")(process)
    app.command(name="live")(live)
