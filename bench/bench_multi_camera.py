"""Several cameras, one model: the multi-camera node against N separate depth nodes.

    python bench/bench_multi_camera.py [--cameras 1 2 4] [--duration-s 20] [--rate-hz 30]
                                       [--width 640 --height 480] [--model M.onnx] [--stagger] [--repeat R]
                                       [--short]

For each N in ``--cameras``, N cameras (namespaces ``/cam0`` ...) each get rgb8 images +
camera_infos at ``rate_hz`` (all cameras on the same tick, as a synchronised rig; ``--stagger``
spreads them over the period), served by

* ``multi``: one multi-camera node process (:mod:`depth_ros.ros.multi_depth_node`), the model
  with a dynamic batch axis, the cameras' frames batched;
* ``multi_unbatched``: the same node with ``batch_cameras: false`` (one call per camera in turn);
* ``separate``: N depth node processes (:mod:`depth_ros.ros.depth_node`), one per camera, each
  with its own model session, on the same cores.

The model is the conv bench network of bench_node_latency.py (256x192 input) unless --model;
for the multi-camera node its input and output get a dynamic first axis. Reported (JSON on
stdout), per N and set-up: ``published_hz`` (depth images received per second, summed over the
cameras), ``latency_ms`` (our publish -> our receipt of depth/image: median, p90), ``node_ms``
(DepthInfo.latency_ms), ``dropped`` (DepthInfo.frames_dropped / frames_received over the run),
``node_cpu_s_per_frame`` (user + system CPU of the node processes per published frame),
``node_rss_mb`` (their resident memory summed, at the end of the run), and
for the multi-camera node the mean batch from its log; ratios ``multi / separate`` per N.
``backend_batch_ms``: the batched model alone, one call of B frames (ms, and per frame), for
each N: what batching saves in the network itself.
``/proc/loadavg`` before and after: the machine is shared, compare within one run only.
``--repeat R`` runs the whole sweep R times, set-ups interleaved (load drifts during a run), and
reports each run and the median over the R runs of published_hz and the latency median.
``--short``: N = 1, 2 for 6 s each.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node_latency import S, _stats, conv_depth_model, isolated_env, spin_for  # noqa: E402


def with_dynamic_batch(source: Path, path: Path) -> Path:
    """A copy of the ONNX model ``source`` whose input and outputs have a dynamic first axis
    ("batch"); valid for a graph with no reshape over that axis (the conv bench network)."""
    import onnx

    from depth_ros.inference.onnx_export import set_dynamic_batch

    model = onnx.load(str(source))
    set_dynamic_batch(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Driver:
    """This process's side: publishers and subscribers of N cameras, and the node processes."""

    def __init__(self, cameras: list[str], width: int, height: int, argvs: list[list[str]], log_dir: Path) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image

        from depth_ros.msg import DepthInfo
        from depth_ros.ros import qos
        from depth_ros.ros.messages import to_byte_array

        env = isolated_env()
        self.logs = [log_dir / f"node{i}.log" for i in range(len(argvs))]
        self._files = [open(p, "wb") for p in self.logs]
        self.procs = [subprocess.Popen(a, env=env, stdout=f, stderr=subprocess.STDOUT) for a, f in zip(argvs, self._files)]
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node("bench_multi_driver", context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.cameras = cameras
        self.pubs: dict[str, tuple[Any, Any]] = {}
        self.sent_ns: dict[tuple[str, int], int] = {}
        self.recv_ns: dict[tuple[str, int], int] = {}
        self.meta: dict[tuple[str, int], Any] = {}
        rgb = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
        f = 0.8 * width
        self._image = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=to_byte_array(rgb.reshape(-1)))
        self._info = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5,
                                k=[f, 0.0, (width - 1) / 2, 0.0, f, (height - 1) / 2, 0.0, 0.0, 1.0])
        for ns in cameras:
            self.pubs[ns] = (self.node.create_publisher(CameraInfo, f"{ns}/camera_info", qos.input_qos()),
                             self.node.create_publisher(Image, f"{ns}/image", qos.input_qos()))
            self.node.create_subscription(Image, f"{ns}/depth/image", lambda m, ns=ns: self._on_depth(ns, m), 50)
            self.node.create_subscription(DepthInfo, f"{ns}/depth/info", lambda m, ns=ns: self._on_meta(ns, m), 50)
        self.spin_until(lambda: all(p.get_subscription_count() > 0 for pair in self.pubs.values() for p in pair),
                        120.0, "the nodes to start and subscribe")

    @staticmethod
    def _stamp(msg: Any) -> int:
        return msg.header.stamp.sec * S + msg.header.stamp.nanosec

    def _on_depth(self, ns: str, msg: Any) -> None:
        self.recv_ns[(ns, self._stamp(msg))] = time.monotonic_ns()

    def _on_meta(self, ns: str, msg: Any) -> None:
        self.meta[(ns, self._stamp(msg))] = msg

    def spin_until(self, cond: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            dead = [p for p in self.procs if p.poll() is not None]
            if time.monotonic() > deadline or dead:
                tail = "\n".join(p.read_text()[-1500:] for p in self.logs)
                raise RuntimeError(f"timed out waiting for {what}; node logs:\n{tail}")
            self.ex.spin_once(timeout_sec=0.01)

    def spin_for(self, seconds: float) -> None:
        spin_for(self.ex, seconds)

    def send(self, ns: str, stamp_ns: int) -> None:
        info_pub, image_pub = self.pubs[ns]
        for m in (self._info, self._image):
            m.header.stamp.sec, m.header.stamp.nanosec = stamp_ns // S, stamp_ns % S
            m.header.frame_id = f"{ns.strip('/')}_optical_frame"
        info_pub.publish(self._info)
        self.sent_ns[(ns, stamp_ns)] = time.monotonic_ns()
        image_pub.publish(self._image)

    def warm_up(self) -> None:
        """Frames 0.1 s of stamps apart until every camera has had a depth image back."""
        t = 1 * S
        deadline = time.monotonic() + 120.0
        while not all(any(k[0] == ns for k in self.recv_ns) for ns in self.cameras):
            if time.monotonic() > deadline:
                raise RuntimeError("no depth on every camera after 120 s of warm-up")
            t += S // 10
            for ns in self.cameras:
                self.send(ns, t)
            self.spin_for(0.2)

    def close(self) -> tuple[list[int], str]:
        """Stop the nodes (SIGINT); their exit codes and logs."""
        import rclpy

        for p in self.procs:
            p.send_signal(2)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=20))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        for f in self._files:
            f.close()
        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        return codes, "\n".join(p.read_text() for p in self.logs)


