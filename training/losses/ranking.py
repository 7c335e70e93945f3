"""SC-Depth v3 depth ranking loss against a teacher's pseudo-depth.

Self-supervised losses are unreliable on moving objects (they break the static-scene
assumption, and the self-discovered mask only down-weights them). SC-Depth v3 supervises
those regions with the *ordinal* relations of a single-image teacher's depth: pairs are
sampled between the most dynamic pixels and the rest, labelled by the teacher, and scored
with a logistic ranking loss. Ordinal labels are scale-free, so the teacher's depth can be
relative (affine-invariant models are fine as long as larger means farther).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DYNAMIC_FRACTION", "depth_ranking_loss", "ranking_loss_on_pairs", "sample_dynamic_pairs"]

# Share of each image's pixels, by dynamic weight, treated as "dynamic" (SC-Depth v3: 20 %).
DYNAMIC_FRACTION = 0.2


def ranking_loss_on_pairs(pred_a: Tensor, pred_b: Tensor, pseudo_a: Tensor, pseudo_b: Tensor, tau: float) -> Tensor:
    """Mean logistic ranking loss over pairs (Xian et al. 2020 / SC-Depth v3).

    Label ``l = +1`` if ``pseudo_a >= (1 + tau) pseudo_b`` (a farther), ``-1`` if
    ``pseudo_b >= (1 + tau) pseudo_a``, else 0. Loss ``log(1 + exp(-l (pred_a - pred_b)))``
    for ``l != 0`` and ``(pred_a - pred_b)^2`` for ``l = 0``.

    Args:
        pred_a, pred_b, pseudo_a, pseudo_b: (N,) depths of the pair ends (pseudo positive).
        tau: relative ordinal threshold (> 0).

    Returns:
        scalar tensor (0 when N = 0).
    """
    if pred_a.numel() == 0:
        return pred_a.sum() * 0.0
    label = (pseudo_a >= (1 + tau) * pseudo_b).to(pred_a.dtype) - (pseudo_b >= (1 + tau) * pseudo_a).to(pred_a.dtype)
    diff = pred_a - pred_b
    ordinal = F.softplus(-label * diff)  # log(1 + exp(-l d)), numerically stable
    equal = diff * diff
    return torch.where(label != 0, ordinal, equal).mean()


def sample_dynamic_pairs(
    dynamic_weight: Tensor, num_pairs: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Flat pixel indices of ``2 * num_pairs`` pairs per image.

    The first ``num_pairs`` pair one of the most dynamic :data:`DYNAMIC_FRACTION` pixels
    (by ``dynamic_weight``, ties broken by position) with one of the other pixels; the next
    ``num_pairs`` are uniformly random pairs (global structure).

    Args:
        dynamic_weight: (B, 1, H, W) in [0, 1], higher = more dynamic.
        num_pairs: pairs of each kind per image (>= 1).
        generator: optional torch.Generator for reproducible sampling (on the tensor's device).

    Returns:
        ``(idx_a, idx_b)``, each (B, 2 * num_pairs) int64 indices into ``H * W``.
    """
    b, _, h, w = dynamic_weight.shape
    n = h * w
    k = max(1, min(n - 1, math.ceil(DYNAMIC_FRACTION * n)))
    order = dynamic_weight.detach().reshape(b, n).argsort(dim=1, descending=True, stable=True)
    device = dynamic_weight.device
    pick_dyn = torch.randint(0, k, (b, num_pairs), generator=generator, device=device)
    pick_static = torch.randint(k, n, (b, num_pairs), generator=generator, device=device)
    rand_a = torch.randint(0, n, (b, num_pairs), generator=generator, device=device)
    rand_b = torch.randint(0, n, (b, num_pairs), generator=generator, device=device)
    idx_a = torch.cat([order.gather(1, pick_dyn), rand_a], dim=1)
    idx_b = torch.cat([order.gather(1, pick_static), rand_b], dim=1)
    return idx_a, idx_b


def depth_ranking_loss(
    pred_depth: Tensor,
    pseudo_depth: Tensor,
    dynamic_weight: Tensor,
    num_pairs: int,
    tau: float = 0.03,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SC-Depth v3 dynamic-region depth ranking loss.

    Args:
        pred_depth: (B, 1, H, W) predicted depth (positive; its scale is free).
        pseudo_depth: (B, 1, H, W) teacher depth (larger = farther); pixels that are not
            finite and positive are left out of every pair.
        dynamic_weight: (B, 1, H, W) in [0, 1], higher = more dynamic (for example
            ``1 - ScDepthTerms.self_mask``).
        num_pairs: dynamic-static pairs per image; as many random pairs are added.
        tau: ordinal threshold: pairs whose pseudo-depths differ by less than a factor
            ``1 + tau`` are "equal" and pulled together.
        generator: optional torch.Generator for reproducible sampling.

    Returns:
        scalar tensor, >= 0.
    """
    if pred_depth.ndim != 4 or pred_depth.shape[1] != 1:
        raise ValueError(f"pred_depth must be (B, 1, H, W), got {tuple(pred_depth.shape)}")
    for name, t in (("pseudo_depth", pseudo_depth), ("dynamic_weight", dynamic_weight)):
        if t.shape != pred_depth.shape:
            raise ValueError(f"{name} must match pred_depth {tuple(pred_depth.shape)}, got {tuple(t.shape)}")
    if not isinstance(num_pairs, int) or num_pairs < 1:
        raise ValueError(f"num_pairs must be a positive integer, got {num_pairs!r}")
    if pred_depth.shape[-2] * pred_depth.shape[-1] < 2:
        raise ValueError(f"need at least 2 pixels to form pairs, got {tuple(pred_depth.shape)}")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    b = pred_depth.shape[0]
    idx_a, idx_b = sample_dynamic_pairs(dynamic_weight, num_pairs, generator)
    pred = pred_depth.reshape(b, -1)
    pseudo = pseudo_depth.detach().reshape(b, -1)
    pa, pb = pseudo.gather(1, idx_a), pseudo.gather(1, idx_b)
    keep = torch.isfinite(pa) & torch.isfinite(pb) & (pa > 0) & (pb > 0) & (idx_a != idx_b)
    return ranking_loss_on_pairs(pred.gather(1, idx_a)[keep], pred.gather(1, idx_b)[keep], pa[keep], pb[keep], tau)
