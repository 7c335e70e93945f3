"""Camera and model agree, or the user is told (issue 18 item 2): aspect policy and focal ratio.

A 4:3 camera on a 3:1 model: ``crop`` (default) publishes depth registered with the image and
NaN bands, ``pad`` depth everywhere, ``stretch`` warns once. A metric model on a camera with
twice the training focal length gives twice the depth (scale_source ``model_focal``); a spec
without a training focal length warns once. No ROS.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from depth_ros.core.aspect import aspect_window
from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import make_cloud
from depth_ros.core.preprocess import preprocess
from depth_ros.core.scale import focal_ratio
from depth_ros.inference.spec import ModelSpec
from depth_ros.pipeline import FrameConfig, FramePipeline

NET_H, NET_W = 64, 192  # 3:1
CAM = CameraModel.from_intrinsics(320, 240, 250.0, 250.0, 159.5, 119.5)  # 4:3


def depth_of_pixel(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The scene's depth (m) at camera pixel (u, v): a smooth ramp, what the image encodes."""
    return 2.0 + u / 160.0 + v / 80.0


def encoded_image(camera: CameraModel) -> np.ndarray:
    """(H, W, 3) uint8: red = 20 * depth_of_pixel (a ramp of 20..180, exact in uint8 to 1/20 m)."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    red = np.round(20.0 * depth_of_pixel(u, v))
    rgb = np.zeros((camera.height, camera.width, 3), np.uint8)
    rgb[..., 0] = red
    return rgb


class DecodingBackend:
    """depth_metric double that reads the depth the image encodes back from its input: so the
    published depth is registered with the image exactly when the pipeline's geometry is."""

    name = "decoder"

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        assert x.shape == (1, 3, NET_H, NET_W)
        red = (x[0, 0] * self.spec.std[0] + self.spec.mean[0]) * 255.0  # undo normalize
        return {"depth": (red / 20.0)[None, None].astype(np.float32)}


class ConstantBackend:
    name = "constant"

    def __init__(self, spec: ModelSpec, depth_m: float) -> None:
        self.spec, self.depth_m = spec, depth_m

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"depth": np.full((1, 1, NET_H, NET_W), self.depth_m, np.float32)}


def metric_spec(**overrides) -> ModelSpec:
    """A metric 3:1 model trained on 576x192 images (a recorded trained aspect of 3)."""
    args = dict(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="m31", metric=True,
                max_depth_m=50.0, train_image_width_px=576, train_image_height_px=192)
    args.update(overrides)
    return ModelSpec(**args)


def pipeline(backend, **config) -> FramePipeline:
    return FramePipeline(backend, FrameConfig(max_range_m=50.0, **config), contract_checked=True)


# -- the window ------------------------------------------------------------------------------
def test_aspect_window_centres_a_crop_and_a_pad_of_the_trained_aspect() -> None:
    crop = aspect_window(640, 480, 3.0, "crop")
    assert (crop.x0, crop.y0, crop.width, crop.height) == (0, 133, 640, 213)  # 640 / 3 = 213.3 rows, centred
    pad = aspect_window(640, 480, 3.0, "pad")
    assert (pad.x0, pad.y0, pad.width, pad.height) == (-400, 0, 1440, 480)  # 480 * 3 columns
    tall = aspect_window(480, 640, 0.5, "crop")  # an image wider than the trained aspect: columns dropped
    assert (tall.x0, tall.y0, tall.width, tall.height) == (80, 0, 320, 640)
    assert aspect_window(640, 480, 3.0, "stretch").is_full
    assert aspect_window(641, 480, 4 / 3, "crop").is_full  # within 1 %: no column lost to rounding


def test_window_camera_and_paste_invert_each_other() -> None:
    crop = aspect_window(CAM.width, CAM.height, 3.0, "crop")
    cam = crop.camera(CAM)
    assert (cam.width, cam.height, cam.fx, cam.cx, cam.cy) == (320, 107, 250.0, 159.5, 119.5 - crop.y0)
    window = np.arange(crop.width * crop.height, dtype=np.float32).reshape(crop.height, crop.width)
    full = crop.paste(window)
    assert np.isnan(full[:crop.y0]).all() and np.isnan(full[crop.y0 + crop.height:]).all()
    assert np.array_equal(full[crop.y0:crop.y0 + crop.height], window)
    pad = aspect_window(CAM.width, CAM.height, 3.0, "pad")
    padded = pad.camera(CAM)
    assert (padded.width, padded.cx) == (720, 159.5 + 200)
    image = encoded_image(CAM)
    canvas = pad.take(image, np.array([1, 2, 3], np.uint8))
    assert canvas.shape == (240, 720, 3) and (canvas[:, :200] == [1, 2, 3]).all()
    assert np.array_equal(pad.paste(canvas[..., 0].astype(np.float32)), image[..., 0].astype(np.float32))


