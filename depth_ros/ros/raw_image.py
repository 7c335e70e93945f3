"""sensor_msgs/Image read from its CDR bytes (an rclpy ``raw=True`` subscription), no pixel copy.

rclpy turns a received Image into a Python message by deserialising it into a C struct (one
copy of the pixels), then into Python objects (a second copy into an ``array.array``, and the
generated classes' per-field setters): 0.9-1.7 ms per 640x480 rgb8 image on these cores, on the
executor thread the worker shares the cores with. Taken raw, rclpy hands over the CDR bytes
(one copy) and rosbags' generated deserialiser reads them into a message whose ``data`` is a
numpy view of those bytes (0.6 ms measured at the same load; bench/bench_frame_stages.py). The
message is duck-typed like every message the frame path takes (:mod:`depth_ros.msgconv`); its
pixels are still checked there before use.
"""
from __future__ import annotations

from typing import Any

from depth_ros.errors import InputError

__all__ = ["IMAGE_TYPE", "image_from_cdr"]

IMAGE_TYPE = "sensor_msgs/msg/Image"


def image_from_cdr(data: bytes | bytearray | memoryview) -> Any:
    """A sensor_msgs/Image (rosbags dataclass; ``data`` a uint8 view of ``data``) of CDR bytes.

    Raises:
        InputError: the bytes are not a CDR-serialised Image.
    """
    from depth_ros.bag.typestore import output_typestore

    try:
        return output_typestore().deserialize_cdr(data, IMAGE_TYPE)
    except Exception as exc:  # rosbags raises struct / index / its own errors on bad bytes
        raise InputError(f"Image: {memoryview(data).nbytes} bytes are not a CDR-serialised {IMAGE_TYPE} "
                         f"({type(exc).__name__}: {exc})") from None
