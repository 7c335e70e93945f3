"""Lens distortion (depth_ros/core/distortion.py): the models against hand-computed values, round
trips, rectification of images and depth labels, and clear refusals."""
from __future__ import annotations

import math

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.distortion import (
    DistortionError,
    Rectifier,
    check_distortion,
    distort_pixels,
    is_distorted,
    undistort_pixels,
)

K = np.array([[200.0, 0.0, 79.5], [0.0, 210.0, 59.5], [0.0, 0.0, 1.0]])
W, H = 160, 120

CAMERAS = {
    "plumb_bob": CameraModel(W, H, K, np.array([-0.28, 0.07, 1e-3, -5e-4, 0.0]), "plumb_bob"),
    "rational_polynomial": CameraModel(W, H, K, np.array([-0.2, 0.05, 1e-3, 1e-3, 0.01, 0.02, -0.01, 0.005]), "rational_polynomial"),
    "equidistant": CameraModel(W, H, K, np.array([0.05, -0.01, 0.003, -0.001]), "equidistant"),
}


def _grid(step: int = 7) -> np.ndarray:
    u, v = np.meshgrid(np.arange(5, W - 5, step, dtype=np.float64), np.arange(5, H - 5, step, dtype=np.float64))
    return np.stack([u.ravel(), v.ravel()], axis=1)


def test_plumb_bob_forward_model_by_hand():
    k1, k2, p1, p2 = -0.28, 0.07, 1e-3, -5e-4
    cam = CameraModel(W, H, K, np.array([k1, k2, p1, p2, 0.0]), "plumb_bob")
    x, y = 0.3, -0.2
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    uv = np.array([[K[0, 0] * x + K[0, 2], K[1, 1] * y + K[1, 2]]])
    got = distort_pixels(uv, cam)
    assert got[0] == pytest.approx([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]], abs=1e-9)


def test_equidistant_forward_model_by_hand():
    k = np.array([0.05, -0.01, 0.003, -0.001])
    cam = CameraModel(W, H, K, k, "equidistant")
    x, y = 0.4, 0.1
    r = math.hypot(x, y)
    th = math.atan(r)
    thd = th * (1 + k[0] * th**2 + k[1] * th**4 + k[2] * th**6 + k[3] * th**8)
    uv = np.array([[K[0, 0] * x + K[0, 2], K[1, 1] * y + K[1, 2]]])
    got = distort_pixels(uv, cam)
    assert got[0] == pytest.approx([K[0, 0] * x * thd / r + K[0, 2], K[1, 1] * y * thd / r + K[1, 2]], abs=1e-9)


@pytest.mark.parametrize("model", list(CAMERAS))
def test_undistort_inverts_distort(model):
    cam = CAMERAS[model]
    uv = _grid()
    back = distort_pixels(undistort_pixels(uv, cam), cam)
    assert np.abs(back - uv).max() < 1e-6
    new_K = K.copy()
    new_K[:2] *= 0.8  # a rectified camera with another focal length: same rays
    back = distort_pixels(undistort_pixels(uv, cam, new_K), cam, new_K)
    assert np.abs(back - uv).max() < 1e-6


