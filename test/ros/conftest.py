"""Fixtures for tests on the real ROS 2 graph (rclpy + Fast DDS).

Isolation: one random ROS_DOMAIN_ID (0-101) per test session, ROS_LOCALHOST_ONLY=1, logs in
a tmp dir, the package's Fast DDS profile (config/fastdds_local.xml: shared memory + UDP, no
TCP); node processes inherit the same. Waiting is always on a condition (matching, a message with a given stamp, a log line) with a bounded
timeout, never a blind sleep.

Test models are tiny ONNX graphs written with onnx.helper, with their ModelSpec embedded:
* plane_2m.onnx: depth_metric, every pixel 2.0 m (a fronto-parallel plane at 2 m);
* nan.onnx: depth_metric, every pixel NaN (the node must skip the frame);
* pose_fwd.onnx: pose_6dof T_src_tgt, metric: the camera moves +0.1 m along z per frame.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from depth_ros.inference.spec import METADATA_KEY, ModelSpec

S = 1_000_000_000  # ns per second
REPO_ROOT = Path(__file__).resolve().parents[2]
NET_W, NET_H = 32, 24
IMG_W, IMG_H = 64, 48
FX, FY, CX, CY = 50.0, 50.0, 31.5, 23.5


def _ros_env() -> dict[str, str]:
    env = {
        "ROS_DOMAIN_ID": str(random.SystemRandom().randint(0, 101)),
        "ROS_LOCALHOST_ONLY": "1",
        "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO_ROOT / "config" / "fastdds_local.xml"),
        "ROS_LOG_DIR": tempfile.mkdtemp(prefix="depth_ros_ros_log_"),
        "RCUTILS_COLORIZED_OUTPUT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    return env


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """The isolated ROS environment, applied to this process and returned for children."""
    env = _ros_env()
    os.environ.update(env)
    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS"):
        os.environ.pop(name, None)
    return dict(os.environ)


def _onnx_model(path: Path, spec: ModelSpec, nodes: list, inits: list, out_shape: list[int]) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, spec.name,
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, [1, spec.input_channels, spec.input_height, spec.input_width])],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, spec.to_json()
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_depth_model(path: Path, value: float, name: str) -> Path:
    """depth_metric model whose output is ``value`` at every pixel (input * 0 + value)."""
    from onnx import helper, numpy_helper

    spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name=name,
                     min_depth_m=0.1, max_depth_m=80.0, metric=True, scale_source="metric_labels")
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.full((1, 1, 1, 1), value, np.float32), "value")]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "value"], ["depth"]),
    ]
    return _onnx_model(path, spec, nodes, inits, [1, 1, NET_H, NET_W])


def pose_model(path: Path, vec6: tuple[float, ...]) -> Path:
    """pose_6dof (T_src_tgt, metric) model returning ``vec6`` for any input pair."""
    from onnx import helper, numpy_helper

    spec = ModelSpec(output_kind="pose_6dof", input_height=NET_H, input_width=NET_W, input_channels=6,
                     output_name="pose", name="pose_fwd", metric=True, pose_convention="T_src_tgt",
                     scale_source="velocity_supervision")
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array([vec6], np.float32), "vec")]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),  # (1,)
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Unsqueeze", ["z", "ax"], ["z2"]),
        helper.make_node("Add", ["z2", "vec"], ["pose"]),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "ax"))
    return _onnx_model(path, spec, nodes, inits, [1, 6])


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "plane": constant_depth_model(d / "plane_2m.onnx", 2.0, "plane_2m"),
        "nan": constant_depth_model(d / "nan.onnx", float("nan"), "nan_depth"),
        "pose": pose_model(d / "pose_fwd.onnx", (0.0, 0.0, 0.0, 0.0, 0.0, 0.1)),
    }


# -- messages -------------------------------------------------------------------------------
def stamp(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def image_msg(stamp_ns: int, rgb: np.ndarray | None = None, frame_id: str = "camera_optical_frame", **override: Any) -> Any:
    """rgb8 Image (default a (IMG_H, IMG_W) gradient); ``override`` replaces fields as given."""
    from sensor_msgs.msg import Image

    from depth_ros.ros.messages import to_byte_array

    if rgb is None:
        rgb = np.zeros((IMG_H, IMG_W, 3), np.uint8)
        rgb[..., 0] = np.arange(IMG_W, dtype=np.uint8)[None, :] * 3
        rgb[..., 1] = np.arange(IMG_H, dtype=np.uint8)[:, None] * 5
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0, step=rgb.shape[1] * 3,
                data=to_byte_array(rgb.reshape(-1)))
    msg.header.stamp = stamp(stamp_ns)
    msg.header.frame_id = frame_id
    for k, v in override.items():
        setattr(msg, k, v)
    return msg


def info_msg(stamp_ns: int, frame_id: str = "camera_optical_frame", width: int = IMG_W, height: int = IMG_H,
             k: list[float] | None = None) -> Any:
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5,
                     k=k if k is not None else [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0],
                     r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=[FX, 0.0, CX, 0.0, 0.0, FY, CY, 0.0, 0.0, 0.0, 1.0, 0.0])
    msg.header.stamp = stamp(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


# -- graph helpers --------------------------------------------------------------------------
class Graph:
    """The test side of the graph: its own rclpy context, one node, a single-threaded executor."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list[Any]] = {}
        self.subscriptions: dict[str, Any] = {}

    def subscribe(self, msg_type: type, topic: str, qos: Any = 10) -> list[Any]:
        box: list[Any] = []
        self.received[topic] = box
        self.subscriptions[topic] = self.node.create_subscription(msg_type, topic, box.append, qos)
        return box

    def wait_until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for a while (used only to let late messages arrive before
        asserting that none came; never to wait for something expected)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


