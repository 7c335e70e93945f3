"""Models with a batch axis: export (fixed N, dynamic) and the ONNX Runtime backend's infer_batch.

A batched call must give each frame the output that frame gets alone; a fixed batch N runs a
shorter batch (padded) and still passes the batch-1 output contract.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from depth_ros.errors import InputError, ModelError
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
        "upto4": export_onnx(net, dataclasses.replace(SPEC, max_batch=4), d / "upto4.onnx", batch=None),
    }


def _backend(path: Path) -> "object":
    from depth_ros.inference.backend import create_backend

    return create_backend(path, "onnxruntime-cpu", threads=1)  # runs the batch-1 output contract


def _frames(n: int) -> np.ndarray:
    return np.random.default_rng(7).random((n, 3, SPEC.input_height, SPEC.input_width), dtype=np.float32)


def test_batch_axis_read_from_the_model(exported: dict[str, Path]) -> None:
    from depth_ros.inference.spec import MAX_BATCH, load_model_spec

    kinds = ("one", "dynamic", "three", "upto4")
    assert [_backend(exported[k]).batch_size for k in kinds] == [1, MAX_BATCH, 3, 4]
    # the exported spec says how many frames one call takes (TensorRT's profile is built from it)
    assert [load_model_spec(exported[k]).max_batch for k in kinds] == [1, MAX_BATCH, 3, 4]
    assert "max_batch" not in load_model_spec(exported["one"]).to_dict()


def test_dynamic_batch_is_bounded_by_the_spec(exported: dict[str, Path]) -> None:
    backend = _backend(exported["upto4"])
    assert backend.infer_batch(_frames(4))["depth"].shape[0] == 4
    assert backend.infer_batch(_frames(1))["depth"].shape[0] == 1  # a dynamic axis is not padded
    with pytest.raises(InputError, match="batch of 5 frames; upto4.onnx takes 1 to 4"):
        backend.infer_batch(_frames(5))


def test_a_spec_that_disagrees_with_the_fixed_batch_axis_is_refused(exported: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    from depth_ros.inference.spec import embed_spec

    model = onnx.load(str(exported["three"]))
    embed_spec(model, dataclasses.replace(SPEC, max_batch=5))
    onnx.save(model, str(tmp_path / "liar.onnx"))
    with pytest.raises(ModelError, match="input batch axis is 3 frames, the spec's max_batch says 5"):
        _backend(tmp_path / "liar.onnx")


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

    with pytest.raises(ValueError, match=r"batch must be an integer in 1..64 or None"):
        export_onnx(_net(), SPEC, tmp_path / "m.onnx", batch=0)
    with pytest.raises(ValueError, match="batch 3 does not match the spec's max_batch 4"):
        export_onnx(_net(), dataclasses.replace(SPEC, max_batch=4), tmp_path / "m.onnx", batch=3)
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


def test_batch_onnx_gives_a_batch_one_model_a_bounded_batch_axis(exported: dict[str, Path], tmp_path: Path) -> None:
    from depth_ros.inference.onnx_export import batch_onnx
    from depth_ros.inference.spec import load_model_spec

    out = batch_onnx(exported["one"], tmp_path / "b.onnx", 3)
    assert load_model_spec(out).max_batch == 3
    backend = _backend(out)
    assert backend.batch_size == 3
    x = _frames(3)
    np.testing.assert_allclose(backend.infer_batch(x)["depth"][1:2], _backend(exported["one"]).infer(x[1:2])["depth"], atol=1e-5)
    with pytest.raises(ModelError, match="already takes up to 3 frames per call"):
        batch_onnx(out, tmp_path / "c.onnx", 2)
    with pytest.raises(ValueError, match=r"max_batch must be an integer in 2..64, got 1"):
        batch_onnx(exported["one"], tmp_path / "c.onnx", 1)
    assert not (tmp_path / "c.onnx").exists()


def test_batch_onnx_refuses_a_graph_that_reshapes_over_the_batch(tmp_path: Path) -> None:
    """A graph with the frame count baked in fails the frame-by-frame check; nothing is written."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from depth_ros.inference.onnx_export import batch_onnx
    from depth_ros.inference.spec import embed_spec

    h, w = SPEC.input_height, SPEC.input_width
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1], keepdims=1),
         helper.make_node("Reshape", ["mean", "shape"], ["flat"]),
         helper.make_node("Reshape", ["flat", "back"], ["depth"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, h, w])],
        initializer=[numpy_helper.from_array(np.array([1, h * w], np.int64), "shape"),
                     numpy_helper.from_array(np.array([1, 1, h, w], np.int64), "back")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    embed_spec(model, SPEC)
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    with pytest.raises(ModelError, match="model 'tiny_batch' does not run 2 frames in one call"):
        batch_onnx(tmp_path / "fixed.onnx", tmp_path / "b.onnx", 2)
    assert not (tmp_path / "b.onnx").exists()
