"""The four models of the evaluation: ``streamify train`` run (or reused) per data set, non-causal and causal,
with the same data, seed, steps and settings.

A run lives in ``RUNS/<set>-<noncausal|causal>`` (the run folder of ``streamify train``). It is reused when its
``config.json`` asks for the same data and settings and its last checkpoint reached the step count; resumed
(``--resume``) when it stopped before; refused when it differs or went further (delete it or pick another
``--runs``). ``paper-train.json`` in the run folder accumulates the training's wall seconds and commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

#: the settings of ``config.json`` that must match for a run to be reused
_COMPARED = ("data_dir", "preset", "causal", "batch_size", "window", "learning_rate", "beta", "beta_warmup", "seed")


@dataclass(frozen=True)
class Budget:
    """What every model gets: the same steps, batch, window, learning rate, seed and threads."""

    steps: int = 10000
    preset: str = "small"
    batch_size: int = 8
    window: float = 0.5
    learning_rate: float = 5e-4
    beta: float = 0.01
    beta_warmup: int = 2000
    seed: int = 0
    threads: int = 1


@dataclass
class Job:
    """One model to have: ``streamify train DATA --out RUN``."""

    dataset: str
    causal: bool
    data_dir: Path  # the training files (the set's train/ folder)
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{self.dataset}-{'causal' if self.causal else 'noncausal'}"

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"


def job(runs: Path, dataset: str, causal: bool, data_dir: Path) -> Job:
    return Job(
        dataset, causal, Path(data_dir).resolve(), Path(runs) / f"{dataset}-{'causal' if causal else 'noncausal'}"
    )


def checkpoint_step(path: Path) -> int:
    """Training steps (batches) a checkpoint of ``streamify train`` has done."""
    data = torch.load(str(path), map_location="cpu", weights_only=True)
    return int(data["state_dict"]["step_count"])


def command(item: Job, budget: Budget, resume: bool) -> List[str]:
    args = [sys.executable, "-m", "streamify", "train", str(item.data_dir), "--out", str(item.run_dir)]
    args += ["--preset", budget.preset, "--max-steps", str(budget.steps), "--batch-size", str(budget.batch_size)]
    args += ["--window", str(budget.window), "--learning-rate", str(budget.learning_rate), "--beta", str(budget.beta)]
    args += ["--beta-warmup", str(budget.beta_warmup), "--seed", str(budget.seed), "--threads", str(budget.threads)]
    args += [
        "--checkpoint-every",
        str(max(1, min(500, budget.steps))),
        "--val-every",
        str(max(1, min(500, budget.steps))),
    ]
    args += ["--no-progress"] + (["--causal"] if item.causal else []) + (["--resume"] if resume else [])
    return args


def state(item: Job, budget: Budget) -> str:
    """``"done"``, ``"resume"`` or ``"new"``.

    Raises:
        RuntimeError: the run folder holds a run with other settings, or one that went past ``budget.steps``.
    """
    if not item.checkpoint.exists():
        return "new"
    config_path = item.run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    wanted = {"data_dir": str(item.data_dir), "causal": item.causal, **asdict(budget)}
    differing = [key for key in _COMPARED if config.get(key) != wanted[key]]
    if differing:
        shown = ", ".join(f"{k}={config.get(k)!r} (wanted {wanted[k]!r})" for k in differing)
        raise RuntimeError(f"{item.run_dir} holds another run: {shown}; delete it or choose another --runs folder")
    step = checkpoint_step(item.checkpoint)
    if step > budget.steps:
        raise RuntimeError(f"{item.run_dir} went to step {step}, past the {budget.steps} asked: use --steps {step}")
    return "done" if step == budget.steps else "resume"


def _record(item: Job, args: List[str], seconds: float, returncode: int) -> None:
    path = item.run_dir / "paper-train.json"
    record = json.loads(path.read_text()) if path.exists() else {"seconds": 0.0, "commands": []}
    record["seconds"] += seconds
    record["commands"].append({"command": " ".join(args[1:]), "seconds": round(seconds, 1), "returncode": returncode})
    path.write_text(json.dumps(record, indent=1))


def train_all(jobs: List[Job], budget: Budget, parallel: int = 2, log=print) -> Dict[str, dict]:
    """Train what is missing (``parallel`` runs at a time, ``budget.threads`` threads each); per job: its step
    count, the training's wall seconds (all invocations) and whether this call trained it.

    Raises:
        RuntimeError: a run failed (its log: ``RUN/paper-train.log``) or cannot be reused.
    """
    pending = [(item, state(item, budget)) for item in jobs]
    todo = [(item, kind) for item, kind in pending if kind != "done"]
    running: List[tuple] = []
    failed: List[str] = []
    while todo or running:
        while todo and len(running) < max(1, parallel):
            item, kind = todo.pop(0)
            item.run_dir.mkdir(parents=True, exist_ok=True)
            args = command(item, budget, resume=kind == "resume")
            log(f"training {item.name}: {' '.join(args[1:])}")
            handle = open(item.run_dir / "paper-train.log", "a")  # noqa: SIM115 (closed when the run ends)
            process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT)
            running.append((item, args, process, handle, time.monotonic()))
        time.sleep(0.5)
        for entry in list(running):
            item, args, process, handle, began = entry
            if process.poll() is None:
                continue
            handle.close()
            running.remove(entry)
            _record(item, args, time.monotonic() - began, process.returncode)
            if process.returncode:
                failed.append(f"{item.name} (exit {process.returncode}; see {item.run_dir / 'paper-train.log'})")
            else:
                log(f"trained {item.name} in {time.monotonic() - began:.0f} s")
    if failed:
        raise RuntimeError("training failed: " + "; ".join(failed))
    info: Dict[str, dict] = {}
    for item, kind in pending:
        if state(item, budget) != "done":
            raise RuntimeError(f"{item.name} did not reach step {budget.steps}")
        record_path = item.run_dir / "paper-train.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        info[item.name] = {
            "steps": checkpoint_step(item.checkpoint),
            "train_seconds": record.get("seconds"),
            "trained_now": kind != "done",
            "run_dir": str(item.run_dir),
        }
    return info


def load(item: Job, use_noise: bool = False):
    """The job's trained model (float32, eval), its noise synthesizer on or off."""
    from streamify.models import load_checkpoint

    model = load_checkpoint(item.checkpoint)
    model.use_noise = use_noise
    return model


def budget_line(budget: Budget, threads: Optional[int] = None) -> str:
    return (
        f"preset {budget.preset}, {budget.steps} steps of {budget.batch_size} windows of {budget.window} s, "
        f"Adam lr {budget.learning_rate}, KL weight {budget.beta} (warm-up {budget.beta_warmup} steps), "
        f"seed {budget.seed}, {threads or budget.threads} thread per run, spectral + KL phase only (no adversarial phase)"
    )
