"""Rigid-transform helpers for bag odometry (pure numpy).

Convention: ``T_a_b`` is a (4, 4) float64 homogeneous transform mapping points expressed in
frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``). Quaternions are (x, y, z, w), as in
geometry_msgs; the rotation math is :mod:`depth_ros.core.rotation`.
"""
from __future__ import annotations

import numpy as np

from depth_ros.core.rotation import quaternion_to_matrix, slerp

__all__ = ["interpolate_poses", "transform_from_xyz_quat"]


def transform_from_xyz_quat(xyz: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """(..., 4, 4) transforms from (..., 3) translations and (..., 4) quaternions."""
    xyz = np.asarray(xyz, dtype=np.float64)
    R = quaternion_to_matrix(quat_xyzw)
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = xyz
    T[..., 3, 3] = 1.0
    return T


def interpolate_poses(
    stamps_ns: np.ndarray, xyz: np.ndarray, quat_xyzw: np.ndarray, query_ns: np.ndarray, max_gap_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Poses interpolated at query stamps (linear translation, slerp rotation).

    Args:
        stamps_ns: (M,) int64 increasing pose stamps.
        xyz: (M, 3) translations (metres).
        quat_xyzw: (M, 4) rotations.
        query_ns: (N,) int64 stamps to interpolate at.
        max_gap_ns: a query further than this from its bracketing poses, or outside
            [stamps_ns[0], stamps_ns[-1]], is invalid.

    Returns:
        (T, valid): (N, 4, 4) float64 transforms (identity where invalid) and (N,) bool.
    """
    stamps_ns = np.asarray(stamps_ns, dtype=np.int64)
    query_ns = np.asarray(query_ns, dtype=np.int64)
    n = len(query_ns)
    T = np.tile(np.eye(4), (n, 1, 1))
    if len(stamps_ns) == 0:
        return T, np.zeros(n, dtype=bool)
    hi = np.searchsorted(stamps_ns, query_ns, side="left").clip(0, len(stamps_ns) - 1)
    exact = stamps_ns[hi] == query_ns
    lo = np.where(exact, hi, (hi - 1).clip(0))
    inside = (query_ns >= stamps_ns[0]) & (query_ns <= stamps_ns[-1])
    gap = stamps_ns[hi] - stamps_ns[lo]
    valid = inside & (exact | ((gap > 0) & (gap <= max_gap_ns)))
    span = np.where(gap > 0, gap, 1).astype(np.float64)
    alpha = np.where(exact, 0.0, (query_ns - stamps_ns[lo]) / span).clip(0.0, 1.0)
    p = xyz[lo] + alpha[:, None] * (xyz[hi] - xyz[lo])
    q = slerp(quat_xyzw[lo], quat_xyzw[hi], alpha)
    T[valid] = transform_from_xyz_quat(p[valid], q[valid])
    return T, valid
