"""depth_ros.core.rotation: hand-computed values, round trips, near-0 and near-pi angles, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from depth_ros.core.rotation import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_angle,
    rpy_to_matrix,
    skew,
    slerp,
)

RZ90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # +90 deg about z: x -> y


def _random_rotations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return quaternion_to_matrix(q)


def test_hand_computed_quaternion_and_rotation_vector() -> None:
    s = math.sqrt(0.5)
    np.testing.assert_allclose(quaternion_to_matrix(np.array([0.0, 0.0, s, s])), RZ90, atol=1e-15)
    np.testing.assert_allclose(matrix_to_quaternion(RZ90), [0.0, 0.0, s, s], atol=1e-15)
    np.testing.assert_allclose(axis_angle_to_matrix(np.array([0.0, 0.0, math.pi / 2])), RZ90, atol=1e-15)
    np.testing.assert_allclose(matrix_to_axis_angle(RZ90), [0.0, 0.0, math.pi / 2], atol=1e-15)
    # 120 deg about (1, 1, 1)/sqrt(3) permutes the axes: x -> y -> z -> x.
    perm = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(quaternion_to_matrix(np.array([0.5, 0.5, 0.5, 0.5])), perm, atol=1e-15)
    np.testing.assert_allclose(matrix_to_axis_angle(perm), np.full(3, 2 * math.pi / 3 / math.sqrt(3)), atol=1e-15)
    # REP 103 camera optical frame in base_link: z forward = base x, x right = base -y, y down = base -z.
    optical = quaternion_to_matrix(np.array([-0.5, 0.5, -0.5, 0.5]))
    np.testing.assert_allclose(optical @ [0, 0, 1.0], [1.0, 0, 0], atol=1e-15)
    np.testing.assert_allclose(optical @ [1.0, 0, 0], [0, -1.0, 0], atol=1e-15)


def test_quaternion_is_hamilton_and_composes_like_matrices() -> None:
    def hamilton(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # (x, y, z, w) product a * b
        av, aw, bv, bw = a[:3], a[3], b[:3], b[3]
        return np.r_[aw * bv + bw * av + np.cross(av, bv), aw * bw - av @ bv]

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=4), rng.normal(size=4)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    np.testing.assert_allclose(quaternion_to_matrix(hamilton(a, b)), quaternion_to_matrix(a) @ quaternion_to_matrix(b), atol=1e-14)


def test_non_unit_quaternions_are_normalised_and_zero_is_refused() -> None:
    np.testing.assert_allclose(quaternion_to_matrix(np.array([0.0, 0.0, 0.0, 2.0])), np.eye(3))
    np.testing.assert_allclose(quaternion_to_matrix(np.array([0.0, 0.0, 3.0, 3.0])), RZ90, atol=1e-15)
    with pytest.raises(ValueError, match="zero norm"):
        quaternion_to_matrix(np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\), got shape \(3,\)"):
        quaternion_to_matrix(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        quaternion_to_matrix(np.array([0.0, 0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3, 3\), got shape \(3, 4\)"):
        matrix_to_quaternion(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\), got shape \(4,\)"):
        axis_angle_to_matrix(np.zeros(4))
    with pytest.raises(ValueError, match=r"got shape \(9,\)"):
        matrix_to_axis_angle(np.eye(3).reshape(9))


def test_round_trips_batched() -> None:
    R = _random_rotations(500).reshape(10, 50, 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-14)
    q = matrix_to_quaternion(R)
    assert q.shape == (10, 50, 4) and np.all(q[..., 3] >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-15)
    np.testing.assert_allclose(quaternion_to_matrix(q), R, atol=1e-14)
    r = matrix_to_axis_angle(R)
    assert r.shape == (10, 50, 3) and np.all(np.linalg.norm(r, axis=-1) <= math.pi + 1e-12)
    np.testing.assert_allclose(axis_angle_to_matrix(r), R, atol=1e-13)


def test_each_shepperd_branch() -> None:
    # Rotations whose largest quaternion component is w, x, y and z in turn (150 deg about each axis).
    for rvec in ([0.2, -0.1, 0.3], [2.6, 0.1, 0.0], [0.0, 2.6, -0.1], [0.1, 0.0, 2.6]):
        R = axis_angle_to_matrix(np.array(rvec))
        np.testing.assert_allclose(matrix_to_axis_angle(R), rvec, atol=1e-14)
        q = matrix_to_quaternion(R)
        theta = np.linalg.norm(rvec)
        np.testing.assert_allclose(q, np.r_[np.sin(theta / 2) * np.array(rvec) / theta, np.cos(theta / 2)], atol=1e-15)


@pytest.mark.parametrize("theta", [0.0, 1e-14, 1e-10, 1e-7, 5e-5, 1e-4, 2e-4, 1e-2])
def test_near_zero_angles(theta: float) -> None:
    axis = np.array([2.0, -1.0, 2.0]) / 3.0
    rvec = theta * axis
    R = axis_angle_to_matrix(rvec)
    # Exact to second order: I + K + K^2 / 2 (the next terms are theta^3 / 6).
    K = skew(rvec)
    np.testing.assert_allclose(R, np.eye(3) + K + K @ K / 2, atol=max(theta**3 / 6 * 1.01, 1e-16), rtol=0)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-15)
    np.testing.assert_allclose(matrix_to_axis_angle(R), rvec, atol=1e-16 + 1e-12 * theta, rtol=1e-9)


@pytest.mark.parametrize("eps", [0.0, 1e-12, 1e-8, 1e-5, 1e-3])
def test_near_pi_angles(eps: float) -> None:
    axis = np.array([1.0, 2.0, -2.0]) / 3.0
    rvec = (math.pi - eps) * axis
    R = axis_angle_to_matrix(rvec)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-15)
    back = matrix_to_axis_angle(R)
    if eps == 0.0:  # exactly pi: either sign of the axis is the same rotation
        assert np.allclose(back, rvec, atol=1e-12) or np.allclose(back, -rvec, atol=1e-12)
    else:
        np.testing.assert_allclose(back, rvec, atol=1e-12)
    np.testing.assert_allclose(axis_angle_to_matrix(back), R, atol=1e-14)
    q = matrix_to_quaternion(R)
    assert q[3] == pytest.approx(math.sin(eps / 2), abs=1e-15)


def test_rpy_matches_axis_rotations() -> None:
    r, p, y = 0.3, -0.2, 1.1
    Rx = axis_angle_to_matrix(np.array([r, 0.0, 0.0]))
    Ry = axis_angle_to_matrix(np.array([0.0, p, 0.0]))
    Rz = axis_angle_to_matrix(np.array([0.0, 0.0, y]))
    np.testing.assert_allclose(rpy_to_matrix(r, p, y), Rz @ Ry @ Rx, atol=1e-15)
    np.testing.assert_allclose(rpy_to_matrix(0.0, 0.0, math.pi / 2), RZ90, atol=1e-15)


def test_slerp_halfway_and_shortest_arc() -> None:
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    rz90 = matrix_to_quaternion(RZ90)
    half = slerp(identity, rz90, np.array(0.5))
    np.testing.assert_allclose(quaternion_to_matrix(half), axis_angle_to_matrix(np.array([0.0, 0.0, math.pi / 4])), atol=1e-15)
    # -rz90 is the same rotation: slerp takes the short way and gives the same halfway rotation.
    np.testing.assert_allclose(quaternion_to_matrix(slerp(identity, -rz90, np.array(0.5))), quaternion_to_matrix(half), atol=1e-15)
    np.testing.assert_allclose(slerp(identity, identity, np.array(0.3)), identity)


@pytest.mark.parametrize("theta", [0.0, 1e-9, 1e-5, 0.7, math.pi - 1e-9, math.pi])
def test_rotation_angle_keeps_its_digits(theta: float) -> None:
    R = axis_angle_to_matrix(theta * np.array([0.6, 0.0, -0.8]))
    # arccos((trace - 1) / 2) gives 0 for 1e-9 rad: the angle here keeps 1e-9 to 1e-15 relative
    assert float(rotation_angle(R)) == pytest.approx(theta, rel=1e-6, abs=1e-15)
    assert rotation_angle(np.stack([R, np.eye(3)])).shape == (2,)
