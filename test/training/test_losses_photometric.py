"""SSIM dissimilarity, photometric error and edge-aware smoothness."""
from __future__ import annotations

import pytest
import torch

from depth_ros_training.losses import edge_aware_smoothness, photometric_error, ssim_dissimilarity
from depth_ros_training.losses.photometric import SSIM_C1


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_ssim_of_an_image_with_itself_is_zero() -> None:
    x = torch.rand(2, 3, 12, 16)
    assert torch.equal(ssim_dissimilarity(x, x), torch.zeros_like(x))


def test_ssim_is_symmetric_bounded_and_positive_for_different_images() -> None:
    x, y = torch.rand(2, 3, 12, 16), torch.rand(2, 3, 12, 16)
    d = ssim_dissimilarity(x, y)
    assert d.shape == x.shape
    torch.testing.assert_close(d, ssim_dissimilarity(y, x))
    assert float(d.min()) >= 0.0 and float(d.max()) <= 1.0
    assert float(d.mean()) > 0.1


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    a, b = 0.2, 0.7
    x = torch.full((1, 1, 5, 6), a, dtype=torch.float64)
    y = torch.full((1, 1, 5, 6), b, dtype=torch.float64)
    # zero variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) * C2 / C2
    expected = (1 - (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)) / 2
    torch.testing.assert_close(ssim_dissimilarity(x, y), torch.full_like(x, expected))


def test_ssim_window_is_local_3x3() -> None:
    # a difference at one pixel changes the 3x3 neighbourhood only
    x = torch.rand(1, 1, 9, 9, dtype=torch.float64)
    y = x.clone()
    y[0, 0, 4, 4] += 0.3
    changed = ssim_dissimilarity(x, y)[0, 0] > 0
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[3:6, 3:6] = True
    assert torch.equal(changed, expected)


def test_ssim_rejects_bad_arguments() -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="same shape"):
        ssim_dissimilarity(x, torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="odd"):
        ssim_dissimilarity(x, x, window=4)


def test_ssim_gradcheck_float64() -> None:
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ssim_dissimilarity, (x, y))


def test_photometric_error_mixes_l1_and_ssim() -> None:
    x, y = torch.rand(2, 3, 8, 10, dtype=torch.float64), torch.rand(2, 3, 8, 10, dtype=torch.float64)
    expected = (0.15 * (x - y).abs() + 0.85 * ssim_dissimilarity(x, y)).mean(dim=1, keepdim=True)
    torch.testing.assert_close(photometric_error(x, y), expected)
    torch.testing.assert_close(photometric_error(x, y, ssim_weight=0.0), (x - y).abs().mean(dim=1, keepdim=True))
    assert torch.equal(photometric_error(x, x), torch.zeros(2, 1, 8, 10, dtype=torch.float64))


def test_smoothness_zero_for_constant_disparity_and_hand_value_for_a_ramp() -> None:
    img = torch.zeros(1, 3, 4, 5, dtype=torch.float64)
    assert float(edge_aware_smoothness(torch.full((1, 1, 4, 5), 0.3, dtype=torch.float64), img)) == 0.0
    # disparity ramp along x: 1, 2, 3, 4, 5 -> mean 3, normalised steps 1/3, flat image
    disp = torch.arange(1, 6, dtype=torch.float64).expand(1, 1, 4, 5).clone()
    torch.testing.assert_close(edge_aware_smoothness(disp, img), torch.tensor(1 / 3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_smoothness_is_scale_invariant_and_discounted_at_image_edges() -> None:
    disp = torch.rand(1, 1, 6, 7, dtype=torch.float64) + 0.1
    flat = torch.zeros(1, 3, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(edge_aware_smoothness(3 * disp, flat), edge_aware_smoothness(disp, flat))
    textured = torch.rand(1, 3, 6, 7, dtype=torch.float64)
    assert float(edge_aware_smoothness(disp, textured)) < float(edge_aware_smoothness(disp, flat))


def test_smoothness_gradcheck_float64() -> None:
    disp = (torch.rand(1, 1, 5, 6, dtype=torch.float64) + 0.1).requires_grad_()
    img = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda d: edge_aware_smoothness(d, img), (disp,))
