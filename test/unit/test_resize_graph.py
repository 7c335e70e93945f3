"""Pillow's bilinear resize as ONNX nodes (depth_ros.inference.resize_graph) against Pillow itself."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros.inference.resize_graph import pillow_weights, resize_axis_nodes


def _pillow(x: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(x, np.float32)).resize((width, height), Image.Resampling.BILINEAR))


def _run(shape: tuple[int, int, int, int], axis: int, n_out: int, x: np.ndarray) -> tuple[np.ndarray, int]:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes = resize_axis_nodes(helper, "x", "y", shape, axis, n_out, "resize")
    out = list(shape)
    out[axis] = n_out
    graph = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0], len(nodes)


@pytest.mark.parametrize(("n_in", "n_out"), [(480, 192), (240, 64), (64, 240), (7, 3), (481, 192), (5, 5)])
def test_weights_are_pillows_filter(n_in: int, n_out: int) -> None:
    x = np.random.default_rng(n_in).random((n_in, 4)).astype(np.float32)
    weights = pillow_weights(n_in, n_out)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(weights @ x, _pillow(x, 4, n_out), atol=2e-6)


@pytest.mark.parametrize(("shape", "axis", "n_out"), [
    ((1, 1, 480, 60), 2, 192),   # 5/2 shrink: 7 taps, 2 phases, border rows both ends
    ((1, 3, 40, 320), 3, 80),    # 4x shrink along the width, 3 channels
    ((1, 1, 64, 30), 2, 240),    # enlarging (the depth back to camera size)
    ((1, 2, 481, 20), 2, 192),   # no short period: the whole matrix
    ((1, 1, 30, 33), 3, 33),     # unchanged: left alone
])
def test_graph_resize_is_pillows_in_float(shape: tuple[int, int, int, int], axis: int, n_out: int) -> None:
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    got, nodes = _run(shape, axis, n_out, x)
    for c in range(shape[1]):
        size = (shape[3], n_out) if axis == 2 else (n_out, shape[2])
        np.testing.assert_allclose(got[0, c], _pillow(x[0, c], *size), atol=2e-6)
    if shape[axis] == n_out:
        assert nodes == 1  # an Identity


def test_the_periodic_interior_is_sliced_not_a_dense_matrix() -> None:
    import onnx
    from onnx import helper

    nodes = resize_axis_nodes(helper, "x", "y", (1, 1, 480, 1920), 2, 192, "r")
    ops = [n.op_type for n in nodes]
    assert ops.count("Slice") == 7 + 2  # 7 taps, and the rows of each border block
    mats = [onnx.numpy_helper.to_array(n.attribute[0].t) for n in nodes if n.op_type == "Constant" and n.output[0].endswith("/kernels")]
    assert len(mats) == 1 and mats[0].shape == (2, 7)  # (phases, taps)
