"""Camera image vs the aspect a network was trained at: crop, pad or stretch (pure numpy).

A network trained on images of aspect ``A`` (width / height before their resize to the network
input, :attr:`ModelSpec.train_aspect`) sees the world squashed when it is fed an image of
another aspect resized to its input. The aspect policy (``FrameConfig.aspect``) says what the
frame pipeline does instead:

* ``crop`` (the default): the centred window of the camera image with aspect ``A`` (whole
  rows or columns dropped on both sides) is resized to the network input; the depth is put back
  at camera resolution, pixel-registered with the input image, with the cropped-off bands NaN
  (no data).
* ``pad``: the image is centred in a canvas of aspect ``A`` (bands added on two sides, filled
  with the model's mean colour, i.e. zeros after normalisation), resized to the network input;
  the depth of the bands is cut off again, so every camera pixel has depth.
* ``stretch``: the image is resized to the network input as it is (the geometry is wrong by
  the aspect ratio: warned once by the frame pipeline).

A spec that does not record its training image size (version 1, a third-party sidecar without
``train_image_width_px``) has no trained aspect to crop to: its images are stretched whatever the
policy, as before, and the frame pipeline says so once when the camera's aspect differs from
the network input's (:func:`model_window`).

Convention: the window is whole pixels of the camera image, ``[x0, x0 + width) x [y0, y0 +
height)``; for ``pad`` ``x0`` / ``y0`` are <= 0 (the canvas starts left of / above the image).
Its camera is :meth:`CameraModel.cropped` or :meth:`CameraModel.padded` of the image's, so
intrinsics change only through :mod:`depth_ros.core.camera`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.inference.spec import ModelSpec

__all__ = ["ASPECT_POLICIES", "ASPECT_TOLERANCE", "AspectWindow", "aspect_window", "model_window"]

#: The aspect policies (``FrameConfig.aspect``); the first is the default.
ASPECT_POLICIES: tuple[str, ...] = ("crop", "pad", "stretch")
#: Aspects that differ by less than this (relative) agree: a 1 % squash is below what a depth
#: network resolves, and it keeps odd sizes (641x480 on 4:3) from losing a column to rounding.
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class AspectWindow:
    """The part of the camera image the network sees (or the canvas around it, for ``pad``).

    Attributes:
        x0, y0: top-left corner of the window in camera pixels (<= 0 for a pad canvas).
        width, height: window size in pixels.
        image_width, image_height: camera image size in pixels.
    """

    x0: int
    y0: int
    width: int
    height: int
    image_width: int
    image_height: int

    @property
    def is_full(self) -> bool:
        """The window is the whole image (nothing cropped or padded)."""
        return (self.x0, self.y0, self.width, self.height) == (0, 0, self.image_width, self.image_height)

    @property
    def is_pad(self) -> bool:
        return self.x0 < 0 or self.y0 < 0

    def camera(self, camera: CameraModel) -> CameraModel:
        """The window's camera (at window resolution) from the image's."""
        if self.is_full:
            return camera
        if self.is_pad:
            return camera.padded(-self.x0, -self.y0, self.width, self.height)
        return camera.cropped(self.x0, self.y0, self.width, self.height)

    def take(self, image: np.ndarray, fill: np.ndarray | float = 0) -> np.ndarray:
        """The window of an image: a view for a crop, a new canvas filled with ``fill`` for a pad.

        Args:
            image: (image_height, image_width, ...) any dtype.
            fill: the pad bands' value (per channel for a colour image).

        Returns:
            (height, width, ...) of the image's dtype.
        """
        if self.is_full:
            return image
        if not self.is_pad:
            return image[self.y0:self.y0 + self.height, self.x0:self.x0 + self.width]
        canvas = np.empty((self.height, self.width) + image.shape[2:], dtype=image.dtype)
        canvas[...] = fill
        canvas[-self.y0:-self.y0 + self.image_height, -self.x0:-self.x0 + self.image_width] = image
        return canvas

    def paste(self, window_map: np.ndarray, fill: float = math.nan) -> np.ndarray:
        """A map of the window (depth, confidence) at camera resolution: a crop's map placed in
        a canvas of ``fill`` (NaN: no data in the cropped-off bands), a pad's bands cut off.

        Args:
            window_map: (height, width) float32.

        Returns:
            (image_height, image_width) float32 (``window_map`` itself when the window is full).
        """
        if window_map.shape != (self.height, self.width):
            raise ValueError(f"window map is {window_map.shape}, expected {(self.height, self.width)}")
        if self.is_full:
            return window_map
        if self.is_pad:
            return np.ascontiguousarray(window_map[-self.y0:-self.y0 + self.image_height, -self.x0:-self.x0 + self.image_width])
        out = np.full((self.image_height, self.image_width), fill, dtype=window_map.dtype)
        out[self.y0:self.y0 + self.height, self.x0:self.x0 + self.width] = window_map
        return out


def aspect_window(width: int, height: int, aspect: float, policy: str) -> AspectWindow:
    """The centred window of aspect ``aspect`` for a ``width`` x ``height`` image.

    Args:
        width, height: camera image size in pixels.
        aspect: the trained aspect, width / height (> 0).
        policy: one of :data:`ASPECT_POLICIES`; ``stretch`` is always the full image.

    Returns:
        The window: the full image when the aspects agree (to :data:`ASPECT_TOLERANCE`, or to
        the pixel) or for ``stretch``; else the largest centred crop
        (``crop``) or the smallest centred canvas (``pad``) of aspect ``aspect``, its odd pixel
        on the right / bottom.

    Raises:
        ValueError: unknown policy, non-positive size or aspect.
    """
    if policy not in ASPECT_POLICIES:
        raise ValueError(f"aspect policy must be one of {ASPECT_POLICIES}, got {policy!r}")
    if width < 1 or height < 1 or not (math.isfinite(aspect) and aspect > 0):
        raise ValueError(f"need a positive image size and aspect, got {width}x{height}, aspect {aspect}")
    full = AspectWindow(0, 0, width, height, width, height)
    w_at_h = max(1, round(height * aspect))  # the width a height-H image of aspect A has
    h_at_w = max(1, round(width / aspect))
    if policy == "stretch" or abs(width / height / aspect - 1.0) < ASPECT_TOLERANCE or w_at_h == width or h_at_w == height:
        return full
    wider = width > w_at_h  # the image is wider than the trained aspect
    if policy == "crop":
        if wider:
            return AspectWindow((width - w_at_h) // 2, 0, w_at_h, height, width, height)
        return AspectWindow(0, (height - h_at_w) // 2, width, h_at_w, width, height)
    if wider:
        return AspectWindow(0, -((h_at_w - height) // 2), width, h_at_w, width, height)
    return AspectWindow(-((w_at_h - width) // 2), 0, w_at_h, height, width, height)


def model_window(spec: ModelSpec, width: int, height: int, policy: str) -> AspectWindow:
    """The window a model sees of a ``width`` x ``height`` image under ``policy``: the
    :func:`aspect_window` of ``spec.train_aspect`` when the spec records its training image size,
    else the whole image (stretched: there is no known trained aspect to crop or pad to)."""
    if spec.train_image_width_px is None:
        policy = "stretch"
    return aspect_window(width, height, spec.train_aspect, policy)
