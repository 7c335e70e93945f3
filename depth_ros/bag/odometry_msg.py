"""nav_msgs/Odometry for a rosbags typestore: the one builder of the bags' odometry messages
(``depth-ros infer --pose-model``'s visual odometry, the synthetic bags' ground truth).

REP 105: ``header.frame_id`` is the odometry (world) frame, ``child_frame_id`` the body; the pose
is the body's in the odometry frame, the twist is in the body frame.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ODOMETRY_TYPE", "odometry_message"]

ODOMETRY_TYPE = "nav_msgs/msg/Odometry"


def odometry_message(
    types: Any,
    header: Any,
    child_frame_id: str,
    position_m: Any,
    orientation_xyzw: Any,
    linear_mps: Any,
    angular_radps: Any,
    pose_covariance: np.ndarray | None = None,
    twist_covariance: np.ndarray | None = None,
) -> Any:
    """A nav_msgs/Odometry of the typestore's classes.

    Args:
        types: ``typestore.types`` (message type name -> class).
        header: std_msgs/Header of the typestore (stamp, odometry frame).
        child_frame_id: the body frame.
        position_m: (3,) body origin in the odometry frame, metres.
        orientation_xyzw: (4,) body orientation in the odometry frame.
        linear_mps, angular_radps: (3,) twist in the body frame, m/s and rad/s.
        pose_covariance, twist_covariance: (6, 6) row-major covariances; None: zeros (unknown,
            as nav_msgs leaves it).
    """
    Vector3, Quaternion = types["geometry_msgs/msg/Vector3"], types["geometry_msgs/msg/Quaternion"]
    x, y, z = (float(v) for v in position_m)
    qx, qy, qz, qw = (float(v) for v in orientation_xyzw)
    zeros = np.zeros(36)
    return types[ODOMETRY_TYPE](
        header=header,
        child_frame_id=str(child_frame_id),
        pose=types["geometry_msgs/msg/PoseWithCovariance"](
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=x, y=y, z=z),
                orientation=Quaternion(x=qx, y=qy, z=qz, w=qw),
            ),
            covariance=zeros if pose_covariance is None else np.asarray(pose_covariance, np.float64).reshape(36),
        ),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](
            twist=types["geometry_msgs/msg/Twist"](
                linear=Vector3(**dict(zip("xyz", (float(v) for v in linear_mps)))),
                angular=Vector3(**dict(zip("xyz", (float(v) for v in angular_radps)))),
            ),
            covariance=zeros if twist_covariance is None else np.asarray(twist_covariance, np.float64).reshape(36),
        ),
    )
