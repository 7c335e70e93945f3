"""Per-frame scoring of predictions against truth, and the summary of a model's frames.

Per matched frame, on the valid pixels (finite truth in ``[min_depth_m, max_depth_m]``, inside
the optional crop): the depth metrics median-scaled and metric, the scale ratio, the boundary
scores and the flicker against the previous matched frame; a model's summary is the mean over
frames (:data:`~depth_ros_training.eval.config.AGGREGATION`), the by-range table pools pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from depth_ros.errors import BagError, DepthRosError

from depth_ros_training.eval.boundary import edge_band, si_boundary_f1, si_boundary_recall
from depth_ros_training.eval.config import AGGREGATION, EvalConfig
from depth_ros_training.eval.metrics import METRIC_NAMES, RangeErrors, compute_depth_metrics, mean_metrics, scale_ratio_stats, scale_shift_aligned
from depth_ros_training.eval.temporal import flicker_on, pair_geometry
from depth_ros_training.eval.truth import Truth, iter_truth, read_masks

__all__ = ["ModelReport", "RangeAccumulator", "SheetCandidate", "frame_metrics", "score_frames", "sheet_candidates", "summarise"]


def _crop_box(shape: tuple[int, int], crop: tuple[float, float, float, float] | None) -> tuple[slice, slice]:
    h, w = shape
    if crop is None:
        return slice(0, h), slice(0, w)
    left, top, right, bottom = crop
    return slice(int(round(top * h)), max(int(round(bottom * h)), int(round(top * h)) + 1)), slice(
        int(round(left * w)), max(int(round(right * w)), int(round(left * w)) + 1)
    )


def _capped(gt: np.ndarray, config: EvalConfig) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(gt) & (gt >= config.min_depth_m) & (gt <= config.max_depth_m)
    return np.where(ok, gt, np.nan).astype(np.float64)


def frame_metrics(pred_m: np.ndarray, gt_m: np.ndarray, config: EvalConfig, dense: bool, mask: np.ndarray | None = None) -> dict[str, float] | None:
    """Per-frame figures of one (prediction, truth) pair, both (H, W) metres, NaN invalid.

    Args:
        mask: (H, W) bool object mask of the frame, for the mask boundary recall.

    Returns:
        ``{"num_pixels", "median_<metric>", "metric_<metric>", "aligned_<metric>" (after per-image
        scale and shift in inverse depth; NaN when the fit is singular), "scale", "edge_abs_rel"
        (median-scaled AbsRel near the truth's occluding contours, dense truth), "boundary_f1",
        "boundary_precision", "boundary_recall", "mask_boundary_recall"}`` (boundary NaN for
        sparse truth or when disabled, mask recall NaN without a mask), or None when no
        pixel is valid.
    """
    rows, cols = _crop_box(gt_m.shape, config.crop)
    pred, gt = np.asarray(pred_m, np.float64)[rows, cols], _capped(np.asarray(gt_m)[rows, cols], config)
    med = compute_depth_metrics(pred, gt, True, config.min_depth_m, config.max_depth_m)
    met = compute_depth_metrics(pred, gt, False, config.min_depth_m, config.max_depth_m)
    if med is None or met is None:
        return None
    out: dict[str, float] = {"num_pixels": float(med.num_pixels)}
    for mode, m in (("median", med), ("metric", met)):
        out.update({f"{mode}_{k}": float(getattr(m, k)) for k in METRIC_NAMES})
    aligned = scale_shift_aligned(pred, gt, config.min_depth_m, config.max_depth_m)
    ali = compute_depth_metrics(aligned, gt, False, config.min_depth_m, config.max_depth_m) if aligned is not None else None
    out.update({f"aligned_{k}": float(getattr(ali, k)) if ali is not None else float("nan") for k in METRIC_NAMES})
    out["scale"] = med.scale
    out["edge_abs_rel"] = _edge_abs_rel(pred, gt, med.scale) if (dense and config.boundary) else float("nan")
    b = si_boundary_f1(pred, gt) if (dense and config.boundary) else None
    out["boundary_f1"] = b.f1 if b else float("nan")
    out["boundary_precision"] = b.precision if b else float("nan")
    out["boundary_recall"] = b.recall if b else float("nan")
    use_mask = mask is not None and config.boundary
    out["mask_boundary_recall"] = si_boundary_recall(pred, np.asarray(mask)[rows, cols]) if use_mask else float("nan")
    return out



#: Edge band of :func:`_edge_abs_rel`: truth contours at this neighbour ratio, pixels this close.
EDGE_THRESHOLD, EDGE_RADIUS_PX = 1.1, 2


def _edge_abs_rel(pred: np.ndarray, gt: np.ndarray, scale: float) -> float:
    """Median-scaled AbsRel on the valid truth pixels within :data:`EDGE_RADIUS_PX` of the truth's
    occluding contours (:func:`~depth_ros_training.eval.boundary.edge_band`); NaN without any."""
    with np.errstate(invalid="ignore"):
        valid = edge_band(gt, EDGE_THRESHOLD, EDGE_RADIUS_PX) & np.isfinite(gt) & np.isfinite(pred) & (pred > 0)
    if not valid.any():
        return float("nan")
    p, g = pred[valid] * scale, gt[valid]
    return float(np.mean(np.abs(p - g) / g))


@dataclass
class ModelReport:
    """Results of one model (or one prediction set) over all bags."""

    name: str
    source: str
    frames: list[dict[str, Any]] = field(default_factory=list)
    bags: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    sheet: list["SheetCandidate"] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class SheetCandidate:
    """A frame that may go on the contact sheet: a bag's worst or median (per-frame median-scaled
    AbsRel). Its prediction is kept (two per bag); truth and image are read again from the bag."""

    truth: Truth
    stamp_ns: int
    pred_m: np.ndarray
    abs_rel: float
    scale: float


def sheet_candidates(rows: list[dict[str, Any]], predictions: dict[int, np.ndarray], truth: Truth) -> list[SheetCandidate]:
    """The worst and the median row of one bag's rows (one candidate when they coincide)."""
    if not rows:
        return []
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["median_abs_rel"], i))
    picks = dict.fromkeys([order[-1], order[(len(order) - 1) // 2]])
    return [
        SheetCandidate(truth, int(rows[i]["stamp_ns"]), predictions[int(rows[i]["pred_stamp_ns"])], float(rows[i]["median_abs_rel"]), float(rows[i]["scale"]))
        for i in picks
    ]



class RangeAccumulator:
    """The by-range tables (median-scaled and metric): pixels of every frame pooled per depth range
    (``config.range_edges_m`` up to ``max_depth_m``), inside the crop."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        edges = tuple(e for e in config.range_edges_m if e < config.max_depth_m) + (config.max_depth_m,)
        self.ranges = {m: RangeErrors(edges, median_scaling=(m == "median"), min_depth_m=config.min_depth_m, max_depth_m=config.max_depth_m) for m in ("median", "metric")}

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Adds one frame: ``pred`` and ``gt`` (H, W) metres, NaN invalid."""
        rows, cols = _crop_box(gt.shape, self.config.crop)
        for r in self.ranges.values():
            r.add(pred[rows, cols], _capped(gt[rows, cols], self.config))


def _flicker(prev: tuple[np.ndarray, np.ndarray, np.ndarray, float], cur: tuple[np.ndarray, np.ndarray, np.ndarray, float], truth: Truth, config: EvalConfig) -> dict[str, float]:
    pred_a, gt_a, T_w_a, scale_a = prev
    pred_b, gt_b, T_w_b, _ = cur
    T_b_a = np.linalg.inv(T_w_b) @ T_w_a
    mask = np.zeros(gt_a.shape, dtype=bool)
    mask[_crop_box(gt_a.shape, config.crop)] = True
    dense = truth.kind == "dense"
    ga, gb = (_capped(gt_a, config), _capped(gt_b, config)) if dense else (None, None)
    # one set of correspondences (from the truth where dense) for the three depths compared
    geometry = pair_geometry(ga if dense else pred_a, T_b_a, truth.camera.K, gb, config.static_tol, mask)
    out = {
        "flicker": flicker_on(geometry, pred_a, pred_b).rel,
        # one factor for both frames (frame a's gt/pred): removes the absolute scale of an
        # up-to-scale model but keeps its frame-to-frame scale changes
        "flicker_scaled": flicker_on(geometry, scale_a * pred_a, scale_a * pred_b).rel,
        "flicker_truth": flicker_on(geometry, ga, gb).rel if dense else float("nan"),
    }
    return out


def score_frames(report: ModelReport, acc: RangeAccumulator, preds: dict[int, np.ndarray], truth: Truth, config: EvalConfig, progress: Callable[[int], None] | None) -> dict[str, Any]:
    """Scores every truth message of a bag against the prediction nearest its stamp (each prediction
    used once): a row per frame appended to ``report.frames``, pixels to ``acc``, the flicker against
    the previous matched frame. Returns the counts (truth, matched, unmatched, skipped and why).

    Raises:
        BagError: no prediction matches a truth stamp; sizes that differ.
        DepthRosError: the prediction is NaN in every matched frame.
    """
    pred_stamps = np.array(sorted(preds), dtype=np.int64)
    used: set[int] = set()
    counts = {"truth": 0, "predictions": len(preds), "matched": 0, "no_valid_pixels": 0, "all_nan_predictions": 0}
    prev: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
    first_truth_ns = None
    masks = read_masks(truth)
    counts["masks"] = 0
    counts["bad_truth_messages"] = 0
    for item in iter_truth(truth):
        counts["truth"] += 1
        if progress:
            progress(1)
        if item is None:
            counts["bad_truth_messages"] += 1
            prev = None
            continue
        stamp, gt = item
        first_truth_ns = stamp if first_truth_ns is None else first_truth_ns
        k = int(np.searchsorted(pred_stamps, stamp))
        near = [i for i in (k - 1, k) if 0 <= i < len(pred_stamps)]
        best = min(near, key=lambda i: abs(int(pred_stamps[i]) - stamp)) if near else None
        if best is None or abs(int(pred_stamps[best]) - stamp) > config.stamp_tolerance_ns or best in used:
            prev = None
            continue
        used.add(best)
        pred = preds[int(pred_stamps[best])]
        if pred.shape != gt.shape:
            raise BagError(f"{truth.path}: prediction {pred.shape[1]}x{pred.shape[0]} and truth {truth.topic} {gt.shape[1]}x{gt.shape[0]} differ in size")
        counts["matched"] += 1
        if not np.isfinite(pred).any():
            counts["all_nan_predictions"] += 1
            prev = None
            continue
        mask = _nearest(masks, stamp, config.stamp_tolerance_ns)
        if mask is not None and mask.shape != gt.shape:
            raise BagError(f"{truth.path}: mask {truth.mask_topic} {mask.shape[1]}x{mask.shape[0]} and truth {gt.shape[1]}x{gt.shape[0]} differ in size")
        counts["masks"] += mask is not None
        row = frame_metrics(pred, gt, config, truth.kind == "dense", mask)
        if row is None:
            counts["no_valid_pixels"] += 1
            prev = None
            continue
        acc.add(pred, gt)
        row = {"model": report.name, "bag": str(truth.path), "stamp_ns": stamp, "pred_stamp_ns": int(pred_stamps[best])} | row
        row.update(flicker=float("nan"), flicker_scaled=float("nan"), flicker_truth=float("nan"))
        T_w = truth.trajectory.lookup(stamp, config.stamp_tolerance_ns) if truth.trajectory is not None else None
        cur = (pred.astype(np.float64), gt.astype(np.float64), T_w, row["scale"]) if T_w is not None else None
        if cur is not None and prev is not None:
            row.update(_flicker(prev, cur, truth, config))
        prev = cur
        report.frames.append(row)
    if counts["matched"] == 0:
        pred_range = f"{pred_stamps[0]}..{pred_stamps[-1]}" if len(pred_stamps) else "none"
        raise BagError(
            f"{truth.path}: no prediction matches a truth stamp within {config.stamp_tolerance_ns / 1e9:g} s "
            f"({counts['truth']} truth messages on {truth.topic} from {first_truth_ns}, {len(preds)} predictions at {pred_range} ns); "
            "raise --stamp-tolerance or check the clocks"
        )
    if counts["all_nan_predictions"] == counts["matched"]:
        raise DepthRosError(f"{report.name}: the prediction is NaN everywhere in all {counts['matched']} matched frames of {truth.path}")
    counts["unmatched_truth"] = counts["truth"] - counts["matched"]
    counts["unmatched_predictions"] = len(preds) - counts["matched"]
    return counts


def _nearest(items: dict[int, np.ndarray], stamp: int, tolerance_ns: int) -> np.ndarray | None:
    if not items:
        return None
    key = min(items, key=lambda k: (abs(k - stamp), k))
    return items[key] if abs(key - stamp) <= tolerance_ns else None


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(report: ModelReport, acc: RangeAccumulator, config: EvalConfig) -> dict[str, Any]:
    """The summary of a report's frames: the mean over frames of each figure (median-scaled and
    metric), the by-range tables, scale ratio, boundary, flicker and odometry figures.

    Raises:
        DepthRosError: no frame with a valid truth pixel.
    """
    from depth_ros_training.eval.metrics import DepthMetrics

    rows = report.frames
    if not rows:
        raise DepthRosError(f"{report.name}: no frame with a valid truth pixel in [{config.min_depth_m:g}, {config.max_depth_m:g}] m")
    out: dict[str, Any] = {"aggregation": AGGREGATION, "frames": len(rows)}
    for mode in ("median", "metric"):
        items = [
            DepthMetrics(**{k: r[f"{mode}_{k}"] for k in METRIC_NAMES}, num_pixels=int(r["num_pixels"]), scale=r["scale"] if mode == "median" else 1.0)
            for r in rows
        ]
        out[mode] = mean_metrics(items).as_dict()
        out[f"{mode}_by_range"] = acc.ranges[mode].result()
    aligned_rows = [r for r in rows if math.isfinite(r["aligned_abs_rel"])]
    aligned = mean_metrics([DepthMetrics(**{k: r[f"aligned_{k}"] for k in METRIC_NAMES}, num_pixels=int(r["num_pixels"]), scale=1.0) for r in aligned_rows])
    out["aligned"] = aligned.as_dict() | {"frames": len(aligned_rows)} if aligned is not None else None
    edge = [r["edge_abs_rel"] for r in rows if math.isfinite(r.get("edge_abs_rel", float("nan")))]
    out["edge"] = {"abs_rel": _mean(edge), "frames": len(edge), "threshold": EDGE_THRESHOLD, "radius_px": EDGE_RADIUS_PX} if edge else None
    out["scale_ratio"] = scale_ratio_stats(np.array([r["scale"] for r in rows]))
    f1 = [r["boundary_f1"] for r in rows if math.isfinite(r["boundary_f1"])]
    out["boundary"] = (
        {"f1": _mean(f1), "precision": _mean([r["boundary_precision"] for r in rows]), "recall": _mean([r["boundary_recall"] for r in rows]), "frames": len(f1)}
        if f1 else None
    )
    mask_recall = [r["mask_boundary_recall"] for r in rows if math.isfinite(r["mask_boundary_recall"])]
    out["mask_boundary_recall"] = {"recall": _mean(mask_recall), "frames": len(mask_recall)} if mask_recall else None
    pairs = [r for r in rows if math.isfinite(r["flicker"])]
    out["flicker"] = (
        {k: _mean([r[k] for r in pairs]) for k in ("flicker", "flicker_scaled", "flicker_truth")} | {"pairs": len(pairs)}
        if pairs else None
    )
    out["odometry"] = _odometry_summary(report.bags)
    return out


#: The odometry figures of the summary: name -> path in a bag's ``evaluate_trajectory`` result.
_ODOMETRY_FIGURES = {
    "ate_se3_rmse_m": ("se3", "ate", "rmse_m"),
    "ate_sim3_rmse_m": ("sim3", "ate", "rmse_m"),
    "sim3_scale": ("sim3", "ate", "scale"),
    "rpe_se3_translation_pct": ("se3", "rpe", "translation_pct"),
    "rpe_sim3_translation_pct": ("sim3", "rpe", "translation_pct"),
    "rpe_rotation_deg_per_m": ("se3", "rpe", "rotation_deg_per_m"),
}


def _odometry_summary(bags: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean over the bags with an odometry result of each :data:`_ODOMETRY_FIGURES`; None
    when no bag has one."""
    results = [b["odometry"] for b in bags if isinstance(b.get("odometry"), dict) and "se3" in b["odometry"]]
    if not results:
        return None

    def figure(result: dict[str, Any], path: tuple[str, ...]) -> float:
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return float(value) if isinstance(value, (int, float)) else float("nan")

    out: dict[str, Any] = {name: _mean([figure(r, path) for r in results]) for name, path in _ODOMETRY_FIGURES.items()}
    return out | {"bags": len(results), "aggregation": "mean over bags"}
