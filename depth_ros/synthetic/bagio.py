"""Write a rendered synthetic sequence as a rosbag2 storage file (``depth-ros synth``).

Path convention (the same as every bag the package writes, see depth_ros.bag.writer): the
output is ONE self-contained storage file, ``out.mcap`` (MCAP storage) or ``out.db3`` (sqlite3
storage), not a rosbag2 directory; rosbags' AnyReader, the ``mcap`` tools, Foxglove and
``ros2 bag`` open it directly. A path without a suffix gets the one of ``config.storage``
(``auto`` -> ``.mcap``). The file is written next to the target and renamed into place only
when complete: on failure nothing appears under the target name.

Topics (every message of frame i carries frame i's stamp; ``/tf_static`` the first stamp):

=============================  ================================  =====================
topic                          type                              frame_id
=============================  ================================  =====================
/camera/image_raw              sensor_msgs/msg/Image rgb8        camera_optical_frame
/camera/image_raw/compressed   sensor_msgs/msg/CompressedImage   camera_optical_frame
/camera/camera_info            sensor_msgs/msg/CameraInfo        camera_optical_frame
/camera/depth/ground_truth     sensor_msgs/msg/Image 32FC1 (m)   camera_optical_frame
/camera/depth/relative_inverse sensor_msgs/msg/Image 32FC1       camera_optical_frame
/camera/object_mask            sensor_msgs/msg/Image 16UC1 (id)  camera_optical_frame
/odom                          nav_msgs/msg/Odometry             odom -> base_link
/lidar/points                  sensor_msgs/msg/PointCloud2 xyz   lidar_link
/tf_static                     tf2_msgs/msg/TFMessage            base_link -> camera_optical_frame, lidar_link
=============================  ================================  =====================

(``/camera/image_raw/compressed`` only with ``config.jpeg``; ``/lidar/points`` only with
``config.lidar_beams > 0``; ``/camera/object_mask`` only with ``config.object_mask``;
``/camera/depth/relative_inverse`` only with ``config.relative_label``.)

``/camera/depth/relative_inverse`` is a relative label (training's ``relative_inverse_depth`` kind
through ``gt_topic``): ``scale / depth_m + shift`` with one (scale, shift) per bag drawn from the
seed (:attr:`~depth_ros.synthetic.config.SynthConfig.relative_scale_shift`: scale log-uniform in
[0.5, 5] per metre, shift uniform in [0, 1]), NaN where the depth is not finite and positive.

``/camera/object_mask`` is registered to the camera pixel for pixel (same size, frame and stamp
as the image): the instance id of the object each pixel sees, 0 for the room (floor, ceiling,
walls) and ``k + 1`` for box ``k`` (:attr:`~depth_ros.synthetic.render.Frame.instance_id`), the
mask of Depth Pro's boundary recall (``depth-ros-train eval``). It is on by default
(``object_mask: false`` drops it); it is a second plain Image topic in the camera's namespace.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np

from depth_ros.bag.odometry_msg import odometry_message
from depth_ros.core.rotation import matrix_to_quaternion
from depth_ros.errors import InputError
from depth_ros.msgbuild import MessageBuilder
from depth_ros.synthetic.config import SynthConfig
from depth_ros.synthetic.render import Frame, Renderer
from depth_ros.synthetic.scene import T_BASE_CAM, T_BASE_LIDAR

__all__ = [
    "BASE_FRAME",
    "CAMERA_FRAME",
    "LIDAR_FRAME",
    "ODOM_FRAME",
    "TOPICS",
    "BagSummary",
    "output_path",
    "relative_inverse_label",
    "write_bag",
]

_log = logging.getLogger(__name__)

ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_optical_frame"
LIDAR_FRAME = "lidar_link"

TOPICS: dict[str, str] = {
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/camera/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
    "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    "/camera/depth/ground_truth": "sensor_msgs/msg/Image",
    "/camera/depth/relative_inverse": "sensor_msgs/msg/Image",
    "/camera/object_mask": "sensor_msgs/msg/Image",
    "/odom": "nav_msgs/msg/Odometry",
    "/lidar/points": "sensor_msgs/msg/PointCloud2",
    "/tf_static": "tf2_msgs/msg/TFMessage",
}

# Odometry covariances (row-major 6x6 diagonals: x, y, z, roll, pitch, yaw). The poses are
# exact, but a zero covariance reads as "unknown" to some consumers (robot_localization), so
# state a small honest uncertainty: 1 mm / 1 mrad pose, 1 mm/s / 1 mrad/s twist.
_POSE_VAR = (1e-6,) * 3 + (1e-6,) * 3
_TWIST_VAR = (1e-6,) * 3 + (1e-6,) * 3

_SUFFIX_OF_STORAGE = {"mcap": ".mcap", "sqlite3": ".db3"}


@dataclass(frozen=True)
class BagSummary:
    """What :func:`write_bag` wrote: path, frame count, bytes and per-topic message counts."""

    path: Path
    frames: int
    size_bytes: int
    message_counts: dict[str, int]


def relative_inverse_label(depth_m: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """The relative label of a depth map: ``scale / depth_m + shift`` (an affine map of inverse depth).

    Args:
        depth_m: (H, W) metres, any float dtype.
        scale: per metre, > 0.
        shift: unitless, >= 0 (so every valid value is positive, as a label must be).

    Returns:
        (H, W) float32, NaN where ``depth_m`` is not finite and positive.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    inv = np.divide(1.0, depth, out=np.zeros_like(depth), where=valid)
    return np.where(valid, scale * inv + shift, np.nan).astype(np.float32)


