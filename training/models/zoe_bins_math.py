"""The pure functions of ZoeDepth's metric bins head (:mod:`depth_ros_training.models.zoe_bins`):
bin centres from widths, attractor shifts, log-binomial probabilities, and the shape check they
and the head's layers share. Tensors in, tensors out; no parameters.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

__all__ = [
    "attractor_shift",
    "check_shape",
    "exp_attractor",
    "inv_attractor",
    "log_binomial_coefficients",
    "log_binomial_probs",
    "normed_bin_centers",
]

AttractorType = Literal["inv", "exp"]
AttractorKind = Literal["mean", "sum"]


def check_shape(x: Tensor, dims: Sequence[int | str], name: str) -> None:
    """Raise ``ValueError`` naming ``x``'s shape unless it matches ``dims``.

    Args:
        x: the tensor to check.
        dims: one entry per dimension: an int (that size) or a str (any size; the letters are the
            names shown in the message, e.g. ``("B", 1, "H", "W")``).
        name: what ``x`` is, for the message.
    """
    ok = x.ndim == len(dims) and all(isinstance(d, str) or x.shape[i] == d for i, d in enumerate(dims))
    if not ok:
        want = ", ".join(str(d) for d in dims)
        raise ValueError(f"{name}: expected shape ({want}), got {tuple(x.shape)}")



def normed_bin_centers(raw_widths: Tensor, min_depth_m: float, max_depth_m: float, eps: float = 1e-3) -> Tensor:
    """Non-negative raw widths -> bin centres in metres inside ``[min_depth_m, max_depth_m]``.

    ``w = (raw + eps) / sum_bins(raw + eps)``; edges ``e_0 = min``, ``e_j = min + (max - min)
    sum_{i<j} w_i``; centres ``c_j = (e_j + e_{j+1}) / 2``. Centres are sorted ascending and strictly
    inside the range (each width is at least ``eps / sum``).

    Args:
        raw_widths: (B, K, h, w), >= 0 (a ReLU output).
        min_depth_m, max_depth_m: range in metres, ``0 < min < max``.
        eps: added to every raw width (ZoeDepth's 1e-3), keeps widths positive.

    Returns:
        (B, K, h, w) centres in metres.
    """
    check_shape(raw_widths, ("B", "K", "h", "w"), "normed_bin_centers raw_widths")
    b = raw_widths + eps
    widths_m = (max_depth_m - min_depth_m) * (b / b.sum(dim=1, keepdim=True))
    upper_edges = min_depth_m + torch.cumsum(widths_m, dim=1)  # e_1 .. e_K
    lower_edges = upper_edges - widths_m  # e_0 .. e_{K-1}
    return 0.5 * (lower_edges + upper_edges)


def inv_attractor(dx: Tensor, alpha: float, gamma: float) -> Tensor:
    """Inverse attractor shift ``dx / (1 + alpha |dx|^gamma)``, ``dx = a - c`` (any shape).

    ``|shift| <= |dx|`` with the sign of ``dx``: a lone attractor never moves a centre past itself.
    """
    return dx / (1.0 + alpha * dx.abs().pow(gamma))


def exp_attractor(dx: Tensor, alpha: float, gamma: float) -> Tensor:
    """Exponential attractor shift ``dx exp(-alpha |dx|^gamma)``, ``dx = a - c`` (any shape)."""
    return dx * torch.exp(-alpha * dx.abs().pow(gamma))


def attractor_shift(
    centers: Tensor,
    attractors: Tensor,
    alpha: float,
    gamma: float,
    kind: AttractorKind = "mean",
    attractor_type: AttractorType = "inv",
) -> Tensor:
    """Shift of every bin centre towards the attractor points (ZoeDepth eq. of the attractor layer).

    ``delta_i = agg_k f(a_k - c_i)``, ``agg`` the mean (``kind="mean"``) or the sum over the
    ``N_a`` attractors, ``f`` :func:`inv_attractor` or :func:`exp_attractor`.

    Args:
        centers: (B, K, h, w) bin centres (normalised units for the normed variant, metres for
            the softplus one).
        attractors: (B, N_a, h, w) attractor points, same units.
        alpha, gamma: attractor strength and exponent (> 0).

    Returns:
        (B, K, h, w) shift ``delta`` (new centres are ``centers + delta``).
    """
    check_shape(centers, ("B", "K", "h", "w"), "attractor_shift centers")
    b, _, h, w = centers.shape
    check_shape(attractors, (b, "N_a", h, w), "attractor_shift attractors")
    fn = inv_attractor if attractor_type == "inv" else exp_attractor
    shifts = fn(attractors.unsqueeze(2) - centers.unsqueeze(1), alpha, gamma)  # (B, N_a, K, h, w)
    return shifts.mean(dim=1) if kind == "mean" else shifts.sum(dim=1)


def log_binomial_coefficients(n_bins: int, exact: bool = False) -> Tensor:
    """``log C(K - 1, k)`` for ``k = 0 .. K - 1``, float64 (K,).

    ``exact=False`` gives ZoeDepth's Stirling leading term ``n log n - k log k - (n - k) log(n - k)``
    with ``n = K - 1`` (and its 1e-7 guards, so ``0 log 0 = 0``), ``exact=True`` the true value from
    ``lgamma``.
    """
    if not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    k = torch.arange(n_bins, dtype=torch.float64)
    n = torch.tensor(float(n_bins - 1), dtype=torch.float64)
    if exact:
        return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    g = 1e-7
    return (n + g) * torch.log(n + g) - (k + g) * torch.log(k + g) - (n - k) * torch.log(n - k + g)


def log_binomial_probs(
    q: Tensor, t: Tensor | float, log_coefficients: Tensor, eps: float = 1e-4
) -> Tensor:
    """Per-pixel probabilities over K ordered bins from a binomial with mode ``q`` and temperature ``t``.

    ``log p_k = log C(K-1, k) + k log q + (K-1-k) log(1-q)`` (``q`` and ``1 - q`` clamped to
    ``[eps, 1]``), then ``softmax_k(log p_k / t)``. The continuous maximiser of ``log p_k`` is
    ``k = (K-1) q`` (Stirling coefficients) and ``log p_k`` is concave in ``k``, so the result is
    unimodal with its mode at ``(K-1) q``; ``t`` only sharpens (``t < 1``) or flattens it.

    Args:
        q: (B, 1, H, W) in (0, 1).
        t: (B, 1, H, W) or a float, > 0.
        log_coefficients: (K,) from :func:`log_binomial_coefficients`.
        eps: clamp of ``q`` and ``1 - q`` away from 0 (ZoeDepth's 1e-4).

    Returns:
        (B, K, H, W) probabilities summing to 1 over dim 1.
    """
    check_shape(q, ("B", 1, "H", "W"), "log_binomial_probs q")
    check_shape(log_coefficients, ("K",), "log_binomial_probs log_coefficients")
    n_bins = log_coefficients.shape[0]
    k = torch.arange(n_bins, dtype=q.dtype, device=q.device).view(1, -1, 1, 1)
    log_q = torch.log(q.clamp(eps, 1.0))
    log_1mq = torch.log((1.0 - q).clamp(eps, 1.0))
    coeff = log_coefficients.to(dtype=q.dtype, device=q.device).view(1, -1, 1, 1)
    log_p = coeff + k * log_q + (n_bins - 1 - k) * log_1mq  # (B, K, H, W)
    return torch.softmax(log_p / t, dim=1)
