"""Shared doubles for the bag and infer tests: small hand-made bags and messages (no tests here).

Messages are built with the output typestore (ROS 2 kilted + depth_ros/msg/DepthInfo), so
the bags are what a recorder writes, without going through the code under test for reading.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from depth_ros.bag.typestore import output_typestore
from depth_ros.bag.writer import BagWriter
from depth_ros.core.camera import CameraModel

FRAME_ID = "camera_optical_frame"
T0_NS = 1_700_000_000_000_000_000


def types() -> dict[str, Any]:
    return output_typestore().types


def header(stamp_ns: int, frame_id: str = FRAME_ID) -> Any:
    t = types()
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_msg(
    stamp_ns: int,
    rgb: np.ndarray,
    encoding: str = "rgb8",
    frame_id: str = FRAME_ID,
    row_padding: int = 0,
    step: int | None = None,
    data: np.ndarray | None = None,
) -> Any:
    """An Image of an (H, W, 3) uint8 RGB array in ``encoding`` (rgb8, bgr8, mono8, rgba8, bgra8)."""
    h, w, _ = rgb.shape
    if encoding == "rgb8":
        px = rgb
    elif encoding == "bgr8":
        px = rgb[..., ::-1]
    elif encoding == "mono8":
        px = rgb[..., :1]
    elif encoding in ("rgba8", "bgra8"):
        base = rgb if encoding == "rgba8" else rgb[..., ::-1]
        px = np.concatenate([base, np.full((h, w, 1), 255, np.uint8)], axis=2)
    else:  # any other encoding: raw rgb bytes under that name
        px = rgb
    rows = px.reshape(h, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, row_padding), np.uint8)], axis=1)
    payload = np.ascontiguousarray(rows).reshape(-1) if data is None else data
    return types()["sensor_msgs/msg/Image"](
        header=header(stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=rows.shape[1] if step is None else step, data=payload,
    )


def compressed_msg(stamp_ns: int, rgb: np.ndarray, fmt: str = "png", frame_id: str = FRAME_ID) -> Any:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt.upper())
    return types()["sensor_msgs/msg/CompressedImage"](
        header=header(stamp_ns, frame_id), format=fmt, data=np.frombuffer(buf.getvalue(), np.uint8)
    )


def camera_info_msg(stamp_ns: int, camera: CameraModel, frame_id: str = FRAME_ID, k: Iterable[float] | None = None) -> Any:
    t = types()
    return t["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns, frame_id),
        height=camera.height,
        width=camera.width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.asarray(camera.K.reshape(-1) if k is None else list(k), dtype=np.float64),
        r=np.eye(3).reshape(-1),
        p=np.concatenate([camera.K, np.zeros((3, 1))], axis=1).reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def tf_static_msg(stamp_ns: int, edges: list[tuple[str, str, np.ndarray, np.ndarray]]) -> Any:
    """TFMessage of (parent, child, translation (3,), quaternion (x, y, z, w))."""
    t = types()
    transforms = []
    for parent, child, trans, quat in edges:
        transforms.append(
            t["geometry_msgs/msg/TransformStamped"](
                header=header(stamp_ns, parent),
                child_frame_id=child,
                transform=t["geometry_msgs/msg/Transform"](
                    translation=t["geometry_msgs/msg/Vector3"](x=float(trans[0]), y=float(trans[1]), z=float(trans[2])),
                    rotation=t["geometry_msgs/msg/Quaternion"](
                        x=float(quat[0]), y=float(quat[1]), z=float(quat[2]), w=float(quat[3])
                    ),
                ),
            )
        )
    return t["tf2_msgs/msg/TFMessage"](transforms=transforms)


def cloud_msg(stamp_ns: int, xyz: np.ndarray, frame_id: str) -> Any:
    """An unorganized xyz float32 PointCloud2 (point_step 12)."""
    t = types()
    xyz = np.ascontiguousarray(xyz, dtype="<f4")
    fields = [t["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    return t["sensor_msgs/msg/PointCloud2"](
        header=header(stamp_ns, frame_id), height=1, width=len(xyz), fields=fields, is_bigendian=False,
        point_step=12, row_step=12 * len(xyz), data=xyz.reshape(-1).view(np.uint8), is_dense=True,
    )


def write_bag(path: Path, records: Iterable[tuple[str, str, Any, int]]) -> Path:
    """Write (topic, msgtype, message, log_time_ns) records into a .mcap or .db3 file."""
    with BagWriter(path, typestore=output_typestore()) as bag:
        for topic, msgtype, msg, log_ns in records:
            bag.add_topic(topic, msgtype)
            bag.write(topic, msg, log_ns)
    return path


def camera_records(
    n: int,
    camera: CameraModel,
    rgb: np.ndarray | None = None,
    image_topic: str = "/cam/image_raw",
    info_topic: str = "/cam/camera_info",
    period_ns: int = 100_000_000,
) -> list[tuple[str, str, Any, int]]:
    """n image + camera_info pairs with equal stamps (a constant or given RGB image)."""
    if rgb is None:
        rgb = np.zeros((camera.height, camera.width, 3), np.uint8)
        rgb[..., 0] = np.arange(camera.width, dtype=np.uint8)[None, :]
        rgb[..., 1] = np.arange(camera.height, dtype=np.uint8)[:, None]
    out = []
    for i in range(n):
        stamp = T0_NS + i * period_ns
        out.append((image_topic, "sensor_msgs/msg/Image", image_msg(stamp, rgb), stamp))
        out.append((info_topic, "sensor_msgs/msg/CameraInfo", camera_info_msg(stamp, camera), stamp))
    return out
