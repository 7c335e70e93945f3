"""Index of one rosbag2 for training: image stamps, camera, camera poses, ground truth.

Scanning a bag once yields a :class:`BagIndex` (a few arrays per image, no pixels). It is
cached on disk keyed by the bag's path, size and mtime plus the topic options, so a 10 GB bag
is read end to end only the first time; samples then fetch single messages by log time
(MCAP chunk index / sqlite timestamp query) through :class:`BagMessageReader`.

Frames: camera poses are ``T_odom_cam`` (camera optical frame -> odometry frame), from
``/odom`` (pose of the odometry child frame, usually base_link) interpolated to each image
stamp and composed with the base -> camera extrinsic found in ``/tf_static``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.errors import BagError

from depth_ros_training.data.geometry import interpolate_poses, transform_from_xyz_quat

__all__ = ["BagIndex", "BagMessageReader", "IndexOptions", "load_or_build_index", "open_any_reader"]

log = logging.getLogger(__name__)

INDEX_VERSION = 1
IMAGE_TYPES = {"sensor_msgs/msg/Image": "raw", "sensor_msgs/msg/CompressedImage": "compressed"}
ODOM_TYPE = "nav_msgs/msg/Odometry"
TF_TYPE = "tf2_msgs/msg/TFMessage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class IndexOptions:
    """Which topics to index.

    Args:
        image_topic: Image or CompressedImage topic; None picks the bag's only camera stream
            (a raw Image is preferred over its ``/compressed`` twin).
        camera_info_topic: None derives it: ``<ns>/camera_info`` next to ``<ns>/image_raw[/compressed]``.
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
        camera: the CameraInfo intrinsics at the recorded image resolution.
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

    def __len__(self) -> int:
        return len(self.image_stamp_ns)

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
            )


