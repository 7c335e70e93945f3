"""Crafted model contracts: output shapes that would decode to garbage, loosely typed specs,
oversize sizes and text, hostile YAML / JSON, damaged engine-cache files.

Each case was once silent garbage, a traceback or a multi-GB allocation. The ones that could
allocate a lot run in a child under an address-space limit (``run_python``), so a regression
fails here instead of taking the machine's memory.
"""
from __future__ import annotations

import json
import logging
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from depth_ros.core.camera import CameraModel
from depth_ros.core.postprocess import DepthPostprocessor
from depth_ros.errors import ModelError
from depth_ros.inference import backend as backend_mod
from depth_ros.inference.backend import Probe, check_output_contract, create_backend
from depth_ros.inference.engine_cache import EngineCache, EngineCacheError, EngineKey, decode_engine_file
from depth_ros.inference.spec import (
    MAX_INPUT_PIXELS,
    MAX_INPUT_SIDE,
    MAX_SPEC_BYTES,
    METADATA_KEY,
    ModelSpec,
    ModelSpecError,
    load_model_spec,
)

from harness import SMALL_AS, TORCH_AS, assert_one_line_error, run_limited, run_python

H, W = 64, 192  # network input of the crafted depth models


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` means ONNX Runtime CPU here, also on a machine with TensorRT or CUDA."""
    monkeypatch.setattr(backend_mod, "probe_tensorrt", lambda: Probe(False, "disabled in tests"))
    monkeypatch.setattr(backend_mod, "probe_onnxruntime_cuda", lambda: Probe(False, "disabled in tests"))


def _spec_dict(**overrides: Any) -> dict[str, Any]:
    d = {"output_kind": "depth_metric", "input_height": H, "input_width": W, "name": "crafted"}
    d.update(overrides)
    return d


def _save(model: onnx.ModelProto, path: Path, spec_json: str | None = None) -> Path:
    model.ir_version = 8
    if spec_json is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, spec_json
    onnx.save(model, str(path))
    return path


def _depth_model(path: Path, tail: list[onnx.NodeProto], out_dims: list[int], spec_json: str | None,
                 extra_outputs: list[tuple[str, list[int]]] = (), in_dims: list[Any] | None = None) -> Path:
    """``m = mean over channels of image`` (1, 1, H, W), then ``tail`` nodes ending in ``depth``."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1)] + tail
    outputs = [helper.make_tensor_value_info("depth", TensorProto.FLOAT, out_dims)]
    outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in extra_outputs]
    graph = helper.make_graph(
        nodes, "crafted", [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_dims or [1, 3, H, W])], outputs,
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [4], [1, 1, 128, 96])],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path, spec_json)


# The shapes a depth contract of H x W must refuse, as ONNX tails after the channel mean.
_BAD_TAILS = {
    "transposed": ([helper.make_node("Transpose", ["m"], ["depth"], perm=[0, 1, 3, 2])], [1, 1, W, H], (1, 1, W, H)),
    "reshaped": ([helper.make_node("Reshape", ["m", "shape"], ["depth"])], [1, 1, 128, 96], (1, 1, 128, 96)),
    "half_size": (
        [helper.make_node("AveragePool", ["m"], ["depth"], kernel_shape=[2, 2], strides=[2, 2])],
        [1, 1, H // 2, W // 2], (1, 1, H // 2, W // 2),
    ),
}


# -- one output contract, checked at load --------------------------------------------------


@pytest.mark.parametrize("case", sorted(_BAD_TAILS))
def test_create_backend_refuses_an_output_of_the_wrong_shape(tmp_path: Path, case: str) -> None:
    # Before: only infer compared element counts (transposed and reshaped passed), and the
    # node, which loads through create_backend, checked nothing (a 32x96 map was published).
    tail, dims, got = _BAD_TAILS[case]
    model = _depth_model(tmp_path / f"{case}.onnx", tail, dims, json.dumps(_spec_dict(name=case)))
    with pytest.raises(ModelSpecError) as err:
        create_backend(model, "onnxruntime-cpu")
    msg = str(err.value)
    assert f"{case}.onnx" in msg and f"model '{case}'" in msg and "\n" not in msg
    assert str(got) in msg and f"(1, 1, {H}, {W})" in msg


def test_a_multichannel_output_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["image"], ["depth"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 3, H, W])],
    )
    model = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "rgb.onnx",
                  json.dumps(_spec_dict(output_kind="disparity_sigmoid")))
    with pytest.raises(ModelSpecError, match=rf"output 'depth' has shape \(1, 3, {H}, {W}\)"):
        create_backend(model)


def test_a_confidence_output_of_another_size_is_refused(tmp_path: Path) -> None:
    tail = [
        helper.make_node("Identity", ["m"], ["depth"]),
        helper.make_node("AveragePool", ["m"], ["confidence"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    spec = json.dumps(_spec_dict(confidence_name="confidence"))
    model = _depth_model(tmp_path / "conf.onnx", tail, [1, 1, H, W], spec, [("confidence", [1, 1, H // 2, W // 2])])
    with pytest.raises(ModelSpecError, match=rf"output 'confidence' has shape \(1, 1, {H // 2}, {W // 2}\)"):
        create_backend(model)


def test_a_dynamic_model_passes_at_its_spec_size(tmp_path: Path) -> None:
    tail = [helper.make_node("Identity", ["m"], ["depth"])]
    model = _depth_model(tmp_path / "dyn.onnx", tail, ["n", 1, "h", "w"], json.dumps(_spec_dict()), in_dims=["n", 3, "h", "w"])
    backend = create_backend(model)
    x = np.random.default_rng(0).random((1, 3, H, W), dtype=np.float32)
    np.testing.assert_allclose(backend.infer(x)["depth"], x.mean(axis=1, keepdims=True), rtol=1e-6)


def _pose_model(path: Path, reshape_to: list[int] | None) -> Path:
    nodes = [helper.make_node("ReduceMean", ["image"], ["pose"] if reshape_to is None else ["v"], axes=[2, 3], keepdims=0)]
    inits = []
    if reshape_to is not None:
        nodes.append(helper.make_node("Reshape", ["v", "shape"], ["pose"]))
        inits.append(helper.make_tensor("shape", TensorProto.INT64, [len(reshape_to)], reshape_to))
    graph = helper.make_graph(
        nodes, "pose", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 6, 8, 8])],
        [helper.make_tensor_value_info("pose", TensorProto.FLOAT, reshape_to or [1, 6])], initializer=inits,
    )
    spec = json.dumps({"output_kind": "pose_6dof", "input_height": 8, "input_width": 8, "input_channels": 6,
                       "output_name": "pose", "name": "posenet"})
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path, spec)


@pytest.mark.parametrize("shape", [[2, 3], [1, 1, 6], [6, 1]])
def test_pose_outputs_other_than_1x6_are_refused(tmp_path: Path, shape: list[int]) -> None:
    assert create_backend(_pose_model(tmp_path / "good.onnx", None)).infer(np.zeros((1, 6, 8, 8), np.float32))["pose"].shape == (1, 6)
    with pytest.raises(ModelSpecError, match=rf"output 'pose' has shape \({', '.join(map(str, shape))},?\).*\(1, 6\) or \(6,\)"):
        create_backend(_pose_model(tmp_path / "bad.onnx", shape))


class _Returns:
    """A backend double returning fixed arrays (for the contract check itself)."""

    name = "double"

    def __init__(self, spec: ModelSpec, **outputs: np.ndarray) -> None:
        self.spec, self.outputs, self.calls = spec, outputs, 0

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        assert x.shape == (1, self.spec.input_channels, self.spec.input_height, self.spec.input_width)
        return self.outputs


DEPTH_SPEC = ModelSpec(**_spec_dict())


@pytest.mark.parametrize("shape", [(H, W), (1, H, W), (1, 1, H, W)])
def test_check_output_contract_accepts_leading_singletons_only(shape: tuple[int, ...]) -> None:
    backend = _Returns(DEPTH_SPEC, depth=np.ones(shape, np.float32))
    assert check_output_contract(backend, DEPTH_SPEC)["depth"].shape == shape and backend.calls == 1


@pytest.mark.parametrize("shape", [(W, H), (128, 96), (H // 2, W // 2), (1, H, W, 1), (2, 1, H, W), (H * W,)])
def test_check_output_contract_refuses_other_layouts(shape: tuple[int, ...]) -> None:
    backend = _Returns(DEPTH_SPEC, depth=np.ones(shape, np.float32))
    with pytest.raises(ModelSpecError, match=rf"model 'crafted': output 'depth' has shape {re.escape(str(shape))}"):
        check_output_contract(backend, DEPTH_SPEC)


def test_check_output_contract_refuses_a_missing_or_non_numeric_output() -> None:
    with pytest.raises(ModelSpecError, match=r"no output 'depth' \(output_name in its spec\); it returned \['disp'\]"):
        check_output_contract(_Returns(DEPTH_SPEC, disp=np.ones((H, W), np.float32)), DEPTH_SPEC)
    with pytest.raises(ModelSpecError, match="dtype <U1, expected a number type"):
        check_output_contract(_Returns(DEPTH_SPEC, depth=np.full((H, W), "a")), DEPTH_SPEC)


def test_infer_refuses_a_transposed_output_of_an_already_loaded_backend(tmp_path: Path) -> None:
    # Before: infer compared element counts only, so W x H passed for H x W.
    from depth_ros.bag.infer import InferConfig, infer_bag

    backend = _Returns(DEPTH_SPEC, depth=np.ones((1, 1, W, H), np.float32))
    with pytest.raises(ModelSpecError, match=rf"has shape \(1, 1, {W}, {H}\)"):
        infer_bag(tmp_path / "missing.mcap", tmp_path / "o.mcap", backend, InferConfig())
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_changes_shape_mid_run_is_refused_per_frame() -> None:
    # The load-time check saw the right shape; a later frame must not be decoded as garbage.
    spec = ModelSpec(output_kind="depth_metric", input_height=3, input_width=4, confidence_name="conf")
    camera = CameraModel.from_intrinsics(8, 6, 10.0, 10.0, 3.5, 2.5)
    post = DepthPostprocessor(spec)
    good = np.full((1, 1, 3, 4), 2.0, np.float32)
    assert np.allclose(post({"depth": good, "conf": good * 0.25}, camera).depth_m, 2.0)
    for bad in (np.full((4, 3), 2.0, np.float32), np.full((1, 1, 6, 8), 2.0, np.float32)):
        with pytest.raises(ModelError, match=r"model output 'depth' is \d+x\d+ .*the model's spec says 3x4"):
            post({"depth": bad, "conf": good}, camera)
    with pytest.raises(ModelError, match=r"model output 'conf' is 6x8"):
        post({"depth": good, "conf": np.ones((6, 8), np.float32)}, camera)


def test_depth_ros_infer_refuses_a_transposed_model_in_one_line(tmp_path: Path, cli_bin: Path) -> None:
    from depth_ros.synthetic import SynthConfig, write_bag

    tail, dims, _ = _BAD_TAILS["transposed"]
    model = _depth_model(tmp_path / "transposed.onnx", tail, dims, json.dumps(_spec_dict(name="tr")))
    bag = write_bag(SynthConfig(width=64, height=48, frames=2, texture_size_px=64, lidar_beams=0), tmp_path / "in.mcap")
    proc = run_limited([str(cli_bin / "depth-ros"), "infer", str(bag), "-o", str(tmp_path / "o.mcap"), "--model",
                        str(model), "--no-progress"], as_bytes=TORCH_AS)
    assert_one_line_error(proc, "transposed.onnx", f"(1, 1, {W}, {H})", f"(1, 1, {H}, {W})")
    assert not (tmp_path / "o.mcap").exists()


# -- strictly typed spec fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("metric", "false", "metric must be a boolean"),
        ("metric", 0, "metric must be a boolean"),
        ("metric", None, "metric must be a boolean"),
        ("input_height", 64.0, "input_height must be an integer"),
        ("input_height", True, "input_height must be an integer"),
        ("input_width", "192", "input_width must be an integer"),
        ("input_channels", 3.0, "input_channels must be an integer"),
        ("version", True, "version must be an integer"),
        ("version", 0, "version must be an integer"),
        ("mean", 5, "mean must be 3 finite numbers"),
        ("mean", None, "mean must be 3 finite numbers"),
        ("mean", "abc", "mean must be 3 finite numbers"),
        ("std", [1, 2], "std must be 3 finite numbers"),
        ("std", [1, 2, True], "std must be 3 finite numbers"),
        ("min_depth_m", "0.1", "min_depth_m must be a number"),
        ("max_depth_m", None, "max_depth_m must be a number"),
        ("train_fx_px", "300", "train_fx_px must be a number"),
        ("output_kind", ["depth_metric"], "output_kind must be one of"),
        ("layout", None, "layout must be one of"),
        ("name", 5, "name must be a string"),
        ("output_name", "", "output_name must not be empty"),
        ("confidence_name", 1, "confidence_name must be a string"),
        ("extra", ["a"], "extra must be a mapping"),
        ("extra", {"a": {"b": "c"}}, r"extra\['a'\] must be a string, number or boolean"),
        ("extra", {"a": None}, r"extra\['a'\] must be a string, number or boolean"),
        ("extra", {str(i): "v" for i in range(65)}, "extra has 65 entries; at most 64"),
    ],
)
def test_loosely_typed_fields_are_one_line_spec_errors(field: str, value: Any, message: str) -> None:
    # Before: "false" counted as metric, 64.0 / True as sizes; mean 5 / None raised TypeError.
    text = json.dumps(_spec_dict(**{field: value}))
    with pytest.raises(ModelSpecError, match=message) as err:
        ModelSpec.from_json(text, "m.onnx metadata")
    assert str(err.value).startswith("m.onnx metadata: ") and "\n" not in str(err.value)


def test_metric_false_as_a_string_in_metadata_and_sidecar_names_the_file(tmp_path: Path) -> None:
    tail = [helper.make_node("Identity", ["m"], ["depth"])]
    model = _depth_model(tmp_path / "m.onnx", tail, [1, 1, H, W], json.dumps(_spec_dict(metric="false")))
    with pytest.raises(ModelSpecError, match=r"m\.onnx metadata: metric must be a boolean .*got 'false'"):
        load_model_spec(model)
    (tmp_path / "m.onnx.yaml").write_text("output_kind: disparity_sigmoid\ninput_height: 64\ninput_width: 192\nmetric: 'false'\n")
    with pytest.raises(ModelSpecError, match=r"m\.onnx\.yaml: metric must be a boolean .*got 'false'"):
        load_model_spec(model)
    (tmp_path / "m.onnx.yaml").write_text("output_kind: disparity_sigmoid\ninput_height: 64\ninput_width: 192\nmetric: false\n")
    assert load_model_spec(model).is_metric is False


def test_numpy_numbers_and_integral_floats_in_code_are_normalised() -> None:
    spec = ModelSpec(output_kind="depth_metric", input_height=np.int64(8), input_width=8, min_depth_m=1,
                     mean=[np.float32(0.5), 0.5, 0.5], extra={"epochs": 20, "ok": True})
    assert type(spec.input_height) is int and type(spec.min_depth_m) is float and spec.mean == (0.5, 0.5, 0.5)
    assert spec.extra == {"epochs": "20", "ok": "True"}
    assert ModelSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_height": 16384, "input_width": 16384}, f"input_height must be an integer in 1..{MAX_INPUT_SIDE}"),
        ({"input_height": 4096, "input_width": 4096}, f"at most {MAX_INPUT_PIXELS}"),
        ({"input_width": 10**400}, "an integer of 1329 bits"),
    ],
)
def test_input_sizes_are_bounded(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        ModelSpec(**_spec_dict(**overrides))
    assert ModelSpec(**_spec_dict(input_height=2048, input_width=2048)).input_height == 2048


def test_a_huge_input_size_on_a_dynamic_model_is_refused_before_allocating(tmp_path: Path) -> None:
    # Before: the 16384^2 dry-run input alone was 3.2 GB (MemoryError at 6.5 GB in all).
    tail = [helper.make_node("Identity", ["m"], ["depth"])]
    model = _depth_model(tmp_path / "dyn.onnx", tail, ["n", 1, "h", "w"], None, in_dims=["n", 3, "h", "w"])
    (tmp_path / "dyn.onnx.yaml").write_text("output_kind: depth_metric\ninput_height: 16384\ninput_width: 16384\n")
    proc = run_python(textwrap.dedent(f"""
        from depth_ros.inference.backend import create_backend
        from depth_ros.inference.spec import ModelSpecError
        try:
            create_backend({str(model)!r}, "onnxruntime-cpu")
        except ModelSpecError as exc:
            print("REFUSED:", exc)
    """), as_bytes=SMALL_AS)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "REFUSED:" in proc.stdout and "dyn.onnx.yaml: input_height" in proc.stdout


@pytest.mark.parametrize("field", ["name", "input_name", "output_name", "scale_source", "extra"])
@pytest.mark.parametrize("text", ["bad\nname", "bad\x1b[31mname", "tab\there", "x" * 300])
def test_free_text_is_length_capped_and_printable(field: str, text: str) -> None:
    # Before: a name with ESC reached the terminal; a 200 MB name went into every DepthInfo.
    value: Any = {text: "v"} if field == "extra" else text  # extra keys are capped like names
    with pytest.raises(ModelSpecError) as err:
        ModelSpec.from_json(json.dumps(_spec_dict(**{field: value})), "m.onnx metadata")
    msg = str(err.value)
    assert msg.isprintable() and len(msg) < 400
    assert ("at most" in msg) if len(text) == 300 else ("printable characters only" in msg)


def test_a_huge_metadata_spec_is_refused_without_being_copied(tmp_path: Path) -> None:
    name = "n" * (8 << 20)
    with pytest.raises(ModelSpecError, match=f"at most {MAX_SPEC_BYTES}") as err:
        ModelSpec.from_json(json.dumps(_spec_dict(name=name)), "m.onnx metadata")
    assert len(str(err.value)) < 200


def test_a_unicode_name_is_kept() -> None:
    assert ModelSpec(**_spec_dict(name="Tiefe – V2 (ViT-S) 深度")).name == "Tiefe – V2 (ViT-S) 深度"


def test_unknown_keys_of_mixed_types_are_one_line(tmp_path: Path) -> None:
    # Before: sorting unknown keys of mixed types raised TypeError.
    sidecar = tmp_path / "m.yaml"
    sidecar.write_text("output_kind: depth_metric\ninput_height: 8\ninput_width: 8\n1: a\nnull: b\n")
    with pytest.raises(ModelSpecError, match=r"m\.yaml: keys must be strings, got 1"):
        ModelSpec.from_yaml(sidecar)
    weird = {"output_kind": "depth_metric", "input_height": 8, "input_width": 8, "\x1bbad": 1, "x" * 500: 2}
    with pytest.raises(ModelSpecError, match="unknown keys") as err:
        ModelSpec.from_dict(weird, "ckpt model_spec")
    assert str(err.value).isprintable() and len(str(err.value)) < 600


# -- safe parsing -------------------------------------------------------------------------------

_LAUGHS = "\n".join(
    ["output_kind: depth_metric", "input_height: 8", "input_width: 8", "extra:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"  {chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]" for i in range(8)]
) + "\n"


def test_billion_laughs_in_a_sidecar_is_refused_under_a_memory_limit(tmp_path: Path) -> None:
    # Before: this 1 KB sidecar's `extra` grew to 5.8 GB when turned into strings.
    assert len(_LAUGHS) < 1200
    sidecar = tmp_path / "m.onnx.yaml"
    sidecar.write_text(_LAUGHS)
    (tmp_path / "m.onnx").write_bytes(b"model bytes are not read: the sidecar is refused first")
    proc = run_python(textwrap.dedent(f"""
        from depth_ros.inference.spec import ModelSpecError, load_model_spec
        try:
            load_model_spec({str(tmp_path / "m.onnx")!r})
        except ModelSpecError as exc:
            print("REFUSED:", exc)
    """), as_bytes=SMALL_AS, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "REFUSED:" in proc.stdout and "m.onnx.yaml: YAML aliases (*a) are not accepted" in proc.stdout
    assert "not a usable" not in proc.stdout


def test_a_single_alias_is_refused_but_an_anchor_alone_is_fine(tmp_path: Path) -> None:
    sidecar = tmp_path / "m.yaml"
    sidecar.write_text("output_kind: depth_metric\ninput_height: &h 8\ninput_width: *h\n")
    with pytest.raises(ModelSpecError, match=r"m\.yaml: YAML aliases \(\*h\) are not accepted"):
        ModelSpec.from_yaml(sidecar)
    sidecar.write_text("output_kind: depth_metric\ninput_height: &h 8\ninput_width: 8\n")
    assert ModelSpec.from_yaml(sidecar).input_width == 8


def test_an_oversize_sidecar_is_refused_before_it_is_read(tmp_path: Path) -> None:
    sidecar = tmp_path / "m.yaml"
    with open(sidecar, "wb") as f:
        f.write(b"output_kind: depth_metric\ninput_height: 8\ninput_width: 8\n# ")
        f.truncate(1 << 30)  # sparse: 1 GB that would be read whole before
    proc = run_python(textwrap.dedent(f"""
        from depth_ros.inference.spec import ModelSpec, ModelSpecError
        try:
            ModelSpec.from_yaml({str(sidecar)!r})
        except ModelSpecError as exc:
            print("REFUSED:", exc)
    """), as_bytes=SMALL_AS // 2, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"larger than {MAX_SPEC_BYTES} bytes" in proc.stdout


def test_a_sidecar_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    sidecar = tmp_path / "m.yaml"
    data = b"output_kind: depth_metric\ninput_height: 8\nname: \xff\xfe\n"
    sidecar.write_bytes(data)
    offset = data.index(b"\xff")
    with pytest.raises(ModelSpecError, match=rf"m\.yaml: spec sidecar is not UTF-8 text \(invalid byte at offset {offset}\)"):
        ModelSpec.from_yaml(sidecar)


def test_a_yaml_error_is_one_line_without_the_escape_it_quotes(tmp_path: Path) -> None:
    sidecar = tmp_path / "m.yaml"
    sidecar.write_text("output_kind: depth_metric\ninput_height: [8\nname: \x1b[2J\n")
    with pytest.raises(ModelSpecError, match=r"m\.yaml: not valid YAML") as err:
        ModelSpec.from_yaml(sidecar)
    assert str(err.value).isprintable()


@pytest.mark.parametrize("depth", [20, 5000, 100_000])
def test_deeply_nested_metadata_json_is_refused(depth: int) -> None:
    # Before: json.loads recursed and raised RecursionError.
    text = '{"output_kind": "depth_metric", "input_height": 8, "input_width": 8, "extra": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(ModelSpecError, match="nested more than 8 levels deep" if len(text) <= MAX_SPEC_BYTES else "at most"):
        ModelSpec.from_json(text, "m.onnx metadata")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    spec = ModelSpec.from_json(json.dumps(_spec_dict(name='[[[[[[[[[[[[ "{{{{{{{{{{{{{')))
    assert spec.name.startswith("[[[[")


@pytest.mark.parametrize(
    "deep",
    ["[" * 5000 + "]" * 5000, "\n".join("  " * i + "- " for i in range(150))],
    ids=["flow_5000", "block_150"],
)
def test_deeply_nested_yaml_is_refused(tmp_path: Path, deep: str) -> None:
    # Before: PyYAML's recursive composer raised RecursionError (flow), or the nested list
    # was turned into an `extra` string (block).
    sidecar = tmp_path / "m.yaml"
    sidecar.write_text("output_kind: depth_metric\ninput_height: 8\ninput_width: 8\nextra:\n  k:\n" + textwrap.indent(deep, "    ") + "\n")
    assert sidecar.stat().st_size < MAX_SPEC_BYTES
    with pytest.raises(ModelSpecError, match=r"m\.yaml: spec YAML is nested more than 8 levels deep"):
        ModelSpec.from_yaml(sidecar)


def test_a_5000_digit_integer_is_a_spec_error(tmp_path: Path) -> None:
    # Before: int() past Python's 4300-digit limit raised ValueError, not a YAML/JSON error.
    digits = "9" * 5000
    with pytest.raises(ModelSpecError, match="m.onnx metadata: not valid JSON"):
        ModelSpec.from_json('{"output_kind": "depth_metric", "input_height": ' + digits + ', "input_width": 8}', "m.onnx metadata")
    sidecar = tmp_path / "m.yaml"
    sidecar.write_text(f"output_kind: depth_metric\ninput_height: {digits}\ninput_width: 8\n")
    with pytest.raises(ModelSpecError, match=r"m\.yaml: "):
        ModelSpec.from_yaml(sidecar)


# -- engine cache files -------------------------------------------------------------------------

KEY = EngineKey(onnx_sha256="ab" * 32, trt_version="10.3.0", gpu_name="Fake GPU (sm_87)", precision="fp16",
                input_shape=(1, 3, 8, 12))


def test_an_engine_header_nested_deep_is_a_rebuild_not_a_recursion_error(tmp_path: Path) -> None:
    import struct

    header = ("[" * 30000 + "]" * 30000).encode()
    data = struct.pack("<8sII", b"DRTRTENG", 1, len(header)) + header
    with pytest.raises(EngineCacheError, match="nested more than"):
        decode_engine_file(data, KEY)
    cache = EngineCache(tmp_path)
    cache.path_for(KEY).write_bytes(data)
    lookup = cache.lookup(KEY)
    assert not lookup.hit and lookup.needs_rebuild_warning and "nested" in lookup.reason


def test_an_oversize_timing_cache_is_ignored_unread(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from depth_ros.inference.engine_cache import MAX_TIMING_CACHE_BYTES

    cache = EngineCache(tmp_path)
    path = cache.timing_cache_path(KEY.trt_version, KEY.gpu_name)
    with open(path, "wb") as f:
        f.truncate(MAX_TIMING_CACHE_BYTES + 1)
    with caplog.at_level(logging.WARNING):
        assert cache.read_timing_cache(KEY.trt_version, KEY.gpu_name) == b""
    assert any("larger than" in r.getMessage() for r in caplog.records)
    path.write_bytes(b"timing")
    assert cache.read_timing_cache(KEY.trt_version, KEY.gpu_name) == b"timing"


def test_engine_io_buffers_are_bounded_before_allocation() -> None:
    from depth_ros.inference.tensorrt_backend import MAX_IO_ELEMENTS_PER_PIXEL, EngineLoadError, check_io_buffer_shapes

    spec = ModelSpec(output_kind="depth_metric", input_height=8, input_width=12)
    check_io_buffer_shapes({"image": (1, 3, 8, 12), "depth": (1, 1, 8, 12)}, spec)
    with pytest.raises(EngineLoadError, match="still has a dynamic shape"):
        check_io_buffer_shapes({"image": (1, 3, 8, 12), "depth": (1, 1, -1, 12)}, spec)
    with pytest.raises(EngineLoadError, match=rf"'depth' has shape .* at most {MAX_IO_ELEMENTS_PER_PIXEL * 96}"):
        check_io_buffer_shapes({"image": (1, 3, 8, 12), "depth": (1, 1 << 20, 1 << 20)}, spec)

