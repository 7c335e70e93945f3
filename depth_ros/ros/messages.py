"""Build rclpy messages from arrays (the ROS side of depth_ros.msgconv).

The field values come from :mod:`depth_ros.msgconv` (pure, shared with the bag tools); this
module only puts them into rclpy message objects. Byte payloads are handed to rclpy as
``array.array('B')`` (one copy; a Python list would be ~100x slower).

Every builder takes the input message's header and copies it (stamp and frame_id): outputs
are stamped with the time the image was taken, never ``now()``.
"""
from __future__ import annotations

import array
from typing import Any

import numpy as np

from depth_ros import msgconv

__all__ = [
    "copy_header",
    "camera_info_msg",
    "depth_image_msg",
    "depth_info_msg",
    "pointcloud_msg",
    "to_byte_array",
]


def to_byte_array(data: np.ndarray) -> array.array:
    """A 1-D C-contiguous uint8 array as ``array.array('B')`` (what rclpy's uint8[] takes fast)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(data, dtype=np.uint8).data)
    return out


def copy_header(header: Any) -> Any:
    """A new std_msgs/Header with the same stamp and frame_id."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(stamp=Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec)), frame_id=str(header.frame_id))


def depth_image_msg(depth_m: np.ndarray, header: Any, encoding: str = "32FC1") -> Any:
    """sensor_msgs/Image of ``depth_m`` ((H, W) float metres, NaN invalid): 32FC1 m or 16UC1 mm."""
    from sensor_msgs.msg import Image

    f = msgconv.depth_image_fields(depth_m, encoding)
    return Image(
        header=copy_header(header),
        height=f["height"],
        width=f["width"],
        encoding=f["encoding"],
        is_bigendian=int(f["is_bigendian"]),
        step=f["step"],
        data=to_byte_array(f["data"]),
    )


def camera_info_msg(info: Any, header: Any) -> Any:
    """A copy of sensor_msgs/CameraInfo ``info`` with ``header`` (the depth image has the same
    resolution and intrinsics as the input image)."""
    from sensor_msgs.msg import CameraInfo, RegionOfInterest

    roi = info.roi
    return CameraInfo(
        header=copy_header(header),
        height=int(info.height),
        width=int(info.width),
        distortion_model=str(info.distortion_model),
        d=[float(v) for v in info.d],
        k=[float(v) for v in info.k],
        r=[float(v) for v in info.r],
        p=[float(v) for v in info.p],
        binning_x=int(info.binning_x),
        binning_y=int(info.binning_y),
        roi=RegionOfInterest(
            x_offset=int(roi.x_offset), y_offset=int(roi.y_offset), height=int(roi.height),
            width=int(roi.width), do_rectify=bool(roi.do_rectify),
        ),
    )


def pointcloud_msg(cloud: np.ndarray, header: Any) -> Any:
    """sensor_msgs/PointCloud2 of a structured (h, w) cloud (depth_ros.core.pointcloud.make_cloud)."""
    from sensor_msgs.msg import PointCloud2, PointField

    f = msgconv.pointcloud2_fields(cloud)
    return PointCloud2(
        header=copy_header(header),
        height=f["height"],
        width=f["width"],
        fields=[PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in f["fields"]],
        is_bigendian=bool(f["is_bigendian"]),
        point_step=f["point_step"],
        row_step=f["row_step"],
        data=to_byte_array(f["data"]),
        is_dense=bool(f["is_dense"]),
    )


def depth_info_msg(header: Any, **fields: Any) -> Any:
    """depth_ros/msg/DepthInfo with ``header`` copied and the given fields (names as in
    msg/DepthInfo.msg). Floats are cast to float, counts to int."""
    from depth_ros.msg import DepthInfo

    msg = DepthInfo(header=copy_header(header))
    for name, value in fields.items():
        current = getattr(msg, name)  # AttributeError names an unknown field
        if isinstance(current, str):
            setattr(msg, name, str(value))
        elif isinstance(current, float):
            setattr(msg, name, float(value))
        else:
            setattr(msg, name, int(value))
    return msg
