"""Read rosbag2 recordings (MCAP or sqlite3 storage) with rosbags; choose the camera topics.

Accepted inputs: a bag directory with ``metadata.yaml``, a bare ``.mcap`` file, a bare
``.db3`` file. Bags that embed no message definitions (sqlite3 bags of ROS 2 Humble and
older) are decoded with the ROS 2 standard types plus the package's own messages
(:func:`~depth_ros.bag.typestore.reading_typestore`). Every failure of the underlying library (missing file, truncated or corrupt
storage, undecodable message) surfaces as one :class:`~depth_ros.errors.BagError` naming the
file and what failed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from depth_ros.bag.opened import OpenedInWith
from depth_ros.bag.tf import StaticTransforms
from depth_ros.bag.typestore import reading_typestore
from depth_ros.errors import BagError, InputError

if TYPE_CHECKING:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys.store import Typestore

__all__ = [
    "BagMessage",
    "BagReader",
    "CAMERA_INFO_TYPE",
    "COMPRESSED_IMAGE_TYPE",
    "IMAGE_TYPE",
    "POINTCLOUD2_TYPE",
    "TF_STATIC_TOPIC",
    "TFMESSAGE_TYPE",
    "TopicInfo",
    "camera_namespace",
    "looks_like_depth",
    "looks_like_mask",
    "select_camera_topics",
    "select_image_topic",
    "select_lidar_topic",
]

_log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"
TFMESSAGE_TYPE = "tf2_msgs/msg/TFMessage"
TF_STATIC_TOPIC = "/tf_static"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
# image_transport suffixes: "/ns/image_raw/compressed" is a transport of "/ns/image_raw".
_TRANSPORT_SUFFIXES = ("compressed", "compressedDepth", "theora", "zstd")
# Topic name parts that mark a depth (not a colour) image.
_DEPTH_WORDS = ("depth", "disparity")
# Topic name parts that mark an object / segmentation mask (e.g. the renderer's /camera/object_mask).
_MASK_WORDS = ("mask",)


@dataclass(frozen=True)
class TopicInfo:
    """A topic of a bag: name, ROS 2 type (``pkg/msg/Type``), message count."""

    name: str
    msgtype: str
    count: int

    def __str__(self) -> str:
        return f"{self.name} ({self.msgtype.rsplit('/', 1)[-1]}, {self.count} msgs)"


@dataclass(frozen=True)
class BagMessage:
    """One serialised message as stored: CDR bytes and the record's log time."""

    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes | memoryview


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BagReader(OpenedInWith):
    """A rosbag2 opened for reading; use as a context manager.

    Args:
        path: bag directory (with metadata.yaml), ``.mcap`` file or ``.db3`` file.
        default_typestore: definitions for bags that do not embed them (old sqlite3 bags);
            None: :func:`~depth_ros.bag.typestore.reading_typestore`.
    """

    def __init__(self, path: str | Path, *, default_typestore: "Typestore | None" = None) -> None:
        self.path = Path(path)
        self._default_typestore = default_typestore
        self._reader: "AnyReader | None" = None
        self._topics: dict[str, TopicInfo] = {}

    def open(self) -> "BagReader":
        from rosbags.highlevel import AnyReader

        path = self.path
        if not path.exists():
            raise BagError(f"input bag {path} does not exist")
        if path.is_dir():
            if not (path / "metadata.yaml").is_file():
                raise BagError(f"{path} is a directory without metadata.yaml, not a rosbag2 bag")
        elif path.suffix not in (".mcap", ".db3"):
            raise BagError(f"{path}: not a rosbag2 bag (expected a .mcap or .db3 file or a bag directory)")
        try:
            typestore = self._default_typestore if self._default_typestore is not None else reading_typestore()
            reader = AnyReader([path], default_typestore=typestore)
            reader.open()
        except Exception as exc:  # rosbags raises many types for damaged files
            hint = ""
            if path.suffix == ".mcap" and "magic" in str(exc):
                hint = (
                    "; the file is truncated or not MCAP (rosbags cannot read bag files without the MCAP footer;"
                    " an interrupted recording can be fixed with `mcap recover`)"
                )
            raise BagError(f"{path}: cannot open bag ({_describe(exc)}){hint}") from None
        self._reader = reader
        try:
            self._topics = {
                name: TopicInfo(name, info.msgtype or "?", int(info.msgcount))
                for name, info in reader.topics.items()
            }
        except Exception as exc:
            self.close()
            raise BagError(f"{path}: cannot list topics ({_describe(exc)})") from None
        return self

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception as exc:  # closing a damaged file; nothing left to save
                _log.debug("closing %s: %s", self.path, exc)

    def _end(self, ok: bool) -> None:  # leaving a ``with`` block closes, raised or not
        self.close()

    # -- contents --------------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topic name -> :class:`TopicInfo`."""
        self._require_open()
        return dict(self._topics)

    @property
    def rosbags_reader(self) -> "AnyReader":
        """The opened rosbags ``AnyReader`` underneath (its own API and exceptions); prefer
        :meth:`messages` and :meth:`deserialize`, which name the bag in their errors."""
        return self._require_open()

    @property
    def typestore(self) -> "Typestore":
        """Types as defined in this bag (used to decode it, and to copy its raw bytes)."""
        return self._require_open().typestore

    def offered_qos_yaml(self, topic: str) -> str:
        """The recorded QoS of a topic as rosbag2's ``offered_qos_profiles`` YAML ("" if none).

        Copying it keeps e.g. ``/tf_static`` transient-local when the output is played back.
        """
        import yaml
        from rosbags.interfaces import ConnectionExtRosbag2
        from rosbags.rosbag2.metadata import dump_qos_v9

        reader = self._require_open()
        for connection in reader.connections:
            if connection.topic == topic and isinstance(connection.ext, ConnectionExtRosbag2):
                profiles = connection.ext.offered_qos_profiles
                if profiles:
                    return yaml.safe_dump(dump_qos_v9(list(profiles)), sort_keys=False).strip()
        return ""

    def messages(
        self, topics: Sequence[str], *, start_ns: int | None = None, stop_ns: int | None = None
    ) -> Iterator[BagMessage]:
        """The messages of ``topics`` in log-time order.

        Args:
            topics: topic names, all in the bag.
            start_ns, stop_ns: only messages with ``start_ns <= log time < stop_ns`` (either
                bound None: open); the storage's time index skips the rest (MCAP chunk index,
                sqlite3 timestamp query), so one message is fetched without a scan.

        Raises:
            BagError: a topic is not in the bag, or the storage fails mid-way (truncated,
                corrupt); the message names the file, topic and message index reached.
        """
        reader = self._require_open()
        missing = [t for t in topics if t not in self._topics]
        if missing:
            raise BagError(f"{self.path}: no topic {missing[0]} (topics: {self._topic_list()})")
        wanted = set(topics)
        connections = [c for c in reader.connections if c.topic in wanted]
        count = 0
        last_topic = "(start)"
        iterator = reader.messages(connections=connections, start=start_ns, stop=stop_ns)
        while True:
            try:
                connection, log_time_ns, data = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise BagError(
                    f"{self.path}: reading failed after {count} messages (last on {last_topic}): {_describe(exc)}"
                ) from None
            count += 1
            last_topic = connection.topic
            yield BagMessage(connection.topic, connection.msgtype, int(log_time_ns), data)

    def deserialize(self, message: BagMessage) -> Any:
        """Decode one message with the bag's own definitions.

        Raises:
            BagError: the bytes do not decode as the topic's type (a corrupt record).
        """
        reader = self._require_open()
        try:
            return reader.typestore.deserialize_cdr(message.data, message.msgtype)
        except Exception as exc:
            raise BagError(
                f"{self.path}: a {message.msgtype} message on {message.topic} at t={message.log_time_ns} ns "
                f"does not decode ({_describe(exc)})"
            ) from None

    def static_transforms(self, topic: str | None = None) -> StaticTransforms:
        """Every static transform of the bag (an empty tree when it has none).

        Args:
            topic: the one TFMessage topic to read; None reads ``/tf_static`` and every
                namespaced ``<ns>/tf_static`` (a robot launched in a namespace remaps it there),
                merged in log-time order (a later transform of the same child wins, as in tf2).

        Raises:
            BagError: a named topic is missing or not a TFMessage, or a transform is malformed.
        """
        self._require_open()
        if topic is None:
            standard = self._topics.get(TF_STATIC_TOPIC)
            if standard is not None and standard.msgtype != TFMESSAGE_TYPE:
                raise BagError(f"{self.path}: {TF_STATIC_TOPIC} is {standard.msgtype}, expected {TFMESSAGE_TYPE}")
            topics = sorted(
                t.name for t in self._topics.values()
                if t.msgtype == TFMESSAGE_TYPE and t.name.rstrip("/").rpartition("/")[2] == "tf_static"
            )
        else:
            if topic not in self._topics:
                raise BagError(f"{self.path}: no topic {topic} (topics: {self._topic_list()})")
            info = self._topics[topic]
            if info.msgtype != TFMESSAGE_TYPE:
                raise BagError(f"{self.path}: {topic} is {info.msgtype}, expected {TFMESSAGE_TYPE}")
            topics = [topic]
        tree = StaticTransforms()
        if not topics:
            return tree
        for message in self.messages(topics):
            try:
                tree.add_message(self.deserialize(message))
            except InputError as exc:
                raise BagError(f"{self.path}: bad transform on {message.topic}: {exc}") from None
        return tree

    def _topic_list(self) -> str:
        return ", ".join(str(t) for t in sorted(self._topics.values(), key=lambda t: t.name)) or "none"

    def _require_open(self) -> "AnyReader":
        if self._reader is None:
            raise BagError(f"{self.path}: bag is not open")
        return self._reader


