"""`depth-ros run` (depth + pose nodes in one process) on the graph; the pose node's odometry.

The pose model says "the camera moved 0.1 m forward (+z, optical frame) since the previous
frame" (T_src_tgt, metric), so the odometry after n chained frames is z = 0.1 n, the twist
is 0.1 m / dt along z, and a gap or a stamp going back restarts at 0.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import REPO_ROOT, S, Graph, Harness, NodeProcess

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def runner(ros_env: dict[str, str], models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    argv = [sys.executable, "-m", "depth_ros.cli", "run", "--config", str(REPO_ROOT / "config" / "depth.yaml"),
            "--model", str(models["plane"]), "--pose-model", str(models["pose"]), "--backend", "onnxruntime-cpu",
            "--use-pose", "--namespace", "run"]
    proc = NodeProcess(argv, ros_env, tmp_path_factory.mktemp("runner") / "run.log")
    proc.wait_log("model 'plane_2m'", 60.0)
    yield proc
    code = proc.stop()  # SIGINT, as Ctrl-C
    assert code == 0, f"depth-ros run did not exit cleanly on Ctrl-C ({code}):\n{proc.log()[-2000:]}"


@pytest.fixture(scope="module")
def rig(graph: Graph, runner: NodeProcess) -> tuple[Harness, list[Any]]:
    from nav_msgs.msg import Odometry

    h = Harness(graph, runner, "/run")
    odom = graph.subscribe(Odometry, "/run/odom", 100)
    graph.wait_until(lambda: graph.subscriptions["/run/odom"].get_publisher_count() >= 1, 20.0, "the pose node's odom")
    h.warm_up(1 * S)
    return h, odom


def _z_after(odom: list[Any], t: int) -> Any:
    return next(m for m in odom if m.header.stamp.sec * S + m.header.stamp.nanosec == t)


def test_runner_runs_both_nodes_and_odometry_accumulates(rig: tuple[Harness, list[Any]]) -> None:
    h, odom = rig
    base = 100 * S
    stamps = [base + i * S // 10 for i in range(4)]  # 10 Hz, within max_gap_s
    for t in stamps:
        h.send(t)
        h.wait_depth(t)  # one at a time: the pose node chains every frame
        h.g.wait_until(lambda: any(m.header.stamp.sec * S + m.header.stamp.nanosec == t for m in odom), 10.0, "odometry")
    zs = [_z_after(odom, t).pose.pose.position.z for t in stamps]
    # The first frame after the warm-up's gap restarts the track at 0.
    assert zs == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=1e-6)
    last = _z_after(odom, stamps[-1])
    assert (last.header.frame_id, last.child_frame_id) == ("odom", "camera_optical_frame")
    assert last.twist.twist.linear.z == pytest.approx(0.1 / 0.1, rel=1e-5)  # 0.1 m in 0.1 s
    assert last.pose.pose.orientation.w == pytest.approx(1.0)


def test_odometry_resets_on_gap_and_on_stamps_going_back(rig: tuple[Harness, list[Any]]) -> None:
    h, odom = rig
    t0 = 200 * S
    for t in (t0, t0 + S // 10):
        h.send(t)
        h.g.wait_until(lambda: any(m.header.stamp.sec * S + m.header.stamp.nanosec == t for m in odom), 10.0, "odometry")
    assert _z_after(odom, t0 + S // 10).pose.pose.position.z == pytest.approx(0.1)
    offset = len(h.proc.log())
    gap = t0 + 2 * S  # 1.9 s later > max_gap_s 0.5
    h.send(gap)
    h.g.wait_until(lambda: any(m.header.stamp.sec * S + m.header.stamp.nanosec == gap for m in odom), 10.0, "odometry")
    assert _z_after(odom, gap).pose.pose.position.z == pytest.approx(0.0)
    h.proc.wait_log("odometry reset: gap", 5.0, after=offset)
    # Stamps 5 s back (the depth node treats >= 1 s back as a restart): the pose track restarts.
    back = gap - 5 * S
    h.send(back)
    h.g.wait_until(lambda: any(m.header.stamp.sec * S + m.header.stamp.nanosec == back for m in odom), 10.0, "odometry")
    assert _z_after(odom, back).pose.pose.position.z == pytest.approx(0.0)
    h.proc.wait_log("odometry reset: stamp went back", 5.0, after=offset)
