"""Inverse warping: sample a source image at the pixels where the target's 3-D points land.

Convention: pixel (u, v) = (column, row), integer coordinates are pixel centres, the top-left
centre is (0, 0) (as :class:`depth_ros.core.camera.CameraModel`). ``grid_sample`` is called
with ``align_corners=False``, so pixel centre ``u`` maps to the normalised coordinate
``(2u + 1) / W - 1`` (pixel *edges* at -1 and +1), the same edge-to-edge convention as
``CameraModel.resized``. Depth is z along the optical axis (not ray length), in the units of
the pose's translation (metres once the scale is metric).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from depth_ros.core.camera import rescale_intrinsics

__all__ = ["MIN_PROJECTED_DEPTH", "VALID_MARGIN_PX", "WarpResult", "inverse_warp", "pixel_grid", "scale_intrinsics"]

# Points closer than this to the source camera's image plane are treated as invalid (and the
# division by z is clamped there) so that the projection stays finite.
MIN_PROJECTED_DEPTH = 1e-3

# Projections this far (pixels) outside the image still count as inside: round-off of the
# back-projection and re-projection puts identity-warped border pixels at e.g. u = -1e-15.
VALID_MARGIN_PX = 1e-3

_GRID_CACHE: dict[tuple[int, int, str, torch.dtype], Tensor] = {}
_GRID_CACHE_MAX = 16


@dataclass(frozen=True)
class WarpResult:
    """Output of :func:`inverse_warp`, all in the *target* image's pixel grid.

    Attributes:
        warped: (B, C, H, W) source image sampled at the target pixels' projections.
        valid: (B, 1, H, W) float, 1 where the projection is in front of the source camera
            and inside the source image, between the outermost pixel centres (so bilinear
            sampling used only real pixels), up to :data:`VALID_MARGIN_PX`.
        projected_depth: (B, 1, H, W) z of the target's 3-D points in the source camera frame.
        src_pixel_coords: (B, H, W, 2) (u, v) source pixel coordinates of every target pixel.
    """

    warped: Tensor
    valid: Tensor
    projected_depth: Tensor
    src_pixel_coords: Tensor


def pixel_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(3, H*W) homogeneous pixel centres ``[u, v, 1]``, row-major; cached per resolution."""
    key = (height, width, str(device), dtype)
    grid = _GRID_CACHE.get(key)
    if grid is None:
        v, u = torch.meshgrid(
            torch.arange(height, device=device, dtype=dtype),
            torch.arange(width, device=device, dtype=dtype),
            indexing="ij",
        )
        grid = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], dim=0)
        if len(_GRID_CACHE) >= _GRID_CACHE_MAX:
            _GRID_CACHE.pop(next(iter(_GRID_CACHE)))
        _GRID_CACHE[key] = grid
    return grid


def scale_intrinsics(K: Tensor, factor: float) -> Tensor:
    """Intrinsics of the image resized by ``factor`` (0.5: half the width and height).

    :func:`depth_ros.core.camera.rescale_intrinsics` with one factor for both axes (the one
    function that rescales K): ``f' = f * factor`` and ``c' = (c + 0.5) * factor - 0.5``
    (pixel ``i`` covers ``[i - 0.5, i + 0.5]``, as in ``CameraInfo``).

    Args:
        K: (3, 3) or (B, 3, 3).
        factor: positive resize factor.

    Returns:
        A new tensor of K's shape.
    """
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (3, 3) or (B, 3, 3), got {tuple(K.shape)}")
    if not factor > 0:
        raise ValueError(f"factor must be positive, got {factor}")
    return rescale_intrinsics(K, factor)


def _batched_k(K: Tensor, batch: int) -> Tensor:
    if K.shape == (3, 3):
        return K.unsqueeze(0).expand(batch, 3, 3)
    if K.shape == (batch, 3, 3):
        return K
    raise ValueError(f"K must be (3, 3) or (B={batch}, 3, 3), got {tuple(K.shape)}")


def inverse_warp(
    src_img: Tensor,
    tgt_depth: Tensor,
    T_src_tgt: Tensor,
    K: Tensor,
    padding_mode: str = "zeros",
) -> WarpResult:
    """Reconstruct the target view from the source image.

    Every target pixel is back-projected with ``tgt_depth`` and ``K``, moved into the source
    camera frame with ``T_src_tgt`` (``p_src = R p_tgt + t``), projected with ``K`` and the
    source image is sampled there (bilinear).

    Args:
        src_img: (B, C, H, W) source image (or any per-pixel source quantity, e.g. image and
            depth stacked along C).
        tgt_depth: (B, 1, H, W) target z-depth, positive.
        T_src_tgt: (B, 4, 4) transform from the target camera frame to the source camera frame.
        K: (3, 3) or (B, 3, 3) intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels at
            resolution (H, W), shared by both views.
        padding_mode: ``grid_sample`` padding outside the source image ("zeros", "border",
            "reflection").

    Returns:
        :class:`WarpResult`.
    """
    if src_img.ndim != 4:
        raise ValueError(f"src_img must be (B, C, H, W), got {tuple(src_img.shape)}")
    b, _, h, w = src_img.shape
    if tgt_depth.shape != (b, 1, h, w):
        raise ValueError(f"tgt_depth must be (B, 1, H, W) = {(b, 1, h, w)}, got {tuple(tgt_depth.shape)}")
    if T_src_tgt.shape != (b, 4, 4):
        raise ValueError(f"T_src_tgt must be (B, 4, 4) = {(b, 4, 4)}, got {tuple(T_src_tgt.shape)}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}")
    # Projection in at least float32 and outside autocast: in float16 a 400 px wide image
    # would be resampled with errors of a quarter pixel.
    dtype = torch.promote_types(tgt_depth.dtype, torch.float32)
    with torch.autocast(device_type=tgt_depth.device.type, enabled=False):
        K = _batched_k(K, b).to(device=tgt_depth.device, dtype=dtype)
        T = T_src_tgt.to(dtype)
        # K (R d K^-1 [u, v, 1] + t) = d (K R K^-1) [u, v, 1] + K t: one 3x3 per image
        # instead of a full back-projection; K's last row is (0, 0, 1), so the third row is z.
        M = K @ T[:, :3, :3] @ torch.linalg.inv(K)  # (B, 3, 3)
        pix = pixel_grid(h, w, tgt_depth.device, dtype)  # (3, HW)
        proj = (M @ pix) * tgt_depth.to(dtype).reshape(b, 1, h * w) + K @ T[:, :3, 3:]  # (B, 3, HW)
        z = proj[:, 2:3]  # depth of the target's points in the source frame
        uv = proj[:, :2] / z.clamp(min=MIN_PROJECTED_DEPTH)  # (B, 2, HW)
        u, v = uv[:, 0], uv[:, 1]
        m = VALID_MARGIN_PX
        valid = (z[:, 0] > MIN_PROJECTED_DEPTH) & (u >= -m) & (u <= w - 1 + m) & (v >= -m) & (v <= h - 1 + m)
        # align_corners=False: pixel centre u -> (2u + 1) / W - 1
        grid = torch.stack([(2 * u + 1) / w - 1, (2 * v + 1) / h - 1], dim=-1).reshape(b, h, w, 2)
    warped = F.grid_sample(src_img, grid.to(src_img.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return WarpResult(
        warped=warped,
        valid=valid.reshape(b, 1, h, w).to(src_img.dtype),
        projected_depth=z.reshape(b, 1, h, w).to(tgt_depth.dtype),
        src_pixel_coords=uv.permute(0, 2, 1).reshape(b, h, w, 2).to(tgt_depth.dtype),
    )
