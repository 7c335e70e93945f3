"""Edge-aware disparity smoothness (monodepth2)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["EdgeAwareSmoothness", "edge_aware_smoothness"]


def edge_aware_smoothness(disp: Tensor, img: Tensor) -> Tensor:
    """First-order disparity gradients, down-weighted by image gradients.

    ``mean(|dx d*| exp(-mean_c |dx I|)) + mean(|dy d*| exp(-mean_c |dy I|))`` with the
    mean-normalised disparity ``d* = d / mean(d)`` (per image), so the term does not reward
    shrinking the disparity's scale.

    Args:
        disp: (B, 1, H, W) disparity (or inverse depth), positive.
        img: (B, C, H, W) image in [0, 1] at the same resolution.

    Returns:
        scalar tensor, >= 0; 0 for a constant disparity.
    """
    if disp.ndim != 4 or disp.shape[1] != 1:
        raise ValueError(f"disp must be (B, 1, H, W), got {tuple(disp.shape)}")
    if img.ndim != 4 or img.shape[0] != disp.shape[0] or img.shape[-2:] != disp.shape[-2:]:
        raise ValueError(f"img must be (B, C, H, W) matching disp {tuple(disp.shape)}, got {tuple(img.shape)}")
    norm_disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_disp_x = (norm_disp[..., :, :-1] - norm_disp[..., :, 1:]).abs()
    grad_disp_y = (norm_disp[..., :-1, :] - norm_disp[..., 1:, :]).abs()
    grad_img_x = (img[..., :, :-1] - img[..., :, 1:]).abs().mean(dim=1, keepdim=True)
    grad_img_y = (img[..., :-1, :] - img[..., 1:, :]).abs().mean(dim=1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()


class EdgeAwareSmoothness(nn.Module):
    """Module wrapper of :func:`edge_aware_smoothness`."""

    def forward(self, disp: Tensor, img: Tensor) -> Tensor:
        return edge_aware_smoothness(disp, img)
