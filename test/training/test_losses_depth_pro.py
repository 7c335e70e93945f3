"""Depth Pro losses: canonical inverse depth, trimmed / normalised MAE, MAGE / MALE / MSGE, FOV loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from depth_ros_training.losses.depth_pro import (
    BLUR_1D,
    canonical_from_inverse_depth,
    canonical_inverse_depth,
    depth_from_canonical,
    derivative_losses,
    fov_loss,
    multiscale_derivative_loss,
    normalized_mae,
    pyramid_level,
    ssi_gradient_loss,
    trimmed_mae,
)

from loss_checks import assert_unlabelled_image_changes_nothing


@pytest.fixture()
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _step(h: int, w: int, k: int) -> torch.Tensor:
    """(1, 1, h, w): 0 left of column k, 1 from column k on (a vertical step edge)."""
    x = torch.zeros(1, 1, h, w, dtype=torch.float64)
    x[..., k:] = 1.0
    return x


# -- canonical inverse depth -----------------------------------------------------------------------------------

def test_canonical_round_trip_across_two_focal_lengths(gen):
    depth = 0.5 + 20 * torch.rand(2, 1, 6, 8, generator=gen, dtype=torch.float64)
    f = torch.tensor([300.0, 900.0], dtype=torch.float64)
    c = canonical_inverse_depth(depth, f, 640.0)
    torch.testing.assert_close(depth_from_canonical(c, f, 640.0), depth)
    # the same depth seen with a 3x longer focal length has a 3x larger canonical inverse depth
    torch.testing.assert_close(c[1] / c[0], 3.0 * depth[0] / depth[1])
    # hand value: f = 300 px, W = 640 px, 2 m -> 300 / 1280
    one = canonical_inverse_depth(torch.full((1, 1, 1, 1), 2.0), 300.0, 640.0)
    assert one.item() == pytest.approx(300.0 / 1280.0)


def test_canonical_from_a_metric_label_target(gen):
    depth = 0.5 + 10 * torch.rand(2, 1, 4, 6, generator=gen, dtype=torch.float64)
    f = torch.tensor([400.0, 700.0], dtype=torch.float64)
    w = torch.tensor([640.0, 800.0], dtype=torch.float64)
    torch.testing.assert_close(canonical_from_inverse_depth(1.0 / depth, f, w), canonical_inverse_depth(depth, f, w))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        canonical_from_inverse_depth(1.0 / depth, torch.ones(3), 640.0)


def test_canonical_is_unchanged_by_resizing_the_image(gen):
    depth = 1.0 + torch.rand(1, 1, 4, 4, generator=gen)
    torch.testing.assert_close(canonical_inverse_depth(depth, 500.0, 640.0), canonical_inverse_depth(depth, 250.0, 320.0))


def test_depth_from_canonical_matches_ml_depth_pro_infer(gen):
    """Restates, in our own words, apple/ml-depth-pro ``src/depth_pro/depth_pro.py`` ``DepthPro.infer``:
    ``f_px = 0.5 W / tan(0.5 deg2rad(fov))``, ``inverse_depth = C * (W / f_px)``,
    ``depth = 1 / clamp(inverse_depth, 1e-4, 1e4)``; inside the clamp range both agree."""
    c = 0.05 + torch.rand(1, 1, 5, 7, generator=gen, dtype=torch.float64)
    width, fov_deg = 1536.0, torch.tensor(63.0, dtype=torch.float64)
    f_px = 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov_deg))
    ref = 1.0 / torch.clamp(c * (width / f_px), min=1e-4, max=1e4)
    torch.testing.assert_close(depth_from_canonical(c, f_px, width), ref)


def test_invalid_depth_gives_zero_canonical_and_nan_back():
    depth = torch.tensor([[[[2.0, 0.0, float("nan"), -1.0]]]])
    c = canonical_inverse_depth(depth, 100.0, 200.0)
    assert c.tolist() == [[[[0.25, 0.0, 0.0, 0.0]]]]
    back = depth_from_canonical(c, 100.0, 200.0)
    assert back[0, 0, 0, 0].item() == 2.0 and torch.isnan(back[0, 0, 0, 1:]).all()


# -- MAE -------------------------------------------------------------------------------------------------------

def test_trimmed_mae_drops_exactly_the_top_20_percent_per_image():
    target = torch.zeros(2, 1, 1, 10, dtype=torch.float64)
    errors = torch.linspace(0.1, 1.0, 10, dtype=torch.float64)
    prediction = target + errors.flip(0).view(1, 1, 1, 10)  # unsorted order in the image
    # image 0 real (discard 0.2: mean of 0.1 .. 0.8 = 0.45), image 1 synthetic (no discard: 0.55)
    out = trimmed_mae(prediction, target, discard_fraction=torch.tensor([0.2, 0.0]))
    assert out.item() == pytest.approx((0.45 + 0.55) / 2)
    assert trimmed_mae(prediction[:1], target[:1]).item() == pytest.approx(0.45)
    # the sign of the error does not matter, invalid pixels are neither kept nor counted
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[..., 9] = False  # removes error 0.1 (prediction is flipped)
    # 9 valid, floor(1.8) = 1 dropped (1.0): mean of 0.2 .. 0.9 = 0.55
    assert trimmed_mae(-prediction[:1], target[:1], valid[:1]).item() == pytest.approx(0.55)


def test_normalized_mae_is_scale_and_shift_invariant(gen):
    target = 0.1 + torch.rand(2, 1, 6, 8, generator=gen, dtype=torch.float64)
    assert normalized_mae(5.0 * target + 1.0, target).item() == pytest.approx(0.0, abs=1e-12)
    pred = target + 0.2 * torch.rand(2, 1, 6, 8, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(normalized_mae(3.0 * pred - 2.0, target), normalized_mae(pred, target))
    assert normalized_mae(pred, target).item() > 1e-3


# -- derivative losses -----------------------------------------------------------------------------------------

def test_derivative_losses_zero_for_identical_maps(gen):
    c = torch.rand(2, 1, 40, 48, generator=gen, dtype=torch.float64)
    out = derivative_losses(c, c.clone())
    assert out.mage.item() == 0.0 and out.male.item() == 0.0 and out.msge.item() == 0.0
    # a constant offset has no derivative either
    assert multiscale_derivative_loss(c + 0.3, c).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("operator,p,expected", [("scharr", 1, 1.0), ("scharr", 2, 0.5), ("laplace", 1, 2.0)])
def test_derivative_losses_on_a_step_edge_by_hand(operator, p, expected):
    # H x W = 6 x 10 with a unit step between columns 4 and 5, one scale. Valid convolution grid: 4 x 8.
    # Scharr x = 0.5 at columns 4 and 5 (input), 0 elsewhere: MAGE = 2 * 4 * 0.5 / 32 = 1/8,
    # MSGE = 2 * 4 * 0.25 / 32 = 1/16. Laplace = +1 at column 4, -1 at column 5: MALE = 2 * 4 / 32 = 1/4.
    pred = _step(6, 10, 5)
    out = multiscale_derivative_loss(pred, torch.zeros_like(pred), operator=operator, p=p, num_scales=1)
    assert out.item() == pytest.approx(expected / 8.0)


def _ref_blur_down(x: torch.Tensor) -> torch.Tensor:
    """Fully valid map: 5x5 binomial blur renormalised at the border, then rows/columns 0, 2, 4, ..."""
    k = (BLUR_1D[:, None] * BLUR_1D[None, :]).double().view(1, 1, 5, 5)
    num = F.conv2d(x, k, padding=2)
    den = F.conv2d(torch.ones_like(x), k, padding=2)
    return (num / den)[..., ::2, ::2]


def _ref_loss(c: torch.Tensor, c_hat: torch.Tensor, operator: str, p: int, scales: int) -> torch.Tensor:
    """The paper's L_{*,p,M} (arXiv 2410.02073 section 3.2) written out directly: pyramids of each map
    separately, derivatives by explicit shifted slices, 1/N_j per level, 1/M over levels; one image."""
    total = 0.0
    for j in range(scales):
        if j:
            c, c_hat = _ref_blur_down(c), _ref_blur_down(c_hat)

        def deriv(x):
            x = x[0, 0]
            if operator == "laplace":
                return [x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1]]
            dx = x[:, 2:] - x[:, :-2]
            dy = x[2:, :] - x[:-2, :]
            gx = (3 * dx[:-2] + 10 * dx[1:-1] + 3 * dx[2:]) / 32
            gy = (3 * dy[:, :-2] + 10 * dy[:, 1:-1] + 3 * dy[:, 2:]) / 32
            return [gx, gy]

        errs = [(a - b).abs() ** p for a, b in zip(deriv(c), deriv(c_hat))]
        total = total + sum(errs).mean()
    return total / scales


@pytest.mark.parametrize("operator,p", [("scharr", 1), ("laplace", 1), ("scharr", 2)])
def test_multiscale_loss_matches_the_papers_formula(gen, operator, p):
    c = torch.rand(1, 1, 70, 90, generator=gen, dtype=torch.float64)
    c_hat = torch.rand(1, 1, 70, 90, generator=gen, dtype=torch.float64)
    ours = multiscale_derivative_loss(c_hat, c, operator=operator, p=p, num_scales=6)
    torch.testing.assert_close(ours, _ref_loss(c, c_hat, operator, p, 6), rtol=1e-10, atol=1e-12)


def test_derivative_losses_share_one_pyramid_with_the_same_values(gen):
    c = torch.rand(2, 1, 40, 52, generator=gen, dtype=torch.float64)
    c_hat = torch.rand(2, 1, 40, 52, generator=gen, dtype=torch.float64)
    valid = torch.rand(2, 1, 40, 52, generator=gen) > 0.02
    out = derivative_losses(c_hat, c, valid)
    torch.testing.assert_close(out.mage, multiscale_derivative_loss(c_hat, c, valid, "scharr", 1))
    torch.testing.assert_close(out.male, multiscale_derivative_loss(c_hat, c, valid, "laplace", 1))
    torch.testing.assert_close(out.msge, multiscale_derivative_loss(c_hat, c, valid, "scharr", 2))
    assert out.mage.item() > 0 and out.male.item() > 0 and out.msge.item() > 0


def test_pyramid_level_halves_and_keeps_holes_out(gen):
    x = torch.rand(1, 1, 9, 12, generator=gen, dtype=torch.float64)
    valid = torch.ones_like(x, dtype=torch.bool)
    valid[0, 0, 4, 6] = False
    x_hole = x.clone()
    x_hole[0, 0, 4, 6] = 1e6  # would dominate any blur it leaked into
    coarse, coarse_valid = pyramid_level(torch.where(valid, x_hole, torch.zeros_like(x)), valid)
    assert coarse.shape[-2:] == (5, 6)
    # the hole lies under the 5x5 windows of coarse pixels (1..3, 2..4) only
    expected_invalid = torch.zeros(5, 6, dtype=torch.bool)
    expected_invalid[1:4, 2:5] = True
    assert torch.equal(~coarse_valid[0, 0], expected_invalid)
    assert coarse[coarse_valid].max().item() < 1.0
    # a constant map stays constant, borders included (renormalised kernel)
    flat, flat_valid = pyramid_level(torch.full((1, 1, 8, 8), 2.5), torch.ones(1, 1, 8, 8, dtype=torch.bool))
    assert flat_valid.all() and torch.allclose(flat, torch.full_like(flat, 2.5))


def test_derivative_loss_ignores_pixels_next_to_holes():
    pred = _step(6, 10, 5)
    valid = torch.ones_like(pred, dtype=torch.bool)
    valid[..., 4] = False  # a hole column at the edge: every window touching it is dropped
    target = torch.zeros_like(pred)
    target[..., 4] = float("nan")
    out = multiscale_derivative_loss(pred, target, valid, operator="scharr", num_scales=1)
    # remaining windows centred on columns 1, 2 (left) and 6, 7, 8 (right): none straddles the step
    assert out.item() == 0.0


def test_ssi_gradient_loss_is_affine_invariant_and_sees_edges(gen):
    target = _step(16, 20, 10) + 0.1 * torch.rand(1, 1, 16, 20, generator=gen, dtype=torch.float64)
    assert ssi_gradient_loss(4.0 * target + 3.0, target).item() == pytest.approx(0.0, abs=1e-12)
    blurred = 0.5 * (target + target.roll(1, dims=-1))
    base = ssi_gradient_loss(blurred, target)
    assert base.item() > 1e-3
    torch.testing.assert_close(ssi_gradient_loss(0.3 * blurred - 1.0, target), base)


def test_gradcheck_float64(gen):
    c = torch.rand(1, 1, 8, 10, generator=gen, dtype=torch.float64)
    x = (c + 0.3 * torch.rand(1, 1, 8, 10, generator=gen, dtype=torch.float64)).requires_grad_(True)
    valid = torch.rand(1, 1, 8, 10, generator=gen) > 0.1
    # fast mode (Jacobian checked along random directions): the full check of the pyramid takes
    # ~15 s per call on a busy 2-core machine
    assert torch.autograd.gradcheck(lambda y: multiscale_derivative_loss(y, c, valid, "scharr", 2, 2), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda y: multiscale_derivative_loss(y, c, None, "laplace", 1, 2), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(lambda y: trimmed_mae(y, c, valid), (x,))
    assert torch.autograd.gradcheck(lambda y: normalized_mae(y, c, valid), (x,))
    fov = torch.tensor([50.0, 90.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: fov_loss(y, torch.tensor([60.0, 80.0], dtype=torch.float64)), (fov,))


def test_fov_loss_hand_computed_and_shape_errors():
    assert fov_loss(torch.tensor([60.0, 80.0]), torch.tensor([63.0, 76.0])).item() == pytest.approx((9 + 16) / 2)
    with pytest.raises(ValueError, match=r"\(2, 1\)"):
        fov_loss(torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"\(1, 2, 4, 4\)"):
        trimmed_mae(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="operator"):
        multiscale_derivative_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), operator="sobel")
    with pytest.raises(ValueError, match=r"discard_fraction"):
        trimmed_mae(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), discard_fraction=1.0)
    assert math.isfinite(fov_loss(torch.tensor([1.0]), torch.tensor([1.0])).item())


@pytest.mark.parametrize(
    "loss",
    [
        lambda p, t: trimmed_mae(p, t),
        lambda p, t: normalized_mae(p, t),
        lambda p, t: ssi_gradient_loss(p, t),
        lambda p, t: derivative_losses(p, t).mage,
        lambda p, t: derivative_losses(p, t).male,
        lambda p, t: derivative_losses(p, t).msge,
    ],
)
def test_an_image_without_labels_changes_nothing(gen, loss):
    """A batch image whose label is all NaN adds no value and no gradient (and no NaN)."""
    assert_unlabelled_image_changes_nothing(loss, gen)
