"""Depth Pro's scale-invariant boundary F1 / recall against values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros_training.eval.boundary import (
    boundary_f1,
    boundary_thresholds,
    mask_contours,
    nms_runs,
    occluding_contours,
    si_boundary_f1,
    si_boundary_recall,
)


def _box(size: int = 4, box_depth: float = 2.0, background: float = 4.0, y0: int = 1, x0: int = 1, h: int = 2, w: int = 2) -> np.ndarray:
    d = np.full((size, size), background)
    d[y0:y0 + h, x0:x0 + w] = box_depth
    return d


def test_thresholds_and_weights() -> None:
    t, w = boundary_thresholds()
    assert t[0] == pytest.approx(1.05) and t[-1] == pytest.approx(1.25) and len(t) == 10
    assert w.sum() == pytest.approx(1.0)
    assert w[-1] / w[0] == pytest.approx(1.25 / 1.05)  # weighted toward the higher thresholds


def test_contours_of_a_box_face_all_four_ways() -> None:
    left, top, right, bottom = occluding_contours(_box(), 1.1)
    # the 2x2 box at rows/cols 1..2 is in front of the background (inverse depth ratio 2)
    assert np.argwhere(right).tolist() == [[1, 0], [2, 0]]  # (y, x+1) in front of (y, x)
    assert np.argwhere(left).tolist() == [[1, 2], [2, 2]]
    assert np.argwhere(bottom).tolist() == [[0, 1], [0, 2]]
    assert np.argwhere(top).tolist() == [[2, 1], [2, 2]]


def test_nan_makes_no_contour() -> None:
    d = np.array([[1.0, np.nan, 1.0, 9.0]])
    left, _, right, _ = occluding_contours(d, 1.05)
    assert not right.any()
    assert left.tolist() == [[False, False, True]]  # only the real step 1 m -> 9 m


def test_truth_against_itself_is_one_and_scale_free() -> None:
    gt = _box()
    assert si_boundary_f1(gt, gt).f1 == pytest.approx(1.0)
    assert si_boundary_f1(3.7 * gt, gt).f1 == pytest.approx(1.0)


def test_hand_computed_partial_match() -> None:
    gt = _box()
    pred = _box(w=1)  # the box is one column narrower: its right edge is in the wrong place
    # right: 2 of 2 hit; left: 0 of 2 (pred at x=1, truth at x=2); bottom and top: 1 of 1 predicted, of 2 true
    precision = 0.25 * (2 / 2 + 0 / 2 + 1 / 1 + 1 / 1)
    recall = 0.25 * (2 / 2 + 0 / 2 + 1 / 2 + 1 / 2)
    f1, p, r = boundary_f1(pred, gt, 1.1)
    assert (p, r) == pytest.approx((precision, recall))
    assert f1 == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    scores = si_boundary_f1(pred, gt)  # the ratio 2 passes every threshold: same at all
    assert scores.f1 == pytest.approx(0.6) and scores.precision == pytest.approx(0.75) and scores.recall == pytest.approx(0.5)


def test_threshold_weighting() -> None:
    # inverse-depth ratio 1.15: a contour for the five thresholds 1.05 .. 1.1389, none above
    gt = _box(box_depth=4.0 / 1.15)
    t = 1.05 + 0.2 / 9 * np.arange(10)
    expected = t[:5].sum() / t.sum()
    assert expected == pytest.approx(5.4722222 / 11.5)
    assert si_boundary_f1(gt, gt).f1 == pytest.approx(expected)
    assert expected < 0.5  # the higher thresholds weigh more


def test_blurred_prediction_scores_lower() -> None:
    gt = _box(size=16, y0=4, x0=5, h=6, w=7)
    blurred = gt.copy()
    for axis in (0, 1):
        blurred = (np.roll(blurred, 1, axis) + blurred + np.roll(blurred, -1, axis)) / 3
    sharp = si_boundary_f1(gt, gt).f1
    soft = si_boundary_f1(blurred, gt).f1
    assert sharp == pytest.approx(1.0) and soft < 0.8


def test_float32_input_gives_the_float64_result_on_clear_contours() -> None:
    gt = _box(size=8, y0=2, x0=3, h=3, w=2)
    pred = _box(size=8, y0=2, x0=2, h=3, w=3)
    assert si_boundary_f1(pred.astype(np.float32), gt.astype(np.float32)).f1 == pytest.approx(si_boundary_f1(pred, gt).f1)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="same"):
        si_boundary_f1(np.ones((3, 4)), np.ones((4, 3)))


def test_nms_keeps_the_strongest_pixel_of_each_run() -> None:
    v = np.array([[0.0, 1.3, 1.5, 1.2, 0.0, 1.4], [1.3, 1.3, 0.0, 0.0, 0.0, 1.2]])
    kept = nms_runs(v, 1.1, axis=1)
    assert np.argwhere(kept).tolist() == [[0, 2], [0, 5], [1, 0], [1, 5]]  # tie -> first
    # runs never continue from the end of one row into the next
    w = np.array([[0.0, 1.2], [1.3, 0.0]])
    assert nms_runs(w, 1.1, axis=1).sum() == 2
    # vertical runs: the transpose
    assert np.array_equal(nms_runs(v.T, 1.1, axis=0), kept.T)


def test_mask_contours() -> None:
    m = np.zeros((3, 4), bool)
    m[1, 2:] = True
    left, top, right, bottom = mask_contours(m)
    assert np.argwhere(right).tolist() == [[1, 1]] and not left.any()
    assert np.argwhere(bottom).tolist() == [[0, 2], [0, 3]] and np.argwhere(top).tolist() == [[1, 2], [1, 3]]


def test_mask_recall_hand_computed() -> None:
    mask = np.array([[False, False, False, True, True, True]])  # one edge: right at x=2
    # a two-pixel ramp 4 -> 3 -> 2: contour pixels x=1 (ratio 4/3) and x=2 (ratio 3/2); thinning
    # keeps x=2, on the mask edge. Of the four directions only "right" has an edge: recall 1/4.
    ramp = np.array([[4.0, 4.0, 3.0, 2.0, 2.0, 2.0]])
    assert si_boundary_recall(ramp, mask) == pytest.approx(0.25)
    early = np.array([[4.0, 4.0, 2.0, 2.0, 2.0, 2.0]])  # the step one pixel early: no hit
    assert si_boundary_recall(early, mask) == 0.0
    # a soft mask is cut at alpha 0.1; the scale of the depth does not matter
    soft = np.where(mask, 0.8, 0.05)
    assert si_boundary_recall(5.0 * ramp, soft) == pytest.approx(0.25)


def test_mask_recall_of_a_box_is_one() -> None:
    m = np.zeros((6, 6), bool)
    m[2:4, 1:4] = True
    assert si_boundary_recall(np.where(m, 1.0, 3.0), m) == pytest.approx(1.0)


def test_edge_band_covers_both_sides_of_a_step_within_the_radius() -> None:
    from depth_ros_training.eval.boundary import edge_band

    gt = np.full((6, 10), 4.0)
    gt[:, 5:] = 2.0  # a step between columns 4 and 5 (inverse depth ratio 2)
    band = edge_band(gt, threshold=1.1, radius=1)
    assert band[:, 3:7].all() and not band[:, :3].any() and not band[:, 7:].any()
    assert edge_band(gt, 1.1, 0)[:, 4:6].all() and not edge_band(gt, 1.1, 0)[:, [3, 6]].any()
    assert not edge_band(np.full((4, 4), 3.0)).any()  # no contour, no band
    assert not edge_band(gt, threshold=2.5).any()  # the step's ratio 2 is below this threshold


def test_edge_abs_rel_sees_a_blurred_step_the_f1_misses() -> None:
    """A step blurred over 8 pixels: every neighbour ratio is under the F1's lowest threshold (1.05),
    so its F1 is 0 like a flat map's; the edge-band AbsRel still ranks sharp < blurred < flat."""
    from depth_ros_training.eval.config import EvalConfig
    from depth_ros_training.eval.scoring import frame_metrics

    gt = np.full((16, 32), 4.0)
    gt[:, 16:] = 3.0
    ramp = np.linspace(1 / 4.0, 1 / 3.0, 10)[1:-1]
    blurred = gt.copy()
    blurred[:, 12:20] = 1.0 / ramp
    config = EvalConfig(max_depth_m=80.0)
    sharp_m, blur_m, flat_m = (frame_metrics(p, gt, config, dense=True) for p in (gt.copy(), blurred, np.full_like(gt, 3.5)))
    assert blur_m["boundary_f1"] == flat_m["boundary_f1"] == 0.0 < sharp_m["boundary_f1"]
    assert sharp_m["edge_abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert 0.0 < blur_m["edge_abs_rel"] < flat_m["edge_abs_rel"]
