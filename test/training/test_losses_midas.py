"""MiDaS losses: alignment, SSI MSE, trimmed MAE, gradient matching; checked against the authors' code."""
from __future__ import annotations

import pytest
import torch

from depth_ros_training.losses.midas import (
    align_scale_shift,
    gradient_matching_loss,
    normalize_median_mad,
    ssi_mse_loss,
    ssi_trimmed_mae_loss,
)

from loss_checks import assert_unlabelled_image_changes_nothing

B, H, W = 3, 12, 16


@pytest.fixture()
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _maps(gen: torch.Generator, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    target = 0.2 + torch.rand(B, 1, H, W, generator=gen, dtype=dtype)
    prediction = 0.5 * target + 0.1 * torch.rand(B, 1, H, W, generator=gen, dtype=dtype) + 0.3
    valid = torch.rand(B, 1, H, W, generator=gen) > 0.3
    return prediction, target, valid


# -- restatement of the authors' posted loss code ------------------------------------------------------------
# Our own reading, not a copy, of the MiDaS loss gists linked by the authors from isl-org/MiDaS
# issue #2 (gist dvdhfnr/732c26b61a0e63a0abc8a5d769dbebd0: compute_scale_and_shift, mse_loss,
# gradient_loss, GradientLoss, ScaleAndShiftInvariantLoss, reduction "batch-based") and issue #33
# (gist ranftlr/1d6194db2e1dffa0a50c9b0a9549cbd2: normalize_prediction_robust, trimmed_mae_loss,
# TrimmedProcrustesLoss). Maps are (B, H, W), the mask float {0, 1}.

def _ref_scale_shift(p, d, m):
    a00, a01, a11 = (m * p * p).sum((1, 2)), (m * p).sum((1, 2)), m.sum((1, 2))
    b0, b1 = (m * p * d).sum((1, 2)), (m * d).sum((1, 2))
    det = a00 * a11 - a01 * a01
    return (a11 * b0 - a01 * b1) / det, (-a01 * b0 + a00 * b1) / det


def _ref_gradient(p, d, m, scales=4):
    total = 0.0
    for k in range(scales):
        s = 2 ** k
        pp, dd, mm = p[:, ::s, ::s], d[:, ::s, ::s], m[:, ::s, ::s]
        r = mm * (pp - dd)
        gx = (mm[:, :, 1:] * mm[:, :, :-1] * (r[:, :, 1:] - r[:, :, :-1]).abs()).sum()
        gy = (mm[:, 1:] * mm[:, :-1] * (r[:, 1:] - r[:, :-1]).abs()).sum()
        total = total + (gx + gy) / mm.sum()
    return total


def _ref_ssi_mse(p, d, m, alpha=0.5):
    s, t = _ref_scale_shift(p, d, m)
    a = s.view(-1, 1, 1) * p + t.view(-1, 1, 1)
    data = (m * (a - d) ** 2).sum() / (2 * m.sum())
    return data + alpha * _ref_gradient(a, d, m)


def _ref_normalize(x, m):
    n = m.sum((1, 2))
    med = torch.median((m * x).reshape(x.shape[0], -1), dim=1).values  # zeros of invalid pixels included
    x = x - med.view(-1, 1, 1)
    mad = ((m * x.abs()).sum((1, 2)) / n).clamp(min=1e-6)
    return x / mad.view(-1, 1, 1)


def _ref_trimmed(p, d, m, trim=0.2, alpha=0.5):
    pn, dn = _ref_normalize(p, m), _ref_normalize(d, m)
    res = (pn - dn)[m.bool()].abs()
    kept = torch.sort(res)[0][: int(len(res) * (1.0 - trim))]
    return kept.sum() / (2 * m.sum()) + alpha * _ref_gradient(pn, dn, m)


# -- alignment ---------------------------------------------------------------------------------------------

def test_alignment_equals_normal_equation_solution(gen):
    prediction, target, valid = _maps(gen)
    fit = align_scale_shift(prediction, target, valid)
    for b in range(B):
        m = valid[b, 0]
        A = torch.stack([prediction[b, 0][m], torch.ones_like(prediction[b, 0][m])], dim=1)
        sol = torch.linalg.solve(A.T @ A, A.T @ target[b, 0][m])
        torch.testing.assert_close(fit.scale[b], sol[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fit.shift[b], sol[1], rtol=1e-10, atol=1e-12)


def test_alignment_recovers_affine_and_ignores_nan_holes(gen):
    prediction = torch.rand(B, 1, H, W, generator=gen, dtype=torch.float64)
    target = 3.0 * prediction - 0.7
    target[:, :, :3] = float("nan")
    fit = align_scale_shift(prediction, target)
    torch.testing.assert_close(fit.scale, torch.full((B,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(fit.shift, torch.full((B,), -0.7, dtype=torch.float64))


def test_alignment_in_float32_with_a_large_offset(gen):
    # inverse depth around 1000 varying by 1: the normal equations' determinant cancels in float32,
    # centred sums do not
    p = 1000.0 + torch.rand(2, 1, 64, 80, generator=gen, dtype=torch.float64)
    d = 2.0 * p - 1999.0 + 0.01 * torch.rand(2, 1, 64, 80, generator=gen, dtype=torch.float64)
    exact = align_scale_shift(p, d)
    single = align_scale_shift(p.float(), d.float())
    torch.testing.assert_close(single.scale.double(), exact.scale, rtol=2e-3, atol=0)


def test_alignment_of_a_constant_prediction_is_the_target_mean():
    prediction = torch.full((1, 1, 4, 4), 2.0)
    target = torch.arange(16.0).view(1, 1, 4, 4)
    fit = align_scale_shift(prediction, target)
    assert fit.scale.item() == 0.0
    assert fit.shift.item() == pytest.approx(7.5)


# -- SSI MSE ---------------------------------------------------------------------------------------------------

def test_ssi_mse_is_zero_for_an_affine_copy_and_invariant_to_scale_and_shift(gen):
    prediction, target, valid = _maps(gen)
    assert ssi_mse_loss(2.5 * target - 1.0, target, valid).total.item() == pytest.approx(0.0, abs=1e-12)
    base = ssi_mse_loss(prediction, target, valid)
    moved = ssi_mse_loss(4.0 * prediction + 9.0, target, valid)
    assert base.total.item() > 1e-4
    torch.testing.assert_close(moved.total, base.total, rtol=1e-9, atol=0)


def test_ssi_mse_hand_computed():
    # one image, prediction constant except one pixel: p = [0, 0, 0, 1], d = [0, 1, 0, 1] (1 x 4)
    p = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).view(1, 1, 1, 4)
    d = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64).view(1, 1, 1, 4)
    out = ssi_mse_loss(p, d, alpha=0.0)
    # means 1/4, 1/2; s = sum(pc dc) / sum(pc^2) = 0.5 / 0.75 = 2/3, t = 1/2 - 2/3 * 1/4 = 1/3;
    # aligned = [1/3, 1/3, 1/3, 1], residuals [1/3, -2/3, 1/3, 0], sum sq = 2/3, data = (2/3) / (2 * 4)
    assert out.data.item() == pytest.approx(1.0 / 12.0, rel=1e-12)
    torch.testing.assert_close(out.prediction.flatten(), torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0], dtype=torch.float64))


def test_ssi_mse_matches_the_authors_code(gen):
    prediction, target, valid = _maps(gen)
    ours = ssi_mse_loss(prediction, target, valid).total
    ref = _ref_ssi_mse(prediction[:, 0], target[:, 0], valid[:, 0].double())
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


# -- gradient matching -----------------------------------------------------------------------------------------

def test_gradient_term_is_zero_for_a_constant_offset(gen):
    _, target, valid = _maps(gen)
    assert gradient_matching_loss(target + 0.37, target, valid).item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_term_hand_computed():
    # residual = a unit step along x in a 2 x 4 image, all valid, one scale:
    # |grad_x R| is 1 at one x-pair per row (2 rows), |grad_y R| = 0; M = 8 -> 2/8
    p = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2).view(1, 1, 2, 4)
    assert gradient_matching_loss(p, torch.zeros_like(p), num_scales=1).item() == pytest.approx(0.25)
    # with the pixel right of the step invalid, the only pair crossing the step is dropped
    valid = torch.ones_like(p, dtype=torch.bool)
    valid[..., 2] = False
    assert gradient_matching_loss(p, torch.zeros_like(p), valid, num_scales=1).item() == pytest.approx(0.0)


