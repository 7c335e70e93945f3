"""Pre- and post-processing inside the graph (spec input_format uint8_camera): the contract, the
fused graph against the numpy path, the frame pipeline on held-out synthetic scenes, the backends."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.preprocess import normalize, preprocess, resize_rgb
from depth_ros.errors import InputError, ModelError
from depth_ros.inference.contract import (
    TensorInfo,
    accepted_output_shapes,
    check_input_array,
    check_model_io,
    spec_input_dtype,
    spec_input_shape,
    spec_output_size,
)
from depth_ros.inference.fused_io import FusedIOConfig, fuse_io, fused_spec, output_agreement
from depth_ros.inference.onnx_export import export_fused_onnx
from depth_ros.inference.spec import ModelSpec, ModelSpecError, load_model_spec

# The network sees 160x64; it was trained on 640x256 images (aspect 2.5). The camera is 320x240
# (4:3): crop keeps a 320x128 band (rows 56..183) and halves it; stretch squashes 3.75x vertically.
NET_H, NET_W, CAM_W, CAM_H = 64, 160, 320, 240
SPEC = ModelSpec(
    output_kind="disparity_sigmoid", input_height=NET_H, input_width=NET_W, metric=True, min_depth_m=0.5,
    max_depth_m=20.0, scale_source="velocity_supervision", train_image_width_px=640, train_image_height_px=256,
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), name="fused-test",
)


def _fused(**overrides: object) -> ModelSpec:
    values = dict(input_format="uint8_camera", fused_width_px=CAM_W, fused_height_px=CAM_H)
    return dataclasses.replace(SPEC, **{**values, **overrides})


@pytest.fixture(scope="module")
def unfused_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_nets import export_sigmoid_convnet

    return export_sigmoid_convnet(tmp_path_factory.mktemp("fused") / "depth.onnx", SPEC, channels=(8, 8), kernel=5, seed=3)


@pytest.fixture(scope="module")
def fused_models(unfused_model: Path) -> dict[str, Path]:
    """crop (rgb, output at network size), stretch (bgr, output at camera size) and pad (rgb,
    output at camera size: the canvas, whose bands the runtime cuts off)."""
    configs = {
        "crop_rgb": FusedIOConfig(CAM_W, CAM_H),
        "pad_rgb_camera_out": FusedIOConfig(CAM_W, CAM_H, "rgb", "pad", output_at_camera_resolution=True),
        "stretch_bgr_camera_out": FusedIOConfig(CAM_W, CAM_H, "bgr", "stretch", output_at_camera_resolution=True),
    }
    return {k: export_fused_onnx(unfused_model, unfused_model.with_name(f"{k}.onnx"), c) for k, c in configs.items()}


def _scenes(seed: int = 8117, frames: int = 3) -> list:
    """Held-out frames: a seed and scene no other test renders, 320x240."""
    from depth_ros.synthetic import SynthConfig, render_sequence

    config = SynthConfig(width=CAM_W, height=CAM_H, seed=seed, scene="room", frames=frames, trajectory="orbit")
    return list(render_sequence(config))


# -- the contract ------------------------------------------------------------------------------


def test_an_unfused_spec_serialises_without_the_fused_keys_and_old_specs_load() -> None:
    data = SPEC.to_dict()
    assert not {"input_format", "fused_width_px", "output_at_camera_resolution"} & set(data)
    assert ModelSpec.from_dict(data) == SPEC and not SPEC.fused  # a spec of before fused IO: unfused
    fused = _fused(fused_color_order="bgr", output_at_camera_resolution=True)
    back = ModelSpec.from_json(fused.to_json())
    assert back == fused and back.fused and json.loads(fused.to_json())["input_format"] == "uint8_camera"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"input_format": "uint8_camera"}, "needs fused_width_px"),
    ({"fused_width_px": 320}, "apply only to input_format 'uint8_camera'"),
    ({"output_at_camera_resolution": True}, "apply only to input_format 'uint8_camera'"),
    ({"input_format": "uint8_camera", "fused_width_px": 320, "fused_height_px": 240, "fused_aspect": "fill"}, "fused_aspect"),
    ({"input_format": "uint8_camera", "fused_width_px": 0, "fused_height_px": 240}, "fused_width_px"),
    ({"input_format": "rgb8"}, "input_format must be one of"),
])
def test_spec_refuses_an_incomplete_or_misplaced_fused_input(overrides: dict, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        ModelSpec.from_dict({**SPEC.to_dict(), **overrides})


def test_a_depth_output_at_camera_resolution_is_refused_for_metric_depth() -> None:
    with pytest.raises(ModelSpecError, match="affine in inverse depth"):
        _fused(output_kind="depth_metric", output_at_camera_resolution=True)


def test_contract_shapes_of_a_fused_spec() -> None:
    crop = _fused(fused_aspect="crop", output_at_camera_resolution=True)
    assert spec_input_shape(crop) == (1, CAM_H, CAM_W, 3) and spec_input_dtype(crop) == "uint8"
    assert spec_output_size(crop) == (128, 320)  # the crop band, in camera pixels
    assert spec_output_size(_fused(output_at_camera_resolution=True)) == (CAM_H, CAM_W)  # stretch: all of it
    assert spec_output_size(_fused()) == (NET_H, NET_W)
    assert (1, 1, 128, 320) in accepted_output_shapes(crop) and (1, 1, NET_H, NET_W) not in accepted_output_shapes(crop)
    with pytest.raises(InputError, match="must be uint8"):
        check_input_array(np.zeros((1, CAM_H, CAM_W, 3), np.float32), crop)
    with pytest.raises(ModelError, match="input_format is 'uint8_camera'|input_format 'uint8_camera'"):
        check_model_io([TensorInfo("image", (1, CAM_H, CAM_W, 3), "float32")], ["depth"], crop, "m.onnx")
    with pytest.raises(ModelError, match="float32 or float16"):
        check_model_io([TensorInfo("image", (1, 3, NET_H, NET_W), "uint8")], ["depth"], SPEC, "m.onnx")


# -- the graph ---------------------------------------------------------------------------------


def _identity_model(spec: ModelSpec):  # noqa: ANN202 - an onnx.ModelProto
    """A 'network' returning its normalised input as output 'depth' (opset 20)."""
    from onnx import TensorProto, helper

    shape = list(spec_input_shape(spec))
    graph = helper.make_graph(
        [helper.make_node("Identity", [spec.input_name], ["depth"])], "identity",
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


@pytest.mark.parametrize("aspect", ["crop", "pad", "stretch"])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_the_graph_resizes_and_normalises_like_the_numpy_path(aspect: str, order: str) -> None:
    import onnxruntime as ort

    rgb = _scenes(frames=1)[0].rgb
    camera = CameraModel.from_fov(CAM_W, CAM_H, 80.0)
    model, spec = fuse_io(_identity_model(SPEC), SPEC, FusedIOConfig(CAM_W, CAM_H, order, aspect))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = rgb if order == "rgb" else np.ascontiguousarray(rgb[..., ::-1])
    got = session.run(None, {"image": image[None]})[0]
    want = preprocess(rgb, camera, SPEC, aspect).tensor
    assert got.shape == want.shape == (1, 3, NET_H, NET_W)
    # Pillow rounds its resized image to uint8 (the graph keeps floats): within one grey level
    err = np.abs(got - want)
    grey = 1.0 / (255.0 * min(SPEC.std))
    assert float(err.max()) < 1.01 * grey and float(np.median(err)) < 0.4 * grey
    # against plain bilinear (no antialias) the shrink aliases: the filter matters
    plain, _ = fuse_io(_identity_model(SPEC), SPEC, FusedIOConfig(CAM_W, CAM_H, order, aspect, antialias=False))
    aliased = ort.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": image[None]})[0]
    assert float(np.mean(np.abs(aliased - want))) > 2 * float(np.mean(err))
    assert spec.fused_color_order == order and spec.fused_aspect == aspect


def test_an_nhwc_network_gets_an_nhwc_input() -> None:
    import onnxruntime as ort

    nhwc = dataclasses.replace(SPEC, layout="NHWC")
    model, _ = fuse_io(_identity_model(nhwc), nhwc, FusedIOConfig(CAM_W, CAM_H, aspect="stretch"))
    rgb = _scenes(frames=1)[0].rgb
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": rgb[None]})[0]
    want = preprocess(rgb, CameraModel.from_fov(CAM_W, CAM_H, 80.0), nhwc, "stretch").tensor
    assert got.shape == want.shape == (1, NET_H, NET_W, 3)
    assert float(np.abs(got - want).max()) < 1.01 / (255.0 * min(SPEC.std))


def test_depth_and_confidence_come_back_at_the_window_size() -> None:
    """Both outputs the spec names are resized in the graph as the runtime's upsample would."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from depth_ros.core.postprocess import upsample

    spec = dataclasses.replace(SPEC, confidence_name="confidence")
    shape = list(spec_input_shape(spec))
    maps = [1, 1, NET_H, NET_W]
    nodes = [helper.make_node("ReduceMean", ["image"], ["depth"], axes=[1], keepdims=1),
             helper.make_node("ReduceMax", ["image"], ["raw"], axes=[1], keepdims=1),
             helper.make_node("Sigmoid", ["depth"], ["confidence"])]  # reads an output: renamed with it
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, maps) for n in ("depth", "confidence")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    fused, _ = fuse_io(model, spec, FusedIOConfig(CAM_W, CAM_H, output_at_camera_resolution=True))
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rgb = _scenes(frames=1)[0].rgb
    x = preprocess(rgb, CameraModel.from_fov(CAM_W, CAM_H, 80.0), spec, "crop").tensor
    want_depth, want_conf = plain.run(["depth", "confidence"], {"image": x})
    got_depth, got_conf = ort.InferenceSession(fused.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["depth", "confidence"], {"image": rgb[None]})
    assert got_depth.shape == got_conf.shape == (1, 1, 128, CAM_W)  # the crop band in camera pixels
    np.testing.assert_allclose(got_depth[0, 0], upsample(want_depth[0, 0], CAM_W, 128), atol=0.02)
    np.testing.assert_allclose(got_conf[0, 0], upsample(want_conf[0, 0], CAM_W, 128), atol=0.01)
    assert output_agreement(got_depth, upsample(want_depth[0, 0], CAM_W, 128)) < 0.01


