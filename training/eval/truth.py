"""The truth side of an evaluation, read from bags: depth truth (a dense depth Image or a LiDAR
PointCloud2 projected into the camera), object masks, odometry trajectories, and the depth images
and odometry of a prediction bag written by ``depth-ros infer``.

Truth depth is (H, W) float32 metres, NaN where there is none; a distorted camera's truth and
masks are remapped into its rectified camera (the one the model runs on).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from depth_ros.bag.odometry_msg import ODOMETRY_TYPE
from depth_ros.bag.reader import IMAGE_TYPE, POINTCLOUD2_TYPE, looks_like_depth, looks_like_mask
from depth_ros.errors import BagError, InputError

__all__ = [
    "DEPTH_ENCODINGS",
    "MASK_DTYPES",
    "Trajectory",
    "Truth",
    "auto_mask_topic",
    "iter_truth",
    "mask_from_image",
    "odometry_topic",
    "project_points_to_depth",
    "read_masks",
    "read_pred_trajectory",
    "read_predictions",
    "read_trajectory",
    "select_truth_topic",
    "topic_listing",
]

_log = logging.getLogger(__name__)

DEPTH_ENCODINGS = ("32FC1", "16UC1")
#: Mask encodings: 8-bit ones are alpha (foreground where > 0.1 of full scale, as Depth Pro's
#: matting masks), wider ones instance / object ids (foreground where not 0).
MASK_DTYPES = {"mono8": "u1", "8UC1": "u1", "16UC1": "u2", "mono16": "u2", "32SC1": "i4"}


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



def topic_listing(topics: dict[str, Any]) -> str:
    """``name (Type, N msgs)`` of every topic, sorted by name, for error messages ("none" when empty)."""
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
            raise BagError(f"{source}: truth topic {truth_topic} {found} (need a depth Image or a PointCloud2); topics: {topic_listing(topics)}")
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
    raise BagError(f"{source}: no depth image (32FC1 / 16UC1) or LiDAR PointCloud2 topic to evaluate against; topics: {topic_listing(topics)}")


def _pose_matrix(position: Any, orientation: Any) -> np.ndarray:
    from depth_ros.bag.tf import quaternion_to_matrix

    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(orientation.x, orientation.y, orientation.z, orientation.w)
    T[:3, 3] = (position.x, position.y, position.z)
    return T


@dataclass
class Trajectory:
    """Poses of a body over time: ``stamps_ns`` (N,) int64 increasing, ``T_world_body`` (N, 4, 4)
    (the body in the odometry frame, metres), ``body_frame`` its frame id."""

    stamps_ns: np.ndarray
    T_world_body: np.ndarray
    body_frame: str

    def lookup(self, stamp_ns: int, tolerance_ns: int) -> np.ndarray | None:
        """``T_world_body`` (4, 4) at the stamp nearest ``stamp_ns``, or None beyond ``tolerance_ns``."""
        if not len(self.stamps_ns):
            return None
        k = int(np.searchsorted(self.stamps_ns, stamp_ns))
        best = min((i for i in (k - 1, k) if 0 <= i < len(self.stamps_ns)), key=lambda i: abs(int(self.stamps_ns[i]) - stamp_ns))
        return self.T_world_body[best] if abs(int(self.stamps_ns[best]) - stamp_ns) <= tolerance_ns else None

    def in_frame(self, T_body_frame: np.ndarray, frame: str) -> "Trajectory":
        """The trajectory of ``frame`` rigidly attached to the body: ``T_world_frame = T_world_body @ T_body_frame``."""
        return Trajectory(self.stamps_ns, self.T_world_body @ T_body_frame, frame)


def read_trajectory(reader: Any, topic: str) -> Trajectory:
    """Every nav_msgs/Odometry of ``topic`` in a BagReader, sorted by header stamp (a message whose
    stamp or pose cannot be read is skipped); the body frame is the last ``child_frame_id``."""
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
    return Trajectory(np.asarray(stamps, dtype=np.int64)[order], T, body)


def odometry_topic(topics: dict[str, Any], name: str | None, source: str, required: bool) -> str | None:
    """The nav_msgs/Odometry topic: ``name`` (checked), else the only one; None when there is none
    (or several and not ``required``).

    Raises:
        BagError: ``name`` absent or of another type; several topics when ``required``.
    """
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
class Truth:
    """The truth side of one bag: camera, truth topic, poses."""

    path: Path
    topic: str
    kind: str
    camera: Any  # CameraModel
    camera_frame: str
    trajectory: Trajectory | None
    pose_note: str
    mask_topic: str | None = None
    image_topic: str = ""
    camera_info_topic: str = ""
    rectifier: Any = None  # a depth_ros.core.distortion.Rectifier when the camera is distorted



def auto_mask_topic(reader: Any, topics: dict[str, Any], image_topic: str | None) -> str | None:
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


def iter_truth(truth: Truth) -> Iterator[tuple[int, np.ndarray] | None]:
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


def read_masks(truth: Truth) -> dict[int, np.ndarray]:
    """Object masks of the truth bag by header stamp, (H, W) bool, rectified like the truth; {} without a mask topic.

    Raises:
        BagError: a mask message that cannot be read.
    """
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


def read_predictions(pred_bag: Path, topic: str | None) -> tuple[dict[int, np.ndarray], str]:
    """The depth images (H, W) metres of a prediction bag by header stamp, and their topic
    (``topic``, or the only ``.../depth/image``).

    Raises:
        BagError: no such topic, none or several candidates, a message that is not a depth image, no images.
    """
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    with BagReader(pred_bag) as reader:
        topics = reader.topics
        if topic is None:
            found = [t.name for t in topics.values() if t.msgtype == IMAGE_TYPE and t.name.endswith("/depth/image")]
            if len(found) != 1:
                what = "no" if not found else "several"
                raise BagError(f"{pred_bag}: {what} depth output topic (.../depth/image) written by depth-ros infer; name it with --pred-topic; topics: {topic_listing(topics)}")
            topic = found[0]
        elif topic not in topics:
            raise BagError(f"{pred_bag}: no topic {topic}; topics: {topic_listing(topics)}")
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


def read_pred_trajectory(pred_bag: Path, exclude_topic: str | None) -> tuple[str, Trajectory] | None:
    """(topic, trajectory) of the only nav_msgs/Odometry topic of a prediction bag with two or more
    messages (``exclude_topic`` aside), or None."""
    from depth_ros.bag.reader import BagReader

    with BagReader(pred_bag) as reader:
        odoms = [t.name for t in reader.topics.values() if t.msgtype == ODOMETRY_TYPE and t.count > 1 and t.name != exclude_topic]
        if len(odoms) != 1:
            return None
        return odoms[0], read_trajectory(reader, odoms[0])
