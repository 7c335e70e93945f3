"""What a training run prints: the epoch counter of a run bounded by time or steps, and no
advertising tips from Lightning."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import lightning.pytorch as pl
import pytest

from depth_ros_training.callbacks import EpochProgressBar, tidy_lightning_output


@pytest.mark.parametrize(("max_epochs", "expected"), [(-1, "Epoch 3"), (5, "Epoch 3/4")])
def test_epoch_description(max_epochs: int, expected: str) -> None:
    bar = EpochProgressBar()
    trainer = pl.Trainer(max_epochs=max_epochs, max_steps=10, callbacks=[bar], logger=False, enable_checkpointing=False,
                         enable_model_summary=False)
    bar.setup(trainer, pl.LightningModule(), "fit")
    assert bar._get_train_description(3).strip() == expected


def test_lightning_tips_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    tidy_lightning_output()
    tidy_lightning_output()  # idempotent
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert sum(type(f).__name__ == "_NoTips" for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        pl.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_model_summary=False)
    messages = [r.getMessage() for r in caplog.records]
    assert any("GPU available" in m for m in messages), messages  # Lightning's own information stays
    assert not any("Tip:" in m for m in messages), messages


def test_training_output_prints_each_message_once() -> None:
    """As the command-line tools set it up: Lightning's messages appear once, in our format,
    without tips; the exporter's optimisation passes are quiet below --verbose."""
    script = textwrap.dedent("""\
        import logging
        from depth_ros.logsetup import configure_logging
        configure_logging()
        import lightning.pytorch as pl
        from depth_ros_training.callbacks import tidy_lightning_output
        tidy_lightning_output()
        pl.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_model_summary=False)
        logging.getLogger("onnxscript.rewriter").info("Applied 40 of general pattern rewrite rules.")
        logging.getLogger("depth_ros.demo").info("ours")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    gpu = [line for line in lines if "GPU available" in line]
    assert gpu == ["INFO lightning.pytorch.utilities.rank_zero: GPU available: False, used: False"], lines
    assert "INFO depth_ros.demo: ours" in lines, lines
    assert not any("Tip:" in line or "rewrite rules" in line for line in lines), lines
