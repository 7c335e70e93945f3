"""The pose node live and ``depth-ros infer --pose-model`` offline give the same trajectory on the
same bag: the node (real class, real ONNX Runtime backend) is fed the bag's own camera_info and
image messages in-process; its published odometry must equal, number for number, what infer
wrote for those frames (pinhole and distorted cameras: both rectify the same way)."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from depth_ros.bag.infer import InferConfig, infer_bag
from depth_ros.synthetic import SynthConfig, write_bag

from posenet_onnx import constant_depth_model, image_dependent_pose_model
from test_camera_change import feed_frames

pytestmark = [pytest.mark.ros]

BASE = dict(width=64, height=48, frames=6, texture_size_px=64, lidar_beams=0, seed=11)


def _bag_pairs(bag: Path) -> list[tuple[Any, Any]]:
    """(camera_info, image) rclpy messages of the bag, in order (deserialized from its CDR)."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image

    infos, images = [], []
    with AnyReader([bag]) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic == "/camera/camera_info":
                infos.append(deserialize_message(bytes(raw), CameraInfo))
            elif conn.topic == "/camera/image_raw":
                images.append(deserialize_message(bytes(raw), Image))
    return list(zip(infos, images))


def _row(stamp_sec: int, stamp_nanosec: int, frame_id: str, child: str, pose: Any, twist: Any) -> tuple[Any, ...]:
    p, q, v, w = pose.position, pose.orientation, twist.linear, twist.angular
    return (stamp_sec * 10**9 + stamp_nanosec, frame_id, child,
            np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w, v.x, v.y, v.z, w.x, w.y, w.z]))


class _Recorder:
    def __init__(self) -> None:
        self.msgs: list[Any] = []

    def publish(self, msg: Any) -> None:
        self.msgs.append(msg)


def _node_odometry(pose_model: Path, pairs: list[tuple[Any, Any]], log_dir: Path) -> list[tuple[Any, ...]]:
    import rclpy
    from rclpy.parameter import Parameter

    from depth_ros.ros.pose_node import create_pose_node

    os.environ.setdefault("ROS_LOG_DIR", str(log_dir))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(0, 101))
    node = None
    try:
        node = create_pose_node(context=ctx, namespace="/agree", parameter_overrides=[
            Parameter("model_path", value=str(pose_model)), Parameter("backend", value="onnxruntime-cpu")])
        node.configure()
        node.odom_pub = recorder = _Recorder()  # the published messages, in order
        feed_frames(node, "/agree", pairs)
        assert (node.frames_published, node.frames_skipped) == (len(pairs), 0)
        return [_row(m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id, m.child_frame_id, m.pose.pose, m.twist.twist)
                for m in recorder.msgs]
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("distortion", [("none", ""), ("plumb_bob", "-0.2,0.05,0.001,-0.001,0")], ids=["pinhole", "plumb_bob"])
def test_node_and_infer_trajectories_agree(tmp_path: Path, distortion: tuple[str, str]) -> None:
    bag = write_bag(SynthConfig(**BASE, distortion_model=distortion[0], distortion_coeffs=distortion[1]), tmp_path / "s.mcap")
    pose_model = image_dependent_pose_model(tmp_path / "pose.onnx", seed=2)
    out = tmp_path / "o.mcap"
    infer_bag(bag, out, constant_depth_model(tmp_path / "d.onnx", 2.0, "plane"), InferConfig(backend="onnxruntime-cpu"),
              pose_model=pose_model)
    with AnyReader([out]) as reader:
        offline = [_row(m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id, m.child_frame_id, m.pose.pose, m.twist.twist)
                   for m in (reader.deserialize(d, c.msgtype) for c, _, d in reader.messages() if c.topic == "/camera/odom")]
    live = _node_odometry(pose_model, _bag_pairs(bag), tmp_path)
    assert len(offline) == len(live) == BASE["frames"]
    for (t_off, frame_off, child_off, v_off), (t_live, frame_live, child_live, v_live) in zip(offline, live):
        assert (t_off, frame_off, child_off) == (t_live, frame_live, child_live) == (t_off, "odom", "camera_optical_frame")
        np.testing.assert_allclose(v_off, v_live, rtol=0, atol=1e-12)
    # a trajectory that moved, not a row of identities
    assert np.linalg.norm(live[-1][3][:3]) > 0.1
