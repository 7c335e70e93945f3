"""PackNet velocity supervision: metric scale from the distance travelled in the odometry."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["velocity_loss"]


def velocity_loss(translation: Tensor, distance_m: Tensor) -> Tensor:
    """``mean_b | ||t_b|| - d_b |``.

    Args:
        translation: (B, 3) PoseNet translation between two frames (either direction: only
            the norm is used), in the units the depth is trained in.
        distance_m: (B,) distance travelled by the *camera* between the two frames' stamps,
            metres, from odometry (the camera's, i.e. the base path moved into the camera
            frame when the camera is mounted off the base origin).

    Returns:
        scalar tensor, metres.
    """
    if translation.ndim != 2 or translation.shape[1] != 3:
        raise ValueError(f"translation must be (B, 3), got {tuple(translation.shape)}")
    if distance_m.shape != translation.shape[:1]:
        raise ValueError(f"distance_m must be (B,) = ({translation.shape[0]},), got {tuple(distance_m.shape)}")
    norm = torch.linalg.vector_norm(translation, dim=1)
    return (norm - distance_m.to(translation.dtype)).abs().mean()
