"""Microsoft 7-Scenes layout: ``seq-XX/frame-XXXXXX.{color.png, depth.png, pose.txt}``.

``pose.txt``: a 4x4 camera-to-world matrix (``T_world_cam``, camera optical axes), four rows of four
numbers. Depth: 16-bit PNG in millimetres (1000 per metre), 65535 (and 0) invalid.

Intrinsics are not in the files; the published ones are focal length 585 px at 640x480 with the
principal point at the image centre (320, 240), no distortion. The depth comes from the Kinect's
depth camera and is NOT registered to the colour image (different viewpoint and lens): pixel
for pixel it is only roughly aligned, so it suits coarse evaluation, not training labels. No stamps
are recorded: frame k is stamped ``1 s + k / rate_hz`` (0 is avoided: tf reads a zero stamp as
"latest").
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from depth_ros.errors import InputError
from depth_ros.importers.common import (
    CameraCalib,
    Dataset,
    FrameFiles,
    PoseTrack,
    body_from_optical_track,
    parse_number,
    read_text,
)

__all__ = ["SEVEN_SCENES_DEPTH_INVALID", "SEVEN_SCENES_DEPTH_UNITS_PER_M", "load_7scenes"]

SEVEN_SCENES_DEPTH_UNITS_PER_M = 1000.0
SEVEN_SCENES_DEPTH_INVALID = 65535
_FOCAL_PX, _WIDTH, _HEIGHT = 585.0, 640, 480
_FRAME = re.compile(r"frame-(\d+)\.color\.png$")
_T0_NS = 1_000_000_000


def _sequence_dir(src: Path, sequence: str | None) -> Path:
    if sequence is not None:
        seq = src / sequence
        if not seq.is_dir():
            raise InputError(f"{src}: no sequence folder {sequence}")
        return seq
    if any(_FRAME.match(p.name) for p in src.iterdir()):
        return src
    seqs = sorted(p.name for p in src.iterdir() if p.is_dir() and p.name.startswith("seq-"))
    if len(seqs) == 1:
        return src / seqs[0]
    if not seqs:
        raise InputError(f"{src}: no frame-XXXXXX.color.png and no seq-XX folder; expected a 7-Scenes scene or sequence")
    raise InputError(f"{src}: several sequences ({', '.join(seqs)}); choose one with --sequence")


def _read_pose(path: Path) -> np.ndarray:
    rows = [line.split() for line in read_text(path, "7-Scenes pose", 1 << 16).splitlines() if line.strip()]
    if len(rows) != 4 or any(len(r) != 4 for r in rows):
        raise InputError(f"{path}: expected a 4x4 matrix (4 lines of 4 numbers), found {[len(r) for r in rows]}")
    T = np.array([[parse_number(v, path, i + 1, f"{j + 1}") for j, v in enumerate(r)] for i, r in enumerate(rows)])
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-3):
        raise InputError(f"{path}: not a rigid transform (rotation not orthonormal or last row not 0 0 0 1)")
    return T


def load_7scenes(src: str | Path, *, sequence: str | None = None, rate_hz: float = 30.0) -> Dataset:
    """Read one 7-Scenes sequence (``src`` is the seq-XX folder, or the scene folder and ``sequence``).

    Raises:
        InputError: no frames, a malformed pose file, a bad rate.
    """
    from depth_ros.importers.images import calibration_for_images, read_depth_png

    src = Path(src)
    if not src.is_dir():
        raise InputError(f"{src}: not a folder; expected a 7-Scenes scene or seq-XX folder")
    if not (rate_hz > 0 and np.isfinite(rate_hz)):
        raise InputError(f"7-Scenes frame rate must be > 0 Hz, got {rate_hz}")
    seq = _sequence_dir(src, sequence)
    indexed = sorted((int(m.group(1)), p) for p in seq.iterdir() if (m := _FRAME.match(p.name)))
    if not indexed:
        raise InputError(f"{seq}: no frame-XXXXXX.color.png files")
    frames, stamps, poses = [], [], []
    for k, color in indexed:
        stamp = _T0_NS + int(round(k * 1e9 / rate_hz))
        base = color.name[: -len(".color.png")]
        depth = seq / f"{base}.depth.png"
        frames.append(FrameFiles(stamp, color, depth if depth.is_file() else None))
        pose = seq / f"{base}.pose.txt"
        if pose.is_file():
            stamps.append(stamp)
            poses.append(_read_pose(pose))
    notes = [f"{seq.name}: frames {1e3 / rate_hz:g} ms apart (no stamps recorded)",
             "depth is not registered to colour (another camera): coarse evaluation only"]
    K = np.array([[_FOCAL_PX, 0, _WIDTH / 2], [0, _FOCAL_PX, _HEIGHT / 2], [0, 0, 1]])
    calib = calibration_for_images(K, (0.0,) * 5, "plumb_bob", (_WIDTH, _HEIGHT), frames[0].image, notes)

    def load_depth(path: Path, cam: CameraCalib, max_bytes: int) -> np.ndarray:
        return read_depth_png(path, SEVEN_SCENES_DEPTH_UNITS_PER_M, (SEVEN_SCENES_DEPTH_INVALID,), max_bytes)

    track, T_body_cam = body_from_optical_track(PoseTrack.from_unsorted(stamps, poses)) if poses else (None, np.eye(4))
    return Dataset(
        layout="7scenes", source=src, camera=calib, frames=tuple(frames),
        depth_loader=load_depth if any(f.depth is not None for f in frames) else None,
        depth_note="16-bit PNG in millimetres (1000 per metre), 65535 and 0 invalid, not registered to colour",
        poses=track, T_body_cam=T_body_cam, notes=tuple(notes),
    )
