"""The output messages as rclpy objects: :class:`~depth_ros.msgbuild.MessageBuilder` with
rclpy's message classes (the one builder the bag tool and the renderer also use, there with a
rosbags typestore).

Byte payloads are handed to rclpy as ``array.array('B')`` (one copy; a Python list would be
~100x slower) and set after construction (:func:`with_data`): rclpy's constructor copies a
``data=`` argument twice more (1 ms for a 640x480 cloud). Every builder takes the input message's header and copies it (stamp and
frame_id): outputs are stamped with the time the image was taken, never ``now()``.
"""
from __future__ import annotations

import array
import functools
import sys
from typing import Any

import numpy as np

from depth_ros.msgbuild import DEPTH_INFO_TYPE, MessageBuilder

__all__ = [
    "copy_header",
    "camera_info_msg",
    "depth_image_msg",
    "depth_info_msg",
    "pointcloud_msg",
    "rclpy_builder",
    "ReusedPayload",
    "to_byte_array",
    "with_data",
]


def to_byte_array(data: np.ndarray) -> array.array:
    """A 1-D C-contiguous uint8 array as ``array.array('B')`` (what rclpy's uint8[] takes fast)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(data, dtype=np.uint8).data)
    return out


class ReusedPayload:
    """A zeroed ``array.array('B')`` message payload written in place and reused frame after frame.

    The cloud is written straight into the payload of the PointCloud2 that carries it
    (:func:`depth_ros.core.pointcloud.make_cloud`'s ``out``): no per-frame allocation of several MB
    (fresh pages fault in, ~0.2-0.5 ms) and no copy into the message (~0.8 ms at 640x480).
    ``publish`` serialises the message before it returns, so the next frame may write the same
    memory; it does so only when nothing else holds the buffer (its reference count: a message
    kept by a caller, e.g. a test's publisher, keeps its own bytes and the next frame gets a new
    buffer). One worker thread takes it; not thread-safe.
    """

    def __init__(self) -> None:
        self._buf: array.array | None = None
        self.reused = 0

    def take(self, nbytes: int) -> array.array:
        """A buffer of ``nbytes`` bytes, zeroed when new; the last one again when the size is the
        same and nothing but this object refers to it."""
        # getrefcount: this attribute and the call's own argument, nothing else.
        if self._buf is not None and len(self._buf) == nbytes and sys.getrefcount(self._buf) == 2:
            self.reused += 1
            return self._buf
        self._buf = array.array("B", bytes(nbytes))
        return self._buf


def with_data(cls: Any, fields: dict[str, Any], data: array.array) -> Any:
    """An rclpy message of ``cls`` with ``fields`` whose ``uint8[] data`` *is* ``data`` (no copy).

    rclpy's generated constructor wraps ``data=`` in a new array.array and its setter copies
    anything but an array.array; since Jazzy the setter keeps an array.array only on a message
    that checks its fields (``check_fields=True``; before Jazzy it always does). The payload
    must not be changed afterwards: the message shares it.
    """
    msg = cls(**fields, **_check_fields_kwargs(cls))
    msg.data = data
    return msg


@functools.lru_cache(maxsize=None)
def _check_fields_kwargs(cls: Any) -> dict[str, bool]:
    return {"check_fields": True} if "_check_fields" in getattr(cls, "__slots__", ()) else {}


def _float_list(values: Any) -> list[float]:
    return [float(v) for v in values]


@functools.lru_cache(maxsize=1)
def rclpy_builder() -> MessageBuilder:
    """The message builder of rclpy classes (imported on first use)."""
    from builtin_interfaces.msg import Time
    from depth_ros.msg import DepthInfo
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
    from std_msgs.msg import Header

    types = {
        "builtin_interfaces/msg/Time": Time,
        "std_msgs/msg/Header": Header,
        "sensor_msgs/msg/Image": Image,
        "sensor_msgs/msg/CameraInfo": CameraInfo,
        "sensor_msgs/msg/RegionOfInterest": RegionOfInterest,
        "sensor_msgs/msg/PointCloud2": PointCloud2,
        "sensor_msgs/msg/PointField": PointField,
        DEPTH_INFO_TYPE: DepthInfo,
    }
    return MessageBuilder(types, byte_array=to_byte_array, float_array=_float_list, with_data=with_data)


def copy_header(header: Any) -> Any:
    """A new std_msgs/Header with the same stamp and frame_id."""
    return rclpy_builder().header(header)


def depth_image_msg(depth_m: np.ndarray, header: Any, encoding: str = "32FC1") -> Any:
    """sensor_msgs/Image of ``depth_m`` ((H, W) float metres, NaN invalid): 32FC1 m or 16UC1 mm."""
    return rclpy_builder().depth_image(depth_m, header, encoding)


def camera_info_msg(info: Any, header: Any) -> Any:
    """A copy of sensor_msgs/CameraInfo ``info`` with ``header`` (the depth image has the same
    resolution and intrinsics as the input image)."""
    return rclpy_builder().copy_camera_info(info, header)


def pointcloud_msg(cloud: np.ndarray, header: Any) -> Any:
    """sensor_msgs/PointCloud2 of a structured (h, w) cloud (depth_ros.core.pointcloud.make_cloud)."""
    return rclpy_builder().pointcloud(cloud, header)


def depth_info_msg(header: Any, **fields: Any) -> Any:
    """depth_ros/msg/DepthInfo with ``header`` copied and the given fields (names as in
    msg/DepthInfo.msg). Floats are cast to float, counts to int."""
    return rclpy_builder().depth_info(header, **fields)
