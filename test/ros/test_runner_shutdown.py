"""`depth-ros run` exits cleanly when Ctrl-C lands while the executor builds its wait set.

rclpy's SIGINT handler shuts the context down; if that happens between the executor's own
check and its wait-set construction, spin() raises RCLError ("the given context is not
valid") instead of ExternalShutdownException. Seen once in CI as exit code 1 with a traceback.
The race is reproduced here deterministically with a stand-in executor (in-process; no node
joins the ROS graph). Also: spinning never waits in rcl without a timeout, and a teardown that
hangs ends the process.
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


def _stand_in_executor(spin_once: Any) -> type:
    """A SingleThreadedExecutor stand-in whose spin_once(timeout_sec) is the given function."""
    import rclpy

    class _Executor:
        def __init__(self, num_threads: int = 1) -> None:
            self.context = rclpy.get_default_context()

        def add_node(self, node: Any) -> None:
            """Nodes are not spun: spin_once decides what happens."""

        def spin_once(self, timeout_sec: float | None = None) -> None:
            spin_once(timeout_sec)

        def shutdown(self) -> None:
            """Nothing to stop."""

    return _Executor


def _executor_raising(shutdown_first: bool) -> type:
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError

    def spin_once(timeout_sec: float | None) -> None:
        if shutdown_first:
            rclpy.shutdown()  # what the SIGINT handler does
        raise RCLError("failed to initialize wait set: the given context is not valid")

    return _stand_in_executor(spin_once)


def _run(monkeypatch: pytest.MonkeyPatch, shutdown_first: bool) -> tuple[int, _Node]:
    import rclpy.executors

    from depth_ros.ros import runner

    node = _Node()
    monkeypatch.setattr(runner, "_create_node", lambda kind, overrides: node)
    monkeypatch.setattr(rclpy.executors, "SingleThreadedExecutor", _executor_raising(shutdown_first))
    return runner.run_nodes(["depth"], args=[]), node


def test_shutdown_during_wait_set_construction_is_a_clean_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    code, node = _run(monkeypatch, shutdown_first=True)
    assert code == 0
    assert node.calls == ["configure", "shutdown", "destroy_node"]


def test_spinning_waits_in_rcl_for_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The main thread never waits in rcl without a timeout: Ctrl-C is noticed within
    SPIN_WAKE_S even if its wake-up of the wait set is lost."""
    import rclpy.executors

    from depth_ros.ros import runner

    timeouts: list[float | None] = []

    def spin_once(timeout_sec: float | None) -> None:
        timeouts.append(timeout_sec)
        if len(timeouts) == 3:
            raise KeyboardInterrupt

    node = _Node()
    monkeypatch.setattr(runner, "_create_node", lambda kind, overrides: node)
    monkeypatch.setattr(rclpy.executors, "SingleThreadedExecutor", _stand_in_executor(spin_once))
    assert runner.run_nodes(["depth"], args=[]) == 0
    assert timeouts == [runner.SPIN_WAKE_S] * 3 and 0 < runner.SPIN_WAKE_S <= 2.0
    assert node.calls == ["configure", "shutdown", "destroy_node"]


def test_the_same_error_with_a_live_context_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import rclpy
    from rclpy._rclpy_pybind11 import RCLError

    with pytest.raises(RCLError, match="wait set"):
        _run(monkeypatch, shutdown_first=False)
    assert not rclpy.ok()  # run_nodes still shut rclpy down on the way out


def test_a_hanging_teardown_ends_the_process_with_its_own_exit_code() -> None:
    """A node whose destruction blocks (as rcl's did once in CI) cannot keep the process
    alive: past the bound, every thread's stack goes to stderr and the process exits."""
    import subprocess
    import sys
    import textwrap
    import time

    from depth_ros.ros.runner import EXIT_TEARDOWN_HUNG

    script = textwrap.dedent(
        """
        import time
        import rclpy, rclpy.executors
        from depth_ros.ros import runner

        class Node:
            def get_fully_qualified_name(self): return "/depth_node"
            def configure(self): pass
            def shutdown(self): pass
            def destroy_node(self): time.sleep(60)  # blocks like rcl_node_fini did

        class Executor:
            def __init__(self, num_threads=1): self.context = rclpy.get_default_context()
            def add_node(self, node): pass
            def spin_once(self, timeout_sec=None): raise KeyboardInterrupt  # Ctrl-C
            def shutdown(self): pass

        runner._create_node = lambda kind, overrides: Node()
        rclpy.executors.SingleThreadedExecutor = Executor
        raise SystemExit(runner.run_nodes(["depth"], args=[], program="depth_node", teardown_timeout_s=1.0))
        """
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == EXIT_TEARDOWN_HUNG, proc.stderr
    assert "Timeout (0:00:01)!" in proc.stderr
    assert "destroy_node" in proc.stderr  # the stack shows where it was stuck
