"""Index of one rosbag2 for training: image stamps, camera, camera poses, ground truth.

Scanning a bag once yields a :class:`BagIndex` (a few arrays per image, no pixels). It is
cached on disk keyed by the bag's path, size and mtime plus the topic options, so a 10 GB bag
is read end to end only the first time; samples then fetch single messages by log time
(MCAP chunk index / sqlite timestamp query) through :class:`BagMessageReader`.

Bags are read through :class:`depth_ros.bag.reader.BagReader`, with the package's one topic
choice (:func:`~depth_ros.bag.reader.select_camera_topics`: depth and mask topics skipped, a raw
image preferred over its own transports) and its static transforms
(:meth:`~depth_ros.bag.reader.BagReader.static_transforms`), so training indexes the camera
``depth-ros infer`` and ``depth-ros-train eval`` would pick in the same bag.

Frames: camera poses are ``T_odom_cam`` (camera optical frame -> odometry frame), from
``/odom`` (pose of the odometry child frame, usually base_link) interpolated to each image
stamp and composed with the base -> camera extrinsic found in ``/tf_static``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_ros.bag.reader import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    BagReader,
    select_camera_topics,
)
from depth_ros.core.camera import CameraModel
from depth_ros.core.distortion import DistortionError, Rectifier, is_distorted, rectified_projection
from depth_ros.errors import BagError, InputError

from depth_ros_training.data.geometry import interpolate_poses

__all__ = ["BagIndex", "BagMessageReader", "IndexOptions", "load_or_build_index", "open_any_reader"]

log = logging.getLogger(__name__)

#: 2: topics chosen and /tf_static read by depth_ros.bag's rules (an index built by the old
#: rules may name another camera topic, so it is rebuilt). 3: distorted cameras rectified.
INDEX_VERSION = 3
IMAGE_TYPES = {IMAGE_TYPE: "raw", COMPRESSED_IMAGE_TYPE: "compressed"}
ODOM_TYPE = "nav_msgs/msg/Odometry"
#: Rectification maps of distorted training cameras, per (bag, rectified K): built once per process.
_RECTIFIERS: dict[tuple[str, bytes], Any] = {}


@dataclass(frozen=True)
class IndexOptions:
    """Which topics to index.

    Args:
        image_topic: Image or CompressedImage topic; None picks the bag's only camera stream
            by :func:`depth_ros.bag.reader.select_image_topic` (depth and mask topics and
            ``gt_depth_topic`` skipped, a raw Image preferred over its own transports).
        camera_info_topic: None: ``<ns>/camera_info`` next to ``<ns>/image_raw[/<transport>]``,
            else the bag's only CameraInfo topic.
        odom_topic: nav_msgs/Odometry topic; missing in the bag is fine (no poses).
        gt_depth_topic: ground-truth depth Image (32FC1 m / 16UC1 mm), used only for
            validation metrics; missing is fine.
        max_odom_gap_s: an image stamp further than this from the bracketing odometry poses
            gets no pose.
        stamp_tolerance_s: a ground-truth depth image matches an image when their header
            stamps differ by at most this.
    """

    image_topic: str | None = None
    camera_info_topic: str | None = None
    odom_topic: str = "/odom"
    gt_depth_topic: str = "/camera/depth/ground_truth"
    max_odom_gap_s: float = 0.5
    stamp_tolerance_s: float = 0.001

    def key(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass(frozen=True)
class BagIndex:
    """What training needs to know about one bag, without pixels.

    Attributes:
        bag_path: the bag (.mcap / .db3 file or rosbag2 directory).
        image_topic / image_kind: the camera topic and "raw" | "compressed".
        camera: the intrinsics of the images training sees, at the recorded resolution: the
            CameraInfo's, or for a distorted camera (non-zero D) the rectified camera (D empty,
            K = CameraInfo's P[:3, :3], as the frame pipeline rectifies at run time).
        raw_camera: the recorded, distorted camera when the images are rectified (see
            :meth:`rectify_image`), else None.
        camera_frame: CameraInfo ``header.frame_id``.
        image_log_ns: (N,) int64 bag log times (used to fetch the message).
        image_stamp_ns: (N,) int64 header stamps, increasing.
        T_odom_cam: (N, 4, 4) float64 camera poses in the odometry frame (identity where
            ``pose_valid`` is False).
        pose_valid: (N,) bool.
        has_odometry: the bag had an odometry topic and a base -> camera extrinsic.
        gt_depth_topic: topic of the ground-truth depth, or None.
        gt_depth_log_ns: (N,) int64 log time of the matching ground-truth depth, -1 if none.
    """

    bag_path: str
    image_topic: str
    image_kind: str
    camera: CameraModel
    camera_frame: str
    image_log_ns: np.ndarray
    image_stamp_ns: np.ndarray
    T_odom_cam: np.ndarray
    pose_valid: np.ndarray
    has_odometry: bool
    gt_depth_topic: str | None
    gt_depth_log_ns: np.ndarray
    notes: tuple[str, ...] = field(default_factory=tuple)
    raw_camera: CameraModel | None = None

    def __len__(self) -> int:
        return len(self.image_stamp_ns)

    def _rectifier(self) -> Any:
        from depth_ros.core.distortion import Rectifier

        key = (self.bag_path, self.camera.K.tobytes())
        rect = _RECTIFIERS.get(key)
        if rect is None:
            rect = _RECTIFIERS[key] = Rectifier(self.raw_camera, new_K=self.camera.K)
        return rect

    def rectify_image(self, rgb: np.ndarray) -> np.ndarray:
        """A recorded image as the camera :attr:`camera` sees it (rectified when ``raw_camera``)."""
        return rgb if self.raw_camera is None else self._rectifier().rectify_image(rgb)

    def rectify_label(self, label: np.ndarray) -> np.ndarray:
        """A (H, W) label registered to the recorded camera (depth, mask), in :attr:`camera`'s
        geometry: nearest-pixel remap when rectified, invalid outside (NaN)."""
        return label if self.raw_camera is None else self._rectifier().rectify_depth(label)

    # -- cache (de)serialisation: npz with a JSON header, no pickle ------------------------
    def save(self, path: Path) -> None:
        meta = {
            "version": INDEX_VERSION,
            "bag_path": self.bag_path,
            "image_topic": self.image_topic,
            "image_kind": self.image_kind,
            "camera": {
                "width": self.camera.width,
                "height": self.camera.height,
                "K": self.camera.K.tolist(),
                "D": self.camera.D.tolist(),
                "distortion_model": self.camera.distortion_model,
            },
            "raw_camera": None if self.raw_camera is None else {
                "width": self.raw_camera.width,
                "height": self.raw_camera.height,
                "K": self.raw_camera.K.tolist(),
                "D": self.raw_camera.D.tolist(),
                "distortion_model": self.raw_camera.distortion_model,
            },
            "camera_frame": self.camera_frame,
            "has_odometry": self.has_odometry,
            "gt_depth_topic": self.gt_depth_topic,
            "notes": list(self.notes),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            image_log_ns=self.image_log_ns,
            image_stamp_ns=self.image_stamp_ns,
            T_odom_cam=self.T_odom_cam,
            pose_valid=self.pose_valid,
            gt_depth_log_ns=self.gt_depth_log_ns,
        )
        os.replace(tmp, path)  # atomic: concurrent workers / ranks never see half a file

    @classmethod
    def load(cls, path: Path) -> "BagIndex":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("version") != INDEX_VERSION:
                raise ValueError(f"index version {meta.get('version')} != {INDEX_VERSION}")
            cam = meta["camera"]
            raw = meta.get("raw_camera")
            return cls(
                bag_path=meta["bag_path"],
                image_topic=meta["image_topic"],
                image_kind=meta["image_kind"],
                camera=CameraModel(cam["width"], cam["height"], np.array(cam["K"]), np.array(cam["D"]), cam["distortion_model"]),
                camera_frame=meta["camera_frame"],
                image_log_ns=data["image_log_ns"],
                image_stamp_ns=data["image_stamp_ns"],
                T_odom_cam=data["T_odom_cam"],
                pose_valid=data["pose_valid"],
                has_odometry=bool(meta["has_odometry"]),
                gt_depth_topic=meta["gt_depth_topic"],
                gt_depth_log_ns=data["gt_depth_log_ns"],
                notes=tuple(meta["notes"]),
                raw_camera=None if raw is None else CameraModel(raw["width"], raw["height"], np.array(raw["K"]), np.array(raw["D"]), raw["distortion_model"]),
            )


def open_any_reader(bag_path: str | Path) -> Any:
    """An opened rosbags ``AnyReader`` of a bag, opened by :class:`BagReader` (its checks,
    typestore and one-line errors). Kept for callers that use the rosbags API directly; new code
    reads through :class:`BagReader`.

    Raises:
        BagError: the bag is missing or unreadable.
    """
    return BagReader(bag_path).open().rosbags_reader


def _bag_fingerprint(path: Path) -> tuple[int, int]:
    """(total size in bytes, newest mtime in ns) of a bag file or directory."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def cache_path_for(bag_path: Path, options: IndexOptions, cache_dir: Path | None) -> Path:
    """Where the index of ``bag_path`` is cached: ``cache_dir`` or ``<bag dir>/.depth_ros_index``."""
    resolved = bag_path.resolve()
    size, mtime_ns = _bag_fingerprint(resolved)
    key = hashlib.sha1(f"{resolved}|{size}|{mtime_ns}|{options.key()}|{INDEX_VERSION}".encode()).hexdigest()[:16]
    directory = cache_dir if cache_dir is not None else resolved.parent / ".depth_ros_index"
    return directory / f"{resolved.name}.{key}.npz"


