"""Depth hints from the frames' own motion: a plane sweep, and the hint loss of Depth Hints.

Why: the photometric loss only pulls a depth towards the right value when the warp lands
within a pixel or two of the true match. A surface 1 m from a camera that moves 0.2 m between
frames moves ~20 px at 64x192 near the image border; a network that starts at 3 m (or any
smooth guess) predicts ~6 px and the local gradient there points either way (measured on the
demo's corridors: at twice the true depth, 52 % of kept near pixels are pulled nearer, 42 %
further). Such surfaces stay ~2x too far for the whole run.

A plane sweep searches globally instead: for every target pixel it scores D depth hypotheses
(uniform in inverse depth between ``min_depth`` and ``max_depth``) by warping the sources with
the known relative poses (odometry in this package's demo) and keeps the hypothesis with the
smallest photometric error (per-pixel minimum over sources, the same 0.15 L1 + 0.85 SSIM
error as the training loss), refined by a parabola through its neighbours' costs. That is
multi-view stereo from one camera, with no labels.

The hint is used as Depth Hints (Watson et al., ICCV 2019) uses its stereo hints: only at
pixels where the hint's depth explains the target *better* than the network's current depth
(smaller reprojection error), with the loss ``log(1 + |d - d_hint|)``. Where the network is
already better (far surfaces, where the sweep's hypotheses are coarse; textureless regions,
where the sweep is ambiguous), the hint is ignored, so a wrong hint cannot pull a good
prediction away.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from depth_ros_training.losses.photometric import photometric_error
from depth_ros_training.losses.warping import inverse_warp, scale_intrinsics

__all__ = ["HINT_LOSSES", "PlaneSweep", "depth_hint_loss", "hint_depth", "min_reprojection_error", "plane_sweep_depth"]

_OUT_OF_VIEW = 2.0  # photometric errors are in [0, 1]; out-of-view sources rank last
_CHUNK_PIXELS = 2_000_000  # target pixels scored at once (~100 MB of float32 intermediates per million)


@dataclass
class PlaneSweep:
    """Result of :func:`plane_sweep_depth`.

    Attributes:
        depth: (B, 1, H, W) best hypothesis per pixel (refined), in the poses' units.
        error: (B, 1, H, W) photometric error of the best hypothesis (min over sources);
            ``>= 2`` where no source sees the pixel at any hypothesis.
    """

    depth: Tensor
    error: Tensor


def min_reprojection_error(tgt_img: Tensor, src_imgs: list[Tensor], depth: Tensor, poses: list[Tensor], K: Tensor, ssim_weight: float = 0.85) -> Tensor:
    """Per-pixel minimum over sources of the photometric error of warping with ``depth``.

    Args:
        tgt_img: (B, 3, H, W) target image in [0, 1].
        src_imgs: source images, each (B, 3, H, W) in [0, 1].
        depth: (B, 1, H, W) target depth (positive).
        poses: ``T_src_tgt`` per source, each (B, 4, 4).
        K: (3, 3) or (B, 3, 3) intrinsics at (H, W).

    Returns:
        (B, 1, H, W) error; ``>= 2`` where no source sees the pixel.
    """
    if not src_imgs or len(src_imgs) != len(poses):
        raise ValueError(f"need N >= 1 sources and as many poses, got {len(src_imgs)} and {len(poses)}")
    best = None
    for src, T in zip(src_imgs, poses):
        warp = inverse_warp(src, depth, T, K, padding_mode="border")
        err = photometric_error(tgt_img, warp.warped, ssim_weight) + _OUT_OF_VIEW * (1.0 - warp.valid)
        best = err if best is None else torch.minimum(best, err)
    return best


@torch.no_grad()
def plane_sweep_depth(
    tgt_img: Tensor,
    src_imgs: list[Tensor],
    poses: list[Tensor],
    K: Tensor,
    min_depth: float,
    max_depth: float,
    num_depths: int = 32,
    ssim_weight: float = 0.85,
) -> PlaneSweep:
    """Per-pixel depth that best explains the target from the sources (see module docstring).

    Args:
        tgt_img: (B, 3, H, W) target image in [0, 1].
        src_imgs: N >= 1 source images, each (B, 3, H, W) in [0, 1].
        poses: N transforms ``T_src_tgt`` (B, 4, 4) with metric (or any consistent) units.
        K: (3, 3) or (B, 3, 3) intrinsics at (H, W).
        min_depth, max_depth: hypothesis range, ``0 < min_depth < max_depth``.
        num_depths: hypotheses, uniform in inverse depth (>= 3).
        ssim_weight: SSIM share of the photometric error.

    Returns:
        :class:`PlaneSweep`. Hypotheses are fronto-parallel planes (the SSIM window sees its
        3x3 neighbourhood at one depth), so slanted surfaces get the plane through the pixel.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    if not isinstance(num_depths, int) or num_depths < 3:
        raise ValueError(f"num_depths must be an integer >= 3, got {num_depths!r}")
    b, _, h, w = tgt_img.shape
    inv = torch.linspace(1.0 / max_depth, 1.0 / min_depth, num_depths, dtype=tgt_img.dtype, device=tgt_img.device)
    # all hypotheses in one batch: (D * B, ...), hypothesis-major
    d = num_depths
    # hypotheses in chunks, each chunk one batch of (n * B) images (hypothesis-major): bounded memory
    n = max(1, min(d, _CHUNK_PIXELS // max(1, b * h * w)))
    costs = []
    for start in range(0, d, n):
        m = min(n, d - start)

        def rep(x: Tensor) -> Tensor:
            return x.unsqueeze(0).expand(m, *x.shape).reshape(m * x.shape[0], *x.shape[1:])

        depth = (1.0 / inv[start : start + m]).view(m, 1, 1, 1, 1).expand(m, b, 1, h, w).reshape(m * b, 1, h, w)
        Km = K if K.ndim == 2 else rep(K)
        costs.append(min_reprojection_error(rep(tgt_img), [rep(s) for s in src_imgs], depth, [rep(T) for T in poses], Km, ssim_weight).view(m, b, 1, h, w))
    cost = torch.cat(costs, dim=0)  # (D, B, 1, H, W)
    best_cost, idx = cost.min(dim=0)  # (B, 1, H, W)
    # sub-hypothesis refinement: vertex of the parabola through the best cost and its neighbours
    lo = cost.gather(0, (idx - 1).clamp(min=0).unsqueeze(0)).squeeze(0)
    hi = cost.gather(0, (idx + 1).clamp(max=d - 1).unsqueeze(0)).squeeze(0)
    curvature = lo - 2.0 * best_cost + hi
    interior = (idx > 0) & (idx < d - 1) & (curvature > 1e-9) & (lo < _OUT_OF_VIEW) & (hi < _OUT_OF_VIEW)
    offset = torch.where(interior, 0.5 * (lo - hi) / curvature.clamp(min=1e-9), torch.zeros_like(best_cost)).clamp(-0.5, 0.5)
    step = inv[1] - inv[0]
    inv_best = inv[idx] + offset * step
    return PlaneSweep(depth=1.0 / inv_best, error=best_cost)


def hint_depth(
    tgt_img: Tensor,
    src_imgs: list[Tensor],
    poses: list[Tensor],
    K: Tensor,
    min_depth: float,
    max_depth: float,
    num_depths: int = 32,
    downsample: int = 2,
    ssim_weight: float = 0.85,
) -> Tensor:
    """The hint at the images' resolution: :func:`plane_sweep_depth` on the images
    area-downsampled by ``downsample`` (intrinsics rescaled), upsampled nearest.

    Returns:
        (B, 1, H, W) hint depth.
    """
    if downsample == 1:
        return plane_sweep_depth(tgt_img, src_imgs, poses, K, min_depth, max_depth, num_depths, ssim_weight).depth
    small = plane_sweep_depth(
        F.avg_pool2d(tgt_img, downsample), [F.avg_pool2d(x, downsample) for x in src_imgs], poses,
        scale_intrinsics(K, 1.0 / downsample), min_depth, max_depth, num_depths, ssim_weight,
    )
    return F.interpolate(small.depth, size=tgt_img.shape[-2:], mode="nearest")


HINT_LOSSES = ("log1p", "log_ratio")


def depth_hint_loss(pred_depth: Tensor, hint_depth: Tensor, pred_error: Tensor, hint_error: Tensor, ratio: float = 1.0, kind: str = "log1p") -> tuple[Tensor, Tensor]:
    """Depth Hints' supervised term: ``log(1 + |d - d_hint|)`` where the hint reprojects better.

    Args:
        pred_depth: (B, 1, H, W) network depth (with gradient).
        hint_depth: (B, 1, H, W) hint depth (no gradient needed).
        pred_error, hint_error: (B, 1, H, W) min-over-sources photometric errors of warping
            with the network's depth and with the hint (from :func:`min_reprojection_error`);
            pixels no source sees (error >= 2) never use the hint.
        ratio: a pixel uses the hint where ``hint_error < ratio * pred_error`` (1 = Depth
            Hints). Below 1 the hint must beat the network clearly: the sweep's error is a
            minimum over many hypotheses, so on ambiguous texture it beats the true depth's
            error by chance alone.
        kind: ``"log1p"``: ``log(1 + |d - d_hint|)`` (Depth Hints; an error of a given size in
            metres costs the same at any depth), ``"log_ratio"``: ``|log d - log d_hint|``
            (a given *relative* error costs the same at any depth, as AbsRel counts it: near
            surfaces weigh more, far ones, whose hints are the least certain, less).

    Returns:
        (loss averaged over all pixels, fraction of pixels that used the hint).
    """
    if not (pred_depth.shape == hint_depth.shape == pred_error.shape == hint_error.shape):
        raise ValueError(
            f"shapes differ: pred {tuple(pred_depth.shape)}, hint {tuple(hint_depth.shape)}, "
            f"errors {tuple(pred_error.shape)} / {tuple(hint_error.shape)}"
        )
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if kind not in HINT_LOSSES:
        raise ValueError(f"kind must be one of {HINT_LOSSES}, got {kind!r}")
    use = ((hint_error < ratio * pred_error) & (hint_error < _OUT_OF_VIEW) & torch.isfinite(hint_depth) & (hint_depth > 0)).to(pred_depth.dtype).detach()
    if kind == "log1p":
        per_pixel = torch.log1p((pred_depth - hint_depth.detach().nan_to_num(0.0)).abs()) * use
    else:
        safe_hint = torch.where(use > 0, hint_depth.detach(), torch.ones_like(hint_depth))  # no log of NaN or 0 where unused
        per_pixel = (torch.log(pred_depth) - torch.log(safe_hint)).abs() * use
    return per_pixel.mean(), use.mean()