def test_preprocess_crop_sees_the_centre_band_at_the_network_size() -> None:
    spec = metric_spec()
    pre = preprocess(encoded_image(CAM), CAM, spec, "crop")
    # the window's camera resized: 320 -> 192 columns (0.6), 107 -> 64 rows
    assert pre.camera.size == (NET_W, NET_H)
    assert pre.camera.fx == pytest.approx(250.0 * 0.6) and pre.camera.fy == pytest.approx(250.0 * 64 / 107)
    stretched = preprocess(encoded_image(CAM), CAM, spec)  # default: stretch, as training feeds it
    assert stretched.camera.fy == pytest.approx(250.0 * 64 / 240) and stretched.window.is_full


def test_pad_bands_are_the_mean_colour_zero_after_normalisation() -> None:
    spec = metric_spec(color_order="bgr", mean=(0.2, 0.4, 0.6), std=(0.25, 0.25, 0.25))
    pre = preprocess(encoded_image(CAM), CAM, spec, "pad")
    left_band = pre.tensor[0, :, :, :20]  # 200 of 720 canvas columns -> 53 of 192 network columns
    assert np.abs(left_band).max() < 1.0 / 255 / 0.25 + 1e-6  # the uint8 rounding of the mean only
    assert pre.camera.cx == pytest.approx((CAM.cx + 200 + 0.5) * NET_W / 720 - 0.5)


# -- the frame pipeline ----------------------------------------------------------------------
def test_crop_publishes_registered_depth_with_nan_bands_and_the_cloud_only_in_the_band() -> None:
    pipe = pipeline(DecodingBackend(metric_spec()))
    image = encoded_image(CAM)
    result = pipe.run(image, CAM)
    window = aspect_window(CAM.width, CAM.height, 3.0, "crop")
    depth = result.depth_m
    assert depth.shape == (CAM.height, CAM.width)
    band = slice(window.y0, window.y0 + window.height)
    assert np.isnan(depth[:window.y0]).all() and np.isnan(depth[window.y0 + window.height:]).all()
    inner = depth[band][2:-2, 2:-2]  # away from the resize's edge clamping
    v, u = np.mgrid[0:CAM.height, 0:CAM.width].astype(np.float64)
    truth = depth_of_pixel(u, v)[band][2:-2, 2:-2]
    assert np.isfinite(inner).all()
    assert np.abs(inner - truth).max() < 0.03  # the depth of the pixel itself (uint8 step 0.05 m) ...
    assert abs(float(np.mean(inner - truth))) < 0.003  # ... on average: one row off is a bias of 1/80 m
    assert result.valid_fraction == pytest.approx(window.height / CAM.height)
    cloud = make_cloud(depth, CAM)
    finite_rows = np.nonzero(np.isfinite(cloud["z"]).any(axis=1))[0]
    assert (finite_rows.min(), finite_rows.max()) == (window.y0, window.y0 + window.height - 1)
    r, c = window.y0 + 40, 250  # back-projection through the full camera's K is exact
    z = float(depth[r, c])
    assert (cloud["x"][r, c], cloud["y"][r, c]) == pytest.approx(((c - CAM.cx) * z / CAM.fx, (r - CAM.cy) * z / CAM.fy), rel=1e-5)


def test_pad_gives_every_pixel_its_registered_depth() -> None:
    result = pipeline(DecodingBackend(metric_spec()), aspect="pad").run(encoded_image(CAM), CAM)
    assert np.isfinite(result.depth_m).all() and result.valid_fraction == 1.0
    v, u = np.mgrid[0:CAM.height, 0:CAM.width].astype(np.float64)
    err = np.abs(result.depth_m - depth_of_pixel(u, v))
    assert err[:, 8:-8].max() < 0.1  # registered; the outer columns' resize footprint reaches the pad colour
    assert np.median(err) < 0.02


def test_stretch_warns_once_naming_both_aspects(caplog: pytest.LogCaptureFixture) -> None:
    pipe = pipeline(DecodingBackend(metric_spec()), aspect="stretch")
    with caplog.at_level(logging.WARNING, logger="depth_ros.pipeline"):
        for _ in range(3):
            result = pipe.run(encoded_image(CAM), CAM)
    warnings = [r.getMessage() for r in caplog.records if "stretched" in r.getMessage()]
    assert len(warnings) == 1
    assert "320x240 (aspect 1.333)" in warnings[0] and "model 'm31' (trained aspect 3)" in warnings[0] and "2.25x" in warnings[0]
    assert np.isfinite(result.depth_m).all()  # today's behaviour: every pixel, squashed geometry


def test_crop_to_the_recorded_training_aspect_not_the_input_aspect() -> None:
    # trained on 4:3 images squashed to the 3:1 input: the 4:3 camera is fed the same way, whole
    spec = metric_spec(train_image_width_px=640, train_image_height_px=480)
    result = pipeline(ConstantBackend(spec, 4.0)).run(encoded_image(CAM), CAM)
    assert result.valid_fraction == 1.0


