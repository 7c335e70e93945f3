"""Named training recipes: settings that are known to work, as one typed config and one function.

:class:`QuickRecipe` is the recipe that turns a robot's bag into a metric depth model in minutes
on a CPU (``depth-ros demo`` and ``depth-ros-train adapt`` train with it):

* the photometric terms warp with the bag's odometry poses (``warp_pose_source="odometry"``),
  so depth learns from the first step instead of waiting for PoseNet;
* metric scale from the odometry twice over: velocity supervision (``velocity_weight``) and the
  full odometry pose as PoseNet's target (``pose_supervision_weight``); PoseNet sees one of the
  two sources per sample (``pose_pairs="one"``);
* depth hints from a plane sweep over the frames' own motion (``hint_weight``);
* no geometry term and no self-discovered mask, so the source frames' depths are not predicted
  (about half the cost of a step);
* Adam with a one-cycle learning rate over a *wall-clock* budget (the schedule runs on time,
  the trainer stops at the budget: a slower machine makes fewer steps, not a longer run);
* the networks' passes in bfloat16 where the CPU has it natively (``network_dtype="auto"``);
* frames decoded once up front (``cache_frames``), no DataLoader workers.

Why these values, and the AbsRel each alternative measured: docs/training-notes.md.

:func:`train_on_budget` runs it: a :class:`~depth_ros_training.datamodule.BagDataModule` in, a
trained :class:`~depth_ros_training.module.DepthTrainingModule` out.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from depth_ros.errors import InputError

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from depth_ros_training.data import DataConfig
    from depth_ros_training.datamodule import BagDataModule
    from depth_ros_training.module import DepthTrainingModule

__all__ = ["QUICK_INPUT_PIXELS", "QUICK_RATE_HZ", "QuickRecipe", "QuickRun", "quick_data_config", "quick_module", "torch_threads", "train_on_budget"]

log = logging.getLogger(__name__)

#: Pixels of the network input the recipe was tuned at (the demo's 64 x 192).
QUICK_INPUT_PIXELS = 64 * 192
#: Camera rate (Hz) the recipe's ``stride`` was tuned at: source frames 0.2 s away at stride 2.
QUICK_RATE_HZ = 10.0

_NETWORK_DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class QuickRecipe:
    """The quick self-supervised recipe (module docstring); every field maps to one
    :class:`~depth_ros_training.data.DataConfig` or
    :class:`~depth_ros_training.module.DepthTrainingModule` key.

    Attributes:
        stride, frame_offsets, hint_offsets: source frames (``DataConfig``).
        batch_size: samples per step.
        lr: peak learning rate of the one-cycle schedule (high: the run is short and starts
            from random weights).
        velocity_weight, pose_supervision_weight: metric scale from odometry (> 0 both).
        geometry_weight, smoothness_weight, source_depth_grad, self_mask, num_scales: the
            SC-Depth terms (``DepthTrainingModule``).
        warp_pose_source, pose_pairs: what the photometric terms warp with.
        hint_weight: depth hints from the plane sweep.
        network_dtype: "auto" (bfloat16 where the CPU runs it natively, else float32),
            "float32" or "bfloat16".
        hflip, color_jitter: augmentation of the training samples.
        init_depth_m, min_depth_m, max_depth_m: depth at the start and the output range (metres).
        depth_network, pose_network: ``"resnet"`` (ResNet-18) or ``"light"`` (the light networks
            for a CPU robot, docs/cpu-robots.md), ``DepthTrainingModule``'s keys.

    Raises:
        InputError: a value out of its range (one line naming the field).
    """

    stride: int = 2
    frame_offsets: tuple[int, ...] = (-1, 1)
    hint_offsets: tuple[int, ...] = ()
    batch_size: int = 4
    lr: float = 1e-3
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
    depth_network: str = "resnet"
    pose_network: str = "resnet"

    def __post_init__(self) -> None:
        from depth_ros_training.module_config import DEPTH_NETWORKS, POSE_NETWORKS

        for name, value, allowed in (("depth_network", self.depth_network, DEPTH_NETWORKS),
                                     ("pose_network", self.pose_network, POSE_NETWORKS)):
            if value not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.network_dtype not in _NETWORK_DTYPES:
            raise InputError(f"network_dtype must be auto|float32|bfloat16, got {self.network_dtype!r}")
        if not isinstance(self.stride, int) or self.stride < 1:
            raise InputError(f"stride must be an integer >= 1, got {self.stride!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not self.lr > 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if not 0 < self.min_depth_m < self.init_depth_m < self.max_depth_m:
            raise InputError(f"need 0 < min_depth_m < init_depth_m < max_depth_m, got {self.min_depth_m}, {self.init_depth_m}, {self.max_depth_m}")

    @property
    def is_metric(self) -> bool:
        """The model's depth is in metres (scale from the odometry)."""
        return self.velocity_weight > 0 or self.pose_supervision_weight > 0


