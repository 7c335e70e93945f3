"""scale: robust alignment recovers known scales, ground plane, temporal tracking, config checks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import depth_to_xyz
from depth_ros.core.scale import (
    MetricScaler,
    ScaleConfig,
    ScaleEstimate,
    ScaleTracker,
    ScaleUnavailableError,
    fit_ground_plane,
    fit_scale,
    fit_scale_shift,
    validate_scale_policy,
)
from depth_ros.errors import InputError
from depth_ros.inference.spec import ModelSpec, ModelSpecError

CAM = CameraModel.from_intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5)
RELATIVE_DISP = ModelSpec(output_kind="disparity_sigmoid", input_height=192, input_width=640)
MIDAS = ModelSpec(output_kind="inverse_depth_relative", input_height=384, input_width=384)


def _with_outliers(rng, values, fraction=0.2, low=0.3, high=50.0):
    values = values.copy()
    bad = rng.random(values.shape) < fraction
    values[bad] = rng.uniform(low, high, bad.sum())
    return values, bad


# -- sparse alignment ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_fit_scale_recovers_scale_with_20_percent_outliers(seed):
    rng = np.random.default_rng(seed)
    true_scale = 3.7
    depth_m = rng.uniform(0.5, 30.0, 400)
    depth_rel = depth_m / true_scale
    noisy = depth_m * (1.0 + rng.normal(0.0, 0.01, depth_m.shape))
    target, bad = _with_outliers(rng, noisy)
    scale, inliers = fit_scale(depth_rel, target)
    assert scale == pytest.approx(true_scale, rel=0.01)
    assert inliers[~bad].mean() > 0.95 and inliers[bad].mean() < 0.2  # most gross outliers rejected


@pytest.mark.parametrize("seed", range(5))
def test_fit_scale_shift_recovers_affine_inverse_depth_with_20_percent_outliers(seed):
    rng = np.random.default_rng(seed)
    s_true, t_true = 2.5, 0.2  # inverse depth (1/m) = s x + t
    x = rng.uniform(0.02, 1.0, 600)
    inv_m = (s_true * x + t_true) * (1.0 + rng.normal(0.0, 0.01, x.shape))
    inv_m, _ = _with_outliers(rng, inv_m, low=0.05, high=3.0)
    s, t, inliers = fit_scale_shift(x, inv_m, rng=np.random.default_rng(seed))
    assert s == pytest.approx(s_true, rel=0.01)
    assert t == pytest.approx(t_true, rel=0.01)
    assert 0.75 < inliers.mean() < 0.85


def test_fit_scale_shift_is_exact_without_noise():
    x = np.linspace(0.1, 1.0, 50)
    s, t, inliers = fit_scale_shift(x, 0.7 * x + 0.05)
    assert (s, t) == pytest.approx((0.7, 0.05), rel=1e-9) and inliers.all()


def _lidar_scene(rng, n=800):
    """A slanted plane seen by CAM and sparse metric points on it (with 20% outliers)."""
    v, u = np.mgrid[0:480, 0:640]
    inv_true = (0.25 + 0.0006 * v + 0.0002 * u).astype(np.float32)  # 1/z affine in (u, v): a plane
    depth_true = 1.0 / inv_true
    idx = rng.choice(480 * 640, n, replace=False)
    pts = depth_to_xyz(depth_true, CAM).reshape(-1, 3)[idx].astype(np.float64)
    pts *= (1.0 + rng.normal(0.0, 0.01, n))[:, None]  # range noise along the ray
    bad = rng.random(n) < 0.2
    pts[bad] *= rng.uniform(0.3, 3.0, bad.sum())[:, None]
    return inv_true, pts.astype(np.float32)


def test_metric_scaler_sparse_scale_mode():
    rng = np.random.default_rng(7)
    inv_true, pts = _lidar_scene(rng)
    scaler = MetricScaler(ScaleConfig(policy="sparse_alignment", sparse_mode="scale"), RELATIVE_DISP)
    est = scaler(inv_true * 4.0, CAM, pts)  # network inverse depth 4x too large: depth_m = 4 / x
    assert est.scale == pytest.approx(4.0, rel=0.01)
    assert (est.shift, est.source, est.affine) == (0.0, "sparse_alignment", False)
    assert 500 < est.support < 800


def test_metric_scaler_sparse_scale_shift_auto_for_relative_inverse_depth():
    rng = np.random.default_rng(8)
    inv_true, pts = _lidar_scene(rng)
    x = (inv_true - 0.1) / 0.5  # true inverse depth = 0.5 x + 0.1
    scaler = MetricScaler(ScaleConfig(policy="sparse_alignment"), MIDAS)
    assert scaler.sparse_mode == "scale_shift"
    est = scaler(x, CAM, pts)
    assert est.scale == pytest.approx(0.5, rel=0.01) and est.shift == pytest.approx(0.1, rel=0.01)
    assert est.affine and est.source == "sparse_alignment"


def test_points_behind_or_outside_the_camera_are_ignored():
    scaler = MetricScaler(ScaleConfig(policy="sparse_alignment", min_support=2), RELATIVE_DISP)
    x = np.full((480, 640), 0.5, np.float32)  # unscaled depth 2
    pts = np.array([[0, 0, 6.0], [0.1, 0, 6.0], [0, 0, -6.0], [100.0, 0, 1.0], [np.nan, 0, 1.0]], np.float32)
    est = scaler(x, CAM, pts)
    assert est.scale == pytest.approx(3.0) and est.support == 2


# -- ground plane -------------------------------------------------------------------------
def _ground_scene(pitch_deg: float, height_m: float = 1.5, wall_m: float = 6.0, noise: float = 0.01, seed: int = 0):
    """True depth of a floor ``height_m`` below the camera and a wall ahead, camera pitched down."""
    th = math.radians(pitch_deg)
    g = np.array([0.0, math.cos(th), math.sin(th)])  # gravity in the optical frame
    fwd = np.array([0.0, -math.sin(th), math.cos(th)])  # horizontal forward
    rays = CAM.pixel_rays().astype(np.float64)
    with np.errstate(divide="ignore"):
        t_floor = np.where(rays @ g > 1e-9, height_m / (rays @ g), np.inf)
        t_wall = np.where(rays @ fwd > 1e-9, wall_m / (rays @ fwd), np.inf)
    depth = np.minimum(t_floor, t_wall)  # rays have z = 1: t is z
    rng = np.random.default_rng(seed)
    depth *= 1.0 + rng.normal(0.0, noise, depth.shape)
    return depth.astype(np.float32), tuple(g)


@pytest.mark.parametrize("pitch_deg", [0.0, 12.0])
def test_ground_plane_recovers_scale_within_2_percent(pitch_deg):
    depth_true, g = _ground_scene(pitch_deg)
    cfg = ScaleConfig(policy="ground_plane", camera_height_m=1.5, gravity_cam=g)
    est = MetricScaler(cfg, RELATIVE_DISP)(2.5 / depth_true, CAM)  # unscaled depth = true / 2.5
    assert est.scale == pytest.approx(2.5, rel=0.02)
    assert est.source == "ground_plane" and est.support > 1000


def test_a_wall_is_not_taken_for_the_ground():
    depth_wall = np.full((480, 640), 6.0, np.float32)  # looking at a wall, no floor in view
    cfg = ScaleConfig(policy="ground_plane", camera_height_m=1.5, max_tilt_deg=20.0)
    with pytest.raises(ScaleUnavailableError, match="no ground plane within 20.0 deg of gravity"):
        MetricScaler(cfg, RELATIVE_DISP)(1.0 / depth_wall, CAM)


def test_fit_ground_plane_hand_plane():
    rng = np.random.default_rng(3)
    xz = rng.uniform(-3, 3, (300, 2))
    pts = np.stack([xz[:, 0], np.full(300, 0.8), np.abs(xz[:, 1]) + 1.0], axis=1)  # y = 0.8 below the camera
    n, h, inliers = fit_ground_plane(pts, np.array([0.0, 1.0, 0.0]), 30.0, 0.02)
    np.testing.assert_allclose(n, [0.0, 1.0, 0.0], atol=1e-9)
    assert h == pytest.approx(0.8) and inliers.all()
    _, h_above, _ = fit_ground_plane(pts * [1, -1, 1], np.array([0.0, 1.0, 0.0]), 30.0, 0.02)  # a ceiling
    assert math.isnan(h_above)


# -- temporal tracking --------------------------------------------------------------------
def _tracker(**kwargs):
    return ScaleTracker(ScaleConfig(policy="sparse_alignment", **kwargs), "sparse_alignment")


def test_tracker_smooths_in_log_scale():
    tr = _tracker(smoothing=0.5)
    assert tr.update(ScaleEstimate(2.0), 1.0, 30, "").scale == 2.0
    est = tr.update(ScaleEstimate(2.2), 1.0, 40, "")
    assert est.scale == pytest.approx(math.sqrt(2.0 * 2.2)) and est.support == 40


def test_tracker_smooths_scale_and_shift_linearly():
    tr = _tracker(smoothing=0.25)
    tr.update(ScaleEstimate(1.0, 0.1, affine=True), 1.0, 30, "")
    est = tr.update(ScaleEstimate(1.2, 0.2, affine=True), 1.0, 30, "")
    assert (est.scale, est.shift) == pytest.approx((1.05, 0.125))


def test_tracker_rejects_jumps_until_they_persist():
    tr = _tracker(max_jump_ratio=1.5, max_rejected_jumps=3, smoothing=0.5)
    tr.update(ScaleEstimate(2.0), 1.0, 30, "")
    first = tr.update(ScaleEstimate(4.0), 1.0, 31, "")
    second = tr.update(ScaleEstimate(4.0), 1.0, 32, "")
    assert (first.scale, first.source, first.support) == (2.0, "sparse_alignment_held", 31)
    assert second.scale == 2.0
    third = tr.update(ScaleEstimate(4.0), 1.0, 33, "")  # third in a row: the change is real
    assert (third.scale, third.source) == (4.0, "sparse_alignment")


def test_tracker_holds_last_good_scale_for_a_bounded_time():
    tr = _tracker(max_hold_frames=2)
    with pytest.raises(ScaleUnavailableError, match="no metric scale for this frame: 3 inliers"):
        tr.update(None, math.nan, 3, "3 inliers of 5 sparse points in view, need 20")
    tr.update(ScaleEstimate(1.7), 1.0, 30, "")
    for _ in range(2):
        held = tr.update(None, math.nan, 4, "few points")
        assert (held.scale, held.source, held.support) == (1.7, "sparse_alignment_held", 4)
    with pytest.raises(InputError, match="last good scale is 2 frames old"):
        tr.update(None, math.nan, 4, "few points")


def test_scaler_without_points_uses_the_tracker():
    scaler = MetricScaler(ScaleConfig(policy="sparse_alignment"), RELATIVE_DISP)
    with pytest.raises(ScaleUnavailableError, match="no sparse points"):
        scaler(np.ones((480, 640), np.float32), CAM, None)


# -- fixed policies and validation --------------------------------------------------------
def test_simple_policies():
    x = np.ones((480, 640), np.float32)
    assert MetricScaler(ScaleConfig(policy="none"), RELATIVE_DISP)(x, CAM) == ScaleEstimate(1.0, source="none")
    assert MetricScaler(ScaleConfig(policy="fixed", fixed_scale=2.5), RELATIVE_DISP)(x, CAM).scale == 2.5
    metric = ModelSpec(output_kind="depth_metric", input_height=8, input_width=8)
    assert MetricScaler(ScaleConfig(), metric)(x, CAM).source == "model"
    pro = ModelSpec(output_kind="canonical_inverse_depth", input_height=8, input_width=8)
    assert MetricScaler(ScaleConfig(), pro)(x, CAM).source == "canonical_focal"
    assert MetricScaler(ScaleConfig(policy="canonical_focal"), pro)(x, CAM).source == "canonical_focal"


@pytest.mark.parametrize(
    "config, spec, fragment",
    [
        (ScaleConfig(policy="model"), RELATIVE_DISP, "'model' needs a metric model"),
        (ScaleConfig(policy="canonical_focal"), RELATIVE_DISP, "needs a canonical_inverse_depth model"),
        (ScaleConfig(policy="ground_plane", camera_height_m=1.0), MIDAS, "has an unknown shift"),
        (ScaleConfig(policy="none"), ModelSpec(output_kind="pose_6dof", input_height=8, input_width=8, input_channels=6),
         "outputs pose_6dof, not depth"),
    ],
)
def test_policy_must_fit_the_model(config, spec, fragment):
    with pytest.raises(ModelSpecError, match=fragment):
        validate_scale_policy(config, spec)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"policy": "lidar"}, "scale policy must be one of"),
        ({"policy": "ground_plane"}, "needs camera_height_m"),
        ({"smoothing": 0.0}, r"smoothing must be in \(0, 1\]"),
        ({"max_jump_ratio": 1.0}, "max_jump_ratio must be a finite number > 1"),
        ({"fixed_scale": -1.0}, "fixed_scale must be a positive finite number"),
        ({"min_support": 1}, "min_support must be >= 2"),
        ({"gravity_cam": (0.0, 0.0, 0.0)}, "gravity_cam must be a non-zero 3-vector"),
        ({"sparse_mode": "affine"}, "sparse_mode must be"),
        ({"ransac_iterations": 0}, "ransac_iterations must be an integer >= 1"),
    ],
)
def test_config_validation(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ScaleConfig(**kwargs)
