"""Frame pairing, the newest-frame slot, stamp order, and the odometry math (no ROS)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from depth_ros.ros.pose_math import axis_angle_to_matrix, invert, matrix_to_quaternion, pose_vector_to_T, rotation_vector
from depth_ros.ros.pose_node import PoseTracker
from depth_ros.ros.sync import LatestSlot, StampOrder, StampPairer


def test_pairer_matches_either_order_within_tolerance() -> None:
    p = StampPairer(tolerance_ns=1000)
    assert p.add_info(100, "info100") is None
    pair, replaced = p.add_image(600, "img600", received_ns=1)
    assert pair is not None and (pair.image, pair.info, pair.stamp_ns) == ("img600", "info100", 600) and not replaced
    pair, _ = p.add_image(5000, "img5000", received_ns=2)  # no info yet: waits
    assert pair is None
    pair = p.add_info(5000, "info5000")
    assert pair is not None and pair.info == "info5000" and pair.image == "img5000"


def test_pairer_counts_images_that_never_got_info() -> None:
    p = StampPairer(tolerance_ns=0, max_pending=1)
    assert p.add_image(1, "a", 0) == (None, False)
    assert p.add_image(2, "b", 0) == (None, True)
    assert p.unpaired_images == 1
    assert p.add_info(1, "late") is None  # "a" is gone
    assert p.add_info(2, "i2").image == "b"


def test_pairer_pairs_an_image_whose_info_comes_after_the_next_image() -> None:
    """image 1, image 2, info 1, info 2 (two topics taken in either order): both frames pair,
    nothing is counted as unpaired."""
    p = StampPairer(tolerance_ns=0)
    assert p.add_image(1, "a", 10) == (None, False)
    assert p.add_image(2, "b", 20) == (None, False)
    pair = p.add_info(1, "i1")
    assert pair is not None and (pair.image, pair.info, pair.stamp_ns, pair.received_ns) == ("a", "i1", 1, 10)
    pair = p.add_info(2, "i2")
    assert pair is not None and (pair.image, pair.info) == ("b", "i2")
    assert p.unpaired_images == 0 and p.pending() == 0


def test_pairer_gives_up_older_waiting_images_when_a_newer_one_pairs() -> None:
    p = StampPairer(tolerance_ns=0, max_pending=4)
    for t in (1, 2, 3):
        p.add_image(t, f"img{t}", 0)
    assert p.add_info(3, "i3").image == "img3"
    assert p.unpaired_images == 2 and p.pending() == 0
    for t in range(10, 15):
        pair, evicted = p.add_image(t, f"img{t}", 0)
        assert pair is None and evicted == (t == 14)  # the fifth waiting image evicts the first
    assert p.unpaired_images == 3 and p.pending() == 4
    p.add_info(20, "i20")  # a newer frame pairing directly gives up the four still waiting
    assert p.add_image(20, "img20", 0)[0].image == "img20"
    assert p.unpaired_images == 7 and p.pending() == 0


def test_slot_keeps_newest_counts_drops_and_never_blocks() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False and slot.put(2) is True and slot.put(3) is True
    assert slot.dropped == 2 and slot.pending() == 1
    assert slot.get(timeout_s=0) == 3 and slot.pending() == 0
    got = []
    t = threading.Thread(target=lambda: got.append(slot.get(timeout_s=5.0)))
    t.start()
    slot.put(7)
    t.join(timeout=5.0)
    assert got == [7]
    slot.close()
    assert slot.get(timeout_s=0) is None


def test_stamp_order() -> None:
    o = StampOrder(reset_after_ns=1000)
    assert [o.check(s) for s in (10, 20, 20, 15, 5000, 3000, 3999, 2000)] == [
        "ok", "ok", "old", "old", "ok", "reset", "ok", "reset"]


@pytest.mark.parametrize("rvec", [(0.0, 0.0, 0.0), (0.1, -0.2, 0.3), (0.0, 0.0, np.pi / 2), (1e-10, 0, 0), (0.0, np.pi - 1e-8, 0.0)])
def test_rotation_round_trips(rvec: tuple[float, float, float]) -> None:
    R = axis_angle_to_matrix(np.array(rvec))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(axis_angle_to_matrix(rotation_vector(R)), R, atol=1e-9)


def test_rotation_hand_values_and_quaternion() -> None:
    R = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))  # 90 deg about z: x -> y
    np.testing.assert_allclose(R @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(matrix_to_quaternion(R), [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)], atol=1e-12)
    np.testing.assert_allclose(matrix_to_quaternion(np.eye(3)), [0, 0, 0, 1])
    Rx = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))
    q = matrix_to_quaternion(Rx)
    assert abs(q[0]) == pytest.approx(1.0) and q[3] == pytest.approx(0.0, abs=1e-12)


def test_transform_inverse_and_vector() -> None:
    T = pose_vector_to_T(np.array([0.1, 0.2, -0.3, 1.0, -2.0, 0.5]))
    np.testing.assert_allclose(T @ invert(T), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [1.0, -2.0, 0.5])
    with pytest.raises(ValueError, match="6 finite"):
        pose_vector_to_T(np.array([0, 0, 0, np.nan, 0, 0]))


def test_tracker_conventions_and_resets() -> None:
    fwd = np.array([0, 0, 0, 0, 0, 0.1])
    a = PoseTracker("T_src_tgt", max_gap_ns=10**9)
    a.reset(0)
    for k in range(1, 4):
        assert a.needs_reset(k * 10**8) is None
        T, _, dt = a.step(k * 10**8, fwd)
    np.testing.assert_allclose(T[:3, 3], [0, 0, 0.3], atol=1e-12)
    assert dt == pytest.approx(0.1)
    b = PoseTracker("T_tgt_src", max_gap_ns=10**9)  # same motion, the other convention: inverse
    b.reset(0)
    T, _, _ = b.step(10**8, -fwd)
    np.testing.assert_allclose(T[:3, 3], [0, 0, 0.1], atol=1e-12)
    # Turning 90 deg left then moving forward: the move is along the turned axis.
    c = PoseTracker("T_src_tgt", max_gap_ns=10**9)
    c.reset(0)
    c.step(1, np.array([0, -np.pi / 2, 0, 0, 0, 0]))
    T, _, _ = c.step(2, fwd)
    np.testing.assert_allclose(T[:3, 3], [-0.1, 0, 0], atol=1e-12)
    assert "gap" in c.needs_reset(2 + 2 * 10**9)
    assert "back" in c.needs_reset(1)


def test_warning_throttle_is_per_problem() -> None:
    from depth_ros.ros.intake import WarnThrottle

    t = WarnThrottle(period_s=60.0)
    assert t.ready("bad encoding") and not t.ready("bad encoding")  # the same problem: once
    assert t.ready("K is all zeros")  # another problem is not hidden by the first
    unthrottled = WarnThrottle(period_s=0.0)
    assert unthrottled.ready("x") and unthrottled.ready("x")
