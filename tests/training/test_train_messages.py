"""What ``streamify train`` says: steps of this run out of the steps asked for, no Lightning noise, and a resume
from a damaged checkpoint refused in one line that says what happened and what to do."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

L = pytest.importorskip("lightning")
pytest.importorskip("soundfile")

from rich.console import Console  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from streamify.cli import app  # noqa: E402
from streamify.training.console import StepProgress, quiet_lightning  # noqa: E402
from streamify.training.train import resume_problem  # noqa: E402


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).square().mean()
        self.log("loss", loss, prog_bar=True, logger=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(folder: Path, max_steps: int, resume: bool, caplog) -> str:
    """Fit :class:`Tiny` to ``max_steps`` (from ``folder/last.ckpt`` when ``resume``), as train() does; the
    progress lines (a console that is not a terminal)."""
    text = io.StringIO()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)
    with quiet_lightning():
        trainer = L.Trainer(
            max_steps=max_steps,
            max_epochs=-1,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            callbacks=[StepProgress(Console(file=text, highlight=False, width=200))],
            default_root_dir=folder,
            accelerator="cpu",
        )
        trainer.fit(Tiny(), data, ckpt_path=str(folder / "last.ckpt") if resume else None)
        trainer.save_checkpoint(folder / "last.ckpt")
    return text.getvalue()


def test_progress_counts_the_steps_of_this_run_and_lightning_stays_quiet(tmp_path, caplog, recwarn) -> None:
    caplog.set_level(logging.INFO)
    first = _fit(tmp_path, 6, False, caplog)
    assert "step 6/6 (6 of 6 this run)" in first and "stopped at step 6/6" in first, first
    second = _fit(tmp_path, 9, True, caplog)
    assert "resumed at step 6" in second
    assert "step 7/9 (1 of 3 this run)" in second and "stopped at step 9/9 (3 of 3 this run)" in second, second
    assert "Epoch" not in first + second and "-2" not in first + second
    said = caplog.text + " ".join(str(w.message) for w in recwarn)
    for noise in ("GPU available", "TPU available", "Tip:", "litlogger", "LeafSpec", "weights_only", "stopped: "):
        assert noise not in said, noise


def _damaged(tmp_path: Path, how: str) -> Path:
    run = tmp_path / how
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.zeros(3)}}, run / "checkpoints" / "step500.ckpt")
    data = (run / "checkpoints" / "step500.ckpt").read_bytes()
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(b"" if how == "empty" else data[: len(data) // 2])
    return run


@pytest.mark.parametrize("how, said", [("empty", "is empty (0 bytes)"), ("truncated", "is truncated")])
def test_resume_from_a_damaged_checkpoint_says_what_happened(tmp_path, how: str, said: str) -> None:
    run = _damaged(tmp_path, how)
    problem = resume_problem(run / "checkpoints" / "last.ckpt")
    assert said in problem and "step500.ckpt" in problem and "without --resume" in problem, problem
    assert resume_problem(run / "checkpoints" / "step500.ckpt") is None
    (tmp_path / "audio").mkdir(exist_ok=True)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "audio"), "--out", str(run), "--resume"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --resume:") and said in lines[0], result.output
    assert "bug" not in lines[0] and "Aborted" not in result.output
