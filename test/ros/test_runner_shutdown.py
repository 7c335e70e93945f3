"""`depth-ros run` exits cleanly when Ctrl-C lands while the executor builds its wait set.

rclpy's SIGINT handler shuts the context down; if that happens between the executor's own
check and its wait-set construction, spin() raises RCLError ("the given context is not
valid") instead of ExternalShutdownException. Seen once in CI as exit code 1 with a traceback.
The race is reproduced here deterministically with a stand-in executor (in-process; no node
joins the ROS graph).
"""
from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.ros]


class _Node:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def get_fully_qualified_name(self) -> str:
        return "/depth_node"

    def configure(self) -> None:
        self.calls.append("configure")

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def destroy_node(self) -> None:
        self.calls.append("destroy_node")


def _executor_raising(shutdown_first: bool) -> type:
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError

    class _Executor:
        def __init__(self, num_threads: int = 1) -> None:
            self.context = rclpy.get_default_context()

        def add_node(self, node: Any) -> None:
            pass

        def spin(self) -> None:
            if shutdown_first:
                rclpy.shutdown()  # what the SIGINT handler does
            raise RCLError("failed to initialize wait set: the given context is not valid")

        def shutdown(self) -> None:
            pass

    return _Executor


def _run(monkeypatch: pytest.MonkeyPatch, shutdown_first: bool) -> tuple[int, _Node]:
    import rclpy.executors

    from depth_ros.ros import runner

    node = _Node()
    monkeypatch.setattr(runner, "_create_node", lambda kind, overrides: node)
    monkeypatch.setattr(rclpy.executors, "MultiThreadedExecutor", _executor_raising(shutdown_first))
    return runner.run_nodes(["depth"], args=[]), node


def test_shutdown_during_wait_set_construction_is_a_clean_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    code, node = _run(monkeypatch, shutdown_first=True)
    assert code == 0
    assert node.calls == ["configure", "shutdown", "destroy_node"]


def test_the_same_error_with_a_live_context_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError

    with pytest.raises(RCLError, match="wait set"):
        _run(monkeypatch, shutdown_first=False)
    assert not rclpy.ok()  # run_nodes still shut rclpy down on the way out