def _pattern(h: int, w: int) -> np.ndarray:
    """A smooth image (bilinear sampling errors stay small) with structure everywhere."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 127.5 + 60 * np.sin(u / 6.0) * np.cos(v / 7.0) + 40 * np.sin((u + v) / 11.0)
    return np.stack([img, 255 - img, np.roll(img, 9, axis=1)], axis=-1).astype(np.float32)


def _bilinear(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    u, v = uv[:, 0], uv[:, 1]
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    a, b = (u - u0)[:, None], (v - v0)[:, None]
    u0, v0 = np.clip(u0, 0, img.shape[1] - 2), np.clip(v0, 0, img.shape[0] - 2)
    return (img[v0, u0] * (1 - a) * (1 - b) + img[v0, u0 + 1] * a * (1 - b) + img[v0 + 1, u0] * (1 - a) * b + img[v0 + 1, u0 + 1] * a * b)


@pytest.mark.parametrize("model", list(CAMERAS))
def test_rectify_image_recovers_the_pinhole_image(model):
    """Make the distorted image of a known pinhole image (each distorted pixel samples the pinhole
    image where its ray lands), rectify it: the pinhole image comes back, up to bilinear blur."""
    cam = CAMERAS[model]
    pinhole = _pattern(H, W)
    v, u = np.mgrid[0:H, 0:W]
    uv_d = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
    distorted = _bilinear(pinhole, undistort_pixels(uv_d, cam)).reshape(H, W, 3).astype(np.float32)
    rect = Rectifier(cam)
    out = rect.rectify_image(distorted)
    assert out.shape == distorted.shape and out.dtype == np.float32
    inner = (slice(20, H - 20), slice(25, W - 25))  # away from the black border
    err = np.abs(out[inner] - pinhole[inner]).mean()
    before = np.abs(distorted[inner] - pinhole[inner]).mean()
    assert err < 0.5, err  # grey levels of 255 (measured 0.18)
    assert before > 8 * err, (before, err)  # the distortion was large, and it is gone
    assert rect.rectified.D.size == 0 and np.allclose(rect.rectified.K, K)


def test_rectify_uint8_image_and_borders():
    cam = CAMERAS["plumb_bob"]  # barrel: the rectified corners look outside the image
    img = np.full((H, W, 3), 200, np.uint8)
    out = Rectifier(cam).rectify_image(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert out[H // 2, W // 2].tolist() == [200, 200, 200]
    new_K = K.copy()
    new_K[:2, :2] *= 0.5  # a wider rectified view reaches past the sensor: black there
    wide = Rectifier(cam, new_K=new_K).rectify_image(img)
    assert wide[0, 0].tolist() == [0, 0, 0] and wide[H // 2, W // 2].tolist() == [200, 200, 200]


def test_rectify_depth_is_nearest_and_keeps_invalid():
    cam = CAMERAS["plumb_bob"]
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 9.0, (H, W)).astype(np.float32)
    depth[::5, ::3] = np.nan
    out = Rectifier(cam).rectify_depth(depth)
    finite = out[np.isfinite(out)]
    assert finite.size > 0.8 * out.size
    assert np.isin(finite, depth[np.isfinite(depth)]).all()  # copied, never blended
    # the rectified pixel carries the value of the distorted pixel its ray comes from
    src = Rectifier(cam).source_pixels()
    r, c = 60, 40
    su, sv = np.rint(src[r, c]).astype(int)
    assert out[r, c] == depth[sv, su] or (np.isnan(out[r, c]) and np.isnan(depth[sv, su]))


def test_undistorted_camera_is_an_identity():
    cam = CameraModel(W, H, K, np.zeros(5), "plumb_bob")
    rect = Rectifier(cam)
    img = _pattern(H, W)
    assert rect.identity and rect.rectify_image(img) is img
    assert not is_distorted(cam)
    assert np.allclose(undistort_pixels(_grid(), cam), _grid())


def test_refusals_name_the_problem():
    with pytest.raises(DistortionError, match=r"'fov'.*not supported.*plumb_bob, rational_polynomial, equidistant"):
        check_distortion(CameraModel(W, H, K, np.array([0.1]), "fov"))
    with pytest.raises(DistortionError, match=r"'equidistant' takes 4 coefficients, got 5"):
        Rectifier(CameraModel(W, H, K, np.array([0.1, 0, 0, 0, 0]), "equidistant"))
    with pytest.raises(DistortionError, match="non-finite"):
        check_distortion(CameraModel(W, H, K, np.array([np.nan, 0, 0, 0, 0]), "plumb_bob"))
    check_distortion(CameraModel(W, H, K, np.zeros(3), "fov"))  # all zero: nothing to rectify
    with pytest.raises(DistortionError, match="not a rotation"):
        Rectifier(CAMERAS["plumb_bob"], R=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(Exception, match=r"image is 10x10, the camera 160x120"):
        Rectifier(CAMERAS["plumb_bob"]).rectify_image(np.zeros((10, 10, 3), np.uint8))
    Ry = np.array([[math.cos(0.1), 0, math.sin(0.1)], [0, 1, 0], [-math.sin(0.1), 0, math.cos(0.1)]])
    with pytest.raises(DistortionError, match="rotating R"):
        Rectifier(CAMERAS["plumb_bob"], R=Ry).rectify_depth(np.ones((H, W), np.float32))
