"""Temporal consistency (flicker) of a depth sequence, with known camera motion.

A per-frame network can be accurate on average and still flicker: the same wall jumps back and
forth from one frame to the next. With the camera motion known (truth poses, or odometry), the
depth of frame a predicts the depth of frame b: each pixel p of a is lifted with its depth,
moved by ``T_b_a`` and projected into b at p'. The flicker of a pair is the mean, over static
pixels, of the relative disagreement

    |D_b(p') - z_b(p)| / z_b(p),    z_b(p) = [T_b_a (D_a(p) K^-1 p~)]_z

where ``D_b(p')`` is read bilinearly in *inverse* depth (exact on planes, whose inverse depth is
affine in the pixel coordinates), and is invalid where any of the four neighbours is invalid.

Where the pixel correspondence p -> p' comes from: the true depth of frame a when given (so a
wrong depth does not move the comparison elsewhere), else the evaluated depth itself. Static,
visible pixels: with true depth for both frames, those where the *truth* agrees with itself
within ``static_tol`` (moving objects, occlusions and disocclusions fall out); else every pixel
(or a given ``static_mask``). The truth against itself scores 0 up to interpolation at
pixels on depth edges that pass the tolerance (exactly 0 on piecewise-planar scenes away from
edges).

Convention: integer pixel coordinates are pixel centres (as :class:`~depth_ros.core.camera.CameraModel`);
``T_b_a`` maps points in camera a's optical frame into camera b's: ``T_b_a = inv(T_w_b) @ T_w_a``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BilinearTaps",
    "FlickerResult",
    "PairGeometry",
    "bilinear_taps",
    "flicker_on",
    "pair_geometry",
    "sample_depth_bilinear",
    "sample_with_taps",
    "temporal_flicker",
    "warp_points",
]


@dataclass(frozen=True)
class FlickerResult:
    """Flicker of one frame pair: ``rel`` the mean relative disagreement (NaN if no pixel),
    ``num_pixels`` the pixels it averages, ``static_fraction`` their share of frame a's pixels."""

    rel: float
    num_pixels: int
    static_fraction: float


