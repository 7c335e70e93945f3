"""Depth node soak: a 30 Hz camera, without then with the cloud subscribed; stages, drops, memory,
and rclpy's own floor.

    python bench/bench_node_soak.py [--duration-s 120] [--short] [--rate-hz 30]
                                    [--width 640 --height 480] [--model M.onnx] [--cloud-decimation 1]

The node (own process, ``publish_timing`` on, the conv bench model of bench_node_latency.py
unless --model) gets rgb8 images + camera_infos at ``rate_hz`` for ``duration_s`` per phase
(``--short``: 15 s, a quick check). Phases, in one run on one node:

* ``no_cloud``: nobody subscribes to depth/points (the node builds no cloud);
* ``cloud``: this process subscribes to depth/points (a cloud per frame);
* ``rclpy_floor``: a bare rclpy relay (own process, no depth_ros code) subscribes to the same
  Image and publishes it again: rclpy's own cost of receiving, deserialising and publishing a
  0.9 MB Image in Python, which no change to the node can go below;
* ``rclpy_floor_with_outputs``: the same relay also publishes, per image, what the node
  publishes with the cloud subscribed (a 32FC1 depth Image and a 16-byte-point PointCloud2 of
  the image's size, prebuilt: nothing computed); ``outputs_publish_ms`` is the floor of the
  node's ``publish_depth`` + ``publish_cloud`` stages.

Reported per depth phase (JSON on stdout): ``received`` (DepthInfo.frames_received),
``published`` (depth outputs that came back), ``dropped`` (DepthInfo.frames_dropped),
``published_ratio`` = published / received (target >= 0.99), ``stage_ms`` (median of each
stage of depth/timing, :mod:`depth_ros.timing`), ``non_network_ms`` (median of the frames'
non-network work: every stage but ``infer`` and ``wait``; targets <= 3 ms without the cloud,
<= 5 ms with it), ``stage_cpu_ms`` and ``non_network_cpu_ms`` (the same in the worker thread's
CPU time: what the work costs, without the waits for a core of a loaded machine), ``node_ms`` (DepthInfo.latency_ms), ``cpu_ms_per_frame`` (the node
process's CPU time, all threads, / frames published), ``transport_loss_rate`` (frames sent that
never reached the node's callback), ``rss_growth`` = node RSS at the phase's end / RSS after
its first 10 %, minus 1 (target < 5 %; the cloud phase's first clouds grow the heap once). For
the floor: ``cpu_ms_per_frame`` of the relay and its ``publish_ms`` (the publish call alone).
Whole run: ``loadavg`` at the start and
end (the machine is shared: compare the phases of one run, not runs).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node_latency import S, Rig, _stats, add_rig_arguments, conv_depth_model, print_result, result_head  # noqa: E402

from depth_ros.timing import STAGES  # noqa: E402

SHORT_S = 15.0
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def relay_main(outputs: bool, width: int, height: int) -> int:
    """The bare rclpy relay (child process): /bench/relay_in -> /bench/relay_out, same Image;
    with ``outputs`` also, per image, a prebuilt 32FC1 depth Image and a 16-byte-per-point
    PointCloud2 of ``width`` x ``height`` (the node's outputs, nothing computed) on
    /bench/relay_depth and /bench/relay_points. Prints the frames relayed, the median ms of the
    image's publish call and of the outputs' publish calls when stopped (SIGINT)."""
    import array

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image, PointCloud2, PointField

    rclpy.init()
    node = rclpy.create_node("relay")
    reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, "/bench/relay_out", reliable)
    depth_pub = node.create_publisher(Image, "/bench/relay_depth", reliable)
    cloud_pub = node.create_publisher(PointCloud2, "/bench/relay_points", reliable)
    # built as the node builds them (its payload-keeping constructor); nothing else of depth_ros
    from depth_ros.ros.messages import with_data

    depth = with_data(Image, {"height": height, "width": width, "encoding": "32FC1", "step": width * 4},
                      array.array("B", bytes(width * height * 4)))
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    cloud = with_data(PointCloud2, {"height": height, "width": width, "point_step": 16, "row_step": width * 16,
                                    "fields": fields}, array.array("B", bytes(width * height * 16)))
    publish_ms: list[float] = []
    outputs_ms: list[float] = []

    def relay(msg: Any) -> None:
        t0 = time.perf_counter()
        pub.publish(msg)
        t1 = time.perf_counter()
        publish_ms.append((t1 - t0) * 1e3)
        if outputs:
            depth.header = cloud.header = msg.header
            depth_pub.publish(depth)
            cloud_pub.publish(cloud)
            outputs_ms.append((time.perf_counter() - t1) * 1e3)

    node.create_subscription(Image, "/bench/relay_in", relay, qos_profile_sensor_data)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        ex.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass

    def med(values: list[float]) -> float:
        return float(np.median(values)) if values else float("nan")

    print(f"RELAY {len(publish_ms)} {med(publish_ms):.4f} {med(outputs_ms):.4f}", flush=True)
    return 0


def drive(rig: Rig, seconds: float, rate_hz: float, first_stamp_ns: int, send: Any) -> list[int]:
    """Send a frame every 1 / rate_hz s for ``seconds`` (stamps from ``first_stamp_ns``), spinning
    in between; returns the stamps sent."""
    period = 1.0 / rate_hz
    stamps = []
    start = time.monotonic()
    for i in range(int(seconds * rate_hz)):
        stamp = first_stamp_ns + int(i * period * S)
        stamps.append(stamp)
        send(stamp)
        rig.spin_for(max(0.0, start + (i + 1) * period - time.monotonic()))
    return stamps


def depth_phase(rig: Rig, timing: dict[int, dict[str, float]], args: argparse.Namespace,
                first_stamp_ns: int) -> tuple[dict[str, Any], int]:
    """One phase of frames to the depth node: its figures and the next free stamp."""
    base = max(rig.meta.values(), key=lambda m: m.frames_received)
    base_received, base_dropped = int(base.frames_received), int(base.frames_dropped)
    cpu0, t0 = cpu_s(rig.proc.pid), time.monotonic()
    stamps = drive(rig, args.duration_s * 0.1, args.rate_hz, first_stamp_ns, rig.send)
    rss_start = rig.node_rss_kb()
    stamps += drive(rig, args.duration_s * 0.9, args.rate_hz, stamps[-1] + S // 1000, rig.send)
    elapsed = time.monotonic() - t0
    rig.wait_for_meta(stamps[-1])
    rss_end = rig.node_rss_kb()
    cpu = cpu_s(rig.proc.pid) - cpu0
    got = [s for s in stamps if s in rig.meta]
    final = max((rig.meta[s] for s in got), key=lambda m: m.frames_received)
    received = int(final.frames_received) - base_received
    dropped = int(final.frames_dropped) - base_dropped
    frames = [timing[s] for s in got if s in timing]
    stage_ms, stage_cpu_ms = ({name: _median([f[f"{name}{unit}"] for f in frames if f"{name}{unit}" in f])
                               for name in STAGES if any(f"{name}{unit}" in f for f in frames)}
                              for unit in ("_ms", "_cpu_ms"))
    return {
        "frames_sent": len(stamps),
        "received": received,
        "published": len(got),
        "dropped": dropped,
        "published_ratio": round(len(got) / received, 4) if received else None,
        "transport_loss_rate": round(1.0 - received / len(stamps), 4),
        "output_hz": round(len(got) / elapsed, 2),
        "non_network_ms": _median([f["non_network_ms"] for f in frames]),
        "total_ms": _median([f["total_ms"] for f in frames]),
        "node_ms_minus_inference": _median([rig.meta[s].latency_ms - rig.meta[s].inference_ms for s in got]),
        "stage_ms": stage_ms,
        "non_network_cpu_ms": _median([f["non_network_cpu_ms"] for f in frames if "non_network_cpu_ms" in f]),
        "stage_cpu_ms": stage_cpu_ms,
        "node_ms": _stats([rig.meta[s].latency_ms for s in got]),
        "cpu_ms_per_frame": round(cpu * 1e3 / max(len(got), 1), 3),
        "timed_frames": len(frames),
        "rss_kb_start": rss_start,
        "rss_kb_end": rss_end,
        "rss_growth": round(rss_end / rss_start - 1.0, 4),
    }, stamps[-1] + S


def floor_phase(rig: Rig, args: argparse.Namespace, tmp: Path, outputs: bool) -> dict[str, Any]:
    """The bare rclpy relay at the same rate and image: its CPU and publish time per frame; with
    ``outputs`` it also publishes the node's outputs (depth Image, cloud; subscribed here, as the
    node's are in the cloud phase), prebuilt."""
    from sensor_msgs.msg import Image, PointCloud2

    from depth_ros.ros import qos

    log = open(tmp / "relay.log", "wb")
    child = [sys.executable, __file__, "--relay-child", "--width", str(args.width), "--height", str(args.height)]
    proc = subprocess.Popen(child + (["--relay-outputs"] if outputs else []), env=dict(os.environ), stdout=log,
                            stderr=subprocess.STDOUT)
    subs = []
    try:
        pub = rig.node.create_publisher(Image, "/bench/relay_in", qos.input_qos())
        back: list[int] = []
        clouds: list[int] = []
        subs.append(rig.node.create_subscription(Image, "/bench/relay_out", lambda m: back.append(1), 10))
        if outputs:
            subs.append(rig.node.create_subscription(Image, "/bench/relay_depth", lambda m: None, 10))
            subs.append(rig.node.create_subscription(PointCloud2, "/bench/relay_points", lambda m: clouds.append(1), 10))
        image = rig.image_for(0)

        def send(stamp_ns: int) -> None:
            image.header.stamp.sec, image.header.stamp.nanosec = stamp_ns // S, stamp_ns % S
            pub.publish(image)

        rig.spin_until(lambda: pub.get_subscription_count() > 0, 60.0, "the relay to subscribe")
        t = 1 * S
        while not back or (outputs and not clouds):  # discovery both ways
            t += S // 10
            send(t)
            rig.spin_for(0.1)
        back.clear(), clouds.clear()
        cpu0 = cpu_s(proc.pid)
        stamps = drive(rig, args.duration_s, args.rate_hz, 1000 * S, send)
        rig.spin_for(0.5)
        cpu = cpu_s(proc.pid) - cpu0
    finally:
        for sub in subs:
            rig.node.destroy_subscription(sub)
        proc.send_signal(2)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    line = next((ln for ln in (tmp / "relay.log").read_text().splitlines() if ln.startswith("RELAY ")), "RELAY 0 nan nan")
    _, _, publish_ms, outputs_ms = line.split()
    result = {
        "frames_sent": len(stamps),
        "relayed_back": len(back),
        "cpu_ms_per_frame": round(cpu * 1e3 / max(len(back), 1), 3),
        "publish_ms": round(float(publish_ms), 3),
        "what": "a bare rclpy node: subscribe to the Image, publish it again (receive + deserialise + publish)",
    }
    if outputs:
        result.update(clouds_received=len(clouds), outputs_publish_ms=round(float(outputs_ms), 3),
                      what=result["what"] + "; then publish a prebuilt 32FC1 depth Image and 16-byte-point "
                      "PointCloud2 of the image's size (the node's outputs, nothing computed)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--short", action="store_true", help=f"{SHORT_S:g} s per phase")
    parser.add_argument("--relay-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--relay-outputs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--node-source", type=Path, default=None,
                        help="run the node from this checkout (e.g. `git archive BASE | tar -x -C DIR`): a before/after "
                             "comparison; a node without publish_timing reports no stages")
    parser.add_argument("--no-floor", action="store_true", help="leave out the rclpy floor phase")
    parser.add_argument("--cloud-decimation", type=int, default=1,
                        help="the node's cloud_decimation parameter (default 1: a point per pixel)")
    add_rig_arguments(parser, rate_hz=30.0)
    args = parser.parse_args(argv)
    if args.relay_child:
        return relay_main(args.relay_outputs, args.width, args.height)
    if args.short:
        args.duration_s = SHORT_S

    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import PointCloud2

    tmp = Path(tempfile.mkdtemp(prefix="depth_ros_soak_"))
    model = args.model or conv_depth_model(tmp / "bench_conv.onnx")
    load_start = loadavg()
    extra: dict[str, Any] = {} if args.node_source else {"publish_timing": True}
    if args.cloud_decimation != 1:
        extra["cloud_decimation"] = args.cloud_decimation
    rig = Rig(model, args.width, args.height, False, tmp, extra_params=extra, node_source=args.node_source, backend=args.backend)
    timing: dict[int, dict[str, float]] = {}

    def on_timing(msg: Any) -> None:
        timing[msg.header.stamp.sec * S + msg.header.stamp.nanosec] = {kv.key: float(kv.value) for kv in msg.status[0].values}

    rig.node.create_subscription(DiagnosticArray, "/bench/depth/timing", on_timing, 50)
    try:
        rig.warm_up()  # discovery both ways
        no_cloud, next_stamp = depth_phase(rig, timing, args, 100 * S)
        clouds: list[int] = []
        rig.node.create_subscription(PointCloud2, "/bench/depth/points", lambda m: clouds.append(1), 10)
        t = next_stamp
        while not clouds:  # the node has matched the cloud subscriber
            t += S // 10
            rig.send(t)
            rig.spin_for(0.1)
        cloud, _ = depth_phase(rig, timing, args, t + S)
        cloud["clouds_received"] = len(clouds)
        floor = None if args.no_floor else floor_phase(rig, args, tmp, outputs=False)
        floor_outputs = None if args.no_floor else floor_phase(rig, args, tmp, outputs=True)
        result = {
            **{k: v for k, v in result_head("node_soak", args, model).items() if k != "cloud_subscribed"},
            "duration_s_per_phase": args.duration_s,
            "cloud_decimation": args.cloud_decimation,
            "node_source": str(args.node_source or Path(__file__).resolve().parents[1]),
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
            "no_cloud": no_cloud,
            "cloud": cloud,
            "rclpy_floor": floor,
            "rclpy_floor_with_outputs": floor_outputs,
            "targets": {"published_ratio_min": 0.99, "non_network_ms_no_cloud_max": 3.0,
                        "non_network_ms_cloud_max": 5.0},
        }
    finally:
        code = rig.close()
    return print_result(result, code)


if __name__ == "__main__":
    sys.exit(main())
