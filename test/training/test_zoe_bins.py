"""ZoeDepth metric bins head: seed bins, attractors, log-binomial output, the head, the router.

Functions named ``_ref_*`` restate the authors' public code (isl-org/ZoeDepth) in our own words, to
compare with on identical tensors; each docstring names the file and function restated.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depth_ros_training.models.dispnet import DispNet
from depth_ros_training.models.zoe_bins import AttractorLayer, ConditionalLogBinomial, MetricBinsConfig, MetricBinsHead, dispnet_features
from depth_ros_training.models.zoe_bins_math import (
    attractor_shift,
    exp_attractor,
    inv_attractor,
    log_binomial_coefficients,
    log_binomial_probs,
    normed_bin_centers,
)
from depth_ros_training.models.zoe_router import RoutedMetricHeads, SceneRouter, SceneRouterConfig, router_loss
from zoe_scenes import metric_scenes

D = torch.float64


# --------------------------------------------------------------------------- references


def _ref_seed_centers(raw, min_d, max_d):
    """Restates ``zoedepth/models/layers/localbins_layers.py`` ``SeedBinRegressor.forward`` after its
    MLP: ``B = raw + 1e-3``, widths ``(max - min) * B / sum(B)``, a ``min`` padded in front of the bin
    axis, ``cumsum`` -> edges, centres the mean of consecutive edges."""
    b = raw + 1e-3
    widths = (max_d - min_d) * (b / b.sum(dim=1, keepdim=True))
    widths = F.pad(widths, (0, 0, 0, 0, 1, 0), mode="constant", value=min_d)
    edges = torch.cumsum(widths, dim=1)
    return 0.5 * (edges[:, :-1] + edges[:, 1:])


def _ref_log_binom(n, k, eps=1e-7):
    """Restates ``zoedepth/models/layers/dist_layers.py`` ``log_binom`` (Stirling's leading term)."""
    n = n + eps
    k = k + eps
    return n * torch.log(n) - k * torch.log(k) - (n - k) * torch.log(n - k + eps)


def _ref_log_binomial(q, t, n_bins, eps=1e-4):
    """Restates ``dist_layers.py`` ``LogBinomial.forward``: clamp ``1 - q`` and ``q`` to [eps, 1],
    ``y = log_binom(K - 1, k) + k log q + (K - 1 - k) log(1 - q)``, ``softmax(y / t)`` over bins."""
    k = torch.arange(n_bins, dtype=q.dtype).view(1, -1, 1, 1)
    km1 = torch.tensor([n_bins - 1], dtype=q.dtype).view(1, -1, 1, 1)
    one_minus_q = torch.clamp(1 - q, eps, 1)
    q = torch.clamp(q, eps, 1)
    y = _ref_log_binom(km1, k) + k * torch.log(q) + (n_bins - 1 - k) * torch.log(one_minus_q)
    return torch.softmax(y / t, dim=1)


def _ref_attractor_layer(layer, x, b_prev, prev_emb):
    """Restates ``zoedepth/models/layers/attractor.py`` ``AttractorLayer.forward`` (normed) with the
    layer's own MLP: ``A = MLP(x + resize(prev_emb)) + 1e-3``, viewed (n, n_a, 2, h, w), *first
    channel only* (the code overwrites its normalisation); ``b = resize(b_prev)``; ``inv_attractor``
    called with its defaults alpha = 300, gamma = 2 (``dx / (1 + 300 dx.pow(2))``), mean over
    attractors; centres ``(max - min)(b + delta) + min``, sorted, clipped."""
    h, w = x.shape[-2:]
    x = x + F.interpolate(prev_emb, (h, w), mode="bilinear", align_corners=True)
    a = layer.net(x) + 1e-3
    a = a.view(a.shape[0], layer.n_attractors, 2, h, w)[:, :, 0]
    b = F.interpolate(b_prev, (h, w), mode="bilinear", align_corners=True)
    dx = a.unsqueeze(2) - b.unsqueeze(1)
    delta = torch.mean(dx.div(1 + 300 * dx.pow(2)), dim=1)
    b_new = b + delta
    centers = (layer.max_depth_m - layer.min_depth_m) * b_new + layer.min_depth_m
    centers, _ = torch.sort(centers, dim=1)
    return b_new, torch.clip(centers, layer.min_depth_m, layer.max_depth_m)


def _ref_conditional_log_binomial(module, x, cond, n_bins):
    """Restates ``dist_layers.py`` ``ConditionalLogBinomial.forward`` with the module's MLP:
    ``p = pt[:2] + 1e-4``, ``q = p0 / (p0 + p1)``; ``t`` likewise, scaled to [min_temp, max_temp]."""
    pt = module.mlp(torch.concat((x, cond), dim=1))
    p, t = pt[:, :2] + 1e-4, pt[:, 2:] + 1e-4
    q = (p[:, 0] / (p[:, 0] + p[:, 1])).unsqueeze(1)
    t = (t[:, 0] / (t[:, 0] + t[:, 1])).unsqueeze(1)
    t = (module.max_temp - module.min_temp) * t + module.min_temp
    return _ref_log_binomial(q, t, n_bins)


# --------------------------------------------------------------------------- seed bins


def test_normed_bin_centers_hand_values():
    # raw widths (1, 1, 2) over [1, 5] m: widths 1, 1, 2 m, edges 1, 2, 3, 5, centres 1.5, 2.5, 4
    raw = torch.tensor([1.0, 1.0, 2.0], dtype=D).view(1, 3, 1, 1)
    c = normed_bin_centers(raw, 1.0, 5.0, eps=0.0)
    torch.testing.assert_close(c.flatten(), torch.tensor([1.5, 2.5, 4.0], dtype=D))


def test_normed_bin_centers_match_the_seed_regressor_reference_and_stay_in_range():
    gen = torch.Generator().manual_seed(0)
    raw = F.relu(torch.randn(2, 16, 3, 4, generator=gen, dtype=D))
    raw[0, :, 0, 0] = 0.0  # all-zero widths: eps makes them uniform
    c = normed_bin_centers(raw, 0.5, 20.0)
    torch.testing.assert_close(c, _ref_seed_centers(raw, 0.5, 20.0), rtol=1e-12, atol=1e-12)
    assert (c > 0.5).all() and (c < 20.0).all()
    assert (c.diff(dim=1) > 0).all()
    torch.testing.assert_close(c[0, :, 0, 0], 0.5 + 19.5 * (torch.arange(16, dtype=D) + 0.5) / 16)


# --------------------------------------------------------------------------- log-binomial


def test_log_binomial_sums_to_one_is_unimodal_and_its_mode_moves_with_q():
    n_bins = 64
    coeff = log_binomial_coefficients(n_bins)
    q = torch.linspace(0.02, 0.98, 25, dtype=D).view(1, 1, 5, 5)
    p = log_binomial_probs(q, 1.0, coeff)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(1, 5, 5, dtype=D))
    flat_p = p.flatten(2).squeeze(0).T  # (25, K)
    modes = flat_p.argmax(dim=1)
    # mode at (K - 1) q (the Stirling coefficients' continuous maximiser), nondecreasing in q
    want = torch.round((n_bins - 1) * q.flatten())
    assert torch.all((modes.to(D) - want).abs() <= 1)
    assert torch.all(modes.diff() >= 0) and modes[-1] > modes[0] + 50
    # unimodal: increasing up to the mode, decreasing after
    for row, m in zip(flat_p, modes):
        assert torch.all(row[: m + 1].diff() > 0) and torch.all(row[m:].diff() < 0)


