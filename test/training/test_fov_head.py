"""Focal-length head: FOV <-> focal conversion, shapes, frozen features, it learns the FOV."""
from __future__ import annotations

import math

import pytest
import torch

from depth_ros_training.losses.depth_pro import fov_loss
from depth_ros_training.models.fov_head import FovHead, FovHeadConfig, focal_px_to_fov, fov_to_focal_px
from depth_ros_training.models.resnet_encoder import ResNetEncoder


def test_fov_to_focal_hand_values_and_round_trip():
    # 90 deg over 640 px: f = 320 / tan(45 deg) = 320 px; 60 deg: 320 / tan(30 deg) = 320 sqrt(3)
    f = fov_to_focal_px(torch.tensor([90.0, 60.0], dtype=torch.float64), 640.0)
    torch.testing.assert_close(f, torch.tensor([320.0, 320.0 * math.sqrt(3.0)], dtype=torch.float64))
    fov = torch.linspace(20.0, 150.0, 14, dtype=torch.float64)
    torch.testing.assert_close(focal_px_to_fov(fov_to_focal_px(fov, 1536.0), 1536.0), fov)


def test_conversion_matches_ml_depth_pro_infer():
    """Restates apple/ml-depth-pro ``src/depth_pro/depth_pro.py`` ``DepthPro.infer``'s focal length from
    the FOV head's degrees (our reading): ``0.5 * W / tan(0.5 * deg2rad(fov_deg))``, written with numpy."""
    import numpy as np

    fov = np.array([48.0, 75.0, 110.0])
    ref = 0.5 * 1280.0 / np.tan(0.5 * np.radians(fov))
    np.testing.assert_allclose(fov_to_focal_px(torch.tensor(fov), 1280.0).numpy(), ref, rtol=1e-12)


def test_config_is_validated():
    with pytest.raises(ValueError, match="init_fov_deg"):
        FovHeadConfig(init_fov_deg=180.0)
    with pytest.raises(ValueError, match="in_channels"):
        FovHeadConfig(in_channels=0)


def test_head_on_the_encoder_bottleneck_starts_at_the_prior_and_keeps_the_encoder_frozen():
    torch.manual_seed(0)
    encoder = ResNetEncoder(18)
    head = FovHead(FovHeadConfig(in_channels=encoder.num_ch_enc[-1], init_fov_deg=65.0))
    features = encoder(torch.rand(2, 3, 64, 96))[-1]  # (2, 512, 2, 3)
    fov = head(features)
    assert fov.shape == (2,)
    assert torch.allclose(fov, torch.full((2,), 65.0), atol=0.5)
    fov_loss(fov, torch.tensor([50.0, 90.0])).backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert head.fc.bias.grad is not None and head.fc.bias.grad.abs().item() > 0
    f = head.focal_px(features, 640.0)
    torch.testing.assert_close(f, fov_to_focal_px(fov.detach(), 640.0), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match=r"\(2, 256, 2, 3\)"):
        head(torch.zeros(2, 256, 2, 3))


def test_head_learns_a_fov_encoded_in_its_features():
    """Features whose mean carries the FOV (a stand-in for a trained encoder): 100 Adam steps bring
    the L2 error far under the spread of the FOVs (std ~17 deg, i.e. ~300 deg^2 at the start)."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)  # the head's initial weights
    head = FovHead(FovHeadConfig(in_channels=8, hidden_channels=16, init_fov_deg=70.0))
    fov = 50.0 + 60.0 * torch.rand(32, generator=gen)
    features = ((fov - 80.0) / 30.0).view(-1, 1, 1, 1) * torch.ones(32, 8, 3, 4) + 0.05 * torch.randn(32, 8, 3, 4, generator=gen)
    opt = torch.optim.Adam(head.parameters(), lr=3e-2)
    start = fov_loss(head(features), fov).item()
    for _ in range(100):
        opt.zero_grad()
        loss = fov_loss(head(features), fov)
        loss.backward()
        opt.step()
    end = fov_loss(head(features), fov).item()
    assert start > 250.0
    assert end < 4.0  # RMS error below 2 deg
