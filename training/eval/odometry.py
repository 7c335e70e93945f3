"""Trajectory error: ATE (TUM RGB-D benchmark) and RPE (KITTI odometry devkit).

Poses are ``T_world_body`` (4, 4): they map points in the body (camera, base) frame into the
trajectory's own world frame; the estimate's world frame need not be the reference's (the ATE
aligns them, the RPE only uses relative motion).

* :func:`associate`: pair estimate and reference stamps, closest first, each used once, within
  a tolerance (the TUM ``associate.py`` rule).
* :func:`umeyama`: the least-squares similarity ``dst ~ s R src + t`` (Umeyama 1991), with or
  without the scale.
* :func:`absolute_trajectory_error`: positions aligned with ``umeyama`` (se(3): rigid, sim(3):
  with scale, as TUM's ``evaluate_ate.py`` and evo's ``--align [--correct_scale]``), then the
  RMSE / mean / median / max of the position differences, metres.
* :func:`relative_pose_error`: the KITTI devkit's segment errors: for every first frame (every
  ``step`` frames) and every segment length L, the last frame is the first whose distance along
  the *reference* path exceeds the first's by more than L; the error transform is
  ``inv(est_i^-1 est_j) @ (ref_i^-1 ref_j)``; translation error ``|t| / L`` (reported in %)
  and rotation error ``angle / L`` (deg/m), averaged over all segments (the angle by
  :func:`depth_ros.core.rotation.rotation_angle`, where the devkit takes the arccos of the
  trace: the same but near 0, where the arccos loses half its digits). As in the devkit the
  division is by the nominal L (not the travelled distance, which exceeds L by up to one
  frame's motion). The devkit's lengths (100 .. 800 m) and step (10 frames) suit cars; here they
  are arguments (:func:`default_segment_lengths` picks lengths for a short robot run).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from depth_ros.core.rotation import rotation_angle

__all__ = [
    "AteResult",
    "RpeResult",
    "absolute_trajectory_error",
    "associate",
    "default_segment_lengths",
    "evaluate_trajectory",
    "path_lengths",
    "relative_pose_error",
    "umeyama",
]

#: The KITTI devkit's segment lengths, metres.
KITTI_SEGMENT_LENGTHS_M = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)


@dataclass(frozen=True)
class AteResult:
    """Absolute trajectory error after alignment (metres) and the alignment's scale."""

    rmse_m: float
    mean_m: float
    median_m: float
    max_m: float
    scale: float
    num_poses: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RpeResult:
    """Relative pose error over path segments: translation % and rotation deg/m (KITTI)."""

    translation_pct: float
    rotation_deg_per_m: float
    num_segments: int
    segment_lengths_m: tuple[float, ...]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _check_poses(T: np.ndarray, name: str) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"{name} must be (N, 4, 4) poses, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name} has non-finite values")
    return T


def associate(stamps_a_ns: np.ndarray, stamps_b_ns: np.ndarray, max_diff_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) with ``|a[i] - b[j]| <= max_diff_ns``, closest pairs first, each index used once.

    Returns:
        (idx_a, idx_b) int arrays, sorted by ``a``'s stamp.
    """
    a = np.asarray(stamps_a_ns, dtype=np.int64)
    b = np.asarray(stamps_b_ns, dtype=np.int64)
    if a.size == 0 or b.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order_b = np.argsort(b, kind="stable")
    b_sorted = b[order_b]
    candidates = []  # for each a: its nearest b on either side
    pos = np.searchsorted(b_sorted, a)
    for k in (pos - 1, pos):
        ok = (k >= 0) & (k < b.size)
        i = np.flatnonzero(ok)
        j = order_b[k[ok]]
        candidates.append(np.stack([np.abs(a[i] - b[j]), i, j], axis=1))
    cand = np.concatenate(candidates)
    cand = cand[cand[:, 0] <= max_diff_ns]
    cand = cand[np.lexsort((cand[:, 2], cand[:, 1], cand[:, 0]))]
    used_a, used_b, pairs = set(), set(), []
    for _, i, j in cand:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    pairs.sort()
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    idx = np.asarray(pairs, dtype=np.int64)
    return idx[:, 0], idx[:, 1]


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``dst ~ s R src + t`` (Umeyama 1991, with the reflection correction).

    Args:
        src, dst: (N, 3) corresponding points, N >= 2 (the rotation about a line of points is
            arbitrary but does not change the residuals).
        with_scale: estimate ``s`` (sim(3)); else ``s = 1`` (se(3)).

    Returns:
        (s, R (3, 3), t (3,)).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or src.shape[0] < 2:
        raise ValueError(f"need two (N, 3) point sets with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    var_s = float((xs**2).sum() / len(src))
    s = float(np.trace(np.diag(D) @ S) / var_s) if with_scale and var_s > 0 else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def absolute_trajectory_error(T_ref: np.ndarray, T_est: np.ndarray, with_scale: bool) -> AteResult:
    """ATE of associated poses (same length, same order) after Umeyama alignment of the positions.

    Args:
        T_ref, T_est: (N, 4, 4) ``T_world_body``, N >= 2.
        with_scale: sim(3) alignment (a monocular trajectory up to scale) instead of se(3).
    """
    T_ref, T_est = _check_poses(T_ref, "T_ref"), _check_poses(T_est, "T_est")
    if len(T_ref) != len(T_est):
        raise ValueError(f"T_ref and T_est must pair up, got {len(T_ref)} and {len(T_est)} poses")
    p_ref, p_est = T_ref[:, :3, 3], T_est[:, :3, 3]
    s, R, t = umeyama(p_est, p_ref, with_scale)
    err = np.linalg.norm(p_ref - (s * p_est @ R.T + t), axis=1)
    return AteResult(
        rmse_m=float(np.sqrt(np.mean(err**2))), mean_m=float(err.mean()), median_m=float(np.median(err)),
        max_m=float(err.max()), scale=s, num_poses=len(err),
    )


def path_lengths(T: np.ndarray) -> np.ndarray:
    """(N,) distance travelled from the first pose to each pose, metres."""
    p = _check_poses(T, "T")[:, :3, 3]
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])


def default_segment_lengths(path_length_m: float) -> tuple[float, ...]:
    """KITTI's 100 .. 800 m when the path is longer than 800 m; else 10, 20, .. 50 % of the path."""
    if path_length_m > KITTI_SEGMENT_LENGTHS_M[-1]:
        return KITTI_SEGMENT_LENGTHS_M
    return tuple(float(path_length_m * f) for f in (0.1, 0.2, 0.3, 0.4, 0.5))


