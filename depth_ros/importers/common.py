"""What every importer shares: the dataset description, bounded readers and table parsing.

An importer turns a dataset folder into a :class:`Dataset` (camera, frames, ground-truth pose
track, extrinsics), reading only text files; images and depth files are read later, one frame at
a time, by :mod:`depth_ros.importers.bagout`. Every problem with the files is an
:class:`~depth_ros.errors.InputError` of one line naming the file (and line) and what was
expected.

Conventions: stamps are integer nanoseconds; poses are ``T_world_body`` (4, 4) float64 mapping
points of the body frame into the world frame; ``T_body_cam`` maps points of the camera's optical
frame (REP 103: x right, y down, z forward) into the body frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from depth_ros.core.rotation import quaternion_to_matrix
from depth_ros.errors import InputError
from depth_ros.safeio import load_yaml_bounded, read_text_capped

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_SIDE_PX",
    "MAX_TEXT_BYTES",
    "R_BODY_OPTICAL",
    "CameraCalib",
    "Dataset",
    "FrameFiles",
    "ImportOptions",
    "PoseTrack",
    "associate",
    "body_from_optical_track",
    "parse_number",
    "parse_stamp_s",
    "pose_matrix",
    "read_table",
    "read_text",
    "read_yaml",
]

#: Largest image side accepted (pixels): larger frames are refused, not resized.
MAX_SIDE_PX = 4096
#: Largest image / depth / LiDAR file read (bytes): a 4096x4096 16-bit PNG is at most ~32 MiB.
MAX_IMAGE_BYTES = 64 << 20
#: Largest list, pose, calibration or intrinsics text file read (bytes).
MAX_TEXT_BYTES = 64 << 20
_MAX_YAML_NESTING = 16
#: R_body_optical: the optical frame (x right, y down, z forward) in a REP 103 body frame
#: (x forward, y left, z up) at the same origin.
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class ImportOptions:
    """What to import and how.

    Args:
        max_frames: at most this many frames (after ``stride``); None: all.
        stride: keep every ``stride``-th frame (1: all).
        compressed: write the image as CompressedImage (``/camera/image_raw/compressed``, the
            source file's JPEG/PNG bytes unchanged) instead of a raw Image.
        overwrite: replace an existing output file (only once the new one is complete).
        max_file_bytes: largest image / depth / LiDAR file accepted.
    """

    max_frames: int | None = None
    stride: int = 1
    compressed: bool = False
    overwrite: bool = False
    max_file_bytes: int = MAX_IMAGE_BYTES

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, got {self.max_file_bytes}")


@dataclass(frozen=True)
class CameraCalib:
    """A camera as CameraInfo describes it.

    Args:
        width, height: image size in pixels.
        K: (3, 3) intrinsics in pixels at (width, height).
        D: distortion coefficients as the dataset gives them (empty or zeros: none).
        distortion_model: CameraInfo's name: "plumb_bob" (k1, k2, p1, p2[, k3]),
            "rational_polynomial" or "equidistant" (k1..k4).
        P: (3, 4) projection of the rectified image; None: ``[K | 0]``.
    """

    width: int
    height: int
    K: np.ndarray
    D: tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    P: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not (0 < self.width <= MAX_SIDE_PX and 0 < self.height <= MAX_SIDE_PX):
            raise ValueError(f"camera size {self.width}x{self.height} outside 1..{MAX_SIDE_PX} px a side")
        K = np.asarray(self.K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"K must be a finite 3x3 matrix with positive focal lengths, got {K.tolist()}")
        if self.distortion_model not in ("plumb_bob", "rational_polynomial", "equidistant"):
            raise ValueError(f"distortion model {self.distortion_model!r}: expected plumb_bob, rational_polynomial or equidistant")
        if not all(np.isfinite(self.D)):
            raise ValueError(f"distortion coefficients must be finite, got {self.D}")
        if self.P is not None and np.asarray(self.P).shape != (3, 4):
            raise ValueError(f"P must be 3x4, got shape {np.asarray(self.P).shape}")

    @property
    def projection(self) -> np.ndarray:
        """(3, 4) P: the given one, else ``[K | 0]``."""
        if self.P is not None:
            return np.asarray(self.P, dtype=np.float64)
        return np.hstack([np.asarray(self.K, dtype=np.float64), np.zeros((3, 1))])


@dataclass(frozen=True)
class FrameFiles:
    """One frame: its stamp and files (``depth`` None: no ground truth for this frame)."""

    stamp_ns: int
    image: Path
    depth: Path | None = None


@dataclass(frozen=True)
class PoseTrack:
    """Ground-truth poses of the body frame.

    Args:
        stamps_ns: (M,) int64, increasing.
        T_world_body: (M, 4, 4) float64.
    """

    stamps_ns: np.ndarray
    T_world_body: np.ndarray

    def __post_init__(self) -> None:
        s, T = np.asarray(self.stamps_ns), np.asarray(self.T_world_body)
        if s.ndim != 1 or T.shape != (len(s), 4, 4):
            raise ValueError(f"pose track: stamps {s.shape} and poses {T.shape} do not match (M,) and (M, 4, 4)")
        if len(s) > 1 and not np.all(np.diff(s) > 0):
            raise ValueError("pose track: stamps must increase")

    def __len__(self) -> int:
        return len(self.stamps_ns)

    @classmethod
    def from_unsorted(cls, stamps_ns: Sequence[int], poses: Sequence[np.ndarray]) -> "PoseTrack":
        """A track of poses in any order; of several poses with one stamp the first listed is kept."""
        s = np.asarray(stamps_ns, dtype=np.int64)
        order = np.argsort(s, kind="stable")
        s, T = s[order], np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)[order]
        keep = np.concatenate([[True], np.diff(s) > 0]) if len(s) else np.zeros(0, bool)
        return cls(s[keep], T[keep])

    def window(self, start_ns: int, stop_ns: int) -> "PoseTrack":
        """The poses with ``start_ns <= stamp <= stop_ns`` plus one on each side (to interpolate at the ends)."""
        lo = max(int(np.searchsorted(self.stamps_ns, start_ns, side="left")) - 1, 0)
        hi = min(int(np.searchsorted(self.stamps_ns, stop_ns, side="right")) + 1, len(self.stamps_ns))
        return PoseTrack(self.stamps_ns[lo:hi], self.T_world_body[lo:hi])


#: (depth file, camera, largest file size in bytes) -> (H, W) float32 metres, NaN invalid (the
#: camera is needed to project LiDAR points).
DepthLoader = Callable[[Path, CameraCalib, int], np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """A dataset sequence ready to be written as a bag.

    Args:
        layout: the layout's name ("tum", "euroc", ...), for messages.
        source: the folder it was read from.
        camera: the image stream's calibration.
        frames: in stamp order.
        depth_loader: reads a frame's ``depth`` file; None: no ground-truth depth.
        depth_note: where the depth comes from and its scale (e.g. "16-bit PNG, 5000 per metre").
        poses: ground-truth poses of the body frame; None: no odometry.
        T_body_cam: (4, 4) extrinsic of the camera optical frame in the body frame.
        notes: what the user should know about this import (printed in the summary).
    """

    layout: str
    source: Path
    camera: CameraCalib
    frames: tuple[FrameFiles, ...]
    depth_loader: DepthLoader | None = None
    depth_note: str = ""
    poses: PoseTrack | None = None
    T_body_cam: np.ndarray = field(default_factory=lambda: np.eye(4))
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.frames:
            raise InputError(f"{self.source}: no frames found for layout {self.layout}")
        stamps = [f.stamp_ns for f in self.frames]
        if any(b <= a for a, b in zip(stamps[:-1], stamps[1:])):
            raise InputError(f"{self.source}: frame stamps of layout {self.layout} do not increase")


# -- reading text ---------------------------------------------------------------------------
def read_text(path: Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """UTF-8 text of a dataset file, size-bounded (:func:`depth_ros.safeio.read_text_capped`)."""
    return read_text_capped(path, max_bytes, what=what)


def read_yaml(path: Path, what: str) -> object:
    """A small YAML (or JSON) file, bounded; an OpenCV ``%YAML:1.0`` first line is skipped."""
    text = read_text(path, what, 1 << 20)
    if text.startswith("%YAML:"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    return load_yaml_bounded(text, str(path), max_nesting=_MAX_YAML_NESTING, what=what)


def read_table(path: Path, what: str, min_columns: int, *, delimiter: str | None = None) -> list[tuple[int, list[str]]]:
    """Rows of a text table: ``(line number, fields)``; blank lines and ``#`` comments skipped.

    Args:
        delimiter: None splits on white space; "," splits a CSV line (fields stripped).

    Raises:
        InputError: a row with fewer than ``min_columns`` fields (file, line and counts named).
    """
    rows = []
    for lineno, line in enumerate(read_text(path, what).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split() if delimiter is None else [f.strip() for f in line.split(delimiter)]
        if len(fields) < min_columns:
            raise InputError(f"{path}:{lineno}: expected at least {min_columns} columns ({what}), found {len(fields)}")
        rows.append((lineno, fields))
    return rows


def parse_number(text: str, path: Path, lineno: int, column: str) -> float:
    """A finite float from a table field; InputError naming file, line and column otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}:{lineno}: column {column}: {text[:40]!r} is not a number") from None
    if not np.isfinite(value):
        raise InputError(f"{path}:{lineno}: column {column}: {text[:40]!r} is not finite")
    return value


