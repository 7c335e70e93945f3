"""Write a :class:`~depth_ros.importers.common.Dataset` as a rosbag2 file with the package's topics.

=============================  =================================  =====================
topic                          type                               frame_id
=============================  =================================  =====================
/camera/image_raw              sensor_msgs/msg/Image rgb8, mono8  camera_optical_frame
/camera/image_raw/compressed   sensor_msgs/msg/CompressedImage    camera_optical_frame
/camera/camera_info            sensor_msgs/msg/CameraInfo (D)     camera_optical_frame
/camera/depth/ground_truth     sensor_msgs/msg/Image 32FC1 (m)    camera_optical_frame
/odom                          nav_msgs/msg/Odometry              odom -> base_link
/tf_static                     tf2_msgs/msg/TFMessage             base_link -> camera_optical_frame
=============================  =================================  =====================

The names are the synthetic renderer's (:mod:`depth_ros.synthetic.bagio`), so `depth-ros infer`,
`depth-ros-train eval` and the training index choose the topics by themselves. The image is either
raw or compressed (the source's JPEG/PNG bytes, with ``--compressed``), never both. Ground-truth
depth carries the stamp of the image it was associated with (the training index matches depth to
image within 1 ms). ``/odom`` holds every ground-truth pose between the first and last frame
(plus one on each side) at its own stamp; readers interpolate. Its twist is the finite difference
of the poses, in the child frame.

Messages are built by :class:`depth_ros.msgbuild.MessageBuilder` (headers, Image, CameraInfo,
depth) and written by :class:`depth_ros.bag.writer.BagWriter`: into a temporary file renamed over
the target only when complete.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from depth_ros.core.rotation import matrix_to_axis_angle, matrix_to_quaternion
from depth_ros.errors import InputError
from depth_ros.importers.common import CameraCalib, Dataset, FrameFiles, ImportOptions, PoseTrack
from depth_ros.importers.images import read_image
from depth_ros.synthetic.bagio import BASE_FRAME, CAMERA_FRAME, ODOM_FRAME, TOPICS

__all__ = ["ImportSummary", "body_twist", "selected_frames", "write_dataset"]

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
INFO_TOPIC = "/camera/camera_info"
DEPTH_TOPIC = "/camera/depth/ground_truth"
ODOM_TOPIC = "/odom"
TF_STATIC_TOPIC = "/tf_static"
# Ground-truth poses (motion capture, laser tracker, GNSS/INS): a stated ~1 cm / 10 mrad
# uncertainty rather than 0, which some consumers read as "unknown".
_POSE_VAR = (1e-4,) * 3 + (1e-4,) * 3
_TWIST_VAR = (1e-2,) * 6


@dataclass(frozen=True)
class ImportSummary:
    """What was written: the file, frame / depth / pose counts, bytes, per-topic counts, notes."""

    path: Path
    frames: int
    depth_frames: int
    poses: int
    size_bytes: int
    message_counts: dict[str, int]
    notes: tuple[str, ...]


# -- poses ---------------------------------------------------------------------------------
def body_twist(track: PoseTrack) -> tuple[np.ndarray, np.ndarray]:
    """Linear and angular velocity of the body, in the body frame, by finite differences.

    Central differences inside the track, one-sided at its ends; zeros for a single pose.

    Returns:
        (v_mps (M, 3), omega_radps (M, 3)) float64.
    """
    T, s = track.T_world_body, track.stamps_ns
    m = len(s)
    v, w = np.zeros((m, 3)), np.zeros((m, 3))
    if m < 2:
        return v, w
    prev = np.clip(np.arange(m) - 1, 0, m - 1)
    nxt = np.clip(np.arange(m) + 1, 0, m - 1)
    dt = (s[nxt] - s[prev]).astype(np.float64) * 1e-9  # > 0: stamps increase
    R = T[:, :3, :3]
    dp_world = T[nxt, :3, 3] - T[prev, :3, 3]
    v = np.einsum("mji,mj->mi", R, dp_world) / dt[:, None]  # R^T dp
    dR = np.einsum("mji,mjk->mik", R[prev], R[nxt])  # R_prev^T R_next
    w = matrix_to_axis_angle(dR) / dt[:, None]
    return v, w


class _Messages:
    """The messages of one import (MessageBuilder for images and camera_info; Odometry and TF here)."""

    def __init__(self, typestore: Any, camera: CameraCalib) -> None:
        from depth_ros.msgbuild import MessageBuilder

        self.build = MessageBuilder.for_typestore(typestore)
        self.t = typestore.types
        self.camera = camera

    def header(self, stamp_ns: int, frame_id: str = CAMERA_FRAME) -> Any:
        return self.build.header_at(stamp_ns, frame_id)

    def image(self, stamp_ns: int, pixels: np.ndarray, encoding: str) -> Any:
        h, w = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else 3
        return self.build.image(self.header(stamp_ns), height=h, width=w, encoding=encoding, step=channels * w,
                                data=np.ascontiguousarray(pixels).reshape(-1))

    def compressed(self, stamp_ns: int, data: bytes, fmt: str, encoding: str) -> Any:
        order = "mono8" if encoding == "mono8" else "bgr8"
        return self.t["sensor_msgs/msg/CompressedImage"](
            header=self.header(stamp_ns), format=f"{encoding}; {fmt} compressed {order}",
            data=np.frombuffer(data, dtype=np.uint8))

    def camera_info(self, stamp_ns: int) -> Any:
        cam = self.camera
        return self.build.camera_info(
            self.header(stamp_ns), height=cam.height, width=cam.width, distortion_model=cam.distortion_model,
            d=list(cam.D), k=np.asarray(cam.K).reshape(-1), r=np.eye(3).reshape(-1), p=cam.projection.reshape(-1))

    def depth(self, stamp_ns: int, depth_m: np.ndarray) -> Any:
        return self.build.depth_image(depth_m, self.header(stamp_ns))

    def _quaternion(self, R: np.ndarray) -> Any:
        x, y, z, w = (float(c) for c in matrix_to_quaternion(R))
        return self.t["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)

    def _vector(self, xyz: np.ndarray) -> Any:
        return self.t["geometry_msgs/msg/Vector3"](x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))

    def odometry(self, stamp_ns: int, T_world_body: np.ndarray, v: np.ndarray, w: np.ndarray) -> Any:
        """nav_msgs/Odometry of the body at ``T_world_body`` (4, 4) with twist ``v`` (3,) m/s and
        ``w`` (3,) rad/s in the body frame (:func:`~depth_ros.bag.odometry_msg.odometry_message`)."""
        from depth_ros.bag.odometry_msg import odometry_message

        return odometry_message(
            self.t, self.header(stamp_ns, ODOM_FRAME), BASE_FRAME, T_world_body[:3, 3], matrix_to_quaternion(T_world_body[:3, :3]),
            v, w, pose_covariance=np.diag(_POSE_VAR), twist_covariance=np.diag(_TWIST_VAR))

    def tf_static(self, stamp_ns: int, edges: list[tuple[str, str, np.ndarray]]) -> Any:
        """TFMessage of ``(parent, child, T_parent_child)`` edges."""
        t = self.t
        transforms = [
            t["geometry_msgs/msg/TransformStamped"](
                header=self.header(stamp_ns, parent), child_frame_id=child,
                transform=t["geometry_msgs/msg/Transform"](translation=self._vector(T[:3, 3]),
                                                           rotation=self._quaternion(T[:3, :3])))
            for parent, child, T in edges
        ]
        return t["tf2_msgs/msg/TFMessage"](transforms=transforms)


def selected_frames(frames: tuple[FrameFiles, ...], options: ImportOptions) -> list[FrameFiles]:
    """The frames ``options`` keep: every ``stride``-th, at most ``max_frames``."""
    chosen = list(frames[:: options.stride])
    return chosen[: options.max_frames] if options.max_frames is not None else chosen


def _check_size(path: Path, shape: tuple[int, ...], camera: CameraCalib, what: str) -> None:
    if shape[:2] != (camera.height, camera.width):
        raise InputError(
            f"{path}: {what} is {shape[1]}x{shape[0]}, the camera is {camera.width}x{camera.height}"
        )


def _timeline(frames: list[FrameFiles], poses: PoseTrack | None) -> Iterator[tuple[int, str, int]]:
    """(stamp, "frame" | "pose", index) in stamp order, poses first on a tie."""
    events = [(f.stamp_ns, 1, "frame", i) for i, f in enumerate(frames)]
    if poses is not None:
        events += [(int(s), 0, "pose", i) for i, s in enumerate(poses.stamps_ns)]
    for stamp, _, kind, i in sorted(events):
        yield stamp, kind, i


def _write_frame(bag: Any, msgs: _Messages, frame: FrameFiles, dataset: Dataset, options: ImportOptions) -> int:
    """Image (or CompressedImage), camera_info and depth of one frame; returns 1 if depth was written."""
    cam, stamp = dataset.camera, frame.stamp_ns
    pixels, encoding, data, fmt = read_image(frame.image, options.max_file_bytes)
    _check_size(frame.image, pixels.shape, cam, "image")
    if options.compressed:
        bag.write(COMPRESSED_TOPIC, msgs.compressed(stamp, data, fmt, encoding), stamp)
    else:
        bag.write(IMAGE_TOPIC, msgs.image(stamp, pixels, encoding), stamp)
    bag.write(INFO_TOPIC, msgs.camera_info(stamp), stamp)
    if dataset.depth_loader is None or frame.depth is None:
        return 0
    depth_m = dataset.depth_loader(frame.depth, cam, options.max_file_bytes)
    _check_size(frame.depth, depth_m.shape, cam, "depth")
    bag.write(DEPTH_TOPIC, msgs.depth(stamp, depth_m), stamp)
    return 1


def write_dataset(
    dataset: Dataset,
    out: str | Path,
    options: ImportOptions = ImportOptions(),
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Write ``dataset`` to the bag ``out`` (``.mcap`` or ``.db3``), atomically.

    Args:
        dataset: what an importer read.
        out: target file.
        options: frame selection, image transport, overwrite, file size limit.
        progress: ``progress(done, total)`` after each frame.

    Returns:
        The :class:`ImportSummary`.

    Raises:
        InputError: an image or depth file that cannot be read, is too large, or does not
            match the camera size (file named). Nothing is left under ``out``.
        depth_ros.errors.BagError: the output exists (without ``overwrite``), its folder is
            missing, or writing fails.
    """
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter, check_output_path

    target = check_output_path(out, overwrite=options.overwrite)
    frames = selected_frames(dataset.frames, options)
    poses = dataset.poses.window(frames[0].stamp_ns, frames[-1].stamp_ns) if dataset.poses is not None else None
    if poses is not None and not len(poses):
        poses = None
    pixels, _, _, _ = read_image(frames[0].image, options.max_file_bytes)  # fail before any file is made
    _check_size(frames[0].image, pixels.shape, dataset.camera, "image")
    typestore = output_typestore()
    msgs = _Messages(typestore, dataset.camera)
    twist = body_twist(poses) if poses is not None else (np.zeros((0, 3)), np.zeros((0, 3)))
    pose_T = poses.T_world_body if poses is not None else np.zeros((0, 4, 4))
    topics = [COMPRESSED_TOPIC if options.compressed else IMAGE_TOPIC, INFO_TOPIC]
    topics += [DEPTH_TOPIC] if dataset.depth_loader is not None else []
    topics += [ODOM_TOPIC] if poses is not None else []
    topics.append(TF_STATIC_TOPIC)
    edges = [(BASE_FRAME, CAMERA_FRAME, np.asarray(dataset.T_body_cam, dtype=np.float64))]
    t0 = min(frames[0].stamp_ns, int(poses.stamps_ns[0]) if poses is not None else frames[0].stamp_ns)
    depth_frames = 0
    with BagWriter(target, typestore=typestore, overwrite=options.overwrite) as bag:
        for topic in topics:
            bag.add_topic(topic, TOPICS[topic])
        bag.write(TF_STATIC_TOPIC, msgs.tf_static(t0, edges), t0)
        done = 0
        for stamp, kind, i in _timeline(frames, poses):
            if kind == "pose":
                bag.write(ODOM_TOPIC, msgs.odometry(stamp, pose_T[i], twist[0][i], twist[1][i]), stamp)
                continue
            depth_frames += _write_frame(bag, msgs, frames[i], dataset, options)
            done += 1
            if progress is not None:
                progress(done, len(frames))
        counts = dict(bag.message_counts)
    notes = list(dataset.notes)
    if dataset.depth_note:
        notes.insert(0, f"depth: {dataset.depth_note}")
    return ImportSummary(target, len(frames), depth_frames, len(poses) if poses is not None else 0,
                         target.stat().st_size, counts, tuple(notes))

