"""Stop training at a wall-clock deadline, validation included.

Lightning's ``max_time`` counts the training stage only: with validation on, a run asked for
4 minutes trained 4 minutes and validated on top (324 s in all, measured). A run promised in
wall-clock minutes (``depth-ros-train adapt --minutes``) stops here instead, and the training
loop then validates once more and ends.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["StopAtDeadline"]


class StopAtDeadline(Callback):
    """Sets ``trainer.should_stop`` after the first training step that ends at or past
    ``deadline`` (a ``clock()`` value, seconds; ``time.perf_counter`` by default)."""

    def __init__(self, deadline: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.deadline = deadline
        self.clock = clock

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.clock() >= self.deadline:
            trainer.should_stop = True
