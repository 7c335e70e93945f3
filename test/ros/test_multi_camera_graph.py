"""The multi-camera node in its own process: two cameras, one model with a batch axis.

The model's depth depends on the image (softplus of the channel mean, plus 0.5 m), so a camera
that got another camera's output, or another camera's scale state, would show. Each camera's
depth is compared with the single-frame pipeline run here on the same image and camera_info
(batched against unbatched, within 1e-5).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from conftest import NET_H, NET_W, Graph, Harness, NodeProcess, _onnx_model, image_msg, info_msg, node_argv, running_node

pytestmark = [pytest.mark.ros, pytest.mark.slow]

S = 1_000_000_000
# camera -> (width, height, fx, fy, cx, cy, frame_id): two sizes, two sets of intrinsics
CAMERAS = {
    "/cam_a": (64, 48, 50.0, 50.0, 31.5, 23.5, "cam_a_optical"),
    "/cam_b": (96, 72, 80.0, 82.0, 47.0, 36.0, "cam_b_optical"),
}
_stamp = [1000 * S]


def next_stamp() -> int:
    _stamp[0] += 2 * S
    return _stamp[0]


def image_dependent_model(path: Path, dynamic_batch: bool) -> Path:
    """depth_metric: depth = softplus(mean over channels of the input) + 0.5 m; batch 1 or a
    dynamic first axis."""
    import onnx
    from onnx import helper, numpy_helper

    from depth_ros.inference.onnx_export import set_dynamic_batch
    from depth_ros.inference.spec import ModelSpec

    spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="image_mean",
                     min_depth_m=0.1, max_depth_m=80.0, metric=True, scale_source="metric_labels")
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Softplus", ["m"], ["s"]), helper.make_node("Add", ["s", "half"], ["depth"])]
    _onnx_model(path, spec, nodes, [numpy_helper.from_array(np.array(0.5, np.float32), "half")], [1, 1, NET_H, NET_W])
    if dynamic_batch:
        model = onnx.load(str(path))
        set_dynamic_batch(model)
        onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def batch_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("multi_models")
    return {"dynamic": image_dependent_model(d / "dynamic.onnx", True),
            "single": image_dependent_model(d / "single.onnx", False)}


def _frame(camera: str, stamp_ns: int, seed: int) -> tuple[Any, Any]:
    w, h, fx, fy, cx, cy, frame_id = CAMERAS[camera]
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return (image_msg(stamp_ns, rgb=rgb, frame_id=frame_id),
            info_msg(stamp_ns, frame_id=frame_id, width=w, height=h, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]))


@pytest.fixture(scope="module")
def multi_proc(ros_env: dict[str, str], batch_models: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("multi_depth_node") / "node.log"
    argv = node_argv("depth_ros.ros.multi_depth_node",
                     {"model_path": batch_models["dynamic"], "backend": "onnxruntime-cpu", "max_range_m": 10.0,
                      "cameras": "[cam_a, cam_b]"})
    yield from running_node(argv, ros_env, log, "batches of up to 2 frames")


@pytest.fixture(scope="module")
def rigs(graph: Graph, multi_proc: NodeProcess) -> dict[str, Harness]:
    rigs = {ns: Harness(graph, multi_proc, ns) for ns in CAMERAS}
    for ns, rig in rigs.items():
        t = next_stamp()
        while not rig.depth:  # warm-up (see Harness.warm_up), with this camera's own frames
            t += S // 100
            rig.send(t, *_frame(ns, t, 0))
            graph.spin_for(0.2)
            assert t < _stamp[0] + 30 * S, f"no depth output on {ns} for 150 warm-up frames"
        _stamp[0] = t
    for rig in rigs.values():
        rig.clear()
    return rigs


def _expected_depth(model: Path, camera: str, image: Any, info: Any) -> np.ndarray:
    """The single-camera pipeline on one frame: the unbatched model, one call."""
    from depth_ros.inference.backend import create_backend
    from depth_ros.pipeline import FrameConfig, FramePipeline

    pipeline = FramePipeline(create_backend(model, "onnxruntime-cpu", threads=1), FrameConfig(max_range_m=10.0))
    rgb, cam = pipeline.decode(image, info, compressed=False)
    return pipeline.run(rgb, cam).depth_m


def _depth_of(msg: Any) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.height, msg.width)


def _by_stamp(rig: Harness, box: list[Any], stamp_ns: int) -> Any:
    return next(m for m in box if m.header.stamp.sec * S + m.header.stamp.nanosec == stamp_ns)


def test_each_camera_gets_its_own_depth_header_and_camera_info(rigs: dict[str, Harness],
                                                                batch_models: dict[str, Path]) -> None:
    t = next_stamp()
    frames = {ns: _frame(ns, t, seed) for seed, ns in enumerate(CAMERAS, start=1)}
    for ns, rig in rigs.items():  # the same stamp on both: the node must keep them apart by camera
        rig.send(t, *frames[ns])
    for ns, rig in rigs.items():
        rig.wait_depth(t)
        rig.g.wait_until(lambda r=rig: t in r.stamps(r.dinfo), 10.0, f"{ns}/depth/camera_info")
    for ns, rig in rigs.items():
        w, h, fx, fy, cx, cy, frame_id = CAMERAS[ns]
        depth = _by_stamp(rig, rig.depth, t)
        assert (depth.header.frame_id, depth.width, depth.height, depth.encoding) == (frame_id, w, h, "32FC1")
        cinfo = _by_stamp(rig, rig.dinfo, t)
        assert (cinfo.header.frame_id, cinfo.width, cinfo.height) == (frame_id, w, h)
        assert list(cinfo.k) == [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
        meta = _by_stamp(rig, rig.meta, t)
        assert (meta.header.frame_id, meta.model, meta.backend) == (frame_id, "image_mean", "onnxruntime-cpu")
        want = _expected_depth(batch_models["single"], ns, *frames[ns])
        np.testing.assert_allclose(_depth_of(depth), want, atol=1e-5, rtol=0)


def test_a_bad_message_on_one_camera_does_not_stop_the_other(rigs: dict[str, Harness]) -> None:
    a, b = rigs["/cam_a"], rigs["/cam_b"]
    t = next_stamp()
    a.send(t, *_frame("/cam_b", t, 5))  # cam_a gets an image of cam_b's size with its camera_info: fine
    a.wait_depth(t)
    before = _by_stamp(a, a.meta, t)
    t_bad = next_stamp()
    image, info = _frame("/cam_a", t_bad, 6)
    image.encoding = "yuv422"
    a.send(t_bad, image, info)
    b.send(t_bad, *_frame("/cam_b", t_bad, 7))
    b.wait_depth(t_bad)
    a.proc.wait_log("yuv422", 10.0)
    t_next = next_stamp()
    a.send(t_next, *_frame("/cam_a", t_next, 8))
    a.wait_depth(t_next)
    assert t_bad not in a.stamps(a.depth)
    skipped = _by_stamp(a, a.meta, t_next).frames_skipped - before.frames_skipped
    assert skipped == 1
    assert _by_stamp(b, b.meta, t_bad).frames_skipped == 0  # cam_b never had a bad frame
    assert a.proc.alive()


def test_counters_are_per_camera(rigs: dict[str, Harness]) -> None:
    a, b = rigs["/cam_a"], rigs["/cam_b"]
    t0 = next_stamp()
    for rig, ns in ((a, "/cam_a"), (b, "/cam_b")):
        rig.send(t0, *_frame(ns, t0, 9))
        rig.wait_depth(t0)
    base = {ns: _by_stamp(r, r.meta, t0).frames_received for ns, r in rigs.items()}
    t = t0
    for _ in range(3):  # three frames to cam_a, each waited for (none dropped), none to cam_b
        t += S // 10
        a.send(t, *_frame("/cam_a", t, 10))
        a.wait_depth(t)
    t += S // 10
    b.send(t, *_frame("/cam_b", t, 11))
    b.wait_depth(t)
    assert _by_stamp(a, a.meta, t - S // 10).frames_received - base["/cam_a"] == 3
    assert _by_stamp(b, b.meta, t).frames_received - base["/cam_b"] == 1


def test_bad_cameras_parameter_exits_1(ros_env: dict[str, str], batch_models: dict[str, Path], tmp_path: Path) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "depth_ros.cli", "run", "--model", str(batch_models["dynamic"]),
            "--cameras", "cam_a,cam a"]
    done = subprocess.run(argv, env=ros_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "parameter 'cameras': 'cam a' is not a ROS namespace" in done.stderr
