"""``streamify train DATA_DIR --out RUN_DIR``: the command line of :func:`streamify.training.train.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def train_command(
    data_dir: Annotated[
        Path, typer.Argument(help="Folder of audio files (any format soundfile reads), searched recursively.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder: dataset cache, checkpoints, TensorBoard logs.")],
    preset: Annotated[
        str, typer.Option(help="Model preset: small (22.05 kHz) or v2 (48 kHz, 31.5 M parameters).")
    ] = "small",
    causal: Annotated[bool, typer.Option("--causal", help="Train the causal variant (left padding only).")] = False,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (batches); -1: no limit.")] = -1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN_DIR/checkpoints/last.ckpt.")] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Start over in a RUN_DIR that holds a run: deletes its checkpoints and logs."),
    ] = False,
    max_minutes: Annotated[float, typer.Option(min=0.0, help="Stop after this many minutes (0: no limit).")] = 0.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step and process.")] = 8,
    window: Annotated[float, typer.Option(min=0.01, help="Seconds of audio per example.")] = 0.5,
    learning_rate: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 3e-4,
    phase2_step: Annotated[int, typer.Option(min=0, help="Step at which the adversarial phase starts.")] = 1_000_000,
    beta: Annotated[float, typer.Option(min=0.0, help="Weight of the KL divergence after its warm-up.")] = 0.01,
    beta_warmup: Annotated[int, typer.Option(min=0, help="Steps of the KL weight's warm-up.")] = 2000,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = 500,
    val_every: Annotated[
        int, typer.Option(min=1, help="Steps between validations (audio and spectrograms logged).")
    ] = 500,
    accelerator: Annotated[str, typer.Option(help="auto, cpu or gpu (Lightning accelerator).")] = "auto",
    devices: Annotated[int, typer.Option(min=1, help="Processes / GPUs (DDP when more than one).")] = 1,
    precision: Annotated[str, typer.Option(help="Lightning precision: 32-true or bf16-mixed.")] = "32-true",
    threads: Annotated[Optional[int], typer.Option(min=1, help="Torch CPU threads per process.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader worker processes.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the weights, the data order and the noise.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    r"""Train a RAVE-style model on a folder of audio (PyTorch Lightning: checkpoints, resume, TensorBoard, DDP).

    Needs the 'train' extra: pip install 'streamify\[train]'. Checkpoints go to RUN_DIR/checkpoints
    (last.ckpt is the newest). A RUN_DIR that holds a run is refused unless --resume (continue) or
    --overwrite (start over); 'streamify export RUN_DIR/checkpoints/last.ckpt' makes an nn~ file of it.
    """
    try:
        import lightning  # noqa: F401
        import soundfile  # noqa: F401
        import soxr  # noqa: F401

        from streamify.training.train import TrainConfig, train
    except ImportError as error:
        from streamify.cli_errors import fail
        from streamify.extras import install_line, missing_message

        fail(
            missing_message(error.name, "train")
            or f"streamify train cannot import {error.name}: {install_line('train')}"
        )
    from streamify.models.presets import PRESETS

    if preset not in PRESETS:
        typer.echo(f"error: unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}", err=True)
        raise typer.Exit(code=2)
    if not data_dir.is_dir():
        typer.echo(f"error: {data_dir} is not a folder", err=True)
        raise typer.Exit(code=2)
    config = TrainConfig(
        data_dir=str(data_dir),
        out=str(out),
        preset=preset,
        causal=causal,
        max_steps=max_steps,
        max_minutes=max_minutes,
        batch_size=batch_size,
        window=window,
        learning_rate=learning_rate,
        beta=beta,
        beta_warmup=beta_warmup,
        phase2_step=phase2_step,
        val_every=val_every,
        checkpoint_every=checkpoint_every,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        threads=threads or 0,
        workers=workers,
        seed=seed,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
    )
    try:
        train(config)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error


def register(app: typer.Typer) -> None:
    """Add ``train`` to the ``streamify`` app."""
    app.command("train")(train_command)
