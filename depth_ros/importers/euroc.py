"""EuRoC / ASL layout: ``mav0/cam0/{data.csv, data/*.png, sensor.yaml}`` and ground-truth states.

``data.csv``: ``#timestamp [ns],filename``. ``sensor.yaml``: ``resolution: [w, h]``,
``intrinsics: [fu, fv, cu, cv]``, ``distortion_model: radial-tangential | equidistant``,
``distortion_coefficients: [...]``, ``T_BS: {rows: 4, cols: 4, data: [16]}`` (the camera's
optical frame in the body/IMU frame: ``p_B = T_BS p_S``).
``state_groundtruth_estimate0/data.csv``: ``timestamp, p_RS_R_x, p_RS_R_y, p_RS_R_z, q_RS_w,
q_RS_x, q_RS_y, q_RS_z, ...`` (the body pose in the world; note w first).

radial-tangential (k1, k2, p1, p2) becomes CameraInfo ``plumb_bob`` with k3 = 0; equidistant
stays ``equidistant`` (k1..k4). No ground-truth depth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from depth_ros.errors import InputError
from depth_ros.importers.common import (
    CameraCalib,
    Dataset,
    FrameFiles,
    PoseTrack,
    parse_number,
    pose_matrix,
    read_table,
    read_yaml,
)

__all__ = ["load_euroc", "read_sensor_yaml"]

_DISTORTION = {"radial-tangential": "plumb_bob", "radtan": "plumb_bob", "equidistant": "equidistant"}


def _numbers(value: Any, count: int, path: Path, key: str) -> list[float]:
    if not isinstance(value, list) or len(value) != count or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise InputError(f"{path}: {key} must be a list of {count} numbers, got {str(value)[:80]}")
    out = [float(v) for v in value]
    if not np.all(np.isfinite(out)):
        raise InputError(f"{path}: {key} has non-finite values")
    return out


def read_sensor_yaml(path: Path) -> tuple[CameraCalib, np.ndarray]:
    """(camera, T_body_cam (4, 4)) of an ASL camera ``sensor.yaml``.

    Raises:
        InputError: a missing key, a wrong count of numbers, an unknown distortion model.
    """
    doc = read_yaml(path, "ASL sensor.yaml")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a mapping of sensor fields")
    for key in ("resolution", "intrinsics", "distortion_model", "distortion_coefficients", "T_BS"):
        if key not in doc:
            raise InputError(f"{path}: missing key {key!r}")
    if str(doc.get("camera_model", "pinhole")) != "pinhole":
        raise InputError(f"{path}: camera_model {str(doc['camera_model'])[:40]!r}: only pinhole is supported")
    width, height = (int(v) for v in _numbers(doc["resolution"], 2, path, "resolution"))
    fu, fv, cu, cv = _numbers(doc["intrinsics"], 4, path, "intrinsics")
    model = _DISTORTION.get(str(doc["distortion_model"]))
    if model is None:
        raise InputError(f"{path}: distortion_model {doc['distortion_model']!r}: expected one of {', '.join(_DISTORTION)}")
    coeffs = doc["distortion_coefficients"]
    D = _numbers(coeffs, 4, path, "distortion_coefficients")
    if model == "plumb_bob":
        D = D + [0.0]  # k1, k2, p1, p2, k3
    tbs = doc["T_BS"]
    data = tbs.get("data") if isinstance(tbs, dict) else tbs
    T_BS = np.asarray(_numbers(data, 16, path, "T_BS data"), dtype=np.float64).reshape(4, 4)
    if not np.allclose(T_BS[3], [0, 0, 0, 1]) or not np.allclose(T_BS[:3, :3] @ T_BS[:3, :3].T, np.eye(3), atol=1e-3):
        raise InputError(f"{path}: T_BS is not a rigid transform (rotation not orthonormal or last row not 0 0 0 1)")
    try:
        camera = CameraCalib(width, height, np.array([[fu, 0, cu], [0, fv, cv], [0, 0, 1]]), tuple(D), model)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    return camera, T_BS


def _ground_truth(path: Path) -> PoseTrack:
    rows = read_table(path, "timestamp, p_RS_R xyz, q_RS wxyz", 8, delimiter=",")
    names = ("p_RS_R_x", "p_RS_R_y", "p_RS_R_z", "q_RS_w", "q_RS_x", "q_RS_y", "q_RS_z")
    stamps, poses = [], []
    for n, f in rows:
        if not f[0].isdigit():
            raise InputError(f"{path}:{n}: timestamp {f[0][:40]!r} is not an integer of nanoseconds")
        v = [parse_number(text, path, n, name) for text, name in zip(f[1:8], names)]
        if np.linalg.norm(v[3:]) < 1e-9:
            raise InputError(f"{path}:{n}: quaternion (q_RS_w, x, y, z) is zero")
        stamps.append(int(f[0]))
        poses.append(pose_matrix(v[:3], [v[4], v[5], v[6], v[3]]))
    return PoseTrack.from_unsorted(stamps, poses)


def load_euroc(src: str | Path, *, camera: str = "cam0") -> Dataset:
    """Read an EuRoC / ASL sequence (``src`` holds ``mav0/``, or is ``mav0/``).

    Raises:
        InputError: a missing or malformed file.
    """
    src = Path(src)
    mav = src / "mav0" if (src / "mav0").is_dir() else src
    cam_dir = mav / camera
    if not (cam_dir / "data.csv").is_file():
        raise InputError(f"{src}: no {camera}/data.csv; expected an ASL folder (mav0/{camera}/data.csv, data/, sensor.yaml)")
    calib, T_body_cam = read_sensor_yaml(cam_dir / "sensor.yaml")
    rows = read_table(cam_dir / "data.csv", "#timestamp [ns],filename", 2, delimiter=",")
    frames = []
    for n, f in rows:
        if not f[0].isdigit():
            raise InputError(f"{cam_dir / 'data.csv'}:{n}: timestamp {f[0][:40]!r} is not an integer of nanoseconds")
        frames.append(FrameFiles(int(f[0]), cam_dir / "data" / f[1]))
    frames.sort(key=lambda fr: fr.stamp_ns)
    gt = mav / "state_groundtruth_estimate0" / "data.csv"
    poses = _ground_truth(gt) if gt.is_file() else None
    notes = [f"{camera}: {calib.width}x{calib.height}, {calib.distortion_model} D {list(calib.D)}"]
    if poses is None:
        notes.append(f"no {gt}: no odometry")
    return Dataset(layout="euroc", source=src, camera=calib, frames=tuple(frames), poses=poses,
                   T_body_cam=T_body_cam, notes=tuple(notes))
