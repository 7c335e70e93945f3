"""ZoeDepth's metric bins head: seed bins, attractor layers, log-binomial output (arXiv 2302.12288).

A metric head that turns a relative-depth encoder-decoder into metric depth (metres):

1. **Seed bins** (:func:`normed_bin_centers`, :class:`SeedBinRegressor`): at the bottleneck, a
   1x1-conv MLP predicts, per pixel, the centres of *all* ``n_bins`` depth bins (not a few bins
   later split, as LocalBins does).
2. **Attractor layers** (:func:`attractor_shift`, :class:`AttractorLayer`), one per decoder level,
   coarse to fine: an MLP on the level's bin embedding predicts ``n_attractors`` points per pixel,
   and every bin centre moves *towards* them (contraction, not splitting):
   ``c_i <- c_i + agg_k f(a_k - c_i)`` with ``f`` the inverse attractor
   ``f(dx) = dx / (1 + alpha |dx|^gamma)`` (default) or the exponential one
   ``f(dx) = dx exp(-alpha |dx|^gamma)``.
3. **Log-binomial output** (:func:`log_binomial_probs`, :class:`ConditionalLogBinomial`): per pixel,
   a binomial over the ordered bins with predicted mode ``q`` in (0, 1) and temperature ``t``,
   computed in log space and normalised by a softmax of ``log p_k / t``; depth is
   ``sum_k p_k c_k``. A plain softmax over predicted logits (:class:`SoftmaxBinProbs`) is the
   comparison option.

:class:`MetricBinsHead` wires them together behind one typed config and takes the bottleneck
feature, one feature per decoder level and the finest feature map, so it fits any
encoder-decoder; :func:`dispnet_features` collects those from our
:class:`~depth_ros_training.models.dispnet.DispNet`.

Variants chosen, and where this differs from the public code (isl-org/ZoeDepth,
``zoedepth/models/layers/{localbins_layers,attractor,dist_layers}.py`` and
``zoedepth/models/zoedepth/zoedepth_v1.py``), with reasons:

* **Bin parametrisation**: default ``"normed"`` (the code's ``SeedBinRegressor`` +
  ``AttractorLayer``): bin widths from ReLU + 1e-3, normalised to sum to 1, scaled to
  ``max - min`` and cumulated from ``min_depth``, so every centre lies in
  ``[min_depth_m, max_depth_m]`` by construction, which the metric contract of the exported model
  needs (the ModelSpec carries the range). ``"softplus"`` (``SeedBinRegressorUnnormed`` +
  ``AttractorLayerUnnormed``, the setting of the released configs) is offered: centres are a
  Softplus output in metres, unbounded, attractors act in metres, nothing is sorted or clipped.
* **Attractor strength**: the released configs set ``attractor_alpha = 1000``, ``gamma = 2``,
  ``kind = "mean"``, ``type = "inv"``, but ``AttractorLayer.forward`` calls the attractor function
  without ``alpha``/``gamma``, so the code always runs with the function's defaults
  ``alpha = 300, gamma = 2``. Our default is what the code computes (``alpha = 300``, ``gamma = 2``,
  mean over attractors, inverse attractor); the configured 1000 is one argument away
  (:class:`MetricBinsConfig` ``attractor_alpha``).
* **|dx|^gamma**: the paper's formula has ``|a - c|^gamma``; the code's inverse attractor uses
  ``dx.pow(gamma)`` (no absolute value), the same for even gamma but with a denominator that can
  reach 0 for odd gamma. We use the absolute value (identical at the default gamma = 2, tested).
* **Attractor points** (normed variant): the code predicts two channels per attractor "for linear
  norm", computes ``A / A.sum(pair)`` and then overwrites it with the un-normalised first channel
  ``ReLU(conv) + 1e-3``, so attractor points are unbounded above (an attractor beyond
  ``max_depth`` drags bins out of range, to be clipped afterwards). Ours applies the normalisation
  the code states, ``a = A0 / (A0 + A1)`` in (0, 1), i.e. inside ``[min_depth, max_depth]``;
  ``normalize_attractors=False`` gives the released behaviour (tested against it).
* **Aggregation**: ``"mean"`` over attractors by default (the released configs); ``"sum"`` is the
  paper's equation. The code's ``memory_efficient`` loop computes the same values as its
  broadcast; we broadcast.
* **Binomial coefficient**: the code's ``log_binom`` is Stirling's leading term
  ``n log n - k log k - (n - k) log(n - k)`` (with 1e-7 guards), not ``log C(n, k)``; we keep it by
  default (its continuous mode is exactly ``(K - 1) q``) and offer the exact ``lgamma`` form
  (``exact_binomial=True``). Both are constants of ``K``, precomputed as a buffer (ONNX-friendly).
* **Loss**: no chamfer bin loss; the paper drops it (memory) and trains with SILog only
  (:mod:`depth_ros_training.losses.silog`).
* **Conditioning of the output**: ZoeDepth (v1) feeds the log-binomial MLP the DPT's last
  32-channel activation concatenated with the MiDaS relative depth (ZoeD-NK: the activation
  alone); ours takes whatever finest feature the
  caller passes as ``last`` (:func:`dispnet_features` gives DispNet's 16-channel full-resolution
  decoder output and, optionally, its disparity).

The pure functions (bin centres, attractor shifts, log-binomial probabilities, the shape check)
are :mod:`depth_ros_training.models.zoe_bins_math`; this module holds the layers and the head.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_ros_training.models.zoe_bins_math import (
    AttractorKind,
    AttractorType,
    attractor_shift,
    check_shape,
    log_binomial_coefficients,
    log_binomial_probs,
    normed_bin_centers,
)

__all__ = [
    "AttractorLayer", "ConditionalLogBinomial", "MetricBins", "MetricBinsConfig", "MetricBinsHead", "Projector", "SeedBinRegressor",
    "SoftmaxBinProbs", "dispnet_features",
]

BinCentersType = Literal["normed", "softplus"]
OutputDistribution = Literal["logbinomial", "softmax"]


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize with ``align_corners=True`` (corner pixel centres kept), as ZoeDepth resizes
    bins and embeddings; identity when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------


def _mlp(in_ch: int, hidden: int, out_ch: int, act: nn.Module) -> nn.Sequential:
    """1x1 conv -> ReLU -> 1x1 conv -> ``act`` (a per-pixel MLP)."""
    return nn.Sequential(nn.Conv2d(in_ch, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, out_ch, 1), act)


class Projector(nn.Module):
    """Per-pixel MLP (1x1 conv, ReLU, 1x1 conv): (B, C, h, w) -> (B, E, h, w) bin embedding."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SeedBinRegressor(nn.Module):
    """Bottleneck features -> bin centres of all ``n_bins`` bins, per pixel.

    ``"normed"``: :func:`normed_bin_centers` of a ReLU MLP output, in ``[min, max]`` metres.
    ``"softplus"``: a Softplus MLP output taken as centres in metres (unbounded, unsorted).

    Shapes:
        ``forward((B, C, h, w)) -> (B, n_bins, h, w)`` metres.
    """

    def __init__(
        self, in_channels: int, n_bins: int, min_depth_m: float, max_depth_m: float,
        hidden: int = 256, bin_centers_type: BinCentersType = "normed",
    ) -> None:
        super().__init__()
        self.min_depth_m, self.max_depth_m = float(min_depth_m), float(max_depth_m)
        self.bin_centers_type = bin_centers_type
        act = nn.ReLU(inplace=True) if bin_centers_type == "normed" else nn.Softplus()
        self.net = _mlp(in_channels, hidden, n_bins, act)

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        if self.bin_centers_type == "normed":
            return normed_bin_centers(out, self.min_depth_m, self.max_depth_m)
        return out


