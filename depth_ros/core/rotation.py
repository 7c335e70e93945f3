"""Rotation math in one place (pure numpy): quaternions, rotation vectors, roll/pitch/yaw.

Conventions:
    - Rotation matrices act on column vectors: ``p_a = R_a_b @ p_b`` (a rotation maps points of
      frame ``b`` into frame ``a``), as tf2 and the rest of the package use them.
    - Quaternions are Hamilton quaternions stored in ROS order ``(x, y, z, w)`` (the order of
      geometry_msgs/Quaternion and of ``/tf``), ``w`` the scalar part; ``q`` and ``-q`` are the
      same rotation. Functions returning a quaternion return the unit one with ``w >= 0``.
    - A rotation vector (axis-angle) is ``theta * axis`` with ``theta`` in radians, the rotation
      being counter-clockwise by ``theta`` about the unit ``axis`` (right-hand rule); the ones
      returned here have ``theta`` in ``[0, pi]``.
    - Roll/pitch/yaw are the fixed-axis x, y, z angles of REP 103: ``R = Rz(yaw) Ry(pitch) Rx(roll)``.

Every function takes a leading batch shape ``...`` (none for a single rotation), works in
float64 and raises ``ValueError`` naming the shape it got when the trailing shape is wrong or an
input is not finite.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "rotation_angle",
    "rpy_to_matrix",
    "skew",
    "slerp",
]

#: Below this angle (rad) the Rodrigues coefficients use their Taylor series: the closed forms
#: divide by theta and lose digits; the series' first dropped terms are ~theta^4 / 120 < 1e-18.
_SMALL_ANGLE_RAD = 1e-4

#: A quaternion with a norm below this is refused rather than normalised into noise.
_MIN_QUATERNION_NORM = 1e-9


def _as_trailing(x: np.ndarray, trailing: tuple[int, ...], what: str) -> np.ndarray:
    """``x`` as float64 with the given trailing shape and finite entries, else ValueError."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape[a.ndim - len(trailing):] != trailing or a.ndim < len(trailing):
        dims = ", ".join(str(d) for d in trailing)
        raise ValueError(f"{what} must have shape (..., {dims}), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} of shape {a.shape} has non-finite entries")
    return a


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices: ``skew(v) @ u == np.cross(v, u)``.

    Args:
        v: (..., 3) vectors.

    Returns:
        (..., 3, 3) float64 skew-symmetric matrices.
    """
    v = _as_trailing(v, (3,), "vector")
    K = np.zeros(v.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2] = -v[..., 2], v[..., 1]
    K[..., 1, 0], K[..., 1, 2] = v[..., 2], -v[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -v[..., 1], v[..., 0]
    return K


def quaternion_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices of quaternions.

    A quaternion of any non-zero norm is accepted and normalised first (recorded bags carry
    quaternions normalised to float32 precision, hand-written static transforms often less), so
    ``(0, 0, 0, 2)`` is the identity.

    Args:
        q_xyzw: (..., 4) quaternions (x, y, z, w), Hamilton convention.

    Returns:
        (..., 3, 3) float64 rotation matrices.

    Raises:
        ValueError: the trailing dimension is not 4, an entry is not finite, or a norm is below
            1e-9 (no rotation to normalise).
    """
    q = _as_trailing(q_xyzw, (4,), "quaternion (x, y, z, w)")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < _MIN_QUATERNION_NORM):
        raise ValueError(f"quaternion (x, y, z, w) of shape {q.shape} has a zero norm: no rotation")
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


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternions of rotation matrices (Shepperd's method: divides by the largest of
    ``|w|, |x|, |y|, |z|``, so it stays accurate near 180 degrees).

    Args:
        R: (..., 3, 3) rotation matrices. Orthonormality is not checked; a slightly
            non-orthonormal matrix (accumulated float error) gives the nearby unit quaternion.

    Returns:
        (..., 4) float64 unit quaternions (x, y, z, w) with ``w >= 0``.

    Raises:
        ValueError: the trailing shape is not (3, 3) or an entry is not finite.
    """
    R = _as_trailing(R, (3, 3), "rotation matrix")
    batch = R.shape[:-2]
    Rf = R.reshape(-1, 3, 3)
    d = np.stack([Rf[:, 0, 0], Rf[:, 1, 1], Rf[:, 2, 2]], axis=-1)  # (N, 3)
    tr = d.sum(axis=-1)
    # 4 q_k^2 for k = x, y, z, w: the largest one is the safe divisor.
    four_sq = np.stack([1 + 2 * d[:, 0] - tr, 1 + 2 * d[:, 1] - tr, 1 + 2 * d[:, 2] - tr, 1 + tr], axis=-1)
    pick = np.argmax(four_sq, axis=-1)
    s = 2.0 * np.sqrt(np.maximum(four_sq[np.arange(len(Rf)), pick], 1e-300))  # 4 |q_pick|
    wx = Rf[:, 2, 1] - Rf[:, 1, 2]  # 4 w x
    wy = Rf[:, 0, 2] - Rf[:, 2, 0]  # 4 w y
    wz = Rf[:, 1, 0] - Rf[:, 0, 1]  # 4 w z
    xy = Rf[:, 0, 1] + Rf[:, 1, 0]  # 4 x y
    xz = Rf[:, 0, 2] + Rf[:, 2, 0]  # 4 x z
    yz = Rf[:, 1, 2] + Rf[:, 2, 1]  # 4 y z
    candidates = np.stack(
        [
            np.stack([s * s / 4, xy, xz, wx], axis=-1),  # divisor x
            np.stack([xy, s * s / 4, yz, wy], axis=-1),  # divisor y
            np.stack([xz, yz, s * s / 4, wz], axis=-1),  # divisor z
            np.stack([wx, wy, wz, s * s / 4], axis=-1),  # divisor w
        ],
        axis=1,
    )  # (N, 4 cases, 4 components), each row = 4 q_pick q
    q = candidates[np.arange(len(Rf)), pick] / s[:, None]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(batch + (4,))


def axis_angle_to_matrix(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: rotation vectors -> rotation matrices.

    ``R = I + (sin t / t) K + ((1 - cos t) / t^2) K^2`` with ``K = skew(rvec)``, ``t = |rvec|``;
    below 1e-4 rad the two coefficients use their Taylor series, so a rotation vector of
    1e-12 rad gives ``I + skew(rvec)`` to the last digit instead of a cancelled difference.

    Args:
        rvec: (..., 3) rotation vectors (radians, direction = axis).

    Returns:
        (..., 3, 3) float64 rotation matrices.

    Raises:
        ValueError: the trailing dimension is not 3 or an entry is not finite.
    """
    rvec = _as_trailing(rvec, (3,), "rotation vector")
    theta = np.linalg.norm(rvec, axis=-1)
    small = theta < _SMALL_ANGLE_RAD
    t = np.where(small, 1.0, theta)  # no division by ~0 on the branch not taken
    t2 = theta * theta
    a = np.where(small, 1.0 - t2 / 6.0, np.sin(t) / t)
    b = np.where(small, 0.5 - t2 / 24.0, 2.0 * np.sin(t / 2.0) ** 2 / (t * t))  # (1 - cos t) / t^2
    K = skew(rvec)
    return np.eye(3) + a[..., None, None] * K + b[..., None, None] * (K @ K)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """Rotation vectors of rotation matrices; inverse of :func:`axis_angle_to_matrix`.

    Goes through the quaternion (``theta = 2 atan2(|v|, w)``), which stays accurate near 0 and
    near pi, where ``arccos((trace - 1) / 2)`` does not. At exactly pi the axis sign is
    arbitrary (both rotation vectors are the same rotation).

    Args:
        R: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) float64 rotation vectors, angle in [0, pi] radians.

    Raises:
        ValueError: the trailing shape is not (3, 3) or an entry is not finite.
    """
    q = matrix_to_quaternion(R)
    v, w = q[..., :3], q[..., 3]  # w >= 0
    n = np.linalg.norm(v, axis=-1)
    small = n < 1e-6
    # theta / n = 2 atan2(n, w) / n; for small n (w ~ 1): 2 / w * (1 - n^2 / (3 w^2)).
    factor = np.where(
        small,
        2.0 / np.maximum(w, 0.5) * (1.0 - n * n / (3.0 * np.maximum(w, 0.5) ** 2)),
        2.0 * np.arctan2(n, w) / np.where(small, 1.0, n),
    )
    return v * factor[..., None]


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Angles of rotation matrices, ``|matrix_to_axis_angle(R)|``.

    ``2 atan2(|v|, w)`` of the quaternion rather than ``arccos((trace - 1) / 2)``: the arccos
    form loses half the digits near 0 (an angle of 1e-8 rad comes out as 0 or 1.5e-8) and near pi.

    Args:
        R: (..., 3, 3) rotation matrices.

    Returns:
        (...) float64 angles in [0, pi] radians.
    """
    q = matrix_to_quaternion(R)
    return 2.0 * np.arctan2(np.linalg.norm(q[..., :3], axis=-1), q[..., 3])


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """(3, 3) float64 ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (radians, REP 103 fixed axes)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ],
        dtype=np.float64,
    )


def slerp(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation along the shortest arc.

    Args:
        q0, q1: (..., 4) unit quaternions (x, y, z, w).
        alpha: (...) fractions in [0, 1] (0 gives ``q0``, 1 gives ``q1`` or ``-q1``).

    Returns:
        (..., 4) float64 unit quaternions.
    """
    q0 = _as_trailing(q0, (4,), "quaternion (x, y, z, w)")
    q1 = _as_trailing(q1, (4,), "quaternion (x, y, z, w)").copy()
    alpha = np.asarray(alpha, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # shortest arc
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6  # nearly equal: linear interpolation, renormalised below
    w0 = np.where(small, 1 - alpha, np.sin((1 - alpha) * theta) / np.where(small, 1, sin_theta))
    w1 = np.where(small, alpha, np.sin(alpha * theta) / np.where(small, 1, sin_theta))
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
