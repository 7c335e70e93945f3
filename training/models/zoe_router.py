"""ZoeD-NK style routing: a scene-type classifier on the bottleneck picks one of N metric bins heads.

ZoeDepth's NK model (isl-org/ZoeDepth ``zoedepth/models/zoedepth_nk/zoedepth_nk_v1.py``) keeps one
metric bins head per dataset (NYU indoor, KITTI outdoor, each with its own depth range) and a
latent classifier on the bottleneck that routes to one of them; the classifier is trained with a
cross-entropy "domain" loss (weight ``w_domain = 100`` in the released NK config) next to SILog.

Ours, and where it differs, with reasons:

* **Router** (:class:`SceneRouter`): 1x1 conv + ReLU, global average pool, two-layer MLP to N
  logits. ZoeDepth uses a 4-layer patch transformer (128-d, 4 heads, a zero "class token") and an
  MLP on the class token; on our ResNet bottleneck (H/32 x W/32) the scene type is a global
  property and a pooled MLP is enough (tested to separate two synthetic scene types) at a fraction
  of the cost on the robot.
* **Per image, not per batch**: the code sums the logits over the batch and sends the whole batch
  to one head ("assumes all images are from the same domain"); we route each image, so a batch
  may mix scene types and batch 1 at run time behaves as in training.
* **Training: teacher forcing** when the scene type of each image is known (it is: every bag
  group declares its type in the config): image ``b`` goes through head ``scene[b]`` and the
  router learns from the same labels. The code routes by the router's own (initially random)
  vote during training too, so early steps train a head on the other scene type's depth range.
  Without labels in training mode the output is the router-probability-weighted mixture of the
  heads (soft routing, differentiable in the router).
* **Eval / export: hard routing** to the argmax head. Every head is evaluated and the chosen one
  selected with a one-hot mask (no data-dependent control flow, so the ONNX graph is static and
  carries the router and all heads); the heads are small next to the encoder.
* **Nothing shared between heads** but the encoder-decoder features: each head has its own
  projectors and bottleneck conv (ZoeDepth shares those and keeps per-head seed regressors,
  attractors and output layers). Each head has its own ``MetricBinsConfig``, so its own depth
  range, as ZoeDepth's ``bin_conf``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_ros_training.models.zoe_bins import MetricBinsConfig, MetricBinsHead, check_shape

__all__ = ["RoutedDepth", "RoutedMetricHeads", "SceneRouter", "SceneRouterConfig", "router_loss"]


@dataclass(frozen=True)
class SceneRouterConfig:
    """Configuration of :class:`SceneRouter`.

    Attributes:
        in_channels: bottleneck channels.
        n_scene_types: number of heads to route between (>= 2).
        hidden: width of the conv and the MLP.
    """

    in_channels: int = 512
    n_scene_types: int = 2
    hidden: int = 128

    def __post_init__(self) -> None:
        if not isinstance(self.in_channels, int) or self.in_channels < 1:
            raise ValueError(f"SceneRouterConfig.in_channels must be a positive integer, got {self.in_channels!r}")
        if not isinstance(self.n_scene_types, int) or self.n_scene_types < 2:
            raise ValueError(f"SceneRouterConfig.n_scene_types must be an integer >= 2, got {self.n_scene_types!r}")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"SceneRouterConfig.hidden must be a positive integer, got {self.hidden!r}")


class SceneRouter(nn.Module):
    """Bottleneck features -> scene-type logits.

    Shapes:
        ``forward((B, in_channels, h, w)) -> (B, n_scene_types)`` logits.
    """

    def __init__(self, config: SceneRouterConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or SceneRouterConfig()
        self.conv = nn.Sequential(nn.Conv2d(c.in_channels, c.hidden, 1), nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.ReLU(inplace=True), nn.Linear(c.hidden, c.n_scene_types))

    def forward(self, bottleneck: Tensor) -> Tensor:
        check_shape(bottleneck, ("B", self.config.in_channels, "h", "w"), "SceneRouter bottleneck")
        return self.mlp(self.conv(bottleneck).mean(dim=(2, 3)))


def router_loss(logits: Tensor, scene: Tensor) -> Tensor:
    """Cross-entropy of the router's logits (B, N) against scene-type indices (B,) int64; scalar."""
    check_shape(logits, ("B", "N"), "router_loss logits")
    check_shape(scene, (logits.shape[0],), "router_loss scene")
    return F.cross_entropy(logits, scene)


