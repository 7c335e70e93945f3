"""The robust fits behind the alignment scale policies (pure numpy): sparse metric points
(``sparse_alignment``: :func:`fit_scale`, :func:`fit_scale_shift`) and the ground plane
(``ground_plane``: :func:`fit_ground_plane`). The policies, their state and the conventions
are in :mod:`depth_ros.core.scale`, which re-exports these functions.
"""
from __future__ import annotations

import math

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import pixel_rays

__all__ = ["fit_ground_plane", "fit_scale", "fit_scale_shift", "ground_points", "sample_at_points"]


# -- sparse alignment ---------------------------------------------------------------------
def sample_at_points(x: np.ndarray, camera: CameraModel, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled inverse depth at the pixels where metric points project.

    Args:
        x: (H, W) unscaled inverse depth at camera resolution (NaN invalid).
        camera: intrinsics at (W, H).
        points_cam: (N, 3) metres in the camera optical frame.

    Returns:
        (x_at, z_m): (M,) float64 each, for the points in front of the camera that project
        inside the image (nearest pixel) onto a finite, positive ``x`` (for scale-only fits) or
        any finite ``x`` (the caller filters).
    """
    pts = np.asarray(points_cam, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"sparse points must be (N, 3) metres in the camera optical frame, got shape {pts.shape}")
    pts = pts[np.isfinite(pts).all(axis=1) & (pts[:, 2] > 0)]
    u = np.rint(camera.fx * pts[:, 0] / pts[:, 2] + camera.K[0, 1] * pts[:, 1] / pts[:, 2] + camera.cx)
    v = np.rint(camera.fy * pts[:, 1] / pts[:, 2] + camera.cy)
    inside = (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    x_at = x[v[inside].astype(np.intp), u[inside].astype(np.intp)].astype(np.float64)
    z_m = pts[inside, 2]
    finite = np.isfinite(x_at)
    return x_at[finite], z_m[finite]


def fit_scale(depth_rel: np.ndarray, depth_m: np.ndarray, inlier_threshold: float = 0.05,
              iterations: int = 5) -> tuple[float, np.ndarray]:
    """Robust least-squares scale ``s`` with ``depth_m ~= s * depth_rel``.

    Least squares of ``r = log(depth_m / depth_rel) - log s`` (relative error, scale
    invariant) from a median start, trimming residuals beyond ``max(log(1 + threshold),
    3 * 1.4826 * MAD)`` and refitting the mean, ``iterations`` times.

    Returns:
        (scale, inlier mask (N,) bool).
    """
    ok = (depth_rel > 0) & (depth_m > 0) & np.isfinite(depth_rel) & np.isfinite(depth_m)
    if not ok.any():
        return math.nan, ok
    r = np.full(depth_rel.shape, np.inf)
    r[ok] = np.log(depth_m[ok]) - np.log(depth_rel[ok])
    log_s = float(np.median(r[ok]))
    inliers = ok
    for _ in range(iterations):
        res = np.abs(r - log_s)
        new = _adaptive_inliers(res, ok, math.log1p(inlier_threshold))
        if not new.any():
            break
        log_s = float(np.mean(r[new]))
        if np.array_equal(new, inliers):
            break
        inliers = new
    return math.exp(log_s), _adaptive_inliers(np.abs(r - log_s), ok, math.log1p(inlier_threshold))


def _adaptive_inliers(res: np.ndarray, ok: np.ndarray, threshold: float) -> np.ndarray:
    """``res <= min(threshold, 3 sigma)``: sigma from the MAD of the residuals within ``threshold``.

    Tightening to the measured noise keeps gross outliers that happen to fall inside the
    user's bound (and near-miss structure, e.g. a wall meeting the floor) out of the refit.
    """
    within = ok & (res <= threshold)
    if not within.any():
        return within
    sigma = 1.4826 * float(np.median(res[within]))
    return ok & (res <= min(threshold, max(3.0 * sigma, 1e-3 * threshold)))


def _weighted_affine(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares of ``y ~= s x + t``."""
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    var = (w * (x - mx) ** 2).sum()
    if var <= 0:
        return math.nan, math.nan
    s = (w * (x - mx) * (y - my)).sum() / var
    return float(s), float(my - s * mx)


def fit_scale_shift(x: np.ndarray, inv_depth_m: np.ndarray, inlier_threshold: float = 0.05, iterations: int = 200,
                    rng: np.random.Generator | None = None, max_ransac_points: int = 2000) -> tuple[float, float, np.ndarray]:
    """Robust ``inv_depth_m ~= s * x + t`` (MiDaS alignment in inverse depth), ``s > 0``.

    RANSAC over point pairs (scored on at most ``max_ransac_points`` points, relative
    residual ``|s x + t - y| / y <= inlier_threshold``), then least squares of the relative
    residual (weights ``1 / y^2``) on the inliers, re-selecting inliers (within
    ``min(inlier_threshold, 3 sigma_MAD)``) 3 times.

    Returns:
        (s, t, inlier mask (N,) bool); NaNs and an empty mask when no fit exists.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(inv_depth_m, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
    n = int(ok.sum())
    none = (math.nan, math.nan, np.zeros(x.shape, bool))
    if n < 2:
        return none
    idx = np.flatnonzero(ok)
    score_idx = idx if n <= max_ransac_points else rng.choice(idx, max_ransac_points, replace=False)
    pairs = rng.integers(0, n, size=(iterations, 2))
    x1, x2 = x[idx[pairs[:, 0]]], x[idx[pairs[:, 1]]]
    y1, y2 = y[idx[pairs[:, 0]]], y[idx[pairs[:, 1]]]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (y2 - y1) / (x2 - x1)
        t = y1 - s * x1
        good = np.isfinite(s) & (s > 0)
        if not good.any():
            return none
        s, t = s[good], t[good]
        res = np.abs(s[:, None] * x[score_idx][None, :] + t[:, None] - y[score_idx][None, :]) / y[score_idx][None, :]
    best = int(np.argmax((res <= inlier_threshold).sum(axis=1)))
    s_best, t_best = float(s[best]), float(t[best])
    inliers = np.zeros(x.shape, bool)
    for _ in range(3):
        with np.errstate(invalid="ignore"):
            new = _adaptive_inliers(np.abs(s_best * x + t_best - y) / y, ok, inlier_threshold)
        if new.sum() < 2:
            break
        s_new, t_new = _weighted_affine(x[new], y[new], 1.0 / y[new] ** 2)
        if not (math.isfinite(s_new) and s_new > 0):
            break
        s_best, t_best, inliers = s_new, t_new, new
    if not inliers.any():
        return none
    return s_best, t_best, inliers


# -- ground plane -------------------------------------------------------------------------
def ground_points(x: np.ndarray, camera: CameraModel, region: float, samples: int) -> np.ndarray:
    """Back-projected points of the lower image region on a regular grid.

    Args:
        x: (H, W) unscaled inverse depth (NaN / <= 0 invalid) at camera resolution.
        camera: intrinsics at (W, H).
        region: lower fraction of rows used.
        samples: about how many pixels to take.

    Returns:
        (N, 3) float64 unscaled points in the camera optical frame (finite, z > 0).
    """
    h, w = x.shape
    v0 = min(h - 1, int(math.floor(h * (1.0 - region))))
    stride = max(1, int(math.sqrt((h - v0) * w / max(samples, 1))))
    x_s = x[v0::stride, ::stride].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(x_s > 0, 1.0 / x_s, np.nan)
    rays = pixel_rays(camera)[v0::stride, ::stride].astype(np.float64)
    pts = (rays * z[..., None]).reshape(-1, 3)
    return pts[np.isfinite(pts).all(axis=1)]


def fit_ground_plane(points: np.ndarray, gravity_cam: np.ndarray, max_tilt_deg: float, inlier_threshold: float,
                     iterations: int = 200, rng: np.random.Generator | None = None,
                     max_ransac_points: int = 1000) -> tuple[np.ndarray, float, np.ndarray]:
    """RANSAC + least-squares plane ``n . p = h`` under the camera, normal near gravity.

    Args:
        points: (N, 3) points in the camera optical frame (any consistent unit).
        gravity_cam: (3,) gravity direction in the optical frame.
        max_tilt_deg: largest accepted angle between the plane normal and gravity.
        inlier_threshold: inlier distance as a fraction of the plane's distance ``h``.
        iterations: RANSAC hypotheses (scored on at most ``max_ransac_points`` points).
        rng: random generator (seeded by the caller for reproducible results).

    The least-squares refit (centroid + smallest singular vector) keeps points within
    ``min(inlier_threshold * h, 3 sigma_MAD)`` of the plane, iterated 3 times.

    Returns:
        (n (3,) unit normal pointing along gravity, h > 0 the camera's distance to the plane
        in the points' unit, inlier mask (N,)); h is NaN when no plane qualifies.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    g = np.asarray(gravity_cam, dtype=np.float64)
    g = g / np.linalg.norm(g)
    cos_max = math.cos(math.radians(max_tilt_deg))
    n_pts = len(points)
    none = (g, math.nan, np.zeros(n_pts, bool))
    if n_pts < 3:
        return none
    tri = points[rng.integers(0, n_pts, size=(iterations, 3))]  # (I, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = normals / norms[:, None]
        normals *= np.sign(normals @ g)[:, None]  # point along gravity (down)
        heights = np.einsum("ij,ij->i", normals, tri[:, 0])
        good = (norms > 0) & (normals @ g >= cos_max) & (heights > 0)
    if not good.any():
        return none
    normals, heights = normals[good], heights[good]
    score_pts = points if n_pts <= max_ransac_points else points[rng.choice(n_pts, max_ransac_points, replace=False)]
    dist = np.abs(score_pts @ normals.T - heights[None, :])  # (n, I)
    best = int(np.argmax((dist <= inlier_threshold * heights[None, :]).sum(axis=0)))
    n, h = normals[best], float(heights[best])
    all_ok = np.ones(n_pts, bool)
    inliers = np.abs(points @ n - h) <= inlier_threshold * h
    for _ in range(3):
        if inliers.sum() < 3:
            return none
        sel = points[inliers]
        centroid = sel.mean(axis=0)
        n_new = np.linalg.svd(sel - centroid, full_matrices=False)[2][-1]
        n_new *= np.sign(n_new @ g) or 1.0
        h_new = float(n_new @ centroid)
        if h_new <= 0 or n_new @ g < cos_max:
            return none
        n, h = n_new, h_new
        inliers = _adaptive_inliers(np.abs(points @ n - h), all_ok, inlier_threshold * h)
    return n, h, inliers
