"""The nodes' QoS override parameters, in-process: an override reaches the subscription or
publisher it names (after remapping), and one naming no topic of the node is reported."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from conftest import NET_H, NET_W

pytestmark = [pytest.mark.ros]


class PlaneBackend:
    name = "double"

    def __init__(self) -> None:
        from depth_ros.inference.spec import ModelSpec

        self.spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="double", metric=True)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"depth": np.full((1, 1, NET_H, NET_W), 2.0, np.float32)}


def test_overrides_reach_the_named_topics(ros_env: dict[str, str]) -> None:
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from depth_ros.ros import qos
    from depth_ros.ros.depth_node import create_depth_node

    given = {
        "qos_overrides./cam/image_raw.subscription.reliability": "reliable",
        "qos_overrides./cam/image_raw.subscription.depth": 30,
        "qos_overrides./q/depth/image.publisher.durability": "transient_local",
        "qos_overrides./q/image.subscription.depth": 3,  # the name before remapping: matches nothing
    }
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(os.environ["ROS_DOMAIN_ID"]),
               args=["--ros-args", "-r", "image:=/cam/image_raw"])
    try:
        node: Any = create_depth_node(
            context=ctx, namespace="/q", backend_factory=lambda config: PlaneBackend(),
            parameter_overrides=[Parameter("model_path", value="double.onnx")] + [Parameter(k, value=v) for k, v in given.items()])
        node.configure()
        subs = {s.topic_name: s.qos_profile for s in node.subscriptions}
        pubs = {p.topic_name: p.qos_profile for p in node.publishers}
        assert (subs["/cam/image_raw"].reliability, subs["/cam/image_raw"].depth) == (ReliabilityPolicy.RELIABLE, 30)
        assert subs["/q/camera_info"].reliability == ReliabilityPolicy.BEST_EFFORT  # SensorDataQoS untouched
        assert pubs["/q/depth/image"].durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert pubs["/q/depth/points"].durability == DurabilityPolicy.VOLATILE
        assert qos.unused_overrides(node) == ["qos_overrides./q/image.subscription.depth"]
        assert rclpy.qos.qos_profile_sensor_data.reliability == ReliabilityPolicy.BEST_EFFORT  # rclpy's shared profile untouched
        node.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
