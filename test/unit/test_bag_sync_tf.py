"""Stamp pairing of image / camera_info / LiDAR, and the static transform tree."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_bag_support import T0_NS, tf_static_msg

from depth_ros.bag.sync import FrameSynchronizer
from depth_ros.bag.tf import StaticTransforms, quaternion_to_matrix
from depth_ros.errors import InputError

MS = 1_000_000


def _pairs(frames) -> list[tuple[int, str, object]]:  # type: ignore[no-untyped-def]
    return [(f.stamp_ns, f.image, f.info) for f in frames]


def test_exact_pairs_in_either_arrival_order() -> None:
    sync: FrameSynchronizer[str] = FrameSynchronizer()
    assert sync.add_image(100, "img0") == []  # waits for its camera_info
    assert _pairs(sync.add_info(100, "info0")) == [(100, "img0", "info0")]
    assert sync.add_info(200, "info1") == []
    assert _pairs(sync.add_image(200, "img1")) == [(200, "img1", "info1")]
    assert sync.pending == 0 and sync.flush() == []


def test_stamps_differing_by_one_ns_do_not_pair_without_tolerance() -> None:
    sync: FrameSynchronizer[str] = FrameSynchronizer(max_pending=2)
    sync.add_info(100, "info")
    assert sync.add_image(101, "img") == []
    (frame,) = sync.flush()
    assert frame.info is None  # reported by the caller as missing camera_info


def test_tolerance_takes_the_nearest_info() -> None:
    sync: FrameSynchronizer[str] = FrameSynchronizer(tolerance_ns=5 * MS)
    sync.add_info(T0_NS - 4 * MS, "early")
    assert sync.add_image(T0_NS, "img") == []  # a nearer info may still come
    (frame,) = sync.add_info(T0_NS + 1 * MS, "near")
    assert frame.info == "near"


def test_bounded_buffer_releases_oldest_without_info() -> None:
    sync: FrameSynchronizer[int] = FrameSynchronizer(max_pending=3)
    released = []
    for i in range(5):
        released += sync.add_image(i, i)
    assert [(f.image, f.info) for f in released] == [(0, None), (1, None)]
    assert sync.pending == 3
    released = sync.add_info(3, "info3")
    assert [(f.image, f.info) for f in released] == [(3, "info3")]
    assert [(f.image, f.info) for f in sync.flush()] == [(2, None), (4, None)]


def test_lidar_nearest_within_tolerance_once_a_later_cloud_is_seen() -> None:
    sync: FrameSynchronizer[str] = FrameSynchronizer(with_lidar=True, lidar_tolerance_ns=40 * MS)
    sync.add_lidar(T0_NS - 30 * MS, "before")
    sync.add_info(T0_NS, "info")
    assert sync.add_image(T0_NS, "img") == []  # a nearer cloud may come
    (frame,) = sync.add_lidar(T0_NS + 20 * MS, "after")
    assert (frame.info, frame.lidar) == ("info", "after")
    # a cloud outside the tolerance is not attached
    sync.add_info(T0_NS + 500 * MS, "info2")
    sync.add_image(T0_NS + 500 * MS, "img2")
    (frame,) = sync.add_lidar(T0_NS + 600 * MS, "late")
    assert frame.lidar is None


def test_sync_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="tolerances"):
        FrameSynchronizer(tolerance_ns=-1)
    with pytest.raises(ValueError, match="max_pending"):
        FrameSynchronizer(max_pending=0)


# -- static transforms ---------------------------------------------------------------------
def test_quaternion_to_matrix_hand_computed() -> None:
    s = math.sqrt(0.5)
    R = quaternion_to_matrix(0.0, 0.0, s, s)  # +90 deg about z
    np.testing.assert_allclose(R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(0, 0, 0, 2.0), np.eye(3))  # normalised
    with pytest.raises(InputError, match="quaternion"):
        quaternion_to_matrix(0, 0, 0, 0)


def test_lookup_composes_through_the_common_parent() -> None:
    # base->camera_optical: REP 103 optical rotation (x right, y down, z forward), 0.2 m up
    # base->lidar: 0.5 m up, no rotation
    optical_q = (-0.5, 0.5, -0.5, 0.5)
    msg = tf_static_msg(T0_NS, [
        ("base_link", "camera_optical_frame", np.array([0.1, 0.0, 0.2]), np.array(optical_q)),
        ("/base_link", "lidar_link", np.array([0.0, 0.0, 0.5]), np.array([0.0, 0.0, 0.0, 1.0])),
    ])
    tree = StaticTransforms.from_messages([msg])
    T_cam_lidar = tree.lookup("camera_optical_frame", "lidar_link")
    # A point 3 m ahead of the lidar (x forward in base) at the lidar's height:
    p_lidar = np.array([3.0, 0.0, 0.0, 1.0])
    # In base: (3, 0, 0.5); relative to the camera: (2.9, 0, 0.3): forward 2.9 -> z,
    # up 0.3 -> y = -0.3 (y down), left 0 -> x = 0.
    np.testing.assert_allclose(T_cam_lidar @ p_lidar, [0.0, -0.3, 2.9, 1.0], atol=1e-12)
    np.testing.assert_allclose(tree.lookup("lidar_link", "camera_optical_frame") @ T_cam_lidar, np.eye(4), atol=1e-12)


def test_missing_transform_names_the_frames() -> None:
    tree = StaticTransforms()
    tree.add("base_link", "camera_optical_frame", np.eye(4))
    with pytest.raises(InputError, match="no static transform from 'lidar_link' to 'camera_optical_frame'.*base_link"):
        tree.lookup("camera_optical_frame", "lidar_link")
    tree.add("odom", "lidar_link", np.eye(4))  # another tree
    with pytest.raises(InputError, match="no static transform"):
        tree.lookup("camera_optical_frame", "lidar_link")


def test_loop_is_refused() -> None:
    tree = StaticTransforms()
    tree.add("a", "b", np.eye(4))
    tree.add("b", "a", np.eye(4))
    with pytest.raises(InputError, match="loop"):
        tree.lookup("a", "b")
