"""Depth Pro losses (Bochkovskii et al., arXiv 2410.02073, section 3.2) on canonical inverse depth.

Convention (as apple/ml-depth-pro converts in ``DepthPro.infer``: ``inverse_depth =
canonical_inverse_depth * (W / f_px)``): the network predicts the *canonical inverse depth*

    ``C = f_px / (W_px * depth_m)``,  so  ``depth_m = f_px / (W_px * C)``,

with ``f_px`` the horizontal focal length and ``W_px`` the image width, both in pixels of the same
image (only their ratio enters, so any resize of the whole image leaves C unchanged; a *crop*
changes ``W_px`` but not ``f_px``, so C must be computed with the cropped width). ``C`` is
unitless per metre: ``C = 1 / (depth_m * 2 tan(fov / 2))``. This is the ModelSpec
``canonical_inverse_depth`` kind (:mod:`depth_ros.core.postprocess` uses the same formula).

Terms, as the paper states them (no training code is published; what we chose where the paper is
silent is said at each function):

* :func:`trimmed_mae`: ``L_MAE = 1/N sum_i |C_i - C*_i|`` per image, with the pixels whose error is
  in the top 20 % of the image discarded for real-world (non-synthetic) sources;
* :func:`normalized_mae`: for labels without a metric scale the paper normalises prediction and
  target "via the mean absolute deviation from the median" before the MAE: we use MiDaS's
  :func:`~depth_ros_training.losses.midas.normalize_median_mad`;
* :func:`multiscale_derivative_loss`: ``L_{*,p,M} = 1/M sum_j 1/N_j sum_i |d_* C^j_i - d_* C*^j_i|^p``
  over ``M`` scales, scale ``j + 1`` obtained by blurring scale ``j`` and downsampling it by 2,
  ``d_*`` a Scharr (first derivative) or Laplace (second derivative) filter;
  :func:`derivative_losses` gives the paper's shorthands ``MAGE = L_{S,1,6}``, ``MALE = L_{L,1,6}``,
  ``MSGE = L_{S,2,6}``;
* :func:`ssi_gradient_loss`: the paper's first stage adds a scale-and-shift-invariant gradient loss on
  synthetic data without giving its formula; ours is MAGE on median/MAD-normalised maps;
* :func:`fov_loss`: the focal-length head is trained with an L2 loss on the horizontal field of
  view (in degrees here, the unit the ml-depth-pro FOV head outputs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from depth_ros_training.losses.midas import check_map_pair, normalize_median_mad

__all__ = [
    "DerivativeLosses",
    "canonical_from_inverse_depth",
    "canonical_inverse_depth",
    "depth_from_canonical",
    "derivative_losses",
    "fov_loss",
    "multiscale_derivative_loss",
    "normalized_mae",
    "pyramid_level",
    "ssi_gradient_loss",
    "trimmed_mae",
]

#: 3x3 Scharr filter for d/dx, normalised so that a ramp of slope 1 px^-1 gives 1 (weights
#: [3, 10, 3] / 16 across, [-1, 0, 1] / 2 along); d/dy is its transpose.
SCHARR_X = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 32.0
#: 3x3 five-point Laplace filter (OpenCV's ``Laplacian`` with ksize=1).
LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
#: 5-tap binomial blur applied before each factor-2 downsampling (separable, sums to 1).
BLUR_1D = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

_OPERATORS = ("scharr", "laplace")


@dataclass(frozen=True)
class DerivativeLosses:
    """The paper's multi-scale derivative losses (scalar tensors, differentiable).

    Attributes:
        mage: mean absolute gradient error ``L_{S,1,M}`` (Scharr, L1).
        male: mean absolute Laplace error ``L_{L,1,M}`` (Laplace, L1).
        msge: mean squared gradient error ``L_{S,2,M}`` (Scharr, L2).
    """

    mage: Tensor
    male: Tensor
    msge: Tensor


def _per_image(x: float | Tensor, like: Tensor, name: str) -> Tensor:
    """A scalar or (B,) tensor as a (B, 1, 1, 1) tensor of ``like``'s dtype and device."""
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t.expand(like.shape[0]).view(-1, 1, 1, 1)
    if t.shape != (like.shape[0],):
        raise ValueError(f"{name}: expected a scalar or shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.view(-1, 1, 1, 1)


def canonical_inverse_depth(depth_m: Tensor, f_px: float | Tensor, width_px: float | Tensor) -> Tensor:
    """Metric depth -> canonical inverse depth ``C = f_px / (W_px * depth_m)``.

    Args:
        depth_m: (B, 1, H, W) z-depth in metres; <= 0 or non-finite = invalid.
        f_px: horizontal focal length in pixels, scalar or (B,).
        width_px: image width in pixels (of the image ``f_px`` refers to), scalar or (B,).

    Returns:
        (B, 1, H, W) canonical inverse depth; 0 where the depth is invalid.
    """
    if depth_m.ndim != 4 or depth_m.shape[1] != 1:
        raise ValueError(f"canonical_inverse_depth: expected depth_m (B, 1, H, W), got {tuple(depth_m.shape)}")
    ratio = _per_image(f_px, depth_m, "f_px") / _per_image(width_px, depth_m, "width_px")
    valid = torch.isfinite(depth_m) & (depth_m > 0)
    safe = torch.where(valid, depth_m, torch.ones_like(depth_m))
    return torch.where(valid, ratio / safe, torch.zeros_like(depth_m))


def canonical_from_inverse_depth(inv_depth: Tensor, f_px: float | Tensor, width_px: float | Tensor) -> Tensor:
    """Metric inverse depth (1/m, e.g. a ``metric_depth`` label's target) -> ``C = inv_depth * f_px / W_px``.

    Args:
        inv_depth: (B, 1, H, W) inverse depth in 1/m; invalid pixels keep whatever they hold
            (0 or NaN) scaled, so the label's mask stays the mask.
        f_px, width_px: as :func:`canonical_inverse_depth`.

    Returns:
        (B, 1, H, W) canonical inverse depth.
    """
    if inv_depth.ndim != 4 or inv_depth.shape[1] != 1:
        raise ValueError(f"canonical_from_inverse_depth: expected inv_depth (B, 1, H, W), got {tuple(inv_depth.shape)}")
    return inv_depth * (_per_image(f_px, inv_depth, "f_px") / _per_image(width_px, inv_depth, "width_px"))


def depth_from_canonical(canonical: Tensor, f_px: float | Tensor, width_px: float | Tensor) -> Tensor:
    """Canonical inverse depth -> metric depth ``depth_m = f_px / (W_px * C)``.

    Args:
        canonical: (B, 1, H, W) canonical inverse depth; <= 0 = invalid.
        f_px, width_px: as :func:`canonical_inverse_depth`.

    Returns:
        (B, 1, H, W) depth in metres; NaN where ``C <= 0`` (REP 118's invalid).
    """
    if canonical.ndim != 4 or canonical.shape[1] != 1:
        raise ValueError(f"depth_from_canonical: expected canonical (B, 1, H, W), got {tuple(canonical.shape)}")
    ratio = _per_image(f_px, canonical, "f_px") / _per_image(width_px, canonical, "width_px")
    valid = canonical > 0
    safe = torch.where(valid, canonical, torch.ones_like(canonical))
    return torch.where(valid, ratio / safe, torch.full_like(canonical, float("nan")))


def _masked_image_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over images (that have a valid pixel) of each image's mean over its valid pixels; 0 if none."""
    b = values.shape[0]
    v = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).reshape(b, -1).sum(1)
    n = mask.reshape(b, -1).sum(1)
    has = n > 0
    per_image = v / n.clamp(min=1).to(values.dtype)
    return (per_image * has).sum() / has.sum().clamp(min=1).to(values.dtype)


