"""One message builder, two flavours: what the node publishes (rclpy classes) and what
``depth-ros infer`` writes (rosbags typestore) serialise to the same CDR bytes (alignment padding aside)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.ros]


def _inputs():
    from types import SimpleNamespace

    header = SimpleNamespace(stamp=SimpleNamespace(sec=12, nanosec=345), frame_id="camera_optical_frame")
    info = SimpleNamespace(
        height=3, width=4, distortion_model="plumb_bob", d=[0.1, -0.2, 0.0, 0.0, 0.01],
        k=[5.0, 0, 1.5, 0, 5.0, 1.0, 0, 0, 1], r=list(np.eye(3).ravel()), p=[5.0, 0, 1.5, 0, 0, 5.0, 1.0, 0, 0, 0, 1, 0],
        binning_x=1, binning_y=2, roi=SimpleNamespace(x_offset=1, y_offset=2, height=3, width=4, do_rectify=True),
    )
    depth = np.array([[1.0, np.nan, 2.5, 30.0], [0.5, 1.25, np.nan, 4.0], [7.0, 8.0, 9.0, 0.001]], np.float32)
    return header, info, depth


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_rclpy_and_typestore_builders_serialise_identically(encoding: str) -> None:
    from rclpy.serialization import serialize_message

    from depth_ros.bag.typestore import output_typestore
    from depth_ros.core.camera import CameraModel
    from depth_ros.core.pointcloud import make_cloud
    from depth_ros.msgbuild import DEPTH_INFO_TYPE, MessageBuilder
    from depth_ros.ros.messages import rclpy_builder

    ts = output_typestore()
    live, offline = rclpy_builder(), MessageBuilder.for_typestore(ts)
    header, info, depth = _inputs()
    rgb = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)
    cloud = make_cloud(depth, CameraModel.from_intrinsics(4, 3, 5.0, 5.0, 1.5, 1.0), rgb)
    fields = {"model": "m", "output_kind": "depth_metric", "backend": "b", "scale_source": "model", "scale": 1.5,
              "shift": -0.25, "scale_support": 12, "min_range_m": 0.1, "max_range_m": 20.0, "valid_fraction": 0.75,
              "inference_ms": 3.5, "latency_ms": 4.5, "frames_dropped": 1, "frames_received": 9, "frames_skipped": 2}
    pairs = [
        (live.depth_image(depth, header, encoding), offline.depth_image(depth, header, encoding), "sensor_msgs/msg/Image"),
        (live.copy_camera_info(info, header), offline.copy_camera_info(info, header), "sensor_msgs/msg/CameraInfo"),
        (live.pointcloud(cloud, header), offline.pointcloud(cloud, header), "sensor_msgs/msg/PointCloud2"),
        (live.depth_info(header, **fields), offline.depth_info(header, **fields), DEPTH_INFO_TYPE),
    ]
    for rclpy_msg, bag_msg, msgtype in pairs:
        # rclpy leaves CDR alignment padding uninitialised: compare after one rosbags round trip,
        # which writes every field rclpy wrote and zero padding
        live_bytes = bytes(ts.serialize_cdr(ts.deserialize_cdr(bytes(serialize_message(rclpy_msg)), msgtype), msgtype))
        assert live_bytes == bytes(ts.serialize_cdr(bag_msg, msgtype)), msgtype
    # the header is copied, not shared or re-stamped
    msg = live.depth_image(depth, header, encoding)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 345, "camera_optical_frame")


def test_depth_info_refuses_an_unknown_field() -> None:
    from depth_ros.ros.messages import rclpy_builder

    header, _, _ = _inputs()
    with pytest.raises(AttributeError, match="scale_souce"):
        rclpy_builder().depth_info(header, scale_souce="model")


def test_a_cloud_written_into_a_reused_payload_publishes_the_same_bytes_and_a_kept_message_keeps_its_own() -> None:
    from rclpy.serialization import serialize_message

    from depth_ros.core.camera import CameraModel
    from depth_ros.core.pointcloud import cloud_nbytes, make_cloud
    from depth_ros.ros.messages import ReusedPayload, rclpy_builder

    build, pool = rclpy_builder(), ReusedPayload()
    header, _, depth = _inputs()
    cam = CameraModel.from_intrinsics(4, 3, 5.0, 5.0, 1.5, 1.0)

    def published(depth_m: np.ndarray) -> tuple[object, bytes]:
        payload = pool.take(cloud_nbytes(cam))
        msg = build.pointcloud(make_cloud(depth_m, cam, out=payload), header, payload=payload)
        assert msg.data is payload  # no copy into the message
        return msg, bytes(serialize_message(msg))

    for k in range(3):  # each message dropped after publishing, as the node does: one buffer
        got = published(depth * (k + 1))[1]
        assert got == bytes(serialize_message(build.pointcloud(make_cloud(depth * (k + 1), cam), header)))
    assert pool.reused == 2
    kept, kept_bytes = published(depth)  # a caller keeps this message...
    published(depth * 5)  # ...so the next frame is written into a new buffer
    assert bytes(serialize_message(kept)) == kept_bytes and pool.reused == 3
    with pytest.raises(ValueError, match="payload holds 16 bytes, the cloud 192"):
        build.pointcloud(make_cloud(depth, cam), header, payload=pool.take(16))
    for encoding, nbytes in (("32FC1", 48), ("16UC1", 24)):  # the depth image the same way
        payload = pool.take(nbytes)
        msg = build.depth_image(depth, header, encoding, payload=payload)
        assert msg.data is payload
        assert bytes(serialize_message(msg)) == bytes(serialize_message(build.depth_image(depth, header, encoding)))
