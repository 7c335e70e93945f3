"""Rigid-transform helpers for the visual-odometry node (pure numpy, no ROS).

Convention: ``T_a_b`` is a (4, 4) float64 homogeneous transform mapping points expressed in
frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``); composition ``T_a_c = T_a_b @ T_b_c``.
Quaternions are (x, y, z, w), as in geometry_msgs/Quaternion. The rotation math is
:mod:`depth_ros.core.rotation`; its names used by the pose node are re-exported here.
"""
from __future__ import annotations

import numpy as np

from depth_ros.core.rotation import axis_angle_to_matrix, matrix_to_quaternion
from depth_ros.core.rotation import matrix_to_axis_angle as rotation_vector

__all__ = ["axis_angle_to_matrix", "invert", "matrix_to_quaternion", "pose_vector_to_T", "rotation_vector"]


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
