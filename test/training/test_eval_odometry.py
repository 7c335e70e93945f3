"""ATE / RPE against trajectories whose errors are known by construction."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros_training.eval.odometry import (
    absolute_trajectory_error,
    associate,
    default_segment_lengths,
    evaluate_trajectory,
    path_lengths,
    relative_pose_error,
    umeyama,
)


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _poses(positions: np.ndarray, yaws: np.ndarray | None = None) -> np.ndarray:
    T = np.tile(np.eye(4), (len(positions), 1, 1))
    T[:, :3, 3] = positions
    if yaws is not None:
        T[:, :3, :3] = np.stack([_rz(a) for a in yaws])
    return T


def _line(n: int = 21, spacing: float = 0.25) -> np.ndarray:
    return _poses(np.stack([spacing * np.arange(n), np.zeros(n), np.zeros(n)], axis=1))


def _curve(n: int = 40) -> np.ndarray:
    t = np.linspace(0, 3, n)
    return _poses(np.stack([np.cos(t) * 3, np.sin(t) * 2, 0.1 * t], axis=1), yaws=t)


def test_associate_pairs_closest_first_within_tolerance() -> None:
    a = np.array([100, 200, 300, 1000])
    b = np.array([105, 195, 190, 310, 5000])
    ia, ib = associate(a, b, max_diff_ns=10)
    assert ia.tolist() == [0, 1, 2] and ib.tolist() == [0, 1, 3]  # 200 takes 195 (closer than 190)
    assert associate(a, b, max_diff_ns=1)[0].size == 0


def test_umeyama_recovers_a_similarity() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(30, 3))
    R = _rz(0.7) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])
    dst = 2.5 * src @ R.T + np.array([1.0, -2.0, 3.0])
    s, R_hat, t = umeyama(src, dst, with_scale=True)
    assert s == pytest.approx(2.5) and np.allclose(R_hat, R) and np.allclose(t, [1, -2, 3])
    assert umeyama(src, dst, with_scale=False)[0] == 1.0


def test_ate_of_the_truth_is_zero_in_any_world_frame() -> None:
    ref = _curve()
    G = np.eye(4)
    G[:3, :3], G[:3, 3] = _rz(1.2), (5.0, -1.0, 0.3)
    est = G @ ref  # the same motion expressed in another world frame
    for with_scale in (False, True):
        ate = absolute_trajectory_error(ref, est, with_scale)
        assert ate.rmse_m == pytest.approx(0.0, abs=1e-9) and ate.max_m == pytest.approx(0.0, abs=1e-9)


def test_ate_of_a_scale_drift_is_known() -> None:
    ref = _line(n=5, spacing=1.0)  # x = 0..4
    est = ref.copy()
    est[:, :3, 3] *= 1.1
    # rigid alignment can only centre it: residual 0.1 * (x - 2) -> RMSE 0.1 * std(x) = 0.1 * sqrt(2)
    se3 = absolute_trajectory_error(ref, est, with_scale=False)
    assert se3.rmse_m == pytest.approx(0.1 * np.sqrt(2.0))
    assert se3.max_m == pytest.approx(0.2) and se3.median_m == pytest.approx(0.1)
    sim3 = absolute_trajectory_error(ref, est, with_scale=True)
    assert sim3.rmse_m == pytest.approx(0.0, abs=1e-12) and sim3.scale == pytest.approx(1 / 1.1)


def test_rpe_of_the_truth_is_zero() -> None:
    ref = _curve()
    rpe = relative_pose_error(ref, ref, default_segment_lengths(path_lengths(ref)[-1]))
    assert rpe.num_segments > 0
    assert rpe.translation_pct == pytest.approx(0.0, abs=1e-9) and rpe.rotation_deg_per_m == pytest.approx(0.0, abs=1e-6)


def test_rpe_of_a_scale_drift_is_known() -> None:
    ref = _line(n=21, spacing=0.25)  # exact binary fractions: distances are exact
    est = ref.copy()
    est[:, :3, 3] *= 1.1
    rpe = relative_pose_error(ref, est, (1.0,))
    # the segment ends at the first frame more than 1 m on: 1.25 m; error 0.1 * 1.25 m over L = 1 m
    assert rpe.num_segments == 21 - 5
    assert rpe.translation_pct == pytest.approx(12.5) and rpe.rotation_deg_per_m == pytest.approx(0.0, abs=1e-9)
    assert relative_pose_error(ref, est, (1.0,), scale=1 / 1.1).translation_pct == pytest.approx(0.0, abs=1e-9)
    assert relative_pose_error(ref, est, (1.0,), step=4).num_segments == 4  # first frames 0, 4, 8, 12


def test_rpe_of_a_heading_drift_is_known() -> None:
    ref = _line(n=21, spacing=0.25)
    rate_deg_per_m = 2.0
    yaws = np.radians(rate_deg_per_m) * path_lengths(ref)  # heading drifts 2 deg per metre travelled
    est = ref.copy()
    est[:, :3, :3] = np.stack([_rz(a) for a in yaws])
    rpe = relative_pose_error(ref, est, (1.0,))
    assert rpe.rotation_deg_per_m == pytest.approx(rate_deg_per_m * 1.25)  # 1.25 m segments over L = 1 m


def test_rpe_without_a_long_enough_path() -> None:
    rpe = relative_pose_error(_line(n=3), _line(n=3), (10.0,))
    assert rpe.num_segments == 0 and np.isnan(rpe.translation_pct)


def test_evaluate_trajectory_with_stamps() -> None:
    ref = _line(n=21, spacing=0.25)
    est = ref.copy()
    est[:, :3, 3] *= 2.0  # a monocular trajectory at twice the scale
    stamps_ref = np.arange(21) * 100_000_000
    stamps_est = stamps_ref + 3_000_000  # 3 ms late
    out = evaluate_trajectory(stamps_ref, ref, stamps_est, est, max_diff_ns=5_000_000, segment_lengths_m=(1.0,))
    assert out["matched"] == 21 and out["unmatched"] == 0 and out["path_length_m"] == pytest.approx(5.0)
    assert out["sim3"]["ate"]["rmse_m"] == pytest.approx(0.0, abs=1e-9) and out["sim3"]["ate"]["scale"] == pytest.approx(0.5)
    assert out["se3"]["rpe"]["translation_pct"] == pytest.approx(125.0)  # (2 - 1) * 1.25 m / 1 m
    assert out["sim3"]["rpe"]["translation_pct"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="reference pose within"):
        evaluate_trajectory(stamps_ref, ref, stamps_est, est, max_diff_ns=1_000_000)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4, 4\)"):
        absolute_trajectory_error(np.eye(4), np.eye(4), False)
