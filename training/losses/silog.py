"""Scale-invariant log loss (SILog) on metric depth, as ZoeDepth trains its metric head.

ZoeDepth's ``SILogLoss`` (isl-org/ZoeDepth ``zoedepth/trainers/loss.py``, taken from AdaBins):
over the valid pixels of the *whole batch* pooled together,

``g = log(pred + 1e-7) - log(target + 1e-7)``,
``D = Var(g) + beta * mean(g)^2`` with ``beta = 0.15``,
``loss = 10 * sqrt(D)``.

``Var`` there is ``torch.var``'s default, the *unbiased* variance (divides by ``n - 1``). With the
biased variance ``D = mean(g^2) - (1 - beta) mean(g)^2``, i.e. Eigen et al.'s scale-invariant error
with ``lambda = 1 - beta = 0.85``, the form the paper writes; the two differ by
``Var(g) / (n - 1)``, negligible over an image's pixels. ``unbiased=True`` (default) follows the
code; ``scale`` is the code's factor 10.

Global scale: multiplying the prediction by ``s`` adds ``log s`` to every ``g``, so ``Var(g)`` is
unchanged and only the ``beta`` term moves: ``D(s) = Var(g) + beta (mean(g) + log s)^2``. The loss
is therefore *not* scale-invariant; ``beta`` sets how much a global scale error costs, which is what
makes it a metric loss (tested).

Differences from the code: none in the value. The mask must be given explicitly (bool or {0, 1});
pixels whose target or prediction is not finite, or whose target is <= 0, are excluded too (the
code would take the log of them); a batch with fewer than 2 valid pixels gives a zero loss (the code
returns NaN), and a perfect prediction a zero loss with a zero gradient (the code's gradient is
NaN there, from ``sqrt`` at 0). The code casts to float32 outside autocast; we compute in the
input dtype (call it outside autocast under mixed precision).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SILogTerms", "silog_loss"]


@dataclass(frozen=True)
class SILogTerms:
    """Result of :func:`silog_loss`.

    Attributes:
        total: scalar ``scale * sqrt(variance + beta * mean^2)`` (differentiable).
        variance: scalar ``Var(g)`` of the log ratio over the valid pixels.
        mean: scalar ``mean(g)``, ``g = log(pred) - log(target)`` (log of the global scale error).
        n_valid: scalar int64, number of pixels used.
    """

    total: Tensor
    variance: Tensor
    mean: Tensor
    n_valid: Tensor


def silog_loss(
    pred_depth_m: Tensor,
    target_depth_m: Tensor,
    valid: Tensor | None = None,
    beta: float = 0.15,
    scale: float = 10.0,
    unbiased: bool = True,
    eps: float = 1e-7,
) -> SILogTerms:
    """SILog over the valid pixels of the batch (pooled), ZoeDepth's metric loss.

    Args:
        pred_depth_m: (B, 1, H, W) predicted depth, metres (> 0).
        target_depth_m: (B, 1, H, W) metric label, metres (NaN / inf / <= 0 are invalid).
        valid: (B, 1, H, W) bool or {0, 1} mask, or None (every pixel with a valid target).
        beta: weight of the squared mean log ratio (0.15).
        scale: factor on the square root (ZoeDepth's 10).
        unbiased: ``Var`` divides by ``n - 1`` (the code) or ``n``.
        eps: added inside the logs (the code's 1e-7).

    Returns:
        :class:`SILogTerms`.

    Raises:
        ValueError: naming the shapes, when prediction, target and mask are not (B, 1, H, W) alike.
    """
    if pred_depth_m.ndim != 4 or pred_depth_m.shape[1] != 1 or pred_depth_m.shape != target_depth_m.shape:
        raise ValueError(
            f"silog_loss: expected prediction and target (B, 1, H, W) of one shape, got "
            f"{tuple(pred_depth_m.shape)} and {tuple(target_depth_m.shape)}"
        )
    mask = torch.isfinite(target_depth_m) & (target_depth_m > 0) & torch.isfinite(pred_depth_m)
    if valid is not None:
        if valid.shape != target_depth_m.shape:
            raise ValueError(f"silog_loss: expected valid mask {tuple(target_depth_m.shape)}, got {tuple(valid.shape)}")
        mask = mask & (valid if valid.dtype == torch.bool else valid != 0)
    one = torch.ones((), dtype=pred_depth_m.dtype, device=pred_depth_m.device)
    # invalid pixels are replaced (not multiplied by 0) so a NaN there never reaches the sums
    pred = torch.where(mask, pred_depth_m, one)
    target = torch.where(mask, target_depth_m.to(pred_depth_m.dtype), one)
    g = torch.where(mask, torch.log(pred + eps) - torch.log(target + eps), torch.zeros_like(pred))
    n = mask.sum()
    n_f = n.to(pred.dtype)
    mean = g.sum() / n_f.clamp(min=1.0)
    sq_dev = torch.where(mask, (g - mean) ** 2, torch.zeros_like(g)).sum()
    variance = sq_dev / (n_f - 1.0 if unbiased else n_f).clamp(min=1.0)
    d = variance + beta * mean**2
    # sqrt has an infinite slope at 0 (a perfect prediction): there the loss is 0 with a 0 gradient
    ok = (d > 0) & (n >= 2)
    total = torch.where(ok, scale * torch.sqrt(torch.where(ok, d, one)), torch.zeros_like(d))
    return SILogTerms(total=total, variance=variance, mean=mean, n_valid=n)
