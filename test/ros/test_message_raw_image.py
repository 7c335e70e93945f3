"""The depth node takes Images as CDR bytes (issue 19 item 1): what it reads is what was sent."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.ros]


def test_image_from_cdr_reads_every_field_and_views_the_pixels() -> None:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from depth_ros import msgconv
    from depth_ros.ros.messages import to_byte_array, with_data
    from depth_ros.ros.raw_image import image_from_cdr

    bgr = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    padded = np.zeros((5, 24), np.uint8)  # step 24 > 7 * 3: row padding
    padded[:, :21] = bgr.reshape(5, 21)
    sent = with_data(Image, {"height": 5, "width": 7, "encoding": "bgr8", "step": 24, "is_bigendian": 0},
                     to_byte_array(padded.reshape(-1)))
    sent.header.stamp.sec, sent.header.stamp.nanosec, sent.header.frame_id = 17, 250, "cam_optical"
    wire = serialize_message(sent)
    got = image_from_cdr(wire)
    assert (got.height, got.width, got.encoding, got.step, got.is_bigendian) == (5, 7, "bgr8", 24, 0)
    assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id) == (17, 250, "cam_optical")
    assert msgconv.stamp_to_ns(got.header.stamp) == 17 * 10**9 + 250
    np.testing.assert_array_equal(msgconv.image_to_rgb(got), bgr[..., ::-1])


def test_bytes_that_are_not_an_image_are_an_input_error() -> None:
    from depth_ros.errors import InputError
    from depth_ros.ros.raw_image import image_from_cdr

    with pytest.raises(InputError, match="not a CDR-serialised sensor_msgs/msg/Image"):
        image_from_cdr(b"\x00\x01\x00\x00\x05")
