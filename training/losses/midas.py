"""MiDaS losses (Ranftl et al., arXiv 1907.01341): scale-and-shift-invariant training on inverse depth.

All maps here are *inverse depth* (disparity-like) ``(B, 1, H, W)``; the prediction is the
network's ``inverse_depth_relative`` output and the target comes from
:func:`depth_ros_training.data.labels.label_to_target` (any label kind). ``valid`` is a bool or
{0, 1} float ``(B, 1, H, W)`` mask; pixels where the target is not finite are treated as invalid
as well, so a target carrying NaN holes needs no cleaning (invalid pixels never enter a sum: they
are selected out with ``torch.where``, never multiplied by 0, which would keep a NaN).

Terms:

* :func:`align_scale_shift`: per-image least squares ``(s, t) = argmin sum_valid (s p + t - d)^2``
  in closed form (MiDaS paper eq. 4, the normal equations);
* :func:`ssi_mse_loss`: ``L_ssimse = 1 / (2 M) sum_valid (s p + t - d)^2`` plus
  ``alpha`` times the gradient-matching term (MiDaS v1 objective);
* :func:`normalize_median_mad`: ``t(d) = median(d)``, ``s(d) = mean |d - t(d)|`` over the valid
  pixels of each image (MiDaS paper eq. 6-7) and ``(d - t) / s``;
* :func:`ssi_trimmed_mae_loss`: both prediction and target normalised that way,
  ``L_ssitrim = 1 / (2 M) sum_{j <= 0.8 M} |r_j|`` over the residuals sorted ascending (the
  largest 20 % dropped), plus ``alpha`` times the gradient-matching term (MiDaS v2/v3 objective);
* :func:`gradient_matching_loss`: ``L_reg = 1 / M sum_k sum_valid (|grad_x R^k| + |grad_y R^k|)``,
  ``R = aligned prediction - target``, over ``num_scales`` scales (4 in the paper).

Reduction ("batch-based"): every term is summed over the whole batch and divided by the number of
valid pixels in the batch (at that scale for the gradient term), which is the default reduction of
the authors' posted loss code (``reduction_batch_based`` in the MiDaS loss gists linked from
isl-org/MiDaS issues #2 and #33); an image with many valid pixels weighs more than a sparse one.

Where this differs from the authors' posted code, and why:

* median and MAD are taken over the *valid* pixels only, as the paper defines them; the posted
  ``normalize_prediction_robust`` takes the median of ``mask * target``, i.e. including a zero for
  every invalid pixel (raised in isl-org/MiDaS issue #33), which shifts the median of a sparse label.
  The median of an even count is the lower of the two middle values, as ``torch.median`` gives.
  With a fully valid mask both agree exactly (tested).
* trimming is per image (the paper: ``U_m = 0.8 M`` residuals of each image); the posted
  ``trimmed_mae_loss`` sorts the residuals of the whole batch together. ``trim_per_image=False``
  gives the posted behaviour (tested equal).
* an image whose valid prediction is constant (the 2x2 normal-equation system is singular) gets
  ``s = 0, t = mean(target)``, the least-squares fit; the posted ``compute_scale_and_shift``
  returns ``s = t = 0`` there, which adds the target's mean square to the loss value (no gradient).
* the alignment is computed from centred sums (same solution as the normal equations, without the
  cancellation of ``a00 a11 - a01^2`` in float32).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "MidasLoss",
    "ScaleShift",
    "align_scale_shift",
    "check_map_pair",
    "gradient_matching_loss",
    "normalize_median_mad",
    "ssi_mse_loss",
    "ssi_trimmed_mae_loss",
]


@dataclass(frozen=True)
class ScaleShift:
    """Per-image affine parameters, ``aligned = scale * x + shift``.

    Attributes:
        scale: (B,) unitless (target units per prediction unit).
        shift: (B,) in target units.
    """

    scale: Tensor
    shift: Tensor


@dataclass(frozen=True)
class MidasLoss:
    """Result of :func:`ssi_mse_loss` / :func:`ssi_trimmed_mae_loss`.

    Attributes:
        total: scalar tensor ``data + alpha * gradient`` (differentiable).
        data: scalar tensor, the SSI data term (MSE or trimmed MAE).
        gradient: scalar tensor, the multi-scale gradient-matching term (0 when ``alpha == 0``).
        prediction: (B, 1, H, W) the prediction in the loss's space (aligned to the target for
            the MSE variant, median/MAD-normalised for the trimmed one); 0 at invalid pixels.
        target: (B, 1, H, W) the target in the same space (the input target for the MSE
            variant, normalised for the trimmed one); 0 at invalid pixels.
        valid: (B, 1, H, W) bool, the pixels used (``valid`` and a finite target).
    """

    total: Tensor
    data: Tensor
    gradient: Tensor
    prediction: Tensor
    target: Tensor
    valid: Tensor


def check_map_pair(prediction: Tensor, target: Tensor, valid: Tensor | None, name: str) -> Tensor:
    """Check ``(B, 1, H, W)`` prediction/target/valid shapes; return the effective bool mask.

    The mask is ``valid`` (bool, or nonzero float) and a finite target; ``valid=None`` means every
    pixel with a finite target.

    Raises:
        ValueError: naming the shapes received.
    """
    if prediction.ndim != 4 or prediction.shape[1] != 1 or prediction.shape != target.shape:
        raise ValueError(
            f"{name}: expected prediction and target (B, 1, H, W) of one shape, got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    finite = torch.isfinite(target)
    if valid is None:
        return finite
    if valid.shape != target.shape:
        raise ValueError(f"{name}: expected valid mask {tuple(target.shape)}, got {tuple(valid.shape)}")
    return finite & (valid if valid.dtype == torch.bool else valid != 0)


def _zero_where_invalid(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def align_scale_shift(prediction: Tensor, target: Tensor, valid: Tensor | None = None) -> ScaleShift:
    """Per-image least-squares scale and shift of the prediction onto the target.

    ``(s, t) = argmin sum_valid (s * prediction + t - target)^2``, solved in closed form:
    ``s = cov(p, d) / var(p)``, ``t = mean(d) - s * mean(p)`` over the valid pixels of each image
    (the solution of MiDaS's normal equations). Differentiable in both inputs (MiDaS back-propagates
    through the alignment).

    Args:
        prediction: (B, 1, H, W) inverse depth, any affine-ambiguous unit.
        target: (B, 1, H, W) inverse depth (NaN allowed where invalid).
        valid: (B, 1, H, W) bool / {0, 1} mask, or None (finite target pixels).

    Returns:
        :class:`ScaleShift` with (B,) tensors. An image with no valid pixel gets ``s = t = 0``; one
        whose valid prediction is constant gets ``s = 0, t = mean(target)``.
    """
    mask = check_map_pair(prediction, target, valid, "align_scale_shift")
    w = mask.to(prediction.dtype)
    p = _zero_where_invalid(prediction, mask)
    d = _zero_where_invalid(target, mask).to(prediction.dtype)
    n = w.sum(dim=(1, 2, 3))
    n_safe = n.clamp(min=1.0)
    p_mean = p.sum(dim=(1, 2, 3)) / n_safe
    d_mean = d.sum(dim=(1, 2, 3)) / n_safe
    pc = (p - p_mean.view(-1, 1, 1, 1)) * w
    dc = (d - d_mean.view(-1, 1, 1, 1)) * w
    var = (pc * pc).sum(dim=(1, 2, 3))
    cov = (pc * dc).sum(dim=(1, 2, 3))
    # singular when the valid prediction is constant up to rounding: the centred values of a
    # constant are ~eps * |p|, so its variance is ~(eps |p|)^2 relative to the mean square
    mean_sq = (p * p).sum(dim=(1, 2, 3)) / n_safe
    eps = torch.finfo(prediction.dtype).eps
    solvable = var > (64 * eps) ** 2 * (mean_sq * n_safe).clamp(min=torch.finfo(prediction.dtype).tiny)
    scale = torch.where(solvable, cov / torch.where(solvable, var, torch.ones_like(var)), torch.zeros_like(var))
    shift = d_mean - scale * p_mean
    return ScaleShift(scale=scale, shift=shift)


def normalize_median_mad(x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """MiDaS's robust normalisation ``(x - t) / s`` per image (paper eq. 6-7).

    ``t = median`` of the valid values (the lower middle value for an even count, as
    ``torch.median``), ``s = mean |x - t|`` over the valid values, clamped to >= 1e-6 as the
    authors' code does.

    Args:
        x: (B, 1, H, W) inverse depth.
        valid: (B, 1, H, W) bool mask (already combined with finiteness).

    Returns:
        (normalised (B, 1, H, W) with 0 at invalid pixels, t (B,), s (B,)). An image without valid
        pixels gets ``t = 0, s = 1``.
    """
    if x.ndim != 4 or valid.shape != x.shape or valid.dtype != torch.bool:
        raise ValueError(f"normalize_median_mad: expected x (B, 1, H, W) and a bool mask of that shape, got "
                         f"{tuple(x.shape)} and {tuple(valid.shape)} {valid.dtype}")
    b = x.shape[0]
    flat = x.reshape(b, -1)
    flat_mask = valid.reshape(b, -1)
    n = flat_mask.sum(dim=1)
    # nanmedian skips the invalid pixels (set to NaN) and returns the lower middle value, as median;
    # a selection, ~5x faster than sorting on CPU. A NaN prediction at a valid pixel still makes the
    # loss NaN through the centred values below.
    nan = torch.full((), float("nan"), dtype=x.dtype, device=x.device)
    median = torch.nanmedian(torch.where(flat_mask, flat, nan), dim=1).values
    median = torch.where(n > 0, median, torch.zeros_like(median))
    centred = torch.where(flat_mask, flat - median.view(-1, 1), torch.zeros((), dtype=x.dtype, device=x.device))
    mad = centred.abs().sum(dim=1) / n.clamp(min=1).to(x.dtype)
    mad = torch.where(n > 0, mad.clamp(min=1e-6), torch.ones_like(mad))
    return (centred / mad.view(-1, 1)).view_as(x), median, mad


def _batch_based(total: Tensor, count: Tensor, like: Tensor) -> Tensor:
    """``total / count``; 0 when nothing is valid (``total`` is then a sum over nothing).

    No host sync: the count stays a tensor."""
    return total / count.clamp(min=1).to(like.dtype)


def gradient_matching_loss(prediction: Tensor, target: Tensor, valid: Tensor | None = None, num_scales: int = 4) -> Tensor:
    """Multi-scale gradient matching, MiDaS eq. 11, batch-based reduction.

    ``R = prediction - target``; at scale k (``k = 0 .. num_scales - 1``) the maps and the mask are
    subsampled by ``2^k`` (every ``2^k``-th row and column, as the authors' code does) and
    ``sum |R[y, x+1] - R[y, x]| + |R[y+1, x] - R[y, x]|`` over pairs of valid neighbours is divided
    by the number of valid pixels of the batch at that scale; the scales are summed.

    Args:
        prediction: (B, 1, H, W) aligned (or normalised) prediction.
        target: (B, 1, H, W) target in the same space.
        valid: (B, 1, H, W) mask or None.
        num_scales: >= 1.

    Returns:
        scalar tensor; 0 for ``prediction = target + c`` (a constant offset) on any mask.
    """
    if not isinstance(num_scales, int) or num_scales < 1:
        raise ValueError(f"num_scales must be a positive integer, got {num_scales!r}")
    mask = check_map_pair(prediction, target, valid, "gradient_matching_loss")
    residual = _zero_where_invalid(prediction - _zero_where_invalid(target, mask).to(prediction.dtype), mask)
    total = prediction.sum() * 0.0
    for k in range(num_scales):
        step = 2 ** k
        r = residual[:, :, ::step, ::step]
        m = mask[:, :, ::step, ::step]
        mx = m[..., 1:] & m[..., :-1]
        my = m[..., 1:, :] & m[..., :-1, :]
        gx = _zero_where_invalid((r[..., 1:] - r[..., :-1]).abs(), mx).sum()
        gy = _zero_where_invalid((r[..., 1:, :] - r[..., :-1, :]).abs(), my).sum()
        total = total + _batch_based(gx + gy, m.sum(), prediction)
    return total


def ssi_mse_loss(
    prediction: Tensor,
    target: Tensor,
    valid: Tensor | None = None,
    alpha: float = 0.5,
    num_scales: int = 4,
) -> MidasLoss:
    """Scale-and-shift-invariant MSE with least-squares alignment + gradient matching (MiDaS).

    ``data = sum_valid (s p + t - d)^2 / (2 M)`` with ``(s, t)`` from :func:`align_scale_shift`
    and ``M`` the valid pixels of the batch; ``total = data + alpha * gradient_matching_loss``
    on ``(s p + t, d)``.

    Args:
        prediction: (B, 1, H, W) predicted inverse depth (``inverse_depth_relative``).
        target: (B, 1, H, W) target inverse depth, any scale and shift (NaN where invalid).
        valid: (B, 1, H, W) mask or None.
        alpha: weight of the gradient term (0.5 in the paper), >= 0.
        num_scales: scales of the gradient term (4 in the paper).

    Returns:
        :class:`MidasLoss`; 0 for any ``prediction = a * target + b`` with ``a != 0``.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    mask = check_map_pair(prediction, target, valid, "ssi_mse_loss")
    fit = align_scale_shift(prediction, target, mask)
    aligned = _zero_where_invalid(fit.scale.view(-1, 1, 1, 1) * prediction + fit.shift.view(-1, 1, 1, 1), mask)
    tgt = _zero_where_invalid(target, mask).to(prediction.dtype)
    res = aligned - tgt
    data = _batch_based((res * res).sum(), 2 * mask.sum(), prediction)
    grad = gradient_matching_loss(aligned, tgt, mask, num_scales) if alpha > 0 else prediction.sum() * 0.0
    return MidasLoss(total=data + alpha * grad, data=data, gradient=grad, prediction=aligned, target=tgt, valid=mask)


def _trimmed_abs_sum(residual: Tensor, mask: Tensor, trim: float, per_image: bool) -> Tensor:
    """Sum of the smallest ``floor((1 - trim) * M)`` absolute residuals (per image or per batch).

    Computed as the sum of all valid ``|r|`` minus the ``M - keep`` largest (``topk`` of the
    dropped fifth is cheaper than sorting everything); the dropped pixels' gradients cancel exactly.
    """
    rows = residual.shape[0] if per_image else 1
    flat = residual.reshape(rows, -1).abs()
    flat_mask = mask.reshape(rows, -1)
    n = flat_mask.sum(dim=1)
    keep = torch.floor(n.to(torch.float64) * (1.0 - trim)).to(torch.long)  # int(M * (1 - trim)) as MiDaS
    drop = n - keep
    kept_values = _zero_where_invalid(flat, flat_mask)
    total = kept_values.sum()
    # a bound on every row's drop count known without reading it back from the device:
    # drop = n - floor(n (1 - trim)) <= ceil(n trim) + 1 <= ceil(row_len * trim) + 1
    k = min(flat.shape[1], math.ceil(flat.shape[1] * trim) + 1)
    if trim == 0.0:
        return total
    # invalid pixels rank below every valid |r| (>= 0)
    largest, _ = torch.topk(torch.where(flat_mask, flat, torch.full_like(flat, -1.0)), k, dim=1)
    rank = torch.arange(k, device=residual.device).view(1, -1)
    return total - _zero_where_invalid(largest, rank < drop.view(-1, 1)).sum()


def ssi_trimmed_mae_loss(
    prediction: Tensor,
    target: Tensor,
    valid: Tensor | None = None,
    trim: float = 0.2,
    alpha: float = 0.5,
    num_scales: int = 4,
    trim_per_image: bool = True,
) -> MidasLoss:
    """Scale-and-shift-invariant trimmed MAE with median/MAD normalisation + gradient matching (MiDaS).

    Prediction and target are each normalised by :func:`normalize_median_mad`; the residuals'
    absolute values are sorted and the largest ``trim`` fraction dropped (per image, or over the
    batch with ``trim_per_image=False`` as the authors' code); ``data = sum(kept) / (2 M)`` with
    ``M`` the valid pixels of the batch (not the kept count: the paper's ``1 / (2M)``);
    ``total = data + alpha * gradient_matching_loss`` on the normalised maps.

    Args:
        prediction: (B, 1, H, W) predicted inverse depth.
        target: (B, 1, H, W) target inverse depth, any scale and shift (NaN where invalid).
        valid: (B, 1, H, W) mask or None.
        trim: fraction of the largest residuals dropped, in [0, 1) (0.2 in the paper).
        alpha: weight of the gradient term (0.5), >= 0.
        num_scales: scales of the gradient term (4).
        trim_per_image: trim within each image (paper) or over the whole batch (authors' code).

    Returns:
        :class:`MidasLoss`; 0 for any ``prediction = a * target + b`` with ``a > 0``.
    """
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must be in [0, 1), got {trim}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    mask = check_map_pair(prediction, target, valid, "ssi_trimmed_mae_loss")
    pred_n, _, _ = normalize_median_mad(prediction, mask)
    tgt_n, _, _ = normalize_median_mad(_zero_where_invalid(target, mask).to(prediction.dtype), mask)
    data = _batch_based(_trimmed_abs_sum(pred_n - tgt_n, mask, trim, trim_per_image), 2 * mask.sum(), prediction)
    grad = gradient_matching_loss(pred_n, tgt_n, mask, num_scales) if alpha > 0 else prediction.sum() * 0.0
    return MidasLoss(total=data + alpha * grad, data=data, gradient=grad, prediction=pred_n, target=tgt_n, valid=mask)
