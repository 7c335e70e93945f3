"""``depth-ros demo``: the whole story on a synthetic scene, on the CPU, in minutes.

1. synthesize training bags and held-out test bags (other seeds: scenes never trained on);
2. train DispNet + PoseNet self-supervised (SC-Depth v1's photometric terms, depth hints from
   a plane sweep over the frames' motion) with velocity supervision from the bag's odometry, for a wall-clock budget (the learning-rate schedule runs on wall-clock time
   and the trainer stops at the budget, so a slower machine makes fewer steps, not a longer demo);
3. export depth.onnx / pose.onnx with their ModelSpec (metric, velocity_supervision);
4. run bag-to-bag inference on the test bags (``depth-ros infer``'s code path);
5. print AbsRel / delta1 against the test bags' ground-truth depth (over all their frames and
   per scene), median-scaled and metric, Depth Pro's boundary F1 and object-mask boundary
   recall, the flicker, and the inference FPS (the evaluation is ``depth-ros-train eval``'s
   library, :func:`~depth_ros_training.eval.evaluate.evaluate_predictions`).

Nothing is downloaded; everything is written under ``--workdir``.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from depth_ros.errors import BagError, InputError

__all__ = ["DemoSettings", "add_arguments", "eval_config", "evaluate_depth_bag", "run", "score_scenes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSettings:
    """The demo's compute plan (defaults: the full demo, ~5 min of training on 2 cores).

    Camera 384x128 (fx = 0.7 w), network input 64x192 (half resolution); the camera moves at
    1 m/s at 10 Hz and the source frames are +-2 frames away (``stride=2``). Sixteen 75-frame
    training corridors, three 100-frame test corridors with other seeds. Adam with a one-cycle
    schedule at a high peak rate (``lr``, the run is short and starts from random weights) for
    ``train_seconds`` of wall-clock time. Scale from odometry: velocity supervision (weight 1)
    plus the full odometry pose as PoseNet's target; the photometric terms warp with the bag's
    odometry poses (``warp_pose_source="odometry"``) and PoseNet sees one of the two sources per
    sample (``pose_pairs="one"``). No geometry term and no self-discovered mask, so the source
    frames' depths are not predicted; depth hints from a plane sweep (``hint_weight=2``); depth
    starts at ``init_depth_m``. Training samples are mirrored half the time and colour-jittered.

    Why these values, and the AbsRel each alternative measured: docs/training-notes.md.
    """

    camera_width: int = 384
    camera_height: int = 128
    net_height: int = 64
    net_width: int = 192
    train_frames: int = 75
    train_scenes: int = 16
    test_frames: int = 100
    test_scenes: int = 3
    rate_hz: float = 10.0
    speed_mps: float = 1.0
    scene: str = "corridor"
    stride: int = 2
    frame_offsets: tuple[int, ...] = (-1, 1)
    hint_offsets: tuple[int, ...] = ()
    batch_size: int = 4
    lr: float = 1e-3
    train_seconds: float = 300.0
    max_steps: int = -1
    velocity_weight: float = 1.0
    geometry_weight: float = 0.0
    smoothness_weight: float = 0.1
    source_depth_grad: bool = False
    pose_supervision_weight: float = 1.0
    warp_pose_source: str = "odometry"
    pose_pairs: str = "one"
    num_scales: int = 1
    hint_weight: float = 2.0
    network_dtype: str = "auto"
    self_mask: bool = False
    hflip: bool = True
    color_jitter: float = 0.2
    init_depth_m: float = 3.0
    min_depth_m: float = 0.5
    max_depth_m: float = 30.0
    train_seed: int = 0
    test_seed: int = 2001  # 1001-1005 were used to choose the settings above

    def __post_init__(self) -> None:
        if self.net_height % 32 or self.net_width % 32:
            raise InputError(f"network size must be multiples of 32, got {self.net_width}x{self.net_height}")
        if self.test_scenes < 1:
            raise InputError(f"test_scenes must be >= 1, got {self.test_scenes}")
        train = set(range(self.train_seed, self.train_seed + self.train_scenes))
        if train & set(range(self.test_seed, self.test_seed + self.test_scenes)):
            raise InputError("the test scenes must differ from the training scenes (use another seed)")
        if self.network_dtype not in ("auto", "float32", "bfloat16"):
            raise InputError(f"network_dtype must be auto|float32|bfloat16, got {self.network_dtype!r}")
        if not self.train_seconds > 0:
            raise InputError(f"train_seconds must be positive, got {self.train_seconds}")


QUICK = dict(camera_width=192, camera_height=64, net_height=64, net_width=192, train_frames=12, train_scenes=2, test_frames=8, test_scenes=1, stride=1, batch_size=2, train_seconds=60.0, max_steps=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="depth_ros_demo", help="directory for bags, checkpoint, models, results (default: ./depth_ros_demo)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds; metrics meaningless)")
    parser.add_argument("--train-seconds", type=float, default=None, help="training wall-clock budget in seconds (default 300)")
    parser.add_argument("--train-seed", type=int, default=None, help="seed of the training scene (default 0)")
    parser.add_argument("--test-seed", type=int, default=None, help="seed of the first held-out test scene (default 2001; the demo tests on 3 consecutive seeds)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")


def _settings(args: argparse.Namespace) -> DemoSettings:
    kwargs: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("train_seconds", "train_seed", "test_seed"):
        value = getattr(args, name, None)
        if value is not None:
            kwargs[name] = value
    return DemoSettings(**kwargs)


RANGE_EDGES_M = (0.0, 2.0, 5.0, 10.0)  # evaluation ranges: near obstacles, room scale, far; up to max depth
TEST_IMAGE_TOPIC = "/camera/image_raw"


def eval_config(max_depth_m: float = 80.0, pred_topic: str | None = None, truth_topic: str | None = None) -> Any:
    """The demo's :class:`~depth_ros_training.eval.evaluate.EvalConfig`: ``depth-ros-train
    eval``'s defaults with the demo's depth cap and ranges (boundary F1, the object mask's
    boundary recall and flicker on)."""
    from depth_ros_training.eval.evaluate import EvalConfig

    edges = tuple(e for e in RANGE_EDGES_M if e < max_depth_m) + (max_depth_m,)
    return EvalConfig(max_depth_m=max_depth_m, range_edges_m=edges, pred_topic=pred_topic, truth_topic=truth_topic)


def score_scenes(pairs: list[tuple[str | Path, str | Path]], max_depth_m: float = 80.0, pred_topic: str | None = None, truth_topic: str | None = None) -> dict[str, Any]:
    """Depth bags written by ``depth-ros infer`` against their truth bags, through
    ``depth-ros-train eval``'s library (:func:`~depth_ros_training.eval.evaluate.evaluate_predictions`):
    per-image means over the frames of all scenes, and per scene.

    Args:
        pairs: (prediction bag, truth bag) per scene.
        max_depth_m: truth farther than this is not evaluated.
        pred_topic, truth_topic: None: the only ``.../depth/image`` / the only depth truth.

    Returns:
        {"median": {abs_rel, delta1, ..., num_pixels, scale}, "metric": {...}, "median_by_range":
        {"0-2 m": {fraction, abs_rel, bias}, ...}, "metric_by_range": {...}, "frames": {"matched":
        n}, "boundary": {f1, precision, recall, frames} or None, "mask_boundary_recall": {recall,
        frames} or None, "flicker": {flicker, flicker_scaled, flicker_truth, pairs} or None,
        "scenes": [{"bag", "output", "frames", "median_abs_rel", "metric_abs_rel"}, ...]}
        (see :class:`~depth_ros_training.eval.metrics.RangeErrors`).

    Raises:
        DepthRosError: a topic is missing, no stamp matches, no valid pixel.
    """
    import numpy as np

    from depth_ros_training.eval.evaluate import evaluate_predictions

    report = evaluate_predictions(pairs, eval_config(max_depth_m, pred_topic, truth_topic), name="held-out scenes")
    summary = report.summary
    result: dict[str, Any] = {mode: {k: float(v) for k, v in summary[mode].items()} for mode in ("median", "metric")}
    for mode in ("median", "metric"):
        result[f"{mode}_by_range"] = summary[f"{mode}_by_range"]
    result["frames"] = {"matched": float(sum(b["frames"]["matched"] for b in report.bags))}
    for key in ("boundary", "mask_boundary_recall", "flicker"):
        result[key] = summary[key]
    result["scenes"] = []
    for (pred_bag, _), bag in zip(pairs, report.bags):
        rows = [r for r in report.frames if r["bag"] == bag["bag"]]
        result["scenes"].append({"bag": bag["bag"], "output": str(pred_bag), "frames": len(rows)} | {
            f"{mode}_abs_rel": float(np.mean([r[f"{mode}_abs_rel"] for r in rows])) if rows else float("nan") for mode in ("median", "metric")
        })
    return result


def evaluate_depth_bag(pred_bag: str | Path, gt_bag: str | Path, pred_topic: str = "/camera/depth/image", gt_topic: str = "/camera/depth/ground_truth", max_depth_m: float = 80.0) -> dict[str, Any]:
    """:func:`score_scenes` of one depth topic against one ground-truth topic (matched by header stamp)."""
    return score_scenes([(pred_bag, gt_bag)], max_depth_m, pred_topic, gt_topic)


def _synthesize(s: DemoSettings, workdir: Path) -> tuple[list[Path], list[Path]]:
    from depth_ros.synthetic import SynthConfig, write_bag

    common = dict(
        width=s.camera_width, height=s.camera_height, rate_hz=s.rate_hz, speed_mps=s.speed_mps,
        scene=s.scene, trajectory="forward", lidar_beams=0,
    )
    # several short scenes rather than one long one: the network must learn geometry, not one
    # corridor's layout
    train = [
        write_bag(SynthConfig(frames=s.train_frames, seed=s.train_seed + i, **common), workdir / f"train_{i}.mcap", overwrite=True)
        for i in range(s.train_scenes)
    ]
    # the test scenes carry the object mask for the boundary recall (a second Image topic: the
    # camera is then named, TEST_IMAGE_TOPIC)
    test = [
        write_bag(SynthConfig(frames=s.test_frames, seed=s.test_seed + i, object_mask=True, **common), workdir / ("test.mcap" if i == 0 else f"test_{i}.mcap"), overwrite=True)
        for i in range(s.test_scenes)
    ]
    return train, test


class _StepTimer:
    """Lightning callback measuring the wall time of training steps."""

    def __init__(self) -> None:
        from lightning.pytorch import Callback

        outer = self

        class _Cb(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
                outer._t0 = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
                outer.times.append(time.perf_counter() - outer._t0)

        self.times: list[float] = []
        self._t0 = 0.0
        self.callback = _Cb()


def _train(s: DemoSettings, train_bags: list[Path], workdir: Path, quiet: bool) -> tuple[Any, dict[str, Any]]:
    import lightning.pytorch as pl

    from depth_ros_training.callbacks import EpochProgressBar, tidy_lightning_output
    from depth_ros_training.data import DataConfig
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule, bf16_supported

    native_bf16 = bf16_supported()
    network_dtype = ("bfloat16" if native_bf16 else "float32") if s.network_dtype == "auto" else s.network_dtype
    log.info("networks train in %s (%s native bfloat16 on this CPU)", network_dtype, "with" if native_bf16 else "no")
    started = time.perf_counter()
    pl.seed_everything(0, workers=True, verbose=False)
    data = DataConfig(bags=tuple(str(b) for b in train_bags), height=s.net_height, width=s.net_width, stride=s.stride, frame_offsets=s.frame_offsets, hint_offsets=s.hint_offsets, val_fraction=0.0, require_odometry=True, cache_frames=True, hflip=s.hflip, color_jitter=s.color_jitter)
    dm = BagDataModule(data, batch_size=s.batch_size, num_workers=0)

    def model(schedule_seconds: float) -> DepthTrainingModule:
        return DepthTrainingModule(
            image_height=s.net_height, image_width=s.net_width, lr=s.lr, lr_schedule="onecycle", schedule_seconds=schedule_seconds,
            velocity_weight=s.velocity_weight, geometry_weight=s.geometry_weight, smoothness_weight=s.smoothness_weight,
            min_depth_m=s.min_depth_m, max_depth_m=s.max_depth_m, pose_from_inverse=True,
            source_depth_grad=s.source_depth_grad, pose_supervision_weight=s.pose_supervision_weight,
            warp_pose_source=s.warp_pose_source, init_depth_m=s.init_depth_m, pose_pairs=s.pose_pairs,
            num_scales=s.num_scales, hint_weight=s.hint_weight, use_self_mask=s.self_mask,
            network_dtype=network_dtype,
        )

    # frames are decoded once up front, so the budget is spent on optimisation
    dm.setup("fit")
    for i in range(len(dm.train_set)):
        dm.train_set[i]
    remaining = max(1.0, s.train_seconds - (time.perf_counter() - started))
    timer = _StepTimer()
    net = model(schedule_seconds=remaining)
    tidy_lightning_output()
    trainer = pl.Trainer(
        max_steps=s.max_steps, max_time=timedelta(seconds=remaining),
        callbacks=[timer.callback] + ([] if quiet else [EpochProgressBar()]),
        gradient_clip_val=1.0, logger=False, enable_checkpointing=False, num_sanity_val_steps=0,
        enable_model_summary=False, limit_val_batches=0, enable_progress_bar=not quiet,
    )
    trainer.fit(net, dm)
    steps = trainer.global_step
    log.info("training: %d steps of %d samples in %.0f s (%.2f s per step)", steps, s.batch_size, sum(timer.times), sum(timer.times) / max(1, steps))
    ckpt = workdir / "last.ckpt"
    trainer.save_checkpoint(str(ckpt), weights_only=False)  # full: optimizer state too, so a run can resume
    info = {
        "steps": steps,
        "step_s": sum(timer.times) / max(1, steps),
        "samples_seen": steps * s.batch_size,
        "train_samples": len(dm.train_set) if dm.train_set is not None else 0,
        "wall_s": time.perf_counter() - started,
        "network_dtype": network_dtype,
        "checkpoint": str(ckpt),
    }
    return net.eval(), info


def run(args: argparse.Namespace) -> int:
    import torch

    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros_training.export import export_module

    s = _settings(args)
    if args.threads is not None:
        torch.set_num_threads(max(1, int(args.threads)))
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    t_all = time.perf_counter()

    t = time.perf_counter()
    train_bags, test_bags = _synthesize(s, workdir)
    stages["synthesize_s"] = time.perf_counter() - t

    t = time.perf_counter()
    module, train_info = _train(s, train_bags, workdir, quiet=bool(args.json))
    stages["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    exported = export_module(module, workdir / "model", pose=True, tensorrt="off" if args.quick else "auto")
    stages["export_s"] = time.perf_counter() - t

    # every held-out scene through bag-to-bag inference; metrics over all their frames
    # (per-image means, so every frame counts once) and per scene, by depth-ros-train eval's library
    stages["infer_s"] = 0.0
    out_bags = []
    infer_frames, infer_seconds = 0, 0.0
    for i, test_bag in enumerate(test_bags):
        t = time.perf_counter()
        out_bag = workdir / ("test_depth.mcap" if i == 0 else f"test_depth_{i}.mcap")
        summary = infer_bag(test_bag, out_bag, exported.paths["depth"], InferConfig(overwrite=True, backend="onnxruntime-cpu", cloud=True, image_topic=TEST_IMAGE_TOPIC))
        stages["infer_s"] += time.perf_counter() - t
        infer_frames += summary.frames_out
        infer_seconds += summary.frames_out / summary.fps if summary.fps > 0 else 0.0
        out_bags.append(out_bag)
    t = time.perf_counter()
    metrics = score_scenes(list(zip(out_bags, test_bags)), s.max_depth_m)
    metrics["scenes"] = [{"seed": s.test_seed + i} | scene for i, scene in enumerate(metrics["scenes"])]
    stages["evaluate_s"] = time.perf_counter() - t
    stages["total_s"] = time.perf_counter() - t_all

    result = {
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
        "train": train_info,
        "export": {k: str(v) for k, v in exported.paths.items()} | {f"{k}_parity_max_abs": v for k, v in exported.parity_max_abs_error.items()},
        "inference": {"frames": infer_frames, "fps": infer_frames / infer_seconds if infer_seconds > 0 else 0.0, "backend": summary.backend, "scale_source": summary.scale_source},
        "metrics": metrics,
        "stages": stages,
        "quick": bool(args.quick),
    }
    (workdir / "results.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
    return 0


def _print_summary(result: dict[str, Any]) -> None:
    m, st, tr, inf = result["metrics"], result["stages"], result["train"], result["inference"]
    print("")
    print("depth-ros demo" + (" (--quick: smoke run, metrics meaningless)" if result["quick"] else ""))
    print(f"  trained {tr['steps']} steps x {result['settings']['batch_size']} samples ({tr['step_s']:.2f} s/step, networks in {tr.get('network_dtype', 'float32')}) on {tr['train_samples']} samples")
    scenes = m["scenes"]
    print(f"  {len(scenes)} held-out scene(s), {int(m['frames']['matched'])} frames: " + ", ".join(f"{Path(c['bag']).name} -> {Path(c['output']).name}" for c in scenes))
    print(f"  {'':16s} {'AbsRel':>8s} {'SqRel':>8s} {'RMSE':>8s} {'delta1':>8s} {'delta2':>8s}")
    for mode, label in (("median", "median-scaled"), ("metric", "metric (as is)")):
        r = m[mode]
        print(f"  {label:16s} {r['abs_rel']:8.3f} {r['sq_rel']:8.3f} {r['rmse']:8.3f} {r['delta1']:8.3f} {r['delta2']:8.3f}")
    print(f"  median scale factor gt/pred: {m['median']['scale']:.3f} (1.0 = metric)")
    if len(scenes) > 1:
        print("  AbsRel per scene (median-scaled / metric): " + ", ".join(f"seed {c['seed']} {c['median_abs_rel']:.3f} / {c['metric_abs_rel']:.3f}" for c in scenes))
    by_range = m.get("metric_by_range", {})
    if by_range:
        print("  metric AbsRel by true depth (share of pixels; bias > 1: predicted too far):")
        print("    " + ", ".join(f"{name} {r['abs_rel']:.2f} ({100 * r['fraction']:.0f}%, x{r['bias']:.2f})" for name, r in by_range.items()))
    extra = []
    if m.get("boundary"):
        extra.append(f"boundary F1 {m['boundary']['f1']:.3f}")
    if m.get("mask_boundary_recall"):
        extra.append(f"object-mask boundary recall {m['mask_boundary_recall']['recall']:.3f}")
    if m.get("flicker"):
        extra.append(f"flicker {m['flicker']['flicker']:.3f} (truth's own {m['flicker']['flicker_truth']:.3f})")
    if extra:
        print("  " + ", ".join(extra))
    print(f"  inference: {inf['fps']:.1f} FPS ({inf['backend']}, scale source {inf['scale_source']})")
    print("  time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in st.items()))
