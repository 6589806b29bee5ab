"""``train()``: prepare a folder of audio, then fit :class:`RaveTraining` with a Lightning Trainer.

The run folder holds ``data/`` (the memory-mapped dataset), ``checkpoints/`` (every
``checkpoint_every`` steps and ``last.ckpt``), ``logs/`` (TensorBoard: losses, validation
audio and spectrograms) and ``config.json``.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

import torch

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from streamify.training.dataset import PreparedAudio
    from streamify.training.module import RaveTraining


@dataclass
class TrainConfig:
    """What ``streamify train`` was asked for (written to ``RUN_DIR/config.json``)."""

    data_dir: str
    out: str
    preset: str = "small"
    causal: bool = False
    max_steps: int = -1
    max_minutes: float = 0.0  # 0: no time limit
    batch_size: int = 8
    window: float = 0.5  # seconds of audio per training example (rounded up to whole latent frames)
    learning_rate: float = 3e-4
    beta: float = 0.01
    beta_warmup: int = 2000
    phase2_step: int = 1_000_000
    validation_fraction: float = 0.05
    validation_windows: int = 8
    validation_seconds: float = 2.0
    val_every: int = 500
    checkpoint_every: int = 500
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32-true"
    threads: int = 0  # torch intra-op threads per process; 0: torch's default
    workers: int = 0
    seed: int = 0
    resume: bool = False
    overwrite: bool = False  # start over in a folder that holds a run: its checkpoints and logs are deleted
    progress: bool = True


def whole_frames(seconds: float, sample_rate: int, ratio: int) -> int:
    """Samples of ``seconds`` rounded up to a whole number of latent frames (``ratio`` samples each)."""
    return max(1, -(-round(seconds * sample_rate) // ratio)) * ratio


def last_checkpoint(out: Path) -> Optional[Path]:
    """``RUN_DIR/checkpoints/last.ckpt`` if it exists."""
    path = Path(out) / "checkpoints" / "last.ckpt"
    return path if path.exists() else None


def run_files(out: Path) -> List[Path]:
    """What a run left in ``out``: its checkpoints and TensorBoard logs (the dataset cache does not count)."""
    found: List[Path] = []
    for folder in (out / "checkpoints", out / "logs"):
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*") if p.is_file())
    return found


def check_run_folder(config: TrainConfig) -> None:
    """Never lose a run: a folder that holds one is continued (``resume``) or started over (``overwrite``, which
    deletes its checkpoints and logs), never silently written over.

    Raises:
        FileExistsError: ``out`` holds a run and neither was asked for.
        ValueError: both were asked for.
        FileNotFoundError: ``resume`` without ``checkpoints/last.ckpt``.
    """
    import shutil

    out = Path(config.out)
    if config.resume and config.overwrite:
        raise ValueError("--resume continues the run in the folder and --overwrite deletes it: choose one")
    if config.resume:
        if last_checkpoint(out) is None:
            raise FileNotFoundError(f"--resume: no {out / 'checkpoints' / 'last.ckpt'} to resume from")
        return
    found = run_files(out)
    if found and not config.overwrite:
        checkpoints = [p for p in found if p.suffix == ".ckpt"]
        what = f"{len(checkpoints)} checkpoint{'s' if len(checkpoints) != 1 else ''}" if checkpoints else "logs"
        raise FileExistsError(
            f"{out} already holds a run ({what}, e.g. {found[-1].relative_to(out)}): pass --resume to continue it, "
            "--overwrite to start over (its checkpoints and logs are deleted), or another --out"
        )
    if config.overwrite:
        for folder in (out / "checkpoints", out / "logs"):
            if folder.is_dir():
                shutil.rmtree(folder)


def train(config: TrainConfig, callbacks: Sequence[Any] = ()):
    """Run (or resume) a training run; returns the Lightning Trainer after ``fit``.

    ``callbacks``: more Lightning callbacks (the tests record the losses with one).

    Raises:
        FileNotFoundError: no audio under ``config.data_dir``, or ``resume`` without a checkpoint.
        FileExistsError: ``config.out`` holds a run and neither ``resume`` nor ``overwrite`` was asked for.
        ValueError: fp16 mixed precision (use bf16-mixed); ``resume`` with ``overwrite``.
    """
    import lightning as L

    from streamify.models.presets import preset
    from streamify.training.console import quiet_lightning
    from streamify.training.dataset import prepare, split_files
    from streamify.training.module import RaveTraining

    if config.precision.startswith("16"):
        # the discriminators' optimizer steps outside Lightning (one step per batch), so no gradient scaler
        raise ValueError(f"precision {config.precision!r} is not supported: use bf16-mixed or 32-true")
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    check_run_folder(config)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = last_checkpoint(out) if config.resume else None
    if ckpt_path is not None:
        problem = resume_problem(ckpt_path)
        if problem is not None:
            raise ValueError(problem)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1))
    spec = preset(config.preset)
    prepared = prepare(Path(config.data_dir), out / "data", spec.sample_rate)
    train_files, val_files = split_files(prepared, config.validation_fraction)
    length = whole_frames(config.window, spec.sample_rate, spec.ratio)
    val_length = whole_frames(config.validation_seconds, spec.sample_rate, spec.ratio)

    L.seed_everything(config.seed, workers=True, verbose=False)
    module = RaveTraining(
        preset=config.preset,
        causal=config.causal,
        learning_rate=config.learning_rate,
        beta=config.beta,
        beta_warmup=config.beta_warmup,
        phase2_step=config.phase2_step,
        seed=config.seed,
    )
    with quiet_lightning():
        trainer = _trainer(config, out, callbacks)
        train_loader, val_loader = _loaders(
            config, module, trainer, prepared, train_files, val_files, length, val_length
        )
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt_path) if ckpt_path else None)
        # the state it stopped in (max_steps or max_time), whatever the checkpoint interval: resume continues here
        trainer.save_checkpoint(out / "checkpoints" / "last.ckpt")
    return trainer


def resume_problem(path: Path) -> Optional[str]:
    """Why the checkpoint ``path`` cannot be resumed from (empty, truncated, unreadable), with what to do; None
    when it loads."""
    from streamify.models.torch_files import load_tensors, unreadable

    try:
        load_tensors(path)
        return None
    except Exception as error:  # unpickling errors, truncated archives: see unreadable()
        reason = unreadable(path, error)

    def step_of(candidate: Path) -> int:
        found = re.match(r"step(\d+)", candidate.name)
        return int(found.group(1)) if found else -1

    earlier = sorted((p for p in path.parent.glob("step*.ckpt") if p.stat().st_size > 0), key=step_of)
    fix = (
        f"copy the newest earlier checkpoint over it (cp {earlier[-1]} {path}) and resume again, or " if earlier else ""
    )
    return f"--resume: {path} {reason}; {fix}start over without --resume in another --out folder"


def _trainer(config: TrainConfig, out: Path, extra_callbacks: Sequence[Any]):
    """The Lightning Trainer of a run: devices and strategy, checkpoints (every ``checkpoint_every`` steps and
    the last), TensorBoard logs under ``out/logs``, validation every ``val_every`` steps."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from streamify.training.console import StepProgress

    devices = config.devices
    strategy = "auto"
    if devices > 1:
        from lightning.pytorch.strategies import DDPStrategy

        backend = "nccl" if config.accelerator in ("gpu", "cuda") else "gloo"
        strategy = DDPStrategy(find_unused_parameters=True, process_group_backend=backend)
    callbacks = [
        ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="step{step}",
            auto_insert_metric_name=False,
            every_n_train_steps=config.checkpoint_every,
            save_top_k=-1,
            save_last=True,
        )
    ]
    if config.progress:
        callbacks.append(StepProgress())
    callbacks += list(extra_callbacks)
    return L.Trainer(
        default_root_dir=out,
        accelerator=config.accelerator,
        devices=devices,
        strategy=strategy,
        precision=config.precision,
        max_steps=config.max_steps,
        max_time=datetime.timedelta(minutes=config.max_minutes) if config.max_minutes > 0 else None,
        max_epochs=-1,
        logger=TensorBoardLogger(out, name="logs", version=""),
        callbacks=callbacks,
        val_check_interval=config.val_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=min(50, max(1, config.val_every)),
        use_distributed_sampler=False,
        enable_progress_bar=config.progress,
        enable_model_summary=False,
    )


def _loaders(
    config: TrainConfig,
    module: RaveTraining,
    trainer: Any,
    prepared: PreparedAudio,
    train_files: List[int],
    val_files: List[int],
    length: int,
    val_length: int,
) -> Tuple[DataLoader, DataLoader]:
    """The training loader (random windows of ``length`` samples, resumed at the module's step, split over ranks)
    and the validation loader (``validation_windows`` fixed windows of ``val_length`` samples)."""
    from torch.utils.data import DataLoader

    from streamify.training.dataset import AudioWindows, StepSampler

    sampler = StepSampler(
        config.batch_size,
        start=lambda: int(module.step_count.item()),
        ranks=lambda: (trainer.global_rank, trainer.world_size),
    )
    train_loader = DataLoader(
        AudioWindows(prepared, train_files, length, random=True, seed=config.seed),
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        drop_last=True,
    )
    val_windows = AudioWindows(prepared, val_files, val_length, random=False, count=config.validation_windows)
    val_loader = DataLoader(val_windows, batch_size=min(4, config.validation_windows), num_workers=0)
    return train_loader, val_loader
