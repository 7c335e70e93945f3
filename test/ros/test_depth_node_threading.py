"""The depth node's threading, in-process with a backend double that blocks on demand.

* callbacks never block: while the worker is stuck in inference, a stream of frames is taken
  in at once, only the newest waits (queue length <= 1) and the others are counted as drops;
* the cloud is built only while someone subscribes to depth/points;
* heavy resources load in configure(), not at construction and not in callbacks.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Iterator

import numpy as np
import pytest

from conftest import CX, CY, FX, FY, IMG_H, IMG_W, NET_H, NET_W, S, Graph, image_msg, info_msg

pytestmark = [pytest.mark.ros]


class BlockingBackend:
    """An InferenceBackend double: a plane at 2 m, after ``gate`` opens."""

    name = "double"

    def __init__(self) -> None:
        from depth_ros.inference.spec import ModelSpec

        self.spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="double", metric=True)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls = 0
        self.calls_blocked = 0

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        self.entered.set()
        if not self.gate.is_set():
            self.calls_blocked += 1
        assert self.gate.wait(30.0)
        return {"depth": np.full((1, 1, NET_H, NET_W), 2.0, np.float32)}


@pytest.fixture(scope="module")
def node_rig(ros_env: dict[str, str]) -> Iterator[tuple[Any, BlockingBackend, list[int]]]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from depth_ros.ros.depth_node import create_depth_node

    backend = BlockingBackend()
    loads: list[int] = []

    def factory(config: Any) -> BlockingBackend:
        loads.append(threading.get_ident())
        return backend

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    node = create_depth_node(context=ctx, namespace="/thr", backend_factory=factory,
                             parameter_overrides=[Parameter("model_path", value="double.onnx")])
    assert loads == []  # nothing heavy at construction
    node.configure()
    assert loads == [threading.get_ident()]  # loaded once, in configure, on this thread
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spinner = threading.Thread(target=ex.spin, daemon=True)
    spinner.start()
    yield node, backend, loads
    backend.gate.set()
    node.shutdown()
    ex.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)
    spinner.join(timeout=10)


def camera_and_depth(graph: Graph) -> tuple[Any, Any, list[Any]]:
    """Publishers of /thr/image and /thr/camera_info and the received /thr/depth/image list,
    once the node has matched all three."""
    from sensor_msgs.msg import CameraInfo, Image

    from depth_ros.ros import qos

    img_pub = graph.node.create_publisher(Image, "/thr/image", qos.input_qos())
    info_pub = graph.node.create_publisher(CameraInfo, "/thr/camera_info", qos.input_qos())
    depth = graph.subscribe(Image, "/thr/depth/image", 50)
    graph.wait_until(lambda: img_pub.get_subscription_count() and info_pub.get_subscription_count()
                     and graph.subscriptions["/thr/depth/image"].get_publisher_count(), 20.0, "matching")
    return img_pub, info_pub, depth


def test_callbacks_never_block_and_only_newest_waits(node_rig: tuple[Any, BlockingBackend, list[int]], graph: Graph) -> None:
    node, backend, _ = node_rig
    img_pub, info_pub, depth = camera_and_depth(graph)
    t = 1 * S
    while not depth:  # warm-up until one frame made it through (see Harness.warm_up)
        t += S // 100
        info_pub.publish(info_msg(t))
        img_pub.publish(image_msg(t))
        graph.spin_for(0.1)
        assert t < 10 * S

    backend.entered.clear()
    backend.gate.clear()  # the next inference blocks
    t0 = 20 * S
    info_pub.publish(info_msg(t0))
    img_pub.publish(image_msg(t0))
    assert backend.entered.wait(10.0)
    dropped_before, received_before = node.frames_dropped, node.frames_received
    stamps = [t0 + (i + 1) * S // 100 for i in range(20)]
    for t in stamps:  # 100 Hz (a best-effort reader keeps only 5 samples between takes)
        info_pub.publish(info_msg(t))
        img_pub.publish(image_msg(t))
        graph.spin_for(0.01)
    graph.wait_until(lambda: node._pairer.last_info_stamp_ns == stamps[-1], 10.0,
                     "the node to take in the burst while its worker is blocked")
    graph.wait_until(lambda: node.frames_received - received_before >= len(stamps) - 2, 5.0, "the burst's images")
    taken = node.frames_received - received_before
    assert node.queue_length() == 1
    assert node.frames_dropped - dropped_before == taken - 1  # all but the newest
    assert backend.calls_blocked == 1  # the worker is still in the first inference
    backend.gate.set()
    graph.wait_until(lambda: any(m.header.stamp.sec * S + m.header.stamp.nanosec == stamps[-1] for m in depth),
                     10.0, "the newest frame's depth")
    out = [m.header.stamp.sec * S + m.header.stamp.nanosec for m in depth]
    assert set(out) & set(stamps[:-1]) == set()  # stale frames were never processed
    assert node.queue_length() == 0


def test_cloud_built_only_with_a_subscriber(node_rig: tuple[Any, BlockingBackend, list[int]], graph: Graph) -> None:
    from sensor_msgs.msg import PointCloud2

    node, _, _ = node_rig
    img_pub, info_pub, depth = camera_and_depth(graph)
    assert node.cloud_pub.get_subscription_count() == 0

    def frame(t: int) -> None:
        info_pub.publish(info_msg(t))
        img_pub.publish(image_msg(t))
        graph.wait_until(lambda: any(m.header.stamp.sec * S + m.header.stamp.nanosec == t for m in depth), 10.0, "depth")

    built = node.clouds_built
    published = node.frames_published
    frame(40 * S)
    graph.wait_until(lambda: node.frames_published > published, 5.0, "the frame to be finished")
    assert node.clouds_built == built
    clouds = graph.subscribe(PointCloud2, "/thr/depth/points", 10)
    graph.wait_until(lambda: node.cloud_pub.get_subscription_count() == 1, 10.0, "cloud subscriber matched")
    frame(41 * S)
    graph.wait_until(lambda: len(clouds) >= 1, 10.0, "the cloud")  # published after the depth image
    assert node.clouds_built == built + 1
    assert clouds[0].header.stamp.sec == 41


def test_sparse_alignment_scales_to_points_in_the_camera_frame(node_rig: tuple[Any, BlockingBackend, list[int]],
                                                              graph: Graph) -> None:
    """Metric points at 4 m where the model says 2 m: the published depth becomes 4 m."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from depth_ros.core.camera import CameraModel
    from depth_ros.core.pointcloud import make_cloud
    from depth_ros.msg import DepthInfo
    from depth_ros.ros import qos
    from depth_ros.ros.messages import pointcloud_msg

    node, _, _ = node_rig
    (res,) = node.set_parameters([Parameter("scale_policy", value="sparse_alignment")])
    assert res.successful, res.reason
    img_pub = graph.node.create_publisher(Image, "/thr/image", qos.input_qos())
    info_pub = graph.node.create_publisher(CameraInfo, "/thr/camera_info", qos.input_qos())
    pts_pub = graph.node.create_publisher(PointCloud2, "/thr/sparse_points", qos.input_qos())
    depth = graph.subscribe(Image, "/thr/depth/image", 50)
    meta = graph.subscribe(DepthInfo, "/thr/depth/info", 50)
    graph.wait_until(lambda: img_pub.get_subscription_count() and pts_pub.get_subscription_count(), 20.0, "matching")
    cam = CameraModel.from_intrinsics(IMG_W, IMG_H, FX, FY, CX, CY)
    cloud = make_cloud(np.full((IMG_H, IMG_W), 4.0, np.float32), cam, decimation=4)  # 192 points at z = 4 m
    t = 60 * S
    while not any(m.header.stamp.sec * S + m.header.stamp.nanosec == t for m in meta):
        t += S // 10
        header = image_msg(t).header
        pts_pub.publish(pointcloud_msg(cloud.reshape(-1), header))
        graph.spin_for(0.05)
        info_pub.publish(info_msg(t))
        img_pub.publish(image_msg(t))
        graph.spin_for(0.2)
        assert t < 70 * S, "no sparse-aligned depth came out"
    m = next(m for m in meta if m.header.stamp.sec * S + m.header.stamp.nanosec == t)
    assert m.scale_source.startswith("sparse_alignment") and m.scale == pytest.approx(2.0, rel=1e-3)
    assert m.scale_support >= 100
    d = next(d for d in depth if d.header.stamp.sec * S + d.header.stamp.nanosec == t)
    np.testing.assert_allclose(np.frombuffer(bytes(d.data), "<f4"), 4.0, rtol=1e-3)
    (res,) = node.set_parameters([Parameter("scale_policy", value="model")])
    assert res.successful
