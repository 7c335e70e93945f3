"""SILog (ZoeDepth's metric loss): hand values, global-scale behaviour, the reference formula, masks."""
from __future__ import annotations

import math

import pytest
import torch

from depth_ros_training.losses.silog import silog_loss


def _pair(seed: int = 0, shape=(2, 1, 6, 8), dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    target = 0.5 + 9.5 * torch.rand(shape, generator=gen, dtype=dtype)
    pred = target * torch.exp(0.3 * torch.randn(shape, generator=gen, dtype=dtype))
    return pred, target


def _reference_silog(pred, target, mask, beta=0.15):
    """Restates isl-org/ZoeDepth ``zoedepth/trainers/loss.py`` ``SILogLoss.forward`` (our reading):
    select the masked pixels of the whole batch, ``g = log(input + 1e-7) - log(target + 1e-7)``,
    ``Dg = torch.var(g) + beta * mean(g) ** 2`` (``torch.var``'s default, unbiased), ``10 * sqrt(Dg)``."""
    g = torch.log(pred[mask] + 1e-7) - torch.log(target[mask] + 1e-7)
    return 10 * torch.sqrt(torch.var(g) + beta * torch.mean(g) ** 2)


def test_zero_for_a_perfect_prediction_with_a_finite_zero_gradient():
    _, target = _pair()
    pred = target.clone().requires_grad_(True)
    terms = silog_loss(pred, target)
    assert terms.total.item() == 0.0
    terms.total.backward()
    assert torch.all(pred.grad == 0)


def test_hand_value_for_a_constant_scale_error():
    # pred = 2 * target everywhere: g = log 2 at every pixel, Var(g) = 0, loss = 10 sqrt(0.15) log 2
    # (eps = 0: the 1e-7 inside the logs would bend log-ratios by ~1e-8)
    _, target = _pair()
    terms = silog_loss(2.0 * target, target, eps=0.0)
    assert terms.variance.item() == pytest.approx(0.0, abs=1e-12)
    assert terms.mean.item() == pytest.approx(math.log(2.0), rel=1e-9)
    assert terms.total.item() == pytest.approx(10.0 * math.sqrt(0.15) * math.log(2.0), rel=1e-7)


def test_global_scale_moves_only_the_beta_term():
    """D(s) = Var(g) + beta (mean(g) + log s)^2: the variance part is invariant to a global scale,
    the squared-mean part is not, and the loss is smallest at s = exp(-mean(g))."""
    pred, target = _pair(1)
    base = silog_loss(pred, target, eps=0.0)
    for s in (0.25, 0.9, 1.7, 6.0):
        t = silog_loss(s * pred, target, eps=0.0)
        torch.testing.assert_close(t.variance, base.variance)
        torch.testing.assert_close(t.mean, base.mean + math.log(s))
        want = 10.0 * torch.sqrt(base.variance + 0.15 * (base.mean + math.log(s)) ** 2)
        torch.testing.assert_close(t.total, want)
        assert bool(t.total > base.total) == (abs(math.log(s) + base.mean.item()) > abs(base.mean.item()))
    best = silog_loss(torch.exp(-base.mean) * pred, target, eps=0.0)
    torch.testing.assert_close(best.total, 10.0 * torch.sqrt(base.variance))
    assert best.total < base.total


def test_matches_the_reference_on_a_masked_batch():
    pred, target = _pair(2)
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(target.shape, generator=gen) > 0.4
    got = silog_loss(pred, target, mask).total
    torch.testing.assert_close(got, _reference_silog(pred, target, mask), rtol=1e-12, atol=0)
    # a {0, 1} float mask is the same mask
    torch.testing.assert_close(silog_loss(pred, target, mask.double()).total, got)


def test_biased_variance_is_the_lambda_085_form():
    """With the biased variance, D = mean(g^2) - 0.85 mean(g)^2 (Eigen et al. with lambda = 1 - beta)."""
    pred, target = _pair(4)
    g = torch.log(pred + 1e-7) - torch.log(target + 1e-7)
    want = 10.0 * torch.sqrt((g**2).mean() - 0.85 * g.mean() ** 2)
    torch.testing.assert_close(silog_loss(pred, target, unbiased=False).total, want, rtol=1e-12, atol=0)
    # and the unbiased (code) value is larger by exactly Var/(n-1) inside the root
    n = g.numel()
    var_b = g.var(unbiased=False)
    want_u = 10.0 * torch.sqrt(var_b * n / (n - 1) + 0.15 * g.mean() ** 2)
    torch.testing.assert_close(silog_loss(pred, target).total, want_u, rtol=1e-12, atol=0)


def test_invalid_pixels_never_enter_the_loss():
    pred, target = _pair(5)
    mask = torch.ones_like(target, dtype=torch.bool)
    mask[:, :, :2] = False
    poisoned_t = target.clone()
    poisoned_t[:, :, 0] = float("nan")
    poisoned_t[:, :, 1] = 0.0  # 0 / negative depth is no measurement
    poisoned_p = pred.clone()
    poisoned_p[:, :, :2] = -3.0
    poisoned_p = poisoned_p.requires_grad_(True)
    got = silog_loss(poisoned_p, poisoned_t)  # no mask: the NaN and 0 targets are dropped
    want = silog_loss(pred, target, mask)
    torch.testing.assert_close(got.total, want.total)
    assert got.n_valid.item() == int(mask.sum())
    got.total.backward()
    assert torch.isfinite(poisoned_p.grad).all()
    assert torch.all(poisoned_p.grad[:, :, :2] == 0)


def test_fewer_than_two_valid_pixels_give_zero():
    pred, target = _pair(6)
    mask = torch.zeros_like(target, dtype=torch.bool)
    assert silog_loss(pred, target, mask).total.item() == 0.0
    mask[0, 0, 0, 0] = True
    assert silog_loss(pred, target, mask).total.item() == 0.0


def test_gradcheck_float64():
    pred, target = _pair(7, shape=(1, 1, 3, 4))
    mask = torch.ones_like(target, dtype=torch.bool)
    mask[0, 0, 0, 0] = False
    pred = pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: silog_loss(p, target, mask).total, (pred,))


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 1, 4, 4\) and \(2, 1, 4, 5\)"):
        silog_loss(torch.ones(2, 1, 4, 4), torch.ones(2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"valid mask \(2, 1, 4, 4\), got \(2, 4, 4\)"):
        silog_loss(torch.ones(2, 1, 4, 4), torch.ones(2, 1, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool))