def test_a_bgr_graph_reorders_channels_for_an_rgb_network() -> None:
    import onnxruntime as ort

    model, _ = fuse_io(_identity_model(SPEC), SPEC, FusedIOConfig(NET_W, NET_H, "bgr", "stretch"))
    image = np.zeros((1, NET_H, NET_W, 3), np.uint8)
    image[..., 0] = 255  # blue in a bgr image
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": image})[0]
    blue = normalize(np.broadcast_to(np.array([0, 0, 255], np.uint8), (NET_H, NET_W, 3)), SPEC)
    np.testing.assert_allclose(got, blue, atol=1e-5)


def test_fusing_refuses_an_old_opset_and_a_fused_or_pose_spec() -> None:
    model = _identity_model(SPEC)
    model.opset_import[0].version = 12
    with pytest.raises(ModelError, match="opset 12; fused IO needs opset >= 13"):
        fuse_io(model, SPEC, FusedIOConfig(CAM_W, CAM_H))
    with pytest.raises(ModelSpecError, match="already has its pre-processing"):
        fused_spec(_fused(), FusedIOConfig(CAM_W, CAM_H))
    pose = ModelSpec(output_kind="pose_6dof", input_height=NET_H, input_width=NET_W, input_channels=6)
    with pytest.raises(ModelSpecError, match="3-channel depth models"):
        fused_spec(pose, FusedIOConfig(CAM_W, CAM_H))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"camera_width_px": 0, "camera_height_px": 240}, "camera_width_px"),
    ({"camera_width_px": 320, "camera_height_px": 240, "aspect": "fill"}, "aspect must be one of"),
    ({"camera_width_px": 320, "camera_height_px": 240, "color_order": "mono"}, "color_order"),
])
def test_fused_io_config_is_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FusedIOConfig(**kwargs)


