"""``depth-ros-train adapt``: a robot's bags in, a running metric depth model out, in one command.

Steps (each one line in the log):

1. **check** every bag before anything is written: camera + camera_info, odometry whose child
   frame reaches the camera through ``/tf_static``, enough frames (the checks ``fit`` makes,
   :class:`~depth_ros_training.data.dataset.BagSequenceDataset`); a missing ``--truth-topic``.
   A problem is one line naming the bag and topic, exit code 1;
2. **size**: a network input that keeps the camera's aspect (:func:`network_input_size`:
   multiples of 32, about :data:`~depth_ros_training.recipes.QUICK_INPUT_PIXELS` pixels, the
   camera centre-cropped to exactly that aspect), unless ``--size`` is given;
3. **hold out** the last ``--holdout`` share of each bag's time (default 15 %): the bag is
   split at that stamp into ``OUT/split/<bag>.train.mcap`` and ``<bag>.heldout.mcap``
   (``/tf_static`` and single-message topics go to both), and only the first part is trained on;
4. **train** :class:`~depth_ros_training.recipes.QuickRecipe` for ``--minutes`` of wall-clock
   time (source frames 0.2 s apart whatever the camera rate), validating on 16 samples of the
   held-out segment every quarter of the budget and when the budget ends, a weights-only checkpoint
   after each validation (``OUT/checkpoints``); the held-out segment is never used to choose
   anything, so step 6 stays an honest test;
5. **export** ``OUT/model/depth.onnx`` and ``pose.onnx`` with their ModelSpec
   (:func:`~depth_ros_training.export.export_module`);
6. **evaluate** the exported model on the held-out segments that carry truth (a depth image or
   a LiDAR topic: ``--truth-topic`` or the only one) through ``depth-ros-train eval``'s library
   (:func:`~depth_ros_training.eval.evaluate.evaluate`): median-scaled and metric AbsRel;
7. print the ``depth-ros run`` and ``ros2 launch`` lines that run the model on the bag's camera.

Everything is written under ``-o OUT`` (default ``./adapt``), with ``OUT/adapt.json`` holding
what was done and measured.

Steps 1-3 (the checks, the sizing helpers, the split) are :mod:`depth_ros_training.adapt_plan`,
its public names re-exported here; this module trains, exports, evaluates and reports.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from depth_ros.errors import BagError, InputError

from depth_ros_training.adapt_plan import (
    AdaptPlan,
    centre_crop,
    check_and_plan,
    check_teacher,
    holdout_cut_ns,
    network_input_size,
    split_bag,
    squash_warning,
    stride_for_rate,
)
from depth_ros_training.datamodule import BagDataModule
from depth_ros_training.recipes import QuickRecipe

__all__ = [
    "AdaptConfig", "AdaptResult", "add_arguments", "centre_crop", "holdout_cut_ns", "network_input_size", "run", "run_adapt", "split_bag",
    "squash_warning", "stride_for_rate",
]

log = logging.getLogger(__name__)

#: Teacher terms of SC-Depth v3 that need no self-discovered mask (the recipe has none):
#: normal matching and edge-guided normal ranking, at v3's weights.
TEACHER_WEIGHTS = {"normal_weight": 0.1, "normal_ranking_weight": 0.1}
#: Validations over a run: every quarter of the budget (and when it ends).
VALIDATIONS_PER_RUN = 4
#: Samples of a validation, spread evenly over the held-out segments: a progress check that
#: costs a few steps' time (the evaluation after export uses every held-out frame).
VALIDATION_SAMPLES = 16


@dataclass(frozen=True)
class AdaptConfig:
    """What ``depth-ros-train adapt`` does (its flags map one to one).

    Attributes:
        bags: the robot's bags (.mcap / .db3 files or rosbag2 directories).
        output_dir: where everything is written.
        minutes: wall-clock budget from the start to the end of training (the checks, the split,
            frame decoding and the validations count against it; export and evaluation follow).
        teacher: an ONNX depth model whose pseudo-depth adds SC-Depth v3's normal terms.
        truth_topic: depth Image or PointCloud2 to evaluate against; None: the only one, or
            no evaluation when the bags have none.
        size: (height, width) of the network input, multiples of 32; None: chosen from the
            camera (:func:`network_input_size`).
        holdout: share of each bag's time, at its end, kept out of training (0 < holdout < 0.5).
        image_topic, camera_info_topic: the camera (None: the bag's only one).
        odom_topic: nav_msgs/Odometry of the robot.
        threads: torch CPU threads (None: all cores).
        recipe: the training settings.

    Raises:
        InputError: a value out of range (one line naming the flag).
    """

    bags: tuple[str, ...]
    output_dir: str = "adapt"
    minutes: float = 10.0
    teacher: str | None = None
    truth_topic: str | None = None
    size: tuple[int, int] | None = None
    holdout: float = 0.15
    image_topic: str | None = None
    camera_info_topic: str | None = None
    odom_topic: str = "/odom"
    threads: int | None = None
    recipe: QuickRecipe = field(default_factory=QuickRecipe)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bags", tuple(str(b) for b in self.bags))
        if not self.bags:
            raise InputError("give at least one bag")
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise InputError(f"--minutes must be a positive number, got {self.minutes}")
        if not 0.0 < self.holdout < 0.5:
            raise InputError(f"--holdout must be in (0, 0.5), got {self.holdout}")
        if self.size is not None:
            h, w = self.size
            if h < 32 or w < 32 or h % 32 or w % 32:
                raise InputError(f"--size must be HxW with both multiples of 32 (>= 32), got {h}x{w}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}")

# -- the run -----------------------------------------------------------------------------------
@dataclass
class AdaptResult:
    """What ``adapt`` made and measured (also written to ``OUT/adapt.json``).

    Attributes:
        models: {"depth": path, "pose": path}.
        input_size: (height, width) of the network input; crop: the camera crop (or None).
        train: steps, step_s, train_samples, network_dtype, stride, the last step's loss terms
            (``terms``) and the last validation's figures (``validation``).
        evaluation: {"bags": [...], "truth_topic", "frames", "median_abs_rel", "metric_abs_rel",
            "median_scale"} on the held-out segments, or None without truth.
        run_line, launch_line: the commands that run the model.
    """

    models: dict[str, str]
    input_size: tuple[int, int]
    crop: tuple[int, int, int, int] | None
    train: dict[str, Any]
    evaluation: dict[str, Any] | None
    run_line: str
    launch_line: str
    seconds: dict[str, float] = field(default_factory=dict)


def _val_dataloader(config: AdaptConfig, plan: AdaptPlan, recipe: QuickRecipe, heldout: list[Path], cache_dir: Path) -> Any:
    """A DataLoader over at most :data:`VALIDATION_SAMPLES` samples spread evenly over the
    held-out segments (no augmentation), or None when they are too short for one sample."""
    import numpy as np
    from torch.utils.data import DataLoader, Subset

    from depth_ros_training.data.dataset import BagSequenceDataset
    from depth_ros_training.recipes import quick_data_config

    data = quick_data_config(recipe, heldout, plan.height, plan.width, crop=plan.crop, cache_dir=str(cache_dir), hflip=False, color_jitter=0.0,
                             image_topic=config.image_topic, camera_info_topic=config.camera_info_topic, odom_topic=config.odom_topic,
                             **({"gt_depth_topic": plan.truth_topic} if plan.truth_topic else {}))
    try:
        dataset = BagSequenceDataset(data, "all")
    except BagError as exc:
        log.warning("no validation during training: %s", exc)
        return None
    keep = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), VALIDATION_SAMPLES)).round().astype(int))
    return DataLoader(Subset(dataset, keep.tolist()), batch_size=recipe.batch_size, shuffle=False, num_workers=0)


class _HeldOutDataModule(BagDataModule):
    """The recipe's training data, validated on a given loader (the held-out segments, not a
    split of the training part; ``[]``: no validation)."""

    def __init__(self, data: Any, val_loader: Any, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self._val_loader = val_loader

    def val_dataloader(self) -> Any:
        return self._val_loader if self._val_loader is not None else []


def _train(config: AdaptConfig, plan: AdaptPlan, train_bags: list[Path], heldout: list[Path], out: Path, started: float) -> Any:
    from datetime import timedelta

    from depth_ros_training.checkpoint import ResumeCheckpoint, checkpoint_callbacks
    from depth_ros_training.deadline import StopAtDeadline
    from depth_ros_training.logline import PeriodicLogLine, wants_log_lines
    from depth_ros_training.recipes import quick_data_config, train_on_budget

    recipe = dataclasses.replace(config.recipe, stride=plan.stride)
    cache_dir = out / "index"
    data = quick_data_config(recipe, train_bags, plan.height, plan.width, crop=plan.crop, cache_dir=str(cache_dir), image_topic=config.image_topic,
                             camera_info_topic=config.camera_info_topic, odom_topic=config.odom_topic)
    val = _val_dataloader(config, plan, recipe, heldout, cache_dir)
    dm = _HeldOutDataModule(data, val, batch_size=recipe.batch_size, num_workers=0, teacher_model=config.teacher)
    seconds = 60.0 * config.minutes
    callbacks: list[Any] = checkpoint_callbacks(ResumeCheckpoint(every_minutes=None, after_validation="weights")) if val is not None else []
    quiet_bar = wants_log_lines()
    if quiet_bar:
        callbacks.append(PeriodicLogLine(every_s=min(30.0, max(5.0, seconds / 20))))
    validation: dict[str, Any] = {}
    if val is not None:
        callbacks.append(StopAtDeadline(started + seconds))  # max_time would not count the validations
        validation = dict(limit_val_batches=1.0, val_check_interval=timedelta(seconds=seconds / VALIDATIONS_PER_RUN), check_val_every_n_epoch=None,
                          enable_checkpointing=True)
    run = train_on_budget(recipe, dm, seconds, started=started, callbacks=callbacks, progress_bar=not quiet_bar, default_root_dir=str(out),
                          module_overrides=TEACHER_WEIGHTS if config.teacher else None, **validation)
    logged = run.trainer.callback_metrics
    info = {"steps": run.steps, "step_s": run.step_s, "train_samples": run.train_samples, "network_dtype": run.network_dtype,
            "stride": plan.stride, "terms": {k: float(v) for k, v in logged.items() if k.startswith("train/")},
            "validation": {k: float(v) for k, v in logged.items() if k.startswith("val/")}}
    return run.module, info


def _evaluate(plan: AdaptPlan, model: Path, heldout: list[Path], recipe: QuickRecipe) -> dict[str, Any] | None:
    from depth_ros.demo import eval_config
    from depth_ros_training.eval.evaluate import evaluate

    if plan.truth_topic is None:
        return None
    config = eval_config(recipe.max_depth_m, truth_topic=plan.truth_topic)
    report = evaluate(heldout, config, models=[model])[0]
    summary = report.summary
    return {
        "bags": [str(b) for b in heldout], "truth_topic": plan.truth_topic, "frames": int(summary["frames"]),
        "median_abs_rel": float(summary["median"]["abs_rel"]), "metric_abs_rel": float(summary["metric"]["abs_rel"]),
        "median_scale": float(summary["median"]["scale"]),
    }


def run_lines(plan: AdaptPlan, models: dict[str, str]) -> tuple[str, str]:
    """(``depth-ros run ...``, ``ros2 launch depth_ros depth.launch.py ...``) for the bag's camera."""
    image = plan.image_topic[: -len("/compressed")] if plan.compressed and plan.image_topic.endswith("/compressed") else plan.image_topic
    info = plan.camera_info_topic
    run = f"depth-ros run --model {models['depth']} --pose-model {models['pose']} --use-pose --image-topic {image} --camera-info-topic {info}"
    launch = (f"ros2 launch depth_ros depth.launch.py model:={models['depth']} use_pose:=true pose_model:={models['pose']} "
              f"image_topic:={image} camera_info_topic:={info}")
    if plan.compressed:
        run += "  # and image_transport: compressed in the --config YAML"
        launch += " image_transport:=compressed"
    return run, launch


