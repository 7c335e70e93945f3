"""The pose node broadcasts odom -> camera on TF when tf2_ros imports (here: a stand-in
module recording what it is asked to send, since tf2_ros has no pip wheel)."""
from __future__ import annotations

import os
import sys
import threading
import types
from typing import Any, Iterator

import numpy as np
import pytest

from conftest import NET_H, NET_W, S, Graph, image_msg, info_msg

pytestmark = [pytest.mark.ros]


class PoseDouble:
    name = "double"

    def __init__(self) -> None:
        from depth_ros.inference.spec import ModelSpec

        self.spec = ModelSpec(output_kind="pose_6dof", input_height=NET_H, input_width=NET_W, input_channels=6,
                              output_name="pose", name="pose_double", metric=True, pose_convention="T_src_tgt")

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        assert x.shape == (1, 6, NET_H, NET_W)
        return {"pose": np.array([[0.0, 0.0, 0.0, 0.05, 0.0, 0.2]], np.float32)}


@pytest.fixture
def pose_node(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[Any]]]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from depth_ros.ros.pose_node import create_pose_node

    sent: list[Any] = []
    fake = types.ModuleType("tf2_ros")

    class TransformBroadcaster:
        def __init__(self, node: Any) -> None:
            self.node = node

        def sendTransform(self, tf: Any) -> None:  # noqa: N802 - tf2_ros' name
            sent.append(tf)

    fake.TransformBroadcaster = TransformBroadcaster
    monkeypatch.setitem(sys.modules, "tf2_ros", fake)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    node = create_pose_node(context=ctx, namespace="/tf_test", backend_factory=lambda cfg: PoseDouble(),
                            parameter_overrides=[Parameter("model_path", value="pose.onnx"),
                                                 Parameter("camera_frame", value="cam_opt"),
                                                 Parameter("odom_frame", value="vo_odom")])
    node.configure()
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    yield node, sent
    node.shutdown()
    ex.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)
    th.join(timeout=10)


def test_tf_follows_the_odometry(pose_node: tuple[Any, list[Any]], graph: Graph) -> None:
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image

    from depth_ros.ros import qos

    node, sent = pose_node
    img_pub = graph.node.create_publisher(Image, "/tf_test/image", qos.input_qos())
    info_pub = graph.node.create_publisher(CameraInfo, "/tf_test/camera_info", qos.input_qos())
    odom = graph.subscribe(Odometry, "/tf_test/odom", 20)
    graph.wait_until(lambda: img_pub.get_subscription_count() and info_pub.get_subscription_count()
                     and graph.subscriptions["/tf_test/odom"].get_publisher_count(), 20.0, "matching")
    t = 1 * S
    while len(odom) < 3:
        t += S // 10
        info_pub.publish(info_msg(t))
        img_pub.publish(image_msg(t))
        graph.spin_for(0.2)
        assert t < 10 * S, "no odometry"
    last = odom[-1]
    tf = next(x for x in sent if (x.header.stamp.sec, x.header.stamp.nanosec) == (last.header.stamp.sec, last.header.stamp.nanosec))
    assert (tf.header.frame_id, tf.child_frame_id) == ("vo_odom", "cam_opt")
    assert (last.header.frame_id, last.child_frame_id) == ("vo_odom", "cam_opt")
    p = last.pose.pose.position
    assert (tf.transform.translation.x, tf.transform.translation.z) == pytest.approx((p.x, p.z))
    assert p.z > 0 and p.x == pytest.approx(p.z / 4)  # each step: 0.05 right, 0.2 forward