# -- topic selection -------------------------------------------------------------------------
def _strip_transport(topic: str) -> str:
    head, _, last = topic.rpartition("/")
    return head if last in _TRANSPORT_SUFFIXES and head else topic


def camera_namespace(image_topic: str) -> str:
    """The camera's namespace: ``/ns/image_raw`` and ``/ns/image_raw/compressed`` -> ``/ns``."""
    base = _strip_transport(image_topic)
    ns = base.rpartition("/")[0]
    return ns


def _has_word(topic: str, words: Sequence[str]) -> bool:
    return any(word in part.lower() for part in topic.split("/") if part for word in words)


def looks_like_depth(topic: str) -> bool:
    """A name part contains "depth" or "disparity" (any case): a depth, not a colour, image."""
    return _has_word(topic, _DEPTH_WORDS)


def looks_like_mask(topic: str) -> bool:
    """A name part contains "mask" (any case): an object / segmentation mask image, e.g. the
    renderer's ``/camera/object_mask``, not a camera."""
    return _has_word(topic, _MASK_WORDS)


def _listing(infos: Sequence[TopicInfo]) -> str:
    return ", ".join(str(i) for i in infos) or "none"


def select_image_topic(
    topics: dict[str, TopicInfo],
    image_topic: str | None = None,
    *,
    source: str = "bag",
    option: str = "--image-topic",
) -> str:
    """Choose the colour image topic (the rule every reader of bags in the package uses).

    Automatic choice (``image_topic`` None): among Image / CompressedImage topics with messages,
    drop depth streams (:func:`looks_like_depth`), masks (:func:`looks_like_mask`) and
    transports of a raw topic that is also present (``/ns/image_raw/compressed`` when
    ``/ns/image_raw`` exists; transports: compressed, compressedDepth, theora, zstd); exactly one
    must remain. Two different cameras are never chosen between silently.

    Args:
        topics: the bag's topics (:attr:`BagReader.topics`).
        image_topic: a topic named by the user, checked instead of chosen.
        source: the bag, for the error messages.
        option: how the user names the topic (a CLI flag or a config key), for the messages.

    Returns:
        The image topic (it has messages).

    Raises:
        BagError: a named topic is missing or of the wrong type, no or several candidates, or
            the topic has no messages; the message lists the candidates.
    """
    images = [t for t in topics.values() if t.msgtype in IMAGE_TYPES]
    if image_topic is not None:
        info = topics.get(image_topic)
        if info is None or info.msgtype not in IMAGE_TYPES:
            found = f"is {info.msgtype}" if info else "is not in the bag"
            raise BagError(f"{source}: image topic {image_topic} {found}; image topics: {_listing(images)}")
    else:
        candidates = [
            t for t in images if t.count > 0 and not looks_like_depth(t.name) and not looks_like_mask(t.name)
        ]
        names = {t.name for t in candidates}
        candidates = [
            t for t in candidates if not (_strip_transport(t.name) != t.name and _strip_transport(t.name) in names)
        ]
        if len(candidates) != 1:
            what = "no colour image topic" if not candidates else "several image topics"
            raise BagError(f"{source}: {what} to choose from ({_listing(candidates or images)}); name one with {option}")
        image_topic = candidates[0].name
    if topics[image_topic].count == 0:
        raise BagError(f"{source}: image topic {image_topic} has no messages")
    return image_topic


