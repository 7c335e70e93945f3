"""SC-Depth v3 local-structure losses on surface normals from depth.

Normals come from :func:`kornia.geometry.depth.depth_to_normals` (cross product of the
back-projected points' Sobel gradients, unit length, camera optical frame). A global scale of
the depth does not change them, so both losses accept a teacher whose depth is known only up
to scale. The teacher must give *depth* (or depth up to scale), not affine-invariant inverse
depth: an unknown shift bends planes.
"""
from __future__ import annotations

import torch
from kornia.filters import spatial_gradient
from kornia.geometry.depth import depth_to_normals
from torch import Tensor

__all__ = ["NORMAL_COSINES", "edge_guided_normal_ranking_loss", "normal_matching_loss", "normals_from_depth", "sample_edge_pairs"]

# how edge_guided_normal_ranking_loss compares two normals (see its docstring)
NORMAL_COSINES = ("signed", "absolute")


def _check_depths(pred_depth: Tensor, pseudo_depth: Tensor) -> None:
    if pred_depth.ndim != 4 or pred_depth.shape[1] != 1:
        raise ValueError(f"pred_depth must be (B, 1, H, W), got {tuple(pred_depth.shape)}")
    if pseudo_depth.shape != pred_depth.shape:
        raise ValueError(f"pseudo_depth must match pred_depth {tuple(pred_depth.shape)}, got {tuple(pseudo_depth.shape)}")


def _batched_k(K: Tensor, batch: int, like: Tensor) -> Tensor:
    if K.shape == (3, 3):
        K = K.unsqueeze(0).expand(batch, 3, 3)
    elif K.shape != (batch, 3, 3):
        raise ValueError(f"K must be (3, 3) or (B={batch}, 3, 3), got {tuple(K.shape)}")
    return K.to(device=like.device, dtype=like.dtype)


def normals_from_depth(depth: Tensor, K: Tensor) -> Tensor:
    """(B, 1, H, W) z-depth + (3, 3) | (B, 3, 3) intrinsics -> (B, 3, H, W) unit normals."""
    return depth_to_normals(depth, _batched_k(K, depth.shape[0], depth))


def _valid(pseudo_depth: Tensor) -> Tensor:
    return torch.isfinite(pseudo_depth) & (pseudo_depth > 0)


def normal_matching_loss(pred_depth: Tensor, pseudo_depth: Tensor, K: Tensor) -> Tensor:
    """Mean L1 distance between the unit normals of the prediction and of the teacher.

    Args:
        pred_depth: (B, 1, H, W) predicted depth (positive).
        pseudo_depth: (B, 1, H, W) teacher depth, any global scale; non-finite or
            non-positive pixels are ignored.
        K: (3, 3) or (B, 3, 3) intrinsics in pixels at (H, W).

    Returns:
        scalar tensor in [0, 2 sqrt(3)]; 0 when ``pred_depth = s * pseudo_depth``.
    """
    _check_depths(pred_depth, pseudo_depth)
    valid = _valid(pseudo_depth)
    pseudo = torch.where(valid, pseudo_depth, torch.ones_like(pseudo_depth)).detach()
    n_pred = normals_from_depth(pred_depth, K)
    n_pseudo = normals_from_depth(pseudo, K)
    err = (n_pred - n_pseudo).abs().sum(dim=1, keepdim=True)
    mask = valid.to(err.dtype)
    return (err * mask).sum() / mask.sum().clamp(min=1.0)