def run_adapt(config: AdaptConfig) -> AdaptResult:
    """The whole of ``adapt`` (module docstring).

    Raises:
        DepthRosError: a bag or option the run cannot use, found before training (one line).

    ``config.threads`` sets torch's thread count for the run; the count before it is put back.
    """
    from depth_ros_training.recipes import torch_threads

    with torch_threads(config.threads):
        return _run_adapt(config)


def _run_adapt(config: AdaptConfig) -> AdaptResult:
    from depth_ros_training.export import export_module

    started = time.perf_counter()
    seconds: dict[str, float] = {}
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.teacher is not None:
        check_teacher(config.teacher)
    plan = check_and_plan(config, out / "index")
    log.info("camera %dx%d at %.1f Hz on %s: network input %dx%d (crop %s), stride %d, truth %s",
             plan.camera_width, plan.camera_height, plan.rate_hz, plan.image_topic, plan.width, plan.height, plan.crop, plan.stride, plan.truth_topic)
    seconds["check_s"] = time.perf_counter() - started

    t = time.perf_counter()
    split = out / "split"
    split.mkdir(exist_ok=True)
    train_bags, heldout = [], []
    for i, (bag, cut) in enumerate(zip(config.bags, plan.cuts_ns)):
        stem = f"{i}_{Path(bag).stem}"
        a, b = split_bag(bag, cut, split / f"{stem}.train.mcap", split / f"{stem}.heldout.mcap")
        train_bags.append(a)
        heldout.append(b)
    seconds["split_s"] = time.perf_counter() - t

    t = time.perf_counter()
    module, train_info = _train(config, plan, train_bags, heldout, out, started)
    seconds["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    exported = export_module(module, out / "model", pose=True, name=f"adapt_{plan.width}x{plan.height}", tensorrt="off")
    models = {k: str(v) for k, v in exported.paths.items()}
    seconds["export_s"] = time.perf_counter() - t

    t = time.perf_counter()
    evaluation = _evaluate(plan, exported.paths["depth"], heldout, config.recipe)
    seconds["evaluate_s"] = time.perf_counter() - t
    seconds["total_s"] = time.perf_counter() - started

    run_line, launch_line = run_lines(plan, models)
    result = AdaptResult(models=models, input_size=(plan.height, plan.width), crop=plan.crop, train=train_info, evaluation=evaluation,
                         run_line=run_line, launch_line=launch_line, seconds=seconds)
    (out / "adapt.json").write_text(json.dumps(asdict(result) | {"config": _config_dict(config)}, indent=2))
    return result


def _config_dict(config: AdaptConfig) -> dict[str, Any]:
    return {k: (asdict(v) if isinstance(v, QuickRecipe) else v) for k, v in ((f, getattr(config, f)) for f in config.__dataclass_fields__)}


# -- command line ------------------------------------------------------------------------------
def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 96x128), got {text!r}") from None
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG", help="the robot's bags: camera + camera_info, odometry, /tf_static (docs/bags.md)")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget in minutes (default 10)")
    parser.add_argument("--teacher", metavar="T.onnx", help="ONNX depth model whose pseudo-depth adds SC-Depth v3's normal terms")
    parser.add_argument("--truth-topic", metavar="T", help="depth Image or PointCloud2 to evaluate the held-out segment against (default: the only one)")
    parser.add_argument("-o", "--output-dir", default="adapt", metavar="OUTDIR", help="where the split bags, checkpoints, models and adapt.json go (default ./adapt)")
    parser.add_argument("--size", type=_size, metavar="HxW", help="network input (multiples of 32; default: the camera's aspect at about 64x192's pixels)")
    parser.add_argument("--holdout", type=float, default=0.15, help="share of each bag's time, at its end, kept out of training and evaluated on (default 0.15)")
    parser.add_argument("--image-topic", help="camera image topic (default: the bag's only one)")
    parser.add_argument("--camera-info-topic", help="camera_info topic (default: next to the image)")
    parser.add_argument("--odom-topic", default="/odom", help="nav_msgs/Odometry topic (default /odom)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--depth-network", choices=("resnet", "light"), default="resnet",
                        help="resnet (ResNet-18 DispNet, default) or light (real time on a CPU robot, docs/cpu-robots.md)")
    parser.add_argument("--pose-network", choices=("resnet", "light"), default="resnet",
                        help="resnet (ResNet-18 PoseNet, default) or light (LightPoseNet: ~1/7 of its time per frame)")


