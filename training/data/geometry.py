"""Rigid-transform helpers for bag odometry (pure numpy).

Convention: ``T_a_b`` is a (4, 4) float64 homogeneous transform mapping points expressed in
frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``). Quaternions are (x, y, z, w), as in
geometry_msgs.
"""
from __future__ import annotations

import numpy as np

__all__ = ["interpolate_poses", "quat_to_matrix", "slerp", "transform_from_xyz_quat"]


def quat_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices of unit quaternions.

    Args:
        quat_xyzw: (..., 4) quaternions (x, y, z, w); normalised here.

    Returns:
        (..., 3, 3) float64 rotation matrices.

    Raises:
        ValueError: wrong shape or a zero-norm quaternion.
    """
    q = np.asarray(quat_xyzw, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"quaternions must have shape (..., 4), got {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12) or not np.all(np.isfinite(norm)):
        raise ValueError("quaternion with zero or non-finite norm")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    R = np.empty(q.shape[:-1] + (3, 3))
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - z * w)
    R[..., 0, 2] = 2 * (x * z + y * w)
    R[..., 1, 0] = 2 * (x * y + z * w)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - x * w)
    R[..., 2, 0] = 2 * (x * z - y * w)
    R[..., 2, 1] = 2 * (y * z + x * w)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def transform_from_xyz_quat(xyz: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """(..., 4, 4) transforms from (..., 3) translations and (..., 4) quaternions."""
    xyz = np.asarray(xyz, dtype=np.float64)
    R = quat_to_matrix(quat_xyzw)
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = xyz
    T[..., 3, 3] = 1.0
    return T


def slerp(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of (N, 4) unit quaternions at (N,) fractions in [0, 1]."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64).copy()
    alpha = np.asarray(alpha, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # shortest arc
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    w0 = np.where(small, 1 - alpha, np.sin((1 - alpha) * theta) / np.where(small, 1, sin_theta))
    w1 = np.where(small, alpha, np.sin(alpha * theta) / np.where(small, 1, sin_theta))
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


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
