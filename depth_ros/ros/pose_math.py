"""Rigid-transform helpers for the visual-odometry node (pure numpy, no ROS).

Convention: ``T_a_b`` is a (4, 4) float64 homogeneous transform mapping points expressed in
frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``); composition ``T_a_c = T_a_b @ T_b_c``.
Quaternions are (x, y, z, w), as in geometry_msgs/Quaternion. The rotation math is
:mod:`depth_ros.core.rotation`, the pose-vector helpers :mod:`depth_ros.pose_pipeline` (the
pose node's ROS-free step); the names used by the pose node are re-exported here.
"""
from __future__ import annotations

from depth_ros.core.rotation import axis_angle_to_matrix, matrix_to_quaternion
from depth_ros.core.rotation import matrix_to_axis_angle as rotation_vector
from depth_ros.pose_pipeline import invert, pose_vector_to_T

__all__ = ["axis_angle_to_matrix", "invert", "matrix_to_quaternion", "pose_vector_to_T", "rotation_vector"]
