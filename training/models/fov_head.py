"""Focal-length head: horizontal field of view from the depth encoder's bottleneck features.

Depth Pro estimates the field of view with a small convolutional head (apple/ml-depth-pro,
``network/fov.py``: three stride-2 3x3 convolutions with ReLU and a final 6x6 convolution to one
value, the FOV in degrees) fed with the depth decoder's low-resolution features, *detached*, plus a
separate ViT image encoder of its own; it is trained after the depth network with an L2 loss.

Ours, in the same spirit, differs in two ways:

* it sits on the *shared* depth encoder's bottleneck (``f4`` of
  :class:`~depth_ros_training.models.resnet_encoder.ResNetEncoder`, ``H/32 x W/32``); there is no
  separate FOV encoder (a second backbone would double the robot's inference cost for a value that
  is only needed when CameraInfo is missing);
* the network input size is not fixed, so instead of a kernel as large as the last feature map the
  head ends with a global average pool and a linear layer.

The features are detached by default (``detach_features``), so training the head never changes the
depth network ("frozen depth features"); the output is the horizontal FOV in degrees, the unit of
ml-depth-pro's head, converted to a focal length by :func:`fov_to_focal_px`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["FovHead", "FovHeadConfig", "focal_px_to_fov", "fov_to_focal_px"]


def fov_to_focal_px(fov_deg: Tensor, width_px: float | Tensor) -> Tensor:
    """Horizontal field of view -> focal length: ``f_px = 0.5 * W / tan(0.5 * fov)``.

    The formula ml-depth-pro's ``DepthPro.infer`` uses. No clamping: ``fov_deg`` must be in
    (0, 180) for a positive, finite focal length.

    Args:
        fov_deg: (B,) or any shape, degrees.
        width_px: image width in pixels, scalar or broadcastable to ``fov_deg``.

    Returns:
        focal length in pixels, the shape of ``fov_deg``.
    """
    return 0.5 * width_px / torch.tan(0.5 * torch.deg2rad(fov_deg))


def focal_px_to_fov(f_px: Tensor, width_px: float | Tensor) -> Tensor:
    """Focal length -> horizontal field of view in degrees: ``2 * atan(W / (2 f_px))``.

    Args:
        f_px: focal length in pixels (> 0), any shape.
        width_px: image width in pixels, scalar or broadcastable.

    Returns:
        field of view in degrees, in (0, 180).
    """
    return torch.rad2deg(2.0 * torch.atan(0.5 * width_px / f_px))


@dataclass(frozen=True)
class FovHeadConfig:
    """Configuration of :class:`FovHead`.

    Attributes:
        in_channels: channels of the bottleneck features (512 for ResNet-18/34, 2048 for ResNet-50).
        hidden_channels: channels of the first convolution (the second has half).
        init_fov_deg: initial output (bias of the last layer), degrees; a typical robot camera's
            horizontal FOV, so training starts near the data instead of at 0 deg.
        detach_features: stop gradients into the encoder (train on frozen depth features).
    """

    in_channels: int = 512
    hidden_channels: int = 128
    init_fov_deg: float = 70.0
    detach_features: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.in_channels, int) or self.in_channels < 1:
            raise ValueError(f"FovHeadConfig.in_channels must be a positive integer, got {self.in_channels!r}")
        if not isinstance(self.hidden_channels, int) or self.hidden_channels < 2:
            raise ValueError(f"FovHeadConfig.hidden_channels must be an integer >= 2, got {self.hidden_channels!r}")
        if not (isinstance(self.init_fov_deg, (int, float)) and 0.0 < self.init_fov_deg < 180.0):
            raise ValueError(f"FovHeadConfig.init_fov_deg must be in (0, 180) degrees, got {self.init_fov_deg!r}")


class FovHead(nn.Module):
    """Bottleneck features -> horizontal field of view (degrees).

    Layers: 3x3 conv (stride 1) + ReLU, 3x3 conv (stride 2, half the channels) + ReLU, global
    average pool, linear to one value.

    Shapes:
        ``forward(features: (B, in_channels, h, w)) -> (B,)`` degrees, with ``h, w >= 1``
        (``h = H/32``, ``w = W/32`` of the network input).
    """

    def __init__(self, config: FovHeadConfig | None = None) -> None:
        super().__init__()
        self.config = config or FovHeadConfig()
        c, hid = self.config.in_channels, self.config.hidden_channels
        self.convs = nn.Sequential(
            nn.Conv2d(c, hid, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hid, hid // 2, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(hid // 2, 1)
        # small last-layer weights: the first predictions stay near init_fov_deg
        nn.init.normal_(self.fc.weight, std=1e-3)
        nn.init.constant_(self.fc.bias, float(self.config.init_fov_deg))

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim != 4 or features.shape[1] != self.config.in_channels:
            raise ValueError(f"FovHead: expected features (B, {self.config.in_channels}, h, w), got {tuple(features.shape)}")
        if self.config.detach_features:
            features = features.detach()
        x = self.convs(features).mean(dim=(2, 3))  # (B, hid // 2)
        return self.fc(x).squeeze(1)

    def focal_px(self, features: Tensor, width_px: float) -> Tensor:
        """Predicted focal length in pixels for an image ``width_px`` wide, (B,)."""
        if not (isinstance(width_px, (int, float)) and math.isfinite(width_px) and width_px > 0):
            raise ValueError(f"width_px must be a positive number, got {width_px!r}")
        return fov_to_focal_px(self.forward(features), width_px)
