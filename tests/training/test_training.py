"""streamify train on a tiny generated folder: the loss falls, checkpoints resume exactly, export, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
soundfile = pytest.importorskip("soundfile")

import lightning as L  # noqa: E402

from streamify.models import RAVE, load_checkpoint  # noqa: E402
from streamify.training.dataset import AudioWindows, StepSampler, prepare, split_files  # noqa: E402
from streamify.training.evaluate import held_out_distance  # noqa: E402
from streamify.training.train import TrainConfig, train  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """Four 2-second clips at 44.1 kHz (decaying tones and a little noise), and one file that is not audio."""
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    rate = 44100
    t = np.arange(2 * rate) / rate
    for i in range(4):
        frequency = 110 * 2 ** (rng.integers(0, 24) / 12)
        tone = 0.4 * np.sin(2 * np.pi * frequency * t) * np.exp(-4 * (t % 0.5))
        soundfile.write(folder / f"clip{i}.wav", (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32), rate)
    (folder / "notes.txt").write_text("not audio")
    return folder


class Losses(L.Callback):
    """Records the generator loss of every step."""

    def __init__(self) -> None:
        self.values: List[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


def _config(audio_dir: Path, out: Path, **changes) -> TrainConfig:
    base = dict(
        data_dir=str(audio_dir),
        out=str(out),
        batch_size=2,
        window=0.05,  # 3 latent frames of 512 samples
        learning_rate=1e-3,
        checkpoint_every=1000,
        val_every=1000,
        validation_seconds=0.1,
        validation_windows=2,
        accelerator="cpu",
        progress=False,
    )
    base.update(changes)
    return TrainConfig(**base)


def test_dataset_is_resampled_once_and_windows_are_reproducible(audio_dir: Path, tmp_path: Path) -> None:
    prepared = prepare(audio_dir, tmp_path / "data", 22050)
    assert len(prepared.files) == 4 and prepared.sample_rate == 22050
    assert prepared.lengths == [44100] * 4  # 2 s at 22.05 kHz
    assert prepared.samples.shape == (4 * 44100,)
    mtime = (tmp_path / "data" / "audio.f32").stat().st_mtime_ns
    assert prepare(audio_dir, tmp_path / "data", 22050).files == prepared.files
    assert (tmp_path / "data" / "audio.f32").stat().st_mtime_ns == mtime  # reused, not rewritten
    train_files, val_files = split_files(prepared, 0.25)
    assert sorted(train_files + val_files) == [0, 1, 2, 3] and val_files
    windows = AudioWindows(prepared, train_files, 1024, seed=3)
    assert windows[7].shape == (1, 1024)
    assert torch.equal(windows[7], AudioWindows(prepared, train_files, 1024, seed=3)[7])
    assert not torch.equal(windows[7], windows[8])
    sampler = StepSampler(2, start=lambda: 5, ranks=lambda: (1, 2))
    indices = iter(sampler)
    assert [next(indices) for _ in range(4)] == [22, 23, 26, 27]  # steps 5 and 6 of rank 1 of 2, batch 2


def test_unreadable_files_are_skipped_with_a_warning(audio_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav")
    (folder / "good.flac").symlink_to(audio_dir / "clip0.wav")  # soundfile reads by content, not suffix
    stereo = np.stack([np.zeros(4800), 0.5 * np.ones(4800)], axis=1).astype(np.float32)
    soundfile.write(folder / "stereo.flac", stereo, 48000)  # lossless: the mean is exact
    with pytest.warns(UserWarning, match="broken.wav"):
        prepared = prepare(folder, tmp_path / "data", 22050)
    assert prepared.files == ["good.flac", "stereo.flac"]
    assert prepared.lengths == [44100, 2205]
    assert abs(float(prepared.samples[44100 + 1000]) - 0.25) < 1e-3  # stereo mixed to mono
    (folder / "broken.wav").rename(folder / "only.wav")
    for name in ("good.flac", "stereo.flac"):
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match="no readable audio"), pytest.warns(UserWarning):
        prepare(folder, tmp_path / "other", 22050)


class HeldOut(L.Callback):
    """The held-out distance (:func:`held_out_distance`: fixed segments, posterior mean, no noise) of the model
    being trained, before its first step and after its last."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.before = self.after = float("nan")

    def on_train_start(self, trainer, module) -> None:
        self.before = held_out_distance(module.model, self.folder, segment_seconds=0.5)["distance"]

    def on_train_end(self, trainer, module) -> None:
        self.after = held_out_distance(module.model, self.folder, segment_seconds=0.5)["distance"]


