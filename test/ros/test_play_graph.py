"""`depth-ros play` -> depth node -> outputs, end to end on the graph, from a synthetic bag.

Three processes: the player, the depth node (plane model), and this test's subscriber.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import S, Graph, NodeProcess, node_argv

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 20


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    from depth_ros.bag.reader import BagReader
    from depth_ros.synthetic.bagio import write_bag
    from depth_ros.synthetic.config import SynthConfig

    path = write_bag(SynthConfig(width=64, height=48, frames=FRAMES, rate_hz=10.0, lidar_beams=0, num_boxes=2,
                                 texture_size_px=64), tmp_path_factory.mktemp("bag") / "synth.mcap")
    with BagReader(path) as reader:
        stamps = [reader.deserialize(m).header.stamp for m in reader.messages(["/camera/image_raw"])]
    return path, [s.sec * S + s.nanosec for s in stamps]


@pytest.fixture(scope="module")
def depth_node(ros_env: dict[str, str], models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    # Replay with no frame lost: the image and camera_info subscriptions are made reliable
    # through the standard QoS override parameters (SensorDataQoS, best effort keep-last-5, may
    # lose frames to a busy executor or the network; a bag replay should not).
    overrides = {f"qos_overrides.{topic}.subscription.{policy}": value
                 for topic in ("/camera/image_raw", "/camera/camera_info")
                 for policy, value in (("reliability", "reliable"), ("depth", 2 * FRAMES))}
    argv = node_argv("depth_ros.ros.depth_node",
                     {"model_path": models["plane"], "backend": "onnxruntime-cpu", **overrides},
                     {"__ns": "/replay", "image": "/camera/image_raw", "camera_info": "/camera/camera_info"})
    proc = NodeProcess(argv, ros_env, tmp_path_factory.mktemp("replay") / "node.log")
    proc.wait_log("model 'plane_2m'", 60.0)
    yield proc
    assert proc.stop() == 0


def test_play_into_depth_node(bag: tuple[Path, list[int]], depth_node: NodeProcess, graph: Graph,
                              ros_env: dict[str, str], tmp_path: Path) -> None:
    from rclpy.qos import ReliabilityPolicy
    from sensor_msgs.msg import Image

    from depth_ros.msg import DepthInfo

    path, stamps = bag
    depth = graph.subscribe(Image, "/replay/depth/image", 50)
    meta = graph.subscribe(DepthInfo, "/replay/depth/info", 50)
    graph.wait_until(lambda: graph.subscriptions["/replay/depth/image"].get_publisher_count() >= 1,
                     30.0, "the depth node's publisher")
    graph.wait_until(lambda: len(graph.node.get_subscriptions_info_by_topic("/camera/image_raw")) >= 1,
                     30.0, "the depth node's image subscription")
    readers = graph.node.get_subscriptions_info_by_topic("/camera/image_raw")
    # (discovery carries reliability, not the reader's history depth)
    assert [r.qos_profile.reliability for r in readers] == [ReliabilityPolicy.RELIABLE], readers
    player = NodeProcess(
        [sys.executable, "-m", "depth_ros.cli", "play", str(path), "--rate", "2.0", "--clock",
         "--topics", "/camera/image_raw", "/camera/camera_info", "--wait-for-subscribers", "30", "--delay", "1.0",
         # a LiDAR topic this bag lacks and an empty launch argument: neither played nor waited for
         "--optional-topics", "/lidar/points", ""],
        ros_env, tmp_path / "play.log")
    try:
        graph.wait_until(lambda: "depth-ros play: published" in player.log() or player.proc.poll() is not None,
                         60.0, "the player to finish")
        assert f"published {2 * FRAMES} messages" in player.log(), player.log()
        assert "optional topic /lidar/points is not in" in player.log(), player.log()
        graph.wait_until(lambda: len(meta) >= 1 and meta[-1].header.stamp.sec * S + meta[-1].header.stamp.nanosec == stamps[-1],
                         20.0, "the last frame's depth")
        graph.spin_for(0.3)
        # A player that is not looping exits by itself after "published": wait for that, rather
        # than send SIGINT into its teardown (under load it was still tearing down, and a SIGINT
        # landing after rclpy's shutdown ended it with -2).
        graph.wait_until(lambda: player.proc.poll() is not None, 30.0, "the player to exit")
    finally:
        code = player.stop()
    assert code == 0, player.log()
    got = [m.header.stamp.sec * S + m.header.stamp.nanosec for m in depth]
    # Every output is a bag frame, in order, in the bag's optical frame. With reliable readers
    # every bag frame reaches the node and is either published or counted as dropped (the
    # worker keeps only the newest).
    assert got == sorted(got) and set(got) <= set(stamps) and got[-1] == stamps[-1]
    dropped = meta[-1].frames_dropped
    assert meta[-1].frames_received == len(stamps) and meta[-1].frames_skipped == 0, meta[-1]
    assert len(got) + dropped == len(stamps), (len(got), dropped)
    assert len(got) >= FRAMES // 2, (len(got), FRAMES)
    assert {m.header.frame_id for m in depth} == {"camera_optical_frame"}
    assert all(m.encoding == "32FC1" and (m.width, m.height) == (64, 48) for m in depth)