def sample_edge_pairs(
    img: Tensor,
    num_samples: int,
    edge_threshold: float = 0.1,
    max_offset_px: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Point pairs straddling image edges (LeReS-style edge-guided sampling).

    ``num_samples`` edge pixels are drawn per image among those whose Sobel gradient magnitude
    is at least ``edge_threshold`` times the image's maximum. Along each one's gradient
    direction four points are taken, two on each side (``A, B`` behind, ``C, D`` ahead, at
    random distances 1..``max_offset_px`` and a further 1..``max_offset_px``), giving three
    pairs ``(A, B)``, ``(B, C)``, ``(C, D)``: within one side and across the edge.

    Args:
        img: (B, C, H, W) image in [0, 1].
        num_samples: edge pixels per image (>= 1).
        edge_threshold: relative gradient threshold in (0, 1].
        max_offset_px: largest step along the gradient, pixels (>= 1).
        generator: optional torch.Generator.

    Returns:
        ``(idx_a, idx_b)``: (B, 3 * num_samples) int64 flat indices into ``H * W``.
    """
    if img.ndim != 4:
        raise ValueError(f"img must be (B, C, H, W), got {tuple(img.shape)}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not 0 < edge_threshold <= 1:
        raise ValueError(f"edge_threshold must be in (0, 1], got {edge_threshold}")
    if not isinstance(max_offset_px, int) or max_offset_px < 1:
        raise ValueError(f"max_offset_px must be a positive integer, got {max_offset_px!r}")
    b, _, h, w = img.shape
    with torch.no_grad():
        grad = spatial_gradient(img.mean(dim=1, keepdim=True))[:, 0]  # (B, 2, H, W): d/dx, d/dy
        gx, gy = grad[:, 0].reshape(b, -1), grad[:, 1].reshape(b, -1)
        mag = torch.sqrt(gx * gx + gy * gy)
        peak = mag.amax(dim=1, keepdim=True)
        edges = (mag >= edge_threshold * peak) & (peak > 0)
        # no edge at all (a flat image): fall back to uniform sampling
        weights = torch.where(edges.any(dim=1, keepdim=True), edges.to(img.dtype), torch.ones_like(mag))
        centre = torch.multinomial(weights, num_samples, replacement=True, generator=generator)  # (B, S)
        dx = gx.gather(1, centre) / mag.gather(1, centre).clamp(min=1e-12)
        dy = gy.gather(1, centre) / mag.gather(1, centre).clamp(min=1e-12)
        u0 = (centre % w).to(img.dtype)
        v0 = torch.div(centre, w, rounding_mode="floor").to(img.dtype)

        def step(*shape: int) -> Tensor:
            return torch.randint(1, max_offset_px + 1, shape, generator=generator, device=img.device).to(img.dtype)

        near_back, near_ahead = step(b, num_samples), step(b, num_samples)
        dists = torch.stack(
            [-(near_back + step(b, num_samples)), -near_back, near_ahead, near_ahead + step(b, num_samples)], dim=0
        )  # (4, B, S): signed distances of A, B, C, D along the gradient
        u = (u0 + dists * dx).round().clamp(0, w - 1).long()
        v = (v0 + dists * dy).round().clamp(0, h - 1).long()
        idx = v * w + u  # (4, B, S)
    idx_a = torch.cat([idx[0], idx[1], idx[2]], dim=1)
    idx_b = torch.cat([idx[1], idx[2], idx[3]], dim=1)
    return idx_a, idx_b


def edge_guided_normal_ranking_loss(
    pred_depth: Tensor,
    pseudo_depth: Tensor,
    img: Tensor,
    K: Tensor,
    num_samples: int = 1000,
    edge_threshold: float = 0.1,
    max_offset_px: int = 10,
    generator: torch.Generator | None = None,
    cosine: str = "signed",
) -> Tensor:
    """SC-Depth v3 edge-guided normal loss: normal relations of point pairs across image edges.

    For pairs from :func:`sample_edge_pairs` the cosine between the two points' normals is
    computed for the prediction and for the teacher; the loss is the mean
    ``|cos_pred - cos_pseudo|``: where the teacher sees one smooth surface across an image edge
    (texture) the prediction must not bend, and where the teacher sees a crease or an object
    boundary the prediction must reproduce it.

    ``cosine="signed"`` (the default) compares the cosines themselves; ``"absolute"``
    compares ``|cos|``, as sc_depth_pl does. Normals from depth all face the camera, so the two
    differ only for pairs more than 90 degrees apart (a sharp crease, a surface seen almost
    edge-on next to one seen head-on): ``|cos|`` folds such an angle onto its supplement (120
    degrees scores as 60), the signed cosine keeps them apart. The signed form is the default
    because the recorded runs (docs/training-notes.md) used it and it penalises a prediction
    that bends a surface past the perpendicular.

    Args:
        pred_depth: (B, 1, H, W) predicted depth.
        pseudo_depth: (B, 1, H, W) teacher depth, any global scale (pairs touching
            non-finite or non-positive teacher pixels are skipped).
        img: (B, C, H, W) image in [0, 1] at the same resolution (edges).
        K: (3, 3) or (B, 3, 3) intrinsics in pixels at (H, W).
        num_samples, edge_threshold, max_offset_px, generator: see :func:`sample_edge_pairs`.
        cosine: ``"signed"`` or ``"absolute"`` (sc_depth_pl), see above.

    Returns:
        scalar tensor in [0, 2] (``"absolute"``: [0, 1]); 0 when ``pred_depth = s * pseudo_depth``.
    """
    _check_depths(pred_depth, pseudo_depth)
    if cosine not in NORMAL_COSINES:
        raise ValueError(f"cosine must be one of {NORMAL_COSINES}, got {cosine!r}")
    if img.ndim != 4 or img.shape[0] != pred_depth.shape[0] or img.shape[-2:] != pred_depth.shape[-2:]:
        raise ValueError(f"img must be (B, C, H, W) matching pred_depth {tuple(pred_depth.shape)}, got {tuple(img.shape)}")
    b = pred_depth.shape[0]
    valid = _valid(pseudo_depth)
    pseudo = torch.where(valid, pseudo_depth, torch.ones_like(pseudo_depth)).detach()
    n_pred = normals_from_depth(pred_depth, K).reshape(b, 3, -1)
    n_pseudo = normals_from_depth(pseudo, K).reshape(b, 3, -1)
    idx_a, idx_b = sample_edge_pairs(img, num_samples, edge_threshold, max_offset_px, generator)

    def pair_cosine(n: Tensor) -> Tensor:
        na = n.gather(2, idx_a.unsqueeze(1).expand(b, 3, -1))
        nb = n.gather(2, idx_b.unsqueeze(1).expand(b, 3, -1))
        cos = (na * nb).sum(dim=1)  # (B, P)
        return cos.abs() if cosine == "absolute" else cos

    flat_valid = valid.reshape(b, -1)
    keep = (flat_valid.gather(1, idx_a) & flat_valid.gather(1, idx_b)).to(pred_depth.dtype)
    err = (pair_cosine(n_pred) - pair_cosine(n_pseudo)).abs()
    return (err * keep).sum() / keep.sum().clamp(min=1.0)
