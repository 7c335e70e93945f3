"""Evaluate depth models (or depth already written by ``depth-ros infer``) on bags with truth.

The library behind ``depth-ros-train eval`` (:mod:`depth_ros_training.eval.cli`).

What is measured is what runs: a model goes through
:func:`depth_ros.bag.infer.infer_bag` (the nodes' preprocess, backend, postprocess and scale
policy, with their defaults), into a temporary MCAP; its ``<ns>/depth/image`` (32FC1 metres) is
then matched by header stamp to the truth of the input bag:

* a dense depth topic (sensor_msgs/Image ``32FC1`` metres or ``16UC1`` millimetres), or
* a LiDAR sensor_msgs/PointCloud2, moved into the camera's optical frame through
  ``/tf_static`` and projected with the camera_info's K (nearest return per pixel; the motion
  between the LiDAR and camera stamps is not compensated, so keep the stamp tolerance small).

Per matched frame, on the valid pixels (finite truth in ``[min_depth_m, max_depth_m]``, inside
the optional crop): AbsRel, SqRel, RMSE, RMSE log, delta < 1.25^k, median-scaled and metric
(:func:`~depth_ros_training.eval.metrics.compute_depth_metrics`), the scale ratio
median(truth) / median(prediction), Depth Pro's boundary F1 (dense truth only,
:mod:`~depth_ros_training.eval.boundary`), and the flicker against the previous matched frame
(:mod:`~depth_ros_training.eval.temporal`; needs camera poses: the truth bag's odometry and
``/tf_static``), and, with ``mask_topic``, Depth Pro's boundary recall against an object mask. Aggregates are the mean over frames of the per-frame values (the KITTI /
monodepth2 convention: every frame weighs the same); the by-range table pools pixels.

Odometry of a pose model: with ``pose_model`` (``--pose-model``, one pose model shared by every
``--model``), each model run also runs the pose node's visual odometry
(``depth-ros infer --pose-model``, :class:`depth_ros.pose_pipeline.PosePipeline`); where the
prediction bag carries a nav_msgs/Odometry trajectory (that, or ``--pred`` with a recorded
pose-node output), ATE (se(3) and sim(3) alignment) and RPE against the truth bag's odometry
(:mod:`~depth_ros_training.eval.odometry`), the truth's body moved to the estimate's frame
through ``/tf_static`` (base_link -> camera optical frame).

Memory: one model's predicted depth images of one bag are held (float32) while the truth bag
is streamed past them.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from depth_ros.bag.odometry_msg import ODOMETRY_TYPE
from depth_ros.bag.reader import IMAGE_TYPE, POINTCLOUD2_TYPE, looks_like_depth, looks_like_mask
from depth_ros.core.distortion import Rectifier, is_distorted, rectified_projection
from depth_ros.errors import BagError, DepthRosError, InputError
from depth_ros.pose_pipeline import PoseConfig

from depth_ros_training.eval.boundary import si_boundary_f1, si_boundary_recall
from depth_ros_training.eval.metrics import METRIC_NAMES, RangeErrors, compute_depth_metrics, mean_metrics, scale_ratio_stats
from depth_ros_training.eval.odometry import evaluate_trajectory
from depth_ros_training.eval.temporal import flicker_on, pair_geometry

__all__ = [
    "AGGREGATION",
    "EvalConfig",
    "ModelReport",
    "evaluate",
    "evaluate_predictions",
    "format_table",
    "mask_from_image",
    "project_points_to_depth",
    "select_truth_topic",
    "write_outputs",
]

_log = logging.getLogger(__name__)

DEPTH_ENCODINGS = ("32FC1", "16UC1")
#: Mask encodings: 8-bit ones are alpha (foreground where > 0.1 of full scale, as Depth Pro's
#: matting masks), wider ones instance / object ids (foreground where not 0).
MASK_DTYPES = {"mono8": "u1", "8UC1": "u1", "16UC1": "u2", "mono16": "u2", "32SC1": "i4"}
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


# -- pure helpers -----------------------------------------------------------------------------
def project_points_to_depth(points_cam: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
    """A sparse depth image from 3-D points in the camera's optical frame.

    Args:
        points_cam: (N, 3) points, metres, camera optical frame (z forward).
        K: (3, 3) intrinsics, pixels, at (width, height).
        width, height: the image size.

    Returns:
        (height, width) float32 depth (z), metres; NaN where no point lands; where several land
        in one pixel the nearest wins. A point projects to the pixel whose centre is nearest
        (integer coordinates are pixel centres).
    """
    pts = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    K = np.asarray(K, dtype=np.float64)
    depth = np.full((height, width), np.nan, dtype=np.float32)
    pts = pts[np.isfinite(pts).all(axis=1) & (pts[:, 2] > 0)]
    if pts.size == 0:
        return depth
    z = pts[:, 2]
    u = np.round(K[0, 0] * pts[:, 0] / z + K[0, 2])
    v = np.round(K[1, 1] * pts[:, 1] / z + K[1, 2])
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside].astype(np.int64), v[inside].astype(np.int64), z[inside]
    order = np.argsort(-z, kind="stable")  # far first: the nearest is written last and wins
    depth[v[order], u[order]] = z[order]
    return depth


def mask_from_image(msg: Any) -> np.ndarray:
    """An object mask sensor_msgs/Image (see :data:`MASK_DTYPES`) as (H, W) bool foreground.

    Raises:
        InputError: another encoding, or sizes / step / data length that do not fit.
    """
    encoding = str(getattr(msg, "encoding", ""))
    if encoding not in MASK_DTYPES:
        raise InputError(f"mask Image: encoding {encoding!r} not supported (supported: {', '.join(MASK_DTYPES)})")
    dtype = np.dtype(MASK_DTYPES[encoding]).newbyteorder(">" if int(msg.is_bigendian) else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if h <= 0 or w <= 0 or step < w * dtype.itemsize or data.size < step * h:
        raise InputError(f"mask Image: {w}x{h} with step {step} does not fit {data.size} bytes of {encoding}")
    rows = data[: step * h].reshape(h, step)[:, : w * dtype.itemsize]
    values = np.ascontiguousarray(rows).view(dtype).reshape(h, w)
    if dtype.itemsize == 1:
        return values.astype(np.float64) / 255.0 > 0.1
    return values != 0


def _crop_box(shape: tuple[int, int], crop: tuple[float, float, float, float] | None) -> tuple[slice, slice]:
    h, w = shape
    if crop is None:
        return slice(0, h), slice(0, w)
    left, top, right, bottom = crop
    return slice(int(round(top * h)), max(int(round(bottom * h)), int(round(top * h)) + 1)), slice(
        int(round(left * w)), max(int(round(right * w)), int(round(left * w)) + 1)
    )


def _capped(gt: np.ndarray, config: EvalConfig) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(gt) & (gt >= config.min_depth_m) & (gt <= config.max_depth_m)
    return np.where(ok, gt, np.nan).astype(np.float64)


def frame_metrics(pred_m: np.ndarray, gt_m: np.ndarray, config: EvalConfig, dense: bool, mask: np.ndarray | None = None) -> dict[str, float] | None:
    """Per-frame figures of one (prediction, truth) pair, both (H, W) metres, NaN invalid.

    Args:
        mask: (H, W) bool object mask of the frame, for the mask boundary recall.

    Returns:
        ``{"num_pixels", "median_<metric>", "metric_<metric>", "scale", "boundary_f1",
        "boundary_precision", "boundary_recall", "mask_boundary_recall"}`` (boundary NaN for
        sparse truth or when disabled, mask recall NaN without a mask), or None when no
        pixel is valid.
    """
    rows, cols = _crop_box(gt_m.shape, config.crop)
    pred, gt = np.asarray(pred_m, np.float64)[rows, cols], _capped(np.asarray(gt_m)[rows, cols], config)
    med = compute_depth_metrics(pred, gt, True, config.min_depth_m, config.max_depth_m)
    met = compute_depth_metrics(pred, gt, False, config.min_depth_m, config.max_depth_m)
    if med is None or met is None:
        return None
    out: dict[str, float] = {"num_pixels": float(med.num_pixels)}
    for mode, m in (("median", med), ("metric", met)):
        out.update({f"{mode}_{k}": float(getattr(m, k)) for k in METRIC_NAMES})
    out["scale"] = med.scale
    b = si_boundary_f1(pred, gt) if (dense and config.boundary) else None
    out["boundary_f1"] = b.f1 if b else float("nan")
    out["boundary_precision"] = b.precision if b else float("nan")
    out["boundary_recall"] = b.recall if b else float("nan")
    use_mask = mask is not None and config.boundary
    out["mask_boundary_recall"] = si_boundary_recall(pred, np.asarray(mask)[rows, cols]) if use_mask else float("nan")
    return out


# -- bag reading ------------------------------------------------------------------------------
def _listing(topics: dict[str, Any]) -> str:
    return ", ".join(str(t) for t in sorted(topics.values(), key=lambda t: t.name)) or "none"


def select_truth_topic(topics: dict[str, Any], truth_topic: str | None, source: str, exclude: Sequence[str] = ()) -> tuple[str, str]:
    """The truth topic and its kind ("dense" or "lidar").

    Automatic choice: the only Image topic named like depth (a name part with "depth" or
    "disparity"), else the only PointCloud2 topic.

    Raises:
        BagError: none or several candidates, or a named topic absent / of another type; the
            message lists the bag's topics and types.
    """
    if truth_topic is not None:
        info = topics.get(truth_topic)
        if info is None or info.msgtype not in (IMAGE_TYPE, POINTCLOUD2_TYPE):
            found = f"is {info.msgtype}" if info else "is not in the bag"
            raise BagError(f"{source}: truth topic {truth_topic} {found} (need a depth Image or a PointCloud2); topics: {_listing(topics)}")
        return truth_topic, "dense" if info.msgtype == IMAGE_TYPE else "lidar"
    dense = [t for t in topics.values() if t.msgtype == IMAGE_TYPE and t.count > 0 and looks_like_depth(t.name) and t.name not in exclude]
    if len(dense) == 1:
        return dense[0].name, "dense"
    if len(dense) > 1:
        raise BagError(f"{source}: several depth image topics ({', '.join(str(t) for t in dense)}); name the truth with --truth-topic")
    clouds = [t for t in topics.values() if t.msgtype == POINTCLOUD2_TYPE and t.count > 0 and t.name not in exclude]
    if len(clouds) == 1:
        return clouds[0].name, "lidar"
    if len(clouds) > 1:
        raise BagError(f"{source}: several PointCloud2 topics ({', '.join(str(t) for t in clouds)}); name the truth with --truth-topic")
    raise BagError(f"{source}: no depth image (32FC1 / 16UC1) or LiDAR PointCloud2 topic to evaluate against; topics: {_listing(topics)}")


def _pose_matrix(position: Any, orientation: Any) -> np.ndarray:
    from depth_ros.bag.tf import quaternion_to_matrix

    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(orientation.x, orientation.y, orientation.z, orientation.w)
    T[:3, 3] = (position.x, position.y, position.z)
    return T


@dataclass
class _Trajectory:
    stamps_ns: np.ndarray
    T_world_body: np.ndarray
    body_frame: str

    def lookup(self, stamp_ns: int, tolerance_ns: int) -> np.ndarray | None:
        if not len(self.stamps_ns):
            return None
        k = int(np.searchsorted(self.stamps_ns, stamp_ns))
        best = min((i for i in (k - 1, k) if 0 <= i < len(self.stamps_ns)), key=lambda i: abs(int(self.stamps_ns[i]) - stamp_ns))
        return self.T_world_body[best] if abs(int(self.stamps_ns[best]) - stamp_ns) <= tolerance_ns else None

    def in_frame(self, T_body_frame: np.ndarray, frame: str) -> "_Trajectory":
        return _Trajectory(self.stamps_ns, self.T_world_body @ T_body_frame, frame)


def _read_trajectory(reader: Any, topic: str) -> _Trajectory:
    from depth_ros.msgconv import stamp_to_ns

    stamps, poses, body = [], [], ""
    for message in reader.messages([topic]):
        msg = reader.deserialize(message)
        try:
            stamps.append(stamp_to_ns(msg.header.stamp))
            poses.append(_pose_matrix(msg.pose.pose.position, msg.pose.pose.orientation))
        except InputError as exc:
            _log.debug("odometry message skipped: %s", exc)
            continue
        body = str(msg.child_frame_id)
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    T = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)[order]
    return _Trajectory(np.asarray(stamps, dtype=np.int64)[order], T, body)


def _odometry_topic(topics: dict[str, Any], name: str | None, source: str, required: bool) -> str | None:
    if name is not None:
        info = topics.get(name)
        if info is None or info.msgtype != ODOMETRY_TYPE:
            raise BagError(f"{source}: pose topic {name} {'is ' + info.msgtype if info else 'is not in the bag'}; need {ODOMETRY_TYPE}")
        return name
    odoms = [t.name for t in topics.values() if t.msgtype == ODOMETRY_TYPE and t.count > 0]
    if len(odoms) == 1:
        return odoms[0]
    if required and odoms:
        raise BagError(f"{source}: several odometry topics ({', '.join(odoms)}); name one with --pose-topic")
    return None


@dataclass
class _Truth:
    """The truth side of one bag: camera, truth topic, poses."""

    path: Path
    topic: str
    kind: str
    camera: Any  # CameraModel
    camera_frame: str
    trajectory: _Trajectory | None
    pose_note: str
    mask_topic: str | None = None
    image_topic: str = ""
    camera_info_topic: str = ""
    rectifier: Any = None  # a depth_ros.core.distortion.Rectifier when the camera is distorted


def _open_truth(bag: Path, config: EvalConfig) -> _Truth:
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader, select_camera_topics

    with BagReader(bag) as reader:
        topics = reader.topics
        mask_topic = config.mask_topic
        if mask_topic is None:
            mask_topic = _auto_mask_topic(reader, topics, config.image_topic)
        # the mask is an Image too: not a camera candidate (and read only for the boundary scores)
        cameras = {k: v for k, v in topics.items() if k != mask_topic}
        image_topic, info_topic = select_camera_topics(cameras, config.image_topic, config.camera_info_topic, source=str(bag))
        first_info = reader.deserialize(next(reader.messages([info_topic])))
        try:
            camera = msgconv.camera_info_to_model(first_info)
            rectifier = None
            if is_distorted(camera):
                # the model runs on rectified images (the frame pipeline's rectify: auto), so the
                # truth is compared in the rectified camera too: dense truth and masks remapped
                # (nearest), LiDAR projected through the rectified intrinsics
                rectifier = Rectifier(camera, *rectified_projection(first_info.p, first_info.r))
                camera = rectifier.rectified
        except InputError as exc:
            raise BagError(f"{bag}: camera_info {info_topic} unusable: {exc}") from None
        camera_frame = str(first_info.header.frame_id)
        topic, kind = select_truth_topic(topics, config.truth_topic, str(bag), exclude=(image_topic,))
        if topics[topic].count == 0:
            raise BagError(f"{bag}: truth topic {topic} has no messages")
        if config.mask_topic is not None:
            info = topics.get(config.mask_topic)
            if info is None or info.msgtype != IMAGE_TYPE:
                raise BagError(f"{bag}: mask topic {config.mask_topic} {'is ' + info.msgtype if info else 'is not in the bag'}; need an Image")
        tf = reader.static_transforms()
        trajectory, note = None, ""
        pose_topic = _odometry_topic(topics, config.pose_topic, str(bag), required=config.flicker)
        if kind == "lidar":
            lidar_frame = str(reader.deserialize(next(reader.messages([topic]))).header.frame_id)
            try:
                tf.lookup(camera_frame, lidar_frame)
            except InputError as exc:
                raise BagError(f"{bag}: LiDAR {topic} cannot be put in the camera frame: {exc}") from None
        if config.flicker and pose_topic is None:
            note = "no odometry topic for the camera motion"
        elif config.flicker and pose_topic is not None:
            traj = _read_trajectory(reader, pose_topic)
            try:
                trajectory = traj.in_frame(tf.lookup(traj.body_frame, camera_frame), camera_frame)
            except InputError as exc:
                note = f"{pose_topic}'s frame {traj.body_frame!r} does not connect to the camera: {exc}"
    used_mask = mask_topic if config.boundary else None
    return _Truth(bag, topic, kind, camera, camera_frame, trajectory, note, used_mask, image_topic, info_topic, rectifier)


def _auto_mask_topic(reader: Any, topics: dict[str, Any], image_topic: str | None) -> str | None:
    """The only Image topic named like a mask (not the named camera) whose first message is of
    a :data:`MASK_DTYPES` encoding; None when there is none or several."""
    found = [t.name for t in topics.values() if t.msgtype == IMAGE_TYPE and t.count > 0 and looks_like_mask(t.name) and t.name != image_topic]
    if len(found) != 1:
        if found:
            _log.info("several mask-like topics (%s): no mask boundary recall unless one is named with --mask-topic", ", ".join(found))
        return None
    first = reader.deserialize(next(reader.messages([found[0]])))
    if str(getattr(first, "encoding", "")) not in MASK_DTYPES:
        _log.info("%s has encoding %r, not a mask encoding (%s): not used", found[0], first.encoding, ", ".join(MASK_DTYPES))
        return None
    return found[0]


def _iter_truth(truth: _Truth) -> Iterator[tuple[int, np.ndarray] | None]:
    """(stamp_ns, depth (H, W) metres) of every truth message, in bag order; None for a
    message that cannot be used (bad stamp, malformed image or cloud)."""
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    with BagReader(truth.path) as reader:
        tf = reader.static_transforms()
        T_cache: dict[str, np.ndarray] = {}
        for message in reader.messages([truth.topic]):
            msg = reader.deserialize(message)
            try:
                stamp = msgconv.stamp_to_ns(msg.header.stamp)
                if truth.kind == "dense":
                    if str(msg.encoding) not in DEPTH_ENCODINGS:
                        raise BagError(f"{truth.path}: truth {truth.topic} has encoding {msg.encoding!r}; need 32FC1 (m) or 16UC1 (mm)")
                    depth = msgconv.image_to_depth_m(msg)
                    if truth.rectifier is not None:
                        depth = truth.rectifier.rectify_depth(depth)
                else:
                    frame = str(msg.header.frame_id)
                    if frame not in T_cache:
                        try:
                            T_cache[frame] = tf.lookup(truth.camera_frame, frame)
                        except InputError as exc:
                            raise BagError(f"{truth.path}: LiDAR {truth.topic} cannot be put in the camera frame: {exc}") from None
                    T = T_cache[frame]
                    xyz = msgconv.pointcloud2_to_xyz(msg).astype(np.float64) @ T[:3, :3].T + T[:3, 3]
                    depth = project_points_to_depth(xyz, truth.camera.K, truth.camera.width, truth.camera.height)
            except InputError as exc:
                _log.debug("truth message skipped: %s", exc)
                yield None
                continue
            yield stamp, depth


def _read_masks(truth: _Truth) -> dict[int, np.ndarray]:
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    if truth.mask_topic is None:
        return {}
    masks = {}
    with BagReader(truth.path) as reader:
        for message in reader.messages([truth.mask_topic]):
            msg = reader.deserialize(message)
            try:
                mask = mask_from_image(msg)
                if truth.rectifier is not None:
                    mask = np.nan_to_num(truth.rectifier.rectify_depth(mask.astype(np.float32))).astype(mask.dtype)
                masks[msgconv.stamp_to_ns(msg.header.stamp)] = mask
            except InputError as exc:
                raise BagError(f"{truth.path}: {truth.mask_topic}: {exc}") from None
    return masks


def _read_predictions(pred_bag: Path, topic: str | None) -> tuple[dict[int, np.ndarray], str]:
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    with BagReader(pred_bag) as reader:
        topics = reader.topics
        if topic is None:
            found = [t.name for t in topics.values() if t.msgtype == IMAGE_TYPE and t.name.endswith("/depth/image")]
            if len(found) != 1:
                what = "no" if not found else "several"
                raise BagError(f"{pred_bag}: {what} depth output topic (.../depth/image) written by depth-ros infer; name it with --pred-topic; topics: {_listing(topics)}")
            topic = found[0]
        elif topic not in topics:
            raise BagError(f"{pred_bag}: no topic {topic}; topics: {_listing(topics)}")
        preds: dict[int, np.ndarray] = {}
        for message in reader.messages([topic]):
            msg = reader.deserialize(message)
            try:
                preds[msgconv.stamp_to_ns(msg.header.stamp)] = msgconv.image_to_depth_m(msg)
            except InputError as exc:
                raise BagError(f"{pred_bag}: {topic} is not a depth image: {exc}") from None
    if not preds:
        raise BagError(f"{pred_bag}: {topic} has no depth images")
    return preds, topic


def _read_pred_trajectory(pred_bag: Path, exclude_topic: str | None) -> tuple[str, _Trajectory] | None:
    from depth_ros.bag.reader import BagReader

    with BagReader(pred_bag) as reader:
        odoms = [t.name for t in reader.topics.values() if t.msgtype == ODOMETRY_TYPE and t.count > 1 and t.name != exclude_topic]
        if len(odoms) != 1:
            return None
        return odoms[0], _read_trajectory(reader, odoms[0])


# -- evaluation -------------------------------------------------------------------------------
@dataclass
class ModelReport:
    """Results of one model (or one prediction set) over all bags."""

    name: str
    source: str
    frames: list[dict[str, Any]] = field(default_factory=list)
    bags: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    sheet: list["_SheetCandidate"] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class _SheetCandidate:
    """A frame that may go on the contact sheet: a bag's worst or median (per-frame median-scaled
    AbsRel). Its prediction is kept (two per bag); truth and image are read again from the bag."""

    truth: _Truth
    stamp_ns: int
    pred_m: np.ndarray
    abs_rel: float
    scale: float


def _sheet_candidates(rows: list[dict[str, Any]], predictions: dict[int, np.ndarray], truth: _Truth) -> list[_SheetCandidate]:
    """The worst and the median row of one bag's rows (one candidate when they coincide)."""
    if not rows:
        return []
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["median_abs_rel"], i))
    picks = dict.fromkeys([order[-1], order[(len(order) - 1) // 2]])
    return [
        _SheetCandidate(truth, int(rows[i]["stamp_ns"]), predictions[int(rows[i]["pred_stamp_ns"])], float(rows[i]["median_abs_rel"]), float(rows[i]["scale"]))
        for i in picks
    ]


def _sheet_frames(report: ModelReport) -> list[Any]:
    """Contact-sheet rows of a report: its worst frame and the frame nearest its median
    per-frame AbsRel (among each bag's worst and median), truth and image read from the bag."""
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    from depth_ros_training.eval.plots import SheetFrame

    if not report.sheet or not report.frames:
        return []
    median = float(np.median([r["median_abs_rel"] for r in report.frames]))
    worst = max(report.sheet, key=lambda c: c.abs_rel)
    middle = min(report.sheet, key=lambda c: (abs(c.abs_rel - median), c.abs_rel))
    rows = []
    for what, cand in (("worst", worst), ("median", middle)) if middle is not worst else (("worst", worst),):
        gt = next((d for item in _iter_truth(cand.truth) if item is not None for s, d in (item,) if s == cand.stamp_ns), None)
        if gt is None or gt.shape != cand.pred_m.shape:
            continue
        rgb = None
        with BagReader(cand.truth.path) as reader:
            topic = reader.topics.get(cand.truth.image_topic)
            for message in reader.messages([cand.truth.image_topic]) if topic is not None else ():
                msg = reader.deserialize(message)
                try:
                    if msgconv.stamp_to_ns(msg.header.stamp) != cand.stamp_ns:
                        continue
                    image = msgconv.compressed_to_rgb(msg) if topic.msgtype.endswith("CompressedImage") else msgconv.image_to_rgb(msg)
                except InputError:
                    continue
                if cand.truth.rectifier is not None and image.shape[:2] == gt.shape:
                    image = cand.truth.rectifier.rectify_image(image)
                rgb = image if image.shape[:2] == gt.shape else None
                break
        label = f"{what}: {cand.truth.path.name}\n@ {cand.stamp_ns / 1e9:.3f} s\nAbsRel {cand.abs_rel:.3f} (median-scaled)"
        rows.append(SheetFrame(label, rgb, gt, cand.pred_m, scale=cand.scale))
    return rows


class _Accumulator:
    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        edges = tuple(e for e in config.range_edges_m if e < config.max_depth_m) + (config.max_depth_m,)
        self.ranges = {m: RangeErrors(edges, median_scaling=(m == "median"), min_depth_m=config.min_depth_m, max_depth_m=config.max_depth_m) for m in ("median", "metric")}

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        rows, cols = _crop_box(gt.shape, self.config.crop)
        for r in self.ranges.values():
            r.add(pred[rows, cols], _capped(gt[rows, cols], self.config))


def _flicker(prev: tuple[np.ndarray, np.ndarray, np.ndarray, float], cur: tuple[np.ndarray, np.ndarray, np.ndarray, float], truth: _Truth, config: EvalConfig) -> dict[str, float]:
    pred_a, gt_a, T_w_a, scale_a = prev
    pred_b, gt_b, T_w_b, _ = cur
    T_b_a = np.linalg.inv(T_w_b) @ T_w_a
    mask = np.zeros(gt_a.shape, dtype=bool)
    mask[_crop_box(gt_a.shape, config.crop)] = True
    dense = truth.kind == "dense"
    ga, gb = (_capped(gt_a, config), _capped(gt_b, config)) if dense else (None, None)
    # one set of correspondences (from the truth where dense) for the three depths compared
    geometry = pair_geometry(ga if dense else pred_a, T_b_a, truth.camera.K, gb, config.static_tol, mask)
    out = {
        "flicker": flicker_on(geometry, pred_a, pred_b).rel,
        # one factor for both frames (frame a's gt/pred): removes the absolute scale of an
        # up-to-scale model but keeps its frame-to-frame scale changes
        "flicker_scaled": flicker_on(geometry, scale_a * pred_a, scale_a * pred_b).rel,
        "flicker_truth": flicker_on(geometry, ga, gb).rel if dense else float("nan"),
    }
    return out


def _evaluate_bag(report: ModelReport, acc: _Accumulator, preds: dict[int, np.ndarray], truth: _Truth, config: EvalConfig, progress: Callable[[int], None] | None) -> dict[str, Any]:
    pred_stamps = np.array(sorted(preds), dtype=np.int64)
    used: set[int] = set()
    counts = {"truth": 0, "predictions": len(preds), "matched": 0, "no_valid_pixels": 0, "all_nan_predictions": 0}
    prev: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
    first_truth_ns = None
    masks = _read_masks(truth)
    counts["masks"] = 0
    counts["bad_truth_messages"] = 0
    for item in _iter_truth(truth):
        counts["truth"] += 1
        if progress:
            progress(1)
        if item is None:
            counts["bad_truth_messages"] += 1
            prev = None
            continue
        stamp, gt = item
        first_truth_ns = stamp if first_truth_ns is None else first_truth_ns
        k = int(np.searchsorted(pred_stamps, stamp))
        near = [i for i in (k - 1, k) if 0 <= i < len(pred_stamps)]
        best = min(near, key=lambda i: abs(int(pred_stamps[i]) - stamp)) if near else None
        if best is None or abs(int(pred_stamps[best]) - stamp) > config.stamp_tolerance_ns or best in used:
            prev = None
            continue
        used.add(best)
        pred = preds[int(pred_stamps[best])]
        if pred.shape != gt.shape:
            raise BagError(f"{truth.path}: prediction {pred.shape[1]}x{pred.shape[0]} and truth {truth.topic} {gt.shape[1]}x{gt.shape[0]} differ in size")
        counts["matched"] += 1
        if not np.isfinite(pred).any():
            counts["all_nan_predictions"] += 1
            prev = None
            continue
        mask = _nearest(masks, stamp, config.stamp_tolerance_ns)
        if mask is not None and mask.shape != gt.shape:
            raise BagError(f"{truth.path}: mask {truth.mask_topic} {mask.shape[1]}x{mask.shape[0]} and truth {gt.shape[1]}x{gt.shape[0]} differ in size")
        counts["masks"] += mask is not None
        row = frame_metrics(pred, gt, config, truth.kind == "dense", mask)
        if row is None:
            counts["no_valid_pixels"] += 1
            prev = None
            continue
        acc.add(pred, gt)
        row = {"model": report.name, "bag": str(truth.path), "stamp_ns": stamp, "pred_stamp_ns": int(pred_stamps[best])} | row
        row.update(flicker=float("nan"), flicker_scaled=float("nan"), flicker_truth=float("nan"))
        T_w = truth.trajectory.lookup(stamp, config.stamp_tolerance_ns) if truth.trajectory is not None else None
        cur = (pred.astype(np.float64), gt.astype(np.float64), T_w, row["scale"]) if T_w is not None else None
        if cur is not None and prev is not None:
            row.update(_flicker(prev, cur, truth, config))
        prev = cur
        report.frames.append(row)
    if counts["matched"] == 0:
        pred_range = f"{pred_stamps[0]}..{pred_stamps[-1]}" if len(pred_stamps) else "none"
        raise BagError(
            f"{truth.path}: no prediction matches a truth stamp within {config.stamp_tolerance_ns / 1e9:g} s "
            f"({counts['truth']} truth messages on {truth.topic} from {first_truth_ns}, {len(preds)} predictions at {pred_range} ns); "
            "raise --stamp-tolerance or check the clocks"
        )
    if counts["all_nan_predictions"] == counts["matched"]:
        raise DepthRosError(f"{report.name}: the prediction is NaN everywhere in all {counts['matched']} matched frames of {truth.path}")
    counts["unmatched_truth"] = counts["truth"] - counts["matched"]
    counts["unmatched_predictions"] = len(preds) - counts["matched"]
    return counts


def _nearest(items: dict[int, np.ndarray], stamp: int, tolerance_ns: int) -> np.ndarray | None:
    if not items:
        return None
    key = min(items, key=lambda k: (abs(k - stamp), k))
    return items[key] if abs(key - stamp) <= tolerance_ns else None


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _summarise(report: ModelReport, acc: _Accumulator, config: EvalConfig) -> dict[str, Any]:
    from depth_ros_training.eval.metrics import DepthMetrics

    rows = report.frames
    if not rows:
        raise DepthRosError(f"{report.name}: no frame with a valid truth pixel in [{config.min_depth_m:g}, {config.max_depth_m:g}] m")
    out: dict[str, Any] = {"aggregation": AGGREGATION, "frames": len(rows)}
    for mode in ("median", "metric"):
        items = [
            DepthMetrics(**{k: r[f"{mode}_{k}"] for k in METRIC_NAMES}, num_pixels=int(r["num_pixels"]), scale=r["scale"] if mode == "median" else 1.0)
            for r in rows
        ]
        out[mode] = mean_metrics(items).as_dict()
        out[f"{mode}_by_range"] = acc.ranges[mode].result()
    out["scale_ratio"] = scale_ratio_stats(np.array([r["scale"] for r in rows]))
    f1 = [r["boundary_f1"] for r in rows if math.isfinite(r["boundary_f1"])]
    out["boundary"] = (
        {"f1": _mean(f1), "precision": _mean([r["boundary_precision"] for r in rows]), "recall": _mean([r["boundary_recall"] for r in rows]), "frames": len(f1)}
        if f1 else None
    )
    mask_recall = [r["mask_boundary_recall"] for r in rows if math.isfinite(r["mask_boundary_recall"])]
    out["mask_boundary_recall"] = {"recall": _mean(mask_recall), "frames": len(mask_recall)} if mask_recall else None
    pairs = [r for r in rows if math.isfinite(r["flicker"])]
    out["flicker"] = (
        {k: _mean([r[k] for r in pairs]) for k in ("flicker", "flicker_scaled", "flicker_truth")} | {"pairs": len(pairs)}
        if pairs else None
    )
    out["odometry"] = _odometry_summary(report.bags)
    return out


#: The odometry figures of the summary: name -> path in a bag's ``evaluate_trajectory`` result.
_ODOMETRY_FIGURES = {
    "ate_se3_rmse_m": ("se3", "ate", "rmse_m"),
    "ate_sim3_rmse_m": ("sim3", "ate", "rmse_m"),
    "sim3_scale": ("sim3", "ate", "scale"),
    "rpe_se3_translation_pct": ("se3", "rpe", "translation_pct"),
    "rpe_sim3_translation_pct": ("sim3", "rpe", "translation_pct"),
    "rpe_rotation_deg_per_m": ("se3", "rpe", "rotation_deg_per_m"),
}


def _odometry_summary(bags: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean over the bags with an odometry result of each :data:`_ODOMETRY_FIGURES`; None
    when no bag has one."""
    results = [b["odometry"] for b in bags if isinstance(b.get("odometry"), dict) and "se3" in b["odometry"]]
    if not results:
        return None

    def figure(result: dict[str, Any], path: tuple[str, ...]) -> float:
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return float(value) if isinstance(value, (int, float)) else float("nan")

    out: dict[str, Any] = {name: _mean([figure(r, path) for r in results]) for name, path in _ODOMETRY_FIGURES.items()}
    return out | {"bags": len(results), "aggregation": "mean over bags"}


def _run_model(model: str, truth: _Truth, out_path: Path, config: EvalConfig, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from depth_ros.bag.infer import InferConfig, infer_bag

    bag = truth.path
    try:
        infer_config = InferConfig(  # the camera the truth was read for
            image_topic=truth.image_topic, camera_info_topic=truth.camera_info_topic, lidar_topic=config.lidar_topic,
            cloud=False, copy_inputs=False, overwrite=True, backend=config.backend, threads=config.threads, scale=config.scale,
            pose=config.pose,
        )
    except ValueError as exc:
        raise DepthRosError(f"bad option: {exc}") from None
    summary = infer_bag(bag, out_path, model, infer_config, progress=progress, pose_model=config.pose_model)
    out = {
        "model": summary.model, "output_kind": summary.output_kind, "backend": summary.backend,
        "scale_source": summary.scale_source, "frames_in": summary.frames_in, "frames_out": summary.frames_out,
        "skipped": dict(summary.skipped), "fps": summary.fps,
    }
    if config.pose_model is not None:
        out["pose"] = {"model": summary.pose_model, "poses": summary.odometry_out, "resets": summary.odometry_resets,
                       "not_written": dict(summary.pose_skipped)}
    return out


def _unique_names(paths: Sequence[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    return [s if stems.count(s) == 1 else f"{s}#{i + 1}" for i, s in enumerate(stems)]


def evaluate(
    bags: Sequence[str | Path],
    config: EvalConfig,
    *,
    models: Sequence[str | Path] = (),
    preds: Sequence[str | Path] = (),
    progress: Callable[[str], Callable[[int], None] | None] | None = None,
) -> list[ModelReport]:
    """Evaluate models (run on every bag) or prediction bags (one per truth bag).

    Args:
        bags: truth bags (each with a camera and a depth or LiDAR truth topic).
        config: options.
        models: model files for :func:`~depth_ros.bag.infer.infer_bag`; or
        preds: MCAPs written by ``depth-ros infer``, paired with ``bags`` in order.
        progress: ``progress(description)`` returns a callback called with the count of each
            step done (images inferred, truth messages read), or None.

    Returns:
        One :class:`ModelReport` per model / prediction set, with per-frame rows and a summary.

    Raises:
        DepthRosError: unusable bag, model or options; a one-line message.
    """
    bags = [Path(b) for b in bags]
    if not bags:
        raise DepthRosError("no bag to evaluate on")
    if bool(models) == bool(preds):
        raise DepthRosError("give either models (--model) or prediction bags (--pred), not both or neither")
    if preds and len(preds) != len(bags):
        raise DepthRosError(f"--pred needs one prediction bag per truth bag, got {len(preds)} for {len(bags)}")
    if preds and config.pose_model is not None:
        raise DepthRosError("--pose-model runs beside --model; a --pred bag brings its own odometry (depth-ros infer --pose-model)")
    truths = [_open_truth(b, config) for b in bags]
    reports: list[ModelReport] = []
    sources = [str(m) for m in (models or preds)]
    names = _unique_names(sources)
    with tempfile.TemporaryDirectory(prefix="depth_eval_") as tmp:
        for index, (name, source) in enumerate(zip(names, sources)):
            report = ModelReport(name=name, source=source)
            acc = _Accumulator(config)
            pairs = [(Path(preds[index]), truths[index])] if preds else [(None, t) for t in truths]
            for pred_path, truth in pairs:
                inference = None
                if pred_path is None:
                    pred_path = Path(tmp) / f"{index}_{len(report.bags)}.mcap"
                    bar = progress(f"{name}: infer {truth.path.name}") if progress else None
                    inference = _run_model(source, truth, pred_path, config, bar)
                _score_bag(report, acc, pred_path, truth, config, progress, inference)
            report.summary = _summarise(report, acc, config)
            reports.append(report)
    return reports


def evaluate_predictions(
    pairs: Sequence[tuple[str | Path, str | Path]],
    config: EvalConfig,
    *,
    name: str = "prediction",
    progress: Callable[[str], Callable[[int], None] | None] | None = None,
) -> ModelReport:
    """Depth already written (``depth-ros infer`` outputs) scored against truth bags, the
    frames of all pairs pooled into one report (``depth-ros demo``'s held-out scenes).

    Args:
        pairs: (prediction bag, truth bag) per scene.
        config: options (as :func:`evaluate`).
        name: the report's name.
        progress: as :func:`evaluate`.

    Returns:
        One :class:`ModelReport`: ``summary`` is the mean over the frames of all pairs, each
        row of ``frames`` names its truth ``bag`` (per-scene figures are the means of a bag's
        rows), ``bags`` one entry per pair.

    Raises:
        DepthRosError: unusable bag or options; a one-line message.
    """
    if not pairs:
        raise DepthRosError("no (prediction, truth) bag pair to evaluate")
    report = ModelReport(name=name, source=", ".join(str(p) for p, _ in pairs))
    acc = _Accumulator(config)
    for pred_path, bag in pairs:
        _score_bag(report, acc, Path(pred_path), _open_truth(Path(bag), config), config, progress, None)
    report.summary = _summarise(report, acc, config)
    return report


def _score_bag(
    report: ModelReport,
    acc: _Accumulator,
    pred_path: Path,
    truth: _Truth,
    config: EvalConfig,
    progress: Callable[[str], Callable[[int], None] | None] | None,
    inference: dict[str, Any] | None,
) -> None:
    """Adds one prediction bag's frames against its truth to ``report`` and ``acc``."""
    bag_info: dict[str, Any] = {"bag": str(truth.path), "truth_topic": truth.topic, "truth_kind": truth.kind, "mask_topic": truth.mask_topic}
    if inference is not None:
        bag_info["inference"] = inference
    predictions, pred_topic = _read_predictions(pred_path, config.pred_topic)
    bag_info["pred_topic"] = pred_topic
    bar = progress(f"{report.name}: evaluate {truth.path.name}") if progress else None
    first_row = len(report.frames)
    bag_info["frames"] = _evaluate_bag(report, acc, predictions, truth, config, bar)
    report.sheet.extend(_sheet_candidates(report.frames[first_row:], predictions, truth))
    del predictions
    if config.flicker and truth.trajectory is None:
        bag_info["flicker_note"] = truth.pose_note
    # a model run writes odometry only with a pose model; a --pred bag may carry a recorded one
    bag_info["odometry"] = _odometry(pred_path, truth, config) if inference is None or config.pose_model else None
    report.bags.append(bag_info)


def _odometry(pred_path: Path, truth: _Truth, config: EvalConfig) -> dict[str, Any] | None:
    """ATE / RPE of a prediction bag's odometry against the truth's, when both exist."""
    from depth_ros.bag.reader import BagReader

    found = _read_pred_trajectory(pred_path, None)
    if found is None:
        return {"error": "the pose model wrote fewer than two poses"} if config.pose_model else None
    topic, est = found
    with BagReader(truth.path) as reader:
        ref_topic = _odometry_topic(reader.topics, config.pose_topic, str(truth.path), required=False)
        if ref_topic is None:
            if config.pose_model:  # asked for: say why there is no figure
                return {"topic": topic, "reference": None, "error": f"{truth.path}: no single nav_msgs/Odometry topic to compare with (name one with --pose-topic)"}
            return None
        ref = _read_trajectory(reader, ref_topic)
        tf = reader.static_transforms()
    if est.body_frame and ref.body_frame and est.body_frame != ref.body_frame:
        try:
            ref = ref.in_frame(tf.lookup(ref.body_frame, est.body_frame), est.body_frame)
        except InputError:
            pass  # compared as they are: the offset between the two bodies counts as error
    try:
        result = evaluate_trajectory(ref.stamps_ns, ref.T_world_body, est.stamps_ns, est.T_world_body, config.stamp_tolerance_ns)
    except ValueError as exc:
        return {"topic": topic, "reference": ref_topic, "error": str(exc)}
    return {"topic": topic, "reference": ref_topic} | result


# -- outputs ----------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _get(*keys: str) -> Callable[[dict[str, Any]], str]:
    def read(summary: dict[str, Any]) -> str:
        value: Any = summary
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return _fmt(value)

    return read


_TABLE_ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("frames", lambda s: str(s["frames"])),
    *((f"{label} (median-scaled)", _get("median", key)) for key, label in (("abs_rel", "AbsRel"), ("sq_rel", "SqRel"), ("rmse", "RMSE m"), ("rmse_log", "RMSE log"), ("delta1", "delta1"))),
    *((f"{label} (metric)", _get("metric", key)) for key, label in (("abs_rel", "AbsRel"), ("sq_rel", "SqRel"), ("rmse", "RMSE m"), ("rmse_log", "RMSE log"), ("delta1", "delta1"), ("delta2", "delta2"), ("delta3", "delta3"))),
    ("scale gt/pred mean", _get("scale_ratio", "mean")),
    ("scale gt/pred CV", _get("scale_ratio", "cv")),
    ("boundary F1", _get("boundary", "f1")),
    ("boundary recall (mask)", _get("mask_boundary_recall", "recall")),
    ("flicker", _get("flicker", "flicker")),
    ("flicker (scaled)", _get("flicker", "flicker_scaled")),
    ("flicker of the truth", _get("flicker", "flicker_truth")),
    ("ATE RMSE m (se3)", _get("odometry", "ate_se3_rmse_m")),
    ("ATE RMSE m (sim3)", _get("odometry", "ate_sim3_rmse_m")),
    ("RPE trans % (se3)", _get("odometry", "rpe_se3_translation_pct")),
    ("RPE trans % (sim3)", _get("odometry", "rpe_sim3_translation_pct")),
    ("RPE rot deg/m", _get("odometry", "rpe_rotation_deg_per_m")),
)


def format_table(reports: Sequence[ModelReport]) -> str:
    """Models side by side, one metric a row."""
    header = ["", *[r.name for r in reports]]
    rows = [header] + [[label, *[fmt(r.summary) for r in reports]] for label, fmt in _TABLE_ROWS]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"({AGGREGATION})")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_outputs(reports: Sequence[ModelReport], out_dir: str | Path, config: EvalConfig, *, plots: bool = True) -> dict[str, Path]:
    """Write ``summary.json``, ``frames.csv`` and (``plots``) the PNG plots of
    :mod:`.plots` into ``out_dir`` (created); NaN -> null / empty."""
    try:
        return _write_outputs(reports, Path(out_dir), config, plots)
    except OSError as exc:
        raise DepthRosError(f"cannot write the results into {out_dir}: {exc.strerror or exc}") from None


def _write_outputs(reports: Sequence[ModelReport], out: Path, config: EvalConfig, plots: bool) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.json", "frames": out / "frames.csv"}
    if plots:
        from depth_ros_training.eval.plots import write_plots

        paths.update(write_plots(
            {r.name: r.summary for r in reports}, {r.name: r.frames for r in reports},
            {r.name: _sheet_frames(r) for r in reports}, out,
        ))
    summary = {
        "aggregation": AGGREGATION,
        "settings": _json_safe(asdict(config)),
        "models": [{"name": r.name, "source": r.source, "bags": r.bags, **r.summary} for r in reports],
        "plots": sorted(p.name for k, p in paths.items() if k not in ("summary", "frames")),
    }
    paths["summary"].write_text(json.dumps(_json_safe(summary), indent=2, sort_keys=True) + "\n")
    rows = [row for r in reports for row in r.frames]
    columns = list(rows[0]) if rows else ["model", "bag", "stamp_ns"]
    with paths["frames"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    return paths