# Run in the child before it becomes the node: ask Linux to send it SIGINT when the test process
# dies (prctl PR_SET_PDEATHSIG = 1, kept across exec). A test run that is killed, so that no
# fixture teardown runs, then leaves no node process behind to load the machine.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT); "
    "os.getppid() == int(sys.argv[1]) or sys.exit(1); os.execvp(sys.argv[2], sys.argv[2:])"
)


class NodeProcess:
    """A node running in a child process; its stderr (ROS log lines) goes to a file.

    The child gets SIGINT when the test process dies (see ``_DIE_WITH_PARENT``).
    """

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        wrapped = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]
        self.proc = subprocess.Popen(wrapped, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout_s: float, after: int = 0) -> str:
        """Wait for ``text`` in the log (past character offset ``after``); returns the log."""
        deadline = time.monotonic() + timeout_s
        while True:
            log = self.log()
            if text in log[after:]:
                return log
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode} before logging {text!r}:\n{log[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {text!r} in the node log:\n{log[-3000:]}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int | None = None, timeout_s: float = 15.0) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig if sig is not None else signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


def running_node(argv: list[str], env: dict[str, str], log_path: Path, ready: str) -> Iterator[NodeProcess]:
    """A fixture body: start the node, wait for ``ready`` in its log, yield it, and check that it
    shuts down cleanly (exit 0) on SIGINT afterwards. Use as ``yield from running_node(...)``."""
    proc = NodeProcess(argv, env, log_path)
    try:
        proc.wait_log(ready, 60.0)
    except AssertionError:
        proc.stop()
        raise
    yield proc
    code = proc.stop()
    assert code == 0, f"the node did not shut down cleanly on SIGINT (exit {code}):\n{proc.log()[-2000:]}"


def node_argv(module: str, params: dict[str, Any], remaps: dict[str, str] | None = None) -> list[str]:
    """``python -m <module> --ros-args -p k:=v ... -r a:=b``."""
    argv = [sys.executable, "-m", module, "--ros-args"]
    for k, v in params.items():
        value = str(v).lower() if isinstance(v, bool) else str(v)
        argv += ["-p", f"{k}:={value}"]
    for a, b in (remaps or {}).items():
        argv += ["-r", f"{a}:={b}"]
    return argv


@pytest.fixture(scope="module")
def graph(ros_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Graph]:
    """One test participant per test module (discovery costs ~2 s per participant)."""
    g = Graph(f"test_{request.module.__name__.rsplit('.', 1)[-1][:40]}")
    yield g
    g.close()


class Harness:
    def __init__(self, graph: Graph, proc: NodeProcess, ns: str) -> None:
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from depth_ros.msg import DepthInfo
        from depth_ros.ros import qos

        self.g, self.proc, self.ns = graph, proc, ns
        n = graph.node
        self.image_pub = n.create_publisher(Image, f"{ns}/image", qos.input_qos())
        self.info_pub = n.create_publisher(CameraInfo, f"{ns}/camera_info", qos.input_qos())
        self.depth = graph.subscribe(Image, f"{ns}/depth/image", 50)
        self.dinfo = graph.subscribe(CameraInfo, f"{ns}/depth/camera_info", 50)
        self.cloud = graph.subscribe(PointCloud2, f"{ns}/depth/points", 50)
        self.meta = graph.subscribe(DepthInfo, f"{ns}/depth/info", 50)
        subs = [graph.subscriptions[f"{ns}/depth/{t}"] for t in ("image", "camera_info", "points", "info")]
        graph.wait_until(
            lambda: self.image_pub.get_subscription_count() >= 1 and self.info_pub.get_subscription_count() >= 1
            and all(s.get_publisher_count() >= 1 for s in subs),
            30.0, "the depth node to match our publishers and subscriptions",
        )

    def warm_up(self, first_stamp_ns: int) -> int:
        """Send frames until one comes back: a best-effort writer can match its reader before
        the reader has matched the writer, and samples sent in that window are lost. Returns
        the stamp of the first frame that came back."""
        import time

        t = first_stamp_ns
        deadline = time.monotonic() + 30.0
        while not self.depth:
            assert time.monotonic() < deadline, "no depth output for 30 s of warm-up frames"
            t += S // 100
            self.send(t)
            self.g.spin_for(0.2)
        return t

    def send(self, stamp_ns: int, image: Any = None, info: Any = None, info_first: bool = True) -> None:
        image = image if image is not None else image_msg(stamp_ns)
        info = info if info is not None else info_msg(stamp_ns)
        if info_first:
            self.info_pub.publish(info)
            self.image_pub.publish(image)
        else:
            self.image_pub.publish(image)
            self.info_pub.publish(info)

    def stamps(self, box: list[Any]) -> list[int]:
        return [m.header.stamp.sec * S + m.header.stamp.nanosec for m in box]

    def wait_depth(self, stamp_ns: int, timeout_s: float = 20.0) -> None:
        self.g.wait_until(lambda: stamp_ns in self.stamps(self.depth) and stamp_ns in self.stamps(self.meta),
                          timeout_s, f"depth output stamped {stamp_ns}")

    def clear(self) -> None:
        for box in (self.depth, self.dinfo, self.cloud, self.meta):
            box.clear()
