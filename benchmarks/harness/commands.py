"""The command line of ``python benchmarks/run.py``: :func:`bench` and the Typer :data:`app` that runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

#: results go to DEFAULT_OUT / <mode> (quick, standard, full) unless --out says otherwise
DEFAULT_OUT = Path("benchmarks/results")


def _int_list(text: Optional[str], option: str) -> Optional[List[int]]:
    if text is None or not text.strip():
        return None
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from None
    if any(value <= 0 for value in values):
        raise typer.BadParameter(f"expected positive integers, got {text!r}", param_hint=option)
    return values


def _str_list(text: Optional[str]) -> Optional[List[str]]:
    if text is None or not text.strip():
        return None
    return [part for part in text.replace(" ", "").split(",") if part]


def bench(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Small model, 3 buffer sizes, 1 thread, few repetitions (minutes: tuning, checks and profile included).",
        ),
    ] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="Both models, every buffer size, 1 and 2 threads, batch 1 and 4, every engine."),
    ] = False,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="Folder for results.json, the PNG plots and summary.md [default: benchmarks/results/<mode>: quick, standard or full].",
        ),
    ] = None,
    doc: Annotated[
        Optional[Path],
        typer.Option(
            "--doc",
            help="Also splice the summary into this markdown page (between <!-- bench:begin --> and <!-- bench:end -->), e.g. docs/benchmarks.md.",
        ),
    ] = None,
    models: Annotated[
        Optional[str], typer.Option(help="Comma-separated models: rave-v2, rave-v2-small, rave-tiny.")
    ] = None,
    buffers: Annotated[
        Optional[str], typer.Option(help="Comma-separated buffer sizes (default: 256...16384, those the ratio allows).")
    ] = None,
    threads: Annotated[Optional[str], typer.Option(help="Comma-separated torch thread counts, e.g. 1,2.")] = None,
    batches: Annotated[Optional[str], typer.Option(help="Comma-separated batch sizes, e.g. 1,4.")] = None,
    engines: Annotated[
        Optional[str], typer.Option(help="Comma-separated engines: eager, script, frozen, onnx.")
    ] = None,
    memory: Annotated[bool, typer.Option(help="Measure peak memory (a child process per model).")] = True,
    profile: Annotated[bool, typer.Option(help="Profile streamify per layer and per op.")] = True,
    tune: Annotated[
        bool, typer.Option(help="Tune streamify's conv products for the run's buffer sizes first (streamify.tune).")
    ] = True,
) -> None:
    """Time streamify's streaming against offline, exact overlap-add and cached_conv on a RAVE-v2-sized model.

    Writes results.json, rtf_<model>.png, latency_<model>.png and summary.md to --out. Timings are noisy on a busy machine: the summary records the load average.
    """
    from harness.report import write_all
    from harness.suite import Counter, Options, run_suite

    if quick and full:
        raise typer.BadParameter("choose one of --quick and --full", param_hint="--quick/--full")
    options = Options.quick() if quick else Options.full() if full else Options.standard()
    options.models = _str_list(models) or options.models
    options.buffers = _int_list(buffers, "--buffers") or options.buffers
    options.threads = _int_list(threads, "--threads") or options.threads
    options.batches = _int_list(batches, "--batches") or options.batches
    options.engines = _str_list(engines) or options.engines
    options.memory = memory
    options.profile = profile
    options.tune = tune
    from harness.reference import CONFIGS

    unknown = [m for m in options.models if m not in CONFIGS]
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {unknown}; choose from {sorted(CONFIGS)}", param_hint="--models")

    console = Console(highlight=False)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("benchmark", total=Counter(options).total)

        def advance(description: str, units: int) -> None:
            progress.update(task, description=description, advance=units)

        results = run_suite(options, advance=advance)
    written = write_all(results, out if out is not None else DEFAULT_OUT / options.mode, doc)
    _print_summary(console, results, written)


def _print_summary(console: Console, results: dict, written: dict) -> None:
    """The targets of each model, the run's notes and where the files went."""
    from harness.report import targets

    table = Table(title=f"benchmarks/run.py ({results['meta']['mode']}): targets")
    for column in ("model", "target", "goal", "measured", "met"):
        table.add_column(column)
    for model in results["models"]:
        for row in targets(results, model):
            measured = "-" if row["measured"] is None else f"{row['measured']:.2f}x"
            table.add_row(
                model,
                str(row["target"]),
                str(row["goal"]),
                measured,
                "[green]yes[/green]" if row["met"] else "[red]no[/red]",
            )
    console.print(table)
    for note in results.get("notes", []):
        console.print(f"note: {note}")
    console.print(
        f"results: {written['json']}; summary: {written['summary']}"
        + (f"; page: {written['doc']}" if "doc" in written else "")
    )


#: ``benchmarks/run.py``'s command line (one command: the options of :func:`bench`)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(bench)
