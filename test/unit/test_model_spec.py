"""ModelSpec: validation, serialisation, sidecar and ONNX metadata loading."""
from pathlib import Path

import pytest

from depth_ros.inference.spec import METADATA_KEY, ModelSpec, ModelSpecError, load_model_spec


def make_spec(**overrides) -> ModelSpec:
    args = {"output_kind": "disparity_sigmoid", "input_height": 192, "input_width": 640}
    args.update(overrides)
    return ModelSpec(**args)


def test_json_round_trip_keeps_every_field() -> None:
    spec = make_spec(metric=True, scale_source="velocity_supervision", train_fx_px=300.5, extra={"a": "b"})
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_max_batch_is_written_only_above_one() -> None:
    assert "max_batch" not in make_spec().to_dict()  # an unbatched spec reads as before the field
    batched = make_spec(max_batch=4)
    assert batched.to_dict()["max_batch"] == 4
    assert ModelSpec.from_json(batched.to_json()) == batched


def test_yaml_round_trip(tmp_path: Path) -> None:
    spec = make_spec(output_kind="inverse_depth_relative", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    spec.to_yaml(tmp_path / "m.yaml")
    assert ModelSpec.from_yaml(tmp_path / "m.yaml") == spec


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"output_kind": "depth_magic"}, "output_kind must be one of"),
        ({"input_height": 0}, "input_height"),
        ({"input_width": 1.5}, "input_width"),
        ({"layout": "CHW"}, "layout"),
        ({"color_order": "yuv"}, "color_order"),
        ({"std": (1.0, 0.0, 1.0)}, "std must be positive"),
        ({"mean": (1.0, 2.0)}, "mean must be 3"),
        ({"min_depth_m": 5.0, "max_depth_m": 1.0}, "min_depth_m < max_depth_m"),
        ({"output_kind": "pose_6dof"}, "take 6 input channels"),
        ({"version": 99}, "newer"),
        ({"max_batch": 0}, r"max_batch must be an integer in 1..64, got 0"),
        ({"max_batch": 65}, r"max_batch must be an integer in 1..64"),
        ({"max_batch": "4"}, r"max_batch must be an integer"),
        ({"max_batch": True}, r"max_batch must be an integer"),
    ],
)
def test_invalid_specs_say_what_is_wrong(overrides: dict, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        make_spec(**overrides)


def test_from_dict_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(ModelSpecError, match=r"unknown keys \['inptu_width'\]"):
        ModelSpec.from_dict({"output_kind": "depth_metric", "input_height": 1, "input_width": 1, "inptu_width": 3})
    with pytest.raises(ModelSpecError, match=r"missing required keys \['input_width'\]"):
        ModelSpec.from_dict({"output_kind": "depth_metric", "input_height": 1})
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        ModelSpec.from_json("{nope")


def test_metric_flags() -> None:
    assert make_spec(output_kind="depth_metric").is_metric
    assert make_spec(output_kind="canonical_inverse_depth").is_metric
    assert not make_spec().is_metric
    assert make_spec(metric=True).is_metric
    assert not make_spec(output_kind="pose_6dof", input_channels=6).is_depth


def test_sidecar_wins_and_missing_spec_is_explained(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["depth"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    model = helper.make_model(graph)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelSpecError, match=f"no '{METADATA_KEY}'"):
        load_model_spec(path)

    embedded = make_spec(input_height=4, input_width=4, name="embedded")
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, embedded.to_json()
    onnx.save(model, str(path))
    assert load_model_spec(path) == embedded

    sidecar = make_spec(input_height=4, input_width=4, name="sidecar")
    sidecar.to_yaml(tmp_path / "m.onnx.yaml")
    assert load_model_spec(path).name == "sidecar"


def test_unreadable_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelSpecError, match="not a readable ONNX file"):
        load_model_spec(bad)
    with pytest.raises(FileNotFoundError):
        load_model_spec(tmp_path / "missing.onnx")


# -- the training camera (spec version 2) ------------------------------------------------------
_V1_SIDECAR = """\
output_kind: depth_metric
input_height: 128
input_width: 384
metric: true
train_fx_px: 200.0
version: 1
name: old
"""


def test_version_1_spec_loads_with_the_new_camera_fields_unknown(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(_V1_SIDECAR)
    spec = ModelSpec.from_yaml(path)
    assert spec.version == 1 and spec.train_fx_px == 200.0
    assert (spec.train_fy_px, spec.train_image_width_px, spec.train_image_height_px) == (None, None, None)
    assert spec.train_aspect == pytest.approx(384 / 128)  # unknown: the network input's own aspect


def test_training_camera_round_trips_and_gives_the_trained_aspect() -> None:
    spec = make_spec(train_fx_px=250.0, train_fy_px=125.0, train_image_width_px=640, train_image_height_px=480)
    assert spec.version == 2
    back = ModelSpec.from_json(spec.to_json())
    assert back == spec and back.train_fy_px == 125.0
    assert back.train_aspect == pytest.approx(4 / 3)  # not the 640x192 input's 10:3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train_fy_px": -1.0}, "train_fy_px must be a positive number"),
        ({"train_fy_px": "300"}, "train_fy_px must be a number"),
        ({"train_image_width_px": 640}, "go together"),
        ({"train_image_width_px": 0, "train_image_height_px": 480}, "train_image_width_px must be an integer"),
    ],
)
def test_bad_training_camera_is_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        make_spec(**overrides)
