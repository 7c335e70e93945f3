"""Pinhole camera model: intrinsics in pixels at a stated resolution.

Convention: pixel (u, v) = (column, row); integer coordinates are pixel *centres*, the
top-left pixel's centre is (0, 0) (as in ROS CameraInfo / OpenCV). A point (x, y, z) in the
camera optical frame (REP 103: x right, y down, z forward) projects to
``u = fx * x / z + cx``, ``v = fy * y / z + cy``.

Intrinsics change with the image only through :func:`rescale_intrinsics` (which
:meth:`CameraModel.resized` and the training losses' image pyramids both call) and
:meth:`CameraModel.cropped` / :meth:`CameraModel.padded`; nothing else rescales K.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MAX_RAY_ANGLE_DEG", "MIN_FOV_DEG", "CameraModel", "camera_change", "check_physical_intrinsics", "rescale_intrinsics"]

_MAX_SIDE_PX = 1 << 15  # 32768: larger images are refused as implausible

#: Largest angle (degrees) between the optical axis and the ray through any pixel edge of a
#: calibrated image: a (rectified) pinhole image cannot show a ray at 90 degrees from its axis,
#: and near it the ray's x/z grows without bound (at 89.5 degrees a point 1 m deep already lies
#: 115 m to the side). With the principal point at the centre this is a field of view of at most
#: 179 degrees, i.e. ``f >= extent / (2 tan(89.5 deg)) = extent / 229``. A fisheye's K (f about
#: extent / pi for 180 degrees) is far inside it; fx = 1e-30 or a principal point 1e12 px away,
#: which put cloud points 1e6 m and more from the camera, are far outside.
MAX_RAY_ANGLE_DEG = 89.5
#: Smallest field of view (degrees) along either axis: narrower than any lens a robot carries (a
#: 2000 mm telephoto on a full-frame sensor sees about 1 degree). Beyond it, ``f >
#: extent / (2 tan(0.005 deg)) = 5730 * extent``, rays are parallel to float32 precision and a
#: focal-length-based metric scale (``canonical_focal``) would multiply depth by f.
MIN_FOV_DEG = 0.01


def rescale_intrinsics(K: Any, sx: float, sy: float | None = None) -> Any:
    """Intrinsics of the image resized by ``sx`` horizontally and ``sy`` vertically.

    The one place K is rescaled. Convention: a resize maps pixel *edges* to edges
    (``align_corners=False``, area / bilinear downsampling), integer coordinates being pixel
    centres, so ``f' = f * s`` (the skew too, with ``sx``) and ``c' = (c + 0.5) * s - 0.5``.

    Args:
        K: (3, 3) or (..., 3, 3) intrinsics in pixels, a numpy array or a torch tensor
            (anything with ``copy()`` or ``clone()`` and numpy-style indexing); not modified.
        sx: new width / old width (> 0).
        sy: new height / old height (> 0); None: ``sx``.

    Returns:
        A new array or tensor of K's type, shape and dtype.
    """
    sy = sx if sy is None else sy
    if tuple(K.shape[-2:]) != (3, 3):
        raise ValueError(f"K must be (3, 3) or (..., 3, 3), got {tuple(K.shape)}")
    if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
        raise ValueError(f"resize factors must be positive and finite, got sx={sx}, sy={sy}")
    out = K.clone() if hasattr(K, "clone") else K.copy()
    out[..., 0, :2] = K[..., 0, :2] * sx
    out[..., 1, :2] = K[..., 1, :2] * sy
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return out


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of one image stream.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        K: (3, 3) float64 intrinsic matrix in pixels at (width, height).
        D: distortion coefficients (may be empty); depth is computed as if the image were
            rectified, which is what a model sees.
        distortion_model: CameraInfo's name for D ("plumb_bob", "equidistant", ...).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got shape {K.shape}")
        if not np.all(np.isfinite(K)):
            raise ValueError(f"K has non-finite entries: {K.tolist()}")
        if not (0 < int(self.width) <= _MAX_SIDE_PX and 0 < int(self.height) <= _MAX_SIDE_PX):
            raise ValueError(f"image size must be 1..{_MAX_SIDE_PX} px per side, got {self.width}x{self.height}")
        if not np.any(K):
            raise ValueError("K is all zeros: the camera is uncalibrated (CameraInfo.k not set)")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
        K = K.copy()
        K.setflags(write=False)
        D = np.asarray(self.D, dtype=np.float64).reshape(-1).copy()
        D.setflags(write=False)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def check_physical(self) -> None:
        """Refuse intrinsics no real camera has (see :func:`check_physical_intrinsics`)."""
        check_physical_intrinsics(self.width, self.height, self.K)

    @classmethod
    def from_intrinsics(cls, width: int, height: int, fx_px: float, fy_px: float, cx_px: float, cy_px: float) -> "CameraModel":
        K = np.array([[fx_px, 0.0, cx_px], [0.0, fy_px, cy_px], [0.0, 0.0, 1.0]])
        return cls(width=width, height=height, K=K)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "CameraModel":
        """A pinhole of horizontal field of view ``hfov_deg`` (degrees, in (0, 180)) over the whole
        ``width`` (pixel edges -0.5 to width - 0.5), square pixels and the principal point at the
        image centre: ``fx = fy = (width / 2) / tan(hfov / 2)``, ``cx = (width - 1) / 2``,
        ``cy = (height - 1) / 2``.

        Raises:
            ValueError: ``hfov_deg`` not a finite number in (0, 180).
        """
        if not (isinstance(hfov_deg, (int, float)) and math.isfinite(hfov_deg) and 0.0 < hfov_deg < 180.0):
            raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg!r}")
        f = 0.5 * width / math.tan(0.5 * math.radians(hfov_deg))
        return cls.from_intrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view over the whole width, degrees: ``2 atan(width / (2 fx))``
        (the principal point taken at the centre)."""
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)

    def resized(self, width: int, height: int) -> "CameraModel":
        """The same camera seen through an image resized to (width, height).

        Convention: a resize maps pixel *edges* to edges (``align_corners=False``), so the
        centre coordinate transforms as ``c' = (c + 0.5) * s - 0.5`` and focal as ``f' = f * s``
        (:func:`rescale_intrinsics`).
        """
        K = rescale_intrinsics(self.K, width / self.width, height / self.height)
        return CameraModel(width, height, K, self.D, self.distortion_model)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "CameraModel":
        """The same camera seen through the crop [x0, x0+width) x [y0, y0+height)."""
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise ValueError(
                f"crop ({x0}, {y0}, {width}x{height}) is outside the {self.width}x{self.height} image"
            )
        K = self.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        return CameraModel(width, height, K, self.D, self.distortion_model)

    def padded(self, left: int, top: int, width: int, height: int) -> "CameraModel":
        """The same camera seen through the image placed at (left, top) in a larger
        (width, height) canvas (bands added around it; the inverse of :meth:`cropped`).

        Convention: the principal point moves by the band, ``c' = c + left`` (``+ top``);
        focal lengths do not change.
        """
        if left < 0 or top < 0 or left + self.width > width or top + self.height > height:
            raise ValueError(
                f"padding ({left}, {top}) to {width}x{height} does not hold the {self.width}x{self.height} image"
            )
        K = self.K.copy()
        K[0, 2] += left
        K[1, 2] += top
        return CameraModel(width, height, K, self.D, self.distortion_model)

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) float32 rays ``K^-1 [u, v, 1]`` (z = 1) for every pixel centre."""
        u = (np.arange(self.width, dtype=np.float64) - self.cx) / self.fx
        v = (np.arange(self.height, dtype=np.float64) - self.cy) / self.fy
        rays = np.empty((self.height, self.width, 3), dtype=np.float32)
        rays[..., 0] = u[None, :]
        rays[..., 1] = v[:, None]
        rays[..., 2] = 1.0
        return rays

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraModel):
            return NotImplemented
        return (
            self.size == other.size
            and np.array_equal(self.K, other.K)
            and np.array_equal(self.D, other.D)
            and self.distortion_model == other.distortion_model
        )

    def __hash__(self) -> int:
        return hash((self.size, self.K.tobytes(), self.D.tobytes(), self.distortion_model))


def check_physical_intrinsics(width: int, height: int, K: np.ndarray) -> None:
    """Check that pinhole intrinsics can belong to a physical camera.

    Per axis (fx with the width, fy with the height): every pixel edge's ray is less than
    :data:`MAX_RAY_ANGLE_DEG` from the optical axis, and the image spans at least
    :data:`MIN_FOV_DEG`. The first bounds the focal length from below *and* the principal point
    (it may lie off the image, as after a crop, but not so far that the image sees sideways).

    Args:
        width, height: image size in pixels.
        K: (3, 3) intrinsic matrix in pixels at (width, height), focal lengths positive.

    Raises:
        ValueError: naming the focal length or principal point, its value and the bound.
    """
    max_slope = math.tan(math.radians(MAX_RAY_ANGLE_DEG))
    min_half_span = math.tan(math.radians(MIN_FOV_DEG / 2))
    for axis, extent, f, c in (("x", width, float(K[0, 0]), float(K[0, 2])), ("y", height, float(K[1, 1]), float(K[1, 2]))):
        side = "width" if axis == "x" else "height"
        f_max = extent / (2 * min_half_span)
        if f > f_max:
            raise ValueError(
                f"f{axis} = {f:.6g} px is implausible for a {extent} px {side}: more than {f_max:.6g} px "
                f"(a field of view under {MIN_FOV_DEG} degrees)"
            )
        # Pixel edges lie at -0.5 and extent - 0.5 (pixel centres are integers).
        reach_px = max(abs(-0.5 - c), abs(extent - 0.5 - c))
        if reach_px > f * max_slope:
            raise ValueError(
                f"f{axis} = {f:.6g} px with c{axis} = {c:.6g} px is implausible for a {extent} px {side}: "
                f"pixels at {reach_px:.6g} px from the principal point would see more than {MAX_RAY_ANGLE_DEG} degrees "
                f"off the optical axis (need f{axis} >= {reach_px / max_slope:.6g} px, a field of view under "
                f"{2 * MAX_RAY_ANGLE_DEG:g} degrees)"
            )


def _summary(camera: CameraModel) -> str:
    return (f"{camera.width}x{camera.height} fx {camera.fx:.6g} fy {camera.fy:.6g} "
            f"cx {camera.cx:.6g} cy {camera.cy:.6g} px")


def camera_change(old: CameraModel | None, new: CameraModel) -> str | None:
    """What changed from ``old`` to ``new`` as ``"<old> -> <new>"`` (size, fx, fy, cx, cy,
    and "distortion" when only D or its model changed), or None when they are equal or
    ``old`` is None (the first camera is no change)."""
    if old is None or old == new:
        return None
    text = f"{_summary(old)} -> {_summary(new)}"
    if _summary(old) == _summary(new):
        text += " (skew, distortion or intrinsics beyond 6 digits changed)"
    return text