def load_or_build_index(bag_path: str | Path, options: IndexOptions = IndexOptions(), cache_dir: str | Path | None = None) -> BagIndex:
    """The bag's index, from the cache when the bag is unchanged, else scanned and cached.

    An unwritable cache location is logged and ignored (the index is still returned).
    """
    path = Path(bag_path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    cache = cache_path_for(path, options, Path(cache_dir) if cache_dir is not None else None)
    if cache.is_file():
        try:
            index = BagIndex.load(cache)
            log.debug("bag index from cache %s", cache)
            return index
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable bag index cache %s: %s", cache, exc)
    index = build_index(path, options)
    try:
        index.save(cache)
        log.info("indexed %s: %d images, cached at %s", path, len(index), cache)
    except OSError as exc:
        log.warning("could not cache the bag index at %s: %s", cache, exc)
    return index


def _header_stamp_ns(raw: bytes) -> int:
    """Header stamp of a CDR-serialised message whose first field is std_msgs/Header.

    CDR: 4-byte encapsulation header (byte 1: 0 big-endian, 1 little-endian), then
    ``int32 sec``, ``uint32 nanosec``. Reading 12 bytes beats deserialising a whole image.
    """
    if len(raw) < 12:
        raise BagError(f"message of {len(raw)} bytes is too short for a header")
    order = "<" if raw[1] & 1 else ">"
    sec = int(np.frombuffer(raw, dtype=np.dtype(order + "i4"), count=1, offset=4)[0])
    nsec = int(np.frombuffer(raw, dtype=np.dtype(order + "u4"), count=1, offset=8)[0])
    return sec * 1_000_000_000 + nsec


def build_index(bag_path: Path, options: IndexOptions) -> BagIndex:
    """Scan a bag (one pass over the camera, odometry, tf_static and depth topics).

    Raises:
        BagError: unreadable bag, no camera topic, no CameraInfo, unusable intrinsics.
    """
    with BagReader(bag_path) as reader:
        topics = reader.topics
        # the ground truth is an Image too: never a camera candidate, whatever its name
        cameras = {name: info for name, info in topics.items() if name != options.gt_depth_topic}
        image_topic, info_topic = select_camera_topics(
            cameras, options.image_topic, options.camera_info_topic, source=str(bag_path),
            image_option="image_topic", camera_info_option="camera_info_topic",
        )
        notes: list[str] = []
        raw_camera, camera_frame, rectified_K = _read_camera(reader, info_topic, bag_path)
        camera = raw_camera
        if is_distorted(raw_camera):
            try:  # the images are rectified as the runtime does (D refused as it would be)
                camera = Rectifier(raw_camera, new_K=rectified_K).rectified
            except DistortionError as exc:
                raise BagError(f"{bag_path}: camera_info {info_topic}: {exc}") from None
        image_log_ns, image_stamp_ns = _image_stamps(reader, image_topic, notes)

        n = len(image_stamp_ns)
        T_odom_cam = np.tile(np.eye(4), (n, 1, 1))
        pose_valid = np.zeros(n, dtype=bool)
        has_odometry = False
        odom = topics.get(options.odom_topic)
        if odom is not None and odom.msgtype == ODOM_TYPE:
            T_odom_cam, pose_valid, has_odometry = _camera_poses(reader, options, camera_frame, image_stamp_ns, notes)

        gt_log_ns = np.full(n, -1, dtype=np.int64)
        gt = topics.get(options.gt_depth_topic)
        gt_topic = options.gt_depth_topic if gt is not None and gt.msgtype == IMAGE_TYPE else None
        if gt_topic is not None and n:
            gt_log_ns = _match_ground_truth(reader, gt_topic, image_stamp_ns, options.stamp_tolerance_s)

    return BagIndex(
        bag_path=str(Path(bag_path).resolve()),
        image_topic=image_topic,
        image_kind=IMAGE_TYPES[topics[image_topic].msgtype],
        camera=camera,
        camera_frame=camera_frame,
        image_log_ns=image_log_ns,
        image_stamp_ns=image_stamp_ns,
        T_odom_cam=T_odom_cam,
        pose_valid=pose_valid,
        has_odometry=has_odometry,
        gt_depth_topic=gt_topic,
        gt_depth_log_ns=gt_log_ns,
        notes=tuple(notes),
        raw_camera=raw_camera if camera is not raw_camera else None,
    )


def _read_camera(reader: BagReader, info_topic: str, bag_path: Path) -> tuple[CameraModel, str, np.ndarray | None]:
    """(camera, frame_id, rectified K from P or None) of the first CameraInfo; a later change
    of the intrinsics is refused."""
    from depth_ros.msgconv import camera_info_to_model

    camera = None
    camera_frame = ""
    rectified_K = None
    for message in reader.messages([info_topic]):
        msg = reader.deserialize(message)
        try:
            model = camera_info_to_model(msg)
        except InputError as exc:
            raise BagError(f"{bag_path}: camera_info {info_topic} unusable: {exc}") from None
        if camera is None:
            camera, camera_frame = model, str(msg.header.frame_id)
            rectified_K = rectified_projection(msg.p, msg.r)[0]
        elif model != camera:
            raise BagError(f"{bag_path}: camera_info on {info_topic} changes during the bag; split the bag")
    if camera is None:
        raise BagError(f"{bag_path}: {info_topic} has no messages; training needs the intrinsics")
    return camera, camera_frame, rectified_K


def _image_stamps(reader: BagReader, image_topic: str, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(log_ns, stamp_ns), (N,) int64 each, sorted by header stamp; duplicate stamps dropped."""
    log_ns, stamp_ns = [], []
    for message in reader.messages([image_topic]):
        log_ns.append(message.log_time_ns)
        stamp_ns.append(_header_stamp_ns(message.data))
    image_log_ns = np.asarray(log_ns, dtype=np.int64)
    image_stamp_ns = np.asarray(stamp_ns, dtype=np.int64)
    order = np.argsort(image_stamp_ns, kind="stable")
    image_log_ns, image_stamp_ns = image_log_ns[order], image_stamp_ns[order]
    keep = np.concatenate([[True], np.diff(image_stamp_ns) > 0]) if len(order) else np.zeros(0, bool)
    if not np.all(keep):
        notes.append(f"dropped {int((~keep).sum())} images with duplicate stamps")
        image_log_ns, image_stamp_ns = image_log_ns[keep], image_stamp_ns[keep]
    return image_log_ns, image_stamp_ns


def _match_ground_truth(reader: BagReader, gt_topic: str, image_stamp_ns: np.ndarray, tolerance_s: float) -> np.ndarray:
    """(N,) int64 log time of the ground-truth depth nearest each image stamp, -1 beyond ``tolerance_s``."""
    gt_stamps, gt_logs = [], []
    for message in reader.messages([gt_topic]):
        gt_stamps.append(_header_stamp_ns(message.data))
        gt_logs.append(message.log_time_ns)
    if not gt_stamps:
        return np.full(len(image_stamp_ns), -1, dtype=np.int64)
    gs = np.asarray(gt_stamps, dtype=np.int64)
    gl = np.asarray(gt_logs, dtype=np.int64)
    o = np.argsort(gs)
    gs, gl = gs[o], gl[o]
    j = np.searchsorted(gs, image_stamp_ns).clip(0, len(gs) - 1)
    j_prev = (j - 1).clip(0)
    best = np.where(np.abs(gs[j_prev] - image_stamp_ns) < np.abs(gs[j] - image_stamp_ns), j_prev, j)
    ok = np.abs(gs[best] - image_stamp_ns) <= int(tolerance_s * 1e9)
    return np.where(ok, gl[best], -1)


def _camera_poses(
    reader: BagReader, options: IndexOptions, camera_frame: str, image_stamp_ns: np.ndarray, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(T_odom_cam (N, 4, 4), valid (N,), has_odometry) from the odometry and /tf_static."""
    stamps, xyz, quat = [], [], []
    child_frame = ""
    for message in reader.messages([options.odom_topic]):
        msg = reader.deserialize(message)
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        stamps.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        xyz.append((p.x, p.y, p.z))
        quat.append((q.x, q.y, q.z, q.w))
        child_frame = str(msg.child_frame_id)
    n = len(image_stamp_ns)
    if not stamps:
        notes.append(f"{options.odom_topic} has no messages")
        return np.tile(np.eye(4), (n, 1, 1)), np.zeros(n, bool), False
    try:
        T_base_cam = reader.static_transforms().lookup(child_frame, camera_frame)
    except InputError as exc:  # frames not connected, or a loop in /tf_static
        notes.append(f"no /tf_static chain from {child_frame!r} to the camera frame {camera_frame!r} ({exc})")
        return np.tile(np.eye(4), (n, 1, 1)), np.zeros(n, bool), False
    s = np.asarray(stamps, dtype=np.int64)
    o = np.argsort(s, kind="stable")
    T_odom_base, valid = interpolate_poses(
        s[o], np.asarray(xyz)[o], np.asarray(quat)[o], image_stamp_ns, int(options.max_odom_gap_s * 1e9)
    )
    T_odom_cam = T_odom_base @ T_base_cam
    T_odom_cam[~valid] = np.eye(4)
    return T_odom_cam, valid, True


class BagMessageReader:
    """Fetches single messages by log time; opens the bag lazily, once per process.

    Safe with DataLoader workers (fork or spawn): the open reader is never pickled and is
    reopened when the process id changes.
    """

    def __init__(self, bag_path: str | Path) -> None:
        self.bag_path = str(bag_path)
        self._reader: BagReader | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"bag_path": self.bag_path, "_reader": None, "_pid": -1}

    def _open(self) -> BagReader:
        if self._reader is None or self._pid != os.getpid():
            self._reader = BagReader(self.bag_path).open()  # a forked parent's reader is left alone
            self._pid = os.getpid()
        return self._reader

    def read(self, topic: str, log_ns: int) -> Any:
        """The deserialised message on ``topic`` logged at ``log_ns``.

        Raises:
            BagError: no such topic or message (the bag changed after it was indexed?).
        """
        reader = self._open()
        for message in reader.messages([topic], start_ns=int(log_ns), stop_ns=int(log_ns) + 1):
            return reader.deserialize(message)
        raise BagError(f"{self.bag_path}: no message on {topic} at log time {log_ns} ns (bag changed since indexing?)")

    def close(self) -> None:
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None