def _node_argv(module: str, params: dict[str, Any], namespace: str | None = None) -> list[str]:
    argv = [sys.executable, "-m", module, "--ros-args"]
    if namespace:
        argv += ["-r", f"__ns:={namespace}"]
    for k, v in params.items():
        argv += ["-p", f"{k}:={v}"]
    return argv


def backend_batch_ms(model: Path, sizes: list[int], calls: int = 30) -> dict[str, dict[str, float]]:
    """The batched model alone in ONNX Runtime (this process, default threads): median ms of one
    call on B random frames and per frame, for each B in ``sizes``: what batching saves in the
    network itself."""
    from depth_ros.inference.backend import create_backend
    from depth_ros.inference.contract import spec_input_shape

    backend = create_backend(model, "onnxruntime-cpu")
    rng = np.random.default_rng(0)
    out = {}
    for b in sizes:
        x = rng.random((b, *spec_input_shape(backend.spec)[1:]), dtype=np.float32)
        backend.infer_batch(x)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            backend.infer_batch(x)
            times.append((time.perf_counter() - t0) * 1e3)
        call_ms = float(np.median(times))
        out[str(b)] = {"call_ms": round(call_ms, 2), "per_frame_ms": round(call_ms / b, 2)}
    return out


def run_setup(setup: str, n: int, models: dict[str, Path], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One set-up (multi, multi_unbatched, separate) with ``n`` cameras for ``args.duration_s``."""
    cameras = [f"/cam{i}" for i in range(n)]
    base = {"backend": "onnxruntime-cpu", "max_range_m": 100.0}
    if setup == "separate":
        argvs = [_node_argv("depth_ros.ros.depth_node", {**base, "model_path": models["single"]}, ns) for ns in cameras]
    else:
        params = {**base, "model_path": models["batch"], "cameras": "[" + ", ".join(c.strip("/") for c in cameras) + "]",
                  "batch_cameras": str(setup == "multi").lower()}
        argvs = [_node_argv("depth_ros.ros.multi_depth_node", params)]
    log_dir = tmp / f"{setup}_{n}"
    log_dir.mkdir(parents=True)
    driver = Driver(cameras, args.width, args.height, argvs, log_dir)
    try:
        driver.warm_up()
        driver.spin_for(0.5)
        driver.sent_ns.clear(), driver.recv_ns.clear(), driver.meta.clear()
        period = 1.0 / args.rate_hz
        ticks = int(args.duration_s * args.rate_hz)
        cpu0 = sum(_cpu_s(p.pid) for p in driver.procs)
        start = time.monotonic()
        for i in range(ticks):
            for k, ns in enumerate(cameras):
                if args.stagger:
                    driver.spin_for(max(0.0, start + (i + k / n) * period - time.monotonic()))
                driver.send(ns, 100 * S + int(i * period * S) + (int(k * period * S / n) if args.stagger else 0))
            driver.spin_for(max(0.0, start + (i + 1) * period - time.monotonic()))
        elapsed_s = time.monotonic() - start
        driver.spin_for(1.0)  # the last frames' outputs
        cpu_s = sum(_cpu_s(p.pid) for p in driver.procs) - cpu0
        rss_mb = sum(_rss_mb(p.pid) for p in driver.procs)
    finally:
        codes, log = driver.close()
    got = [k for k in driver.recv_ns if k in driver.sent_ns]
    latency = [(driver.recv_ns[k] - driver.sent_ns[k]) * 1e-6 for k in got]
    node_ms = [m.latency_ms for m in driver.meta.values()]
    received = dropped = 0
    for ns in cameras:  # each camera's counters over the run: its last DepthInfo minus its first
        metas = sorted((m for k, m in driver.meta.items() if k[0] == ns), key=lambda m: m.frames_received)
        if len(metas) >= 2:
            received += metas[-1].frames_received - metas[0].frames_received
            dropped += metas[-1].frames_dropped - metas[0].frames_dropped
    batches = re.findall(r"mean batch ([0-9.]+)", log)
    return {
        "cameras": n,
        "frames_sent": len(driver.sent_ns),
        "depth_received": len(got),
        "published_hz": round(len(got) / elapsed_s, 2),
        "latency_ms": _stats(latency),
        "node_ms": _stats(node_ms),
        "dropped_fraction": round(dropped / received, 3) if received else None,
        "node_cpu_s_per_frame": round(cpu_s / len(got), 4) if got else None,
        "node_rss_mb": round(rss_mb, 1),
        "mean_batch": float(batches[-1]) if batches else None,
        "node_exit_codes": codes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--rate-hz", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--model", type=Path, default=None, help="a batch-1 depth .onnx without reshapes over the batch axis")
    parser.add_argument("--setups", nargs="+", default=["multi", "multi_unbatched", "separate"],
                        choices=["multi", "multi_unbatched", "separate"])
    parser.add_argument("--stagger", action="store_true", help="spread the cameras' frames over the period")
    parser.add_argument("--repeat", type=int, default=1, help="sweeps, set-ups interleaved; medians over them")
    parser.add_argument("--short", action="store_true", help="N = 1, 2 for 6 s each")
    args = parser.parse_args(argv)
    if args.short:
        args.cameras, args.duration_s = [1, 2], 6.0

    tmp = Path(tempfile.mkdtemp(prefix="depth_ros_multi_"))
    single = args.model or conv_depth_model(tmp / "bench_conv.onnx")
    models = {"single": single, "batch": with_dynamic_batch(single, tmp / "bench_conv_batch.onnx")}
    load_before = Path("/proc/loadavg").read_text().strip()
    network = backend_batch_ms(models["batch"], sorted(set(args.cameras)))
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.repeat):
        for n in args.cameras:
            for setup in args.setups:
                run = run_setup(setup, n, models, args, tmp / f"r{r}")
                runs.setdefault(f"{setup}_{n}", []).append(run)
                print(f"{setup} x{n}: {run['published_hz']} Hz", file=sys.stderr, flush=True)
    medians = {key: {"published_hz": float(np.median([r["published_hz"] for r in rs])),
                     "latency_median_ms": float(np.median([r["latency_ms"]["median"] for r in rs]))}
               for key, rs in runs.items()}
    ratios = {}
    for n in args.cameras:
        sep = medians.get(f"separate_{n}")
        for setup in ("multi", "multi_unbatched"):
            run = medians.get(f"{setup}_{n}")
            if sep and run and sep["published_hz"]:
                ratios[f"{setup}_{n}_over_separate"] = {
                    "published_hz": round(run["published_hz"] / sep["published_hz"], 3),
                    "latency_median": round(run["latency_median_ms"] / sep["latency_median_ms"], 3),
                }
    result = {
        "bench": "multi_camera",
        "image": f"{args.width}x{args.height} rgb8",
        "rate_hz_per_camera": args.rate_hz,
        "duration_s": args.duration_s,
        "cameras_synchronised": not args.stagger,
        "model": Path(single).name,
        "loadavg_before": load_before,
        "loadavg_after": Path("/proc/loadavg").read_text().strip(),
        "repeat": args.repeat,
        "backend_batch_ms": network,
        "runs": runs,
        "medians": medians,
        "ratios": ratios,
        "note": "noisy (shared machine): compare ratios within one run",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
