"""What we publish reads back through cv_bridge / sensor_msgs_py as documented, and our own
DepthInfo crosses the graph between processes field for field.

cv_bridge: imgmsg_to_cv2 maps 32FC1 -> float32 (H, W), 16UC1 -> uint16 (H, W), rows of
``step`` bytes, little-endian when is_bigendian == 0. sensor_msgs_py.point_cloud2.read_points
builds a numpy dtype from ``fields`` (name, offset, datatype FLOAT32 = 7, count) with
itemsize ``point_step``; depth_image_proc's xyzrgb packs colour as the bytes B, G, R, 0 of a
float32 at offset 16 (point_step 32). Neither library installs from pip, so the layouts are
checked against those definitions, after a CDR round trip through rclpy's serializer.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import Graph

pytestmark = [pytest.mark.ros]

FLOAT32 = 7


def _roundtrip(msg):  # what a subscriber in another process receives
    from rclpy.serialization import deserialize_message, serialize_message

    return deserialize_message(serialize_message(msg), type(msg))


def _header():
    from std_msgs.msg import Header

    h = Header(frame_id="camera_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def _cv_bridge_view(img) -> np.ndarray:
    """cv_bridge's imgmsg_to_cv2 for single-channel encodings, from its documented rules."""
    dtype = {"32FC1": np.dtype("<f4"), "16UC1": np.dtype("<u2")}[img.encoding]
    if img.is_bigendian:
        dtype = dtype.newbyteorder(">")
    rows = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.step)
    return rows[:, : img.width * dtype.itemsize].copy().view(dtype)


def test_depth_image_32fc1_and_16uc1() -> None:
    from depth_ros.ros.messages import depth_image_msg

    # (postprocess marks invalid pixels NaN; it never emits inf)
    depth = np.array([[1.0, np.nan, 2.5], [0.25, 65.6, np.nan]], np.float32)
    m32 = _roundtrip(depth_image_msg(depth, _header(), "32FC1"))
    assert (m32.encoding, m32.step, m32.is_bigendian, m32.height, m32.width) == ("32FC1", 12, 0, 2, 3)
    assert (m32.header.frame_id, m32.header.stamp.sec, m32.header.stamp.nanosec) == ("camera_optical_frame", 12, 345)
    out = _cv_bridge_view(m32)
    np.testing.assert_array_equal(out, np.array([[1.0, np.nan, 2.5], [0.25, 65.6, np.nan]], np.float32))
    m16 = _roundtrip(depth_image_msg(depth, _header(), "16UC1"))
    assert (m16.encoding, m16.step) == ("16UC1", 6)
    np.testing.assert_array_equal(_cv_bridge_view(m16), [[1000, 0, 2500], [250, 65535, 0]])


def test_pointcloud_xyz_and_xyzrgb_layouts() -> None:
    from depth_ros.core.camera import CameraModel
    from depth_ros.core.pointcloud import make_cloud
    from depth_ros.ros.messages import pointcloud_msg

    cam = CameraModel.from_intrinsics(4, 2, 2.0, 2.0, 1.5, 0.5)
    depth = np.array([[1.0, 2.0, np.nan, 4.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[0, 0] = (255, 128, 1)

    xyz = _roundtrip(pointcloud_msg(make_cloud(depth, cam), _header()))
    assert [(f.name, f.offset, f.datatype, f.count) for f in xyz.fields] == [
        ("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)]
    assert (xyz.height, xyz.width, xyz.point_step, xyz.row_step, xyz.is_dense, xyz.is_bigendian) == (2, 4, 16, 64, False, False)
    dt = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": xyz.point_step})
    pts = np.frombuffer(bytes(xyz.data), dt).reshape(2, 4)  # sensor_msgs_py.read_points_numpy
    assert (pts["x"][0, 3], pts["y"][0, 3], pts["z"][0, 3]) == pytest.approx(((3 - 1.5) * 4.0 / 2.0, (0 - 0.5) * 4.0 / 2.0, 4.0))
    assert np.isnan(pts["z"][0, 2])

    col = _roundtrip(pointcloud_msg(make_cloud(depth, cam, rgb=rgb), _header()))
    assert [(f.name, f.offset, f.datatype) for f in col.fields] == [("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("rgb", 16, FLOAT32)]
    assert (col.point_step, col.row_step, col.is_dense) == (32, 128, False)
    packed = np.frombuffer(bytes(col.data), np.uint8).reshape(2, 4, 32)[0, 0, 16:20]
    assert packed.tolist() == [1, 128, 255, 0]  # B, G, R, 0 little-endian: 0x00RRGGBB as uint32
    as_uint = np.frombuffer(packed.tobytes(), "<u4")[0]
    assert as_uint == (255 << 16) | (128 << 8) | 1


def test_depth_info_between_processes(ros_env: dict[str, str], graph: Graph) -> None:
    """A DepthInfo published by another process arrives with every field intact."""
    from depth_ros.msg import DepthInfo

    box = graph.subscribe(DepthInfo, "/layout_test/depth_info", 10)
    code = textwrap.dedent("""
        import time, rclpy
        from depth_ros.msg import DepthInfo
        rclpy.init()
        node = rclpy.create_node("depth_info_sender")
        pub = node.create_publisher(DepthInfo, "/layout_test/depth_info", 10)
        msg = DepthInfo(model="m", output_kind="depth_metric", backend="onnxruntime-cpu", scale_source="sparse_alignment",
                        scale=1.25, shift=-0.5, scale_support=321, min_range_m=0.2, max_range_m=30.0,
                        valid_fraction=0.75, inference_ms=12.5, latency_ms=14.0, frames_dropped=2**40,
                        frames_received=2**41, frames_skipped=3)
        msg.header.frame_id = "cam"; msg.header.stamp.sec = 7; msg.header.stamp.nanosec = 8
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(100):  # until the receiver (reliable, keep 10) has it; it exits us
            pub.publish(msg)
            time.sleep(0.1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=ros_env)
    try:
        graph.wait_until(lambda: len(box) > 0, 30.0, "a DepthInfo from the other process")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    m = box[0]
    assert (m.header.frame_id, m.header.stamp.sec, m.header.stamp.nanosec) == ("cam", 7, 8)
    assert (m.model, m.output_kind, m.backend, m.scale_source) == ("m", "depth_metric", "onnxruntime-cpu", "sparse_alignment")
    assert (m.scale, m.shift, m.scale_support, m.frames_dropped, m.frames_received, m.frames_skipped) == (1.25, -0.5, 321, 2**40, 2**41, 3)
    assert (m.min_range_m, m.max_range_m, m.valid_fraction, m.inference_ms, m.latency_ms) == pytest.approx((0.2, 30.0, 0.75, 12.5, 14.0))
