"""The networks' input normalisation: RGB in [0, 1] -> ``(x - mean) / std`` per channel.

Training samples carry images in [0, 1] (what the photometric losses compare); the depth and
pose networks take them normalised with the ModelSpec's ``mean`` / ``std``, as the exported
model takes its input from :func:`depth_ros.core.preprocess.normalize` at run time. This is the
one place training applies that normalisation, right before a network.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["ImageNormalization", "check_mean_std", "normalize_image"]


def check_mean_std(mean: Sequence[float], std: Sequence[float]) -> None:
    """Raise ValueError unless ``mean`` and ``std`` are 3 finite numbers each, ``std`` > 0."""
    if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise ValueError(f"mean and std must be 3 finite numbers each, std > 0, got mean {tuple(mean)}, std {tuple(std)}")


def normalize_image(image01: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(image01 - mean) / std`` per channel.

    Args:
        image01: (..., 3, H, W) RGB in [0, 1].
        mean, std: per-channel mean and std of [0, 1] pixels (the ModelSpec's), std > 0.

    Returns:
        (..., 3, H, W) the network input, same dtype and device.
    """
    check_mean_std(mean, std)
    m = torch.tensor(mean, dtype=image01.dtype, device=image01.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=image01.dtype, device=image01.device).view(3, 1, 1)
    return _normalize(image01, m, s)


def _normalize(image01: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    if image01.dim() < 3 or image01.shape[-3] != 3:
        raise ValueError(f"expected images (..., 3, H, W) in [0, 1], got shape {tuple(image01.shape)}")
    return (image01 - mean.to(image01.dtype)) / std.to(image01.dtype)


class ImageNormalization(torch.nn.Module):
    """:func:`normalize_image` as a module (mean / std as non-persistent buffers: they follow
    the module's device and are not saved in checkpoints, the hyper-parameters hold them).

    Shapes: ``forward(image01: (..., 3, H, W) in [0, 1]) -> (..., 3, H, W)`` normalised.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        check_mean_std(mean, std)
        self.register_buffer("mean", torch.tensor(tuple(mean), dtype=torch.float32).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std), dtype=torch.float32).view(3, 1, 1), persistent=False)

    def forward(self, image01: Tensor) -> Tensor:
        return _normalize(image01, self.mean, self.std)