def test_temperature_keeps_the_mode_and_sharpens():
    coeff = log_binomial_coefficients(32)
    q = torch.full((1, 1, 1, 1), 9.0 / 31.0, dtype=D)  # mode exactly at bin 9
    sharp, flat = log_binomial_probs(q, 0.0212, coeff), log_binomial_probs(q, 10.0, coeff)
    assert sharp.argmax(1).item() == flat.argmax(1).item() == 9
    assert sharp.max().item() > 0.9 > 0.1 > flat.max().item()


def test_exact_coefficients_give_the_binomial_pmf_at_unit_temperature():
    n_bins, qv = 12, 0.37
    p = log_binomial_probs(torch.full((1, 1, 1, 1), qv, dtype=D), 1.0, log_binomial_coefficients(n_bins, exact=True))
    n = n_bins - 1
    pmf = [math.comb(n, k) * qv**k * (1 - qv) ** (n - k) for k in range(n_bins)]
    np.testing.assert_allclose(p.flatten().numpy(), pmf, rtol=1e-10)


def test_log_binomial_matches_the_reference():
    gen = torch.Generator().manual_seed(1)
    q = torch.rand(2, 1, 4, 5, generator=gen, dtype=D)
    q[0, 0, 0, :2] = torch.tensor([0.0, 1.0], dtype=D)  # clamped ends
    t = 0.0212 + 50 * torch.rand(2, 1, 4, 5, generator=gen, dtype=D)
    got = log_binomial_probs(q, t, log_binomial_coefficients(64))
    torch.testing.assert_close(got, _ref_log_binomial(q, t, 64), rtol=1e-10, atol=1e-12)


