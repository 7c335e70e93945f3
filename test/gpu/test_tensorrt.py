"""TensorRT on a real GPU: build, cache, rebuild, and parity with ONNX Runtime.

Runs only where ``tensorrt`` (>= 10) imports and torch sees a CUDA device; the development
and CI machines have neither, so these tests have NOT been run there. The orchestration they
rely on (keys, cache files, rebuild and fallback decisions) is tested everywhere in
test/unit/test_inference_tensorrt_logic.py and test/unit/test_inference_engine_cache.py.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_ros.inference.backend import create_backend, spec_input_shape
from depth_ros.inference.onnx_export import export_onnx
from depth_ros.inference.spec import ModelSpec
from trt_support import TENSORRT_MARKS


pytestmark = TENSORRT_MARKS

SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=96, name="gpu-test")


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, 1, 1), torch.nn.ELU(),
        )
        self.head = torch.nn.Conv2d(16, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = torch.nn.functional.interpolate(self.body(x), scale_factor=2, mode="nearest")
        return torch.sigmoid(self.head(up))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return export_onnx(_Net().eval(), SPEC, tmp_path_factory.mktemp("trt") / "net.onnx")


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(spec_input_shape(SPEC)).astype(np.float32)


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-4), ("fp16", 5e-3)])
def test_tensorrt_matches_onnxruntime(model: Path, tmp_path: Path, precision: str, atol: float) -> None:
    trt_backend = create_backend(model, "tensorrt", precision=precision, cache_dir=tmp_path)
    assert trt_backend.name == f"tensorrt-{precision}"
    x = _x()
    got = trt_backend.infer(x)["depth"]
    want = create_backend(model, "onnxruntime-cpu").infer(x)["depth"]
    assert got.shape == want.shape == (1, 1, 64, 96) and got.dtype == np.float32
    assert float(np.max(np.abs(got - want))) < atol


def test_second_load_comes_from_the_cache(model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = create_backend(model, "tensorrt", cache_dir=tmp_path)
    engines = list(tmp_path.glob("*.engine"))
    assert len(engines) == 1 and first.engine_path == engines[0]
    assert list(tmp_path.glob("timing-*.cache"))
    with caplog.at_level(logging.INFO, logger="depth_ros.inference"):
        second = create_backend(model, "tensorrt", cache_dir=tmp_path)
    assert any("TensorRT engine for net.onnx: cache" in r.message for r in caplog.records)
    x = _x(1)
    np.testing.assert_array_equal(first.infer(x)["depth"], second.infer(x)["depth"])


def test_corrupt_cached_engine_is_rebuilt(model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_backend(model, "tensorrt", cache_dir=tmp_path)
    (engine,) = tmp_path.glob("*.engine")
    data = bytearray(engine.read_bytes())
    data[-1000] ^= 0xFF
    engine.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="depth_ros.inference"):
        backend = create_backend(model, "tensorrt", cache_dir=tmp_path)
    assert any("rebuilding" in r.message for r in caplog.records)
    assert backend.infer(_x())["depth"].shape == (1, 1, 64, 96)
    # The damaged file was replaced by a valid one: the next load is a cache hit.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="depth_ros.inference"):
        create_backend(model, "tensorrt", cache_dir=tmp_path)
    assert any("TensorRT engine for net.onnx: cache" in r.message for r in caplog.records)


def test_auto_picks_tensorrt_here(model: Path, tmp_path: Path) -> None:
    assert create_backend(model, cache_dir=tmp_path).name == "tensorrt-fp16"


def test_batched_engine_runs_one_to_max_batch_frames(model: Path, tmp_path: Path) -> None:
    """A model exported with a batch axis of 1 to 3 frames: the profile covers them all, each
    frame's output equals the frame run alone through ONNX Runtime."""
    from depth_ros.inference.onnx_export import batch_onnx

    batched = batch_onnx(model, tmp_path / "net3.onnx", 3)
    trt_backend = create_backend(batched, "tensorrt", precision="fp32", cache_dir=tmp_path)
    assert trt_backend.batch_size == 3
    single = create_backend(model, "onnxruntime-cpu")
    x = np.concatenate([_x(seed) for seed in range(3)])
    for frames in (3, 1, 2):  # the bound shape changes between calls
        got = trt_backend.infer_batch(x[:frames])["depth"]
        assert got.shape == (frames, 1, 64, 96)
        for i in range(frames):
            assert float(np.max(np.abs(got[i:i + 1] - single.infer(x[i:i + 1])["depth"]))) < 1e-4
    assert trt_backend.infer(x[:1])["depth"].shape == (1, 1, 64, 96)


def test_int8_engine_from_a_tensorrt_quantised_model(model: Path, tmp_path: Path) -> None:
    """``--int8-target tensorrt``'s model builds an INT8 engine (explicit quantisation) whose depth
    stays near the FP32 network's."""
    from depth_ros.inference.quantize import QuantizeConfig, quantize_model

    calib = [np.random.default_rng(s).random(spec_input_shape(SPEC), dtype=np.float32) for s in range(16)]
    q = quantize_model(model, tmp_path / "net.int8-tensorrt.onnx", calib, QuantizeConfig(target="tensorrt"))
    trt_backend = create_backend(q, "tensorrt", cache_dir=tmp_path)
    assert trt_backend.name == "tensorrt-int8"
    x = np.random.default_rng(99).random(spec_input_shape(SPEC), dtype=np.float32)
    got = trt_backend.infer(x)["depth"]
    want = create_backend(model, "onnxruntime-cpu").infer(x)["depth"]
    assert float(np.median(np.abs(got - want) / want)) < 0.05