class AttractorLayer(nn.Module):
    """One decoder level: attractor points from the bin embedding pull the previous bin centres.

    ``normed`` variant: centres in normalised units ``b = (c - min) / (max - min)``; attractor
    points ``a = A0 / (A0 + A1)`` from two ReLU channels + 1e-3 each (or, with
    ``normalize_attractors=False``, ``A0`` alone as the released code does); new centres in metres
    are ``min + (max - min) (b + delta)``, sorted over the bins and clipped to ``[min, max]``.
    ``softplus`` variant: centres and ``N_a`` Softplus attractor points in metres, no sort/clip.
    ``n_attractors = 0`` passes the bins through unchanged (resized, sorted, clipped): the "no
    attractors" arm of the paper's ablation.

    Shapes:
        ``forward(embedding (B, E, h, w), prev_b (B, K, h', w'), prev_embedding (B, E, h'', w'') or
        None) -> (b_new (B, K, h, w), centers_m (B, K, h, w))``; ``prev_b`` and ``prev_embedding``
        are resized bilinearly (``align_corners=True``) to (h, w). ``b_new`` is in the variant's
        units, unsorted and unclipped (what the next level receives, as in ZoeDepth).
    """

    def __init__(
        self, embedding_dim: int, n_attractors: int, min_depth_m: float, max_depth_m: float,
        alpha: float = 300.0, gamma: float = 2.0, kind: AttractorKind = "mean",
        attractor_type: AttractorType = "inv", hidden: int = 128,
        bin_centers_type: BinCentersType = "normed", normalize_attractors: bool = True,
    ) -> None:
        super().__init__()
        self.n_attractors = n_attractors
        self.min_depth_m, self.max_depth_m = float(min_depth_m), float(max_depth_m)
        self.alpha, self.gamma, self.kind, self.attractor_type = float(alpha), float(gamma), kind, attractor_type
        self.bin_centers_type = bin_centers_type
        self.normalize_attractors = normalize_attractors
        self.net: nn.Module | None
        if n_attractors == 0:
            self.net = None
        elif bin_centers_type == "normed":
            self.net = _mlp(embedding_dim, hidden, 2 * n_attractors, nn.ReLU(inplace=True))
        else:
            self.net = _mlp(embedding_dim, hidden, n_attractors, nn.Softplus())

    def attractor_points(self, x: Tensor) -> Tensor:
        """(B, E, h, w) embedding -> (B, N_a, h, w) attractor points in the variant's units."""
        out = self.net(x)
        if self.bin_centers_type != "normed":
            return out
        a = (out + 1e-3).unflatten(1, (self.n_attractors, 2))  # (B, N_a, 2, h, w)
        if self.normalize_attractors:
            return a[:, :, 0] / a.sum(dim=2)
        return a[:, :, 0]

    def forward(self, x: Tensor, prev_b: Tensor, prev_embedding: Tensor | None = None) -> tuple[Tensor, Tensor]:
        size = x.shape[-2:]
        if prev_embedding is not None:
            x = x + _resize(prev_embedding, size)
        b = _resize(prev_b, size)
        if self.net is None:
            b_new = b
        else:
            b_new = b + attractor_shift(b, self.attractor_points(x), self.alpha, self.gamma, self.kind, self.attractor_type)
        if self.bin_centers_type != "normed":
            return b_new, b_new
        centers_m = self.min_depth_m + (self.max_depth_m - self.min_depth_m) * b_new
        centers_m = torch.sort(centers_m, dim=1).values.clamp(self.min_depth_m, self.max_depth_m)
        return b_new, centers_m