def test_gradient_term_matches_the_authors_code(gen):
    prediction, target, valid = _maps(gen)
    ours = gradient_matching_loss(prediction, target, valid)
    ref = _ref_gradient(prediction[:, 0], target[:, 0], valid[:, 0].double())
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


# -- trimmed MAE -----------------------------------------------------------------------------------------------

def test_median_mad_normalisation_hand_computed():
    x = torch.tensor([1.0, 2.0, 4.0, 100.0, 7.0], dtype=torch.float64).view(1, 1, 1, 5)
    valid = torch.tensor([True, True, True, False, True]).view(1, 1, 1, 5)
    out, t, s = normalize_median_mad(x, valid)
    # valid values 1, 2, 4, 7: lower median 2; MAD = (1 + 0 + 2 + 5) / 4 = 2
    assert t.item() == 2.0 and s.item() == 2.0
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([-0.5, 0.0, 1.0, 0.0, 2.5], dtype=torch.float64))


def test_trimming_drops_exactly_the_largest_residuals():
    # 10 valid pixels, trim 0.2: the 8 smallest absolute residuals of the normalised maps are kept;
    # two outliers are dropped entirely.
    target = torch.tensor([-2.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0], dtype=torch.float64).view(1, 1, 1, 10)
    prediction = target.clone()
    prediction[..., 0] = -9.0   # large residual
    prediction[..., 9] = 9.0    # large residual
    prediction[..., 8] = 1.5    # small residual
    res = ssi_trimmed_mae_loss(prediction, target, alpha=0.0)
    pn = res.prediction - res.target
    r = pn.abs().flatten().sort().values
    assert res.data.item() == pytest.approx(r[:8].sum().item() / 20.0)
    assert r[8].item() > r[7].item()  # what was dropped is strictly larger than what was kept
    untrimmed = ssi_trimmed_mae_loss(prediction, target, alpha=0.0, trim=0.0)
    assert untrimmed.data.item() == pytest.approx(r.sum().item() / 20.0)