def test_conditional_log_binomial_matches_the_reference():
    torch.manual_seed(2)
    module = ConditionalLogBinomial(5, 7, 16).double()
    x, cond = torch.randn(2, 5, 3, 4, dtype=D), torch.randn(2, 7, 3, 4, dtype=D)
    torch.testing.assert_close(module(x, cond), _ref_conditional_log_binomial(module, x, cond, 16), rtol=1e-10, atol=1e-12)
    q, t = module.mode_and_temperature(x, cond)
    assert (q > 0).all() and (q < 1).all() and (t >= 0.0212).all() and (t <= 50.0).all()


# --------------------------------------------------------------------------- attractors


def test_inverse_and_exponential_attractor_hand_values():
    dx = torch.tensor([0.1, -0.05, 0.0], dtype=D)
    # inverse: 0.1 / (1 + 300 * 0.01) = 0.025 ; -0.05 / (1 + 300 * 0.0025) = -0.05 / 1.75
    torch.testing.assert_close(inv_attractor(dx, 300.0, 2.0), torch.tensor([0.025, -0.05 / 1.75, 0.0], dtype=D))
    # exponential: 0.1 exp(-3) ; -0.05 exp(-0.75)
    torch.testing.assert_close(
        exp_attractor(dx, 300.0, 2.0), torch.tensor([0.1 * math.exp(-3.0), -0.05 * math.exp(-0.75), 0.0], dtype=D)
    )
    # the inverse one reaches farther: at |dx| = 0.1 it still moves 25 % of the way, the exponential 5 %
    assert inv_attractor(dx, 300.0, 2.0)[0] > 4 * exp_attractor(dx, 300.0, 2.0)[0]
    # gamma = 1 with a negative dx: |dx| keeps the denominator positive (the code's dx.pow(1) gives
    # 1 + 300 * -0.05 = -14, a shift *away* from the attractor)
    assert inv_attractor(torch.tensor([-0.05], dtype=D), 300.0, 1.0).item() == pytest.approx(-0.05 / 16.0)


def test_mean_and_sum_over_two_attractors_hand_values():
    centers = torch.tensor([0.5], dtype=D).view(1, 1, 1, 1)
    attractors = torch.tensor([0.6, 0.45], dtype=D).view(1, 2, 1, 1)
    s1, s2 = 0.1 / (1 + 300 * 0.01), -0.05 / (1 + 300 * 0.0025)
    got_sum = attractor_shift(centers, attractors, 300.0, 2.0, kind="sum")
    got_mean = attractor_shift(centers, attractors, 300.0, 2.0, kind="mean")
    assert got_sum.item() == pytest.approx(s1 + s2) and got_mean.item() == pytest.approx((s1 + s2) / 2)


