"""Quality-of-service profiles of the nodes.

Inputs (camera streams) use SensorDataQoS: best effort, keep last 5, volatile; they match
both best-effort and reliable camera drivers. Outputs are reliable, keep last few: a reliable
publisher matches reliable subscribers (RViz's default) *and* best-effort ones, and the node
never queues more than ``depth`` samples per subscriber.

Large images and clouds over Fast DDS need shared-memory segments larger than the default
512 KB (config/fastdds_local.xml, see README "Transport"); without them a 640x480 cloud goes as
UDP fragments, lags by 100s of ms and drops.
"""
from __future__ import annotations

from typing import Any

__all__ = ["input_qos", "output_qos", "info_qos"]


def input_qos() -> Any:
    """SensorDataQoS (best effort, keep last 5)."""
    from rclpy.qos import qos_profile_sensor_data

    return qos_profile_sensor_data


def output_qos(depth: int = 2) -> Any:
    """Reliable, keep last ``depth``, volatile: images and clouds we publish."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def info_qos() -> Any:
    """Reliable, keep last 10: small per-frame records (DepthInfo, odometry)."""
    return output_qos(depth=10)
