"""Gradient field of an image: Sobel gradient magnitude kept only on Canny edges.

``G = E * B_canny`` (Shim & Kim, "Learning a Geometric Representation for Data-Efficient Depth
Estimation via Gradient Field and Contrastive Loss", ICRA 2021): ``E`` is the Sobel gradient
magnitude of the grey image and ``B_canny`` the binary Canny edge map, so dominant edges keep
their strength and weak texture is suppressed. It is the key view of the contrastive
pretraining (:mod:`depth_ros_training.pretrain.moco`), computed on the fly on each augmented
view, batched, on the tensors' device; nothing is stored.

Convention (kornia 0.9 semantics, which this module relies on):

* grey = :func:`kornia.color.rgb_to_grayscale` (ITU-R 601 weights 0.299, 0.587, 0.114) of an
  RGB image in [0, 1].
* ``E`` = :func:`kornia.filters.sobel` of the *unblurred* grey image with ``normalized=True``
  (kernel divided by its L1 norm, 8) and ``eps=0``: ``E = sqrt(gx^2 + gy^2)`` with an
  axis-aligned ramp of slope ``s`` (grey levels per pixel) giving ``|s|``; a step of height
  ``h`` gives ``h / 2`` on the two pixels either side of it. Borders are replicated. ``eps`` is
  0 (kornia's default 1e-6 would make a flat region ``1e-3``, not 0); no gradient flows through
  ``G``, so the square root's derivative at 0 never matters.
* ``B_canny`` = the ``edges`` output of :func:`kornia.filters.canny` on the same grey image:
  Gaussian blur (``canny_kernel_size``, ``canny_sigma``), **unnormalised** Sobel magnitude of
  the blurred image (about ``8 |s|`` for a ramp of slope ``s``, up to 4 for a unit step),
  non-maximum suppression, double threshold and hysteresis; 1.0 on edge pixels, else 0.0. The
  thresholds are on that unnormalised scale: 0.2 / 0.4 (the defaults here) are OpenCV's
  ``Canny(img8, 51, 102)`` on an 8-bit image. kornia's own defaults (0.1 / 0.2) keep more texture.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GradientFieldConfig", "gradient_field"]


@dataclass(frozen=True)
class GradientFieldConfig:
    """Thresholds of the gradient field.

    Args:
        canny_low: Canny's low (weak-edge) threshold on the unnormalised Sobel magnitude of the
            blurred grey image in [0, 1] (see the module docstring for the scale).
        canny_high: Canny's high (strong-edge) threshold, same scale, > ``canny_low``.
        canny_kernel_size: odd size of Canny's Gaussian blur in pixels (1: no blur).
        canny_sigma: standard deviation of that blur in pixels (> 0).
    """

    canny_low: float = 0.2
    canny_high: float = 0.4
    canny_kernel_size: int = 5
    canny_sigma: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.canny_low < self.canny_high:
            raise ValueError(f"canny_low must be in [0, canny_high), got {self.canny_low} (canny_high {self.canny_high})")
        if not (isinstance(self.canny_kernel_size, int) and self.canny_kernel_size >= 1 and self.canny_kernel_size % 2 == 1):
            raise ValueError(f"canny_kernel_size must be an odd integer >= 1, got {self.canny_kernel_size!r}")
        if not self.canny_sigma > 0:
            raise ValueError(f"canny_sigma must be > 0, got {self.canny_sigma}")


@torch.no_grad()
def gradient_field(rgb: Tensor, config: GradientFieldConfig = GradientFieldConfig()) -> Tensor:
    """``G = E * B_canny`` of a batch of images (see the module docstring for E and B).

    Args:
        rgb: (B, 3, H, W) RGB in [0, 1], or (B, 1, H, W) grey in [0, 1]; float.
        config: Canny thresholds and blur.

    Returns:
        (B, 1, H, W) gradient field, same dtype and device as ``rgb``: the Sobel magnitude
        (grey levels per pixel, normalised kernel) on Canny edge pixels, exactly 0 elsewhere.

    Raises:
        ValueError: ``rgb`` is not (B, 1|3, H, W) floating point.
    """
    import kornia

    if rgb.ndim != 4 or rgb.shape[1] not in (1, 3) or not rgb.is_floating_point():
        raise ValueError(f"gradient_field expects a float (B, 3, H, W) or (B, 1, H, W) image, got {tuple(rgb.shape)} {rgb.dtype}")
    grey = kornia.color.rgb_to_grayscale(rgb) if rgb.shape[1] == 3 else rgb  # (B, 1, H, W)
    magnitude = kornia.filters.sobel(grey, normalized=True, eps=0.0)
    _, edges = kornia.filters.canny(
        grey,
        low_threshold=config.canny_low,
        high_threshold=config.canny_high,
        kernel_size=config.canny_kernel_size,
        sigma=(config.canny_sigma, config.canny_sigma),
        hysteresis=True,
    )
    return magnitude * edges