def test_a_spec_without_training_image_size_is_stretched_as_before_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    spec = metric_spec(train_image_width_px=None, train_image_height_px=None)  # version 1 / third-party sidecar
    pipe = pipeline(DecodingBackend(spec))
    with caplog.at_level(logging.WARNING, logger="depth_ros.pipeline"):
        for _ in range(2):
            result = pipe.run(encoded_image(CAM), CAM)
    said = [r.getMessage() for r in caplog.records if "records no training image size" in r.getMessage()]
    assert len(said) == 1 and "320x240 (aspect 1.333)" in said[0] and "not cropped" in said[0]
    assert result.valid_fraction == 1.0  # nothing cropped: the trained aspect is unknown


def test_metric_model_on_twice_the_training_focal_is_corrected_by_the_factor(caplog: pytest.LogCaptureFixture) -> None:
    # trained through the same crop on a 250 px camera: 150 px at the network input (x), 149.5 (y)
    train_cam = aspect_window(CAM.width, CAM.height, 3.0, "crop").camera(CAM).resized(NET_W, NET_H)
    spec = metric_spec(train_fx_px=train_cam.fx, train_fy_px=train_cam.fy)
    same = pipeline(ConstantBackend(spec, 4.0)).run(encoded_image(CAM), CAM)
    assert (same.scale, same.scale_source) == (1.0, "model")
    long_lens = CameraModel.from_intrinsics(320, 240, 500.0, 500.0, 159.5, 119.5)
    assert focal_ratio(spec, aspect_window(320, 240, 3.0, "crop").camera(long_lens)) == pytest.approx((2.0, 2.0))
    pipe = pipeline(ConstantBackend(spec, 4.0))
    with caplog.at_level(logging.WARNING, logger="depth_ros.pipeline"):
        result = pipe.run(encoded_image(long_lens), long_lens)
        pipe.run(encoded_image(long_lens), long_lens)
    assert result.scale == pytest.approx(2.0) and result.scale_source == "model_focal"
    assert np.nanmax(np.abs(result.depth_m - 8.0)) < 1e-5  # 4 m as predicted, 8 m with the focal ratio
    assert pipe.depth_info_fields(result)["scale_source"] == "model_focal"
    said = [r.getMessage() for r in caplog.records if "focal ratio" in r.getMessage()]
    assert len(said) == 1 and "2" in said[0].split("focal ratio")[1]


def test_canonical_inverse_depth_is_never_focal_corrected() -> None:
    spec = metric_spec(output_kind="canonical_inverse_depth", train_fx_px=75.0)
    long_lens = CameraModel.from_intrinsics(320, 240, 500.0, 500.0, 159.5, 119.5)
    result = pipeline(ConstantBackend(spec, 0.5)).run(encoded_image(long_lens), long_lens)
    assert (result.scale, result.scale_source) == (1.0, "canonical_focal")
    # its formula f_px / (W_px w) with the cropped window's focal and width: 500 / (320 * 0.5)
    assert np.nanmedian(result.depth_m) == pytest.approx(500.0 / (320 * 0.5), rel=1e-5)


def test_metric_spec_without_training_focal_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    pipe = pipeline(ConstantBackend(metric_spec(), 4.0))
    other = CameraModel.from_intrinsics(320, 240, 500.0, 500.0, 159.5, 119.5)
    with caplog.at_level(logging.WARNING, logger="depth_ros.pipeline"):
        for camera in (CAM, CAM, other, CAM):
            result = pipe.run(encoded_image(camera), camera)
    said = [r.getMessage() for r in caplog.records if "no training focal length" in r.getMessage()]
    assert len(said) == 2  # once per camera (its focal at the network input is named), never per frame
    assert "fx 150 px" in said[0] and "fx 300 px" in said[1]
    assert (result.scale, result.scale_source) == (1.0, "model")
    assert np.nanmax(np.abs(result.depth_m - 4.0)) < 1e-5


def test_relative_model_gets_no_focal_warning(caplog: pytest.LogCaptureFixture) -> None:
    spec = metric_spec(output_kind="inverse_depth_relative", metric=False)
    with caplog.at_level(logging.WARNING, logger="depth_ros.pipeline"):
        pipeline(ConstantBackend(spec, 0.5), scale_policy="fixed", scale_fixed=2.0).run(encoded_image(CAM), CAM)
    assert not [r for r in caplog.records if "focal" in r.getMessage()]


def test_camera_text_names_the_window_the_model_sees() -> None:
    pipe = pipeline(ConstantBackend(metric_spec(), 4.0))
    pipe.run(encoded_image(CAM), CAM)
    assert pipe.camera_text() == "320x240 fx 250 fy 250 px; the model sees a 320x107 crop"
    pipe.update_config(FrameConfig(max_range_m=50.0, aspect="stretch"))
    assert pipe.camera_text() == "320x240 fx 250 fy 250 px"