class ConditionalLogBinomial(nn.Module):
    """Features -> per-pixel log-binomial probabilities over the bins.

    An MLP (1x1 conv to ``(C + E) // bottleneck_factor``, GELU, 1x1 conv to 4, Softplus) on the
    concatenation ``[x, cond]`` gives ``(p0, p1, t0, t1)``; ``q = p0' / (p0' + p1')`` and
    ``t = t_min + (t_max - t_min) t0' / (t0' + t1')`` with ``' = + p_eps``; then
    :func:`log_binomial_probs`.

    Shapes:
        ``forward(x (B, C, H, W), cond (B, E, H, W)) -> (B, n_bins, H, W)``.
    """

    def __init__(
        self, in_channels: int, cond_channels: int, n_bins: int, min_temp: float = 0.0212,
        max_temp: float = 50.0, bottleneck_factor: int = 2, p_eps: float = 1e-4, exact_binomial: bool = False,
    ) -> None:
        super().__init__()
        self.min_temp, self.max_temp, self.p_eps = float(min_temp), float(max_temp), float(p_eps)
        hidden = (in_channels + cond_channels) // bottleneck_factor
        self.mlp = nn.Sequential(
            nn.Conv2d(in_channels + cond_channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, 4, 1), nn.Softplus()
        )
        # float64 constants, cast to the input's dtype at use (a float32 copy would lose ~1e-7 relative)
        self.register_buffer("log_coefficients", log_binomial_coefficients(n_bins, exact_binomial), persistent=False)

    def mode_and_temperature(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """(q (B, 1, H, W) in (0, 1), t (B, 1, H, W) in [min_temp, max_temp])."""
        pt = self.mlp(torch.cat([x, cond], dim=1)) + self.p_eps
        q = pt[:, 0:1] / (pt[:, 0:1] + pt[:, 1:2])
        t = pt[:, 2:3] / (pt[:, 2:3] + pt[:, 3:4])
        return q, self.min_temp + (self.max_temp - self.min_temp) * t

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        q, t = self.mode_and_temperature(x, cond)
        return log_binomial_probs(q, t, self.log_coefficients)


class SoftmaxBinProbs(nn.Module):
    """Comparison option: softmax over per-pixel bin logits from the same MLP shape (AdaBins-style).

    Shapes:
        ``forward(x (B, C, H, W), cond (B, E, H, W)) -> (B, n_bins, H, W)``.
    """

    def __init__(self, in_channels: int, cond_channels: int, n_bins: int, bottleneck_factor: int = 2) -> None:
        super().__init__()
        hidden = (in_channels + cond_channels) // bottleneck_factor
        self.mlp = nn.Sequential(nn.Conv2d(in_channels + cond_channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, n_bins, 1))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        return torch.softmax(self.mlp(torch.cat([x, cond], dim=1)), dim=1)


# ---------------------------------------------------------------------------------------------
# the head
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricBinsConfig:
    """Configuration of :class:`MetricBinsHead` (defaults: the released ZoeDepth code's behaviour).

    Attributes:
        bottleneck_channels: channels of the bottleneck feature (512 for DispNet's ResNet-18).
        level_channels: channels of the decoder features, coarse to fine, one attractor layer each
            (DispNet: (256, 128, 64, 32) at H/16 .. H/2).
        last_channels: channels of the finest feature ``last`` conditioning the output
            distribution (DispNet: 16, or 17 with its disparity appended).
        n_bins: number of bins (ZoeDepth: 64).
        min_depth_m, max_depth_m: bin range in metres, ``0 < min < max``.
        bin_embedding_dim: channels of the bin embeddings (ZoeDepth: 128).
        n_attractors: attractor points per level, one entry per ``level_channels`` (16, 8, 4, 1);
            0 at a level passes the bins through (all zeros: the paper's "no attractors" ablation).
        attractor_alpha, attractor_gamma: attractor strength and exponent (see the module
            docstring: 300 and 2 are what the code runs; its configs say alpha 1000).
        attractor_kind: ``"mean"`` (released configs) or ``"sum"`` (the paper's equation).
        attractor_type: ``"inv"`` (default) or ``"exp"``.
        normalize_attractors: ``a = A0 / (A0 + A1)`` (True) or the released code's ``A0`` (False).
        bin_centers_type: ``"normed"`` (bounded, default) or ``"softplus"``.
        output_distribution: ``"logbinomial"`` (default) or ``"softmax"`` (comparison).
        min_temp, max_temp: temperature range of the log-binomial (ZoeDepth: 0.0212, 50).
        exact_binomial: exact ``log C(n, k)`` instead of the code's Stirling term.
        seed_hidden: hidden width of the seed regressor's MLP (ZoeDepth: 256).
    """

    bottleneck_channels: int = 512
    level_channels: tuple[int, ...] = (256, 128, 64, 32)
    last_channels: int = 16
    n_bins: int = 64
    min_depth_m: float = 1e-3
    max_depth_m: float = 10.0
    bin_embedding_dim: int = 128
    n_attractors: tuple[int, ...] = (16, 8, 4, 1)
    attractor_alpha: float = 300.0
    attractor_gamma: float = 2.0
    attractor_kind: AttractorKind = "mean"
    attractor_type: AttractorType = "inv"
    normalize_attractors: bool = True
    bin_centers_type: BinCentersType = "normed"
    output_distribution: OutputDistribution = "logbinomial"
    min_temp: float = 0.0212
    max_temp: float = 50.0
    exact_binomial: bool = False
    seed_hidden: int = 256

    def __post_init__(self) -> None:
        for name in ("bottleneck_channels", "last_channels", "bin_embedding_dim", "seed_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MetricBinsConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.n_bins, int) or self.n_bins < 2:
            raise ValueError(f"MetricBinsConfig.n_bins must be an integer >= 2, got {self.n_bins!r}")
        for name, low in (("level_channels", 1), ("n_attractors", 0)):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or not all(isinstance(v, int) and v >= low for v in value):
                raise ValueError(f"MetricBinsConfig.{name} must be a non-empty tuple of integers >= {low}, got {value!r}")
        if len(self.n_attractors) != len(self.level_channels):
            raise ValueError(
                f"MetricBinsConfig.n_attractors has {len(self.n_attractors)} entries, level_channels "
                f"{len(self.level_channels)}: one attractor count per decoder level"
            )
        if not (0.0 < self.min_depth_m < self.max_depth_m < float("inf")):
            raise ValueError(
                f"MetricBinsConfig bins must lie in (0, max_depth_m]: need 0 < min_depth_m < max_depth_m, "
                f"got {self.min_depth_m!r}, {self.max_depth_m!r}"
            )
        if not (self.attractor_alpha > 0 and self.attractor_gamma > 0):
            raise ValueError(
                f"MetricBinsConfig.attractor_alpha and attractor_gamma must be > 0, got {self.attractor_alpha!r}, {self.attractor_gamma!r}"
            )
        if not (0.0 < self.min_temp < self.max_temp):
            raise ValueError(f"MetricBinsConfig needs 0 < min_temp < max_temp, got {self.min_temp!r}, {self.max_temp!r}")
        choices = {
            "attractor_kind": ("mean", "sum"),
            "attractor_type": ("inv", "exp"),
            "bin_centers_type": ("normed", "softplus"),
            "output_distribution": ("logbinomial", "softmax"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"MetricBinsConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class MetricBins:
    """Output of :class:`MetricBinsHead`.

    Attributes:
        depth_m: (B, 1, H, W) metric depth, metres (``sum_k probs_k * bin_centers_m_k``).
        bin_centers_m: (B, K, H, W) final bin centres, metres (resized to H x W).
        probs: (B, K, H, W) per-pixel probabilities over the bins.
    """

    depth_m: Tensor
    bin_centers_m: Tensor
    probs: Tensor


class MetricBinsHead(nn.Module):
    """ZoeDepth's metric bins module on any encoder-decoder's features.

    Layers: 1x1 conv on the bottleneck; seed bins and seed embedding from it; per decoder level a
    :class:`Projector` to the bin embedding and an :class:`AttractorLayer` (the previous level's
    embedding is added to this one's input); the last level's embedding, resized to ``last``'s
    size, conditions the output distribution (:class:`ConditionalLogBinomial` or
    :class:`SoftmaxBinProbs`); depth is the expectation of the final bin centres.

    Shapes:
        ``forward(bottleneck (B, Cb, hb, wb), levels [(B, C_l, h_l, w_l)] coarse to fine,
        last (B, C_last, H, W)) -> MetricBins`` with depth (B, 1, H, W) metres.
    """

    def __init__(self, config: MetricBinsConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or MetricBinsConfig()
        e = c.bin_embedding_dim
        self.bottleneck_conv = nn.Conv2d(c.bottleneck_channels, c.bottleneck_channels, 1)
        self.seed_bins = SeedBinRegressor(
            c.bottleneck_channels, c.n_bins, c.min_depth_m, c.max_depth_m, c.seed_hidden, c.bin_centers_type
        )
        self.seed_projector = Projector(c.bottleneck_channels, e)
        self.projectors = nn.ModuleList(Projector(ch, e) for ch in c.level_channels)
        self.attractors = nn.ModuleList(
            AttractorLayer(
                e, n, c.min_depth_m, c.max_depth_m, c.attractor_alpha, c.attractor_gamma, c.attractor_kind,
                c.attractor_type, bin_centers_type=c.bin_centers_type, normalize_attractors=c.normalize_attractors,
            )
            for n in c.n_attractors
        )
        if c.output_distribution == "logbinomial":
            self.probs = ConditionalLogBinomial(
                c.last_channels, e, c.n_bins, c.min_temp, c.max_temp, exact_binomial=c.exact_binomial
            )
        else:
            self.probs = SoftmaxBinProbs(c.last_channels, e, c.n_bins)

    def _check_inputs(self, bottleneck: Tensor, levels: Sequence[Tensor], last: Tensor) -> None:
        c = self.config
        check_shape(bottleneck, ("B", c.bottleneck_channels, "h", "w"), "MetricBinsHead bottleneck")
        b = bottleneck.shape[0]
        if len(levels) != len(c.level_channels):
            raise ValueError(f"MetricBinsHead: expected {len(c.level_channels)} decoder levels, got {len(levels)}")
        for i, (x, ch) in enumerate(zip(levels, c.level_channels)):
            check_shape(x, (b, ch, "h", "w"), f"MetricBinsHead level {i}")
        check_shape(last, (b, c.last_channels, "H", "W"), "MetricBinsHead last")

    def forward(self, bottleneck: Tensor, levels: Sequence[Tensor], last: Tensor) -> MetricBins:
        self._check_inputs(bottleneck, levels, last)
        c = self.config
        x = self.bottleneck_conv(bottleneck)
        seed_m = self.seed_bins(x)  # (B, K, hb, wb) metres
        b_prev = (seed_m - c.min_depth_m) / (c.max_depth_m - c.min_depth_m) if c.bin_centers_type == "normed" else seed_m
        prev_embedding = self.seed_projector(x)
        centers_m = seed_m
        for projector, attractor, feature in zip(self.projectors, self.attractors, levels):
            embedding = projector(feature)
            b_prev, centers_m = attractor(embedding, b_prev, prev_embedding)
            prev_embedding = embedding
        size = last.shape[-2:]
        probs = self.probs(last, _resize(prev_embedding, size))  # (B, K, H, W)
        centers_m = _resize(centers_m, size)
        depth_m = (probs * centers_m).sum(dim=1, keepdim=True)
        return MetricBins(depth_m=depth_m, bin_centers_m=centers_m, probs=probs)


def dispnet_features(net: nn.Module, x: Tensor, append_disparity: bool = False) -> tuple[Tensor, list[Tensor], Tensor]:
    """Run a :class:`~depth_ros_training.models.dispnet.DispNet` and collect the head's inputs.

    Returns ``(bottleneck, levels, last)``: the encoder's ``f4`` (B, 512 or 2048, H/32, W/32); the
    decoder outputs of stages 4..1, coarse to fine, (B, 256, H/16, W/16) .. (B, 32, H/2, W/2); and the
    stage-0 output (B, 16, H, W), with the finest sigmoid disparity appended as a 17th channel when
    ``append_disparity`` (ZoeDepth conditions its output on the relative prediction likewise; this
    needs ``net.num_scales >= 1``, always true). The decoder loop restates ``DispNet.forward``'s.
    """
    features = net.encoder(x)
    out = features[4]
    levels: list[Tensor] = []
    for i in range(4, -1, -1):
        out = F.interpolate(net.upconv0[i](out), scale_factor=2.0, mode="nearest")
        if i > 0:
            out = torch.cat([out, features[i - 1]], dim=1)
        out = net.upconv1[i](out)
        if i > 0:
            levels.append(out)
    last = out
    if append_disparity:
        last = torch.cat([last, torch.sigmoid(net.dispconv[0](out))], dim=1)
    return features[4], levels, last
