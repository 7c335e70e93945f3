"""The periodic progress line of training without a terminal (training/logline.py)."""
from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
import torch

from depth_ros_training.logline import PeriodicLogLine, format_duration, wants_log_lines


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _trainer(step: int, **kw):
    base = dict(global_step=step, max_steps=400, max_epochs=None, num_training_batches=50, accumulate_grad_batches=1,
                callbacks=[], is_global_zero=True,
                callback_metrics={"train/loss": torch.tensor(0.18341), "train/photo": torch.tensor(0.1502),
                                  "train/smooth": torch.tensor(0.0331), "val/loss": torch.tensor(9.0)})
    base.update(kw)
    return SimpleNamespace(**base)


def test_format_duration():
    assert [format_duration(s) for s in (42.4, 184, 7500, float("nan"), -1)] == ["42 s", "3 min 04 s", "2 h 05 min", "?", "?"]


def test_line_rate_eta_and_terms():
    clock = _Clock()
    cb = PeriodicLogLine(every_s=30, clock=clock)
    cb.on_train_start(_trainer(0), None)
    clock.t += 80.0  # 120 steps in 80 s: 1.5 steps/s, 280 left: 187 s
    line = cb.line(_trainer(120), clock.t)
    assert line == "step 120/400 (30 %), 1.50 steps/s, ETA 3 min 07 s, loss 0.1834 (photo 0.1502, smooth 0.0331)"


def test_epoch_budget_and_unknown_budget():
    clock = _Clock()
    cb = PeriodicLogLine(every_s=1, clock=clock)
    cb.on_train_start(_trainer(0), None)
    clock.t += 10.0
    assert cb.line(_trainer(10, max_steps=-1, max_epochs=2, num_training_batches=25), clock.t).startswith("step 10/50 (20 %), 1.00 steps/s, ETA 40 s")
    assert cb.line(_trainer(10, max_steps=-1, max_epochs=-1, num_training_batches=float("inf")), clock.t).startswith("step 10, 1.00 steps/s, ETA ?")


def test_logs_once_per_interval(caplog):
    clock = _Clock()
    cb = PeriodicLogLine(every_s=30, clock=clock)
    cb.on_train_start(_trainer(0), None)
    with caplog.at_level(logging.INFO, logger="depth_ros_training.progress"):
        for step in range(1, 100):
            clock.t += 1.0
            cb.on_train_batch_end(_trainer(step), None, None, None, step)
    lines = [r.getMessage() for r in caplog.records if r.name == "depth_ros_training.progress"]
    assert [line.split(",")[0] for line in lines] == ["step 30/400 (8 %)", "step 60/400 (15 %)", "step 90/400 (22 %)"]


def test_only_without_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_log_lines(io.StringIO()) and not wants_log_lines(Tty())
    with pytest.raises(ValueError, match="every_s"):
        PeriodicLogLine(every_s=0)