def trimmed_mae(
    prediction: Tensor,
    target: Tensor,
    valid: Tensor | None = None,
    discard_fraction: float | Tensor = 0.2,
) -> Tensor:
    """MAE on canonical inverse depth with each image's largest errors discarded (Depth Pro ``L_MAE``).

    Per image: the absolute errors of the valid pixels, the ``floor(discard_fraction * N)`` largest
    dropped (N = valid pixels of that image), mean of the rest; then the mean over images that have
    valid pixels (an image-based reduction: the paper's ``1/N`` is per image).

    Args:
        prediction: (B, 1, H, W) predicted canonical inverse depth.
        target: (B, 1, H, W) target canonical inverse depth (NaN allowed where invalid).
        valid: (B, 1, H, W) mask or None.
        discard_fraction: in [0, 1), scalar or (B,): 0.2 for real-world sources, 0 for synthetic
            ones (the paper trims real data only), so one batch may mix both.

    Returns:
        scalar tensor.
    """
    mask = check_map_pair(prediction, target, valid, "trimmed_mae")
    frac = _per_image(discard_fraction, prediction, "discard_fraction").view(-1)
    if bool(((frac < 0) | (frac >= 1)).any()):
        raise ValueError(f"discard_fraction must be in [0, 1), got {frac.tolist()}")
    b = prediction.shape[0]
    zero = torch.zeros((), dtype=prediction.dtype, device=prediction.device)
    # the target is cleaned before the subtraction: a NaN there would reach the gradient through abs
    err = torch.where(mask, (prediction - torch.where(mask, target, zero)).abs(), zero)
    flat = err.reshape(b, -1)
    flat_mask = mask.reshape(b, -1)
    n = flat_mask.sum(1)
    keep = n - torch.floor(n.to(torch.float64) * frac.to(torch.float64)).to(torch.long)
    # ascending errors with the invalid pixels (error 0 in ``flat``) ranked last
    key = torch.where(flat_mask, flat.detach(), torch.full_like(flat, float("inf")))
    order = torch.argsort(key, dim=1)
    ordered = flat.gather(1, order)
    kept = torch.arange(flat.shape[1], device=flat.device).view(1, -1) < keep.view(-1, 1)
    return _masked_image_mean(ordered.view(b, 1, 1, -1), kept.view(b, 1, 1, -1))


