"""TensorRT on a fused-IO model (uint8 camera image in, resize and normalisation in the graph).

Runs only where ``tensorrt`` (>= 10) imports and torch sees a CUDA device; the development and
CI machines have neither, so these tests have NOT been run there. What they rely on without a
GPU (the fused graph against the numpy path, the uint8 contract, the buffer bound, the uint8
binding's dtype) is tested in test/unit/test_fused_io.py and test/unit/test_resize_graph.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_ros.inference.backend import create_backend
from depth_ros.inference.fused_io import FusedIOConfig, output_agreement
from depth_ros.inference.onnx_export import export_fused_onnx
from depth_ros.inference.spec import ModelSpec
from trt_support import TENSORRT_MARKS


pytestmark = TENSORRT_MARKS

CAM_W, CAM_H = 320, 240
SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=160, train_image_width_px=640,
                 train_image_height_px=256, name="gpu-fused-test")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tiny_nets import export_sigmoid_convnet

    work = tmp_path_factory.mktemp("trt_fused")
    unfused = export_sigmoid_convnet(work / "net.onnx", SPEC, channels=(8, 8), seed=5)
    return {
        "unfused": unfused,
        "crop_bgr": export_fused_onnx(unfused, work / "crop_bgr.onnx", FusedIOConfig(CAM_W, CAM_H, "bgr")),
        "camera_out": export_fused_onnx(unfused, work / "camera_out.onnx", FusedIOConfig(
            CAM_W, CAM_H, aspect="stretch", output_at_camera_resolution=True)),
    }


def _image(seed: int = 0) -> np.ndarray:
    from PIL import Image

    coarse = (np.random.default_rng(seed).random((12, 16, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((CAM_W, CAM_H), Image.Resampling.BICUBIC))[None]


@pytest.mark.parametrize("name", ["crop_bgr", "camera_out"])
@pytest.mark.parametrize(("precision", "rtol"), [("fp32", 1e-4), ("fp16", 5e-3)])
def test_tensorrt_runs_the_fused_graph_like_onnxruntime(models: dict, tmp_path: Path, name: str, precision: str,
                                                        rtol: float) -> None:
    trt_backend = create_backend(models[name], "tensorrt", precision=precision, cache_dir=tmp_path)
    assert trt_backend.name == f"tensorrt-{precision}"
    image = _image()
    got = trt_backend.infer(image)["depth"]
    want = create_backend(models[name], "onnxruntime-cpu").infer(image)["depth"]
    assert got.shape == want.shape and got.dtype == np.float32
    assert output_agreement(got, want) < rtol


def test_tensorrt_fused_pipeline_depth_matches_the_numpy_path(models: dict, tmp_path: Path) -> None:
    from depth_ros.core.camera import CameraModel
    from depth_ros.pipeline import FrameConfig, FramePipeline

    camera = CameraModel.from_fov(CAM_W, CAM_H, 80.0)
    rgb = _image(1)[0]
    fused = FramePipeline(create_backend(models["camera_out"], "tensorrt", precision="fp32", cache_dir=tmp_path),
                          FrameConfig(aspect="stretch"))
    numpy_path = FramePipeline(create_backend(models["unfused"], "onnxruntime-cpu"), FrameConfig(aspect="stretch"))
    got = fused.run(rgb, camera).depth_m
    want = numpy_path.run(rgb, camera).depth_m
    assert output_agreement(got, want) < 0.01
