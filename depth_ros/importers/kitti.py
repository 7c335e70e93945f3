"""KITTI raw layout (synced + rectified drives), with the Velodyne projected to sparse depth.

A drive folder ``.../2011_09_26/2011_09_26_drive_0001_sync`` holds ``image_02/data/*.png`` with
``image_02/timestamps.txt`` (``2011-09-26 13:02:25.964389445`` per line, one per image, UTC),
``velodyne_points/data/*.bin`` (float32 x, y, z, reflectance per point, the Velodyne frame) and,
optionally, ``oxts/data/*.txt`` (lat, lon, alt, roll, pitch, yaw, ... per file) with
``oxts/timestamps.txt``. The calibration files sit in the date folder (the drive's parent):
``calib_cam_to_cam.txt`` (``P_rect_02``, ``R_rect_00``, ``S_rect_02``), ``calib_velo_to_cam.txt``
(``R``, ``T``: Velodyne -> camera 0) and ``calib_imu_to_velo.txt`` (``R``, ``T``: IMU -> Velodyne).

Camera: the rectified camera 2; K is ``P_rect_02[:, :3]``, D zero, and its optical frame is
rectified camera 0 moved by ``K^-1 P_rect_02[:, 3]`` (the stereo baseline), so
``T_cam2_velo = T(K^-1 p) R_rect_00 T_cam0_velo``. Depth: each scan's points in that frame with
z > 0, projected to the nearest pixel centre, the nearest point kept per pixel, NaN elsewhere (the
scan and the image are matched by index, as in the synced data; the scan's ~50 ms sweep is not
compensated). Poses: the OXTS pose of the IMU (x forward, y left, z up: a REP 103 body frame) by
the Mercator projection of KITTI's devkit, relative to the first OXTS pose.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np

from depth_ros.core.rotation import rpy_to_matrix
from depth_ros.errors import InputError
from depth_ros.importers.common import CameraCalib, Dataset, FrameFiles, PoseTrack, parse_number, read_text

__all__ = ["EARTH_RADIUS_M", "load_kitti", "oxts_poses", "project_to_depth", "read_calib"]

#: The devkit's Earth radius for the Mercator projection of OXTS positions (metres).
EARTH_RADIUS_M = 6378137.0
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?$")


def read_calib(path: Path) -> dict[str, str]:
    """``key: values`` lines of a KITTI calibration file (values kept as text)."""
    out = {}
    for line in read_text(path, "KITTI calibration", 1 << 20).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _calib_numbers(calib: dict[str, str], key: str, count: int, path: Path) -> np.ndarray:
    if key not in calib:
        raise InputError(f"{path}: missing {key}")
    fields = calib[key].split()
    if len(fields) != count:
        raise InputError(f"{path}: {key} has {len(fields)} numbers, expected {count}")
    try:
        values = np.array([float(f) for f in fields])
    except ValueError:
        raise InputError(f"{path}: {key} holds a field that is not a number ({calib[key][:60]!r})") from None
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: {key} holds a non-finite number")
    return values


def _rigid(calib: dict[str, str], path: Path) -> np.ndarray:
    """(4, 4) from ``R`` (9) and ``T`` (3)."""
    T = np.eye(4)
    T[:3, :3] = _calib_numbers(calib, "R", 9, path).reshape(3, 3)
    T[:3, 3] = _calib_numbers(calib, "T", 3, path)
    return T


def _stamps(path: Path) -> list[int]:
    stamps = []
    for n, line in enumerate(read_text(path, "KITTI timestamps").splitlines(), start=1):
        if not line.strip():
            continue
        m = _STAMP.match(line.strip())
        if m is None:
            raise InputError(f"{path}:{n}: expected 'YYYY-MM-DD hh:mm:ss.fffffffff', got {line.strip()[:40]!r}")
        seconds = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
        stamps.append(int(seconds) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0")))
    return stamps


def project_to_depth(points_cam: np.ndarray, K: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sparse depth image of points in the camera's optical frame.

    Args:
        points_cam: (N, 3) metres; points with z <= 0 are dropped.
        K: (3, 3) intrinsics, pixels at (width, height).

    Returns:
        (height, width) float32 z in metres at the pixel whose centre is nearest each projection
        (integer coordinates are centres); the nearest point where several land; NaN elsewhere.
    """
    p = points_cam[np.isfinite(points_cam).all(axis=1) & (points_cam[:, 2] > 0)]
    uvw = p @ np.asarray(K, dtype=np.float64).T
    u = np.rint(uvw[:, 0] / uvw[:, 2]).astype(np.int64)
    v = np.rint(uvw[:, 1] / uvw[:, 2]).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    flat = np.full(height * width, np.inf)
    np.minimum.at(flat, v[inside] * width + u[inside], p[inside, 2])
    flat[np.isinf(flat)] = np.nan
    return flat.reshape(height, width).astype(np.float32)


