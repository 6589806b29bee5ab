"""Reproduce the evaluation of Caillon & Esling (DAFx 2022) with our own models: ``python benchmarks/paper.py``.

``python benchmarks/paper.py --out docs/paper.md`` trains (or reuses, from ``--runs``) the ``small`` preset
non-causal and causal on each data set under ``--data`` (``music`` and ``speech``, made by
``streamify data``), evaluates both on the held-out files (offline, streamed, naive chunks, overlap-add)
and writes the report, its JSON results and its figures next to ``--out``. ``--quick`` does the same on
synthetic audio with a few training steps (CI-sized; the numbers mean nothing). See
:mod:`paper_eval` for the parts.
"""

from __future__ import annotations

import datetime
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import streamify  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from paper_eval import evaluate, plots, report, signals, training  # noqa: E402

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

#: quick mode: synthetic sets, a few steps, short windows
QUICK_BUDGET = training.Budget(steps=3, batch_size=2, window=0.2, beta_warmup=2)


def _log(message: str) -> None:
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    out: Path,
    quick: bool = False,
    data: Path = Path("data"),
    runs: Optional[Path] = None,
    datasets: List[str] = ("music", "speech"),
    budget: Optional[training.Budget] = None,
    buffers: List[int] = (512, 2048, 8192),
    clip_seconds: float = 10.0,
    max_clips: int = 12,
    parallel: int = 2,
    command: str = "",
) -> dict:
    """Train what is missing, evaluate, write ``out`` (markdown), ``out`` with ``.json`` and the figures."""
    began = time.monotonic()
    budget = budget or (QUICK_BUDGET if quick else training.Budget())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if runs is None:
        runs = Path(tempfile.mkdtemp(prefix="streamify-paper-")) if quick else Path("runs/paper")
    runs = Path(runs)
    if quick:
        clip_seconds, max_clips = min(clip_seconds, 1.5), min(max_clips, 2)
        data = runs / "data"
        for name in datasets:
            signals.write_synthetic_set(data / name, name, train_files=3, test_files=2, seconds=2.0, seed=0)
    jobs = []
    for name in datasets:
        folder = data / name
        if not (folder / "train").is_dir() or not (folder / "test").is_dir():
            raise FileNotFoundError(
                f"{folder} has no train/ and test/ folders: make it with 'streamify data {name} {folder}'"
            )
        jobs += [training.job(runs, name, causal, folder / "train") for causal in (False, True)]
    _log(f"models: {', '.join(j.name for j in jobs)} in {runs}")
    trained = training.train_all(jobs, budget, parallel=parallel, log=_log)
    rows: List[evaluate.Row] = []
    facts = {}
    strips = {}
    for name in datasets:
        nc_job, c_job = (j for j in jobs if j.dataset == name)
        models = evaluate.Models(training.load(nc_job), training.load(c_job))
        multiple = max(buffers)
        clips = signals.test_clips(
            data / name / "test", models.noncausal.sample_rate, clip_seconds, max_clips, multiple
        )
        dataset_rows, extra = evaluate.evaluate_dataset(name, models, clips, buffers, log=_log)
        rows += dataset_rows
        facts[name] = {**extra["facts"], "train_dir": str(data / name / "train"), "test_dir": str(data / name / "test")}
        strips[name] = extra["strip"]
    stem = out.with_suffix("")
    figures = {
        "quality against latency": plots.quality_latency(rows, datasets, Path(f"{stem}-quality-latency.png")),
        "cost against buffer size": plots.cost_buffer(rows, datasets, Path(f"{stem}-cost.png")),
        "spectrograms: input, offline, streamed, causal, naive chunks": plots.spectrogram_strip(
            strips, Path(f"{stem}-spectrograms.png")
        ),
    }
    duration = time.monotonic() - began
    from harness.measure import machine_info

    machine = machine_info()
    text = report.render(
        title="The paper's evaluation on our own models" + (" (quick mode)" if quick else ""),
        command=command or "python benchmarks/paper.py --out " + str(out) + (" --quick" if quick else ""),
        duration_s=duration,
        date=str(machine["date"]),
        machine=machine,
        budget_line=training.budget_line(budget),
        training=trained,
        datasets=facts,
        rows=rows,
        figures={caption: path.name for caption, path in figures.items()},
        quick=quick,
        parallel=parallel,
    )
    out.write_text(text)
    results = {
        "command": command,
        "duration_s": duration,
        "budget": budget.__dict__,
        "training": trained,
        "datasets": facts,
        "rows": [r.as_dict() for r in rows],
        "verdicts": [{"claim": c, "matched": ok, "evidence": e} for c, ok, e in report.verdicts(rows, datasets)],
        "machine": machine,
    }
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    _log(f"wrote {out}, {out.with_suffix('.json')} and {len(figures)} figures in {duration:.0f} s")
    return results


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="The report (markdown); results JSON and PNGs beside it.")] = Path(
        "docs/paper.md"
    ),
    quick: Annotated[bool, typer.Option("--quick", help="CI-sized: synthetic audio, 3 steps, short clips.")] = False,
    data: Annotated[Path, typer.Option(help="Folder of the sets (DATA/<set>/train, DATA/<set>/test).")] = Path("data"),
    runs: Annotated[
        Optional[Path],
        typer.Option(help="Run folders (reused when complete). Default runs/paper; quick: a temp folder."),
    ] = None,
    sets: Annotated[str, typer.Option(help="Comma-separated sets under --data.")] = "music,speech",
    steps: Annotated[
        Optional[int], typer.Option(min=1, help="Training steps per model (default 10000; quick 3).")
    ] = None,
    buffers: Annotated[str, typer.Option(help="Comma-separated buffer sizes (samples at the model's rate).")] = (
        "512,2048,8192"
    ),
    clip_seconds: Annotated[float, typer.Option(help="Seconds evaluated from the start of each test file.")] = 10.0,
    max_clips: Annotated[int, typer.Option(min=1, help="Test files per set (spread over the sorted list).")] = 12,
    parallel: Annotated[int, typer.Option(min=1, help="Trainings run at once (one thread each).")] = 2,
) -> None:
    """Train, evaluate and write the report of the paper's claims."""
    budget = QUICK_BUDGET if quick else training.Budget()
    if steps is not None:
        budget = training.Budget(**{**budget.__dict__, "steps": steps})
    try:
        run(
            out,
            quick=quick,
            data=data,
            runs=runs,
            datasets=[s for s in sets.split(",") if s],
            budget=budget,
            buffers=[int(b) for b in buffers.split(",")],
            clip_seconds=clip_seconds,
            max_clips=max_clips,
            parallel=parallel,
            command="python benchmarks/paper.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        )
    except (FileNotFoundError, RuntimeError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error


if __name__ == "__main__":
    app()
