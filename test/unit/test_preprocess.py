"""preprocess: resize convention, normalization values, layouts, K rescale, pose pairs."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.preprocess import normalize, preprocess, preprocess_pair, resize_rgb
from depth_ros.inference.spec import ModelSpec

CAM = CameraModel.from_intrinsics(640, 480, 525.0, 520.0, 319.5, 239.5)
SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=192, input_width=640)


def test_upsampling_maps_edges_to_edges():
    # 2 -> 4 px: output centres sit at input x = (x' + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
    # -> values 0 (clamped), 50, 150, 200 (clamped) by linear interpolation of [0, 200].
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 1] = 200
    np.testing.assert_array_equal(resize_rgb(rgb, 4, 1)[0, :, 0], [0, 50, 150, 200])


def test_downsampling_keeps_a_ramp_centred():
    # 16 -> 8 px of value 10 x: output i is centred at input x = 2 i + 0.5, value 20 i + 5
    # (a symmetric normalized filter preserves linear functions away from the borders).
    ramp = np.repeat((np.arange(16) * 10).astype(np.uint8)[None, :, None], 3, axis=2)
    out = resize_rgb(np.repeat(ramp, 4, axis=0), 8, 2)
    np.testing.assert_array_equal(out[:, 1:7, 0], np.broadcast_to(20 * np.arange(1, 7) + 5, (2, 6)))


def test_same_size_is_not_resized():
    rgb = np.zeros((192, 640, 3), np.uint8)
    assert resize_rgb(rgb, 640, 192) is rgb


def test_normalization_hand_values_nchw():
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[...] = (255, 0, 128)
    out = preprocess(rgb, CAM, SPEC)
    assert out.tensor.shape == (1, 3, 192, 640) and out.tensor.dtype == np.float32
    assert out.tensor.flags.c_contiguous
    expected = [(1.0 - 0.45) / 0.225, (0.0 - 0.45) / 0.225, (128 / 255 - 0.45) / 0.225]
    np.testing.assert_allclose(out.tensor[0, :, 100, 300], expected, rtol=1e-6)
    np.testing.assert_allclose(out.tensor[0, 0], expected[0], rtol=1e-6)


def test_bgr_nhwc_and_per_channel_mean_std():
    spec = ModelSpec(output_kind="inverse_depth_relative", input_height=4, input_width=6, layout="NHWC",
                     color_order="bgr", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    cam = CameraModel.from_intrinsics(12, 8, 10.0, 10.0, 5.5, 3.5)
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[...] = (10, 20, 30)
    out = preprocess(rgb, cam, spec)
    assert out.tensor.shape == (1, 4, 6, 3)
    # network channel 0 is blue (30) with mean[0] / std[0], etc.
    expected = [(30 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (10 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(out.tensor[0, 2, 3], expected, rtol=1e-6)


def test_camera_is_rescaled_through_camera_model():
    out = preprocess(np.zeros((480, 640, 3), np.uint8), CAM, SPEC)
    assert out.camera == CAM.resized(640, 192)
    # hand values: fy' = 520 * 0.4 = 208, cy' = (239.5 + 0.5) * 0.4 - 0.5 = 95.5
    assert (out.camera.fx, out.camera.fy, out.camera.cx, out.camera.cy) == pytest.approx((525.0, 208.0, 319.5, 95.5))


def test_pair_stacks_target_then_source():
    spec = ModelSpec(output_kind="pose_6dof", input_height=192, input_width=640, input_channels=6, output_name="pose")
    rng = np.random.default_rng(0)
    tgt = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    src = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out = preprocess_pair(tgt, src, CAM, spec)
    assert out.tensor.shape == (1, 6, 192, 640)
    np.testing.assert_array_equal(out.tensor[:, :3], preprocess(tgt, CAM, SPEC).tensor)
    np.testing.assert_array_equal(out.tensor[:, 3:], preprocess(src, CAM, SPEC).tensor)
    nhwc = ModelSpec(**{**spec.to_dict(), "layout": "NHWC"})
    np.testing.assert_array_equal(preprocess_pair(tgt, src, CAM, nhwc).tensor, out.tensor.transpose(0, 2, 3, 1))


def test_normalize_writes_into_a_given_array():
    out = np.zeros((1, 6, 2, 2), np.float32)
    normalize(np.full((2, 2, 3), 255, np.uint8), SPEC, out, channel_offset=3)
    assert not out[:, :3].any()
    np.testing.assert_allclose(out[:, 3:], (1.0 - 0.45) / 0.225, rtol=1e-6)


@pytest.mark.parametrize(
    "rgb, fragment",
    [
        (np.zeros((480, 640, 3), np.float32), r"must be \(H, W, 3\) uint8"),
        (np.zeros((480, 640), np.uint8), r"must be \(H, W, 3\) uint8"),
        (np.zeros((240, 320, 3), np.uint8), "rgb is 320x240 but the camera is 640x480"),
    ],
)
def test_bad_images(rgb, fragment):
    with pytest.raises(ValueError, match=fragment):
        preprocess(rgb, CAM, SPEC)


def test_channel_count_must_fit_the_function():
    pose = ModelSpec(output_kind="pose_6dof", input_height=192, input_width=640, input_channels=6)
    rgb = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="use preprocess_pair"):
        preprocess(rgb, CAM, pose)
    with pytest.raises(ValueError, match="makes 6-channel input; this model takes 3"):
        preprocess_pair(rgb, rgb, CAM, SPEC)