def resolve_network_dtype(recipe: QuickRecipe) -> str:
    """"float32" or "bfloat16": ``recipe.network_dtype`` with "auto" decided for this CPU."""
    from depth_ros_training.module import bf16_supported

    if recipe.network_dtype != "auto":
        return recipe.network_dtype
    native_bf16 = bf16_supported()
    log.info("networks train in %s (%s native bfloat16 on this CPU)", "bfloat16" if native_bf16 else "float32", "with" if native_bf16 else "no")
    return "bfloat16" if native_bf16 else "float32"


def quick_data_config(recipe: QuickRecipe, bags: Sequence[str | Path], height: int, width: int, **overrides: Any) -> "DataConfig":
    """The recipe's :class:`~depth_ros_training.data.DataConfig` for ``bags`` at a network input of
    ``height`` x ``width`` pixels: odometry required, frames cached, no validation split
    (``overrides``: further DataConfig keys, e.g. ``crop``, ``image_topic``, ``cache_dir``)."""
    from depth_ros_training.data import DataConfig

    kwargs: dict[str, Any] = dict(
        bags=tuple(str(b) for b in bags), height=height, width=width, stride=recipe.stride, frame_offsets=recipe.frame_offsets,
        hint_offsets=recipe.hint_offsets, val_fraction=0.0, require_odometry=True, cache_frames=True, hflip=recipe.hflip,
        color_jitter=recipe.color_jitter,
    )
    kwargs.update(overrides)
    return DataConfig(**kwargs)


def quick_module(recipe: QuickRecipe, height: int, width: int, schedule_seconds: float, network_dtype: str, **overrides: Any) -> "DepthTrainingModule":
    """DispNet + PoseNet with the recipe's losses, a one-cycle schedule over ``schedule_seconds``
    of wall-clock time, input ``height`` x ``width`` (``overrides``: further module keys, e.g.
    the teacher's weights)."""
    from depth_ros_training.module import DepthTrainingModule

    keys: dict[str, Any] = dict(
        image_height=height, image_width=width, lr=recipe.lr, lr_schedule="onecycle", schedule_seconds=schedule_seconds,
        velocity_weight=recipe.velocity_weight, geometry_weight=recipe.geometry_weight, smoothness_weight=recipe.smoothness_weight,
        min_depth_m=recipe.min_depth_m, max_depth_m=recipe.max_depth_m, pose_from_inverse=True,
        source_depth_grad=recipe.source_depth_grad, pose_supervision_weight=recipe.pose_supervision_weight,
        warp_pose_source=recipe.warp_pose_source, init_depth_m=recipe.init_depth_m, pose_pairs=recipe.pose_pairs,
        num_scales=recipe.num_scales, hint_weight=recipe.hint_weight, use_self_mask=recipe.self_mask,
        network_dtype=network_dtype, depth_network=recipe.depth_network, pose_network=recipe.pose_network,
    )
    return DepthTrainingModule(**(keys | overrides))


