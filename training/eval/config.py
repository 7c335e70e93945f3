"""The options of an evaluation (:class:`EvalConfig`, one field per ``depth-ros-train eval`` flag)
and the aggregation rule every report states."""
from __future__ import annotations

import math
from dataclasses import dataclass

from depth_ros.pose_pipeline import PoseConfig

__all__ = ["AGGREGATION", "EvalConfig"]

AGGREGATION = "mean over frames of per-frame metrics (every frame weighs the same); by-range figures pool pixels"


@dataclass(frozen=True)
class EvalConfig:
    """Options of :func:`evaluate` (``depth-ros-train eval`` flags map one to one).

    Attributes:
        min_depth_m, max_depth_m: truth outside this range is not evaluated; predictions are
            clamped to it (monodepth2).
        crop: (left, top, right, bottom) fractions of the image kept, e.g. monodepth2's Eigen
            crop (0.0359, 0.4081, 0.9641, 0.9919); None: the whole image.
        stamp_tolerance_ns: largest |truth stamp - prediction stamp| (and pose stamp) accepted.
        truth_topic: depth Image or PointCloud2 topic of the truth; None: the only one.
        pose_topic: nav_msgs/Odometry of the truth bag for the flicker's camera motion; None:
            the only one (no flicker without one).
        mask_topic: object mask Image of the truth bag for Depth Pro's mask boundary recall;
            None: the only Image topic named like a mask (a name part containing "mask", e.g.
            the renderer's ``/camera/object_mask``) whose first message has a mask encoding,
            else none.
        pred_topic: depth topic of a ``--pred`` bag; None: the only ``.../depth/image``.
        image_topic, camera_info_topic: camera topics (None: as ``depth-ros infer`` chooses).
        lidar_topic: PointCloud2 given to the model run for a LiDAR scale policy.
        scale: the run's scale policy text (``depth-ros infer --scale``).
        backend, threads: inference backend and CPU threads.
        range_edges_m: depth ranges of the by-range table.
        boundary, flicker: compute them (they cost more than the plain metrics).
        static_tol: relative truth self-disagreement above which a pixel is not static (flicker).
        pose_model: a pose_6dof model run beside every model (``--model``) for the odometry's
            ATE / RPE; None: none (a ``--pred`` bag brings its own odometry).
        pose: the pose model's visual-odometry options (the pose node's defaults).
    """

    min_depth_m: float = 1e-3
    max_depth_m: float = 80.0
    crop: tuple[float, float, float, float] | None = None
    stamp_tolerance_ns: int = 10_000_000
    truth_topic: str | None = None
    pose_topic: str | None = None
    mask_topic: str | None = None
    pred_topic: str | None = None
    image_topic: str | None = None
    camera_info_topic: str | None = None
    lidar_topic: str | None = None
    scale: str = "auto"
    backend: str = "auto"
    threads: int | None = None
    range_edges_m: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
    boundary: bool = True
    flicker: bool = True
    static_tol: float = 0.02
    pose_model: str | None = None
    pose: PoseConfig = PoseConfig()

    def __post_init__(self) -> None:
        if not (0 < self.min_depth_m < self.max_depth_m) or not math.isfinite(self.max_depth_m):
            raise ValueError(f"need 0 < min_depth_m < max_depth_m < inf, got {self.min_depth_m}, {self.max_depth_m}")
        if self.crop is not None:
            left, top, right, bottom = self.crop
            if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
                raise ValueError(f"crop (left, top, right, bottom) must be fractions with left < right, top < bottom, got {self.crop}")
        if self.stamp_tolerance_ns < 0:
            raise ValueError(f"stamp_tolerance_ns must be >= 0, got {self.stamp_tolerance_ns}")
        edges = self.range_edges_m
        if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
            raise ValueError(f"range_edges_m must be increasing, got {edges}")
        if not self.static_tol > 0:
            raise ValueError(f"static_tol must be > 0, got {self.static_tol}")
        if not isinstance(self.pose, PoseConfig):
            raise ValueError(f"pose must be a PoseConfig, got {type(self.pose).__name__}")

