"""Depth Pro's scale-invariant boundary metrics (Bochkovskii et al. 2024, "Depth Pro: Sharp
Monocular Metric Depth in Less Than a Second", Sec. 4 and appendix).

An *occluding contour* between two neighbouring pixels i, j at threshold t exists where the
inverse depths differ by more than the ratio t: ``inv[j] / inv[i] > t`` (j is in front of i).
Contours are oriented: for each of the four neighbour directions (left, top, right, bottom)
a separate boolean map is made, so a contour counts only where the prediction and the truth
agree on which side is in front. Ratios make the contours invariant to the depth scale.

* :func:`boundary_f1`: precision and recall of the predicted contours against contours of a
  dense depth truth, each the mean of the four directions' ratios, F1 from them.
* :func:`si_boundary_f1`: its weighted mean over thresholds ``linspace(1.05, 1.25, 10)`` with
  weights proportional to the threshold (the higher, sharper contours count more).
* :func:`edge_band` (this package's, not Depth Pro's): the pixels within a few pixels of the
  truth's occluding contours, where :func:`~depth_ros_training.eval.scoring.frame_metrics` computes
  an edge-band AbsRel: a sharpness figure that still moves when the prediction is too blurred for
  any contour to pass the F1's 1.05 ratio between neighbours (low-resolution networks).
* :func:`si_boundary_recall`: the recall of the predicted contours, thinned by non-maximum
  suppression (one pixel per run of contour pixels along the row / column, the strongest),
  against the edges of a binary (or soft, thresholded at 0.1) object mask.

Agreement with the authors' public code (apple/ml-depth-pro, ``src/depth_pro/eval/
boundary_metrics.py``, functions ``SI_boundary_F1`` and ``SI_boundary_Recall``): the same
numbers on the same inputs, including its conventions, which are kept on purpose:

* depth is inverted as ``1 / max(depth, 1e-6)``; NaN stays NaN and makes no contour (a NaN
  ratio compares false), so NaN-marked invalid pixels (this package's convention) drop out on
  both sides; a zero depth becomes 1e6 and *does* make contours (pass NaN, not 0, for invalid);
* the computation runs in the input's floating dtype (float32 stays float32), as there, with
  the same threshold types (NumPy 2 promotion): the F1 compares float32 ratios with float64
  thresholds, the mask recall with thresholds rounded to float32;
* a direction without any truth contour contributes 0 (not 1) to the mean recall, so even a
  perfect prediction scores below 1 on an image whose contours do not face all four ways;
  where precision and recall are both 0 the F1 is 0;
* non-maximum suppression is applied to the predicted contours of the *mask* recall only: the
  public ``SI_boundary_F1`` compares the raw (unthinned) contours of prediction and truth,
  although the paper's text mentions thinning. ``thin_prediction=True`` applies it to the F1's
  predicted contours too (not the reference's number; off by default);
* ties inside a suppression run keep the first (leftmost / topmost) pixel, like ``np.argmax``.

The suppression is vectorised over runs (no Python loop over connected components); the
result is the same pixel set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BoundaryScores",
    "boundary_f1",
    "boundary_thresholds",
    "edge_band",
    "mask_contours",
    "nms_runs",
    "occluding_contours",
    "si_boundary_f1",
    "si_boundary_recall",
]

#: The reference's inversion floor (metres): depth below it is clipped before 1 / depth.
DEPTH_EPS_M = 1e-6


@dataclass(frozen=True)
class BoundaryScores:
    """Scale-invariant boundary scores of one image (threshold-weighted means).

    ``f1`` is the reference's ``SI_boundary_F1`` (the weighted mean of per-threshold F1s);
    ``precision`` and ``recall`` are the weighted means of the per-threshold values (for the
    precision-recall plot; F1 is *not* their harmonic mean)."""

    f1: float
    precision: float
    recall: float


def boundary_thresholds(t_min: float = 1.05, t_max: float = 1.25, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Ratio thresholds ``linspace(t_min, t_max, n)`` and weights ``t / sum(t)`` (sum 1)."""
    if not (1.0 < t_min <= t_max) or n < 1:
        raise ValueError(f"need 1 < t_min <= t_max and n >= 1, got {t_min}, {t_max}, {n}")
    thresholds = np.linspace(t_min, t_max, n)
    return thresholds, thresholds / thresholds.sum()


