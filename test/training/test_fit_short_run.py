"""``depth-ros-train fit --config config/train.yaml`` works for a run of any length: validation
every few minutes of training (not every N steps) and once more at the last step."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from depth_ros.synthetic import SynthConfig
from depth_ros_training.cli import main
from depth_ros_training.validate_at_end import is_last_step

from bagfactory import write_test_bag

TRAIN_YAML = Path(__file__).resolve().parents[2] / "config" / "train.yaml"


def test_last_step_by_steps_or_epochs():
    assert is_last_step(40, 40, 0, None, False)
    assert not is_last_step(39, 40, 0, None, True)  # an epoch ends, the run does not (max_epochs unbounded)
    assert is_last_step(7, -1, 2, 3, True) and not is_last_step(7, -1, 1, 3, True) and not is_last_step(7, -1, 2, 3, False)
    assert not is_last_step(10**6, -1, 10**3, -1, True)  # unbounded: only max_time ends it


def test_shipped_config_validates_by_time_not_by_step_count():
    import lightning.pytorch as pl

    trainer_cfg = yaml.safe_load(TRAIN_YAML.read_text())["trainer"]
    assert trainer_cfg["check_val_every_n_epoch"] is None
    keys = {k: trainer_cfg[k] for k in ("val_check_interval", "check_val_every_n_epoch", "max_steps")}
    trainer = pl.Trainer(**keys, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False)
    # every 5 minutes of training, whatever an epoch's length (1000 steps was never reached by a short run)
    assert trainer._val_check_time_interval == pytest.approx(300.0)


@pytest.mark.slow
def test_a_short_fit_with_the_shipped_config_is_validated_and_checkpointed(tmp_path, caplog):
    # a 4:3 camera under a 3:1 input: trained, with a warning naming the size that keeps the aspect
    bag = write_test_bag(tmp_path / "train.mcap", SynthConfig(width=128, height=96, frames=30, lidar_beams=0, texture_size_px=64, seed=4))
    root = tmp_path / "runs"
    argv = [
        "fit", "--config", str(TRAIN_YAML), "--data.data.bags", f"[{bag}]", "--data.data.height", "64", "--data.data.width", "192",
        "--data.data.segment_s", "0.5", "--data.num_workers", "0", "--data.batch_size", "2", "--trainer.max_steps", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root), "--checkpoint.every_minutes", "null",
    ]
    with caplog.at_level(logging.WARNING, logger="depth_ros_training.cli"):
        assert main(argv) == 0
    assert any("stretches the camera's 128x96 images" in r.getMessage() and "--data.data.height 96 --data.data.width 128" in r.getMessage() for r in caplog.records)
    checkpoints = root / "lightning_logs" / "version_0" / "checkpoints"
    # the after-validation checkpoint of step 2: validation ran at the last step of a 2-step run
    assert (checkpoints / "epoch=0-step=2.ckpt").is_file(), sorted(p.name for p in checkpoints.iterdir())