def select_camera_topics(
    topics: dict[str, TopicInfo],
    image_topic: str | None = None,
    camera_info_topic: str | None = None,
    *,
    source: str = "bag",
    image_option: str = "--image-topic",
    camera_info_option: str = "--camera-info-topic",
) -> tuple[str, str]:
    """Choose the colour image topic (:func:`select_image_topic`) and its camera_info topic.

    The camera_info is ``<ns>/camera_info`` for an image ``<ns>/<name>[/<transport>]``, else
    the only CameraInfo topic of the bag.

    Args:
        topics, image_topic, source: as :func:`select_image_topic`.
        camera_info_topic: a topic named by the user, checked instead of chosen.
        image_option, camera_info_option: how the user names each topic (CLI flag or config
            key), for the messages.

    Returns:
        (image_topic, camera_info_topic), both with messages.

    Raises:
        BagError: a named topic is missing or of the wrong type, or the choice is ambiguous
            or impossible; the message lists the candidates.
    """
    image_topic = select_image_topic(topics, image_topic, source=source, option=image_option)
    infos = [t for t in topics.values() if t.msgtype == CAMERA_INFO_TYPE]
    if camera_info_topic is not None:
        info = topics.get(camera_info_topic)
        if info is None or info.msgtype != CAMERA_INFO_TYPE:
            found = f"is {info.msgtype}" if info else "is not in the bag"
            raise BagError(
                f"{source}: camera_info topic {camera_info_topic} {found}; CameraInfo topics: {_listing(infos)}"
            )
    else:
        sibling = f"{camera_namespace(image_topic)}/camera_info"
        if sibling in topics and topics[sibling].msgtype == CAMERA_INFO_TYPE:
            camera_info_topic = sibling
        elif len(infos) == 1:
            camera_info_topic = infos[0].name
        else:
            what = "no CameraInfo topic" if not infos else f"no {sibling} and several CameraInfo topics"
            raise BagError(f"{source}: {what} ({_listing(infos)}); name one with {camera_info_option}")
    if topics[camera_info_topic].count == 0:
        raise BagError(f"{source}: camera_info topic {camera_info_topic} has no messages")
    return image_topic, camera_info_topic


def select_lidar_topic(topics: dict[str, TopicInfo], lidar_topic: str, *, source: str = "bag") -> str:
    """Validate a PointCloud2 topic named by the user."""
    info = topics.get(lidar_topic)
    if info is None or info.msgtype != POINTCLOUD2_TYPE:
        clouds = [t for t in topics.values() if t.msgtype == POINTCLOUD2_TYPE]
        found = f"is {info.msgtype}" if info else "is not in the bag"
        raise BagError(f"{source}: LiDAR topic {lidar_topic} {found}; PointCloud2 topics: {_listing(clouds)}")
    if info.count == 0:
        raise BagError(f"{source}: LiDAR topic {lidar_topic} has no messages")
    return lidar_topic
