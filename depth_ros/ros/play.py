"""``depth-ros play``: republish a bag's topics live with their recorded relative timing.

    depth-ros play BAG [--rate R] [--loop] [--clock] [--topics T ...] [--optional-topics T ...]
                       [--wait-for-subscribers S] [--delay S]

Works where ``ros2 bag play`` does not exist (pip installs): the bag is read with rosbags
(MCAP or sqlite3) and each record's CDR bytes are published as they are (no decode/encode),
on a publisher of the topic's rclpy type. Timing follows the records' log times, divided by
``--rate``; ``--clock`` also publishes the bag time on ``/clock`` (rosgraph_msgs/Clock) before
each message, for nodes with ``use_sim_time``. ``--loop`` replays until Ctrl-C (the nodes see
stamps jump back and reset). Topics whose message type has no Python package here (e.g.
tf2_msgs from the pip wheels) are skipped with a warning. ``/tf_static`` is published
transient-local, as tf2 expects. ``--optional-topics`` are played when the bag has them and
skipped with a log line when it has not (a launch file names a LiDAR topic that only some bags
carry); empty names are ignored, so a launch argument left empty plays nothing extra. The wait
for subscribers does not wait for optional topics.

Also installed as the ``play`` executable of the ROS package (launch/replay.launch.py).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from depth_ros.errors import BagError, DepthRosError

__all__ = ["add_arguments", "main", "message_class", "run"]

_log = logging.getLogger(__name__)


def message_class(msgtype: str) -> type:
    """The rclpy class of ``pkg/msg/Type``.

    Raises:
        ImportError: the package's Python messages are not installed.
        ValueError: ``msgtype`` is not of the form pkg/msg/Type.
    """
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise ValueError(f"message type must be 'pkg/msg/Type', got {msgtype!r}")
    module = importlib.import_module(f"{parts[0]}.msg")
    try:
        return getattr(module, parts[2])
    except AttributeError:
        raise ImportError(f"{parts[0]}.msg has no {parts[2]}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2: .mcap, .db3 or bag directory")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    parser.add_argument("--loop", action="store_true", help="replay until interrupted")
    parser.add_argument("--clock", action="store_true", help="publish the bag time on /clock")
    parser.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="only these topics (default: all)")
    parser.add_argument("--optional-topics", nargs="*", default=(), metavar="TOPIC",
                        help="also these topics when the bag has them (skipped with a log line otherwise; empty names ignored)")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                        help="before playing, wait up to S seconds until every topic has a subscriber")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S",
                        help="sleep S seconds before the first message (lets remote readers finish discovery)")


def _qos_for(topic: str) -> Any:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    if topic == "/tf_static":
        return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def play(node: Any, bag: Path, rate: float = 1.0, loop: bool = False, clock: bool = False,
         topics: Sequence[str] | None = None, wait_for_subscribers_s: float = 0.0, delay_s: float = 0.0,
         optional_topics: Sequence[str] = ()) -> int:
    """Republish ``bag`` through ``node``; returns the number of messages published.

    Args:
        topics: the topics to play, each must be in the bag (empty names ignored); None or
            empty: every topic of the bag.
        optional_topics: played too when in the bag, else skipped with a log line (empty
            names ignored); not waited for by ``wait_for_subscribers_s``.

    Raises:
        BagError: unreadable bag, unknown topic, or no topic that can be published here.
    """
    import rclpy

    from depth_ros.bag.reader import BagReader

    if not (rate > 0 and rate < float("inf")):
        raise ValueError(f"--rate must be a positive number, got {rate}")
    published = 0
    with BagReader(bag) as reader:
        available = reader.topics
        named = [t for t in (topics or ()) if t]
        chosen = named or sorted(available)
        missing = [t for t in chosen if t not in available]
        if missing:
            raise BagError(f"{bag}: no topic {missing[0]} (topics: {', '.join(sorted(available))})")
        optional = [t for t in dict.fromkeys(optional_topics) if t and t not in chosen]
        for topic in optional:
            if topic not in available:
                _log.info("optional topic %s is not in %s: not played", topic, bag)
        optional = [t for t in optional if t in available]
        publishers: dict[str, Any] = {}
        for topic in chosen + optional:
            msgtype = available[topic].msgtype
            try:
                cls = message_class(msgtype)
            except (ImportError, ValueError) as exc:
                if topic in named:
                    raise BagError(f"cannot publish {topic}: {msgtype} has no Python messages here ({exc})") from None
                _log.warning("skipping %s: %s messages are not installed (%s)", topic, msgtype, exc)
                continue
            publishers[topic] = node.create_publisher(cls, topic, _qos_for(topic))
        if not publishers:
            raise BagError(f"{bag}: none of the topics {chosen} can be published here")
        clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, "/clock", 10)
        if wait_for_subscribers_s > 0:
            deadline = time.monotonic() + wait_for_subscribers_s
            required = {t: p for t, p in publishers.items() if t not in optional}
            while any(p.get_subscription_count() == 0 for p in required.values()):
                if time.monotonic() > deadline:
                    lonely = [t for t, p in required.items() if p.get_subscription_count() == 0]
                    raise BagError(f"no subscriber on {lonely} after {wait_for_subscribers_s} s")
                time.sleep(0.05)
        if delay_s > 0:
            # A best-effort reader drops samples sent before *it* has matched the writer, which
            # can be a while after the writer has matched it; nothing here can observe that.
            time.sleep(delay_s)
        _log.info("playing %s: %s at rate %g%s", bag, ", ".join(publishers), rate, " (loop)" if loop else "")
        while rclpy.ok(context=node.context):
            start_wall: float | None = None
            first_ns = 0
            for message in reader.messages(list(publishers)):
                if not rclpy.ok(context=node.context):
                    break
                if start_wall is None:
                    start_wall, first_ns = time.monotonic(), message.log_time_ns
                due = start_wall + (message.log_time_ns - first_ns) * 1e-9 / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing to the recorded timing
                if clock_pub is not None:
                    from builtin_interfaces.msg import Time
                    from rosgraph_msgs.msg import Clock

                    ns = message.log_time_ns
                    if not _publish(clock_pub, Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)), node):
                        break
                if not _publish(publishers[message.topic], bytes(message.data), node):
                    break
                published += 1
            if not loop:
                break
        if rclpy.ok(context=node.context):
            _flush(publishers.values())
    return published


def _publish(publisher: Any, msg: Any, node: Any) -> bool:
    """Publish; False once the context has been shut down (SIGINT handled by rclpy between the
    loop's check and this call: the publisher is then invalid). Other failures are raised."""
    import rclpy

    try:
        publisher.publish(msg)
    except Exception:
        if rclpy.ok(context=node.context):
            raise
        return False
    return True


def _flush(publishers: Any, timeout_s: float = 1.0) -> None:
    """Let the last samples reach their readers before the publishers are destroyed.

    Reliable readers acknowledge (wait_for_all_acked); best-effort ones cannot, and a writer
    torn down right after ``publish`` may discard samples still in its transport queue, so a
    short linger follows.
    """
    from rclpy.duration import Duration

    for pub in publishers:
        pub.wait_for_all_acked(Duration(nanoseconds=int(timeout_s * 1e9)))
    time.sleep(0.2)


def run(args: argparse.Namespace) -> int:
    import rclpy

    ros_args = getattr(args, "ros_argv", None)
    rclpy.init(args=ros_args)
    node = rclpy.create_node("depth_ros_play")
    try:
        count = play(node, args.bag, rate=args.rate, loop=args.loop, clock=args.clock, topics=args.topics,
                     wait_for_subscribers_s=args.wait_for_subscribers, delay_s=args.delay,
                     optional_topics=args.optional_topics)
        print(f"depth-ros play: published {count} messages from {args.bag}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        # A Ctrl-C (launch's SIGINT) that lands during the teardown, after rclpy has put
        # Python's own handler back, would raise KeyboardInterrupt out of here and end the
        # process by the signal (exit -2) instead of 0: the process is stopping already, so
        # SIGINT is ignored from here on (SIGTERM still ends a teardown that hangs).
        _ignore_sigint()
        node.destroy_node()
        rclpy.try_shutdown()
        _ignore_sigint()


def _ignore_sigint() -> None:
    """Ignore SIGINT from now on (``rclpy.try_shutdown`` restores the handler it found)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``play`` executable (launch files): ROS arguments are tolerated."""
    from rclpy.utilities import remove_ros_args

    full = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="play", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(remove_ros_args(full)[1:])
    args.ros_argv = full
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except (DepthRosError, ValueError) as exc:
        print(f"play: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
