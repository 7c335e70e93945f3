"""The configuration of labelled training data: label sources, label groups and
:class:`LabelledDataConfig` (one typed frozen config, validated when built, read from a task
YAML's ``data:`` mapping by :meth:`LabelledDataConfig.from_dict`).

What the samples are and how groups are mixed: :mod:`depth_ros_training.data.labelled`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from depth_ros_training.data.bag_index import IndexOptions
from depth_ros_training.data.labels import LABEL_KINDS

__all__ = ["SOURCE_KINDS", "LabelGroup", "LabelSource", "LabelledDataConfig"]

SourceKind = Literal["gt_topic", "lidar_topic", "teacher"]
SOURCE_KINDS: tuple[str, ...] = ("gt_topic", "lidar_topic", "teacher")


@dataclass(frozen=True)
class LabelSource:
    """Where a group's labels come from and what they are.

    Args:
        gt_topic: dense depth Image topic registered to the camera (32FC1 m / 16UC1 mm).
        lidar_topic: PointCloud2 topic; its frame must reach the camera frame through /tf_static.
        teacher: path of an ONNX depth model (with its ModelSpec) run once per frame and cached.
        kind: the label kind, one of :data:`~depth_ros_training.data.labels.LABEL_KINDS`.
        teacher_backend: runtime backend of the teacher (``create_backend`` name).
        stamp_tolerance_s: largest |image stamp - label stamp| for a label to count as the image's
            (default 1 ms for a dense topic; a LiDAR spinning at 10 Hz wants ~0.05).

    Exactly one of ``gt_topic``, ``lidar_topic``, ``teacher`` is set.
    """

    kind: str
    gt_topic: str | None = None
    lidar_topic: str | None = None
    teacher: str | None = None
    teacher_backend: str = "onnxruntime-cpu"
    stamp_tolerance_s: float = 0.001

    def __post_init__(self) -> None:
        if self.kind not in LABEL_KINDS:
            raise ValueError(f"label kind must be one of {', '.join(LABEL_KINDS)}, got {self.kind!r}")
        given = [name for name in SOURCE_KINDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a label source names exactly one of {', '.join(SOURCE_KINDS)}, got {given or 'none'}")
        if not (math.isfinite(self.stamp_tolerance_s) and 0 <= self.stamp_tolerance_s <= 1.0):
            raise ValueError(f"stamp_tolerance_s must be in [0, 1] s, got {self.stamp_tolerance_s!r}")

    @property
    def source(self) -> str:
        """``"gt_topic"``, ``"lidar_topic"`` or ``"teacher"``."""
        return next(name for name in SOURCE_KINDS if getattr(self, name) is not None)

    def describe(self) -> str:
        return f"{self.source} {getattr(self, self.source)} ({self.kind})"


@dataclass(frozen=True)
class LabelGroup:
    """Bags sharing one label source, drawn with one sampling weight.

    Args:
        name: the group's name (losses are logged per group under it).
        bags: bag paths.
        label: the label source.
        weight: sampling weight (> 0); shares are ``weight / sum(weights)``, whatever the sizes.
        exact: the labels are exact (the synthetic renderer's depth): Depth Pro keeps every pixel
            of them and applies its derivative losses to them only.
    """

    name: str
    bags: tuple[str, ...]
    label: LabelSource
    weight: float = 1.0
    exact: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "bags", tuple(str(b) for b in self.bags))
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"group name must be a non-empty word (letters, digits, _ -), got {self.name!r}")
        if not self.bags:
            raise ValueError(f"group {self.name!r} has no bags")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"group {self.name!r}: weight must be > 0, got {self.weight!r}")


@dataclass(frozen=True)
class LabelledDataConfig:
    """How labelled bags become samples.

    Args:
        groups: the label groups (at least one; names distinct).
        height, width: network input size in pixels (multiples of 32).
        crop: optional fixed (x0, y0, width, height) crop in recorded pixels, before everything.
        image_topic, camera_info_topic: see :class:`~depth_ros_training.data.bag_index.IndexOptions`.
        stride: use every ``stride``-th labelled frame.
        val_fraction: share of time segments held out for validation (per bag).
        segment_s: length of those segments in seconds.
        random_crop: smallest side fraction of the random training crop (1 = no random crop).
        hflip: mirror training samples with probability 0.5.
        samples_per_epoch: training samples per epoch (0: the total of all groups).
        max_cached_frames: decoded frames kept per worker (bounded LRU; 0 disables the cache).
        cache_dir: where bag indexes and teacher maps are cached (default next to each bag).
        seed: seed of the mixing sampler (the batch composition is reproducible).
    """

    groups: tuple[LabelGroup, ...]
    height: int = 128
    width: int = 160
    crop: tuple[int, int, int, int] | None = None
    image_topic: str | None = None
    camera_info_topic: str | None = None
    stride: int = 1
    val_fraction: float = 0.2
    segment_s: float = 4.0
    random_crop: float = 1.0
    hflip: bool = True
    samples_per_epoch: int = 0
    max_cached_frames: int = 512
    cache_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        if not self.groups:
            raise ValueError("a labelled task needs at least one label group (data.groups)")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be distinct, got {names}")
        if not (64 <= self.height <= 4096 and 64 <= self.width <= 4096) or self.height % 32 or self.width % 32:
            raise ValueError(f"height/width must be multiples of 32 in 64..4096 px, got {self.height}x{self.width}")
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(c) for c in self.crop))
            if len(self.crop) != 4 or self.crop[2] <= 0 or self.crop[3] <= 0 or min(self.crop[:2]) < 0:
                raise ValueError(f"crop must be (x0, y0, width, height) with positive size, got {self.crop}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not self.segment_s > 0:
            raise ValueError(f"segment_s must be positive, got {self.segment_s}")
        if not 0.1 <= self.random_crop <= 1.0:
            raise ValueError(f"random_crop must be in [0.1, 1], got {self.random_crop}")
        if self.samples_per_epoch < 0 or not 0 <= self.max_cached_frames <= 100_000:
            raise ValueError("samples_per_epoch must be >= 0 and max_cached_frames in 0..100000")

    @property
    def weights(self) -> np.ndarray:
        """(G,) float64 sampling shares, summing to 1."""
        w = np.array([g.weight for g in self.groups], dtype=np.float64)
        return w / w.sum()

    def index_options(self, label: LabelSource) -> IndexOptions:
        gt = label.gt_topic if label.gt_topic is not None else IndexOptions.gt_depth_topic
        return IndexOptions(
            image_topic=self.image_topic,
            camera_info_topic=self.camera_info_topic,
            gt_depth_topic=gt,
            stamp_tolerance_s=label.stamp_tolerance_s if label.gt_topic is not None else IndexOptions.stamp_tolerance_s,
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "LabelledDataConfig":
        """From the ``data:`` mapping of a task YAML (``groups:`` a list of mappings with a
        ``label:`` mapping). Unknown keys are errors naming the key."""
        values = dict(values)
        groups_raw = values.pop("groups", None)
        if not isinstance(groups_raw, list) or not groups_raw:
            raise ValueError("data.groups: a labelled task needs a list of label groups (name, bags, label: {kind, gt_topic|lidar_topic|teacher}, weight)")
        groups = []
        for i, raw in enumerate(groups_raw):
            if not isinstance(raw, Mapping):
                raise ValueError(f"data.groups[{i}] must be a mapping, got {type(raw).__name__}")
            raw = dict(raw)
            label = raw.pop("label", None)
            if not isinstance(label, Mapping):
                raise ValueError(f"data.groups[{i}] ({raw.get('name', '?')}): no label source; give label: {{kind: ..., gt_topic|lidar_topic|teacher: ...}}")
            _check_keys(label, LabelSource, f"data.groups[{i}].label")
            _check_keys(raw, LabelGroup, f"data.groups[{i}]", skip=("label",))
            bags = raw.pop("bags", ())
            if isinstance(bags, str):
                bags = (bags,)
            try:
                groups.append(LabelGroup(label=LabelSource(**label), bags=tuple(bags), **raw))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"data.groups[{i}]: {exc}") from None
        _check_keys(values, cls, "data", skip=("groups",))
        if "crop" in values and values["crop"] is not None:
            values["crop"] = tuple(values["crop"])
        return cls(groups=tuple(groups), **values)


def _check_keys(values: Mapping[str, Any], cls: type, where: str, skip: Sequence[str] = ()) -> None:
    known = {f.name for f in dataclasses.fields(cls)} - set(skip)
    unknown = sorted(set(values) - known - set(skip))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