@pytest.mark.parametrize("attractor_type", ["inv", "exp"])
@pytest.mark.parametrize("alpha,gamma", [(300.0, 2.0), (1000.0, 2.0), (5.0, 1.0)])
def test_a_single_attractor_moves_every_centre_towards_it_and_never_past(attractor_type, alpha, gamma):
    centers = torch.linspace(0.0, 1.0, 41, dtype=D).view(1, 41, 1, 1)
    for a in (0.0, 0.237, 0.5, 0.91, 1.0):
        attractor = torch.full((1, 1, 1, 1), a, dtype=D)
        new = centers + attractor_shift(centers, attractor, alpha, gamma, "sum", attractor_type)
        before, after = (attractor - centers).flatten(), (attractor - new).flatten()
        assert torch.all(after.abs() <= before.abs())  # closer (or as close)
        assert torch.all(after * before >= 0)  # same side: never past
        if attractor_type == "inv":  # strictly closer unless on it (exp's shift underflows far away)
            moved = before.abs() > 1e-9
            assert torch.all(after.abs()[moved] < before.abs()[moved])


def test_attractor_layer_matches_the_released_code_when_unnormalised():
    torch.manual_seed(3)
    layer = AttractorLayer(8, 4, 1e-3, 10.0, normalize_attractors=False).double()
    x = torch.randn(2, 8, 6, 8, dtype=D)
    prev_emb = torch.randn(2, 8, 3, 4, dtype=D)
    b_prev = torch.rand(2, 16, 3, 4, dtype=D)
    b_new, centers = layer(x, b_prev, prev_emb)
    ref_b, ref_c = _ref_attractor_layer(layer, x, b_prev, prev_emb)
    torch.testing.assert_close(b_new, ref_b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(centers, ref_c, rtol=1e-12, atol=1e-12)


def test_zero_attractors_pass_the_bins_through():
    layer = AttractorLayer(8, 0, 1.0, 9.0).double()
    b_prev = torch.rand(1, 5, 3, 4, dtype=D)
    b_new, centers = layer(torch.randn(1, 8, 3, 4, dtype=D), b_prev)
    torch.testing.assert_close(b_new, b_prev)
    torch.testing.assert_close(centers, torch.sort(1.0 + 8.0 * b_prev, dim=1).values.clamp(1.0, 9.0))
    assert not list(layer.parameters())


def test_normalised_attractor_points_lie_in_the_unit_interval():
    torch.manual_seed(4)
    layer = AttractorLayer(8, 6, 1.0, 80.0).double()
    with torch.no_grad():
        layer.net[2].bias.add_(5.0)  # large raw outputs: unnormalised points would be >> 1
    x = torch.randn(1, 8, 5, 5, dtype=D)
    a = layer.attractor_points(x)
    assert a.shape == (1, 6, 5, 5) and (a > 0).all() and (a < 1).all()
    b_prev = torch.rand(1, 32, 5, 5, dtype=D)
    _, centers = layer(x, b_prev)
    assert (centers >= 1.0).all() and (centers <= 80.0).all() and (centers.diff(dim=1) >= 0).all()


# --------------------------------------------------------------------------- the head


def _tiny_config(**kw) -> MetricBinsConfig:
    base = dict(
        bottleneck_channels=12, level_channels=(10, 8), last_channels=5, n_bins=16, min_depth_m=0.5,
        max_depth_m=20.0, bin_embedding_dim=8, n_attractors=(4, 1), seed_hidden=16,
    )
    base.update(kw)
    return MetricBinsConfig(**base)


def _tiny_inputs(seed=0, dtype=torch.float32, batch=2):
    gen = torch.Generator().manual_seed(seed)
    bottleneck = torch.randn(batch, 12, 2, 3, generator=gen, dtype=dtype)
    levels = [torch.randn(batch, 10, 4, 6, generator=gen, dtype=dtype), torch.randn(batch, 8, 8, 12, generator=gen, dtype=dtype)]
    last = torch.randn(batch, 5, 16, 24, generator=gen, dtype=dtype)
    return bottleneck, levels, last


def _ref_head_forward(head, bottleneck, levels, last):
    """Restates ``zoedepth/models/zoedepth/zoedepth_v1.py`` ``ZoeDepth.forward`` after the MiDaS core
    (normed bins), with the head's own sub-modules: ``x = conv2(bottleneck)``; seed centres,
    ``b_prev = (centres - min) / (max - min)``; seed embedding; per level ``b, centres =
    attractor(projector(level), b_prev, prev_embedding)``, ``b_prev = b``; the last embedding and
    the centres resized to ``last``; ``depth = sum(probs * centres)``."""
    c = head.config
    x = head.bottleneck_conv(bottleneck)
    seed = head.seed_bins(x)
    b_prev = (seed - c.min_depth_m) / (c.max_depth_m - c.min_depth_m)
    prev = head.seed_projector(x)
    for proj, att, feat in zip(head.projectors, head.attractors, levels):
        emb = proj(feat)
        b_prev, centers = att(emb, b_prev, prev)
        prev = emb
    emb = F.interpolate(prev, last.shape[-2:], mode="bilinear", align_corners=True)
    probs = _ref_conditional_log_binomial(head.probs, last, emb, c.n_bins)
    centers = F.interpolate(centers, last.shape[-2:], mode="bilinear", align_corners=True)
    return torch.sum(probs * centers, dim=1, keepdim=True)


def test_head_output_is_metric_in_range_and_matches_the_reference_wiring():
    torch.manual_seed(5)
    head = MetricBinsHead(_tiny_config()).double()
    bottleneck, levels, last = _tiny_inputs(dtype=D)
    out = head(bottleneck, levels, last)
    assert out.depth_m.shape == (2, 1, 16, 24) and out.bin_centers_m.shape == out.probs.shape == (2, 16, 16, 24)
    assert (out.depth_m >= 0.5).all() and (out.depth_m <= 20.0).all()
    assert (out.bin_centers_m.diff(dim=1) >= 0).all()
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(2, 16, 24, dtype=D))
    torch.testing.assert_close(out.depth_m, _ref_head_forward(head, bottleneck, levels, last), rtol=1e-10, atol=1e-10)