def test_a_few_steps_reduce_the_loss(audio_dir: Path, tmp_path: Path) -> None:
    """Training reduces the loss, measured where nothing is drawn at random.

    The training loss of a step is that of 2 random windows of 50 ms: its mean over the first and the last 5
    steps moved between 0.74 and 0.85 of each other with the seed (0-3) and the thread count (1 or 2 change
    the sums' order), so a bar at 0.85 passed or failed by luck. The held-out distance of all the clips,
    cut in fixed 0.5 s segments and reconstructed from the posterior mean, fell to 0.75-0.79 of its start
    over the same runs: the bar below has a margin of several times that spread. Runs are deterministic
    (same seed, same losses: see the resume test).
    """
    losses, held_out = Losses(), HeldOut(audio_dir)
    train(_config(audio_dir, tmp_path / "run", max_steps=40, threads=1), callbacks=[losses, held_out])
    assert len(losses.values) == 40 and np.isfinite(losses.values).all()
    assert held_out.after < 0.9 * held_out.before, (held_out.before, held_out.after)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    model = load_checkpoint(checkpoint)
    assert isinstance(model, RAVE) and not model.training
    assert held_out_distance(model, audio_dir, segment_seconds=0.5)["distance"] == pytest.approx(
        held_out.after, rel=1e-3
    )  # the checkpoint holds the trained model (weight norm folded: float32 rounding)
    assert list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))


def test_a_folder_holding_a_run_is_continued_or_started_over_never_overwritten(audio_dir: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from streamify.cli import app

    run = tmp_path / "run"
    train(_config(audio_dir, run, max_steps=2, threads=1))
    last = run / "checkpoints" / "last.ckpt"
    kept = last.read_bytes()
    with pytest.raises(FileExistsError, match="--resume .* --overwrite"):
        train(_config(audio_dir, run, max_steps=1, threads=1))
    command = ["train", str(audio_dir), "--out", str(run), "--max-steps", "1", "--accelerator", "cpu", "--threads", "1"]
    result = CliRunner().invoke(app, [*command, "--no-progress"])
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("error:") and "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert last.read_bytes() == kept and sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    result = CliRunner().invoke(app, [*command, "--no-progress", "--resume", "--overwrite"])
    assert result.exit_code == 2 and "choose one" in result.output, result.output
    train(_config(audio_dir, run, max_steps=1, threads=1, overwrite=True))  # started over: step 1, nothing else
    assert torch.load(last, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert len(list((run / "logs").glob("events.out.tfevents.*"))) == 1


def test_resume_gives_the_same_next_losses(audio_dir: Path, tmp_path: Path) -> None:
    """Steps 0-1 spectral, 2-5 adversarial; a run stopped after step 3 and resumed matches an unbroken one."""
    unbroken = Losses()
    train(_config(audio_dir, tmp_path / "a", max_steps=6, phase2_step=2, threads=1), callbacks=[unbroken])
    train(_config(audio_dir, tmp_path / "b", max_steps=3, phase2_step=2, threads=1))
    state = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 3 and int(state["state_dict"]["step_count"]) == 3
    resumed = Losses()
    train(_config(audio_dir, tmp_path / "b", max_steps=6, phase2_step=2, threads=1, resume=True), callbacks=[resumed])
    assert len(resumed.values) == 3
    np.testing.assert_allclose(resumed.values, unbroken.values[3:], rtol=1e-5)


def test_resume_without_a_checkpoint_is_refused(audio_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(_config(audio_dir, tmp_path / "empty", max_steps=1, resume=True))


def test_validation_logs_audio_and_spectrograms_causal(audio_dir: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_config(audio_dir, tmp_path / "run", max_steps=2, val_every=2, threads=1, causal=True))
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").causal  # the causal variant trains too
    (events,) = (tmp_path / "run" / "logs").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"audio": 0, "images": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert "val/distance" in tags["scalars"]
    assert {"input/0", "reconstruction/0"} <= set(tags["audio"])
    assert "spectrogram" in tags["images"]


def test_checkpoint_exports_for_nn_tilde(audio_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streamify.cli import app
    from streamify.export.nn_tilde import read_info

    train(_config(audio_dir, tmp_path / "run", max_steps=1, threads=1))
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    output = tmp_path / "model.ts"
    args = ["export", str(checkpoint), "-o", str(output)]  # an autoencoder: encode, decode and forward by default
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    scripted = torch.jit.load(str(output))
    assert scripted.get_methods() == ["encode", "decode", "forward"]
    assert scripted.encode_params.tolist() == [1, 1, 16, 512]  # latent size and ratio, as RAVE's files
    assert scripted.decode_params.tolist() == [16, 512, 1, 1]
    assert scripted.forward_params.tolist() == [1, 1, 1, 1]
    assert read_info(output)["sample_rate"] == 22050


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(audio_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "streamify", "train", str(audio_dir), "--out", str(out), "--devices", "2"]
    command += ["--accelerator", "cpu", "--max-steps", "3", "--batch-size", "2", "--window", "0.05"]
    command += ["--threads", "1"]
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes (DDPStrategy)" in result.stderr, result.stderr[-3000:]
    assert "GLOBAL_RANK" not in result.stderr + result.stdout  # Lightning's rank lines stay quiet
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 3 and int(state["state_dict"]["step_count"]) == 3


def test_train_command_errors_are_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streamify.cli import app

    result = CliRunner().invoke(app, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "is not a folder" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["train", str(empty), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "no audio file" in result.output
    result = CliRunner().invoke(app, ["train", str(empty), "--out", str(tmp_path / "run"), "--precision", "16-mixed"])
    assert result.exit_code == 2
    assert "bf16-mixed" in result.output
