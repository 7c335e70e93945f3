"""Depth error metrics (Eigen et al. 2014), median-scaled and metric.

For valid pixels (finite ground truth inside [min_depth_m, max_depth_m]) with ground truth
``g`` and prediction ``p`` (clamped to the same range):

* AbsRel = mean(|p - g| / g), SqRel = mean((p - g)^2 / g), RMSE = sqrt(mean((p - g)^2)),
  RMSE log = sqrt(mean((log p - log g)^2)),
* delta_k = fraction of pixels with max(p / g, g / p) < 1.25 ** k, k = 1, 2, 3.

Median scaling multiplies ``p`` by ``median(g) / median(p)`` per image first (for networks
that are right only up to scale); the metric variant uses ``p`` as it is.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["DepthMetrics", "compute_depth_metrics", "mean_metrics"]

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
    pred = np.asarray(pred_depth_m, dtype=np.float64)
    gt = np.asarray(gt_depth_m, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must have the same shape")
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
