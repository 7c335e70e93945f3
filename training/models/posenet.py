"""PoseNet: relative camera motion between two frames, and the 6-vector -> matrix conversion.

Convention: ``PoseNet(tgt, src)`` returns ``T_src_tgt``: the transform that maps a point
expressed in the *target* camera's optical frame into the *source* camera's optical frame,
``p_src = R p_tgt + t`` (ModelSpec ``pose_convention = "T_src_tgt"``). This is the transform
:func:`depth_ros_training.losses.inverse_warp` needs to sample the source image at the
target's pixels. Translation is in the units of the depth the losses are computed with
(metres once velocity supervision pins the scale).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from depth_ros_training.models.light_dispnet import ENC_CHANNELS, check_image_batch, pyramid_encoder
from depth_ros_training.models.resnet_encoder import ResNetEncoder

__all__ = ["LightPoseNet", "PoseNet", "POSE_SCALE", "pose_vec_to_mat", "axis_angle_to_matrix"]

# The decoder output is multiplied by this, so that the randomly initialised network starts
# near the identity motion (monodepth2 / SC-Depth use the same factor).
POSE_SCALE = 0.01


def _pose_head(width: int) -> nn.Sequential:
    """PoseNet's head after the squeeze: two 3x3 convolutions of ``width`` channels, then 6 outputs
    per position (averaged over positions by the caller)."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 6, 1),
    )


class PoseNet(nn.Module):
    """Two images -> 6-DoF ``T_src_tgt`` as axis-angle (rad) + translation.

    Args:
        num_layers: ResNet depth of the encoder (18 or 50); the encoder takes 6 channels.
        weights_path: optional local 3-channel ResNet ``state_dict``; ``conv1`` is repeated
            over the two frames and halved (see :meth:`ResNetEncoder.load_weights`).

    Shapes:
        ``forward(tgt: (B, 3, H, W), src: (B, 3, H, W))`` (both normalised like DispNet's
        input) -> ``(B, 6)``: ``[rx, ry, rz, tx, ty, tz]``, rotation vector in radians then
        translation. The encoder sees ``cat([tgt, src], dim=1)``, the channel order of the
        runtime's ``preprocess_pair`` (target then source).
    """

    def __init__(self, num_layers: int = 18, weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(num_layers, in_channels=6, weights_path=weights_path)
        c = self.encoder.num_ch_enc[-1]
        self.squeeze = nn.Conv2d(c, 256, 1)
        self.decoder = _pose_head(256)

    def forward(self, tgt: Tensor, src: Tensor) -> Tensor:
        if tgt.ndim != 4 or tgt.shape[1] != 3 or tgt.shape != src.shape:
            raise ValueError(
                f"PoseNet expects tgt and src of the same shape (B, 3, H, W), got {tuple(tgt.shape)} and {tuple(src.shape)}"
            )
        feature = self.encoder(torch.cat([tgt, src], dim=1))[-1]
        out = self.decoder(self.squeeze(feature))  # (B, 6, h, w)
        return POSE_SCALE * out.mean(dim=(2, 3))


class LightPoseNet(nn.Module):
    """PoseNet for real time on a CPU: the light depth network's pyramid encoder
    (:func:`~depth_ros_training.models.light_dispnet.pyramid_encoder`, six input channels) and
    PoseNet's head, narrower (128 channels instead of 256).

    Same interface and convention as :class:`PoseNet` (``forward(tgt, src)`` -> ``(B, 6)``
    ``T_src_tgt``, the output scaled by :data:`POSE_SCALE`); H and W multiples of 32. No ResNet
    weights to load. At 64x192, batch 4, one thread, a forward and backward pass took 17 ms against
    the ResNet-18 PoseNet's 165 ms.
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = pyramid_encoder(6)
        self.squeeze = nn.Conv2d(ENC_CHANNELS[-1], 128, 1)
        self.decoder = _pose_head(128)

    def forward(self, tgt: Tensor, src: Tensor) -> Tensor:
        if tgt.shape != src.shape:
            raise ValueError(f"LightPoseNet expects tgt and src of the same shape, got {tuple(tgt.shape)} and {tuple(src.shape)}")
        check_image_batch(tgt, "LightPoseNet", min_side=32)
        out = torch.cat([tgt, src], dim=1)
        for stage in self.encoder:
            out = stage(out)  # ends at 1/32
        out = self.decoder(self.squeeze(out))  # (B, 6, h, w)
        return POSE_SCALE * out.mean(dim=(2, 3))


def axis_angle_to_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues' formula: ``(B, 3)`` rotation vectors (rad) -> ``(B, 3, 3)`` rotation matrices.

    Smooth at zero: for tiny angles the second-order Taylor terms are used, so the gradient
    at the identity is finite (PoseNet starts there).
    """
    if rotvec.ndim != 2 or rotvec.shape[1] != 3:
        raise ValueError(f"expected rotation vectors (B, 3), got {tuple(rotvec.shape)}")
    theta2 = (rotvec * rotvec).sum(dim=1)  # (B,)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    # a = sin(t)/t, b = (1 - cos(t))/t^2, Taylor near 0
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    x, y, z = rotvec.unbind(dim=1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(skew)
    return eye + a.view(-1, 1, 1) * skew + b.view(-1, 1, 1) * (skew @ skew)


def pose_vec_to_mat(vec: Tensor) -> Tensor:
    """``(B, 6)`` ``[axis-angle (rad), translation]`` -> ``(B, 4, 4)`` homogeneous transform.

    The transform keeps the vector's convention (PoseNet: ``T_src_tgt``).
    """
    if vec.ndim != 2 or vec.shape[1] != 6:
        raise ValueError(f"expected pose vectors (B, 6), got {tuple(vec.shape)}")
    rot = axis_angle_to_matrix(vec[:, :3])
    top = torch.cat([rot, vec[:, 3:].unsqueeze(-1)], dim=2)  # (B, 3, 4)
    bottom = vec.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(vec.shape[0], 1, 4)
    return torch.cat([top, bottom], dim=1)
