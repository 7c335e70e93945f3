"""DispNet: ResNet encoder + U-Net decoder predicting multi-scale sigmoid disparity.

The decoder follows monodepth2's layout: at each of five stages a 3x3 conv (reflection
padding, ELU), nearest x2 upsampling, concatenation with the encoder feature of the same
resolution, and a second 3x3 conv; the four finest stages each emit a one-channel sigmoid
disparity map. The output parametrisation is the ModelSpec ``disparity_sigmoid`` kind, see
:func:`disp_to_depth`.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_ros_training.models.light_dispnet import check_image_batch
from depth_ros_training.models.resnet_encoder import ResNetEncoder

__all__ = ["ConvBlock", "DispNet", "conv3x3_reflect", "disp_to_depth", "NUM_CH_DEC"]

NUM_CH_DEC = (16, 32, 64, 128, 256)


def conv3x3_reflect(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 convolution with one pixel of reflection padding (no zero-padding border artefacts)."""
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3))


class ConvBlock(nn.Sequential):
    """``conv3x3_reflect`` followed by ELU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(conv3x3_reflect(in_ch, out_ch), nn.ELU(inplace=True))


def disp_to_depth(w: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """Sigmoid output -> depth in metres (ModelSpec ``disparity_sigmoid``).

    ``disp = 1/max_depth_m + (1/min_depth_m - 1/max_depth_m) * w``, ``depth_m = 1/disp``,
    so ``w = 0`` gives ``max_depth_m`` and ``w = 1`` gives ``min_depth_m``.

    Args:
        w: network output in [0, 1], any shape.
        min_depth_m: depth at ``w = 1``, metres (> 0).
        max_depth_m: depth at ``w = 0``, metres (> min_depth_m).

    Returns:
        depth in metres, same shape and dtype as ``w``.
    """
    if not 0.0 < min_depth_m < max_depth_m:
        raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")
    min_disp = 1.0 / max_depth_m
    max_disp = 1.0 / min_depth_m
    return 1.0 / (min_disp + (max_disp - min_disp) * w)


class DispNet(nn.Module):
    """Monocular depth network: image -> sigmoid disparity at ``num_scales`` scales.

    Args:
        num_layers: ResNet depth of the encoder (18 or 50).
        num_scales: number of output scales, 1..4.
        weights_path: optional local ResNet ``state_dict`` for the *encoder* (see
            :meth:`ResNetEncoder.load_weights`).

    Shapes:
        ``forward(x: (B, 3, H, W) float, normalised with the spec's mean/std)`` returns a
        list, finest first: ``[(B, 1, H, W), (B, 1, H/2, W/2), ...]`` of length ``num_scales``,
        values in (0, 1) (ModelSpec ``disparity_sigmoid``). Always a list, in train and eval
        mode alike; an export wrapper takes element 0. H and W must be multiples of 32 and at
        least 64 (the coarsest feature map, H/32 x W/32, is reflection-padded by one pixel).
    """

    def __init__(self, num_layers: int = 18, num_scales: int = 4, weights_path: str | Path | None = None) -> None:
        super().__init__()
        if not isinstance(num_scales, int) or not 1 <= num_scales <= 4:
            raise ValueError(f"num_scales must be an integer in 1..4, got {num_scales!r}")
        self.num_scales = num_scales
        self.encoder = ResNetEncoder(num_layers, in_channels=3, weights_path=weights_path)
        enc = self.encoder.num_ch_enc
        self.upconv0 = nn.ModuleList()  # stage i: before upsampling
        self.upconv1 = nn.ModuleList()  # stage i: after concatenating the skip feature
        for i in range(5):
            in_ch = enc[4] if i == 4 else NUM_CH_DEC[i + 1]
            skip_ch = enc[i - 1] if i > 0 else 0
            self.upconv0.append(ConvBlock(in_ch, NUM_CH_DEC[i]))
            self.upconv1.append(ConvBlock(NUM_CH_DEC[i] + skip_ch, NUM_CH_DEC[i]))
        self.dispconv = nn.ModuleList(conv3x3_reflect(NUM_CH_DEC[s], 1) for s in range(num_scales))

    def forward(self, x: Tensor) -> list[Tensor]:
        h, w = check_image_batch(x, "DispNet", min_side=64)
        features = self.encoder(x)
        out = features[4]
        disps: list[Tensor] = [x.new_empty(0)] * self.num_scales
        for i in range(4, -1, -1):
            out = F.interpolate(self.upconv0[i](out), scale_factor=2.0, mode="nearest")
            if i > 0:
                out = torch.cat([out, features[i - 1]], dim=1)
            out = self.upconv1[i](out)
            if i < self.num_scales:
                disps[i] = torch.sigmoid(self.dispconv[i](out))
        return disps