def _inverse_depth(depth_m: np.ndarray, name: str) -> np.ndarray:
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise ValueError(f"{name} must be (H, W), got shape {depth.shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        depth = depth.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.clip(depth, DEPTH_EPS_M, None)


def _ratios(inv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour ratios (left, top, right, bottom): e.g. ``right[y, x] = inv[y, x+1] / inv[y, x]``
    (> 1 where the right pixel is in front). Shapes (H, W-1) for left/right, (H-1, W) else."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            inv[:, :-1] / inv[:, 1:],
            inv[:-1, :] / inv[1:, :],
            inv[:, 1:] / inv[:, :-1],
            inv[1:, :] / inv[:-1, :],
        )


def nms_runs(values: np.ndarray, threshold: float, axis: int) -> np.ndarray:
    """Non-maximum suppression along runs: of each maximal run of consecutive pixels with
    ``values > threshold`` along ``axis`` (1: within a row, 0: within a column), keep only the
    pixel of the largest value (the first one on ties).

    Args:
        values: (H, W) ratios (NaN never exceeds the threshold).
        threshold: the contour threshold.
        axis: 1 for horizontal runs, 0 for vertical runs.

    Returns:
        (H, W) bool, one True per run.
    """
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, got {axis}")
    v = values if axis == 1 else values.T
    with np.errstate(invalid="ignore"):
        on = v > threshold
    out = np.zeros(v.shape, dtype=bool)
    flat_on = on.ravel()
    idx = np.flatnonzero(flat_on)  # row-major: runs are consecutive indices in one row
    if idx.size == 0:
        return out if axis == 1 else out.T
    width = v.shape[1]
    new_run = np.ones(idx.size, dtype=bool)
    new_run[1:] = (np.diff(idx) != 1) | (idx[1:] % width == 0)
    starts = np.flatnonzero(new_run)
    vals = v.ravel()[idx]
    run_max = np.maximum.reduceat(vals, starts)
    lengths = np.diff(np.append(starts, idx.size))
    is_max = vals == np.repeat(run_max, lengths)
    order = np.where(is_max, np.arange(idx.size), idx.size)
    first = np.minimum.reduceat(order, starts)
    out.ravel()[idx[first]] = True
    return out if axis == 1 else out.T


def occluding_contours(depth_m: np.ndarray, threshold: float, thin: bool = False) -> tuple[np.ndarray, ...]:
    """Oriented occluding contours of a depth map at one ratio threshold.

    Args:
        depth_m: (H, W) depth, any positive scale (NaN: invalid, makes no contour).
        threshold: inverse-depth ratio (> 1) above which neighbours are on two sides of a contour.
        thin: non-maximum suppression along each direction (rows for left/right, columns for
            top/bottom).

    Returns:
        (left, top, right, bottom) bool maps, (H, W-1), (H-1, W), (H, W-1), (H-1, W):
        ``right[y, x]``: pixel (y, x+1) is in front of (y, x) by more than the threshold;
        ``left[y, x]``: (y, x) in front of (y, x+1); ``bottom[y, x]``: (y+1, x) in front of
        (y, x); ``top[y, x]``: (y, x) in front of (y+1, x).
    """
    return _contours_from_ratios(_ratios(_inverse_depth(depth_m, "depth_m")), threshold, thin)


def edge_band(gt_depth_m: np.ndarray, threshold: float = 1.1, radius: int = 2) -> np.ndarray:
    """(H, W) bool: pixels within ``radius`` pixels (Chebyshev distance) of an occluding contour of
    the truth at ``threshold`` (:func:`occluding_contours`), on both sides of it.

    Args:
        gt_depth_m: (H, W) dense truth (NaN invalid: makes no contour).
        threshold: inverse-depth ratio of a contour between neighbours (> 1).
        radius: band half-width in pixels (>= 0).
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    left, top, right, bottom = occluding_contours(gt_depth_m, threshold)
    h, w = np.asarray(gt_depth_m).shape
    band = np.zeros((h, w), dtype=bool)
    horizontal, vertical = left | right, top | bottom  # a contour between (y, x) and (y, x+1) / (y+1, x)
    band[:, :-1] |= horizontal
    band[:, 1:] |= horizontal
    band[:-1, :] |= vertical
    band[1:, :] |= vertical
    out = band.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            out[yd, xd] |= band[ys, xs]
    return out


def mask_contours(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Oriented edges of a boolean object mask, as :func:`occluding_contours` (the object is in
    front): ``right[y, x] = mask[y, x+1] & ~mask[y, x]`` and so on."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != bool:
        raise ValueError(f"mask must be (H, W) bool, got shape {m.shape} dtype {m.dtype}")
    return (m[:, :-1] & ~m[:, 1:], m[:-1, :] & ~m[1:, :], m[:, 1:] & ~m[:, :-1], m[1:, :] & ~m[:-1, :])


def _mean_ratio(hits: list[int], totals: list[int]) -> float:
    return 0.25 * sum(h / max(n, 1) for h, n in zip(hits, totals))


def _precision_recall(pred: tuple[np.ndarray, ...], gt: tuple[np.ndarray, ...]) -> tuple[float, float]:
    hits = [int(np.count_nonzero(p & g)) for p, g in zip(pred, gt)]
    precision = _mean_ratio(hits, [int(np.count_nonzero(p)) for p in pred])
    recall = _mean_ratio(hits, [int(np.count_nonzero(g)) for g in gt])
    return precision, recall


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if np.shape(pred) != np.shape(gt) or np.ndim(pred) != 2:
        raise ValueError(f"prediction {np.shape(pred)} and truth {np.shape(gt)} must be the same (H, W)")


def boundary_f1(pred_depth: np.ndarray, gt_depth: np.ndarray, threshold: float, thin_prediction: bool = False) -> tuple[float, float, float]:
    """Boundary (F1, precision, recall) at one ratio threshold.

    Args:
        pred_depth: (H, W) predicted depth, any scale (NaN invalid).
        gt_depth: (H, W) true depth (NaN invalid).
        threshold: inverse-depth ratio threshold (> 1).
        thin_prediction: thin the predicted contours first (not the reference; see module doc).

    Returns:
        (f1, precision, recall); f1 is 0 where precision + recall is 0.
    """
    _check_pair(pred_depth, gt_depth)
    pred_ratios = _ratios(_inverse_depth(pred_depth, "pred_depth"))
    gt_ratios = _ratios(_inverse_depth(gt_depth, "gt_depth"))
    return _f1_at(pred_ratios, gt_ratios, threshold, thin_prediction)


def _contours_from_ratios(ratios: tuple[np.ndarray, ...], threshold: float, thin: bool) -> tuple[np.ndarray, ...]:
    if thin:
        return tuple(nms_runs(r, threshold, axis) for r, axis in zip(ratios, (1, 0, 1, 0)))
    with np.errstate(invalid="ignore"):
        return tuple(r > threshold for r in ratios)


def _f1_at(pred_ratios: tuple[np.ndarray, ...], gt_ratios: tuple[np.ndarray, ...], threshold: float, thin_prediction: bool) -> tuple[float, float, float]:
    precision, recall = _precision_recall(
        _contours_from_ratios(pred_ratios, threshold, thin_prediction), _contours_from_ratios(gt_ratios, threshold, False)
    )
    if precision + recall == 0:
        return 0.0, precision, recall
    return 2 * precision * recall / (precision + recall), precision, recall


def si_boundary_f1(
    pred_depth: np.ndarray,
    gt_depth: np.ndarray,
    t_min: float = 1.05,
    t_max: float = 1.25,
    n: int = 10,
    thin_prediction: bool = False,
) -> BoundaryScores:
    """Scale-invariant boundary F1 against a dense depth truth (the reference's ``SI_boundary_F1``).

    Args:
        pred_depth: (H, W) predicted depth, any scale (scaling it changes nothing); NaN invalid.
        gt_depth: (H, W) true depth, same shape; NaN invalid.
        t_min, t_max, n: the thresholds ``linspace(t_min, t_max, n)``.
        thin_prediction: see :func:`boundary_f1`.

    Returns:
        :class:`BoundaryScores` (f1 = sum_k w_k F1(t_k), w_k = t_k / sum t).

    Raises:
        ValueError: shapes differ or are not 2-D.
    """
    _check_pair(pred_depth, gt_depth)
    thresholds, weights = boundary_thresholds(t_min, t_max, n)
    # t stays np.float64: float32 ratios are compared in float64 here, as in the reference
    pred_ratios = _ratios(_inverse_depth(pred_depth, "pred_depth"))  # once for all thresholds
    gt_ratios = _ratios(_inverse_depth(gt_depth, "gt_depth"))
    scores = np.array([_f1_at(pred_ratios, gt_ratios, t, thin_prediction) for t in thresholds])
    f1, precision, recall = (float(np.sum(scores[:, k] * weights)) for k in range(3))
    return BoundaryScores(f1=f1, precision=precision, recall=recall)


def si_boundary_recall(
    pred_depth: np.ndarray,
    gt_mask: np.ndarray,
    t_min: float = 1.05,
    t_max: float = 1.25,
    n: int = 10,
    alpha_threshold: float = 0.1,
) -> float:
    """Scale-invariant boundary recall against an object mask (the reference's ``SI_boundary_Recall``).

    Args:
        pred_depth: (H, W) predicted depth, any scale; NaN invalid.
        gt_mask: (H, W) object mask (bool, or alpha in [0, 1]: foreground where > alpha_threshold);
            the object is taken to be in front of its surroundings.
        t_min, t_max, n: the thresholds.
        alpha_threshold: foreground cut of a soft mask.

    Returns:
        sum_k w_k recall(t_k) of the thinned predicted contours against the mask's edges.
    """
    _check_pair(pred_depth, gt_mask)
    mask = np.asarray(gt_mask) > alpha_threshold
    edges = mask_contours(mask)
    thresholds, weights = boundary_thresholds(t_min, t_max, n)
    # float(t): a Python float, so float32 ratios meet a float32-rounded threshold, as in the reference
    ratios = _ratios(_inverse_depth(pred_depth, "pred_depth"))
    recalls = [_precision_recall(_contours_from_ratios(ratios, float(t), True), edges)[1] for t in thresholds]
    return float(np.sum(np.asarray(recalls) * weights))