def output_path(config: SynthConfig, path: str | Path) -> Path:
    """The storage file to write for a user-given ``path`` (adds the suffix of ``config.storage``).

    Raises:
        InputError: the suffix and ``config.storage`` disagree, or the suffix is neither
            ``.mcap`` nor ``.db3``.
    """
    path = Path(path)
    if path.suffix == "":
        return path.with_name(path.name + _SUFFIX_OF_STORAGE.get(config.storage, ".mcap"))
    if path.suffix not in (".mcap", ".db3"):
        raise InputError(f"output {path}: expected a .mcap or .db3 file name, got suffix {path.suffix!r}")
    if config.storage != "auto" and path.suffix != _SUFFIX_OF_STORAGE[config.storage]:
        raise InputError(f"output {path}: suffix {path.suffix} does not match storage={config.storage}")
    return path


def _select_topics(config: SynthConfig, topics: Collection[str] | None) -> list[str]:
    disabled_by_config = set()
    if not config.jpeg:
        disabled_by_config.add("/camera/image_raw/compressed")
    if config.lidar_beams == 0:
        disabled_by_config.add("/lidar/points")
    if not config.object_mask:
        disabled_by_config.add("/camera/object_mask")
    if not config.relative_label:
        disabled_by_config.add("/camera/depth/relative_inverse")
    enabled = [t for t in TOPICS if t not in disabled_by_config]
    if topics is None:
        return enabled
    unknown = sorted(set(topics) - set(TOPICS))
    if unknown:
        raise InputError(f"unknown synthetic topic(s) {', '.join(unknown)}; known: {', '.join(TOPICS)}")
    disabled = sorted(set(topics) - set(enabled))
    if disabled:
        raise InputError(f"topic(s) {', '.join(disabled)} disabled by the config (jpeg=false, lidar_beams=0, object_mask=false or relative_label=false)")
    return [t for t in TOPICS if t in topics]


