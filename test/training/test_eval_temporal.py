"""Flicker: zero for the truth, hand-computed values for known disagreements."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros_training.eval.temporal import sample_depth_bilinear, temporal_flicker, warp_points

W, H = 8, 6
K = np.array([[4.0, 0, (W - 1) / 2], [0, 4.0, (H - 1) / 2], [0, 0, 1]])


def _forward(dz: float) -> np.ndarray:
    """T_b_a for camera b = camera a moved dz metres along its optical axis."""
    T = np.eye(4)
    T[2, 3] = -dz
    return T


def _plane_depth(normal: np.ndarray, offset: float) -> np.ndarray:
    """Depth of the plane n . X = offset for every pixel (z of the ray's hit)."""
    v, u = np.mgrid[0:H, 0:W].astype(float)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    return offset / (rays @ normal)


def test_bilinear_sampling_is_in_inverse_depth() -> None:
    d = np.array([[1.0, 2.0], [1.0, 2.0]])
    assert sample_depth_bilinear(d, np.array([0.5]), np.array([0.0]))[0] == pytest.approx(1 / 0.75)
    assert sample_depth_bilinear(d, np.array([1.0]), np.array([1.0]))[0] == pytest.approx(2.0)  # the far corner
    out = sample_depth_bilinear(d, np.array([-0.1, 1.2]), np.array([0.0, 0.0]))
    assert np.isnan(out).all()  # outside the image
    d[0, 1] = np.nan
    assert np.isnan(sample_depth_bilinear(d, np.array([0.5]), np.array([0.5]))[0])


def test_taps_are_shared_by_every_depth_sampled_at_the_same_positions() -> None:
    from depth_ros_training.eval.temporal import bilinear_taps, sample_with_taps

    rng = np.random.default_rng(0)
    u, v = rng.uniform(-1, W, (H, W)), rng.uniform(-1, H, (H, W))
    taps = bilinear_taps(u, v, (H, W))
    for scale in (1.0, 2.5):
        d = scale * _plane_depth(np.array([0.1, -0.2, 1.0]), 3.0)
        np.testing.assert_array_equal(sample_with_taps(d, taps), sample_depth_bilinear(d, u, v))
    with pytest.raises(ValueError, match="depth_m"):
        sample_with_taps(np.ones((H, W + 1)), taps)  # another image size than the taps'
    with pytest.raises(ValueError, match="2 x 2"):
        bilinear_taps(u[:1], v[:1], (1, W))


def test_warp_of_a_forward_move() -> None:
    d = np.full((H, W), 5.0)
    u, v, z = warp_points(d, _forward(0.5), K)
    assert np.allclose(z, 4.5)
    assert u[0, 0] == pytest.approx(3.5 - 3.5 * 5 / 4.5) and v[0, 0] == pytest.approx(2.5 - 2.5 * 5 / 4.5)


def test_truth_has_no_flicker_on_a_plane_with_forward_motion() -> None:
    gt_a, gt_b = np.full((H, W), 5.0), np.full((H, W), 4.5)
    r = temporal_flicker(gt_a, gt_b, _forward(0.5), K, gt_a, gt_b)
    assert r.rel == 0.0
    # forward motion magnifies: columns 1..6 and rows 1..4 of a stay inside b
    assert r.num_pixels == 6 * 4 and r.static_fraction == pytest.approx(24 / 48)


def test_truth_has_no_flicker_on_a_slanted_plane_with_sideways_motion() -> None:
    n = np.array([0.3, -0.2, 1.0])
    c = np.array([0.2, 0.05, 0.3])  # camera b's centre in a's frame (no rotation)
    T_b_a = np.eye(4)
    T_b_a[:3, 3] = -c
    gt_a, gt_b = _plane_depth(n, 6.0), _plane_depth(n, 6.0 - n @ c)
    r = temporal_flicker(gt_a, gt_b, T_b_a, K, gt_a, gt_b)
    assert r.num_pixels > 20 and r.rel == pytest.approx(0.0, abs=1e-12)
    # the truth without its own correspondences (pred-only path) agrees too
    assert temporal_flicker(gt_a, gt_b, T_b_a, K).rel == pytest.approx(0.0, abs=1e-12)


def test_a_frame_ten_percent_off_flickers_ten_percent() -> None:
    gt_a, gt_b = np.full((H, W), 5.0), np.full((H, W), 4.5)
    r = temporal_flicker(gt_a, 1.1 * gt_b, _forward(0.5), K, gt_a, gt_b)
    assert r.rel == pytest.approx(0.1) and r.num_pixels == 24


def test_a_constant_scale_error_is_inconsistent_with_metric_motion() -> None:
    gt_a, gt_b = np.full((H, W), 5.0), np.full((H, W), 4.5)
    # twice too far in both frames: a predicts 10 - 0.5 = 9.5 m in b, b says 9 m
    r = temporal_flicker(2 * gt_a, 2 * gt_b, _forward(0.5), K, gt_a, gt_b)
    assert r.rel == pytest.approx(0.5 / 9.5)


def test_moving_object_pixels_are_not_static() -> None:
    gt_a, gt_b = np.full((H, W), 5.0), np.full((H, W), 4.5)
    gt_b[2:4, 3:5] = 3.0  # something moved in front in frame b
    pred_b = gt_b.copy()
    r = temporal_flicker(gt_a, pred_b, _forward(0.5), K, gt_a, gt_b)
    assert r.rel == pytest.approx(0.0, abs=1e-12) and r.num_pixels < 24
    # without the truth to say what is static, the moved object counts as flicker
    assert temporal_flicker(gt_a, pred_b, _forward(0.5), K).rel > 0.05


def test_all_invalid_gives_nan() -> None:
    nan = np.full((H, W), np.nan)
    r = temporal_flicker(nan, nan, np.eye(4), K)
    assert np.isnan(r.rel) and r.num_pixels == 0


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="pred_b_m"):
        temporal_flicker(np.ones((H, W)), np.ones((W, H)), np.eye(4), K)
