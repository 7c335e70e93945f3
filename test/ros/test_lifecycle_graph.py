"""The managed (lifecycle) depth node in its own process, driven through its lifecycle services
as ``ros2 lifecycle set`` and lifecycle managers drive it: nothing before ``configure`` and
``activate``, depth while active, nothing while inactive, depth again after re-activation, and a
model that cannot be loaded fails ``configure`` with the node left unconfigured."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import S, Graph, NodeProcess, image_msg, info_msg, node_argv

pytestmark = [pytest.mark.ros, pytest.mark.slow]

UNCONFIGURED, INACTIVE, ACTIVE = 1, 2, 3  # lifecycle_msgs/State ids


def _call(graph: Graph, client: Any, request: Any) -> Any:
    graph.wait_until(lambda: client.service_is_ready(), 30.0, f"service {client.srv_name}")
    future = client.call_async(request)
    graph.wait_until(future.done, 60.0, f"reply of {client.srv_name}")
    return future.result()


class Lifecycle:
    def __init__(self, graph: Graph, node: str) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState

        self.g = graph
        self.change = graph.node.create_client(ChangeState, f"{node}/change_state")
        self.get = graph.node.create_client(GetState, f"{node}/get_state")

    def state(self) -> int:
        from lifecycle_msgs.srv import GetState

        return _call(self.g, self.get, GetState.Request()).current_state.id

    def transition(self, name: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
        return bool(_call(self.g, self.change, ChangeState.Request(transition=Transition(id=ids[name]))).success)


def _argv(model: Path | str, ns: str) -> list[str]:
    argv = node_argv("depth_ros.ros.lifecycle", {"model_path": model, "backend": "onnxruntime-cpu"}, {"__ns": ns})
    assert argv[:3] == [sys.executable, "-m", "depth_ros.ros.lifecycle"]
    return argv


def test_transitions_gate_the_outputs(graph: Graph, ros_env: dict[str, str], models: dict[str, Path], tmp_path: Path) -> None:
    from sensor_msgs.msg import CameraInfo, Image

    from depth_ros.ros import qos

    ns = "/lc"
    proc = NodeProcess(_argv(models["plane"], ns), ros_env, tmp_path / "node.log")
    try:
        lc = Lifecycle(graph, f"{ns}/depth_node")
        assert lc.state() == UNCONFIGURED
        assert "model 'plane_2m'" not in proc.log()  # nothing loaded before configure
        image_pub = graph.node.create_publisher(Image, f"{ns}/image", qos.input_qos())
        info_pub = graph.node.create_publisher(CameraInfo, f"{ns}/camera_info", qos.input_qos())
        depth = graph.subscribe(Image, f"{ns}/depth/image", 50)

        assert lc.transition("configure") and lc.state() == INACTIVE
        proc.wait_log("model 'plane_2m'", 30.0)
        graph.wait_until(lambda: graph.subscriptions[f"{ns}/depth/image"].get_publisher_count() >= 1, 30.0, "depth publisher")
        assert image_pub.get_subscription_count() == 0  # inactive: not subscribed to the camera

        def frames_flow(start_ns: int) -> None:
            graph.wait_until(lambda: image_pub.get_subscription_count() >= 1 and info_pub.get_subscription_count() >= 1,
                             30.0, "the node's camera subscriptions")
            t = start_ns
            while not depth:  # best-effort: send until one comes back
                t += S // 100
                info_pub.publish(info_msg(t))
                image_pub.publish(image_msg(t))
                graph.spin_for(0.2)
                assert t - start_ns < 150 * S // 100, "no depth while active"

        assert lc.transition("activate") and lc.state() == ACTIVE
        frames_flow(1000 * S)
        assert lc.transition("deactivate") and lc.state() == INACTIVE
        graph.wait_until(lambda: image_pub.get_subscription_count() == 0, 30.0, "the camera subscriptions gone")
        depth.clear()
        for i in range(5):
            t = 2000 * S + i * S // 10
            info_pub.publish(info_msg(t))
            image_pub.publish(image_msg(t))
        graph.spin_for(1.0)
        assert depth == []  # nothing while inactive
        assert lc.transition("activate") and lc.state() == ACTIVE  # the worker starts again
        frames_flow(3000 * S)
        assert lc.transition("deactivate") and lc.transition("cleanup") and lc.state() == UNCONFIGURED
    finally:
        code = proc.stop()
    assert code == 0, proc.log()[-2000:]


def test_a_bad_model_fails_configure(graph: Graph, ros_env: dict[str, str], tmp_path: Path) -> None:
    ns = "/lc_bad"
    proc = NodeProcess(_argv(tmp_path / "missing.onnx", ns), ros_env, tmp_path / "node.log")
    try:
        lc = Lifecycle(graph, f"{ns}/depth_node")
        assert lc.state() == UNCONFIGURED
        assert not lc.transition("configure")
        assert lc.state() == UNCONFIGURED
        log = proc.wait_log("configure failed", 10.0)
        assert "missing.onnx" in log and proc.alive()
    finally:
        code = proc.stop()
    assert code == 0, proc.log()[-2000:]