def _normalized_pair(prediction: Tensor, target: Tensor, valid: Tensor | None, name: str) -> tuple[Tensor, Tensor, Tensor]:
    """Both maps normalised per image by median/MAD on the valid pixels (the shift- and
    scale-invariant losses' common first step).

    Args:
        prediction, target, valid: as :func:`trimmed_mae`; ``name`` is the loss named in errors.

    Returns:
        ``(pred_n, tgt_n, mask)``: the normalised maps (B, 1, H, W) and the valid mask (B, 1, H, W)
        bool. Invalid target pixels (NaN labels) are set to 0 before normalising, so no NaN
        reaches the gradient.
    """
    mask = check_map_pair(prediction, target, valid, name)
    zero = torch.zeros((), dtype=prediction.dtype, device=prediction.device)
    pred_n, _, _ = normalize_median_mad(prediction, mask)
    tgt_n, _, _ = normalize_median_mad(torch.where(mask, target, zero), mask)
    return pred_n, tgt_n, mask


def normalized_mae(prediction: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """MAE after median / mean-absolute-deviation normalisation of both maps (relative labels).

    Each map is normalised per image by
    :func:`~depth_ros_training.losses.midas.normalize_median_mad` on the valid pixels; the MAE is
    averaged per image, then over images. No trimming (the paper trims metric real-world MAE only).

    Args:
        prediction, target, valid: as :func:`trimmed_mae`.

    Returns:
        scalar tensor; 0 for any ``prediction = a * target + b`` with ``a > 0``.
    """
    pred_n, tgt_n, mask = _normalized_pair(prediction, target, valid, "normalized_mae")
    return _masked_image_mean((pred_n - tgt_n).abs(), mask)


def _box_count(mask: Tensor, size: int, stride: int = 1) -> Tensor:
    """Number of True pixels in each ``size x size`` window (zero padding, so 'outside' counts 0)."""
    ones = torch.ones(1, 1, size, size, dtype=torch.float32, device=mask.device)
    return F.conv2d(mask.to(torch.float32), ones, padding=size // 2, stride=stride)


def _blur_down(x: Tensor) -> Tensor:
    """Separable 5-tap binomial blur (zero padding) sampled at rows/columns 0, 2, 4, ..."""
    k = BLUR_1D.to(dtype=x.dtype, device=x.device)
    x = F.conv2d(x, k.view(1, 1, 5, 1), padding=(2, 0), stride=(2, 1))
    return F.conv2d(x, k.view(1, 1, 1, 5), padding=(0, 2), stride=(1, 2))


def pyramid_level(x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """One blur-and-downsample step of the Depth Pro derivative pyramid.

    The 5x5 binomial blur (:data:`BLUR_1D` outer product, applied separably) is a normalised
    convolution over the valid pixels (``blur(x * m) / blur(m)``, zero padding), then every second
    row and column is kept (rows/columns 0, 2, 4, ...). A coarse pixel is valid only if no invalid
    pixel *inside the image* lies under its blur window, so holes never leak into the coarser levels;
    the image border is not a hole (the kernel is renormalised there).

    Args:
        x: (B, 1, H, W) map (0 at invalid pixels).
        valid: (B, 1, H, W) bool.

    Returns:
        (x (B, 1, ceil(H/2), ceil(W/2)), valid of the same shape).
    """
    m = valid.to(x.dtype)
    num = _blur_down(x * m)
    den = _blur_down(m)
    holes = _box_count(~valid, 5, 2)
    coarse_valid = holes < 0.5
    out = torch.where(coarse_valid, num / torch.where(coarse_valid, den, torch.ones_like(den)), torch.zeros_like(num))
    return out, coarse_valid


def _derivatives(diff: Tensor, valid: Tensor, operator: str) -> tuple[Tensor, Tensor]:
    """``d_* diff`` on the 'valid' convolution grid, (B, 2 or 1, H - 2, W - 2), and its (B, 1, ...) mask."""
    if operator == "scharr":
        k = torch.stack([SCHARR_X, SCHARR_X.T]).to(dtype=diff.dtype, device=diff.device).view(2, 1, 3, 3)
    else:
        k = LAPLACE.to(dtype=diff.dtype, device=diff.device).view(1, 1, 3, 3)
    d = F.conv2d(diff, k)  # no padding: no border derivatives
    footprint = (k.abs().sum(0, keepdim=True) > 0).to(torch.float32)
    bad = F.conv2d((~valid).to(torch.float32), footprint)
    return d, bad < 0.5


def _difference_pyramid(
    prediction: Tensor, target: Tensor, valid: Tensor | None, num_scales: int, name: str
) -> list[tuple[Tensor, Tensor]]:
    """[(C - C*, valid)] at levels 0 .. num_scales - 1 (levels smaller than 3 px are left out)."""
    if not isinstance(num_scales, int) or num_scales < 1:
        raise ValueError(f"num_scales must be a positive integer, got {num_scales!r}")
    mask = check_map_pair(prediction, target, valid, name)
    zero = torch.zeros((), dtype=prediction.dtype, device=prediction.device)
    diff = torch.where(mask, prediction - torch.where(mask, target, zero), zero)
    levels = []
    for j in range(num_scales):
        if j > 0:
            diff, mask = pyramid_level(diff, mask)
        if min(diff.shape[-2:]) < 3:
            break
        levels.append((diff, mask))
    return levels


def _reduce_levels(per_level: list[tuple[Tensor, Tensor]], like: Tensor) -> Tensor:
    """Per-pixel errors (B, 1, h, w) with masks at each level -> ``1/M sum_j 1/N_j sum_i``, batch mean."""
    zero = torch.zeros((), dtype=like.dtype, device=like.device)
    b = like.shape[0]
    s = torch.stack([torch.where(ok, e, zero).reshape(b, -1).sum(1) for e, ok in per_level], 1)  # (B, levels)
    n = torch.stack([ok.reshape(b, -1).sum(1) for _, ok in per_level], 1)
    has = n > 0
    level_mean = torch.where(has, s / n.clamp(min=1).to(s.dtype), zero)
    levels = has.sum(1)
    image_has = levels > 0
    per_image = level_mean.sum(1) / levels.clamp(min=1).to(s.dtype)
    # images without a single valid derivative are left out of the batch mean (0 if none has one)
    return (per_image * image_has).sum() / image_has.sum().clamp(min=1).to(s.dtype)


def _level_errors(levels: list[tuple[Tensor, Tensor]], operator: str, p: int) -> list[tuple[Tensor, Tensor]]:
    out = []
    for diff, mask in levels:
        d, ok = _derivatives(diff, mask, operator)
        out.append((d.abs().pow(p).sum(dim=1, keepdim=True), ok))
    return out


def multiscale_derivative_loss(
    prediction: Tensor,
    target: Tensor,
    valid: Tensor | None = None,
    operator: str = "scharr",
    p: int = 1,
    num_scales: int = 6,
) -> Tensor:
    """Depth Pro's multi-scale derivative loss ``L_{*,p,M}`` on canonical inverse depth.

    At each of ``num_scales`` levels (level 0 = input, level j + 1 = :func:`pyramid_level` of level
    j, applied to prediction and target alike; levels under 3 px on a side are left out) the
    derivative filter is applied without padding to both maps, ``|d_* C - d_* C*|^p`` is taken per
    pixel (for Scharr the x and y components are summed, as MiDaS's gradient term sums them; the
    paper does not say), and averaged over the pixels whose filter window is entirely valid
    (``1/N_j``). The level means are averaged over the levels that have such pixels (``1/M``), then
    over the images that have any.

    Because the pyramid and the filters are linear for a fixed mask, this equals the loss computed
    on the difference map ``C - C*``; that is how it is computed.

    Sparse labels (LiDAR) have almost no fully valid 3x3 window: these losses are meant for dense
    (synthetic / exact) labels, as in the paper's second stage.

    Args:
        prediction: (B, 1, H, W) predicted canonical inverse depth.
        target: (B, 1, H, W) target (NaN allowed where invalid).
        valid: (B, 1, H, W) mask or None.
        operator: "scharr" (first derivative) or "laplace" (second derivative).
        p: error norm exponent, 1 or 2.
        num_scales: M >= 1 (6 in the paper).

    Returns:
        scalar tensor; 0 for identical maps, and for Scharr also when they differ by a constant.
    """
    if operator not in _OPERATORS:
        raise ValueError(f"operator must be one of {_OPERATORS}, got {operator!r}")
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    levels = _difference_pyramid(prediction, target, valid, num_scales, "multiscale_derivative_loss")
    if not levels:
        return prediction.sum() * 0.0
    return _reduce_levels(_level_errors(levels, operator, p), prediction)


def derivative_losses(
    prediction: Tensor, target: Tensor, valid: Tensor | None = None, num_scales: int = 6
) -> DerivativeLosses:
    """MAGE, MALE and MSGE (the paper's ``L_{S,1,6}``, ``L_{L,1,6}``, ``L_{S,2,6}``).

    One pyramid and one Scharr pass shared by the three (the same values as three calls of
    :func:`multiscale_derivative_loss`).

    Args:
        prediction, target, valid: as :func:`multiscale_derivative_loss`.
        num_scales: M (6 in the paper).

    Returns:
        :class:`DerivativeLosses`.
    """
    levels = _difference_pyramid(prediction, target, valid, num_scales, "derivative_losses")
    if not levels:
        zero = prediction.sum() * 0.0
        return DerivativeLosses(mage=zero, male=zero, msge=zero)
    scharr = [(_derivatives(diff, mask, "scharr")) for diff, mask in levels]
    mage = _reduce_levels([(d.abs().sum(dim=1, keepdim=True), ok) for d, ok in scharr], prediction)
    msge = _reduce_levels([(d.pow(2).sum(dim=1, keepdim=True), ok) for d, ok in scharr], prediction)
    male = _reduce_levels(_level_errors(levels, "laplace", 1), prediction)
    return DerivativeLosses(mage=mage, male=male, msge=msge)


def ssi_gradient_loss(prediction: Tensor, target: Tensor, valid: Tensor | None = None, num_scales: int = 6) -> Tensor:
    """Scale-and-shift-invariant gradient loss (Depth Pro stage 1, synthetic sources).

    The paper names this term without a formula; our reading: both maps normalised per image by
    :func:`~depth_ros_training.losses.midas.normalize_median_mad` on the valid pixels, then MAGE
    (:func:`multiscale_derivative_loss`, Scharr, L1, ``num_scales`` levels).

    Args:
        prediction, target, valid: as :func:`multiscale_derivative_loss`.
        num_scales: M (6, as the paper's other derivative losses).

    Returns:
        scalar tensor; 0 for any ``prediction = a * target + b`` with ``a > 0``.
    """
    pred_n, tgt_n, mask = _normalized_pair(prediction, target, valid, "ssi_gradient_loss")
    return multiscale_derivative_loss(pred_n, tgt_n, mask, "scharr", 1, num_scales)


def fov_loss(fov_pred_deg: Tensor, fov_true_deg: Tensor) -> Tensor:
    """L2 loss of the focal-length head: ``mean((fov_pred - fov_true)^2)`` in degrees^2.

    Depth Pro trains its FOV head with an L2 loss on the field of view; the unit is not stated in the
    paper, degrees is what the ml-depth-pro FOV head outputs (``fov_deg``), so the loss is in
    degrees^2 (1 deg of error = 1).

    Args:
        fov_pred_deg: (B,) predicted horizontal field of view, degrees.
        fov_true_deg: (B,) true horizontal field of view, degrees (``2 atan(W / (2 f_px))``).

    Returns:
        scalar tensor.
    """
    if fov_pred_deg.ndim != 1 or fov_pred_deg.shape != fov_true_deg.shape:
        raise ValueError(
            f"fov_loss: expected (B,) predicted and true fields of view, got {tuple(fov_pred_deg.shape)} "
            f"and {tuple(fov_true_deg.shape)}"
        )
    return ((fov_pred_deg - fov_true_deg) ** 2).mean()
