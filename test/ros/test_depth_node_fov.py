"""The depth node's focal-length fallback: a camera_info with K all zeros and a model with a
field-of-view output give depth on the predicted camera, and depth/camera_info describes that
camera; a valid camera_info is used as it is (the pipeline's rules: test/unit/test_fov_fallback.py);
a camera with no camera_info topic at all gets depth after ``camera_info_timeout_s`` (graph test)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import IMG_H, IMG_W, S, Graph, Harness, image_msg, info_msg, node_argv, running_node
from tiny_nets import export_tiny_pro


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> object:
    from depth_ros.inference.backend import create_backend
    from depth_ros.ros.depth_node import DepthPipeline
    from depth_ros.ros.params import DepthNodeConfig

    model = export_tiny_pro(tmp_path_factory.mktemp("fov") / "pro.onnx", IMG_H // 2, IMG_W // 2)
    config = DepthNodeConfig(model_path=str(model), backend="onnxruntime-cpu", max_range_m=1000.0)
    return DepthPipeline(create_backend(model, backend="onnxruntime"), config)


def _frame(pipeline: object, k: list[float]) -> tuple[object, object, object]:
    from depth_ros.ros import messages

    image, info = image_msg(10**9), info_msg(10**9, k=k)
    rgb, camera = pipeline.decode(image, info)
    rgb, camera = pipeline.rectify(rgb, camera, info)
    out = pipeline.run(rgb, camera)
    return out, messages.rclpy_builder().camera_info_for(info, out.camera, image.header), info


def test_k_all_zeros_runs_on_the_predicted_camera_and_publishes_its_k(pipeline: object) -> None:
    out, depth_info, _ = _frame(pipeline, [0.0] * 9)
    fields = pipeline.depth_info_fields(out)
    assert fields["scale_source"].endswith("_predicted"), fields
    fx = float(out.camera.K[0, 0])
    # fx = (W / 2) / tan(fov / 2) of a field of view in the tiny model's (50, 110) degrees
    assert (IMG_W / 2) / np.tan(np.radians(110) / 2) < fx < (IMG_W / 2) / np.tan(np.radians(50) / 2)
    assert np.allclose(np.asarray(depth_info.k).reshape(3, 3), out.camera.K)
    assert list(depth_info.d) == [0.0] * 5 and np.isfinite(out.depth_m).any()


def test_a_valid_camera_info_is_copied_and_not_replaced(pipeline: object) -> None:
    k = [40.0, 0.0, (IMG_W - 1) / 2, 0.0, 40.0, (IMG_H - 1) / 2, 0.0, 0.0, 1.0]
    out, depth_info, info = _frame(pipeline, k)
    assert not pipeline.depth_info_fields(out)["scale_source"].endswith("_predicted")
    assert list(depth_info.k) == list(info.k) == k


def test_a_camera_without_camera_info_gets_depth_after_the_timeout_then_pairs_once_one_comes(
    ros_env: dict[str, str], graph: Graph, tmp_path: Path
) -> None:
    """The live node, no camera_info publisher traffic at all: images alone are run with the predicted
    camera once ``camera_info_timeout_s`` has passed (DepthInfo says ``_predicted``, depth/camera_info
    has the predicted K); when camera_info starts, frames use it."""
    import time
    from contextlib import contextmanager

    model = export_tiny_pro(tmp_path / "pro.onnx", IMG_H // 2, IMG_W // 2)
    argv = node_argv("depth_ros.ros.depth_node",
                     {"model_path": str(model), "backend": "onnxruntime-cpu", "max_range_m": 1000.0, "camera_info_timeout_s": 0.5},
                     {"__ns": "/nocal", "__node": "nocal_depth_node"})
    with contextmanager(running_node)(argv, ros_env, tmp_path / "node.log", "model '") as proc:
        h = Harness(graph, proc, "/nocal")
        t = 7 * S
        deadline = time.monotonic() + 30.0
        while not h.meta:  # images only (also the warm-up of a best-effort writer: see Harness.warm_up)
            assert time.monotonic() < deadline, "no depth from images without camera_info"
            t += S // 10
            h.image_pub.publish(image_msg(t))
            h.g.spin_for(0.1)
        h.g.wait_until(lambda: bool(h.dinfo), 10.0, "depth/camera_info")
        assert h.meta[0].scale_source.endswith("_predicted"), h.meta[0].scale_source
        k = np.asarray(h.dinfo[0].k).reshape(3, 3)
        assert (IMG_W / 2) / np.tan(np.radians(110) / 2) < k[0, 0] < (IMG_W / 2) / np.tan(np.radians(50) / 2)
        assert "no camera_info on /nocal/camera_info 0.5 s after the first image" in proc.log()
        h.clear()
        deadline = time.monotonic() + 30.0
        while not any(not m.scale_source.endswith("_predicted") for m in h.meta):
            assert time.monotonic() < deadline, "camera_info never taken once it arrived"
            t += S // 10
            h.send(t)
            h.g.spin_for(0.1)
        calibrated = [m for m in h.meta if not m.scale_source.endswith("_predicted")]
        # after the first calibrated frame, no frame falls back to the prediction again
        first = h.stamps(h.meta).index(h.stamps(calibrated)[0])
        assert all(not m.scale_source.endswith("_predicted") for m in h.meta[first:])
        assert proc.alive()
