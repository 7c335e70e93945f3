"""Bounded reading of a dataset's images and depth PNGs, and the camera of resized images.

Every file is checked before it is decoded: its size on disk (``max_bytes``) and the image size in
its header (at most :data:`~depth_ros.importers.common.MAX_SIDE_PX` a side). Errors are one line
naming the file.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from depth_ros.errors import InputError
from depth_ros.importers.common import MAX_IMAGE_BYTES, MAX_SIDE_PX, CameraCalib

__all__ = ["calibration_for_images", "image_size", "read_depth_png", "read_image"]


def _open_bounded(path: Path, max_bytes: int, what: str) -> Any:
    from PIL import Image as PILImage

    if not path.is_file():
        raise InputError(f"{path}: {what} does not exist" if not path.exists() else f"{path}: {what} is not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"{path}: {what} is {size} bytes, more than the limit of {max_bytes}")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)  # never more than the cap, whatever the file has grown to
    if len(data) > max_bytes:
        raise InputError(f"{path}: {what} is more than the limit of {max_bytes} bytes")
    try:
        image = PILImage.open(io.BytesIO(data), formats=("PNG", "JPEG"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: {what} is not a readable PNG or JPEG ({type(exc).__name__})") from None
    w, h = image.size
    if not (0 < w <= MAX_SIDE_PX and 0 < h <= MAX_SIDE_PX):
        raise InputError(f"{path}: {what} is {w}x{h}; at most {MAX_SIDE_PX} px a side is accepted")
    return image, data


def image_size(path: Path, max_bytes: int) -> tuple[int, int]:
    """(width, height) of a PNG/JPEG from its header (bounded like :func:`read_image`)."""
    image, _ = _open_bounded(path, max_bytes, "image")
    return image.size


def read_image(path: Path, max_bytes: int) -> tuple[np.ndarray, str, bytes, str]:
    """A colour or grey PNG/JPEG image.

    Returns:
        (pixels, encoding, file bytes, format): pixels (H, W, 3) uint8 RGB for ``"rgb8"`` or
        (H, W) uint8 for ``"mono8"``; format ``"jpeg"`` or ``"png"``.

    Raises:
        InputError: missing, over ``max_bytes``, over 4096 px a side, undecodable, or not an
            8-bit colour / grey image (e.g. a 16-bit depth PNG given as the image).
    """
    image, data = _open_bounded(path, max_bytes, "image")
    fmt = str(image.format).lower()
    try:
        if image.mode == "L":
            return np.asarray(image), "mono8", data, fmt
        if image.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
            return np.ascontiguousarray(np.asarray(image.convert("RGB"))), "rgb8", data, fmt
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: image does not decode ({exc})") from None
    raise InputError(f"{path}: image has pixel mode {image.mode!r}; expected 8-bit colour (RGB) or grey (L)")


def read_depth_png(path: Path, units_per_m: float, invalid: tuple[int, ...], max_bytes: int) -> np.ndarray:
    """A 16-bit depth PNG as metres: ``depth_m = value / units_per_m``; 0 and ``invalid`` -> NaN.

    Returns:
        (H, W) float32 metres, NaN where invalid.

    Raises:
        InputError: missing, too large, or not a 16-bit single-channel PNG.
    """
    image, _ = _open_bounded(path, max_bytes, "depth image")
    if image.mode not in ("I;16", "I", "I;16B"):
        raise InputError(f"{path}: depth image has pixel mode {image.mode!r}; expected a 16-bit grey PNG")
    try:
        raw = np.asarray(image).astype(np.int64)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: depth image does not decode ({exc})") from None
    depth = (raw / float(units_per_m)).astype(np.float32)
    bad = raw <= 0
    for value in invalid:
        bad |= raw == value
    depth[bad] = np.nan
    return depth


def calibration_for_images(K: np.ndarray, D: Sequence[float], distortion_model: str, native: tuple[int, int],
                           first_image: Path, notes: list[str]) -> CameraCalib:
    """A published calibration at its ``native`` (width, height), for the dataset's images.

    Images resized at the same aspect (a downsampled copy of a dataset) get the calibration
    rescaled by :meth:`depth_ros.core.camera.CameraModel.resized` (D is unchanged: it acts on
    normalised coordinates), with a note; another aspect is an error.

    Raises:
        InputError: the first image cannot be read, or its aspect differs from ``native``.
    """
    from depth_ros.core.camera import CameraModel

    width, height = image_size(first_image, MAX_IMAGE_BYTES)
    K = np.asarray(K, dtype=np.float64)
    if (width, height) != native:
        if width * native[1] != height * native[0]:
            raise InputError(f"{first_image}: image is {width}x{height}; the calibration is for "
                             f"{native[0]}x{native[1]} (or images resized at that aspect)")
        K = CameraModel(native[0], native[1], K).resized(width, height).K
        notes.append(f"images are {width}x{height}: the {native[0]}x{native[1]} calibration scaled by {width / native[0]:g}")
    return CameraCalib(width, height, K, tuple(D), distortion_model)
