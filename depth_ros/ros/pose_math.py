"""Rigid-transform helpers for the visual-odometry node (pure numpy, no ROS).

Convention: ``T_a_b`` is a (4, 4) float64 homogeneous transform mapping points expressed in
frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``); composition ``T_a_c = T_a_b @ T_b_c``.
Quaternions are (x, y, z, w), as in geometry_msgs/Quaternion.
"""
from __future__ import annotations

import numpy as np

__all__ = ["axis_angle_to_matrix", "invert", "matrix_to_quaternion", "pose_vector_to_T", "rotation_vector"]


def axis_angle_to_matrix(rvec: np.ndarray) -> np.ndarray:
    """Rodrigues: (3,) axis-angle (radians, direction = axis) -> (3, 3) rotation matrix."""
    rvec = np.asarray(rvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(rvec))
    if theta < 1e-12:
        k = np.array([[0.0, -rvec[2], rvec[1]], [rvec[2], 0.0, -rvec[0]], [-rvec[1], rvec[0], 0.0]])
        return np.eye(3) + k  # first order; exact to 1e-24 here
    axis = rvec / theta
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(theta) * k + (1.0 - np.cos(theta)) * (k @ k)


def rotation_vector(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis-angle (radians); inverse of :func:`axis_angle_to_matrix`."""
    R = np.asarray(R, dtype=np.float64)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])  # 2 sin(theta) axis
    # atan2 stays accurate near 0 and pi, where arccos of the trace does not.
    theta = float(np.arctan2(np.linalg.norm(w) / 2.0, (np.trace(R) - 1.0) / 2.0))
    if theta < 1e-9:
        return w / 2.0
    if np.pi - theta < 1e-4:  # near 180 degrees w vanishes: axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(R) + 1.0) / 2.0, 0.0))
        i = int(np.argmax(axis))
        others = np.arange(3) != i
        axis[others] = (R[i, others] + R[others, i]) / (4.0 * axis[i])
        axis /= np.linalg.norm(axis)
        if axis @ w < 0:
            axis = -axis
        return axis * theta
    return w / np.linalg.norm(w) * theta


def pose_vector_to_T(vec6: np.ndarray) -> np.ndarray:
    """(6,) [axis-angle (rad), translation] -> (4, 4) float64 transform (rotation then translation)."""
    vec6 = np.asarray(vec6, dtype=np.float64).reshape(-1)
    if vec6.shape != (6,) or not np.all(np.isfinite(vec6)):
        raise ValueError(f"pose vector must be 6 finite numbers, got {vec6.tolist()}")
    T = np.eye(4)
    T[:3, :3] = axis_angle_to_matrix(vec6[:3])
    T[:3, 3] = vec6[3:]
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform: ``T_b_a`` from ``T_a_b``."""
    R, t = T[:3, :3], T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> unit quaternion (x, y, z, w) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2.0
        q = np.array([(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s])
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2.0
        q = np.array([0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s])
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2.0
        q = np.array([(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s])
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2.0
        q = np.array([(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q
