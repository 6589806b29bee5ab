"""What ``streamify train`` shows: the steps of this run out of the steps asked for, and nothing of Lightning's noise.

:class:`StepProgress` is a Lightning progress bar (a :class:`lightning.pytorch.callbacks.ProgressBar`,
so the Trainer uses it instead of its own) that counts optimisation steps, a step being one batch
(``trainer.global_step``): ``step 75/90`` with a bar of the 30 steps this run was asked for when it
resumed at step 60, the latest loss and the elapsed time; on stderr, and one line every tenth of the
run when stderr is not a terminal. :func:`quiet_lightning` drops what Lightning says that is not
about this run: the hardware lines, tips about other products, notices of its own internals.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterator, Optional

from lightning.pytorch.callbacks import ProgressBar
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

#: Lightning warnings about its own internals or other products, not about the user's run
NOISE = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r"Using ModelCheckpoint with manual optimization.*",
    r".*litlogger.*",
    r".*LitModelCheckpoint.*",
)


#: the loggers Lightning says its info lines through (the unified package's names and the standalone packages')
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's info lines (hardware, tips, "`Trainer.fit` stopped") off and its internal notices filtered,
    inside the block; its warnings about the run itself stay."""
    # Lightning says its info lines through both its trainer's loggers and its fabric's (rank_zero_info): they
    # reach a root handler where the host configured one (a logging setup, Ray), not only Lightning's own
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class StepProgress(ProgressBar):
    """Steps of this run out of the steps asked for (see the module docstring).

    ``console``: where to draw (default: stderr). Without a terminal, one line per tenth of the run.
    """

    def __init__(self, console: Optional[Console] = None) -> None:
        super().__init__()
        self.console = console or Console(stderr=True, highlight=False)
        self._enabled = True
        self._progress: Optional[Progress] = None
        self._task: Optional[TaskID] = None
        self.start_step = 0
        self._said = -1

    # Lightning's progress-bar interface
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _total(self, trainer: Any) -> Optional[int]:
        return trainer.max_steps - self.start_step if trainer.max_steps and trainer.max_steps > 0 else None

    def describe(self, trainer: Any, loss: Optional[float] = None) -> str:
        """``step 75/90 (15 of 30 this run), loss 3.2100`` (no limit: ``step 75 (15 this run)``)."""
        step, done, total = trainer.global_step, trainer.global_step - self.start_step, self._total(trainer)
        text = (
            f"step {step}/{trainer.max_steps} ({done} of {total} this run)"
            if total
            else f"step {step} ({done} this run)"
        )
        return text + (f", loss {loss:.4f}" if loss is not None else "")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.start_step = trainer.global_step
        if not self._enabled or trainer.global_rank != 0:
            return
        if self.start_step:
            self.console.print(f"resumed at step {self.start_step}")
        if trainer.world_size > 1:  # Lightning's own rank lines are quieted: say that the run is distributed
            self.console.print(f"{trainer.world_size} processes ({type(trainer.strategy).__name__})")
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=self.console
            )
            self._progress.start()
            self._task = self._progress.add_task(self.describe(trainer), total=self._total(trainer))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._enabled or trainer.global_rank != 0:
            return
        loss = self.get_metrics(trainer, pl_module).get("loss")
        text = self.describe(trainer, float(loss) if isinstance(loss, (int, float)) else None)
        done, total = trainer.global_step - self.start_step, self._total(trainer)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, description=text)
            return
        tenth = done * 10 // total if total else done // 100
        if tenth != self._said:  # no terminal: a line per tenth of the run (per 100 steps without a limit)
            self._said = tenth
            self.console.print(text)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop()
        if self._enabled and trainer.global_rank == 0:
            self.console.print(f"stopped at {self.describe(trainer)}")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
