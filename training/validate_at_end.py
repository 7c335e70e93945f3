"""Validation when training ends, whatever the validation interval.

Lightning validates every ``val_check_interval`` (steps, a share of an epoch, or wall-clock
time); a run that ends on ``max_steps`` or ``max_epochs`` between two checks ends unvalidated
and without its after-validation checkpoint (with ``val_check_interval: 1000`` a 40-step run was
never validated). :class:`ValidateAtEnd` asks the loop to stop at its last step instead, which
runs one validation there (the loop's early-stop path, as ``max_time`` already does), and the
after-validation checkpoint follows it.
"""
from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["ValidateAtEnd", "is_last_step"]


def is_last_step(global_step: int, max_steps: int | None, epoch: int, max_epochs: int | None, last_batch: bool) -> bool:
    """Whether the step just taken is the run's last one: ``max_steps`` reached (> 0), or the last
    batch of epoch ``max_epochs - 1`` (epochs count from 0; None / -1: unbounded)."""
    if max_steps is not None and max_steps > 0 and global_step >= max_steps:
        return True
    return max_epochs is not None and max_epochs > 0 and last_batch and epoch + 1 >= max_epochs


class ValidateAtEnd(Callback):
    """Sets ``trainer.should_stop`` after the last training step (:func:`is_last_step`), so the
    training loop validates there before it ends."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        last_batch = bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        if is_last_step(trainer.global_step, trainer.max_steps, trainer.current_epoch, trainer.max_epochs, last_batch):
            trainer.should_stop = True
