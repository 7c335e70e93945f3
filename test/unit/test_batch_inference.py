"""Models with a batch axis: export (fixed N, dynamic) and the ONNX Runtime backend's infer_batch.

A batched call must give each frame the output that frame gets alone; a fixed batch N runs a
shorter batch (padded) and still passes the batch-1 output contract.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_ros.errors import InputError
from depth_ros.inference.spec import ModelSpec

SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=24, input_width=32, name="tiny_batch",
                 min_depth_m=0.5, max_depth_m=20.0, metric=True, scale_source="velocity_supervision")


def _net() -> "object":
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 1, 3, padding=1), torch.nn.Sigmoid())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from depth_ros.inference.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("batch")
    net = _net()
    return {
        "one": export_onnx(net, SPEC, d / "one.onnx"),
        "dynamic": export_onnx(net, SPEC, d / "dynamic.onnx", batch=None),
        "three": export_onnx(net, SPEC, d / "three.onnx", batch=3),
    }


def _backend(path: Path) -> "object":
    from depth_ros.inference.backend import create_backend

    return create_backend(path, "onnxruntime-cpu", threads=1)  # runs the batch-1 output contract


def _frames(n: int) -> np.ndarray:
    return np.random.default_rng(7).random((n, 3, SPEC.input_height, SPEC.input_width), dtype=np.float32)


def test_batch_axis_read_from_the_model(exported: dict[str, Path]) -> None:
    assert [_backend(exported[k]).batch_size for k in ("one", "dynamic", "three")] == [1, None, 3]


@pytest.mark.parametrize(("kind", "frames"), [("dynamic", 4), ("dynamic", 1), ("three", 3), ("three", 2)])
def test_batched_call_gives_each_frame_its_own_output(exported: dict[str, Path], kind: str, frames: int) -> None:
    x = _frames(frames)
    single = _backend(exported["one"])
    batched = _backend(exported[kind]).infer_batch(x)["depth"]
    assert batched.shape == (frames, 1, SPEC.input_height, SPEC.input_width)
    for i in range(frames):
        alone = single.infer(x[i:i + 1])["depth"]
        np.testing.assert_allclose(batched[i:i + 1], alone, atol=1e-5)
    # the frames differ, so a mix-up between them would show
    assert not np.allclose(batched[0], batched[-1]) or frames == 1


def test_fixed_batch_model_runs_one_frame(exported: dict[str, Path]) -> None:
    x = _frames(1)
    out = _backend(exported["three"]).infer(x)["depth"]
    assert out.shape == (1, 1, SPEC.input_height, SPEC.input_width)
    np.testing.assert_allclose(out, _backend(exported["one"]).infer(x)["depth"], atol=1e-5)


def test_batch_over_a_fixed_size_or_of_the_wrong_shape_is_refused(exported: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="batch of 4 frames; three.onnx takes 1 to 3"):
        _backend(exported["three"]).infer_batch(_frames(4))
    with pytest.raises(InputError, match=r"\(B, 3, 24, 32\)"):
        _backend(exported["dynamic"]).infer_batch(_frames(2)[:, :, :10])


def test_export_refuses_a_bad_batch(tmp_path: Path) -> None:
    from depth_ros.inference.onnx_export import export_onnx

    with pytest.raises(ValueError, match="batch must be a positive integer or None"):
        export_onnx(_net(), SPEC, tmp_path / "m.onnx", batch=0)
    assert not (tmp_path / "m.onnx").exists()


def test_set_dynamic_batch_makes_a_batch_one_model_take_any_batch(exported: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    from depth_ros.inference.onnx_export import set_dynamic_batch

    model = onnx.load(str(exported["one"]))
    set_dynamic_batch(model)
    onnx.save(model, str(tmp_path / "dyn.onnx"))
    backend = _backend(tmp_path / "dyn.onnx")
    assert backend.batch_size is None
    x = _frames(3)
    np.testing.assert_allclose(backend.infer_batch(x)["depth"][2:3], _backend(exported["one"]).infer(x[2:3])["depth"],
                               atol=1e-5)
