"""Short training runs on synthetic bags: learning lowers the depth error, velocity
supervision makes it metric, resume continues from the saved step."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from depth_ros.synthetic import SynthConfig
from depth_ros_training.data import BagSequenceDataset, DataConfig
from depth_ros_training.datamodule import BagDataModule
from depth_ros_training.eval.metrics import compute_depth_metrics, mean_metrics
from depth_ros_training.module import DepthTrainingModule

from bagfactory import write_test_bag
from step_probe import StartStep

pytestmark = pytest.mark.slow


def _trainer(tmp_path, max_steps: int, callbacks=(), checkpoint: bool = False, clip: float | None = None) -> pl.Trainer:
    kw = dict(
        gradient_clip_val=clip,
        max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=str(tmp_path),
        callbacks=list(callbacks),
    )
    if checkpoint:
        kw["callbacks"].append(pl.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True, every_n_train_steps=1))
    else:
        kw["enable_checkpointing"] = False
    return pl.Trainer(**kw)


def test_resume_continues_from_the_saved_step(tmp_path):
    bag = write_test_bag(tmp_path / "train.mcap", SynthConfig(width=128, height=64, frames=10, lidar_beams=0, seed=4))
    data = DataConfig(bags=(str(bag),), height=64, width=128, val_fraction=0.0)
    torch.manual_seed(0)
    model = DepthTrainingModule(image_height=64, image_width=128, lr_schedule="onecycle")
    _trainer(tmp_path, 2, checkpoint=True).fit(model, BagDataModule(data, batch_size=2))
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2
    rec = StartStep()
    resumed = DepthTrainingModule(image_height=64, image_width=128, lr_schedule="onecycle")
    trainer = _trainer(tmp_path, 3, callbacks=[rec])
    trainer.fit(resumed, BagDataModule(data, batch_size=2), ckpt_path=str(ckpt))
    assert rec.start_step == 2 and rec.steps_run == 1 and trainer.global_step == 3
    # the optimizer and scheduler state came back too: Adam's step count continues
    opt_state = trainer.optimizers[0].state_dict()["state"]
    assert int(next(iter(opt_state.values()))["step"]) == 3


def _evaluate(model: DepthTrainingModule, dataset: BagSequenceDataset) -> dict[str, float]:
    model.eval()
    out = {"median": [], "metric": []}
    with torch.no_grad():
        for i in range(len(dataset)):
            s = dataset[i]
            _, depth = model.predict_depth(s["tgt"][None])
            for mode in out:
                m = compute_depth_metrics(depth[0, 0].numpy(), s["gt_depth_m"][0].numpy(), median_scaling=mode == "median")
                out[mode].append(m)
    return {mode: mean_metrics(v).abs_rel for mode, v in out.items()}


def test_short_training_learns_metric_depth(tmp_path):
    """100 steps of 4 samples at 64x192 on a corridor (the demo's settings before depth hints:
    odometry warps, PoseNet on one source per sample, mirrored and colour-jittered samples,
    geometry consistency on); evaluated on the held-out time segments.

    Training this short from random weights is chaotic: the same seed gave trained AbsRel 0.38
    on one CPU and 0.47 on another. At a one-cycle peak rate of 1e-3, as this test once ran, on
    a CPU with AMX two seeds of three (0 and 1) drove the disparity sigmoid into saturation near
    the peak (steps 30-40: every pixel at min or max depth, no gradient left; trained
    median-scaled AbsRel 0.581, the untrained network's constant-depth figure), seed 2 reached
    0.243 / 0.272. At 5e-4 the same CPU gave 0.273 / 0.293, 0.340 / 0.361, 0.303 / 0.351 (seeds
    0, 1, 2; untrained 0.581 / 0.498). Three seeds are trained and the middle run (by
    median-scaled AbsRel) must have learned, so one chaotic seed on one CPU decides nothing.
    Without median scaling the error stays within 0.1 of the median-scaled one: the scale comes
    from odometry.
    """
    synth = SynthConfig(width=192, height=64, lidar_beams=0, speed_mps=1.0, rate_hz=10.0, frames=80, seed=21)
    bag = write_test_bag(tmp_path / "train.mcap", synth)
    data = DataConfig(bags=(str(bag),), height=64, width=192, stride=2, val_fraction=0.25, segment_s=2.0, hflip=True, color_jitter=0.2)
    val_set = BagSequenceDataset(data, "val")
    kw = dict(image_height=64, image_width=192, lr=5e-4, lr_schedule="onecycle", velocity_weight=1.0, pose_supervision_weight=1.0,
              warp_pose_source="odometry", pose_pairs="one", pose_from_inverse=True, source_depth_grad=False, init_depth_m=3.0,
              min_depth_m=0.5, max_depth_m=30.0)
    runs = []
    for seed in (0, 1, 2):
        pl.seed_everything(seed)
        model = DepthTrainingModule(**kw)
        before = _evaluate(model, val_set)
        _trainer(tmp_path / f"seed{seed}", 100, clip=1.0).fit(model, BagDataModule(data, batch_size=4))
        after = _evaluate(model, val_set)
        print(f"seed {seed}: AbsRel on held-out segments: untrained {before}, trained {after}")
        runs.append((after["median"], seed, before, after))
    _, seed, before, after = sorted(runs)[1]
    assert after["median"] < 0.75 * before["median"], runs
    assert after["metric"] < 0.5 and abs(after["metric"] - after["median"]) < 0.1, runs
