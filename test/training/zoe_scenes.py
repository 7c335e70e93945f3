"""Synthetic stage-2 inputs for the metric bins head (tests and bench/bench_zoe_head.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["metric_scenes"]


def metric_scenes(n: int, gen: torch.Generator, height: int = 8, width: int = 12) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
    """Synthetic stage-2 inputs: ``last`` carries the relative structure (log of depth over the
    image's scale, planes tilted at random), the bottleneck carries the image's metric scale
    (log of it, 1 .. 7.4 m, with noise), the levels the relative structure resized. Target: the
    metric depth ``scale * exp(log_rel)``, metres."""
    scale = torch.exp(torch.empty(n).uniform_(0.0, 2.0, generator=gen))
    yy = torch.linspace(0, 1, height).view(1, height, 1)
    xx = torch.linspace(0, 1, width).view(1, 1, width)
    a, b = torch.rand(n, 1, 1, generator=gen), 0.6 * torch.rand(n, 1, 1, generator=gen)
    log_rel = (a * (yy - 0.5) + b * (xx - 0.5)).unsqueeze(1)  # (n, 1, H, W)
    depth = scale.view(n, 1, 1, 1) * torch.exp(log_rel)
    last = torch.cat([log_rel, 0.1 * torch.randn(n, 4, height, width, generator=gen)], dim=1)
    bottleneck = torch.log(scale).view(n, 1, 1, 1).expand(n, 12, 1, 2) + 0.05 * torch.randn(n, 12, 1, 2, generator=gen)
    levels = [
        F.interpolate(log_rel, (2, 3)).expand(n, 10, 2, 3).contiguous(),
        F.interpolate(log_rel, (4, 6)).expand(n, 8, 4, 6).contiguous(),
    ]
    return bottleneck, levels, last, depth
