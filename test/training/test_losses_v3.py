"""SC-Depth v3 ranking and normal losses, PackNet velocity loss."""
from __future__ import annotations

import math

import pytest
import torch

from depth_ros_training.losses import (
    depth_ranking_loss,
    edge_guided_normal_ranking_loss,
    normal_matching_loss,
    normals_from_depth,
    velocity_loss,
)
from depth_ros_training.losses.normals import sample_edge_pairs
from depth_ros_training.losses.ranking import ranking_loss_on_pairs, sample_dynamic_pairs

H, W = 24, 32
K = torch.tensor([[30.0, 0.0, 15.5], [0.0, 30.0, 11.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


def plane_depth(planes: list[tuple[tuple[float, float, float], float]]) -> torch.Tensor:
    """(1, 1, H, W) z-depth of the nearest of the planes n . p = c seen through K."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], 0)
    depth = torch.full((H, W), math.inf, dtype=torch.float64)
    for n, c in planes:
        s = c / (torch.tensor(n, dtype=torch.float64) @ rays.reshape(3, -1)).reshape(H, W)
        depth = torch.where((s > 0) & (s < depth), s, depth)
    return depth[None, None]


CORNER = plane_depth([((0.0, 0.0, 1.0), 4.0), ((0.0, 1.0, 0.0), 0.8)])  # wall + floor (a crease)
TILTED = plane_depth([((0.3, -0.2, 1.0), 3.0)])


@pytest.fixture()
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# -- ranking ----------------------------------------------------------------------------------


def test_ranking_loss_on_pairs_hand_computed() -> None:
    pred_a = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)
    pred_b = torch.tensor([1.0, 1.0, 3.5], dtype=torch.float64)
    pseudo_a = torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    pseudo_b = torch.tensor([1.0, 2.0, 1.01], dtype=torch.float64)
    # labels +1 (a farther), -1 (b farther), 0 (within 3 %)
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2.0) + 0.25) / 3
    got = ranking_loss_on_pairs(pred_a, pred_b, pseudo_a, pseudo_b, 0.03)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def _distinct_pseudo() -> torch.Tensor:
    # every pixel a different depth, consecutive ratios 1.1 > 1 + tau: no "equal" pairs
    return (1.1 ** torch.arange(H * W, dtype=torch.float64)).reshape(1, 1, H, W)[..., :, torch.randperm(W)]


def test_ranking_loss_vanishes_when_the_order_matches_and_is_large_when_reversed(gen) -> None:
    pseudo = _distinct_pseudo()
    dyn = torch.rand(1, 1, H, W, dtype=torch.float64)
    same = depth_ranking_loss(pseudo.log() * 1000, pseudo, dyn, 200, generator=gen)  # same order, wide margin
    reversed_ = depth_ranking_loss(-pseudo.log() * 1000, pseudo, dyn, 200, generator=gen)
    assert float(same) < 1e-12
    assert float(reversed_) > 10.0
    # scaling the pseudo-depth changes no label
    torch.testing.assert_close(
        depth_ranking_loss(pseudo.log(), pseudo, dyn, 200, generator=torch.Generator().manual_seed(1)),
        depth_ranking_loss(pseudo.log(), 7 * pseudo, dyn, 200, generator=torch.Generator().manual_seed(1)),
    )


def test_ranking_loss_pulls_equal_pseudo_depths_together(gen) -> None:
    pseudo = torch.full((1, 1, H, W), 2.0, dtype=torch.float64)
    dyn = torch.rand(1, 1, H, W, dtype=torch.float64)
    assert float(depth_ranking_loss(torch.full_like(pseudo, 5.0), pseudo, dyn, 100, generator=gen)) == 0.0
    pred = torch.rand(1, 1, H, W, dtype=torch.float64)
    assert float(depth_ranking_loss(pred, pseudo, dyn, 100, generator=gen)) > 0.01


def test_dynamic_pairs_join_the_most_dynamic_fifth_to_the_rest(gen) -> None:
    dyn = torch.zeros(2, 1, H, W)
    dyn[:, :, : H // 5 + 1] = 1.0  # the top rows are the dynamic object (>= 20 % of pixels)
    dyn[1] = dyn[1].flip(-2)
    n_dynamic = math.ceil(0.2 * H * W)
    idx_a, idx_b = sample_dynamic_pairs(dyn, 50, gen)
    assert idx_a.shape == idx_b.shape == (2, 100)
    flat = dyn.reshape(2, -1)
    assert bool((flat.gather(1, idx_a[:, :50]) == 1).all())
    # the rest: everything outside the top 20 % (the dynamic region is a bit larger than 20 %)
    order = flat.argsort(dim=1, descending=True, stable=True)
    rank = order.argsort(dim=1)
    assert bool((rank.gather(1, idx_b[:, :50]) >= n_dynamic).all())
    assert bool((rank.gather(1, idx_a[:, :50]) < n_dynamic).all())


def test_ranking_loss_skips_invalid_pseudo_depth_and_checks_arguments(gen) -> None:
    pseudo = torch.full((1, 1, H, W), math.nan, dtype=torch.float64)
    pred, dyn = torch.rand(1, 1, H, W, dtype=torch.float64), torch.rand(1, 1, H, W, dtype=torch.float64)
    loss = depth_ranking_loss(pred, pseudo, dyn, 10, generator=gen)
    assert float(loss) == 0.0
    with pytest.raises(ValueError, match="num_pairs"):
        depth_ranking_loss(CORNER, CORNER, torch.zeros_like(CORNER), 0)
    with pytest.raises(ValueError, match="dynamic_weight"):
        depth_ranking_loss(CORNER, CORNER, torch.zeros(1, 1, H, W + 1), 5)


def test_ranking_loss_gradcheck_float64() -> None:
    pred = (torch.rand(1, 1, 6, 7, dtype=torch.float64) + 1).requires_grad_()
    pseudo = torch.rand(1, 1, 6, 7, dtype=torch.float64) + 1
    dyn = torch.rand(1, 1, 6, 7, dtype=torch.float64)

    def f(pred: torch.Tensor) -> torch.Tensor:
        return depth_ranking_loss(pred, pseudo, dyn, 20, generator=torch.Generator().manual_seed(3))

    assert torch.autograd.gradcheck(f, (pred,))


# -- normals ----------------------------------------------------------------------------------


def test_normals_of_a_fronto_parallel_wall_face_the_camera() -> None:
    n = normals_from_depth(torch.full((1, 1, H, W), 3.0, dtype=torch.float64), K)
    torch.testing.assert_close(n[0, :, 5, 5].abs(), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_normal_matching_is_zero_up_to_scale_and_positive_otherwise() -> None:
    assert float(normal_matching_loss(2.5 * CORNER, CORNER, K)) < 1e-9
    assert float(normal_matching_loss(TILTED, CORNER, K)) > 0.3
    # invalid teacher pixels are ignored
    pseudo = CORNER.clone()
    pseudo[..., :4, :] = math.nan
    wrong = CORNER.clone()
    wrong[..., :2, :] = 1.0  # disagrees only where the teacher has no depth (and a kernel row below)
    assert float(normal_matching_loss(wrong, pseudo, K)) < float(normal_matching_loss(wrong, CORNER, K))


def test_normal_matching_gradcheck_float64() -> None:
    pred = (TILTED[..., :6, :7] * (1 + 0.05 * torch.rand(1, 1, 6, 7, dtype=torch.float64))).requires_grad_()
    pseudo = CORNER[..., 10:16, 10:17]
    assert torch.autograd.gradcheck(lambda d: normal_matching_loss(d, pseudo, K), (pred,), fast_mode=True)


def _striped_image() -> torch.Tensor:
    # horizontal stripes: edges along rows, so pairs run vertically, across the wall/floor crease
    v = torch.arange(H, dtype=torch.float64)
    return (0.5 + 0.4 * torch.sign(torch.sin(v / 3.0)))[:, None].expand(1, 3, H, W).clone()


def test_edge_pairs_straddle_the_edges(gen) -> None:
    img = torch.zeros(1, 3, H, W, dtype=torch.float64)
    img[..., W // 2 :] = 1.0  # one vertical edge between columns 15 and 16
    idx_a, idx_b = sample_edge_pairs(img, 40, max_offset_px=4, generator=gen)
    assert idx_a.shape == idx_b.shape == (1, 120)
    col_a, col_b = idx_a % W, idx_b % W
    row_a, row_b = idx_a // W, idx_b // W
    assert bool((row_a == row_b).all())  # the gradient is horizontal: pairs lie on one row
    across = slice(40, 80)  # (B, C): one point on each side of the edge
    left = torch.minimum(col_a[:, across], col_b[:, across])
    right = torch.maximum(col_a[:, across], col_b[:, across])
    assert bool((left <= 15).all() and (right >= 16).all())


def test_edge_guided_normal_loss_zero_up_to_scale_and_positive_for_a_flattened_crease(gen) -> None:
    img = _striped_image()
    assert float(edge_guided_normal_ranking_loss(3 * CORNER, CORNER, img, K, num_samples=200, generator=gen)) < 1e-9
    flat = torch.full_like(CORNER, 4.0)  # the prediction misses the wall/floor crease
    assert float(edge_guided_normal_ranking_loss(flat, CORNER, img, K, num_samples=200, generator=gen)) > 0.01


def test_edge_guided_normal_loss_gradcheck_float64() -> None:
    img = torch.rand(1, 3, 8, 9, dtype=torch.float64)
    pseudo = CORNER[..., 12:20, 10:19]
    pred = (pseudo * (1 + 0.1 * torch.rand_like(pseudo))).requires_grad_()

    def f(d: torch.Tensor) -> torch.Tensor:
        return edge_guided_normal_ranking_loss(d, pseudo, img, K, num_samples=10, generator=torch.Generator().manual_seed(2))

    assert torch.autograd.gradcheck(f, (pred,), fast_mode=True)


# -- velocity ---------------------------------------------------------------------------------


def test_velocity_loss_hand_computed() -> None:
    t = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    d = torch.tensor([4.0, 2.0], dtype=torch.float64)
    # | 5 - 4 | and | 1 - 2 |
    torch.testing.assert_close(velocity_loss(t, d), torch.tensor(1.0, dtype=torch.float64))
    assert float(velocity_loss(-t, torch.tensor([5.0, 1.0], dtype=torch.float64))) == 0.0


def test_velocity_loss_checks_shapes_and_has_finite_gradient_at_rest() -> None:
    with pytest.raises(ValueError, match=r"\(B,\)"):
        velocity_loss(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        velocity_loss(torch.zeros(2, 6), torch.zeros(2))
    t = torch.zeros(1, 3, requires_grad=True)
    velocity_loss(t, torch.ones(1)).backward()
    assert torch.isfinite(t.grad).all()
    t64 = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: velocity_loss(x, torch.full((3,), 0.3, dtype=torch.float64)), (t64,))
