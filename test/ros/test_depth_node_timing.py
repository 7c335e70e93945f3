"""The depth node reports where each frame's time goes (issue 19 item 1), in-process.

* every frame's stages (depth_ros.timing) are present, non-negative, and sum to no more than the
  frame's total; the network's stage is the backend's time;
* /diagnostics carries the period's median per stage;
* ``depth/timing`` is off by default (no publisher) and, with ``publish_timing``, carries one
  DiagnosticArray per frame stamped as the image;
* the cloud's stages appear only while someone subscribes to depth/points, and the cloud is the
  back-projection of the depth.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterator

import numpy as np
import pytest

from conftest import CX, CY, FX, FY, IMG_H, IMG_W, NET_H, NET_W, S, Graph, image_msg, info_msg

pytestmark = [pytest.mark.ros]

SLEEP_S = 0.02
DEPTH_M = 2.0


class SleepingBackend:
    """A plane at DEPTH_M after SLEEP_S of 'network'."""

    name = "sleeper"

    def __init__(self) -> None:
        from depth_ros.inference.spec import ModelSpec

        self.spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="sleeper", metric=True)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(SLEEP_S)
        return {"depth": np.full((1, 1, NET_H, NET_W), DEPTH_M, np.float32)}


def _node(ctx: Any, namespace: str, **params: Any) -> Any:
    from rclpy.parameter import Parameter

    from depth_ros.ros.depth_node import create_depth_node

    overrides = [Parameter("model_path", value="sleeper.onnx")] + [Parameter(k, value=v) for k, v in params.items()]
    node = create_depth_node(context=ctx, namespace=namespace, backend_factory=lambda config: SleepingBackend(),
                             parameter_overrides=overrides)
    node.configure()
    return node


@pytest.fixture(scope="module")
def timed_node(ros_env: dict[str, str]) -> Iterator[Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    node = _node(ctx, "/tim", publish_timing=True)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    yield node
    node.shutdown()
    ex.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)
    spinner.join(timeout=10)


def _stamp(msg: Any) -> int:
    return msg.header.stamp.sec * S + msg.header.stamp.nanosec


def test_timing_topic_is_off_by_default(ros_env: dict[str, str]) -> None:
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    try:
        node = _node(ctx, "/quiet")
        assert node.config.publish_timing is False
        assert node.timing_pub is None and node.count_publishers("/quiet/depth/timing") == 0
        assert node.count_publishers("/quiet/depth/image") == 1  # advertised all the same
        node.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_stages_on_the_timing_topic_in_diagnostics_and_the_cloud_only_for_a_subscriber(timed_node: Any,
                                                                                       graph: Graph) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from depth_ros.ros import qos
    from depth_ros.timing import STAGES

    node = timed_node
    img_pub = graph.node.create_publisher(Image, "/tim/image", qos.input_qos())
    info_pub = graph.node.create_publisher(CameraInfo, "/tim/camera_info", qos.input_qos())
    timing = graph.subscribe(DiagnosticArray, "/tim/depth/timing", 50)
    graph.wait_until(lambda: img_pub.get_subscription_count() and info_pub.get_subscription_count()
                     and graph.subscriptions["/tim/depth/timing"].get_publisher_count(), 20.0, "matching")

    def frame(t: int) -> tuple[int, dict[str, float]]:
        """Send frames from stamp t on until one's timing comes back: its stamp and values."""
        while True:
            info_pub.publish(info_msg(t))
            img_pub.publish(image_msg(t))
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not any(_stamp(m) == t for m in timing):
                graph.executor.spin_once(timeout_sec=0.02)
            got = [m for m in timing if _stamp(m) == t]
            if got:
                (status,) = got[0].status
                assert status.name.endswith(": timing")
                return t, {kv.key: float(kv.value) for kv in status.values}
            t += S // 100
            assert t < 100 * S, "no timing came back"

    _, values = frame(10 * S)
    cpu = {k[:-7]: v for k, v in values.items() if k.endswith("_cpu_ms") and k != "non_network_cpu_ms"}
    stages = {k[:-3]: v for k, v in values.items()
              if not k.endswith("_cpu_ms") and k not in ("total_ms", "non_network_ms")}
    assert set(stages) == {"wait", "decode", "rectify", "preprocess", "infer", "postprocess", "fill_depth",
                           "publish_depth", "fill_info", "publish_info", "publish_meta"}  # no subscriber: no cloud
    assert set(stages) <= set(STAGES)
    assert all(v >= 0.0 for v in stages.values())
    assert stages["infer"] >= SLEEP_S * 1e3 * 0.99  # printed to 3 decimals
    assert sum(stages.values()) <= values["total_ms"] + 0.01
    assert values["non_network_ms"] == pytest.approx(
        sum(v for k, v in stages.items() if k not in ("infer", "wait")), abs=0.01)
    assert node.last_stage_ms["infer"] == pytest.approx(stages["infer"], abs=1e-3)
    # the worker thread's CPU per stage: every timed block but the network (timed by the
    # pipeline's infer) and the wait; never more than the stage's wall time
    assert set(cpu) == set(stages) - {"infer", "wait"}
    assert all(0.0 <= cpu[k] <= stages[k] + 0.01 for k in cpu)
    assert values["non_network_cpu_ms"] == pytest.approx(sum(cpu.values()), abs=0.02)

    status = node.diagnostics.status()  # the period's medians
    assert float(status.value("Stage infer p50 (ms)")) >= SLEEP_S * 1e3 * 0.99
    assert float(status.value("Stage decode p50 (ms)")) >= 0.0
    assert float(status.value("Non-network p50 (ms)")) < float(status.value("Latency p50 (ms)"))

    clouds = graph.subscribe(PointCloud2, "/tim/depth/points", 10)
    graph.wait_until(lambda: node.cloud_pub.get_subscription_count() == 1, 10.0, "cloud subscriber matched")
    t, values = frame(20 * S)
    assert {"cloud_ms", "fill_cloud_ms", "publish_cloud_ms"} <= set(values)
    assert sum(v for k, v in values.items() if not k.endswith("_cpu_ms")
               and k not in ("total_ms", "non_network_ms")) <= values["total_ms"] + 0.01
    graph.wait_until(lambda: any(_stamp(c) == t for c in clouds), 10.0, "the cloud")
    cloud = next(c for c in clouds if _stamp(c) == t)
    pts = np.frombuffer(bytes(cloud.data), dtype=np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3,
                                                            "offsets": [0, 4, 8], "itemsize": 16})).reshape(IMG_H, IMG_W)
    v, u = np.mgrid[0:IMG_H, 0:IMG_W]
    np.testing.assert_allclose(pts["z"], DEPTH_M, rtol=1e-6)
    np.testing.assert_allclose(pts["x"], (u - CX) / FX * DEPTH_M, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts["y"], (v - CY) / FY * DEPTH_M, rtol=1e-5, atol=1e-6)
