"""A Lightning callback measuring the wall time of training steps."""
from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import Callback

__all__ = ["StepTimer"]


class StepTimer(Callback):
    """Wall time of each training step (seconds, from batch start to batch end, in ``times``)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.times.append(time.perf_counter() - self._t0)