def open_any_reader(bag_path: str | Path) -> Any:
    """An opened rosbags ``AnyReader`` for a .mcap / .db3 file or a rosbag2 directory.

    Raises:
        FileNotFoundError: the path does not exist.
        BagError: rosbags cannot read it.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(bag_path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED))
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for corrupt bags
        raise BagError(f"{path}: cannot read bag ({type(exc).__name__}: {exc})") from None
    return reader


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


def _pick_image_topic(topics: dict[str, str], options: IndexOptions, bag: Path) -> str:
    if options.image_topic is not None:
        if options.image_topic not in topics:
            raise BagError(f"{bag}: no topic {options.image_topic!r}; topics: {sorted(topics)}")
        if topics[options.image_topic] not in IMAGE_TYPES:
            raise BagError(
                f"{bag}: {options.image_topic!r} is {topics[options.image_topic]}, expected one of {sorted(IMAGE_TYPES)}"
            )
        return options.image_topic
    candidates = [
        t for t, typ in topics.items() if typ in IMAGE_TYPES and t != options.gt_depth_topic and "depth" not in t
    ]
    raw = [t for t in candidates if topics[t] == "sensor_msgs/msg/Image"]
    pool = raw or candidates
    if len(pool) != 1:
        raise BagError(
            f"{bag}: cannot choose the camera topic among {sorted(pool) or 'no image topics'}; set image_topic"
        )
    return pool[0]


def _camera_info_topic(image_topic: str, options: IndexOptions) -> str:
    if options.camera_info_topic is not None:
        return options.camera_info_topic
    parts = image_topic.rstrip("/").split("/")
    if parts[-1] == "compressed":
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"])


def _resolve_static_chain(edges: dict[tuple[str, str], np.ndarray], target: str, source: str) -> np.ndarray | None:
    """``T_target_source`` through a tree of static transforms (BFS over both directions)."""
    graph: dict[str, list[tuple[str, np.ndarray]]] = {}
    for (parent, child), T_parent_child in edges.items():
        graph.setdefault(parent, []).append((child, T_parent_child))
        graph.setdefault(child, []).append((parent, np.linalg.inv(T_parent_child)))
    # T_target_node for each reached node
    reached = {target: np.eye(4)}
    queue = deque([target])
    while queue:
        node = queue.popleft()
        for nxt, T_node_nxt in graph.get(node, []):
            if nxt not in reached:
                reached[nxt] = reached[node] @ T_node_nxt
                queue.append(nxt)
    return reached.get(source)


def build_index(bag_path: Path, options: IndexOptions) -> BagIndex:
    """Scan a bag (one pass over the camera, odometry, tf_static and depth topics).

    Raises:
        BagError: no camera topic, no CameraInfo, unusable intrinsics.
    """
    from depth_ros.msgconv import camera_info_to_model

    reader = open_any_reader(bag_path)
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        image_topic = _pick_image_topic(topics, options, bag_path)
        info_topic = _camera_info_topic(image_topic, options)
        if topics.get(info_topic) != CAMERA_INFO_TYPE:
            raise BagError(
                f"{bag_path}: no sensor_msgs/CameraInfo on {info_topic!r} for {image_topic!r}; "
                "training needs the intrinsics (record camera_info or set camera_info_topic)"
            )
        conns = {t: [c for c in reader.connections if c.topic == t] for t in topics}
        notes: list[str] = []

        # camera intrinsics: first CameraInfo; a later change of K is reported, not silently used
        camera = None
        camera_frame = ""
        for conn, _, raw in reader.messages(connections=conns[info_topic]):
            msg = reader.deserialize(raw, conn.msgtype)
            model = camera_info_to_model(msg)
            if camera is None:
                camera, camera_frame = model, str(msg.header.frame_id)
            elif model != camera:
                raise BagError(f"{bag_path}: camera_info on {info_topic} changes during the bag; split the bag")
        if camera is None:
            raise BagError(f"{bag_path}: {info_topic} has no messages; training needs the intrinsics")

        log_ns, stamp_ns = [], []
        for _, t, raw in reader.messages(connections=conns[image_topic]):
            log_ns.append(t)
            stamp_ns.append(_header_stamp_ns(raw))
        image_log_ns = np.asarray(log_ns, dtype=np.int64)
        image_stamp_ns = np.asarray(stamp_ns, dtype=np.int64)
        order = np.argsort(image_stamp_ns, kind="stable")
        image_log_ns, image_stamp_ns = image_log_ns[order], image_stamp_ns[order]
        keep = np.concatenate([[True], np.diff(image_stamp_ns) > 0]) if len(order) else np.zeros(0, bool)
        if not np.all(keep):
            notes.append(f"dropped {int((~keep).sum())} images with duplicate stamps")
            image_log_ns, image_stamp_ns = image_log_ns[keep], image_stamp_ns[keep]

        n = len(image_stamp_ns)
        T_odom_cam = np.tile(np.eye(4), (n, 1, 1))
        pose_valid = np.zeros(n, dtype=bool)
        has_odometry = False
        if topics.get(options.odom_topic) == ODOM_TYPE:
            T_odom_cam, pose_valid, has_odometry = _camera_poses(
                reader, conns, topics, options, camera_frame, image_stamp_ns, notes, bag_path
            )

        gt_log_ns = np.full(n, -1, dtype=np.int64)
        gt_topic = options.gt_depth_topic if topics.get(options.gt_depth_topic) == "sensor_msgs/msg/Image" else None
        if gt_topic is not None and n:
            gt_stamps, gt_logs = [], []
            for _, t, raw in reader.messages(connections=conns[gt_topic]):
                gt_stamps.append(_header_stamp_ns(raw))
                gt_logs.append(t)
            if gt_stamps:
                gs = np.asarray(gt_stamps, dtype=np.int64)
                gl = np.asarray(gt_logs, dtype=np.int64)
                o = np.argsort(gs)
                gs, gl = gs[o], gl[o]
                j = np.searchsorted(gs, image_stamp_ns).clip(0, len(gs) - 1)
                j_prev = (j - 1).clip(0)
                best = np.where(np.abs(gs[j_prev] - image_stamp_ns) < np.abs(gs[j] - image_stamp_ns), j_prev, j)
                ok = np.abs(gs[best] - image_stamp_ns) <= int(options.stamp_tolerance_s * 1e9)
                gt_log_ns = np.where(ok, gl[best], -1)
    finally:
        reader.close()

    return BagIndex(
        bag_path=str(Path(bag_path).resolve()),
        image_topic=image_topic,
        image_kind=IMAGE_TYPES[topics[image_topic]],
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
    )


def _camera_poses(reader, conns, topics, options, camera_frame, image_stamp_ns, notes, bag_path):
    """(T_odom_cam (N,4,4), valid (N,), has_odometry) from /odom and /tf_static."""
    stamps, xyz, quat = [], [], []
    child_frame = None
    for conn, _, raw in reader.messages(connections=conns[options.odom_topic]):
        msg = reader.deserialize(raw, conn.msgtype)
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        stamps.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        xyz.append((p.x, p.y, p.z))
        quat.append((q.x, q.y, q.z, q.w))
        child_frame = str(msg.child_frame_id)
    n = len(image_stamp_ns)
    if not stamps:
        notes.append(f"{options.odom_topic} has no messages")
        return np.tile(np.eye(4), (n, 1, 1)), np.zeros(n, bool), False
    edges: dict[tuple[str, str], np.ndarray] = {}
    for topic, typ in topics.items():
        if typ != TF_TYPE or not topic.endswith("tf_static"):
            continue
        for conn, _, raw in reader.messages(connections=conns[topic]):
            msg = reader.deserialize(raw, conn.msgtype)
            for tf in msg.transforms:
                tr, rot = tf.transform.translation, tf.transform.rotation
                edges[(str(tf.header.frame_id), str(tf.child_frame_id))] = transform_from_xyz_quat(
                    np.array([tr.x, tr.y, tr.z]), np.array([rot.x, rot.y, rot.z, rot.w])
                )
    if child_frame == camera_frame:
        T_base_cam = np.eye(4)
    else:
        T_base_cam = _resolve_static_chain(edges, child_frame, camera_frame)
    if T_base_cam is None:
        notes.append(f"no /tf_static chain from {child_frame!r} to the camera frame {camera_frame!r}")
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
        self._reader: Any = None
        self._pid = -1
        self._conns: dict[str, list[Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"bag_path": self.bag_path, "_reader": None, "_pid": -1, "_conns": {}}

    def _open(self) -> Any:
        if self._reader is None or self._pid != os.getpid():
            self._reader = open_any_reader(self.bag_path)
            self._pid = os.getpid()
            self._conns = {}
            for c in self._reader.connections:
                self._conns.setdefault(c.topic, []).append(c)
        return self._reader

    def read(self, topic: str, log_ns: int) -> Any:
        """The deserialised message on ``topic`` logged at ``log_ns``.

        Raises:
            BagError: no such message (the bag changed after it was indexed?).
        """
        reader = self._open()
        for conn, _, raw in reader.messages(connections=self._conns.get(topic, []), start=int(log_ns), stop=int(log_ns) + 1):
            return reader.deserialize(raw, conn.msgtype)
        raise BagError(f"{self.bag_path}: no message on {topic} at log time {log_ns} ns (bag changed since indexing?)")

    def close(self) -> None:
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None
