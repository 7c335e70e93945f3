"""The configuration of ZoeDepth stage 2 (:class:`ZoeDepthConfig`, one typed frozen config checked
before anything is loaded or trained) and its scene types (:class:`SceneType`, ZoeD-NK's heads).

The task itself: :mod:`depth_ros_training.tasks.zoedepth`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from depth_ros_training.models.zoe_bins import MetricBinsConfig

__all__ = ["SceneType", "ZoeDepthConfig"]

#: Channels of DispNet's decoder levels fed to the attractor layers, coarse to fine (H/16 .. H/2).
_DISPNET_LEVELS = (256, 128, 64, 32)
#: DispNet's bottleneck channels per ResNet depth.
_BOTTLENECK = {18: 512, 34: 512, 50: 2048}


@dataclass(frozen=True)
class SceneType:
    """One scene type of ZoeD-NK: a head with its own bin range.

    Attributes:
        name: the type's name (``indoor``, ``corridor``, ...).
        min_depth_m, max_depth_m: that head's bin range, metres, ``0 < min < max``.
        groups: names of the label groups (``data.data.groups``) of this type; empty: the group
            named ``name``.
    """

    name: str
    min_depth_m: float
    max_depth_m: float
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups) or (self.name,))


@dataclass(frozen=True)
class ZoeDepthConfig:
    """Stage-2 configuration (validated before anything is loaded or trained).

    Attributes:
        stage1_checkpoint: Lightning checkpoint of the stage-1 network (None: a randomly
            initialised DispNet, for tests and for the export of a stage-2 checkpoint, whose state
            dict holds every weight).
        num_layers: ResNet depth of the DispNet (must match the checkpoint's).
        min_depth_m, max_depth_m: bin range of the single head, metres.
        scene_types: two or more for per-type heads and a router (each with its range); empty: one head.
        n_bins, output_distribution, attractors, attractor_type, attractor_alpha, attractor_gamma,
        n_attractors: the head (see :class:`~depth_ros_training.models.zoe_bins.MetricBinsConfig`);
            ``attractors=False`` removes the attractor layers (ablation).
        lr: AdamW learning rate of the head(s) and router.
        relative_lr_ratio: learning rate of the stage-1 network relative to ``lr`` (ZoeDepth: 0.1).
        weight_decay: AdamW weight decay (ZoeDepth: 0.01).
        silog_beta: SILog's beta (ZoeDepth: 0.15).
        router_weight: weight of the router's cross-entropy (routed heads only; ZoeD-NK: 100).
        freeze_relative_bn: keep the stage-1 network's BatchNorm statistics (eval mode) in training.
        image_height, image_width, mean, std: network input (as the data and the ModelSpec).
    """

    stage1_checkpoint: str | None = None
    num_layers: int = 18
    min_depth_m: float = 0.1
    max_depth_m: float = 10.0
    scene_types: tuple[SceneType, ...] = ()
    n_bins: int = 64
    output_distribution: Literal["logbinomial", "softmax"] = "logbinomial"
    attractors: bool = True
    attractor_type: Literal["inv", "exp"] = "inv"
    attractor_alpha: float = 300.0
    attractor_gamma: float = 2.0
    n_attractors: tuple[int, ...] = (16, 8, 4, 1)
    lr: float = 1.61e-4
    relative_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    silog_beta: float = 0.15
    router_weight: float = 100.0
    freeze_relative_bn: bool = True
    image_height: int = 128
    image_width: int = 416
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scene_types", tuple(s if isinstance(s, SceneType) else SceneType(**dict(s)) for s in self.scene_types))
        object.__setattr__(self, "n_attractors", tuple(int(n) for n in self.n_attractors))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.num_layers not in _BOTTLENECK:
            raise ValueError(f"num_layers must be one of {tuple(_BOTTLENECK)}, got {self.num_layers!r}")
        for name, lo, hi in self._ranges():
            if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi):
                raise ValueError(f"{name}: the bins must lie in (0, max_depth_m]: need 0 < min_depth_m < max_depth_m < inf, got {lo!r}, {hi!r}")
        if len(self.scene_types) == 1:
            raise ValueError("scene_types: per-type heads need at least 2 scene types (leave it empty for one head)")
        names = [s.name for s in self.scene_types]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"scene_types: names must be distinct non-empty strings, got {names}")
        for name in ("lr", "weight_decay", "silog_beta", "router_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be a finite number >= 0 (lr > 0), got {value!r}")
        if not (math.isfinite(self.relative_lr_ratio) and 0.0 <= self.relative_lr_ratio <= 1.0):
            raise ValueError(f"relative_lr_ratio must be in [0, 1] (0 freezes the stage-1 network), got {self.relative_lr_ratio!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(v > 0 for v in self.std):
            raise ValueError(f"mean and std must be 3 numbers each, std > 0, got {self.mean}, {self.std}")
        if self.image_height % 32 or self.image_width % 32 or min(self.image_height, self.image_width) < 64:
            raise ValueError(f"image_height and image_width must be multiples of 32 and >= 64, got {self.image_height}x{self.image_width}")
        self.head_configs()  # the head's own checks (n_bins, attractors, choices), before training starts

    def _ranges(self) -> list[tuple[str, float, float]]:
        if self.scene_types:
            return [(f"scene_types[{s.name}]", float(s.min_depth_m), float(s.max_depth_m)) for s in self.scene_types]
        return [("min_depth_m/max_depth_m", float(self.min_depth_m), float(self.max_depth_m))]

    @property
    def routed(self) -> bool:
        """True with per-scene-type heads and a router."""
        return len(self.scene_types) >= 2

    @property
    def depth_range_m(self) -> tuple[float, float]:
        """(min, max) metres over every head: what the exported ModelSpec carries."""
        ranges = self._ranges()
        return min(r[1] for r in ranges), max(r[2] for r in ranges)

    def head_configs(self) -> list[MetricBinsConfig]:
        """One :class:`MetricBinsConfig` per head (one, or one per scene type)."""
        common = dict(
            bottleneck_channels=_BOTTLENECK[self.num_layers],
            level_channels=_DISPNET_LEVELS,
            last_channels=17,  # DispNet's stage-0 feature (16) + the stage-1 disparity
            n_bins=self.n_bins,
            n_attractors=self.n_attractors if self.attractors else (0,) * len(self.n_attractors),
            attractor_alpha=self.attractor_alpha,
            attractor_gamma=self.attractor_gamma,
            attractor_type=self.attractor_type,
            output_distribution=self.output_distribution,
        )
        return [MetricBinsConfig(min_depth_m=lo, max_depth_m=hi, **common) for _, lo, hi in self._ranges()]
