"""SC-Depth v1: photometric + geometry-consistency loss with the self-discovered mask.

Per (target, source) pair, in the target's pixel grid (:func:`sc_depth_pair_loss`):

* photometric error ``0.15 |I_t - I'_s| + 0.85 (1 - SSIM) / 2`` (3x3 SSIM, see
  :func:`~depth_ros_training.losses.photometric.ssim_dissimilarity`; sc_depth_pl uses 7x7),
  channel mean;
* geometry inconsistency ``D_diff = |D_ts - D'_s| / (D_ts + D'_s)`` in [0, 1], where ``D_ts``
  is the target's depth moved into the source frame (z of the warped points) and ``D'_s``
  the source's predicted depth sampled at the same place;
* self-discovered mask ``M = 1 - D_diff`` multiplying the photometric error (moving objects,
  occlusions and bad depth are inconsistent between views and so down-weighted). ``M`` is
  detached, as in sc_depth_pl: it weights the photometric error but passes no gradient, so
  the photometric term cannot lower itself by making the two views' depths *less*
  consistent (with gradient, ``d(e M)/d D_diff = -e`` rewards inconsistency wherever the
  photometric error ``e`` is large); only the geometry term shapes ``D_diff``;
* auto-mask: a pixel counts only if the warped source explains it better than the
  *unwarped* source, which removes pixels static relative to the camera (and frames where
  the camera did not move); decided per pair, as sc_depth_pl does (monodepth2 compares the
  minimum over sources instead). Which error is compared is ``auto_mask_error``:
  ``"photometric"`` (the default) compares the full 0.15 L1 + 0.85 SSIM error, monodepth2's
  rule; ``"l1"`` compares the channel-mean L1 error only, sc_depth_pl's rule. The default
  stays the photometric rule because the recorded training runs (docs/training-notes.md)
  were made with it, and SSIM's local statistics make the decision less sensitive to
  single-pixel noise than L1 alone;
* validity: the projection lands in front of the source camera and inside its image.

Over several sources and both directions (:func:`sc_depth_loss`):

* forward (target grid): for every pixel the source with the smallest *unweighted*
  photometric error among those that see it is kept (monodepth2's per-pixel minimum, which
  handles occlusion by one of the sources), and its weighted photometric / geometry values
  are averaged over the pixels valid for the chosen source;
* backward (each source's grid, ``src -> tgt`` with ``T_tgt_src``): one pair per source;
* each term = ``0.5 * forward + 0.5 * mean(backward)``.
  (sc_depth_pl concatenates both directions and takes one argmin across them, mixing pixel
  grids of different images; keeping the directions apart avoids that.)

Without source depths (``src_depths=None``: no geometry term, no self-discovered mask, source
depths not predicted) there is no backward direction and the photometric term is
``0.5 * forward``. That is the gradient the bidirectional term has when the source depths are
computed without gradient and the poses come from odometry (the backward half is then a
constant), at the cost of one depth-network pass fewer per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from depth_ros_training.losses.photometric import photometric_error
from depth_ros_training.losses.warping import inverse_warp

__all__ = ["AUTO_MASK_ERRORS", "PairLoss", "ScDepthTerms", "masked_mean", "sc_depth_loss", "sc_depth_pair_loss"]

# errors the auto-mask may compare (see the module docstring)
AUTO_MASK_ERRORS = ("photometric", "l1")


@dataclass(frozen=True)
class PairLoss:
    """Per-pixel terms of one (target, source) pair, all (B, 1, H, W) in the target grid.

    Attributes:
        photo_map: photometric error, multiplied by ``weight_mask``.
        geometry_map: ``D_diff`` in [0, 1] (0 where not ``in_view``).
        valid: float {0, 1}: ``in_view`` and (when enabled) ``auto_mask``; where the pixel
            counts in the averages.
        weight_mask: detached self-discovered mask ``1 - D_diff`` in [0, 1] (ones when
            disabled).
        photo_error: photometric error before weighting (for the per-pixel source selection).
        in_view: float {0, 1}: projection in front of and inside the source view, and the
            sampled source depth positive.
        auto_mask: float {0, 1}: warped error < unwarped error (ones when disabled).
    """

    photo_map: Tensor
    geometry_map: Tensor
    valid: Tensor
    weight_mask: Tensor
    photo_error: Tensor
    in_view: Tensor
    auto_mask: Tensor


@dataclass(frozen=True)
class ScDepthTerms:
    """Result of :func:`sc_depth_loss`.

    Attributes:
        photometric: scalar tensor, the masked photometric loss (differentiable).
        geometry: scalar tensor, the geometry-consistency loss (differentiable).
        self_mask: (B, 1, H, W) detached self-discovered mask ``1 - D_diff`` in the target
            grid, averaged over the sources (1 = consistent/static, low = dynamic or
            occluded); ``1 - self_mask`` is the ``dynamic_weight`` of the v3 ranking loss.
        auto_mask_fraction: scalar detached tensor in [0, 1], fraction of the forward
            pixels in view that the auto-mask keeps (for logging).
        min_photo_error: (B, 1, H, W) detached unweighted photometric error of the forward
            source chosen per pixel, ``+ 2`` where no source sees the pixel (the ranking key
            of the per-pixel minimum; what the depth-hint gate compares against).
    """

    photometric: Tensor
    geometry: Tensor
    self_mask: Tensor
    auto_mask_fraction: Tensor
    min_photo_error: Tensor


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``sum(values * mask) / sum(mask)``; 0 (still differentiable) when the mask is empty."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _check_image_depth(img: Tensor, depth: Tensor, name: str) -> None:
    if img.ndim != 4 or depth.ndim != 4 or depth.shape[1] != 1 or img.shape[0] != depth.shape[0]:
        raise ValueError(
            f"{name}: expected image (B, C, H, W) and depth (B, 1, H, W), got {tuple(img.shape)} and {tuple(depth.shape)}"
        )
    if img.shape[-2:] != depth.shape[-2:]:
        raise ValueError(f"{name}: image {tuple(img.shape)} and depth {tuple(depth.shape)} differ in size")


def sc_depth_pair_loss(
    tgt_img: Tensor,
    src_img: Tensor,
    tgt_depth: Tensor,
    src_depth: Tensor | None,
    T_src_tgt: Tensor,
    K: Tensor,
    ssim_weight: float = 0.85,
    use_mask: bool = True,
    use_auto_mask: bool = True,
    auto_mask_error: str = "photometric",
) -> PairLoss:
    """SC-Depth terms for one pair, in the target's pixel grid.

    Args:
        tgt_img, src_img: (B, 3, H, W) images in [0, 1].
        tgt_depth, src_depth: (B, 1, H, W) predicted z-depths (positive), same units as
            the pose translation. ``src_depth=None``: no geometry term (``geometry_map``
            zeros) and no self-discovered mask (``use_mask`` must be False).
        T_src_tgt: (B, 4, 4) maps target-frame points into the source frame (PoseNet(tgt, src)).
        K: (3, 3) or (B, 3, 3) intrinsics at (H, W) pixels.
        ssim_weight: SSIM share of the photometric error (0.85).
        use_mask: weight the photometric error with the self-discovered mask.
        use_auto_mask: drop pixels the unwarped source explains at least as well.
        auto_mask_error: the error the auto-mask compares, ``"photometric"`` (0.15 L1 +
            0.85 SSIM, monodepth2) or ``"l1"`` (channel-mean L1, sc_depth_pl); see the module
            docstring.

    Returns:
        :class:`PairLoss`.
    """
    if auto_mask_error not in AUTO_MASK_ERRORS:
        raise ValueError(f"auto_mask_error must be one of {AUTO_MASK_ERRORS}, got {auto_mask_error!r}")
    _check_image_depth(tgt_img, tgt_depth, "target")
    if src_depth is not None:
        _check_image_depth(src_img, src_depth, "source")
    elif use_mask:
        raise ValueError("the self-discovered mask needs the source depth (src_depth is None)")
    if tgt_img.shape != src_img.shape:
        raise ValueError(f"target {tuple(tgt_img.shape)} and source {tuple(src_img.shape)} images differ in shape")
    c = src_img.shape[1]
    # border padding: SSIM windows at the edge of the visible region see replicated pixels, not
    # black (validity comes from the projection, not from the padding)
    if src_depth is None:
        warp = inverse_warp(src_img, tgt_depth, T_src_tgt, K, padding_mode="border")
        warped_img, in_view = warp.warped, warp.valid
        geometry_map = torch.zeros_like(tgt_depth)
    else:
        warp = inverse_warp(torch.cat([src_img, src_depth], dim=1), tgt_depth, T_src_tgt, K, padding_mode="border")
        warped_img, sampled_depth = warp.warped[:, :c], warp.warped[:, c:]
        in_view = warp.valid * (sampled_depth > 0).to(warp.valid.dtype)
        computed = warp.projected_depth
        denom = (computed + sampled_depth).clamp(min=1e-6)
        geometry_map = ((computed - sampled_depth).abs() / denom).clamp(0.0, 1.0) * in_view
    photo_error = photometric_error(tgt_img, warped_img, ssim_weight)
    if use_auto_mask:
        with torch.no_grad():
            if auto_mask_error == "photometric":
                warped_error, identity_error = photo_error, photometric_error(tgt_img, src_img, ssim_weight)
            else:
                warped_error = (tgt_img - warped_img).abs().mean(dim=1, keepdim=True)
                identity_error = (tgt_img - src_img).abs().mean(dim=1, keepdim=True)
            auto_mask = (warped_error < identity_error).to(photo_error.dtype)
    else:
        auto_mask = torch.ones_like(photo_error)
    # detached: a weight on the photometric error, not a way for it to raise D_diff
    weight_mask = (1.0 - geometry_map).detach() if use_mask else torch.ones_like(geometry_map)
    return PairLoss(
        photo_map=photo_error * weight_mask,
        geometry_map=geometry_map,
        valid=(in_view * auto_mask).detach(),
        weight_mask=weight_mask,
        photo_error=photo_error,
        in_view=in_view.detach(),
        auto_mask=auto_mask,
    )


def _select_min(pairs: list[PairLoss]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-pixel source with the smallest unweighted photometric error among those in view;
    returns its photo map, geometry map, validity and (detached) ranking key."""
    # photo_error is in [0, 1]; + 2 for out-of-view pixels ranks them after every visible source.
    key = torch.cat([p.photo_error.detach() + 2.0 * (1.0 - p.in_view) for p in pairs], dim=1)
    best, idx = key.min(dim=1, keepdim=True)  # (B, 1, H, W)

    def pick(name: str) -> Tensor:
        return torch.cat([getattr(p, name) for p in pairs], dim=1).gather(1, idx)

    return pick("photo_map"), pick("geometry_map"), pick("valid"), best


