"""Photometric error: SSIM dissimilarity and the 0.15 L1 + 0.85 SSIM mix.

Images for every loss in this package are in [0, 1] (raw pixels / 255), *not* normalised with
the network's mean/std: the SSIM constants ``C1 = 0.01^2``, ``C2 = 0.03^2`` assume a dynamic
range of 1, and the L1 term is clamped to [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SSIM_C1", "SSIM_C2", "SsimDissimilarity", "photometric_error", "ssim_dissimilarity"]

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"expected two (B, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def ssim_dissimilarity(x: Tensor, y: Tensor, window: int = 3) -> Tensor:
    """Per-pixel ``(1 - SSIM(x, y)) / 2``, clamped to [0, 1].

    Window: a ``window x window`` box (average pooling) over a reflection-padded image,
    3x3 by default, as monodepth2 and SC-SfMLearner do; sc_depth_pl (SC-Depth v1-v3 in
    PyTorch Lightning) uses a 7x7 box (``window=7`` reproduces it). Kornia's ``ssim_loss``
    uses an 11x11 Gaussian. The default stays 3x3 because (a) this package's training runs
    (docs/training-notes.md) were made with it, and a larger window spreads one pixel's
    misalignment over a wider neighbourhood, blurring the per-pixel masks (auto-mask,
    self-discovered mask, per-pixel minimum over sources) and the depth edges they guide,
    at the low resolutions trained on a CPU (64x192 .. 128x416); (b) a 3x3 box costs less per
    step. Reflection padding keeps border pixels' statistics from being pulled towards zero.

    Args:
        x: (B, C, H, W) image in [0, 1].
        y: (B, C, H, W) image in [0, 1], same shape.
        window: odd box size in pixels (>= 3; 3 = monodepth2, 7 = sc_depth_pl); H and W must
            exceed ``window // 2`` (reflection padding).

    Returns:
        (B, C, H, W) dissimilarity in [0, 1]; 0 where the local statistics of x and y agree.
        Symmetric in x and y.
    """
    _check_pair(x, y)
    if not isinstance(window, int) or window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 3, got {window!r}")
    pad = window // 2
    if min(x.shape[-2:]) <= pad:
        raise ValueError(f"image {tuple(x.shape[-2:])} too small for a {window}x{window} reflection-padded window")
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    mu_x = F.avg_pool2d(x, window, stride=1)
    mu_y = F.avg_pool2d(y, window, stride=1)
    sigma_x = F.avg_pool2d(x * x, window, stride=1) - mu_x * mu_x
    sigma_y = F.avg_pool2d(y * y, window, stride=1) - mu_y * mu_y
    sigma_xy = F.avg_pool2d(x * y, window, stride=1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    den = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - num / den) / 2, 0.0, 1.0)


def photometric_error(x: Tensor, y: Tensor, ssim_weight: float = 0.85) -> Tensor:
    """``(1 - a) * |x - y| + a * (1 - SSIM) / 2``, averaged over channels.

    Args:
        x, y: (B, C, H, W) images in [0, 1].
        ssim_weight: ``a`` in [0, 1] (0.85 in monodepth2 / SC-Depth).

    Returns:
        (B, 1, H, W) error in [0, 1].
    """
    _check_pair(x, y)
    if not 0.0 <= ssim_weight <= 1.0:
        raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
    l1 = (x - y).abs().clamp(0.0, 1.0)
    err = l1 if ssim_weight == 0.0 else (1 - ssim_weight) * l1 + ssim_weight * ssim_dissimilarity(x, y)
    return err.mean(dim=1, keepdim=True)


class SsimDissimilarity(nn.Module):
    """Module wrapper of :func:`ssim_dissimilarity`."""

    def __init__(self, window: int = 3) -> None:
        super().__init__()
        self.window = window

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return ssim_dissimilarity(x, y, self.window)