def _read_scan(path: Path, max_bytes: int) -> np.ndarray:
    """(N, 3) float64 x, y, z of a Velodyne .bin (float32 x, y, z, reflectance)."""
    if not path.is_file():
        raise InputError(f"{path}: Velodyne scan does not exist")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"{path}: Velodyne scan is {size} bytes, more than the limit of {max_bytes}")
    if size % 16:
        raise InputError(f"{path}: Velodyne scan is {size} bytes, not a multiple of 16 (float32 x, y, z, reflectance)")
    return np.fromfile(path, dtype="<f4", count=size // 4).reshape(-1, 4)[:, :3].astype(np.float64)


def oxts_poses(files: list[Path], stamps: list[int]) -> PoseTrack:
    """``T_odom_imu`` of OXTS files (Mercator projection, relative to the first pose).

    Raises:
        InputError: a file with fewer than 6 numbers or a bad number (file named).
    """
    values = []
    for path in files:
        fields = read_text(path, "OXTS record", 1 << 16).split()
        if len(fields) < 6:
            raise InputError(f"{path}: expected at least 6 numbers (lat lon alt roll pitch yaw), found {len(fields)}")
        values.append([parse_number(f, path, 1, name) for f, name in zip(fields[:6], ("lat", "lon", "alt", "roll", "pitch", "yaw"))])
    v = np.asarray(values).reshape(-1, 6)
    scale = np.cos(np.radians(v[0, 0]))
    T = np.tile(np.eye(4), (len(v), 1, 1))
    T[:, 0, 3] = scale * np.radians(v[:, 1]) * EARTH_RADIUS_M
    T[:, 1, 3] = scale * EARTH_RADIUS_M * np.log(np.tan(np.radians(90.0 + v[:, 0]) / 2.0))
    T[:, 2, 3] = v[:, 2]
    for i, (roll, pitch, yaw) in enumerate(v[:, 3:6]):
        T[i, :3, :3] = rpy_to_matrix(roll, pitch, yaw)
    return PoseTrack.from_unsorted(stamps, np.linalg.inv(T[0]) @ T)


def _listed(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in (folder / "data").iterdir() if p.suffix == suffix) if (folder / "data").is_dir() else []


def _camera(cam_path: Path, index: str) -> tuple[CameraCalib, np.ndarray]:
    """(rectified camera, T_cam_cam0rect (4, 4)) from calib_cam_to_cam.txt."""
    calib = read_calib(cam_path)
    P = _calib_numbers(calib, f"P_rect_{index}", 12, cam_path).reshape(3, 4)
    width, height = (int(round(x)) for x in _calib_numbers(calib, f"S_rect_{index}", 2, cam_path))
    try:
        camera = CameraCalib(width, height, P[:, :3], (0.0,) * 5, "plumb_bob", np.hstack([P[:, :3], np.zeros((3, 1))]))
    except ValueError as exc:
        raise InputError(f"{cam_path}: P_rect_{index} / S_rect_{index}: {exc}") from None
    T_cam_rect0 = np.eye(4)
    T_cam_rect0[:3, 3] = np.linalg.solve(P[:, :3], P[:, 3])
    R_rect = np.eye(4)
    R_rect[:3, :3] = _calib_numbers(calib, "R_rect_00", 9, cam_path).reshape(3, 3)
    return camera, T_cam_rect0 @ R_rect


def load_kitti(src: str | Path, *, camera: str = "image_02", calib_dir: str | Path | None = None,
               velodyne: bool = True) -> Dataset:
    """Read a KITTI raw drive folder (synced and rectified).

    Raises:
        InputError: a missing or malformed file, image and timestamp counts that differ.
    """
    src = Path(src)
    m = re.fullmatch(r"image_(\d\d)", camera)
    if m is None:
        raise InputError(f"KITTI camera {camera!r}: expected image_00 .. image_03")
    images = _listed(src / camera, ".png")
    if not images:
        raise InputError(f"{src}: no {camera}/data/*.png; expected a KITTI raw drive folder")
    stamps = _stamps(src / camera / "timestamps.txt")
    if len(stamps) != len(images):
        raise InputError(f"{src / camera / 'timestamps.txt'}: {len(stamps)} stamps for {len(images)} images in {camera}/data")
    cdir = Path(calib_dir) if calib_dir is not None else (src if (src / "calib_cam_to_cam.txt").is_file() else src.parent)
    calib, T_cam_cam0 = _camera(cdir / "calib_cam_to_cam.txt", m.group(1))
    velo_path = cdir / "calib_velo_to_cam.txt"
    T_cam_velo = T_cam_cam0 @ _rigid(read_calib(velo_path), velo_path)
    notes = [f"camera {camera} rectified: {calib.width}x{calib.height}, K from P_rect_{m.group(1)}, D = 0"]
    scans = {p.stem: p for p in _listed(src / "velodyne_points", ".bin")} if velodyne else {}
    frames = tuple(FrameFiles(s, p, scans.get(p.stem)) for s, p in zip(stamps, images))

    def load_depth(path: Path, cam: CameraCalib, max_bytes: int) -> np.ndarray:
        xyz = _read_scan(path, max_bytes)
        points_cam = xyz @ T_cam_velo[:3, :3].T + T_cam_velo[:3, 3]
        return project_to_depth(points_cam, np.asarray(cam.K), cam.width, cam.height)

    poses, T_body_cam = None, np.linalg.inv(T_cam_velo)  # body: the Velodyne when there is no IMU
    oxts = _listed(src / "oxts", ".txt")
    if oxts:
        imu_path = cdir / "calib_imu_to_velo.txt"
        T_cam_imu = T_cam_velo @ _rigid(read_calib(imu_path), imu_path)
        T_body_cam = np.linalg.inv(T_cam_imu)
        oxts_stamps = _stamps(src / "oxts" / "timestamps.txt")
        if len(oxts_stamps) != len(oxts):
            raise InputError(f"{src / 'oxts' / 'timestamps.txt'}: {len(oxts_stamps)} stamps for {len(oxts)} files in oxts/data")
        poses = oxts_poses(oxts, oxts_stamps)
    else:
        notes.append("no oxts/data: no odometry")
    return Dataset(
        layout="kitti", source=src, camera=calib, frames=frames,
        depth_loader=load_depth if scans else None,
        depth_note="Velodyne scans projected into the camera: sparse, NaN where no point",
        poses=poses, T_body_cam=T_body_cam, notes=tuple(notes),
    )