def parse_stamp_s(text: str, path: Path, lineno: int) -> int:
    """A stamp in decimal seconds (``1305031102.175304``) as exact integer nanoseconds."""
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        raise InputError(f"{path}:{lineno}: timestamp {text[:40]!r} is not a number of seconds") from None
    if not seconds.is_finite() or not 0 <= seconds < 2**31:
        raise InputError(f"{path}:{lineno}: timestamp {text[:40]!r} is outside 0 .. 2^31 s")
    return int((seconds * 1_000_000_000).to_integral_value())


def pose_matrix(t_xyz: Sequence[float], q_xyzw: Sequence[float]) -> np.ndarray:
    """(4, 4) pose from a translation (metres) and a quaternion (x, y, z, w; normalised here)."""
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(np.asarray(q_xyzw, dtype=np.float64))
    T[:3, 3] = t_xyz
    return T


def body_from_optical_track(track: PoseTrack) -> tuple[PoseTrack, np.ndarray]:
    """Poses of the camera optical frame as poses of a REP 103 body frame at the same origin.

    Returns:
        (track of ``T_world_body``, ``T_body_cam`` (4, 4)) with ``T_world_cam = T_world_body T_body_cam``.
    """
    T_body_cam = np.eye(4)
    T_body_cam[:3, :3] = R_BODY_OPTICAL
    return PoseTrack(track.stamps_ns, track.T_world_body @ np.linalg.inv(T_body_cam)), T_body_cam