def test_head_variants_run_and_differ():
    bottleneck, levels, last = _tiny_inputs()
    outs = {}
    for name, kw in {
        "default": {}, "softmax": {"output_distribution": "softmax"}, "exp": {"attractor_type": "exp"},
        "softplus": {"bin_centers_type": "softplus"}, "exact": {"exact_binomial": True},
        "no attractors": {"n_attractors": (0, 0)},
    }.items():
        torch.manual_seed(6)
        outs[name] = MetricBinsHead(_tiny_config(**kw))(bottleneck, levels, last)
    for name, out in outs.items():
        assert torch.isfinite(out.depth_m).all(), name
        torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(2, 16, 24))
        if name != "default":
            assert not torch.allclose(out.depth_m, outs["default"].depth_m), name
    # softplus centres are not bounded by the range, normed ones are
    assert (outs["softplus"].bin_centers_m > 0).all()


def test_head_shape_errors_name_the_shape():
    head = MetricBinsHead(_tiny_config())
    bottleneck, levels, last = _tiny_inputs()
    with pytest.raises(ValueError, match=r"bottleneck: expected shape \(B, 12, h, w\), got \(2, 11, 2, 3\)"):
        head(bottleneck[:, :11], levels, last)
    with pytest.raises(ValueError, match=r"level 1: expected shape \(2, 8, h, w\), got \(2, 9, 8, 12\)"):
        head(bottleneck, [levels[0], torch.zeros(2, 9, 8, 12)], last)
    with pytest.raises(ValueError, match="expected 2 decoder levels, got 1"):
        head(bottleneck, levels[:1], last)
    with pytest.raises(ValueError, match=r"last: expected shape \(2, 5, H, W\), got \(2, 5, 24\)"):
        head(bottleneck, levels, last[:, :, 0])


