"""Depth error metrics (Eigen et al. 2014), median-scaled and metric.

For valid pixels (finite ground truth inside [min_depth_m, max_depth_m]) with ground truth
``g`` and prediction ``p`` (clamped to the same range):

* AbsRel = mean(|p - g| / g), SqRel = mean((p - g)^2 / g), RMSE = sqrt(mean((p - g)^2)),
  RMSE log = sqrt(mean((log p - log g)^2)),
* delta_k = fraction of pixels with max(p / g, g / p) < 1.25 ** k, k = 1, 2, 3.

Median scaling multiplies ``p`` by ``median(g) / median(p)`` per image first (for networks
that are right only up to scale); the metric variant uses ``p`` as it is.

Scale-and-shift alignment (:func:`scale_shift_aligned`, for affine-invariant inverse depth such as
MiDaS's) is MiDaS's evaluation protocol: per image, ``s`` and ``t`` fitted by least squares so that
``s / p + t`` matches ``1 / g`` on the valid pixels (the normal equations of the authors' posted
``compute_scale_and_shift``), the aligned inverse depth clamped from below at ``1 / max_depth_m``
(their disparity cap), then ``1 / (s / p + t)`` scored as a metric prediction. Where it differs
from that code: it aligns the inverse of the depth the runtime wrote rather than the network's raw
output (for every scale policy that inverse is an affine map of the output, so the fitted result is
the same); and a singular system (fewer than two valid pixels, a constant prediction) gives no
aligned figure for the frame, where the code leaves scale and shift at 0 (an all-capped prediction).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["DepthMetrics", "RangeErrors", "compute_depth_metrics", "mean_metrics", "scale_ratio_stats", "scale_shift_aligned"]

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


@dataclass(frozen=True)
class DepthMetrics:
    """Errors of one image (or a mean over images). ``num_pixels`` valid pixels were used;
    ``scale`` is the median-scaling factor applied (1.0 for metric)."""

    abs_rel: float
    sq_rel: float
    rmse: float
    rmse_log: float
    delta1: float
    delta2: float
    delta3: float
    num_pixels: int
    scale: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _pair(pred_depth_m: np.ndarray, gt_depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both maps as float64; ValueError when their shapes differ."""
    pred = np.asarray(pred_depth_m, dtype=np.float64)
    gt = np.asarray(gt_depth_m, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must have the same shape")
    return pred, gt


def compute_depth_metrics(
    pred_depth_m: np.ndarray,
    gt_depth_m: np.ndarray,
    median_scaling: bool,
    min_depth_m: float = 1e-3,
    max_depth_m: float = 80.0,
) -> DepthMetrics | None:
    """Metrics of one depth image against ground truth of the same shape.

    Args:
        pred_depth_m: (H, W) predicted depth, metres (or up to scale with median_scaling).
        gt_depth_m: (H, W) ground-truth depth, metres; NaN / inf / <= 0 are invalid.
        median_scaling: multiply the prediction by median(gt) / median(pred) first.
        min_depth_m, max_depth_m: the evaluated range (both the valid-gt mask and the clamp).

    Returns:
        The metrics, or None when no pixel is valid.

    Raises:
        ValueError: shapes differ.
    """
    pred, gt = _pair(pred_depth_m, gt_depth_m)
    valid = np.isfinite(gt) & (gt >= min_depth_m) & (gt <= max_depth_m) & np.isfinite(pred) & (pred > 0)
    if not valid.any():
        return None
    p, g = pred[valid], gt[valid]
    scale = float(np.median(g) / np.median(p)) if median_scaling else 1.0
    p = np.clip(p * scale, min_depth_m, max_depth_m)
    ratio = np.maximum(p / g, g / p)
    return DepthMetrics(
        abs_rel=float(np.mean(np.abs(p - g) / g)),
        sq_rel=float(np.mean((p - g) ** 2 / g)),
        rmse=float(np.sqrt(np.mean((p - g) ** 2))),
        rmse_log=float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        delta1=float(np.mean(ratio < 1.25)),
        delta2=float(np.mean(ratio < 1.25**2)),
        delta3=float(np.mean(ratio < 1.25**3)),
        num_pixels=int(valid.sum()),
        scale=scale,
    )


def scale_shift_aligned(pred_depth_m: np.ndarray, gt_depth_m: np.ndarray, min_depth_m: float = 1e-3, max_depth_m: float = 80.0) -> np.ndarray | None:
    """The prediction after per-image scale-and-shift alignment in inverse depth (module docstring).

    Args:
        pred_depth_m: (H, W) predicted depth (any positive scale; its inverse is what is aligned);
            NaN / inf / <= 0 invalid and left NaN.
        gt_depth_m: (H, W) truth, metres; valid inside [min_depth_m, max_depth_m].

    Returns:
        (H, W) float64 aligned depth (NaN where the prediction is invalid), or None when fewer than
        two pixels are valid or the system is singular (a constant prediction).

    Raises:
        ValueError: shapes differ.
    """
    pred, gt = _pair(pred_depth_m, gt_depth_m)
    with np.errstate(invalid="ignore", divide="ignore"):
        pred_ok = np.isfinite(pred) & (pred > 0)
        valid = pred_ok & np.isfinite(gt) & (gt >= min_depth_m) & (gt <= max_depth_m)
        inv = np.where(pred_ok, 1.0 / np.where(pred_ok, pred, 1.0), np.nan)
    if int(valid.sum()) < 2:
        return None
    x, y = inv[valid], 1.0 / gt[valid]
    a00, a01, a11 = float(np.dot(x, x)), float(x.sum()), float(x.size)
    b0, b1 = float(np.dot(x, y)), float(y.sum())
    det = a00 * a11 - a01 * a01
    if not det > 1e-12 * max(a00 * a11, 1e-300):
        return None
    s = (a11 * b0 - a01 * b1) / det
    t = (-a01 * b0 + a00 * b1) / det
    aligned = np.maximum(s * inv + t, 1.0 / max_depth_m)
    return np.where(pred_ok, 1.0 / aligned, np.nan)


def mean_metrics(items: list[DepthMetrics]) -> DepthMetrics | None:
    """Per-image mean of the metrics (the KITTI convention), None for an empty list."""
    if not items:
        return None
    values = {name: float(np.mean([getattr(m, name) for m in items])) for name in METRIC_NAMES}
    return DepthMetrics(
        **values,
        num_pixels=int(sum(m.num_pixels for m in items)),
        scale=float(np.mean([m.scale for m in items])),
    )


class RangeErrors:
    """AbsRel and bias by ground-truth depth range, pooled over pixels of many images.

    Where a network is wrong matters as much as how much: an AbsRel of 0.2 can be every pixel
    20 % off, or near obstacles twice too far. ``add`` one image at a time; ``result`` gives,
    per range ``[lo, hi)`` metres, the share of valid pixels, their AbsRel, and the bias
    ``exp(mean(log(p / g)))`` (> 1: predicted too far).

    Args:
        edges: increasing range boundaries in metres, e.g. ``(0, 2, 5, 10, 30)``.
        median_scaling, min_depth_m, max_depth_m: as :func:`compute_depth_metrics` (the
            median scale is taken over the whole image, not per range).
    """

    def __init__(self, edges: tuple[float, ...], median_scaling: bool, min_depth_m: float = 1e-3, max_depth_m: float = 80.0) -> None:
        if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
            raise ValueError(f"edges must be at least two increasing values, got {edges}")
        self.edges = tuple(float(e) for e in edges)
        self.median_scaling = median_scaling
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        n = len(self.edges) - 1
        self._count = np.zeros(n, dtype=np.int64)
        self._abs_rel = np.zeros(n)
        self._log_ratio = np.zeros(n)

    def add(self, pred_depth_m: np.ndarray, gt_depth_m: np.ndarray) -> None:
        pred = np.asarray(pred_depth_m, dtype=np.float64)
        gt = np.asarray(gt_depth_m, dtype=np.float64)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must have the same shape")
        valid = np.isfinite(gt) & (gt >= self.min_depth_m) & (gt <= self.max_depth_m) & np.isfinite(pred) & (pred > 0)
        if not valid.any():
            return
        p, g = pred[valid], gt[valid]
        scale = float(np.median(g) / np.median(p)) if self.median_scaling else 1.0
        p = np.clip(p * scale, self.min_depth_m, self.max_depth_m)
        bins = np.digitize(g, self.edges) - 1
        inside = (bins >= 0) & (bins < len(self._count))
        bins, p, g = bins[inside], p[inside], g[inside]
        self._count += np.bincount(bins, minlength=len(self._count))
        self._abs_rel += np.bincount(bins, weights=np.abs(p - g) / g, minlength=len(self._count))
        self._log_ratio += np.bincount(bins, weights=np.log(p / g), minlength=len(self._count))

    def result(self) -> dict[str, dict[str, float]]:
        """``{"lo-hi m": {"fraction", "abs_rel", "bias"}}`` for ranges with pixels."""
        total = max(1, int(self._count.sum()))
        out = {}
        for i, n in enumerate(self._count):
            if n:
                name = f"{self.edges[i]:g}-{self.edges[i + 1]:g} m"
                out[name] = {
                    "fraction": float(n / total),
                    "abs_rel": float(self._abs_rel[i] / n),
                    "bias": float(np.exp(self._log_ratio[i] / n)),
                }
        return out


def scale_ratio_stats(scales: np.ndarray) -> dict[str, float]:
    """Spread over frames of the per-frame scale ratio median(gt) / median(pred).

    A metric model's ratio should stay at 1 from frame to frame; its drift is what a robot
    suffers from. Returns ``{"mean", "median", "std", "cv" (std / mean), "min", "max", "p5",
    "p95", "frames"}`` (population std; NaN values for no frame).
    """
    s = np.asarray(scales, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if s.size == 0:
        nan = float("nan")
        return {"mean": nan, "median": nan, "std": nan, "cv": nan, "min": nan, "max": nan, "p5": nan, "p95": nan, "frames": 0}
    mean = float(s.mean())
    std = float(s.std())
    return {
        "mean": mean, "median": float(np.median(s)), "std": std, "cv": std / mean if mean else float("nan"),
        "min": float(s.min()), "max": float(s.max()), "p5": float(np.percentile(s, 5)), "p95": float(np.percentile(s, 95)),
        "frames": int(s.size),
    }
