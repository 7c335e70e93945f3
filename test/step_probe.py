"""A Lightning callback that records where a fit started and how many steps it ran (the resume
tests of test/robustness/test_train_cli.py and test/training/test_train_run.py)."""
from __future__ import annotations

import lightning.pytorch as pl


class StartStep(pl.Callback):
    """``start_step``: the trainer's global step when training started (None before);
    ``steps_run``: training batches run since."""

    def __init__(self) -> None:
        self.start_step: int | None = None
        self.steps_run = 0

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.start_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.steps_run += 1
