"""A plain folder of images + an intrinsics file (+ optional poses, + optional depth folder).

Images: ``SRC/*.png``, ``*.jpg``, ``*.jpeg``, sorted by name. Stamps: the file stems when every
stem is a number (decimal seconds; an integer of 16 or more digits is nanoseconds, as EuRoC names
its files), else frame k at ``1 s + k / rate_hz``.

Intrinsics (YAML or JSON), either a ROS ``camera_calibration`` file::

    image_width: 640
    image_height: 480
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}

or the short form ``{width, height, fx, fy, cx, cy[, distortion_model, D]}``.

Poses (optional): TUM trajectory lines ``timestamp tx ty tz qx qy qz qw``, the camera optical
frame in the world, stamps in the images' clock. Depth (optional): 16-bit PNGs named like the
images' stems, ``depth_units_per_m`` per metre, 0 invalid.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from depth_ros.errors import InputError
from depth_ros.importers.common import CameraCalib, Dataset, FrameFiles, body_from_optical_track, read_yaml

__all__ = ["IMAGE_SUFFIXES", "load_folder", "read_intrinsics"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_T0_NS = 1_000_000_000
_NS_DIGITS = 16


def _number(doc: dict[str, Any], key: str, path: Path) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(f"{path}: {key} must be a number, got {str(value)[:40]}")
    return float(value)


def _floats(value: Any, path: Path, key: str, count: int | None = None) -> list[float]:
    """Numbers of a list, or of a ``{data: [...]}`` matrix; ``count`` None: any length."""
    data = value.get("data") if isinstance(value, dict) else value
    if not isinstance(data, list) or (count is not None and len(data) != count) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in data
    ):
        raise InputError(f"{path}: {key} must hold {count if count is not None else 'a list of'} numbers, got {str(data)[:80]}")
    return [float(v) for v in data]


def read_intrinsics(path: Path) -> CameraCalib:
    """The camera of an intrinsics YAML / JSON file (the two forms in the module docstring).

    Raises:
        InputError: a missing key, a wrong count of numbers, an unusable camera (file named).
    """
    doc = read_yaml(path, "camera intrinsics")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a mapping of intrinsics")
    try:
        if "camera_matrix" in doc:
            width, height = int(_number(doc, "image_width", path)), int(_number(doc, "image_height", path))
            K = np.asarray(_floats(doc["camera_matrix"], path, "camera_matrix", 9), dtype=np.float64).reshape(3, 3)
            D = _floats(doc.get("distortion_coefficients", []), path, "distortion_coefficients")
        else:
            missing = [k for k in ("width", "height", "fx", "fy", "cx", "cy") if k not in doc]
            if missing:
                raise InputError(f"{path}: missing {', '.join(missing)} (or a ROS camera_calibration camera_matrix)")
            width, height = int(_number(doc, "width", path)), int(_number(doc, "height", path))
            fx, fy, cx, cy = (_number(doc, k, path) for k in ("fx", "fy", "cx", "cy"))
            K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
            D = _floats(doc.get("D", []), path, "D")
        return CameraCalib(width, height, K, tuple(D), str(doc.get("distortion_model", "plumb_bob")))
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def _stamps(images: list[Path], rate_hz: float) -> tuple[list[int], str]:
    try:
        values = [Decimal(p.stem) for p in images]
    except InvalidOperation:
        values = []
    if values and all(v.is_finite() and v >= 0 for v in values):
        as_ns = [int(v) if len(p.stem) >= _NS_DIGITS and p.stem.isdigit() else int(v * 1_000_000_000)
                 for v, p in zip(values, images)]
        return as_ns, "stamps from the file names"
    if not (rate_hz > 0 and np.isfinite(rate_hz)):
        raise InputError(f"frame rate must be > 0 Hz, got {rate_hz}")
    return [_T0_NS + int(round(k * 1e9 / rate_hz)) for k in range(len(images))], f"file names are not stamps: frames {1e3 / rate_hz:g} ms apart"


def load_folder(src: str | Path, *, intrinsics: str | Path, poses: str | Path | None = None,
                depth_dir: str | Path | None = None, depth_units_per_m: float = 1000.0,
                rate_hz: float = 10.0) -> Dataset:
    """Read a folder of images with its intrinsics (and poses, and depth).

    Raises:
        InputError: no images, a malformed intrinsics or pose file, stamps that do not increase.
    """
    from depth_ros.importers.images import read_depth_png
    from depth_ros.importers.tum import read_pose_file

    src = Path(src)
    if not src.is_dir():
        raise InputError(f"{src}: not a folder of images")
    if not (depth_units_per_m > 0 and np.isfinite(depth_units_per_m)):
        raise InputError(f"depth scale must be > 0 units per metre, got {depth_units_per_m}")
    images = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise InputError(f"{src}: no {', '.join(IMAGE_SUFFIXES)} images")
    calib = read_intrinsics(Path(intrinsics))
    stamps, how = _stamps(images, rate_hz)
    order = sorted(range(len(images)), key=lambda i: stamps[i])
    depth_root = Path(depth_dir) if depth_dir is not None else None
    if depth_root is not None and not depth_root.is_dir():
        raise InputError(f"{depth_root}: depth folder does not exist")
    frames = []
    for i in order:
        depth = depth_root / f"{images[i].stem}.png" if depth_root is not None else None
        frames.append(FrameFiles(stamps[i], images[i], depth if depth is not None and depth.is_file() else None))
    notes = [how, f"camera {calib.width}x{calib.height}, {calib.distortion_model} D {list(calib.D)}"]
    track, T_body_cam = body_from_optical_track(read_pose_file(Path(poses))) if poses is not None else (None, np.eye(4))

    def load_depth(path: Path, cam: CameraCalib, max_bytes: int) -> np.ndarray:
        return read_depth_png(path, depth_units_per_m, (), max_bytes)

    with_depth = sum(f.depth is not None for f in frames)
    if depth_root is not None:
        notes.append(f"{with_depth} of {len(frames)} images have a depth PNG in {depth_root}")
    return Dataset(
        layout="folder", source=src, camera=calib, frames=tuple(frames),
        depth_loader=load_depth if with_depth else None,
        depth_note=f"16-bit PNG, {depth_units_per_m:g} units per metre, 0 invalid",
        poses=track, T_body_cam=T_body_cam, notes=tuple(notes),
    )
