"""The focal-length fallback of the frame path (depth_ros.core.focal_fallback, FramePipeline.decode_frame
and postprocess, depth-ros infer): a frame with an unusable CameraInfo gets the camera of the model's
predicted field of view, never in place of a valid one."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.focal_fallback import (
    PredictedCamera,
    UncalibratedCamera,
    camera_from_fov_output,
    fov_output_name,
    unusable_intrinsics,
)
from depth_ros.errors import BagError, InputError
from depth_ros.inference.spec import ModelSpec
from depth_ros.pipeline import FrameConfig, FramePipeline, FrameRefused
from test_bag_support import camera_info_msg, image_msg
from tiny_nets import export_tiny_pro, tiny_pro_spec

H, W = 48, 64  # camera
NET_H, NET_W = 24, 32  # network input (the camera's 4:3 aspect)


def _spec(fov: bool = True) -> ModelSpec:
    return tiny_pro_spec(NET_H, NET_W, fov)  # type: ignore[return-value]


def _export(path: Path, fov: bool = True) -> Path:
    return export_tiny_pro(path, NET_H, NET_W, fov)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("fov_models")
    return {"fov": _export(tmp / "fov.onnx"), "plain": _export(tmp / "plain.onnx", fov=False)}


def _pipeline(path: Path, **config: Any) -> FramePipeline:
    from depth_ros.inference.backend import create_backend

    return FramePipeline(create_backend(path, backend="onnxruntime"), FrameConfig(max_range_m=1000.0, **config))


def _rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _info(k: list[float] | None = None, fx: float = 50.0) -> Any:
    return camera_info_msg(0, CameraModel.from_intrinsics(W, H, fx, fx, (W - 1) / 2, (H - 1) / 2), k=k)


def _frame(pipeline: FramePipeline, rgb: np.ndarray, info: Any) -> Any:
    image, camera = pipeline.decode_frame(image_msg(0, rgb), info, compressed=False)
    return pipeline.run(image, camera)


# -- the pure parts ------------------------------------------------------------------------------
@pytest.mark.parametrize("k, reason", [
    (None, "no camera_info"),
    ([0.0] * 9, "all zeros"),
    ([float("nan"), 0, 32, 0, 50, 24, 0, 0, 1], "non-finite"),
    ([-50.0, 0, 32, 0, 50, 24, 0, 0, 1], "not positive"),
    ([50.0, 0, 32, 0, 0.0, 24, 0, 0, 1], "not positive"),
    ([1.0, 2.0], "2 entries"),
])
def test_unusable_intrinsics_names_why(k: list[float] | None, reason: str) -> None:
    info = None if k is None else SimpleNamespace(k=k)
    assert reason in str(unusable_intrinsics(info))


def test_usable_intrinsics_are_not_touched() -> None:
    assert unusable_intrinsics(_info()) is None


def test_camera_from_fov_is_the_focal_formula_on_the_window_width() -> None:
    cam = UncalibratedCamera.of_size(W, H, "why")
    got = camera_from_fov_output({"fov_deg": np.array([90.0], np.float32)}, "fov_deg", cam, W)
    assert isinstance(got, PredictedCamera) and got.fov_deg == 90.0 and got.reason == "why"
    assert got.fx == pytest.approx(W / 2) and got.fy == got.fx and (got.cx, got.cy) == ((W - 1) / 2, (H - 1) / 2)
    crop = camera_from_fov_output({"fov_deg": np.array([60.0])}, "fov_deg", cam, 40)  # a 40 px wide crop window
    assert crop.fx == pytest.approx(20.0 / math.tan(math.radians(30.0)))
    for bad, match in ((np.array([np.nan]), "not a field of view"), (np.array([180.0]), "not a field of view"),
                       (np.array([60.0, 70.0]), "one field of view")):
        with pytest.raises(InputError, match=match):
            camera_from_fov_output({"fov_deg": bad}, "fov_deg", cam, W)
    with pytest.raises(InputError, match="no output 'fov_deg'"):
        camera_from_fov_output({"depth": np.ones(1)}, "fov_deg", cam, W)


def test_fov_output_name_reads_the_spec() -> None:
    assert fov_output_name(_spec()) == "fov_deg" and fov_output_name(_spec(fov=False)) is None


# -- the frame path on a real two-output model ------------------------------------------------------
def test_fallback_depth_equals_depth_with_the_predicted_focal_in_camera_info(models: dict[str, Path]) -> None:
    """K all zeros -> the predicted camera; the same frame with a CameraInfo whose K is that camera
    gives the same depth, and the DepthInfo scale_source says which one was used."""
    import onnxruntime as ort

    from depth_ros.core.preprocess import preprocess

    pipeline = _pipeline(models["fov"])
    rgb = _rgb()
    fallback = _frame(pipeline, rgb, _info(k=[0.0] * 9))
    # the predicted field of view, straight from ONNX Runtime on the same network input
    tensor = preprocess(rgb, CameraModel.from_fov(W, H, 90.0), _spec()).tensor
    fov = float(ort.InferenceSession(str(models["fov"])).run(["fov_deg"], {_spec().input_name: tensor})[0][0])
    assert 50.0 < fov < 110.0
    f = (W / 2) / math.tan(math.radians(fov) / 2)
    assert isinstance(fallback.camera, PredictedCamera)
    assert fallback.camera.fx == pytest.approx(f, rel=1e-5) and fallback.camera.fy == fallback.camera.fx
    assert fallback.scale_source == "canonical_focal_predicted"
    assert pipeline.depth_info_fields(fallback)["scale_source"] == "canonical_focal_predicted"

    calibrated = _frame(_pipeline(models["fov"]), rgb, _info(k=list(fallback.camera.K.reshape(-1))))
    assert calibrated.scale_source == "canonical_focal" and not isinstance(calibrated.camera, PredictedCamera)
    np.testing.assert_allclose(fallback.depth_m, calibrated.depth_m, rtol=1e-6)
    assert np.isfinite(fallback.depth_m).mean() > 0.99
    # and the cloud is made through the predicted camera
    cloud = pipeline.cloud(fallback)
    assert cloud is not None
    u = W - 1
    x = float(cloud["x"][H // 2, u])
    assert x == pytest.approx((u - (W - 1) / 2) / f * float(fallback.depth_m[H // 2, u]), rel=1e-4)


def test_a_valid_camera_info_is_always_used_over_the_prediction(models: dict[str, Path]) -> None:
    pipeline = _pipeline(models["fov"])
    rgb = _rgb()
    result = _frame(pipeline, rgb, _info(fx=100.0))
    assert result.camera.fx == 100.0 and not isinstance(result.camera, PredictedCamera)
    assert result.scale_source == "canonical_focal"
    predicted = _frame(_pipeline(models["fov"]), rgb, _info(k=[0.0] * 9))
    # depth follows fx: f_px / (W * C), so the two differ by 100 / f_pred
    ratio = result.depth_m / predicted.depth_m
    np.testing.assert_allclose(ratio[np.isfinite(ratio)], 100.0 / predicted.camera.fx, rtol=1e-5)


def test_without_a_fov_output_an_unusable_camera_info_is_refused_as_before(models: dict[str, Path]) -> None:
    pipeline = _pipeline(models["plain"])
    assert pipeline.fov_output is None
    with pytest.raises(FrameRefused, match="K is all zeros") as err:
        pipeline.decode_frame(image_msg(0, _rgb()), _info(k=[0.0] * 9), compressed=False)
    assert err.value.reason == "bad_camera_info"


def test_warned_once_and_no_camera_change_between_predicted_frames(models: dict[str, Path],
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    pipeline = _pipeline(models["fov"])
    with caplog.at_level(logging.WARNING, logger="depth_ros.pipeline"):
        first = _frame(pipeline, _rgb(0), None)
        second = _frame(pipeline, _rgb(1), _info(k=[0.0] * 9))
    assert first.camera.fx != second.camera.fx  # one prediction per frame
    assert second.camera_change == ""
    warnings = [r.getMessage() for r in caplog.records if "predicts" in r.getMessage()]
    assert len(warnings) == 1 and "no camera_info" in warnings[0] and "canonical_focal" not in warnings[0]


def test_a_camera_info_size_other_than_the_image_is_still_refused(models: dict[str, Path]) -> None:
    info = camera_info_msg(0, CameraModel.from_intrinsics(W * 2, H * 2, 50, 50, W, H), k=[0.0] * 9)
    with pytest.raises(FrameRefused, match="camera_info says 128x96") as err:
        _pipeline(models["fov"]).decode_frame(image_msg(0, _rgb()), info, compressed=False)
    assert err.value.reason == "size_mismatch"


def test_a_broken_fov_output_refuses_the_frame() -> None:
    class Broken:
        spec = _spec()
        name = "broken"
        output_names = ["depth", "fov_deg"]

        def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
            return {"depth": np.ones((1, 1, NET_H, NET_W), np.float32), "fov_deg": np.array([np.nan], np.float32)}

    pipeline = FramePipeline(Broken(), FrameConfig(), contract_checked=True)
    with pytest.raises(FrameRefused, match="not a field of view") as err:
        _frame(pipeline, _rgb(), None)
    assert err.value.reason == "non_finite_output"


# -- depth-ros infer ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from depth_ros.synthetic import SynthConfig
    from depth_ros.synthetic.bagio import TOPICS, write_bag

    tmp = tmp_path_factory.mktemp("fov_bags")
    cfg = SynthConfig(width=W, height=H, frames=3, texture_size_px=32, lidar_beams=0, object_mask=False, hfov_deg=70.0)
    no_info = [t for t in TOPICS if t in ("/camera/image_raw", "/odom", "/tf_static")]
    return {"info": write_bag(cfg, tmp / "info.mcap"), "no_info": write_bag(cfg, tmp / "no_info.mcap", topics=no_info)}


def test_infer_a_bag_without_camera_info_runs_on_the_predicted_camera(models: dict[str, Path], bags: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    from depth_ros import msgconv
    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros.bag.reader import BagReader

    summary = infer_bag(bags["no_info"], tmp_path / "out.mcap", models["fov"], InferConfig(scale="model"))
    assert summary.frames_out == 3 and summary.scale_sources == {"canonical_focal_predicted": 3}
    assert summary.camera_info_topic == "" and "no camera_info (predicted camera)" in summary.format()
    with BagReader(tmp_path / "out.mcap") as reader:
        infos = [reader.deserialize(m) for m in reader.messages(["/camera/depth/camera_info"])]
        depth_infos = [reader.deserialize(m) for m in reader.messages(["/camera/depth/info"])]
    cam = msgconv.camera_info_to_model(infos[0])
    assert 50.0 < cam.hfov_deg < 110.0 and cam.fx == cam.fy
    assert {str(d.scale_source) for d in depth_infos} == {"canonical_focal_predicted"}

    calibrated = infer_bag(bags["info"], tmp_path / "cal.mcap", models["fov"], InferConfig(scale="model"))
    assert calibrated.scale_sources == {"canonical_focal": 3}  # the bag's camera_info wins


def test_infer_a_bag_without_camera_info_needs_a_fov_model_and_no_lidar(models: dict[str, Path], bags: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    from depth_ros.bag.infer import InferConfig, infer_bag

    with pytest.raises(BagError, match="no CameraInfo topic"):
        infer_bag(bags["no_info"], tmp_path / "a.mcap", models["plain"], InferConfig(scale="model"))
    with pytest.raises(BagError, match="no CameraInfo topic, and --lidar-topic needs the camera's intrinsics"):
        infer_bag(bags["no_info"], tmp_path / "b.mcap", models["fov"],
                  InferConfig(scale="model", lidar_topic="/lidar/points"))