def test_trimmed_mae_is_zero_for_an_affine_copy_and_invariant(gen):
    prediction, target, valid = _maps(gen)
    assert ssi_trimmed_mae_loss(3.0 * target + 2.0, target, valid).total.item() == pytest.approx(0.0, abs=1e-12)
    base = ssi_trimmed_mae_loss(prediction, target, valid)
    moved = ssi_trimmed_mae_loss(0.25 * prediction - 5.0, target, valid)
    assert base.total.item() > 1e-3
    torch.testing.assert_close(moved.total, base.total, rtol=1e-9, atol=0)


def test_trimmed_mae_matches_the_authors_code_on_full_masks(gen):
    """Batch trimming (``trim_per_image=False``) and fully valid masks: the authors' code exactly."""
    prediction, target, _ = _maps(gen)
    full = torch.ones_like(prediction, dtype=torch.bool)
    ours = ssi_trimmed_mae_loss(prediction, target, full, trim_per_image=False).total
    ref = _ref_trimmed(prediction[:, 0], target[:, 0], full[:, 0].double())
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_trimmed_mae_median_over_valid_pixels_differs_from_the_authors_code_on_holes(gen):
    """The stated difference: the authors' median counts a zero per invalid pixel; ours does not."""
    prediction, target, valid = _maps(gen)
    ours = ssi_trimmed_mae_loss(prediction, target, valid, trim_per_image=False).total
    ref = _ref_trimmed(prediction[:, 0], target[:, 0], valid[:, 0].double())
    assert abs(ours.item() - ref.item()) > 1e-3


def test_per_image_trimming_keeps_each_images_share():
    # image 0 has large residuals everywhere, image 1 none: batch trimming drops only image 0's
    # pixels, per-image trimming drops 20 % of each.
    t = torch.linspace(0.0, 1.0, 10, dtype=torch.float64).view(1, 1, 1, 10).repeat(2, 1, 1, 1)
    p = t.clone()
    p[0, 0, 0] = t[0, 0, 0].flip(0)
    per_image = ssi_trimmed_mae_loss(p, t, alpha=0.0).data
    batch = ssi_trimmed_mae_loss(p, t, alpha=0.0, trim_per_image=False).data
    assert batch.item() < per_image.item()


# -- shapes, gradients -----------------------------------------------------------------------------------------

def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\)"):
        ssi_mse_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="valid mask"):
        ssi_trimmed_mae_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 5))


def test_empty_mask_gives_a_differentiable_zero():
    p = torch.rand(1, 1, 4, 4, requires_grad=True)
    out = ssi_mse_loss(p, torch.full((1, 1, 4, 4), float("nan")))
    assert out.total.item() == 0.0
    out.total.backward()
    assert torch.equal(p.grad, torch.zeros_like(p))


def test_gradcheck_float64(gen):
    prediction, target, valid = _maps(gen)
    p = prediction[:1, :, :6, :8].clone().requires_grad_(True)
    t, v = target[:1, :, :6, :8], valid[:1, :, :6, :8]
    assert torch.autograd.gradcheck(lambda x: ssi_mse_loss(x, t, v).total, (p,))
    assert torch.autograd.gradcheck(lambda x: gradient_matching_loss(x, t, v, num_scales=2), (p,))
    assert torch.autograd.gradcheck(lambda x: ssi_trimmed_mae_loss(x, t, v).total, (p,))


@pytest.mark.parametrize("loss", [lambda p, t: ssi_mse_loss(p, t).total, lambda p, t: ssi_trimmed_mae_loss(p, t).total])
def test_an_image_without_labels_changes_nothing(gen, loss):
    """A batch image whose label is all NaN adds no value and no gradient (batch-based reduction)."""
    assert_unlabelled_image_changes_nothing(loss, gen)
