"""The SC-Depth details that follow sc_depth_pl (public reference code), checked on identical
tensors against formulas written out here: the detached self-discovered mask, the auto-mask's
two rules (sc_depth_pl's L1, monodepth2's photometric), |cos| in the edge-guided normal
ranking, and the 7x7 SSIM window."""
from __future__ import annotations

import pytest
import torch

from depth_ros_training.losses import (
    edge_guided_normal_ranking_loss,
    inverse_warp,
    masked_mean,
    normals_from_depth,
    photometric_error,
    sc_depth_loss,
    sc_depth_pair_loss,
    ssim_dissimilarity,
)
from depth_ros_training.losses.normals import sample_edge_pairs
from depth_ros_training.models import pose_vec_to_mat

H, W = 12, 16
K = torch.tensor([[14.0, 0.0, 7.5], [0.0, 14.0, 5.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _pair_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "tgt": torch.rand(1, 3, H, W, generator=g, dtype=torch.float64),
        "src": torch.rand(1, 3, H, W, generator=g, dtype=torch.float64),
        "tgt_depth": torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) + 2.0,
        "src_depth": torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) + 2.0,
        "vec": torch.tensor([[0.02, -0.03, 0.01, 0.05, -0.02, 0.08]], dtype=torch.float64),
    }


def _reference_photometric(inp: dict[str, torch.Tensor], tgt_depth, src_depth, vec, detach_mask: bool) -> torch.Tensor:
    """The pair's masked photometric term written out: warp, geometry map, weight by the
    self-discovered mask (detached or not), mean over the valid pixels (auto-mask off)."""
    warp = inverse_warp(torch.cat([inp["src"], src_depth], 1), tgt_depth, pose_vec_to_mat(vec), K, padding_mode="border")
    warped, sampled = warp.warped[:, :3], warp.warped[:, 3:]
    in_view = warp.valid * (sampled > 0).double()
    d_diff = ((warp.projected_depth - sampled).abs() / (warp.projected_depth + sampled)).clamp(0, 1) * in_view
    mask = 1.0 - d_diff
    if detach_mask:
        mask = mask.detach()
    return masked_mean(photometric_error(inp["tgt"], warped) * mask, in_view.detach())


def test_self_discovered_mask_passes_no_gradient() -> None:
    inp = _pair_inputs()
    leaves = [inp["tgt_depth"].clone().requires_grad_(), inp["src_depth"].clone().requires_grad_(), inp["vec"].clone().requires_grad_()]
    pair = sc_depth_pair_loss(inp["tgt"], inp["src"], leaves[0], leaves[1], pose_vec_to_mat(leaves[2]), K, use_auto_mask=False)
    assert not pair.weight_mask.requires_grad
    grads = torch.autograd.grad(masked_mean(pair.photo_map, pair.valid), leaves)

    ref_leaves = [t.detach().clone().requires_grad_() for t in leaves]
    ref = torch.autograd.grad(_reference_photometric(inp, *ref_leaves, detach_mask=True), ref_leaves)
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-9)

    # with a mask that carries gradient the depth gradients differ clearly: the test can tell
    undetached = torch.autograd.grad(_reference_photometric(inp, *ref_leaves, detach_mask=False), ref_leaves)
    diff = (undetached[1] - ref[1]).abs().max()
    assert float(diff) > 1e-3 * float(ref[1].abs().max())


def test_geometry_term_still_has_its_gradient() -> None:
    inp = _pair_inputs(1)
    src_depth = inp["src_depth"].clone().requires_grad_()
    pair = sc_depth_pair_loss(inp["tgt"], inp["src"], inp["tgt_depth"], src_depth, pose_vec_to_mat(inp["vec"]), K, use_auto_mask=False)
    (g,) = torch.autograd.grad(masked_mean(pair.geometry_map, pair.valid), [src_depth])
    assert float(g.abs().sum()) > 0