def associate(a_ns: np.ndarray, b_ns: np.ndarray, tolerance_ns: int) -> list[tuple[int, int]]:
    """One-to-one association of two stamp lists by nearest stamp.

    Pairs are taken greedily in order of increasing stamp difference (closest first), each stamp
    used at most once, differences above ``tolerance_ns`` never paired.

    Args:
        a_ns: (N,) int64 stamps; b_ns: (M,) int64 stamps, each sorted increasing.

    Returns:
        (index in a, index in b) pairs, sorted by the index in a.
    """
    a, b = np.asarray(a_ns, dtype=np.int64), np.asarray(b_ns, dtype=np.int64)
    if not len(a) or not len(b):
        return []
    # candidates: each a with its two neighbours in b (the nearest b of an a is one of them)
    k = np.searchsorted(b, a)
    cand_a = np.concatenate([np.arange(len(a)), np.arange(len(a))])
    cand_b = np.concatenate([k - 1, k])
    ok = (cand_b >= 0) & (cand_b < len(b))
    cand_a, cand_b = cand_a[ok], cand_b[ok]
    diff = np.abs(a[cand_a] - b[cand_b])
    order = np.argsort(diff, kind="stable")
    used_a, used_b, pairs = set(), set(), []
    for i in order:
        if diff[i] > tolerance_ns:
            break
        ia, ib = int(cand_a[i]), int(cand_b[i])
        if ia in used_a or ib in used_b:
            continue
        used_a.add(ia)
        used_b.add(ib)
        pairs.append((ia, ib))
    return sorted(pairs)
