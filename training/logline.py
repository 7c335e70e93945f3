"""A periodic progress line for training whose output is not a terminal (a log file, journald,
a CI job): the progress bar draws nothing readable there.

Every ``every_s`` seconds of training, one INFO line::

    step 120/400 (30 %), 1.52 steps/s, ETA 3 min 04 s, loss 0.1834 (photo 0.1502, smooth 0.0331)

The rate is measured over the steps since the previous line; the ETA divides the steps left
(``max_steps``, else ``max_epochs`` x batches per epoch) by it, or the time left when only
``max_time`` bounds the run, whichever ends first. The terms are the ``train/*`` values the
module logged (at most :data:`MAX_TERMS` besides the loss, largest first).
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, TextIO

import lightning.pytorch as pl

__all__ = ["MAX_TERMS", "PeriodicLogLine", "format_duration", "wants_log_lines"]

MAX_TERMS = 4
_log = logging.getLogger("depth_ros_training.progress")


def wants_log_lines(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default stderr) is not a terminal: the progress bar cannot be read."""
    stream = sys.stderr if stream is None else stream
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced stream
        return True


def format_duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"3 min 04 s"``, ``"42 s"``; ``"?"`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class PeriodicLogLine(pl.Callback):
    """Logs one progress line every ``every_s`` seconds of training (see the module docstring).

    Args:
        every_s: seconds between lines (> 0).
        clock: the time source (tests); ``time.monotonic``.

    Raises:
        ValueError: ``every_s`` not a positive finite number.
    """

    def __init__(self, every_s: float = 30.0, clock: Any = time.monotonic) -> None:
        if not (isinstance(every_s, (int, float)) and math.isfinite(every_s) and every_s > 0):
            raise ValueError(f"every_s must be a positive number of seconds, got {every_s!r}")
        self.every_s = float(every_s)
        self._clock = clock
        self._last_t = 0.0
        self._last_step = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_t = self._clock()
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = self._clock()
        if now - self._last_t < self.every_s or not trainer.is_global_zero:
            return
        line = self.line(trainer, now)
        self._last_t, self._last_step = now, trainer.global_step
        _log.info("%s", line)

    def total_steps(self, trainer: pl.Trainer) -> int | None:
        """The run's step budget, when it has one."""
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return int(trainer.max_steps)
        batches = trainer.num_training_batches
        if trainer.max_epochs is not None and trainer.max_epochs > 0 and isinstance(batches, int):
            per_epoch = max(1, batches // max(1, trainer.accumulate_grad_batches))
            return int(trainer.max_epochs) * per_epoch
        return None

    def line(self, trainer: pl.Trainer, now: float) -> str:
        """The progress line at time ``now`` (see the module docstring)."""
        step = trainer.global_step
        elapsed = now - self._last_t
        rate = (step - self._last_step) / elapsed if elapsed > 0 else float("nan")
        total = self.total_steps(trainer)
        eta = float("nan")
        if total is not None and rate > 0:
            eta = (total - step) / rate
        time_left = _time_left(trainer)
        if time_left is not None:
            eta = time_left if not math.isfinite(eta) else min(eta, time_left)
        head = f"step {step}/{total} ({100.0 * step / total:.0f} %)" if total else f"step {step}"
        parts = [head, f"{rate:.2f} steps/s" if math.isfinite(rate) else "? steps/s", f"ETA {format_duration(eta)}"]
        metrics = {k[len("train/"):]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        loss = metrics.pop("loss", None)
        if loss is not None:
            terms = sorted(((k, v) for k, v in metrics.items() if math.isfinite(v) and k != "lr"), key=lambda kv: -abs(kv[1]))[:MAX_TERMS]
            text = f"loss {loss:.4g}"
            if terms:
                text += " (" + ", ".join(f"{k} {v:.4g}" for k, v in terms) + ")"
            parts.append(text)
        return ", ".join(parts)


def _time_left(trainer: pl.Trainer) -> float | None:
    """Seconds left under the Trainer's ``max_time`` (its Timer callback), or None."""
    from lightning.pytorch.callbacks import Timer

    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            left = callback.time_remaining("train")
            return None if left is None else max(0.0, float(left))
    return None