def _check_depth(depth: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2 or (shape is not None and d.shape != shape):
        raise ValueError(f"{name} must be (H, W){' ' + str(shape) if shape else ''}, got shape {d.shape}")
    return d


def _rays(K: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Ray x/z (1, W) and y/z (H, 1) through the pixel centres."""
    h, w = shape
    return ((np.arange(w, dtype=np.float64) - K[0, 2]) / K[0, 0])[None, :], ((np.arange(h, dtype=np.float64) - K[1, 2]) / K[1, 1])[:, None]


def _check_geometry(T_b_a: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T = np.asarray(T_b_a, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if T.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"T_b_a must be (4, 4) and K (3, 3), got {T.shape} and {K.shape}")
    return T, K


def _depth_in_b(depth_a: np.ndarray, T: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """z in camera b of frame a's pixels lifted with ``depth_a`` (NaN behind the camera)."""
    z = depth_a * (T[2, 0] * rx + T[2, 1] * ry + T[2, 2]) + T[2, 3]
    with np.errstate(invalid="ignore"):
        return np.where(z > 0, z, np.nan)


def warp_points(depth_a_m: np.ndarray, T_b_a: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where frame a's pixels land in frame b.

    Args:
        depth_a_m: (H, W) depth of frame a, metres (NaN invalid).
        T_b_a: (4, 4) maps camera a's optical frame into camera b's.
        K: (3, 3) intrinsics, pixels (both frames).

    Returns:
        (u_b, v_b, z_b): (H, W) pixel coordinates in b and depth in b (NaN where invalid or
        behind the camera).
    """
    d = _check_depth(depth_a_m, "depth_a_m")
    T, K = _check_geometry(T_b_a, K)
    rx, ry = _rays(K, d.shape)
    z = _depth_in_b(d, T, rx, ry)
    x = d * (T[0, 0] * rx + T[0, 1] * ry + T[0, 2]) + T[0, 3]
    y = d * (T[1, 0] * rx + T[1, 1] * ry + T[1, 2]) + T[1, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2], z


@dataclass(frozen=True)
class BilinearTaps:
    """Where bilinear samples at (u, v) read an (H, W) image: the flat index of the top-left
    neighbour, the fractions towards the right / lower neighbour, and which samples lie inside.
    Computed once per pair of frames and shared by every depth sampled there."""

    index: np.ndarray
    fx: np.ndarray
    fy: np.ndarray
    inside: np.ndarray
    shape: tuple[int, int]


def bilinear_taps(u: np.ndarray, v: np.ndarray, shape: tuple[int, int]) -> BilinearTaps:
    """:class:`BilinearTaps` of sample positions ``u``, ``v`` (any shape, pixel-centre
    convention) in an image of ``shape`` (H, W), H and W >= 2."""
    h, w = shape
    if h < 2 or w < 2:
        raise ValueError(f"depth_m must be at least 2 x 2 to interpolate, got shape {shape}")
    inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)  # False for NaN
    uc = np.where(inside, u, 0.0)
    vc = np.where(inside, v, 0.0)
    # the top-left neighbour, kept one short of the last row / column so that +1 / +w stay
    # inside (the weight of the far neighbour is then 1 on the last row / column)
    x0 = np.minimum(uc.astype(np.int64), w - 2)
    y0 = np.minimum(vc.astype(np.int64), h - 2)
    return BilinearTaps(y0 * w + x0, uc - x0, vc - y0, inside, (h, w))


def sample_with_taps(depth_m: np.ndarray, taps: BilinearTaps) -> np.ndarray:
    """:func:`sample_depth_bilinear` at precomputed taps (``depth_m`` of ``taps.shape``)."""
    d = _check_depth(depth_m, "depth_m", taps.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(np.isfinite(d) & (d > 0), 1.0 / d, np.nan).ravel()
    i, fx, fy, w = taps.index, taps.fx, taps.fy, taps.shape[1]
    top = inv.take(i) * (1 - fx) + inv.take(i + 1) * fx
    bottom = inv.take(i + w) * (1 - fx) + inv.take(i + w + 1) * fx
    inv_s = top * (1 - fy) + bottom * fy
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(taps.inside & (inv_s > 0), 1.0 / inv_s, np.nan)


def sample_depth_bilinear(depth_m: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Depth at sub-pixel positions, interpolated bilinearly in inverse depth.

    Args:
        depth_m: (H, W) depth, metres (NaN / <= 0 invalid).
        u, v: sample positions (any shape), pixel-centre convention.

    Returns:
        Depth at (u, v), NaN outside ``[0, W-1] x [0, H-1]`` or next to an invalid pixel.
    """
    d = _check_depth(depth_m, "depth_m")
    return sample_with_taps(d, bilinear_taps(u, v, d.shape))


@dataclass(frozen=True)
class PairGeometry:
    """Correspondences of a frame pair, shared by every depth evaluated on it: where frame a's
    pixels land in b (``u_b``, ``v_b``, (H, W)), which are static (``keep``), and the motion."""

    u_b: np.ndarray
    v_b: np.ndarray
    keep: np.ndarray
    T_b_a: np.ndarray
    K: np.ndarray
    taps: BilinearTaps


def pair_geometry(
    corr_depth_a_m: np.ndarray,
    T_b_a: np.ndarray,
    K: np.ndarray,
    gt_b_m: np.ndarray | None = None,
    static_tol: float = 0.02,
    static_mask: np.ndarray | None = None,
) -> PairGeometry:
    """The correspondences from frame a's depth ``corr_depth_a_m`` (the truth where there is
    one); static pixels where ``gt_b_m`` agrees with it within ``static_tol`` (all when None),
    ANDed with ``static_mask``. Shapes (H, W); see :func:`temporal_flicker`."""
    corr = _check_depth(corr_depth_a_m, "corr_depth_a_m")
    if not static_tol > 0:
        raise ValueError(f"static_tol must be > 0, got {static_tol}")
    keep = np.ones(corr.shape, dtype=bool) if static_mask is None else np.asarray(static_mask, dtype=bool).copy()
    if keep.shape != corr.shape:
        raise ValueError(f"static_mask must be {corr.shape}, got {keep.shape}")
    u_b, v_b, z_corr = warp_points(corr, T_b_a, K)
    taps = bilinear_taps(u_b, v_b, corr.shape)
    if gt_b_m is not None:
        gb = _check_depth(gt_b_m, "gt_b_m", corr.shape)
        with np.errstate(invalid="ignore"):
            keep &= np.abs(sample_with_taps(gb, taps) - z_corr) < static_tol * z_corr
    T, K = _check_geometry(T_b_a, K)
    return PairGeometry(u_b, v_b, keep, T, K, taps)


def flicker_on(geometry: PairGeometry, pred_a_m: np.ndarray, pred_b_m: np.ndarray) -> FlickerResult:
    """Flicker of a depth pair (each (H, W) metres) on precomputed correspondences."""
    pa = _check_depth(pred_a_m, "pred_a_m", geometry.keep.shape)
    pb = _check_depth(pred_b_m, "pred_b_m", pa.shape)
    rx, ry = _rays(geometry.K, pa.shape)
    z_pred = _depth_in_b(pa, geometry.T_b_a, rx, ry)
    seen = sample_with_taps(pb, geometry.taps)
    with np.errstate(invalid="ignore"):
        rel = np.abs(seen - z_pred) / z_pred
    ok = geometry.keep & np.isfinite(rel)
    n = int(ok.sum())
    return FlickerResult(rel=float(rel[ok].mean()) if n else float("nan"), num_pixels=n, static_fraction=n / pa.size)


def temporal_flicker(
    pred_a_m: np.ndarray,
    pred_b_m: np.ndarray,
    T_b_a: np.ndarray,
    K: np.ndarray,
    gt_a_m: np.ndarray | None = None,
    gt_b_m: np.ndarray | None = None,
    static_tol: float = 0.02,
    static_mask: np.ndarray | None = None,
) -> FlickerResult:
    """Flicker between frame a and its neighbour b (see the module doc).

    Args:
        pred_a_m, pred_b_m: (H, W) evaluated depth of frames a and b, metres (NaN invalid).
        T_b_a: (4, 4) camera a -> camera b (truth or odometry).
        K: (3, 3) intrinsics at (W, H), pixels.
        gt_a_m, gt_b_m: (H, W) true depth (optional): correspondences from gt_a, static pixels
            where the truth agrees with itself within ``static_tol`` (both needed for that).
        static_tol: relative disagreement of the truth above which a pixel is not static.
        static_mask: (H, W) bool pixels of a to use (ANDed with the above).

    Returns:
        :class:`FlickerResult`.
    """
    pa = _check_depth(pred_a_m, "pred_a_m")
    _check_depth(pred_b_m, "pred_b_m", pa.shape)
    corr = pa if gt_a_m is None else _check_depth(gt_a_m, "gt_a_m", pa.shape)
    geometry = pair_geometry(corr, T_b_a, K, gt_b_m if gt_a_m is not None else None, static_tol, static_mask)
    return flicker_on(geometry, pa, pred_b_m)
