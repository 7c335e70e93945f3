"""Depth metrics against hand-computed values."""
import math

import numpy as np
import pytest

from depth_ros_training.eval.metrics import compute_depth_metrics, mean_metrics, scale_shift_aligned


def test_metric_values_by_hand():
    gt = np.array([[1.0, 2.0], [4.0, np.nan]])
    pred = np.array([[1.1, 2.0], [2.0, 5.0]])
    m = compute_depth_metrics(pred, gt, median_scaling=False)
    # valid: (1, 1.1), (2, 2), (4, 2); NaN ground truth ignored
    assert m.num_pixels == 3
    assert m.abs_rel == pytest.approx((0.1 / 1 + 0 + 2 / 4) / 3)
    assert m.sq_rel == pytest.approx((0.01 / 1 + 0 + 4 / 4) / 3)
    assert m.rmse == pytest.approx(math.sqrt((0.01 + 0 + 4) / 3))
    assert m.rmse_log == pytest.approx(math.sqrt((math.log(1.1) ** 2 + 0 + math.log(0.5) ** 2) / 3))
    # ratios 1.1, 1, 2 -> delta1 2/3, delta2 (1.5625) 2/3, delta3 (1.953) 2/3
    assert m.delta1 == pytest.approx(2 / 3)
    assert m.delta2 == pytest.approx(2 / 3)
    assert m.delta3 == pytest.approx(2 / 3)
    assert m.scale == 1.0


def test_median_scaling_removes_a_global_scale():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 10.0, (8, 8))
    m = compute_depth_metrics(gt * 0.37, gt, median_scaling=True)
    assert m.abs_rel == pytest.approx(0.0, abs=1e-12)
    assert m.delta1 == 1.0
    assert m.scale == pytest.approx(1 / 0.37)
    metric = compute_depth_metrics(gt * 0.37, gt, median_scaling=False)
    assert metric.abs_rel == pytest.approx(0.63)
    assert metric.delta1 == 0.0


def test_invalid_pixels_and_shapes():
    gt = np.array([[np.inf, 0.0, -1.0]])
    assert compute_depth_metrics(np.ones((1, 3)), gt, median_scaling=True) is None
    with pytest.raises(ValueError, match="same shape"):
        compute_depth_metrics(np.ones((2, 3)), np.ones((3, 2)), median_scaling=False)


def test_mean_metrics_is_per_image_mean():
    a = compute_depth_metrics(np.full((2, 2), 2.0), np.full((2, 2), 1.0), median_scaling=False)
    b = compute_depth_metrics(np.full((4, 4), 1.0), np.full((4, 4), 1.0), median_scaling=False)
    m = mean_metrics([a, b])
    assert m.abs_rel == pytest.approx(0.5)  # (1.0 + 0.0) / 2, not pixel-weighted
    assert m.num_pixels == 20
    assert mean_metrics([]) is None


def test_range_errors_pool_pixels_by_true_depth():
    from depth_ros_training.eval.metrics import RangeErrors

    gt = np.array([[1.0, 1.5, 3.0, 4.0], [8.0, 20.0, np.nan, 0.0]])
    pred = np.array([[2.0, 3.0, 3.0, 4.4], [8.0, 10.0, 5.0, 5.0]])
    r = RangeErrors((0, 2, 5, 30), median_scaling=False)
    r.add(pred, gt)
    r.add(pred, gt)  # pooled: the same image twice changes no mean
    out = r.result()
    assert list(out) == ["0-2 m", "2-5 m", "5-30 m"]
    assert out["0-2 m"]["fraction"] == pytest.approx(2 / 6)
    assert out["0-2 m"]["abs_rel"] == pytest.approx(1.0)  # both near pixels twice too far
    assert out["0-2 m"]["bias"] == pytest.approx(2.0)
    assert out["2-5 m"]["abs_rel"] == pytest.approx(0.05) and out["2-5 m"]["bias"] == pytest.approx(1.1**0.5)
    assert out["5-30 m"]["abs_rel"] == pytest.approx(0.25) and out["5-30 m"]["bias"] == pytest.approx(0.5**0.5)
    # median scaling uses the whole image's median, not each range's
    med = RangeErrors((0, 100), median_scaling=True)
    med.add(2.0 * gt, gt)
    assert med.result()["0-100 m"]["abs_rel"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="increasing"):
        RangeErrors((5, 2), median_scaling=False)


def test_scale_shift_alignment_recovers_an_affine_inverse_depth():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 20.0, size=(12, 16))
    pred = 1.0 / (0.37 / gt + 0.05)  # affine in inverse depth: what a MiDaS network may output
    aligned = scale_shift_aligned(pred, gt, 0.1, 80.0)
    np.testing.assert_allclose(aligned, gt, rtol=1e-9)
    m = compute_depth_metrics(aligned, gt, False, 0.1, 80.0)
    assert m.abs_rel < 1e-9 and m.delta1 == 1.0
    # median scaling alone cannot undo the shift
    assert compute_depth_metrics(pred, gt, True, 0.1, 80.0).abs_rel > 0.05


def test_scale_shift_alignment_is_the_least_squares_solution_on_valid_pixels():
    rng = np.random.default_rng(4)
    gt = rng.uniform(1.0, 10.0, size=(10, 10))
    pred = rng.uniform(1.0, 10.0, size=(10, 10))
    gt[0, :3] = np.nan  # invalid truth
    gt[1, 0] = 200.0  # beyond max depth
    pred[2, :2] = [np.nan, -1.0]  # invalid prediction: stays invalid
    aligned = scale_shift_aligned(pred, gt, 0.1, 80.0)
    valid = np.isfinite(gt) & (gt <= 80.0) & np.isfinite(pred) & (pred > 0)
    A = np.stack([1.0 / pred[valid], np.ones(valid.sum())], axis=1)
    (s, t), *_ = np.linalg.lstsq(A, 1.0 / gt[valid], rcond=None)
    expected = 1.0 / np.maximum(s / pred + t, 1.0 / 80.0)
    ok = np.isfinite(pred) & (pred > 0)
    np.testing.assert_allclose(aligned[ok], expected[ok], rtol=1e-9)
    assert np.isnan(aligned[2, :2]).all()


def test_scale_shift_alignment_caps_far_depth_and_refuses_a_constant_prediction():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = gt.copy()  # exact on the three pixels inside [0.1, 5] m: s = 1, t = 0
    aligned = scale_shift_aligned(pred, gt, 0.1, 5.0)
    np.testing.assert_allclose(aligned.ravel()[:3], [1.0, 2.0, 4.0])
    assert aligned[1, 1] == pytest.approx(5.0)  # 8 m: aligned inverse depth clamped at 1 / max depth
    assert scale_shift_aligned(np.full((3, 3), 2.0), np.arange(1.0, 10.0).reshape(3, 3), 0.1, 80.0) is None
    assert scale_shift_aligned(np.full((1, 1), 2.0), np.full((1, 1), 3.0)) is None
