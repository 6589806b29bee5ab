"""The ``streamify export`` command (added to the command line by :func:`register`)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Dict, Iterator, List, Optional

import torch
import typer
from rich.console import Console

from streamify.cli_errors import fail
from streamify.export.progress import stage
from streamify.layers.base import StreamingError


class ExportFormat(str, Enum):
    """File formats ``streamify export`` writes."""

    nn_tilde = "nn-tilde"
    onnx = "onnx"
    neutone = "neutone"


def _format_of(output: Path, chosen: Optional[ExportFormat]) -> ExportFormat:
    if chosen is not None:
        return chosen
    if output.suffix.lower() == ".onnx":
        return ExportFormat.onnx
    if output.suffix.lower() in (".ts", ".pt", ".torchscript"):
        return ExportFormat.nn_tilde
    if output.suffix.lower() == ".nm":
        return ExportFormat.neutone
    raise typer.BadParameter(
        f"cannot tell the format from {output.name!r}; name it .ts, .onnx or .nm, or pass --format"
    )


def _sizes(text: Optional[str], option: str) -> Optional[List[int]]:
    if text is None or not text.strip():
        return None
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError as error:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from error
    if any(size <= 0 for size in sizes):
        raise typer.BadParameter(f"sizes must be positive, got {text!r}", param_hint=option)
    return sizes


#: the methods export knows by name (what ``-m`` meant in export before it meant ``--model`` everywhere)
METHOD_NAMES = ("forward", "encode", "decode")


def chosen_model(argument: Optional[str], option: Optional[str], default: str = "demo") -> str:
    """The model a command was given: the MODEL argument or ``--model`` / ``-m`` (the same meaning in every
    command), ``default`` when neither. Refuses (one line, exit 2) both given and different, and a method name
    given with ``-m``: ``-m`` once meant ``--method`` in ``export``, and must not silently mean something else."""
    if argument is not None and option is not None and argument != option:
        fail(f"give the model once: as the MODEL argument ({argument!r}) or with --model/-m ({option!r}), not both")
    spec = option if option is not None else argument if argument is not None else default
    if option is not None and option in METHOD_NAMES and not Path(option).exists():
        fail(
            f"-m {option}: -m means --model (as in process and live), and {option!r} is a method, not a model; "
            f"choose the method with --method {option}"
        )
    return spec


def export(
    model: Annotated[
        Optional[str],
        typer.Argument(
            help="'demo' (the default) or 'pretrained' (built-in), 'package.module:factory', a checkpoint of "
            "streamify train (.ckpt) or RAVE weights (.pt), or an acids-rave training run (its folder, or a .ckpt "
            "with config.gin beside or above it). Also --model/-m.",
            show_default=False,
        ),
    ] = None,
    model_option: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="The model, as the MODEL argument (-m is --model everywhere)."),
    ] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="File to write: .ts (nn~ TorchScript), .onnx, or .nm (Neutone FX)."),
    ] = Path("model.ts"),
    weights: Annotated[Optional[str], typer.Option(help="State dict to load (torch.save; weights_only).")] = None,
    channels: Annotated[
        Optional[int],
        typer.Option(
            min=1, help="Input channels of the model (default: guessed from its first conv, as process does)."
        ),
    ] = None,
    sample_rate: Annotated[
        Optional[int],
        typer.Option(
            min=1, help="The model's sample rate (recorded in the file); default: its sample_rate, else 48000."
        ),
    ] = None,
    method: Annotated[
        Optional[List[str]],
        typer.Option(
            "--method",
            help="Method to export; repeat for several (nn~: encode, decode, forward). ONNX: one. Default: forward; for an autoencoder with encode and decode (RAVE checkpoints), nn~: all three.",
        ),
    ] = None,
    length: Annotated[int, typer.Option(min=1, help="Length of the conversion example, in samples.")] = 32768,
    format: Annotated[
        Optional[ExportFormat], typer.Option("--format", help="Output format (default: from the file suffix).")
    ] = None,
    buffer_size: Annotated[
        Optional[int], typer.Option(min=1, help="ONNX: fix the buffer length (frames); default dynamic.")
    ] = None,
    tune: Annotated[
        Optional[str],
        typer.Option(
            help="nn~: buffer sizes in samples (comma-separated, e.g. 2048,4096) to tune the convs for, by timing on this machine (streamify.tune)."
        ),
    ] = None,
    tune_batch: Annotated[
        str, typer.Option(help="nn~: batch sizes to tune for (comma-separated; mc.nn~ sends several).")
    ] = "1",
    name: Annotated[
        Optional[str], typer.Option(help="Neutone: the model's name in the plugin (30 characters at most).")
    ] = None,
    author: Annotated[
        Optional[List[str]], typer.Option("--author", help="Neutone: an author; repeat for several (5 at most).")
    ] = None,
    description: Annotated[
        Optional[str], typer.Option(help="Neutone: a short description (150 characters at most).")
    ] = None,
    tag: Annotated[Optional[List[str]], typer.Option("--tag", help="Neutone: a tag; repeat (7 at most).")] = None,
    model_version: Annotated[str, typer.Option(help="Neutone: the model's version string.")] = "1.0.0",
    fidelity: Annotated[
        float,
        typer.Option(
            min=0.1,
            max=0.999,
            help="acids-rave runs: share of the latent variance kept (the latent size), as rave export --fidelity.",
        ),
    ] = 0.95,
    noise: Annotated[
        bool,
        typer.Option(
            help="acids-rave runs: draw the posterior sample and the noise of the cut latent dimensions as rave "
            "export does; --no-noise: their expected values (a deterministic file).",
        ),
    ] = True,
) -> None:
    """Export a model for real-time hosts: an nn~ TorchScript file, an ONNX model with explicit state, or a Neutone FX model (.nm) for DAWs.

    The model is converted with streamify.convert, each method is checked the way a host runs it (nn~: buffer sizes 256 to 8192 and batch 1 and 2; ONNX: against the PyTorch stream; Neutone: saved by neutone-sdk, then streamed as the plugin does), and the file is written only if every check passes.
    """
    from streamify.loading import Kind, check_run_options, kind_of

    out = Console(highlight=False)
    spec = chosen_model(model, model_option)
    if kind_of(spec) is Kind.rave_run:
        try:
            check_run_options(spec, weights, channels, sample_rate)
        except StreamingError as error:
            fail(error)
        _export_rave_run(out, spec, output, format, method, fidelity, noise, tune, tune_batch)
        return
    neutone = dict(name=name, authors=author or [], description=description, tags=tag or [], version=model_version)
    job = _Job(spec, _format_of(output, format), output, method, length, buffer_size, tune, tune_batch, neutone)
    with said_stages():
        _export_model(out, job, weights, channels, sample_rate)
    out.print(f"[green]wrote[/green] {output}")


@dataclass
class _Job:
    """What ``streamify export`` was asked to write (all but the model's loading options)."""

    spec: str
    format: ExportFormat
    output: Path
    methods: Optional[List[str]]  # as given (None: the default for the model and format)
    length: int
    buffer_size: Optional[int]
    tune: Optional[str]
    tune_batch: str
    neutone: Dict[str, object]


def _export_model(
    out: Console, job: _Job, weights: Optional[str], channels: Optional[int], sample_rate: Optional[int]
) -> None:
    """Resolve, check and write a PyTorch model (:mod:`streamify.loading`); a refusal ends the command in one line."""
    from streamify.loading import example, input_refusal, resolve

    methods = list(job.methods or ["forward"])
    loaded: Optional[torch.nn.Module] = None
    x: Optional[torch.Tensor] = None
    try:
        _require_format(job.format)  # a missing package is said before the model loads and converts
        stage(f"loading the model {job.spec}")
        resolved = resolve(job.spec, weights, channels=channels, sample_rate=sample_rate)
        if resolved.module is None:
            raise StreamingError(
                f"streamify: export: {job.spec} is an exported {resolved.kind.value} file already; export the "
                "model it was made from (its factory or checkpoint)"
            )
        loaded = resolved.module
        if resolved.channels_guessed and resolved.channels != 1:
            out.print(
                f"input channels: {resolved.channels} (guessed from the model's first conv; --channels to change)"
            )
        methods = _methods(loaded, job)
        x = example(int(resolved.channels or 1), job.length)
        _write(out, job, loaded, x, methods, resolved.sample_rate or 48000)
    except Exception as error:
        # the model itself failing on the audio example (a wrong --channels) is the cause to report
        audio_methods = [m for m in methods if m in ("forward", "encode")] or methods[:1]
        refusal = input_refusal(loaded, x, audio_methods) if loaded is not None and x is not None else None
        if refusal is not None:
            fail(refusal)
        if isinstance(error, StreamingError):
            fail(error)
        raise


def _require_format(kind: ExportFormat) -> None:
    """Refuse a format whose optional packages are missing (one line naming the extra)."""
    if kind is ExportFormat.onnx:
        from streamify.export.onnx_export.runtime import _require

        _require("onnx")
        _require("onnxruntime")
    elif kind is ExportFormat.neutone:
        from streamify.export.neutone import import_neutone

        import_neutone("export")


def _methods(loaded: torch.nn.Module, job: _Job) -> List[str]:
    """The methods to export: those given, else ``forward``; an autoencoder (``encode`` and ``decode``) to nn~:
    all three. Refuses a method the model does not have, and several for one-method formats."""
    methods = list(job.methods or ["forward"])
    autoencoder = all(callable(getattr(loaded, m, None)) for m in ("encode", "decode"))
    if not job.methods and job.format is ExportFormat.nn_tilde and autoencoder:
        methods = ["encode", "decode", "forward"]
    _check_methods(loaded, job.spec, methods)
    return methods


def _write(
    out: Console, job: _Job, loaded: torch.nn.Module, x: torch.Tensor, methods: List[str], sample_rate: int
) -> None:
    """Export ``loaded`` (converted on the example ``x``) to ``job.output`` in its format, and describe the file."""
    if job.format is ExportFormat.neutone:
        from streamify.export.neutone import describe_neutone, export_neutone

        if job.methods and methods != ["forward"]:
            raise StreamingError("streamify: export: a Neutone model streams forward (audio to audio); drop --method")
        meta = dict(job.neutone)
        version = str(meta.pop("version"))
        export_neutone(loaded, job.output, x, sample_rate, version=version, **meta)  # type: ignore[arg-type]
        out.print(describe_neutone(job.output))
    elif job.format is ExportFormat.onnx:
        if len(methods) != 1:
            raise StreamingError("streamify: export: an ONNX file holds one method; pass one --method")
        from streamify.export.onnx_export import describe_onnx, export_onnx

        export_onnx(loaded, job.output, x, method=methods[0], sample_rate=sample_rate, buffer_size=job.buffer_size)
        out.print(describe_onnx(job.output))
    else:
        from streamify.export import describe_file, export_nn_tilde

        export_nn_tilde(
            loaded,
            job.output,
            x,
            methods=methods,
            sample_rate=sample_rate,
            tune_buffers=_sizes(job.tune, "--tune"),
            tune_batches=_sizes(job.tune_batch, "--tune-batch") or [1],
        )
        out.print(describe_file(job.output))


@contextlib.contextmanager
def said_stages() -> Iterator[None]:
    """Inside the block, each stage of an export (:mod:`streamify.export.progress`) is said as a line on stderr,
    with the seconds since the start; on a terminal a spinner also shows the running stage."""
    from rich.markup import escape

    from streamify.export.progress import reporting

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    began = time.perf_counter()
    status = err.status("export") if err.is_terminal else None

    def report(text: str) -> None:
        err.print(f"export [{time.perf_counter() - began:6.1f} s] {escape(text)}")
        if status is not None:
            status.update(escape(text))

    with status if status is not None else contextlib.nullcontext(), reporting(report):
        yield


def _check_methods(loaded: torch.nn.Module, spec: str, methods: List[str]) -> None:
    """Refuse a ``--method`` the model does not have, naming those it has."""
    missing = [m for m in methods if not callable(getattr(loaded, m, None))]
    if missing:
        has = [m for m in METHOD_NAMES if callable(getattr(loaded, m, None))]
        raise StreamingError(
            f"streamify: export: the model {spec} ({type(loaded).__name__}) has no method {missing[0]!r}; "
            f"it has {', '.join(has) or 'no method streamify knows'} (--method)"
        )


def _export_rave_run(
    out: Console,
    run: str,
    output: Path,
    chosen: Optional[ExportFormat],
    method: Optional[List[str]],
    fidelity: float,
    noise: bool,
    tune: Optional[str],
    tune_batch: str,
) -> None:
    """``streamify export RUN``: an acids-rave run to an nn~ file (streamify.export.rave)."""
    if _format_of(output, chosen) is not ExportFormat.nn_tilde:
        fail("streamify: export: an acids-rave run is exported to an nn~ file; name the output .ts")
    from streamify.export import describe_file
    from streamify.export.rave import METHODS, export_rave_run

    try:
        with said_stages():
            export_rave_run(
                run,
                output,
                fidelity=fidelity,
                methods=list(method or METHODS),
                noise=noise,
                tune_buffers=_sizes(tune, "--tune"),
                tune_batches=_sizes(tune_batch, "--tune-batch") or [1],
            )
    except StreamingError as error:
        fail(error)
    out.print(describe_file(output))
    out.print(f"[green]wrote[/green] {output}")


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command(name="export")(export)