@pytest.mark.parametrize("rule", ["l1", "photometric"])
def test_auto_mask_rules_match_their_formulas(rule: str) -> None:
    inp = _pair_inputs(2)
    T = pose_vec_to_mat(inp["vec"])
    pair = sc_depth_pair_loss(inp["tgt"], inp["src"], inp["tgt_depth"], inp["src_depth"], T, K, auto_mask_error=rule)
    warped = inverse_warp(inp["src"], inp["tgt_depth"], T, K, padding_mode="border").warped
    if rule == "l1":  # sc_depth_pl: channel-mean L1 with and without the warp
        expected = (inp["tgt"] - warped).abs().mean(1, keepdim=True) < (inp["tgt"] - inp["src"]).abs().mean(1, keepdim=True)
    else:  # monodepth2: the full photometric error with and without the warp
        expected = photometric_error(inp["tgt"], warped) < photometric_error(inp["tgt"], inp["src"])
    assert torch.equal(pair.auto_mask, expected.double())


def test_the_two_auto_mask_rules_differ_and_the_default_is_photometric() -> None:
    inp = _pair_inputs(3)
    args = (inp["tgt"], inp["src"], inp["tgt_depth"], inp["src_depth"], pose_vec_to_mat(inp["vec"]), K)
    l1 = sc_depth_pair_loss(*args, auto_mask_error="l1").auto_mask
    photo = sc_depth_pair_loss(*args, auto_mask_error="photometric").auto_mask
    assert torch.equal(sc_depth_pair_loss(*args).auto_mask, photo)
    assert int((l1 != photo).sum()) > 0
    eye = torch.eye(4, dtype=torch.float64)[None]
    # a static pair (identity pose, same image): the L1 rule keeps nothing either
    terms = sc_depth_loss(inp["tgt"], [inp["tgt"]], inp["tgt_depth"], [inp["tgt_depth"]], [eye], [eye], K, auto_mask_error="l1")
    assert float(terms.auto_mask_fraction) == 0.0
    with pytest.raises(ValueError, match="auto_mask_error"):
        sc_depth_pair_loss(*args, auto_mask_error="ssim")


def _edge_reference(pred: torch.Tensor, pseudo: torch.Tensor, img: torch.Tensor, absolute: bool, seed: int) -> torch.Tensor:
    idx_a, idx_b = sample_edge_pairs(img, 50, generator=torch.Generator().manual_seed(seed))
    n_pred, n_pseudo = normals_from_depth(pred, K).flatten(2), normals_from_depth(pseudo, K).flatten(2)

    def cos(n: torch.Tensor) -> torch.Tensor:
        c = (n[0][:, idx_a[0]] * n[0][:, idx_b[0]]).sum(0)
        return c.abs() if absolute else c

    return (cos(n_pred) - cos(n_pseudo)).abs().mean()


def test_edge_guided_normal_ranking_signed_and_absolute_cosines() -> None:
    g = torch.Generator().manual_seed(4)
    img = torch.rand(1, 3, H, W, generator=g, dtype=torch.float64)
    # rough depths: neighbouring normals often lie more than 90 degrees apart
    pred = 2.0 + torch.rand(1, 1, H, W, generator=g, dtype=torch.float64)
    pseudo = 2.0 + torch.rand(1, 1, H, W, generator=g, dtype=torch.float64)
    results = {}
    for cosine in ("signed", "absolute"):
        got = edge_guided_normal_ranking_loss(pred, pseudo, img, K, num_samples=50, generator=torch.Generator().manual_seed(7), cosine=cosine)
        torch.testing.assert_close(got, _edge_reference(pred, pseudo, img, cosine == "absolute", 7))
        results[cosine] = float(got)
    default = edge_guided_normal_ranking_loss(pred, pseudo, img, K, num_samples=50, generator=torch.Generator().manual_seed(7))
    assert float(default) == results["signed"]
    assert results["absolute"] < results["signed"]  # ||a| - |b|| <= |a - b|, strict when a cosine is negative
    with pytest.raises(ValueError, match="cosine"):
        edge_guided_normal_ranking_loss(pred, pseudo, img, K, cosine="abs")


def test_ssim_window_7_is_local_7x7_as_in_sc_depth_pl() -> None:
    x = torch.rand(1, 1, 15, 15, dtype=torch.float64)
    y = x.clone()
    y[0, 0, 7, 7] += 0.3
    changed = ssim_dissimilarity(x, y, window=7)[0, 0] > 0
    expected = torch.zeros(15, 15, dtype=torch.bool)
    expected[4:11, 4:11] = True
    assert torch.equal(changed, expected)
