"""The OpenVINO backend: the same ONNX files as ONNX Runtime, the same outputs (FP32 to float
rounding, INT8 and fused models too), batches, owned outputs under concurrent calls, and one-line
refusals."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from depth_ros.errors import InputError, ModelError
from depth_ros.inference.backend import create_backend, spec_input_shape
from depth_ros.inference.spec import ModelSpec

from tiny_nets import export_sigmoid_convnet

pytest.importorskip("openvino")  # in requirements.txt: installed wherever the tests run

SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=32, input_width=48, min_depth_m=0.5, max_depth_m=20.0,
                 name="small", train_image_width_px=96, train_image_height_px=64)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from depth_ros.inference.fused_io import FusedIOConfig
    from depth_ros.inference.onnx_export import batch_onnx, export_fused_onnx
    from depth_ros.inference.quantize import QuantizeConfig, quantize_model

    d = tmp_path_factory.mktemp("ov")
    fp32 = export_sigmoid_convnet(d / "small.onnx", SPEC, channels=(16, 16))
    calib = [np.random.default_rng(s).random(spec_input_shape(SPEC), dtype=np.float32) * 4 - 2 for s in range(8)]
    return {
        "fp32": fp32,
        "int8": quantize_model(fp32, d / "small.int8.onnx", calib, QuantizeConfig(frames=8)),
        "fused": export_fused_onnx(fp32, d / "small.fused.onnx", FusedIOConfig(96, 64, aspect="pad")),
        "batch3": batch_onnx(fp32, d / "small.batch3.onnx", 3),
    }


def _x(seed: int, frames: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((frames, *spec_input_shape(SPEC)[1:]), dtype=np.float32) * 4 - 2


@pytest.mark.parametrize(("kind", "atol"), [("fp32", 1e-5), ("int8", 0.03)])
def test_outputs_are_onnxruntimes(models: dict[str, Path], kind: str, atol: float) -> None:
    ov = create_backend(models[kind], "openvino", threads=1)
    ort = create_backend(models[kind], "onnxruntime-cpu", threads=1)
    assert ov.name == "openvino-cpu" and ov.spec == ort.spec
    for seed in range(3):
        a, b = ov.infer(_x(seed))["depth"], ort.infer(_x(seed))["depth"]
        assert a.shape == b.shape == (1, 1, 32, 48) and a.dtype == np.float32
        assert float(np.max(np.abs(a - b))) < atol
    if kind == "int8":  # int8 kernels round differently, but not far
        assert float(np.median(np.abs(a - b) / b)) < 0.01


def test_a_fused_model_takes_the_camera_image(models: dict[str, Path]) -> None:
    image = np.random.default_rng(5).integers(0, 255, (1, 64, 96, 3), dtype=np.uint8)
    ov = create_backend(models["fused"], "openvino", threads=1)
    want = create_backend(models["fused"], "onnxruntime-cpu", threads=1).infer(image)["depth"]
    assert float(np.max(np.abs(ov.infer(image)["depth"] - want))) < 1e-5
    with pytest.raises(InputError, match="must be uint8"):
        ov.infer(image.astype(np.float32))


def test_batches_run_in_one_call(models: dict[str, Path]) -> None:
    ov = create_backend(models["batch3"], "openvino", threads=1)
    one = create_backend(models["fp32"], "openvino", threads=1)
    assert ov.batch_size == 3 and one.batch_size == 1
    x = _x(9, frames=3)
    for frames in (3, 1, 2):
        got = ov.infer_batch(x[:frames])["depth"]
        assert got.shape == (frames, 1, 32, 48)
        for i in range(frames):
            np.testing.assert_allclose(got[i:i + 1], one.infer(x[i:i + 1])["depth"], atol=1e-5)
    with pytest.raises(InputError, match="batch of 4 frames; small.batch3.onnx takes 1 to 3"):
        ov.infer_batch(_x(1, frames=4))


def test_outputs_are_owned_and_concurrent_calls_get_their_own(models: dict[str, Path]) -> None:
    ov = create_backend(models["fp32"], "openvino", threads=1)
    first = ov.infer(_x(0))["depth"]
    kept = first.copy()
    ov.infer(_x(1))  # the request's buffers are reused: the first result must not change
    np.testing.assert_array_equal(first, kept)
    want = {s: ov.infer(_x(s))["depth"] for s in range(4)}
    got: dict[int, list[np.ndarray]] = {s: [] for s in range(4)}

    def work(seed: int) -> None:
        for _ in range(20):
            got[seed].append(ov.infer(_x(seed))["depth"])

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in range(4):
        assert len(got[s]) == 20 and all(np.array_equal(g, want[s]) for g in got[s])


def test_bad_files_and_mismatched_specs_are_refused_in_one_line(models: dict[str, Path], tmp_path: Path) -> None:
    from depth_ros.inference.openvino_backend import OpenVinoBackend

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01 not a model")
    with pytest.raises(ModelError, match=r"junk.onnx: OpenVINO cannot read the model") as err:
        OpenVinoBackend(junk, SPEC)
    assert "\n" not in str(err.value)
    other = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=48)
    with pytest.raises(ModelError, match=r"shape \[1, 3, 32, 48\] but the spec says \[1, 3, 64, 48\]"):
        OpenVinoBackend(models["fp32"], other)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        OpenVinoBackend(models["fp32"], SPEC, threads=0)