def test_config_is_validated():
    with pytest.raises(ValueError, match=r"bins must lie in \(0, max_depth_m\]"):
        _tiny_config(min_depth_m=0.0)
    with pytest.raises(ValueError, match=r"bins must lie in \(0, max_depth_m\]"):
        _tiny_config(min_depth_m=5.0, max_depth_m=2.0)
    with pytest.raises(ValueError, match="one attractor count per decoder level"):
        _tiny_config(n_attractors=(16, 8, 4, 1))
    with pytest.raises(ValueError, match="attractor_type must be one of"):
        _tiny_config(attractor_type="linear")
    with pytest.raises(ValueError, match="min_temp"):
        _tiny_config(min_temp=0.0)


def test_default_config_is_zoedepths():
    c = MetricBinsConfig()
    assert (c.n_bins, c.bin_embedding_dim, c.n_attractors) == (64, 128, (16, 8, 4, 1))
    assert (c.attractor_alpha, c.attractor_gamma, c.attractor_kind, c.attractor_type) == (300.0, 2.0, "mean", "inv")
    assert (c.min_temp, c.max_temp, c.output_distribution) == (0.0212, 50.0, "logbinomial")


def test_dispnet_features_fit_the_default_head_and_restate_dispnet():
    torch.manual_seed(7)
    net = DispNet(18, num_scales=1).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        bottleneck, levels, last = dispnet_features(net, x, append_disparity=True)
        disp = net(x)[0]
        out = MetricBinsHead(MetricBinsConfig(last_channels=17, max_depth_m=40.0))(bottleneck, levels, last)
    assert [tuple(t.shape) for t in levels] == [(1, 256, 4, 6), (1, 128, 8, 12), (1, 64, 16, 24), (1, 32, 32, 48)]
    torch.testing.assert_close(last[:, 16:], disp)  # the restated decoder loop is DispNet's
    assert out.depth_m.shape == (1, 1, 64, 96)


# --------------------------------------------------------------------------- gradcheck


def test_gradcheck_float64_pieces():
    gen = torch.Generator().manual_seed(8)
    raw = (0.1 + torch.rand(1, 5, 2, 2, generator=gen, dtype=D)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: normed_bin_centers(r, 0.5, 10.0), (raw,))
    centers = torch.rand(1, 5, 2, 2, generator=gen, dtype=D).requires_grad_(True)
    attractors = torch.rand(1, 3, 2, 2, generator=gen, dtype=D).requires_grad_(True)
    for kind in ("mean", "sum"):
        for typ in ("inv", "exp"):
            assert torch.autograd.gradcheck(lambda c, a: attractor_shift(c, a, 300.0, 2.0, kind, typ), (centers, attractors))
    q = (0.1 + 0.8 * torch.rand(1, 1, 2, 3, generator=gen, dtype=D)).requires_grad_(True)
    t = (0.5 + torch.rand(1, 1, 2, 3, generator=gen, dtype=D)).requires_grad_(True)
    coeff = log_binomial_coefficients(8).to(D)
    assert torch.autograd.gradcheck(lambda q_, t_: log_binomial_probs(q_, t_, coeff), (q, t))


def test_gradcheck_float64_head():
    torch.manual_seed(9)
    head = MetricBinsHead(_tiny_config(n_bins=6, bin_embedding_dim=4, seed_hidden=4)).double()
    bottleneck, levels, last = _tiny_inputs(seed=1, dtype=D, batch=1)
    last = last[:, :, :4, :6].contiguous().requires_grad_(True)
    bottleneck = bottleneck.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda b, l: head(b, levels, l).depth_m, (bottleneck, last), fast_mode=True)


# --------------------------------------------------------------------------- router


def _two_scene_types(n, gen):
    """Bottleneck features of two synthetic scene types: type 0 strong on the first half of the
    channels, type 1 on the second half, plus noise."""
    scene = torch.arange(n) % 2
    feats = torch.randn(n, 12, 2, 3, generator=gen)
    feats[:, :6] += torch.where(scene == 0, 1.5, 0.0).view(-1, 1, 1, 1)
    feats[:, 6:] += torch.where(scene == 1, 1.5, 0.0).view(-1, 1, 1, 1)
    return feats, scene


