"""``streamify data speech|music OUT``: the data recipes as commands (a Typer sub-app).

Registered in the main CLI with :func:`register`; also runnable alone: ``python -m streamify.data.cli music OUT``.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from streamify.data.dataset import DataToolMissing, Summary, make_folders

app = typer.Typer(
    name="data",
    help="Make training data on this machine: speech (espeak-ng) or music (fluidsynth playing generated MIDI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

OutArg = Annotated[Path, typer.Argument(help="Folder of the set (created; an existing set is extended).")]
MinutesOpt = Annotated[float, typer.Option(min=0.01, help="Minutes of audio the set holds when done.")]
SeedOpt = Annotated[int, typer.Option(help="Seed: the same seed and minutes give the same files.")]
RateOpt = Annotated[int, typer.Option(min=8000, help="Sample rate of the files, in Hz.")]
JobsOpt = Annotated[int, typer.Option(min=1, max=8, help="Files generated at a time.")]
ReadyOpt = Annotated[
    Optional[Path], typer.Option(help="Also write the summary to this marker file when the set is complete.")
]


@app.callback()
def _group() -> None:
    """Make training data on this machine: speech (espeak-ng) or music (fluidsynth playing generated MIDI)."""


def _load(module: str, *names: str) -> list:
    """``names`` from ``streamify.data.<module>``, or a one-line error naming the missing Python package."""
    try:
        loaded = importlib.import_module(f"streamify.data.{module}")
    except ImportError as error:
        from streamify.cli_errors import fail
        from streamify.extras import install_line, missing_message

        fail(
            missing_message(error.name, "data", f"the {module} recipe")
            or f"the {module} recipe cannot import {error.name or error}: {install_line('data')}"
        )
    return [getattr(loaded, name) for name in names]


def _run(
    kind: str,
    folder: Path,
    preflight: Callable[[], None],
    builder: Callable[[Callable[[float, float], None]], Summary],
    ready: Optional[Path],
) -> None:
    """Check the tools (``preflight``) and the ``folder``, build the set with a progress bar, print its summary, write ``ready``."""
    out = Console(highlight=False, soft_wrap=True)
    start = time.perf_counter()
    try:
        preflight()
        make_folders(folder)  # a path that cannot hold the set is refused before the progress bar
        with Progress(
            TextColumn(f"{kind}"), BarColumn(), TextColumn("{task.fields[done]}"), TimeElapsedColumn(), console=out
        ) as progress:
            task = progress.add_task(kind, total=1.0, done="")

            def on_file(done: float, wanted: float) -> None:
                progress.update(
                    task, completed=min(1.0, done / wanted), done=f"{done / 60:.1f} / {wanted / 60:.1f} min"
                )

            summary = builder(on_file)
    except (DataToolMissing, ValueError, RuntimeError) as error:
        out.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(code=2) from error
    elapsed = time.perf_counter() - start
    data = summary.to_json()
    for split in ("train", "test"):
        empty = " (empty: see the warning below)" if not data["files"][split] else ""
        out.print(
            f"{split}: {data['files'][split]} files, {data['seconds'][split] / 60:.1f} min in {summary.out}/{split}"
            + empty
        )
    out.print(f"{data['minutes_total']:.1f} min at {summary.sample_rate} Hz in {elapsed:.0f} s")
    for warning in summary.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if ready is not None:
        ready.parent.mkdir(parents=True, exist_ok=True)
        manifest = [
            json.loads(line) for line in Path(data["manifest"]).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        files = {f"{split}_files": [e["path"] for e in manifest if e["split"] == split] for split in ("train", "test")}
        ready.write_text(json.dumps({**data, "generation_seconds": round(elapsed, 1), **files}, indent=2) + "\n")


@app.command()
def music(
    out: OutArg,
    minutes: MinutesOpt = 30.0,
    seed: SeedOpt = 0,
    sample_rate: RateOpt = 48000,
    jobs: JobsOpt = 1,
    ready: ReadyOpt = None,
) -> None:
    """Music: generated melodies, chords, bass lines and drums on General MIDI instruments, played by fluidsynth."""
    build_music, require_tools = _load("music", "build_music", "require_tools")
    _run(
        "music",
        out,
        require_tools,
        lambda on_file: build_music(
            out, minutes=minutes, seed=seed, sample_rate=sample_rate, jobs=jobs, on_file=on_file
        ),
        ready,
    )


@app.command()
def speech(
    out: OutArg,
    minutes: MinutesOpt = 30.0,
    seed: SeedOpt = 0,
    sample_rate: RateOpt = 48000,
    jobs: JobsOpt = 1,
    ready: ReadyOpt = None,
) -> None:
    """Speech: generated sentences in five languages read by espeak-ng voices at varied speeds and pitches."""
    build_speech, require_tools = _load("speech", "build_speech", "require_tools")
    _run(
        "speech",
        out,
        require_tools,
        lambda on_file: build_speech(
            out, minutes=minutes, seed=seed, sample_rate=sample_rate, jobs=jobs, on_file=on_file
        ),
        ready,
    )


def register(parent: typer.Typer) -> None:
    """Add the ``data`` command group to the main ``streamify`` app."""
    parent.add_typer(app, name="data")


if __name__ == "__main__":
    app()