def test_camera_size_text_is_parsed() -> None:
    assert FusedIOConfig.parse_size("640x480") == (640, 480)
    for bad in ("640", "640x", "x480", "-1x4", "640x480x3"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            FusedIOConfig.parse_size(bad)


# -- the runtime ---------------------------------------------------------------------------------


def _pipeline(path: Path, aspect: str = "crop"):  # noqa: ANN202
    from depth_ros.inference.backend import create_backend
    from depth_ros.pipeline import FrameConfig, FramePipeline

    return FramePipeline(create_backend(path, "onnxruntime-cpu", threads=1), FrameConfig(aspect=aspect))


def _depth_agreement(fused: Path, unfused: Path, aspect: str) -> list[float]:
    """Median relative depth difference per held-out frame, fused vs the numpy path."""
    a, b = _pipeline(fused, aspect), _pipeline(unfused, aspect)
    out = []
    for frame in _scenes():
        got = a.run(frame.rgb, frame.camera).depth_m
        want = b.run(frame.rgb, frame.camera).depth_m
        assert np.array_equal(np.isfinite(got), np.isfinite(want))  # the same pixels have depth (crop bands NaN)
        keep = np.isfinite(want)
        out.append(float(np.median(np.abs(got[keep] - want[keep]) / want[keep])))
    return out


@pytest.mark.parametrize(("name", "aspect"), [("crop_rgb", "crop"), ("stretch_bgr_camera_out", "stretch"),
                                              ("pad_rgb_camera_out", "pad")])
def test_fused_depth_agrees_with_the_numpy_path_on_held_out_scenes(fused_models: dict, unfused_model: Path,
                                                                   name: str, aspect: str) -> None:
    agreement = _depth_agreement(fused_models[name], unfused_model, aspect)
    print(f"{name}: median relative depth difference per frame {[f'{v:.2e}' for v in agreement]}")
    assert max(agreement) < 0.01  # the target: 1 %


def test_the_fused_pipeline_feeds_the_camera_image_and_resizes_nothing(fused_models: dict, monkeypatch) -> None:
    import depth_ros.core.postprocess as post
    import depth_ros.core.preprocess as pre

    pipe = _pipeline(fused_models["stretch_bgr_camera_out"], "stretch")
    assert pipe.backend.session.get_inputs()[0].type == "tensor(uint8)"
    frame = _scenes(frames=1)[0]
    tensor = pipe.preprocess(frame.rgb, frame.camera)
    assert tensor.dtype == np.uint8 and tensor.shape == (1, CAM_H, CAM_W, 3)
    np.testing.assert_array_equal(tensor[0], frame.rgb[..., ::-1])  # bgr, as exported
    calls: list[str] = []
    monkeypatch.setattr(pre, "resize_rgb", lambda *a: calls.append("resize_rgb") or resize_rgb(*a))
    real_upsample = post.upsample
    monkeypatch.setattr(post, "upsample", lambda x, w, h: calls.append(f"upsample {x.shape}") or real_upsample(x, w, h))
    result = pipe.run(frame.rgb, frame.camera)
    assert result.depth_m.shape == (CAM_H, CAM_W) and result.valid_fraction == 1.0
    assert calls == [f"upsample {(CAM_H, CAM_W)}"]  # only the no-op at the same size: nothing resized


def test_a_fused_crop_model_keeps_its_crop_under_another_aspect_policy(fused_models: dict, caplog) -> None:
    with caplog.at_level("WARNING", logger="depth_ros.pipeline"):
        pipe = _pipeline(fused_models["crop_rgb"], "stretch")  # the graph's crop wins over config.aspect
    assert [r.message for r in caplog.records if "aspect policy 'stretch' is not applied" in r.message]
    caplog.clear()
    with caplog.at_level("WARNING", logger="depth_ros.pipeline"):
        _pipeline(fused_models["crop_rgb"], "crop")
    assert not [r for r in caplog.records if "is not applied" in r.message]
    frame = _scenes(frames=1)[0]
    depth = pipe.run(frame.rgb, frame.camera).depth_m
    rows = np.isfinite(depth).any(axis=1)
    assert not rows[:56].any() and rows[56:184].all() and not rows[184:].any()


def test_a_frame_of_another_size_is_refused_in_one_line(fused_models: dict) -> None:
    from depth_ros.pipeline import FrameRefused

    pipe = _pipeline(fused_models["crop_rgb"])
    camera = CameraModel.from_fov(640, 480, 80.0)
    with pytest.raises(FrameRefused) as info:
        pipe.preprocess(np.zeros((480, 640, 3), np.uint8), camera)
    text = str(info.value)
    assert info.value.reason == "preprocess" and "\n" not in text
    assert "640x480" in text and "320x240" in text and "fused-test" in text


def test_onnxruntime_backend_takes_uint8_and_refuses_floats(fused_models: dict) -> None:
    from depth_ros.inference.backend import create_backend

    backend = create_backend(fused_models["stretch_bgr_camera_out"], "onnxruntime-cpu", threads=1)
    out = backend.infer(np.full((1, CAM_H, CAM_W, 3), 128, np.uint8))
    assert out["depth"].shape == (1, 1, CAM_H, CAM_W)
    with pytest.raises(InputError, match="must be uint8"):
        backend.infer(np.zeros((1, CAM_H, CAM_W, 3), np.float32))
    assert load_model_spec(fused_models["stretch_bgr_camera_out"]).output_at_camera_resolution


def test_export_refuses_a_fused_model_that_disagrees(unfused_model: Path, tmp_path: Path, monkeypatch) -> None:
    import depth_ros.inference.fused_io as fio

    real = fio.fuse_io

    def mislabelled(model, spec, config):  # noqa: ANN001, ANN202 - an rgb graph whose spec says bgr
        fused, new_spec = real(model, spec, config)
        return fused, dataclasses.replace(new_spec, fused_color_order="bgr")

    monkeypatch.setattr(fio, "fuse_io", mislabelled)
    with pytest.raises(ModelError, match="differs from the numpy pre-processing path"):
        export_fused_onnx(unfused_model, tmp_path / "bad.onnx", FusedIOConfig(CAM_W, CAM_H, aspect="stretch"), check_rtol=1e-3)
    assert not (tmp_path / "bad.onnx").exists()


def test_output_agreement_is_the_median_relative_difference() -> None:
    ref = np.array([[1.0, 2.0, 4.0, 0.0]])
    assert output_agreement(ref * np.array([[1.0, 1.1, 1.0, 1.0]]), ref) == pytest.approx(0.0)
    assert output_agreement(ref * np.array([[1.1, 1.1, 1.0, 5.0]]), ref) == pytest.approx(0.1)


# -- TensorRT logic (no GPU needed) ----------------------------------------------------------------


def test_tensorrt_buffer_limit_counts_the_camera_pixels_of_a_fused_model() -> None:
    from depth_ros.inference.tensorrt_backend import EngineLoadError, check_io_buffer_shapes

    big = _fused(fused_width_px=1920, fused_height_px=1080)
    check_io_buffer_shapes({"image": (1, 1080, 1920, 3), "depth": (1, 1, NET_H, NET_W)}, big)
    with pytest.raises(EngineLoadError):  # the same input under the unfused spec's network-size bound
        check_io_buffer_shapes({"image": (1, 1080, 1920, 3)}, SPEC)


def test_tensorrt_binds_a_uint8_input_as_torch_uint8() -> None:
    import torch

    from depth_ros.inference.tensorrt_backend import _torch_dtype

    kinds = SimpleNamespace(FLOAT=0, HALF=1, INT32=2, INT8=3, BOOL=4, UINT8=5)
    assert _torch_dtype(torch, SimpleNamespace(DataType=kinds), kinds.UINT8) is torch.uint8