def run(args: argparse.Namespace) -> int:
    config = AdaptConfig(
        bags=tuple(args.bags), output_dir=args.output_dir, minutes=args.minutes, teacher=args.teacher, truth_topic=args.truth_topic,
        size=args.size, holdout=args.holdout, image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
        odom_topic=args.odom_topic, threads=args.threads,
        recipe=QuickRecipe(depth_network=args.depth_network, pose_network=args.pose_network),
    )
    result = run_adapt(config)
    h, w = result.input_size
    tr = result.train
    print(f"trained {tr['steps']} steps ({tr['step_s']:.2f} s/step, {tr['network_dtype']}) on {tr['train_samples']} samples, input {w}x{h}"
          + (f" (camera cropped to {result.crop[2]}x{result.crop[3]})" if result.crop else ""))
    print(f"models: {result.models['depth']}, {result.models['pose']}")
    ev = result.evaluation
    if ev is None:
        print("held-out segment: no depth truth in the bags (--truth-topic), not evaluated")
    else:
        print(f"held-out segment ({ev['frames']} frames, truth {ev['truth_topic']}): AbsRel median-scaled {ev['median_abs_rel']:.3f}, "
              f"metric {ev['metric_abs_rel']:.3f} (median scale truth/prediction {ev['median_scale']:.3f})")
    print(f"run it:  {result.run_line}")
    print(f"or:      {result.launch_line}")
    return 0
