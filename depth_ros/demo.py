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
from pathlib import Path
from typing import Any

from depth_ros.errors import InputError
from depth_ros_training.recipes import QuickRecipe

__all__ = ["DemoSettings", "add_arguments", "eval_config", "evaluate_depth_bag", "run", "score_scenes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSettings(QuickRecipe):
    """The demo's compute plan (defaults: the full demo, ~5 min of training on 2 cores): the
    scenes, the network input and the budget; the training settings are
    :class:`~depth_ros_training.recipes.QuickRecipe`'s (its fields are this class's too).

    Camera 384x128 (fx = 0.7 w), network input 64x192 (half resolution); the camera moves at
    1 m/s at 10 Hz and the source frames are +-2 frames away (the recipe's ``stride=2``).
    Sixteen 75-frame training corridors, three 100-frame test corridors with other seeds.
    Training runs for ``train_seconds`` of wall-clock time (``max_steps``: stop earlier).
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
    train_seconds: float = 300.0
    max_steps: int = -1
    train_seed: int = 0
    test_seed: int = 2001  # 1001-1005 were used to choose the settings above

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.net_height % 32 or self.net_width % 32:
            raise InputError(f"network size must be multiples of 32, got {self.net_width}x{self.net_height}")
        if self.test_scenes < 1:
            raise InputError(f"test_scenes must be >= 1, got {self.test_scenes}")
        train = set(range(self.train_seed, self.train_seed + self.train_scenes))
        if train & set(range(self.test_seed, self.test_seed + self.test_scenes)):
            raise InputError("the test scenes must differ from the training scenes (use another seed)")
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


def _train(s: DemoSettings, train_bags: list[Path], workdir: Path, quiet: bool) -> tuple[Any, dict[str, Any]]:
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.recipes import quick_data_config, train_on_budget

    started = time.perf_counter()
    dm = BagDataModule(quick_data_config(s, train_bags, s.net_height, s.net_width), batch_size=s.batch_size, num_workers=0)
    run = train_on_budget(s, dm, s.train_seconds, max_steps=s.max_steps, started=started, progress_bar=not quiet)
    ckpt = workdir / "last.ckpt"
    run.trainer.save_checkpoint(str(ckpt), weights_only=False)  # full: optimizer state too, so a run can resume
    info = {
        "steps": run.steps,
        "step_s": run.step_s,
        "samples_seen": run.steps * s.batch_size,
        "train_samples": run.train_samples,
        "wall_s": time.perf_counter() - started,
        "network_dtype": run.network_dtype,
        "checkpoint": str(ckpt),
    }
    return run.module, info


def run(args: argparse.Namespace) -> int:
    """``depth-ros demo`` (module docstring); ``--threads`` holds for the run only."""
    from depth_ros_training.recipes import torch_threads

    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros_training.export import export_module

    s = _settings(args)
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