@dataclass
class QuickRun:
    """The outcome of :func:`train_on_budget`.

    Attributes:
        module: the trained module (eval mode).
        trainer: the Lightning trainer that ran it (its ``callback_metrics`` hold the last
            validation's figures when there was one).
        steps: optimiser steps made.
        step_s: mean wall time of a step (seconds).
        train_samples: samples of the training set.
        wall_s: seconds from ``started`` to the end of training (decoding included).
        network_dtype: "float32" or "bfloat16".
    """

    module: "DepthTrainingModule"
    trainer: "pl.Trainer"
    steps: int
    step_s: float
    train_samples: int
    wall_s: float
    network_dtype: str


def train_on_budget(
    recipe: QuickRecipe,
    data: "BagDataModule",
    seconds: float,
    *,
    max_steps: int = -1,
    started: float | None = None,
    seed: int = 0,
    callbacks: Sequence[Any] = (),
    progress_bar: bool = True,
    module_overrides: dict[str, Any] | None = None,
    **trainer_overrides: Any,
) -> QuickRun:
    """Train the recipe on ``data`` for ``seconds`` of wall-clock time (from ``started``, a
    ``time.perf_counter()`` value; default now): the frames are decoded first, the one-cycle
    schedule and the trainer's ``max_time`` get what is left of the budget (at least 1 s).

    Args:
        recipe: the settings.
        data: its ``data_config`` gives the network input size (``height``, ``width``).
        seconds: the wall-clock budget.
        max_steps: stop earlier after this many steps (-1: the budget alone).
        started: when the budget started (decoding and indexing count against it).
        seed: global seed, set before anything random happens.
        callbacks: further Lightning callbacks.
        progress_bar: a per-epoch progress bar (a terminal's).
        module_overrides: further :class:`DepthTrainingModule` keys.
        trainer_overrides: ``pl.Trainer`` keys over the recipe's (no logger, no checkpoints, no
            validation, no sanity check, gradient clipping at 1).

    Returns:
        The trained module and what the run measured.
    """
    import lightning.pytorch as pl

    from depth_ros_training.callbacks import EpochProgressBar, tidy_lightning_output
    from depth_ros_training.step_timer import StepTimer

    if not seconds > 0:
        raise InputError(f"the training budget must be positive, got {seconds} s")
    network_dtype = resolve_network_dtype(recipe)
    started = time.perf_counter() if started is None else started
    pl.seed_everything(seed, workers=True, verbose=False)
    config = data.data_config
    # frames are decoded once up front, so the budget is spent on optimisation
    data.setup("fit")
    assert data.train_set is not None
    for i in range(len(data.train_set)):
        data.train_set[i]
    remaining = max(1.0, seconds - (time.perf_counter() - started))
    timer = StepTimer()
    net = quick_module(recipe, config.height, config.width, remaining, network_dtype, **(module_overrides or {}))
    tidy_lightning_output()
    kwargs: dict[str, Any] = dict(
        gradient_clip_val=1.0, logger=False, enable_checkpointing=False, num_sanity_val_steps=0,
        enable_model_summary=False, limit_val_batches=0,
    )
    kwargs.update(trainer_overrides)
    trainer = pl.Trainer(
        max_steps=max_steps, max_time=timedelta(seconds=remaining),
        callbacks=[timer, *callbacks] + ([EpochProgressBar()] if progress_bar else []),
        enable_progress_bar=progress_bar, **kwargs,
    )
    trainer.fit(net, data)
    steps = trainer.global_step
    total = sum(timer.times)
    log.info("training: %d steps of %d samples in %.0f s (%.2f s per step)", steps, recipe.batch_size, total, total / max(1, steps))
    return QuickRun(
        module=net.eval(), trainer=trainer, steps=steps, step_s=total / max(1, steps), train_samples=len(data.train_set),
        wall_s=time.perf_counter() - started, network_dtype=network_dtype,
    )


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (None: unchanged) and put the
    process's previous count back after it: the count is process-wide, and a library call
    (``run_adapt``, the demo's ``run``) must not change it for the code that runs next."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
