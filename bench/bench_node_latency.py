"""Depth node latency on the real graph: publish -> depth received, vs the backend's own time.

    python bench/bench_node_latency.py [--frames 60] [--rate-hz 5] [--width 640 --height 480]
                                       [--model M.onnx | --dispnet] [--cloud]

The node runs in its own process (as deployed); this process publishes rgb8 images and
camera_infos at a rate low enough that nothing is dropped, and records for each frame:

* ``e2e_ms``: our publish -> our receipt of depth/image (what a consumer sees);
* ``node_ms``: DepthInfo.latency_ms, the node's own receipt -> publish;
* ``inference_ms``: DepthInfo.inference_ms, the backend call alone.

Reported (JSON on stdout): medians and p90s, ``node_overhead_ms`` = node_ms - inference_ms
(decode, preprocess, postprocess, message building), its ratio to inference_ms (target
<= 10 %), and ``transport_ms`` = e2e_ms - node_ms (DDS both ways). Without --model a small
conv net (depth_metric, 256x192 input) is built with onnx.helper so the backend time is
realistic for a CPU. The environment is isolated (random ROS_DOMAIN_ID, localhost) and uses
the package's Fast DDS profile (config/fastdds_local.xml) unless FASTDDS_DEFAULT_PROFILES_FILE
or FASTDDS_BUILTIN_TRANSPORTS is already set.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

S = 1_000_000_000


def isolated_env() -> dict[str, str]:
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(0, 101)))
    os.environ["ROS_LOCALHOST_ONLY"] = "1"
    os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    if not os.environ.get("FASTDDS_BUILTIN_TRANSPORTS") and not os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(__file__).resolve().parents[1] / "config" / "fastdds_local.xml")
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="depth_ros_bench_log_"))
    return dict(os.environ)


def dispnet_model(path: Path, width: int = 640, height: int = 192) -> Path:
    """DispNet ResNet-18 (random weights, disparity_sigmoid marked metric) exported to ONNX:
    a network of the size the node really runs."""
    import torch

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec
    from depth_ros_training.export import DepthExportWrapper
    from depth_ros_training.models.dispnet import DispNet

    torch.manual_seed(0)
    net = DepthExportWrapper(DispNet(num_layers=18, num_scales=1)).eval()
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=height, input_width=width, name="dispnet18",
                     metric=True, scale_source="velocity_supervision")
    export_onnx(net, spec, path)
    return path


def conv_depth_model(path: Path, width: int = 256, height: int = 192, channels: int = 16) -> Path:
    """A 3-layer conv net (depth_metric) with fixed random weights, spec embedded."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from depth_ros.inference.spec import METADATA_KEY, ModelSpec

    rng = np.random.default_rng(0)
    spec = ModelSpec(output_kind="depth_metric", input_height=height, input_width=width, name="bench_conv",
                     metric=True, min_depth_m=0.1, max_depth_m=80.0)
    w1 = rng.normal(0, 0.1, (channels, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (channels, channels, 3, 3)).astype(np.float32)
    w3 = rng.normal(0, 0.1, (1, channels, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(w3, "w3"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    pads = [1, 1, 1, 1]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=pads), helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=pads), helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], pads=pads), helper.make_node("Softplus", ["c3"], ["s"]),
        helper.make_node("Add", ["s", "one"], ["depth"]),
    ]
    graph = helper.make_graph(
        nodes, "bench_conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, height, width])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, spec.to_json()
    onnx.save(model, str(path))
    return path



def spin_for(executor: Any, seconds: float) -> None:
    """Spin ``executor`` for ``seconds`` of wall time, in slices of at most 5 ms."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=max(0.0, min(0.005, end - time.monotonic())))


class Rig:
    """The depth node in a child process and this process's publishers/subscribers."""

    def __init__(self, model: Path, width: int, height: int, cloud: bool, log_dir: Path,
                 extra_params: dict[str, Any] | None = None, node_source: Path | None = None,
                 backend: str = "onnxruntime-cpu") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from depth_ros.msg import DepthInfo
        from depth_ros.ros import qos

        env = isolated_env()
        params = {"model_path": str(model), "backend": backend, "max_range_m": 100.0, **(extra_params or {})}
        argv = [sys.executable, "-m", "depth_ros.ros.depth_node", "--ros-args", "-r", "__ns:=/bench"]
        for k, v in params.items():
            argv += ["-p", f"{k}:={v}"]
        self.log_path = log_dir / "node.log"
        self._log = open(self.log_path, "wb")
        node_env = dict(env)
        if node_source is not None:  # another checkout's depth_ros (e.g. a base commit) runs the node
            node_env["PYTHONPATH"] = os.pathsep.join([str(node_source), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen(argv, env=node_env, stdout=self._log, stderr=subprocess.STDOUT)
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node("bench_driver", context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.width, self.height = width, height
        self.img_pub = self.node.create_publisher(Image, "/bench/image", qos.input_qos())
        self.info_pub = self.node.create_publisher(CameraInfo, "/bench/camera_info", qos.input_qos())
        self.sent_ns: dict[int, int] = {}
        self.depth_recv_ns: dict[int, int] = {}
        self.meta: dict[int, Any] = {}
        self.node.create_subscription(Image, "/bench/depth/image", self._on_depth, 50)
        self.node.create_subscription(DepthInfo, "/bench/depth/info", self._on_meta, 50)
        if cloud:
            self.node.create_subscription(PointCloud2, "/bench/depth/points", lambda m: None, 10)
        rgb = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
        self._rgb_bytes = rgb.reshape(-1)
        self._image = self._info = None
        self.spin_until(lambda: self.img_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0,
                        90.0, "the node to start and subscribe")

    def _on_depth(self, msg: Any) -> None:
        self.depth_recv_ns[msg.header.stamp.sec * S + msg.header.stamp.nanosec] = time.monotonic_ns()

    def _on_meta(self, msg: Any) -> None:
        self.meta[msg.header.stamp.sec * S + msg.header.stamp.nanosec] = msg

    def spin_until(self, cond: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"timed out waiting for {what}; node log:\n{self.log_path.read_text()[-2000:]}")
            self.ex.spin_once(timeout_sec=0.01)

    def spin_for(self, seconds: float) -> None:
        spin_for(self.ex, seconds)

    def image_for(self, stamp_ns: int) -> Any:
        """The rgb8 Image of the bench (one message object, built once, its stamp set): the
        driver's own per-frame work stays small, it shares the cores with the node."""
        from sensor_msgs.msg import Image

        from depth_ros.ros.messages import to_byte_array, with_data

        if self._image is None:
            self._image = with_data(Image, {"height": self.height, "width": self.width, "encoding": "rgb8",
                                            "step": self.width * 3}, to_byte_array(self._rgb_bytes))
            self._image.header.frame_id = "camera_optical_frame"
        self._image.header.stamp.sec, self._image.header.stamp.nanosec = stamp_ns // S, stamp_ns % S
        return self._image

    def info_for(self, stamp_ns: int) -> Any:
        """The CameraInfo of :meth:`image_for` (one object, its stamp set)."""
        from sensor_msgs.msg import CameraInfo

        if self._info is None:
            w, h = self.width, self.height
            f = 0.8 * w
            self._info = CameraInfo(width=w, height=h, distortion_model="plumb_bob", d=[0.0] * 5,
                                    k=[f, 0.0, (w - 1) / 2, 0.0, f, (h - 1) / 2, 0.0, 0.0, 1.0])
            self._info.header.frame_id = "camera_optical_frame"
        self._info.header.stamp.sec, self._info.header.stamp.nanosec = stamp_ns // S, stamp_ns % S
        return self._info

    def send(self, stamp_ns: int) -> None:
        self.info_pub.publish(self.info_for(stamp_ns))
        self.sent_ns[stamp_ns] = time.monotonic_ns()
        self.img_pub.publish(self.image_for(stamp_ns))

    def warm_up(self) -> int:
        """Send frames (0.1 s of stamps apart, from 1 s) until one depth image comes back:
        discovery both ways, the backend's first-run allocations. Returns the last stamp sent."""
        t = 1 * S
        while not self.depth_recv_ns:
            t += S // 10
            self.send(t)
            self.spin_for(0.2)
        return t

    def wait_for_meta(self, stamp_ns: int, timeout_s: float = 10.0) -> None:
        """Spin until the DepthInfo of ``stamp_ns`` is in, or ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while stamp_ns not in self.meta and time.monotonic() < deadline:
            self.spin_for(0.05)

    def node_rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def close(self) -> int:
        import rclpy

        self.proc.send_signal(2)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        return code


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"median": float("nan"), "p90": float("nan"), "n": 0}
    return {"median": round(float(np.median(a)), 3), "p90": round(float(np.percentile(a, 90)), 3), "n": int(a.size)}


def add_rig_arguments(parser: argparse.ArgumentParser, rate_hz: float) -> None:
    """The options of a node bench's :class:`Rig` and input: --rate-hz (default ``rate_hz``),
    --width/--height of the images (640x480), --model (default: a generated one), --cloud."""
    parser.add_argument("--rate-hz", type=float, default=rate_hz)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backend", default="onnxruntime-cpu", help="the node's backend parameter (default onnxruntime-cpu, "
                        "the figures so far; auto, openvino, ...)")
    parser.add_argument("--cloud", action="store_true", help="subscribe to depth/points (the node builds clouds)")


def result_head(bench: str, args: argparse.Namespace, model: Path) -> dict[str, Any]:
    """The first fields of a node bench's JSON result: which bench, image, model, cloud, rate."""
    return {
        "bench": bench,
        "image": f"{args.width}x{args.height} rgb8",
        "model": Path(model).name,
        "backend": args.backend,
        "cloud_subscribed": bool(args.cloud),
        "rate_hz": args.rate_hz,
    }


def print_result(result: dict[str, Any], node_exit_code: int) -> int:
    """Print a node bench's JSON result with a note on the figures and the node's exit code
    added; returns 0 (the bench's own exit code: a node that exited badly is reported, not raised)."""
    result["note"] = "noisy (shared machine)"
    result["node_exit_code"] = node_exit_code
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    add_rig_arguments(parser, rate_hz=5.0)
    parser.add_argument("--dispnet", action="store_true", help="export and run DispNet ResNet-18 at 640x192 (needs torch)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="depth_ros_bench_"))
    if args.model:
        model = args.model
    elif args.dispnet:
        model = dispnet_model(tmp / "dispnet18_192x640.onnx")
    else:
        model = conv_depth_model(tmp / "bench_conv.onnx")
    rig = Rig(model, args.width, args.height, args.cloud, tmp, backend=args.backend)
    try:
        # Warm-up until frames flow both ways (discovery, onnxruntime first-run allocations).
        t = rig.warm_up()
        for _ in range(5):
            t += S // 10
            rig.send(t)
            rig.spin_for(0.2)
        rig.sent_ns.clear(), rig.depth_recv_ns.clear(), rig.meta.clear()
        period = 1.0 / args.rate_hz
        stamps = []
        for i in range(args.frames):
            t = 100 * S + i * int(S * period)
            stamps.append(t)
            start = time.monotonic()
            rig.send(t)
            rig.spin_for(max(0.0, period - (time.monotonic() - start)))
        rig.wait_for_meta(stamps[-1])
        e2e, node_ms, inf_ms = [], [], []
        for s in stamps:
            if s in rig.depth_recv_ns and s in rig.meta:
                e2e.append((rig.depth_recv_ns[s] - rig.sent_ns[s]) * 1e-6)
                node_ms.append(rig.meta[s].latency_ms)
                inf_ms.append(rig.meta[s].inference_ms)
        overhead = [n - i for n, i in zip(node_ms, inf_ms)]
        transport = [e - n for e, n in zip(e2e, node_ms)]
        med_inf = float(np.median(inf_ms)) if inf_ms else float("nan")
        med_over = float(np.median(overhead)) if overhead else float("nan")
        result = {
            **result_head("node_latency", args, model),
            "frames_sent": len(stamps),
            "frames_received": len(e2e),
            "frames_dropped": int(rig.meta[max(rig.meta)].frames_dropped) if rig.meta else None,
            "e2e_ms": _stats(e2e),
            "node_ms": _stats(node_ms),
            "inference_ms": _stats(inf_ms),
            "node_overhead_ms": _stats(overhead),
            "node_overhead_ratio": round(med_over / med_inf, 3) if inf_ms else None,
            "transport_ms": _stats(transport),
            "fastdds_builtin_transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", ""),
            "fastdds_profiles_file": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
        }
    finally:
        exit_code = rig.close()
    return print_result(result, exit_code)


if __name__ == "__main__":
    sys.exit(main())