@dataclass(frozen=True)
class RoutedDepth:
    """Output of :class:`RoutedMetricHeads`.

    Attributes:
        depth_m: (B, 1, H, W) metres, from the selected head (or the mixture, soft routing).
        bin_centers_m: (B, K, H, W) metres, selected the same way (every head must have the same K).
        logits: (B, N) router logits.
        weights: (B, N) weight of each head in the output (one-hot when hard or teacher-forced).
    """

    depth_m: Tensor
    bin_centers_m: Tensor
    logits: Tensor
    weights: Tensor


class RoutedMetricHeads(nn.Module):
    """A :class:`SceneRouter` and one :class:`MetricBinsHead` per scene type.

    Routing (see the module docstring): ``scene`` given -> teacher-forced one-hot; else training
    mode -> softmax of the logits (soft); else (eval, export) -> one-hot of the argmax (hard).

    Shapes:
        ``forward(bottleneck, levels, last, scene=None) -> RoutedDepth``; inputs as
        :meth:`MetricBinsHead.forward`, ``scene`` (B,) int64 in ``[0, N)``.
    """

    def __init__(self, head_configs: Sequence[MetricBinsConfig], router_hidden: int = 128) -> None:
        super().__init__()
        configs = tuple(head_configs)
        if len(configs) < 2:
            raise ValueError(f"RoutedMetricHeads needs at least 2 head configs, got {len(configs)}")
        first = configs[0]
        for i, c in enumerate(configs[1:], start=1):
            same = (c.bottleneck_channels, c.level_channels, c.last_channels, c.n_bins) == (
                first.bottleneck_channels, first.level_channels, first.last_channels, first.n_bins
            )
            if not same:
                raise ValueError(
                    f"RoutedMetricHeads head {i}: bottleneck_channels, level_channels, last_channels and n_bins must "
                    f"match head 0's ({first.bottleneck_channels}, {first.level_channels}, {first.last_channels}, {first.n_bins})"
                )
        self.router = SceneRouter(SceneRouterConfig(first.bottleneck_channels, len(configs), router_hidden))
        self.heads = nn.ModuleList(MetricBinsHead(c) for c in configs)

    def route_weights(self, logits: Tensor, scene: Tensor | None) -> Tensor:
        """(B, N) weight of each head: teacher-forced, soft or hard (see the class docstring)."""
        n = logits.shape[1]
        if scene is not None:
            check_shape(scene, (logits.shape[0],), "RoutedMetricHeads scene")
            if scene.dtype != torch.int64:
                raise ValueError(f"RoutedMetricHeads scene must be int64 indices, got {scene.dtype}")
            return F.one_hot(scene, n).to(logits.dtype)
        if self.training:
            return torch.softmax(logits, dim=1)
        return F.one_hot(logits.argmax(dim=1), n).to(logits.dtype)

    def forward(self, bottleneck: Tensor, levels: Sequence[Tensor], last: Tensor, scene: Tensor | None = None) -> RoutedDepth:
        logits = self.router(bottleneck)
        weights = self.route_weights(logits, scene)  # (B, N)
        outs = [head(bottleneck, levels, last) for head in self.heads]
        w = weights[:, :, None, None, None]  # (B, N, 1, 1, 1)
        depth = (w * torch.stack([o.depth_m for o in outs], dim=1)).sum(dim=1)
        centers = (w * torch.stack([o.bin_centers_m for o in outs], dim=1)).sum(dim=1)
        return RoutedDepth(depth_m=depth, bin_centers_m=centers, logits=logits, weights=weights)
