"""Quality-of-service profiles of the nodes.

Inputs (camera streams) use SensorDataQoS: best effort, keep last 5, volatile; they match
both best-effort and reliable camera drivers. Outputs are reliable, keep last few: a reliable
publisher matches reliable subscribers (RViz's default) *and* best-effort ones, and the node
never queues more than ``depth`` samples per subscriber.

Large images and clouds over Fast DDS need shared-memory segments larger than the default
512 KB (config/fastdds_local.xml, see README "Transport"); without them a 640x480 cloud goes as
UDP fragments, lags by 100s of ms and drops.

Every subscription and publisher of the nodes accepts the standard ROS 2 QoS override
parameters (created through :func:`subscribe` / :func:`advertise`), e.g. to replay a bag with
no frame lost to a busy node::

    qos_overrides./camera/image_raw.subscription.reliability: reliable
    qos_overrides./camera/image_raw.subscription.depth: 50

The topic in the name is the resolved one (after remapping). A bad override value stops the
node with a ParameterError naming it; an override for a topic the node does not have is
reported by :func:`unused_overrides`.
"""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["advertise", "info_qos", "input_qos", "output_qos", "overridable", "subscribe", "unused_overrides", "warn_unused_overrides"]

OVERRIDE_PREFIX = "qos_overrides."


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


def overridable() -> Any:
    """QoS overriding options for ``create_subscription`` / ``create_publisher``: reliability,
    history, depth and durability (rclpy's defaults leave durability out) become read-only
    ``qos_overrides.<topic>...`` parameters."""
    from rclpy.qos_overriding_options import QoSOverridingOptions, QoSPolicyKind

    return QoSOverridingOptions([QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
                                 QoSPolicyKind.DURABILITY])


def _overridden(node: Any, kind: str, topic: str, create: Any) -> Any:
    """``create()``; when it fails and the user gave QoS overrides for ``topic``, a
    ParameterError naming the topic (rclpy raises RuntimeError, a parameter type error or the
    rmw's refusal, e.g. a negative depth, with no mention of the topic)."""
    from depth_ros.config_fields import ParameterError

    try:
        return create()
    except Exception as exc:
        given: dict[str, Any] = getattr(node, "_parameter_overrides", {})
        try:
            prefix = f"{OVERRIDE_PREFIX}{node.resolve_topic_name(topic)}.{kind}"
        except Exception:
            raise exc from None  # an invalid topic name: not about overrides
        if not any(name.startswith(prefix) for name in given):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(f"QoS override of the {kind} on '{topic}': {message}") from None


def subscribe(node: Any, msg_type: Any, topic: str, callback: Any, profile: Any, raw: bool = False) -> Any:
    """``node.create_subscription`` with QoS override parameters; a bad override value is a
    ParameterError naming the topic. rclpy writes the overrides into the profile object it is
    given, so it gets a copy: ``profile`` (e.g. rclpy's shared ``qos_profile_sensor_data``) is
    left unchanged. ``raw``: the callback gets the message's CDR bytes (rclpy ``raw=True``)."""
    return _overridden(node, "subscription", topic, lambda: node.create_subscription(
        msg_type, topic, callback, copy.copy(profile), qos_overriding_options=overridable(), raw=raw))


def advertise(node: Any, msg_type: Any, topic: str, profile: Any) -> Any:
    """``node.create_publisher`` with QoS override parameters (see :func:`subscribe`)."""
    return _overridden(node, "publisher", topic, lambda: node.create_publisher(
        msg_type, topic, copy.copy(profile), qos_overriding_options=overridable()))


def unused_overrides(node: Any) -> list[str]:
    """``qos_overrides.*`` values given to ``node`` that match none of its topics (a typo in
    the topic, or a name before remapping); call after the node created its entities."""
    given: dict[str, Any] = getattr(node, "_parameter_overrides", {})
    return sorted(n for n in given if n.startswith(OVERRIDE_PREFIX) and not node.has_parameter(n))


def warn_unused_overrides(node: Any) -> None:
    """Log a warning naming the :func:`unused_overrides` of ``node``, if any."""
    unused = unused_overrides(node)
    if unused:
        node.get_logger().warning(f"QoS overrides for topics this node does not have (typo, or a name before remapping?): {unused}")