class _Messages:
    """Builds typestore messages for one frame (kept apart from I/O for testing)."""

    def __init__(self, typestore: Any, config: SynthConfig) -> None:
        self.ts = typestore
        self.config = config
        self.build = MessageBuilder.for_typestore(typestore)  # the outputs' builder (node, depth-ros infer)
        t = typestore.types
        self.CompressedImage = t["sensor_msgs/msg/CompressedImage"]
        self.Vector3 = t["geometry_msgs/msg/Vector3"]
        self.Quaternion = t["geometry_msgs/msg/Quaternion"]
        self.Transform = t["geometry_msgs/msg/Transform"]
        self.TransformStamped = t["geometry_msgs/msg/TransformStamped"]
        self.TFMessage = t["tf2_msgs/msg/TFMessage"]

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        return self.build.header_at(stamp_ns, frame_id)

    def image_rgb(self, frame: Frame) -> Any:
        h, w = frame.rgb.shape[:2]
        return self.build.image(self.header(frame.stamp_ns, CAMERA_FRAME), height=h, width=w, encoding="rgb8",
                                step=3 * w, data=frame.rgb)

    def compressed(self, frame: Frame) -> Any:
        from PIL import Image as PILImage

        buf = io.BytesIO()
        PILImage.fromarray(frame.rgb).save(buf, format="JPEG", quality=self.config.jpeg_quality)
        return self.CompressedImage(
            header=self.header(frame.stamp_ns, CAMERA_FRAME),
            format="rgb8; jpeg compressed bgr8",
            data=np.frombuffer(buf.getvalue(), dtype=np.uint8),
        )

    def depth(self, frame: Frame) -> Any:
        return self.build.depth_image(frame.depth_m, self.header(frame.stamp_ns, CAMERA_FRAME), "32FC1")

    def relative_inverse(self, frame: Frame) -> Any:
        label = relative_inverse_label(frame.depth_m, *self.config.relative_scale_shift)
        return self.build.depth_image(label, self.header(frame.stamp_ns, CAMERA_FRAME), "32FC1")  # 32FC1 as is

    def object_mask(self, frame: Frame) -> Any:
        ids = frame.instance_id  # (H, W) uint16
        h, w = ids.shape
        return self.build.image(self.header(frame.stamp_ns, CAMERA_FRAME), height=h, width=w, encoding="16UC1",
                                step=2 * w, data=ids.astype("<u2", copy=False).reshape(-1).view(np.uint8))

    def camera_info(self, frame: Frame) -> Any:
        cam = frame.camera
        K = cam.K
        P = np.zeros((3, 4))
        P[:3, :3] = K
        distorted = cam.D.size > 0  # SynthConfig.distortion_model: the camera's own model and D
        return self.build.camera_info(
            self.header(frame.stamp_ns, CAMERA_FRAME), height=cam.height, width=cam.width,
            distortion_model=cam.distortion_model if distorted else "plumb_bob",
            d=cam.D if distorted else np.zeros(5), k=K, r=np.eye(3), p=P,
        )

    def odometry(self, frame: Frame) -> Any:
        T = frame.T_world_base
        return odometry_message(
            self.ts.types, self.header(frame.stamp_ns, ODOM_FRAME), BASE_FRAME, T[:3, 3],
            matrix_to_quaternion(T[:3, :3]), frame.v_base_mps, frame.omega_base_radps,
            pose_covariance=np.diag(_POSE_VAR), twist_covariance=np.diag(_TWIST_VAR),
        )

    def lidar(self, frame: Frame) -> Any:
        pts = frame.lidar_points_lidar
        cloud = np.zeros(len(pts), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
        cloud["x"], cloud["y"], cloud["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
        # is_dense: every LiDAR ray hits inside the closed room
        return self.build.pointcloud(cloud, self.header(frame.stamp_ns, LIDAR_FRAME), is_dense=True)

    def tf_static(self, stamp_ns: int) -> Any:
        out = []
        for child, T in ((CAMERA_FRAME, T_BASE_CAM), (LIDAR_FRAME, T_BASE_LIDAR)):
            qx, qy, qz, qw = (float(c) for c in matrix_to_quaternion(T[:3, :3]))
            out.append(
                self.TransformStamped(
                    header=self.header(stamp_ns, BASE_FRAME),
                    child_frame_id=child,
                    transform=self.Transform(
                        translation=self.Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                        rotation=self.Quaternion(x=qx, y=qy, z=qz, w=qw),
                    ),
                )
            )
        return self.TFMessage(transforms=out)


def write_bag(
    config: SynthConfig,
    path: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    topics: Collection[str] | None = None,
) -> Path:
    """Render ``config`` and write it as one rosbag2 storage file at ``path``.

    Args:
        config: the sequence.
        path: ``*.mcap`` or ``*.db3`` (no suffix: the one of ``config.storage``).
        overwrite: replace an existing file (only once the new one is complete).
        progress: optional ``progress(done_frames, total_frames)`` callback.
        topics: write only these topics of :data:`TOPICS` (e.g. to make a bag lacking
            camera_info for an error-path test); default all that the config enables.

    Returns:
        The path of the storage file written.

    Raises:
        InputError: bad path suffix for the storage; an unknown topic, or one the config
            disables (compressed without ``jpeg``, LiDAR with 0 beams, the object mask without
            ``object_mask``).
        depth_ros.errors.BagError: the target exists (without ``overwrite``), its directory is
            missing, or writing fails; nothing is left under the target name.
    """
    return write_bag_summary(config, path, overwrite=overwrite, progress=progress, topics=topics).path


def write_bag_summary(
    config: SynthConfig,
    path: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    topics: Collection[str] | None = None,
) -> BagSummary:
    """:func:`write_bag` returning a :class:`BagSummary` (for the CLI)."""
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter

    target = output_path(config, path)
    selected = _select_topics(config, topics)
    typestore = output_typestore()
    msgs = _Messages(typestore, config)
    renderer = Renderer(config)  # before opening: a config error leaves no temp file behind
    per_frame: list[tuple[str, Callable[[Frame], Any]]] = [
        (topic, build)
        for topic, build in (
            ("/camera/image_raw", msgs.image_rgb),
            ("/camera/image_raw/compressed", msgs.compressed),
            ("/camera/camera_info", msgs.camera_info),
            ("/camera/depth/ground_truth", msgs.depth),
            ("/camera/depth/relative_inverse", msgs.relative_inverse),
            ("/camera/object_mask", msgs.object_mask),
            ("/odom", msgs.odometry),
            ("/lidar/points", msgs.lidar),
        )
        if topic in selected
    ]
    with BagWriter(target, typestore=typestore, overwrite=overwrite) as bag:
        for topic in selected:
            bag.add_topic(topic, TOPICS[topic])
        if "/tf_static" in selected:
            bag.write("/tf_static", msgs.tf_static(config.stamp_ns(0)), config.stamp_ns(0))
        for frame in renderer:
            for topic, build in per_frame:
                bag.write(topic, build(frame), frame.stamp_ns)
            if progress is not None:
                progress(frame.index + 1, config.frames)
        counts = dict(bag.message_counts)
    size = target.stat().st_size
    _log.debug("wrote %s: %d frames, %d bytes", target, config.frames, size)
    return BagSummary(path=target, frames=config.frames, size_bytes=size, message_counts=counts)
