"""The rosbags typestore used to write bags: ROS 2 standard types plus depth_ros's own messages.

The package's messages are registered from their ``.msg`` text (``msg/DepthInfo.msg``), so a
bag written here embeds the same definition a colcon build generates code from, and Foxglove
(or ``ros2 bag``) can decode it without the package installed.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from depth_ros.errors import BagError

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

_log = logging.getLogger(__name__)

__all__ = ["DEPTH_INFO_TYPE", "PACKAGE_MSGS", "find_msg_file", "output_typestore", "reading_typestore"]

DEPTH_INFO_TYPE = "depth_ros/msg/DepthInfo"
#: depth_ros message type -> file name under ``msg/``.
PACKAGE_MSGS: dict[str, str] = {DEPTH_INFO_TYPE: "DepthInfo.msg"}


def _msg_dirs() -> list[Path]:
    """Directories that may hold the package's ``.msg`` files, most specific first."""
    package_dir = Path(__file__).resolve().parent.parent  # .../depth_ros
    dirs = [
        package_dir.parent / "msg",  # source checkout / editable install
        package_dir / "msg",  # shipped as package data
        Path(sys.prefix) / "share" / "depth_ros" / "msg",  # pip data_files / venv build
    ]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / "depth_ros" / "msg")  # colcon install
    return dirs


def find_msg_file(file_name: str) -> Path:
    """Path of one of the package's ``.msg`` files (e.g. ``"DepthInfo.msg"``).

    Raises:
        BagError: the file is in none of the places a source checkout, a pip install or a
            colcon install puts it.
    """
    tried = []
    for directory in _msg_dirs():
        candidate = directory / file_name
        if candidate.is_file():
            return candidate
        tried.append(str(directory))
    raise BagError(f"message definition {file_name} not found (looked in: {', '.join(tried)})")


@functools.lru_cache(maxsize=1)
def output_typestore() -> "Typestore":
    """ROS 2 (kilted) standard types plus :data:`PACKAGE_MSGS`, registered from their .msg text.

    Cached: one typestore per process (rosbags generates a class per type on registration).
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for msgtype, file_name in PACKAGE_MSGS.items():
        path = find_msg_file(file_name)
        try:
            types.update(get_types_from_msg(path.read_text(encoding="utf-8"), msgtype))
        except Exception as exc:  # rosbags raises TypesysError / parser errors
            raise BagError(f"{path}: cannot parse message definition ({exc})") from None
    typestore.register(types)
    return typestore


@functools.lru_cache(maxsize=1)
def reading_typestore() -> "Typestore":
    """Definitions for reading bags that embed none (sqlite3 bags of ROS 2 Humble and older).

    :func:`output_typestore` (ROS 2 standard types plus the package's messages), or the
    standard types alone when the package's ``.msg`` files are not installed: a bag of camera
    topics is still readable then, and one with DepthInfo fails when that topic is decoded.
    Bags that embed their definitions (MCAP, newer sqlite3) are decoded with their own.
    """
    try:
        return output_typestore()
    except BagError as exc:
        from rosbags.typesys import Stores, get_typestore

        _log.warning("reading bags without the package's message types: %s", exc)
        return get_typestore(Stores.ROS2_KILTED)
