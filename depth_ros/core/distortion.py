"""Lens distortion: rectification of images (and depth labels) as ``image_proc`` does it.

A camera whose CameraInfo carries a non-zero ``D`` delivers distorted images; a depth network,
the point cloud's rays and the photometric warps all assume a pinhole. :class:`Rectifier`
computes OpenCV's undistort/rectify maps once per camera and remaps every image through them,
giving the image of the *rectified* camera :attr:`Rectifier.rectified` (same size, ``D``
empty, intrinsics ``new_K``; image_proc takes ``new_K`` from CameraInfo's ``P``).

Models (CameraInfo ``distortion_model`` names, with OpenCV's functions):

=======================  ===================================  ==================================
``plumb_bob``            k1 k2 p1 p2 [k3] (radial-tangential,  ``cv2.initUndistortRectifyMap``
                         "radtan"); 4, 5 or 8 coefficients
``rational_polynomial``  k1 k2 p1 p2 k3 k4 k5 k6 (8; OpenCV's  ``cv2.initUndistortRectifyMap``
                         12 / 14 with thin prism / tilt too)
``equidistant``          k1 k2 k3 k4 (Kannala-Brandt fisheye,  ``cv2.fisheye.initUndistortRectifyMap``
                         as ROS and OpenCV's fisheye module)
=======================  ===================================  ==================================

Any other name with a non-zero ``D`` is a :class:`DistortionError`: never silently treated as a
pinhole. A camera with ``D`` empty or all zeros needs no rectification (:func:`is_distorted`).

Convention: pixel centres at integer coordinates (as :mod:`depth_ros.core.camera`). The maps
send each pixel of the rectified image to a point of the distorted one; images are sampled
bilinearly (OpenCV's fixed-point maps, 1/32 px), depth labels by the nearest pixel (never
interpolated across an edge). A rectified pixel whose source lies outside the distorted image
is black (images) or NaN (depth). With ``R`` the identity (a monocular camera) rectification
moves points within the image but keeps their depth ``z``; a rotating ``R`` (stereo) would
change ``z`` too, so depth labels are refused then.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.errors import InputError

__all__ = [
    "COEFFICIENT_COUNTS",
    "RECTIFY_MODES",
    "SUPPORTED_MODELS",
    "DistortionError",
    "FrameRectifier",
    "Rectifier",
    "check_distortion",
    "distort_pixels",
    "is_distorted",
    "rectified_projection",
    "undistort_pixels",
]

#: distortion_model -> accepted numbers of coefficients (ROS's names; OpenCV's orders).
COEFFICIENT_COUNTS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (4, 5, 8),
    "rational_polynomial": (8, 12, 14),
    "equidistant": (4,),
}
SUPPORTED_MODELS = tuple(COEFFICIENT_COUNTS)


class DistortionError(InputError):
    """A distortion model or coefficient vector this package cannot rectify."""


def is_distorted(camera: CameraModel) -> bool:
    """True when ``camera.D`` has a non-zero coefficient (the image needs rectification)."""
    return bool(np.any(np.asarray(camera.D) != 0.0))


def check_distortion(camera: CameraModel) -> None:
    """Refuse what :class:`Rectifier` cannot handle.

    Raises:
        DistortionError: a non-zero ``D`` under an unknown model name, a coefficient count the
            model does not have, or non-finite coefficients.
    """
    if not is_distorted(camera):
        return
    D = np.asarray(camera.D)
    if not np.all(np.isfinite(D)):
        raise DistortionError(f"camera distortion D has non-finite entries: {D.tolist()}")
    counts = COEFFICIENT_COUNTS.get(camera.distortion_model)
    if counts is None:
        raise DistortionError(
            f"distortion model {camera.distortion_model!r} with non-zero D is not supported "
            f"(supported: {', '.join(SUPPORTED_MODELS)}); rectify the images upstream (image_proc) "
            "and publish a CameraInfo with D zero"
        )
    if D.size not in counts:
        raise DistortionError(
            f"distortion model {camera.distortion_model!r} takes {' or '.join(map(str, counts))} coefficients, got {D.size}"
        )


def _cv2() -> Any:
    import cv2

    return cv2


def _as_points(uv: np.ndarray) -> np.ndarray:
    pts = np.asarray(uv, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"pixel coordinates must be (N, 2), got shape {pts.shape}")
    return pts.reshape(-1, 1, 2)


def undistort_pixels(uv: np.ndarray, camera: CameraModel, new_K: np.ndarray | None = None) -> np.ndarray:
    """Pixels of the distorted image -> pixels of the rectified camera (R = I).

    Args:
        uv: (N, 2) float pixel coordinates in the distorted image.
        camera: the distorted camera (:func:`check_distortion` must pass).
        new_K: (3, 3) intrinsics of the rectified camera; None: ``camera.K``.

    Returns:
        (N, 2) float64 pixel coordinates (OpenCV's iterative inversion of the model).
    """
    check_distortion(camera)
    cv2 = _cv2()
    K = np.asarray(camera.K, np.float64)
    P = K if new_K is None else np.asarray(new_K, np.float64)
    pts = _as_points(uv)
    if not is_distorted(camera):
        out = (pts.reshape(-1, 2) - K[:2, 2]) / np.diag(K)[:2] * np.diag(P)[:2] + P[:2, 2]
        return out
    D = np.asarray(camera.D, np.float64)
    if camera.distortion_model == "equidistant":
        out = cv2.fisheye.undistortPoints(pts, K, D, R=np.eye(3), P=P)
    else:
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        out = cv2.undistortPointsIter(pts, K, D, np.eye(3), P, criteria)
    return out.reshape(-1, 2)


def distort_pixels(uv: np.ndarray, camera: CameraModel, new_K: np.ndarray | None = None) -> np.ndarray:
    """Pixels of the rectified camera -> pixels of the distorted image (the forward model).

    Args:
        uv: (N, 2) float pixel coordinates in the rectified image (intrinsics ``new_K``).
        camera: the distorted camera.
        new_K: (3, 3) rectified intrinsics; None: ``camera.K``.

    Returns:
        (N, 2) float64 pixel coordinates in the distorted image.
    """
    check_distortion(camera)
    cv2 = _cv2()
    K = np.asarray(camera.K, np.float64)
    P = K if new_K is None else np.asarray(new_K, np.float64)
    xy = (np.asarray(uv, np.float64).reshape(-1, 2) - P[:2, 2]) / np.diag(P)[:2]
    if not is_distorted(camera):
        return xy * np.diag(K)[:2] + K[:2, 2]
    D = np.asarray(camera.D, np.float64)
    if camera.distortion_model == "equidistant":
        return cv2.fisheye.distortPoints(xy.reshape(-1, 1, 2), K, D).reshape(-1, 2)
    xyz = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
    out, _ = cv2.projectPoints(xyz, np.zeros(3), np.zeros(3), K, D)
    return out.reshape(-1, 2)


@dataclass(frozen=True)
class _Maps:
    fixed: tuple[np.ndarray, np.ndarray]  # CV_16SC2 + CV_16UC1: bilinear images
    nearest: np.ndarray  # (H, W, 2) float32 exact source positions: nearest-pixel labels


class Rectifier:
    """Rectifies the images of one distorted camera (maps computed once, here).

    Args:
        camera: the distorted camera (size, K, D, distortion_model).
        new_K: (3, 3) intrinsics of the rectified image (CameraInfo's ``P[:3, :3]``, as
            image_proc uses); None: ``camera.K`` (OpenCV's ``undistort`` default).
        R: (3, 3) rectification rotation (CameraInfo's ``R``); None: identity.

    Raises:
        DistortionError: see :func:`check_distortion`; a non-physical ``new_K``.
    """

    def __init__(self, camera: CameraModel, new_K: np.ndarray | None = None, R: np.ndarray | None = None) -> None:
        check_distortion(camera)
        K_new = np.asarray(camera.K if new_K is None else new_K, dtype=np.float64)
        R_rect = np.eye(3) if R is None else np.asarray(R, dtype=np.float64)
        if K_new.shape != (3, 3) or R_rect.shape != (3, 3):
            raise DistortionError(f"new_K and R must be 3x3, got {K_new.shape} and {R_rect.shape}")
        if not np.allclose(R_rect @ R_rect.T, np.eye(3), atol=1e-6) or not np.linalg.det(R_rect) > 0:
            raise DistortionError(f"R is not a rotation matrix: {R_rect.tolist()}")
        try:
            self.rectified = CameraModel(camera.width, camera.height, K_new)
            self.rectified.check_physical()
        except ValueError as exc:
            raise DistortionError(f"rectified camera: {exc}") from None
        self.camera = camera
        self.R = R_rect
        self.identity = not is_distorted(camera) and np.allclose(K_new, camera.K) and np.allclose(R_rect, np.eye(3))
        self._maps: _Maps | None = None if self.identity else self._make_maps()

    def _make_maps(self) -> _Maps:
        cv2 = _cv2()
        cam = self.camera
        K, D = np.asarray(cam.K, np.float64), np.asarray(cam.D, np.float64)
        size = (cam.width, cam.height)
        P = self.rectified.K
        if cam.distortion_model == "equidistant" and D.size:
            map_u, map_v = cv2.fisheye.initUndistortRectifyMap(K, D, self.R, P, size, cv2.CV_32FC1)
        else:
            map_u, map_v = cv2.initUndistortRectifyMap(K, D if D.size else None, self.R, P, size, cv2.CV_32FC1)
        fixed = cv2.convertMaps(map_u, map_v, cv2.CV_16SC2)
        return _Maps(fixed=fixed, nearest=np.stack([map_u, map_v], axis=-1))

    def source_pixels(self) -> np.ndarray:
        """(H, W, 2) float32: the distorted-image position (u, v) each rectified pixel samples."""
        if self._maps is None:
            u, v = np.meshgrid(np.arange(self.camera.width, dtype=np.float32), np.arange(self.camera.height, dtype=np.float32))
            return np.stack([u, v], axis=-1)
        return self._maps.nearest

    def _check(self, array: np.ndarray, what: str) -> None:
        if array.shape[:2] != (self.camera.height, self.camera.width):
            raise InputError(f"{what} is {array.shape[1]}x{array.shape[0]}, the camera {self.camera.width}x{self.camera.height}")

    def rectify_image(self, image: np.ndarray) -> np.ndarray:
        """A camera image (H, W) or (H, W, C), uint8 or float32 -> the rectified image, same
        shape and dtype; bilinear; outside the distorted image: 0."""
        self._check(image, "image")
        if self._maps is None:
            return image
        cv2 = _cv2()
        return cv2.remap(image, *self._maps.fixed, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def rectify_depth(self, depth: np.ndarray) -> np.ndarray:
        """A depth (or any label) image (H, W) registered to the distorted camera -> the rectified
        one; nearest pixel, so invalid values (NaN / 0) are never blended; outside: NaN.

        Raises:
            DistortionError: ``R`` is not the identity (it would change depth values too).
        """
        self._check(depth, "depth")
        if self._maps is None:
            return depth
        if not np.allclose(self.R, np.eye(3)):
            raise DistortionError("depth labels cannot be rectified with a rotating R (stereo rectification)")
        cv2 = _cv2()
        src = depth.astype(np.float32, copy=False)
        return cv2.remap(src, self._maps.nearest, None, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


#: FrameConfig ``rectify`` values: rectify distorted cameras, or trust that the images are
#: already rectified (``D`` then ignored).
RECTIFY_MODES = ("auto", "off")


def rectified_projection(p: Any, r: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(new_K, R) from CameraInfo's ``p`` (12 numbers) and ``r`` (9): ``P[:3, :3]`` when it is a
    usable projection (finite, positive focal lengths), the rotation ``R`` when it is one; None
    for either otherwise (then ``K`` / the identity are used, as OpenCV's ``undistort`` does)."""
    P = np.asarray(p if p is not None else (), dtype=np.float64).reshape(-1)
    R = np.asarray(r if r is not None else (), dtype=np.float64).reshape(-1)
    new_K = None
    if P.size == 12 and np.all(np.isfinite(P)):
        K3 = P.reshape(3, 4)[:, :3]
        if K3[0, 0] > 0 and K3[1, 1] > 0 and K3[2, 2] == 1.0:
            new_K = K3.copy()
    rot = None
    if R.size == 9 and np.all(np.isfinite(R)):
        R3 = R.reshape(3, 3)
        if np.allclose(R3 @ R3.T, np.eye(3), atol=1e-6) and np.linalg.det(R3) > 0:
            rot = R3.copy()
    return new_K, rot


class FrameRectifier:
    """Rectifies the frames of a stream whose camera may change: the :class:`Rectifier` of the
    current camera (size, K, D, model, P, R) is kept and rebuilt only when the camera changes.

    Args:
        mode: ``auto`` (rectify every camera with a non-zero ``D``) or ``off`` (the images are
            already rectified: a non-zero ``D`` is dropped from the camera, with no remap).
    """

    def __init__(self, mode: str = "auto") -> None:
        if mode not in RECTIFY_MODES:
            raise ValueError(f"rectify must be one of {', '.join(RECTIFY_MODES)}, got {mode!r}")
        self.mode = mode
        self._key: tuple[Any, ...] | None = None
        self._rectifier: Rectifier | None = None

    def __call__(self, image: np.ndarray, camera: CameraModel, p: Any = None, r: Any = None) -> tuple[np.ndarray, CameraModel]:
        """(image, camera) of the rectified camera; unchanged when ``camera`` has no distortion.

        Raises:
            DistortionError: see :func:`check_distortion`.
        """
        if not is_distorted(camera):
            return image, camera
        if self.mode == "off":
            return image, CameraModel(camera.width, camera.height, camera.K)
        new_K, R = rectified_projection(p, r)
        key = (camera.width, camera.height, camera.K.tobytes(), camera.D.tobytes(), camera.distortion_model,
               None if new_K is None else new_K.tobytes(), None if R is None else R.tobytes())
        if key != self._key or self._rectifier is None:
            self._rectifier = Rectifier(camera, new_K=new_K, R=R)
            self._key = key
        return self._rectifier.rectify_image(image), self._rectifier.rectified

    @property
    def current(self) -> Rectifier | None:
        """The Rectifier of the last distorted camera seen (None before one)."""
        return self._rectifier