def relative_pose_error(
    T_ref: np.ndarray, T_est: np.ndarray, segment_lengths_m: tuple[float, ...], step: int = 1, scale: float = 1.0
) -> RpeResult:
    """KITTI-style RPE of associated poses (see the module doc).

    Args:
        T_ref, T_est: (N, 4, 4) ``T_world_body``, paired.
        segment_lengths_m: path lengths L over which the drift is measured.
        step: first frames every ``step`` frames (KITTI: 10).
        scale: multiply the estimate's translations by this first (the sim(3) scale).

    Returns:
        :class:`RpeResult`; NaN errors and 0 segments when the path is shorter than every L.
    """
    T_ref, T_est = _check_poses(T_ref, "T_ref"), _check_poses(T_est, "T_est")
    if len(T_ref) != len(T_est):
        raise ValueError(f"T_ref and T_est must pair up, got {len(T_ref)} and {len(T_est)} poses")
    if step < 1 or any(not (L > 0) for L in segment_lengths_m):
        raise ValueError(f"need step >= 1 and positive segment lengths, got {step}, {segment_lengths_m}")
    T_est = T_est.copy()
    T_est[:, :3, 3] *= scale
    dist = path_lengths(T_ref)
    firsts, lasts, lengths = [], [], []
    for L in segment_lengths_m:
        first = np.arange(0, len(dist), step)
        last = np.searchsorted(dist, dist[first] + L, side="right")  # first j with dist[j] > dist[i] + L
        ok = last < len(dist)
        firsts.append(first[ok])
        lasts.append(last[ok])
        lengths.append(np.full(int(ok.sum()), float(L)))
    i, j, L = np.concatenate(firsts), np.concatenate(lasts), np.concatenate(lengths)
    if i.size == 0:
        return RpeResult(float("nan"), float("nan"), 0, tuple(float(x) for x in segment_lengths_m))
    ref_rel = np.linalg.inv(T_ref[i]) @ T_ref[j]
    est_rel = np.linalg.inv(T_est[i]) @ T_est[j]
    err = np.linalg.inv(est_rel) @ ref_rel
    t_err = np.linalg.norm(err[:, :3, 3], axis=1) / L
    r_err = rotation_angle(err[:, :3, :3]) / L
    return RpeResult(
        translation_pct=float(100.0 * t_err.mean()),
        rotation_deg_per_m=float(np.degrees(r_err.mean())),
        num_segments=int(i.size),
        segment_lengths_m=tuple(float(x) for x in segment_lengths_m),
    )


def evaluate_trajectory(
    stamps_ref_ns: np.ndarray,
    T_ref: np.ndarray,
    stamps_est_ns: np.ndarray,
    T_est: np.ndarray,
    max_diff_ns: int,
    segment_lengths_m: tuple[float, ...] | None = None,
    step: int = 1,
) -> dict[str, object]:
    """ATE and RPE, with se(3) and sim(3) alignment, of an estimate against a reference.

    Returns:
        ``{"matched": n, "unmatched": n_est - n, "path_length_m": ..., "se3": {"ate": {...},
        "rpe": {...}}, "sim3": {...}}`` (sim3's RPE uses the ATE's scale).

    Raises:
        ValueError: fewer than two poses pair up within ``max_diff_ns``.
    """
    T_ref, T_est = _check_poses(T_ref, "T_ref"), _check_poses(T_est, "T_est")
    i_est, i_ref = associate(stamps_est_ns, stamps_ref_ns, max_diff_ns)
    if len(i_est) < 2:
        raise ValueError(f"only {len(i_est)} of {len(T_est)} estimated poses have a reference pose within {max_diff_ns} ns")
    ref, est = T_ref[i_ref], T_est[i_est]
    total = float(path_lengths(ref)[-1])
    lengths = tuple(segment_lengths_m) if segment_lengths_m else default_segment_lengths(total)
    out: dict[str, object] = {"matched": int(len(i_est)), "unmatched": int(len(T_est) - len(i_est)), "path_length_m": total}
    for name, with_scale in (("se3", False), ("sim3", True)):
        ate = absolute_trajectory_error(ref, est, with_scale)
        rpe = relative_pose_error(ref, est, lengths, step=step, scale=ate.scale) if total > 0 else None
        out[name] = {"ate": ate.as_dict(), "rpe": rpe.as_dict() if rpe else None}
    return out
