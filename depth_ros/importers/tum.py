"""TUM RGB-D layout: ``rgb.txt``, ``depth.txt``, ``groundtruth.txt``, ``rgb/*.png``, ``depth/*.png``.

``rgb.txt`` / ``depth.txt``: ``timestamp filename`` per line (seconds; ``#`` comments).
``groundtruth.txt``: ``timestamp tx ty tz qx qy qz qw``, the pose of the colour camera's optical
centre in the motion-capture world (``T_world_cam``, camera axes x right, y down, z forward).
Depth: 16-bit PNG registered to the colour camera, 5000 units per metre, 0 invalid.

Colour and depth are associated by nearest stamp (within ``tolerance_s``, default 0.02 s as in
TUM's ``associate.py``); the depth is written with the colour image's stamp. The camera is
published per recording site (fr1, fr2, fr3): :data:`TUM_CAMERAS` holds the colour intrinsics
and plumb_bob distortion from the TUM RGB-D page, chosen by ``camera`` (default: from the folder
name ``rgbd_dataset_freiburgN_*``). fr3 images are already undistorted (D = 0). The page's depth
correction factors (fr1 1.035, fr2 1.031) are applied only when ``depth_correction`` is set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_ros.errors import InputError
from depth_ros.importers.common import (
    CameraCalib,
    Dataset,
    FrameFiles,
    PoseTrack,
    associate,
    body_from_optical_track,
    parse_number,
    parse_stamp_s,
    pose_matrix,
    read_table,
)

__all__ = ["TUM_CAMERAS", "TUM_DEPTH_UNITS_PER_M", "TumCamera", "load_tum", "read_pose_file"]

#: TUM depth PNGs: 5000 units per metre (0.2 mm), 0 = no reading.
TUM_DEPTH_UNITS_PER_M = 5000.0


@dataclass(frozen=True)
class TumCamera:
    """Colour camera of one TUM site: intrinsics (px at 640x480), plumb_bob D, depth correction."""

    fx: float
    fy: float
    cx: float
    cy: float
    d: tuple[float, float, float, float, float]
    depth_correction: float = 1.0


#: The published calibrations ("ros" = the ROS default Kinect camera the raw bags used).
TUM_CAMERAS: dict[str, TumCamera] = {
    "fr1": TumCamera(517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633), 1.035),
    "fr2": TumCamera(520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172), 1.031),
    "fr3": TumCamera(535.4, 539.2, 320.1, 247.6, (0.0, 0.0, 0.0, 0.0, 0.0)),
    "ros": TumCamera(525.0, 525.0, 319.5, 239.5, (0.0, 0.0, 0.0, 0.0, 0.0)),
}
_WIDTH, _HEIGHT = 640, 480


def _camera_name(src: Path, camera: str | None) -> str:
    if camera is not None:
        if camera not in TUM_CAMERAS:
            raise InputError(f"TUM camera {camera!r}: expected one of {', '.join(TUM_CAMERAS)}")
        return camera
    match = re.search(r"freiburg([123])", src.resolve().name)
    if match is None:
        raise InputError(f"{src}: cannot tell fr1/fr2/fr3 from the folder name; name the camera with --camera")
    return f"fr{match.group(1)}"


def _file_list(path: Path) -> tuple[np.ndarray, list[Path]]:
    rows = read_table(path, "timestamp filename", 2)
    stamps = [parse_stamp_s(f[0], path, n) for n, f in rows]
    files = [path.parent / f[1] for _, f in rows]
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return np.asarray(stamps, dtype=np.int64)[order], [files[i] for i in order]


def read_pose_file(path: Path) -> PoseTrack:
    """A TUM trajectory file: ``timestamp tx ty tz qx qy qz qw`` per line -> ``T_world_X`` poses.

    Duplicate stamps keep the first pose.

    Raises:
        InputError: a short line, a field that is not a number, a zero quaternion (file:line).
    """
    rows = read_table(path, "timestamp tx ty tz qx qy qz qw", 8)
    names = ("tx", "ty", "tz", "qx", "qy", "qz", "qw")
    stamps, poses = [], []
    for n, f in rows:
        stamp = parse_stamp_s(f[0], path, n)
        v = [parse_number(text, path, n, name) for text, name in zip(f[1:8], names)]
        if np.linalg.norm(v[3:]) < 1e-9:
            raise InputError(f"{path}:{n}: quaternion (qx, qy, qz, qw) is zero")
        stamps.append(stamp)
        poses.append(pose_matrix(v[:3], v[3:]))
    return PoseTrack.from_unsorted(stamps, poses)


def load_tum(src: str | Path, *, camera: str | None = None, tolerance_s: float = 0.02,
             depth_correction: bool = False) -> Dataset:
    """Read a TUM RGB-D sequence folder.

    Args:
        src: the folder holding ``rgb.txt`` (``depth.txt`` and ``groundtruth.txt`` optional).
        camera: "fr1", "fr2", "fr3" or "ros"; None: from the folder name.
        tolerance_s: largest colour / depth stamp difference associated.
        depth_correction: multiply depth by the site's published correction factor.

    Raises:
        InputError: a missing or malformed file, an unknown camera, no frames.
    """
    from depth_ros.importers.images import calibration_for_images, read_depth_png

    src = Path(src)
    if not (src / "rgb.txt").is_file():
        raise InputError(f"{src}: no rgb.txt; expected a TUM RGB-D folder (rgb.txt, depth.txt, groundtruth.txt)")
    if not tolerance_s > 0:
        raise InputError(f"TUM association tolerance must be > 0 s, got {tolerance_s}")
    name = _camera_name(src, camera)
    tc = TUM_CAMERAS[name]
    rgb_ns, rgb_files = _file_list(src / "rgb.txt")
    if not rgb_files:
        raise InputError(f"{src / 'rgb.txt'}: lists no images")
    notes = [f"camera {name}: fx {tc.fx} fy {tc.fy} cx {tc.cx} cy {tc.cy} at 640x480, plumb_bob D {list(tc.d)}"]
    K = np.array([[tc.fx, 0, tc.cx], [0, tc.fy, tc.cy], [0, 0, 1]])
    calib = calibration_for_images(K, tc.d, "plumb_bob", (_WIDTH, _HEIGHT), rgb_files[0], notes)
    depth_files: dict[int, Path] = {}
    if (src / "depth.txt").is_file():
        depth_ns, dfiles = _file_list(src / "depth.txt")
        pairs = associate(rgb_ns, depth_ns, int(round(tolerance_s * 1e9)))
        depth_files = {i: dfiles[j] for i, j in pairs}
        notes.append(f"{len(pairs)} of {len(rgb_ns)} colour frames have a depth image within {tolerance_s:g} s")
    scale = TUM_DEPTH_UNITS_PER_M / (tc.depth_correction if depth_correction else 1.0)

    def load_depth(path: Path, cam: CameraCalib, max_bytes: int) -> np.ndarray:
        return read_depth_png(path, scale, (), max_bytes)

    frames = tuple(FrameFiles(int(s), f, depth_files.get(i)) for i, (s, f) in enumerate(zip(rgb_ns, rgb_files)))
    poses, T_body_cam = None, np.eye(4)
    if (src / "groundtruth.txt").is_file():
        poses, T_body_cam = body_from_optical_track(read_pose_file(src / "groundtruth.txt"))
    return Dataset(
        layout="tum", source=src, camera=calib, frames=frames,
        depth_loader=load_depth if depth_files else None,
        depth_note=f"16-bit PNG, {scale:g} units per metre, 0 invalid, registered to colour",
        poses=poses, T_body_cam=T_body_cam, notes=tuple(notes),
    )