def sc_depth_loss(
    tgt_img: Tensor,
    src_imgs: list[Tensor],
    tgt_depth: Tensor,
    src_depths: list[Tensor] | None,
    poses: list[Tensor],
    poses_inv: list[Tensor] | None,
    K: Tensor,
    ssim_weight: float = 0.85,
    use_mask: bool = True,
    use_auto_mask: bool = True,
    auto_mask_error: str = "photometric",
) -> ScDepthTerms:
    """SC-Depth v1 photometric and geometry-consistency losses, bidirectional, min over sources.

    Args:
        tgt_img: (B, 3, H, W) target image in [0, 1].
        src_imgs: N >= 1 source images, each (B, 3, H, W) in [0, 1].
        tgt_depth: (B, 1, H, W) predicted target depth.
        src_depths: N predicted source depths, each (B, 1, H, W); None: forward direction
            only, no geometry term (0) and no self-discovered mask (see the module docstring).
        poses: N transforms ``T_src_tgt`` (B, 4, 4) (PoseNet(tgt, src)).
        poses_inv: N transforms ``T_tgt_src`` (B, 4, 4) (PoseNet(src, tgt), *not* required to
            be the exact inverse of ``poses``; SC-Depth predicts both); unused (may be None)
            without source depths.
        K: (3, 3) or (B, 3, 3) intrinsics at (H, W) pixels.
        ssim_weight, use_mask, use_auto_mask, auto_mask_error: as :func:`sc_depth_pair_loss`.

    Returns:
        :class:`ScDepthTerms`.
    """
    n = len(src_imgs)
    if src_depths is None:
        if n == 0 or len(poses) != n:
            raise ValueError(f"need N >= 1 sources with matching lists, got {n} images and {len(poses)} poses")
    elif n == 0 or poses_inv is None or not (len(src_depths) == len(poses) == len(poses_inv) == n):
        raise ValueError(
            f"need N >= 1 sources with matching lists, got {len(src_imgs)} images, {len(src_depths)} depths, "
            f"{len(poses)} poses, {'no' if poses_inv is None else len(poses_inv)} inverse poses"
        )
    options = dict(ssim_weight=ssim_weight, use_mask=use_mask, use_auto_mask=use_auto_mask, auto_mask_error=auto_mask_error)
    forward = [
        sc_depth_pair_loss(tgt_img, s_img, tgt_depth, None if src_depths is None else src_depths[i], T, K, **options)
        for i, (s_img, T) in enumerate(zip(src_imgs, poses))
    ]
    backward = [] if src_depths is None else [
        sc_depth_pair_loss(s_img, tgt_img, s_depth, tgt_depth, T_inv, K, **options)
        for s_img, s_depth, T_inv in zip(src_imgs, src_depths, poses_inv)
    ]
    photo_map, geometry_map, valid, min_photo_error = _select_min(forward)
    photometric = 0.5 * masked_mean(photo_map, valid)
    geometry = 0.5 * masked_mean(geometry_map, valid)
    for pair in backward:
        photometric = photometric + 0.5 / n * masked_mean(pair.photo_map, pair.valid)
        geometry = geometry + 0.5 / n * masked_mean(pair.geometry_map, pair.valid)
    with torch.no_grad():
        self_mask = torch.stack([p.weight_mask for p in forward]).mean(dim=0)
        in_view = torch.cat([p.in_view for p in forward], dim=1)
        kept = torch.cat([p.auto_mask * p.in_view for p in forward], dim=1)
        auto_mask_fraction = kept.sum() / in_view.sum().clamp(min=1.0)
    return ScDepthTerms(photometric, geometry, self_mask, auto_mask_fraction, min_photo_error)