def test_router_learns_two_scene_types():
    gen = torch.Generator().manual_seed(10)
    torch.manual_seed(10)
    router = SceneRouter(SceneRouterConfig(in_channels=12, n_scene_types=2, hidden=16))
    train_x, train_y = _two_scene_types(64, gen)
    test_x, test_y = _two_scene_types(64, gen)
    initial = {k: v.clone() for k, v in router.state_dict().items()}
    # the same initial router learns the labelling and its opposite: no fixed router gets both right
    for flip in (False, True):
        router.load_state_dict(initial)
        y_train, y_test = (1 - train_y, 1 - test_y) if flip else (train_y, test_y)
        opt = torch.optim.Adam(router.parameters(), lr=1e-2)
        start = router_loss(router(train_x), y_train).item()
        for _ in range(40):
            opt.zero_grad()
            router_loss(router(train_x), y_train).backward()
            opt.step()
        with torch.no_grad():
            acc = (router(test_x).argmax(1) == y_test).float().mean().item()
            end = router_loss(router(train_x), y_train).item()
        assert acc == 1.0 and end < 0.1 * start, (flip, acc, start, end)


def test_routed_heads_pick_the_right_head_after_training_the_router():
    """Two heads with disjoint depth ranges (indoor 0.5-10 m, outdoor 20-80 m): after a few router
    steps the eval-mode (hard) output of each held-out image comes from its own type's head."""
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    model = RoutedMetricHeads(
        [_tiny_config(min_depth_m=0.5, max_depth_m=10.0), _tiny_config(min_depth_m=20.0, max_depth_m=80.0)], router_hidden=16
    )
    train_x, train_y = _two_scene_types(64, gen)
    opt = torch.optim.Adam(model.router.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        router_loss(model.router(train_x), train_y).backward()
        opt.step()
    test_x, test_y = _two_scene_types(8, gen)
    _, levels, last = _tiny_inputs(batch=8)
    model.eval()
    with torch.no_grad():
        out = model(test_x, levels, last)
    torch.testing.assert_close(out.weights, F.one_hot(test_y, 2).float())
    depth = out.depth_m.flatten(1)
    indoor = test_y == 0
    assert (depth[indoor] <= 10.0).all() and (depth[~indoor] >= 20.0).all()


def test_routing_modes():
    torch.manual_seed(12)
    model = RoutedMetricHeads([_tiny_config(), _tiny_config(min_depth_m=1.0, max_depth_m=50.0)], router_hidden=8)
    bottleneck, levels, last = _tiny_inputs()
    scene = torch.tensor([1, 0])
    model.train()
    forced = model(bottleneck, levels, last, scene=scene)
    torch.testing.assert_close(forced.weights, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    per_head = [h(bottleneck, levels, last).depth_m for h in model.heads]
    torch.testing.assert_close(forced.depth_m[0], per_head[1][0])
    torch.testing.assert_close(forced.depth_m[1], per_head[0][1])
    soft = model(bottleneck, levels, last)
    torch.testing.assert_close(soft.weights, torch.softmax(soft.logits, dim=1))
    assert ((soft.weights > 0) & (soft.weights < 1)).all()
    model.eval()
    hard = model(bottleneck, levels, last)
    torch.testing.assert_close(hard.weights, F.one_hot(hard.logits.argmax(1), 2).float())
    with pytest.raises(ValueError, match="int64"):
        model(bottleneck, levels, last, scene=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="must match head 0"):
        RoutedMetricHeads([_tiny_config(), _tiny_config(n_bins=8)])


def test_routed_heads_export_to_onnx_and_onnxruntime_agrees():
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    torch.manual_seed(13)
    gen = torch.Generator().manual_seed(13)
    model = RoutedMetricHeads([_tiny_config(), _tiny_config(min_depth_m=2.0, max_depth_m=80.0)], router_hidden=8)
    train_x, train_y = _two_scene_types(64, gen)
    opt = torch.optim.Adam(model.router.parameters(), lr=1e-2)
    for _ in range(40):  # a trained router, so the check inputs below reach both heads
        opt.zero_grad()
        router_loss(model.router(train_x), train_y).backward()
        opt.step()
    model.eval()

    class _Export(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, bottleneck, level0, level1, last):
            out = self.inner(bottleneck, [level0, level1], last)
            return out.depth_m, out.logits

    wrapper = _Export(model).eval()
    bottleneck, levels, last = _tiny_inputs(seed=3, batch=1)
    program = torch.onnx.export(wrapper, (bottleneck, *levels, last), dynamo=True, opset_version=20, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    # check on inputs other than the traced ones, of both scene types (so routed to each head)
    check_x, check_y = _two_scene_types(4, gen)
    names = [i.name for i in session.get_inputs()]
    chosen = []
    for i, seed in enumerate((4, 5, 6, 7)):
        _, lv, la = _tiny_inputs(seed=seed, batch=1)
        b = check_x[i : i + 1]
        with torch.no_grad():
            want_depth, want_logits = wrapper(b, *lv, la)
        got_depth, got_logits = session.run(None, dict(zip(names, [t.numpy() for t in (b, *lv, la)])))
        np.testing.assert_allclose(got_logits, want_logits.numpy(), atol=1e-4)
        np.testing.assert_allclose(got_depth, want_depth.numpy(), atol=1e-4)
        chosen.append(int(got_logits.argmax()))
    assert chosen == check_y.tolist() == [0, 1, 0, 1]


# --------------------------------------------------------------------------- learning


@pytest.mark.parametrize("output_distribution", ["logbinomial", "softmax"])
def test_head_learns_metric_depth_with_silog(one_thread, output_distribution):
    """60 Adam steps of SILog on 32 synthetic images bring held-out AbsRel from > 1 (untrained
    bins) to < 0.1: the head combines the relative map with the scale cue of the bottleneck (measured
    when written: 4.05 -> 0.049 log-binomial, 3.86 -> 0.031 softmax)."""
    from depth_ros_training.losses.silog import silog_loss

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    head = MetricBinsHead(_tiny_config(level_channels=(10, 8), output_distribution=output_distribution))
    train, held_out = metric_scenes(32, gen), metric_scenes(32, gen)

    def abs_rel() -> float:
        with torch.no_grad():
            pred = head(*held_out[:3]).depth_m
        return ((pred - held_out[3]).abs() / held_out[3]).mean().item()

    start = abs_rel()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        silog_loss(head(*train[:3]).depth_m, train[3]).total.backward()
        opt.step()
    assert start > 1.0 and abs_rel() < 0.1


def test_dispnet_with_routed_heads_exports_through_the_package_exporter(tmp_path):
    """DispNet + router + two heads as one ``depth_metric`` graph, image in, metres out: the package's
    :func:`export_onnx` traces it and checks ONNX Runtime against PyTorch to 1e-4 on its own
    random input before writing the file."""
    pytest.importorskip("onnxscript")
    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec

    class _DispNetZoe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = DispNet(18, num_scales=1)
            small = dict(last_channels=17, n_bins=16, bin_embedding_dim=16, seed_hidden=32, n_attractors=(4, 4, 2, 1))
            self.heads = RoutedMetricHeads(
                [MetricBinsConfig(min_depth_m=0.2, max_depth_m=10.0, **small), MetricBinsConfig(min_depth_m=1.0, max_depth_m=80.0, **small)],
                router_hidden=16,
            )

        def forward(self, image):
            return self.heads(*dispnet_features(self.net, image, append_disparity=True)).depth_m

    torch.manual_seed(14)
    spec = ModelSpec(output_kind="depth_metric", input_height=64, input_width=64, metric=True, min_depth_m=0.2, max_depth_m=80.0, name="zoe")
    path = export_onnx(_DispNetZoe().eval(), spec, tmp_path / "zoe.onnx", check_atol=1e-4)
    assert path.is_file() and path.stat().st_size > 1_000_000
