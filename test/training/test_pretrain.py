"""Gradient-field contrastive pretraining: G = E * B_canny, momentum update, queue, InfoNCE,
split BatchNorm, frames from bags, a short run through the CLI and its encoder weights."""
from __future__ import annotations

import math

import kornia
import pytest
import torch
from torch import nn

from depth_ros_training.pretrain.gradient_field import GradientFieldConfig, gradient_field
from depth_ros_training.pretrain.moco import KeyQueue, MoCo, SplitBatchNorm2d, info_nce_logits, info_nce_loss, momentum_update


# -- gradient field --------------------------------------------------------------------------
def test_gradient_field_is_zero_on_a_constant_image():
    for value in (0.0, 0.37, 1.0):
        g = gradient_field(torch.full((2, 3, 24, 32), value))
        assert g.shape == (2, 1, 24, 32)
        assert torch.count_nonzero(g) == 0


def _step(height: float, h: int = 24, w: int = 32, col: int = 13) -> torch.Tensor:
    x = torch.full((1, 3, h, w), 0.2)
    x[..., col:] += height
    return x


def test_gradient_field_is_sobel_magnitude_on_canny_edges_of_a_step():
    x = _step(0.6)
    g = gradient_field(x)
    grey = kornia.color.rgb_to_grayscale(x)
    sobel = kornia.filters.sobel(grey, normalized=True, eps=0.0)
    _, edges = kornia.filters.canny(grey, 0.2, 0.4)
    on = edges > 0
    assert on.any()
    torch.testing.assert_close(g[on], sobel[on], rtol=0, atol=0)  # exactly E on edge pixels
    assert torch.count_nonzero(g[~on]) == 0  # exactly 0 elsewhere
    # by hand: the normalised Sobel of a step of height h is h/2 on the pixels either side of
    # it; Canny's non-maximum suppression keeps one full column of them
    cols = on[0, 0].nonzero()[:, 1].unique()
    assert cols.tolist() in ([12], [13])
    torch.testing.assert_close(g[0, 0, :, cols[0]], torch.full((24,), 0.3), rtol=0, atol=1e-6)
    # the off-edge neighbour has the same Sobel magnitude, yet G keeps only the edge
    other = 13 if cols[0] == 12 else 12
    assert sobel[0, 0, :, other].min() > 0.29 and torch.count_nonzero(g[0, 0, :, other]) == 0


def test_gradient_field_thresholds_suppress_weak_texture():
    weak = _step(0.02)  # Canny magnitude ~0.1 on kornia's unnormalised scale
    assert torch.count_nonzero(gradient_field(weak)) == 0
    kept = gradient_field(weak, GradientFieldConfig(canny_low=0.02, canny_high=0.05))
    assert torch.count_nonzero(kept) == 24
    torch.testing.assert_close(kept.max(), torch.tensor(0.01), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="canny_low"):
        GradientFieldConfig(canny_low=0.5, canny_high=0.4)


# -- momentum contrast -----------------------------------------------------------------------
def _tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3)).double()


def test_momentum_update_is_an_exact_ema_of_parameters_only():
    torch.manual_seed(0)
    q_net, k_net = _tiny_net(), _tiny_net()
    k_net[1].running_mean.fill_(7.0)
    q0 = [p.detach().clone() for p in q_net.parameters()]
    k0 = [p.detach().clone() for p in k_net.parameters()]
    momentum_update(q_net, k_net, 0.9)
    for pq, pk, k in zip(q0, k_net.parameters(), k0):
        torch.testing.assert_close(pk.detach(), 0.9 * k + 0.1 * pq, rtol=0, atol=1e-15)
    momentum_update(q_net, k_net, 0.9)  # twice: m^2 k + (1 - m^2) q
    for pq, pk, k in zip(q0, k_net.parameters(), k0):
        torch.testing.assert_close(pk.detach(), 0.81 * k + 0.19 * pq, rtol=0, atol=1e-14)
    assert torch.all(k_net[1].running_mean == 7.0)  # buffers are the key network's own
    for p, want in zip(q_net.parameters(), q0):
        assert torch.equal(p.detach(), want)


def test_moco_key_network_starts_as_a_copy_and_follows_the_ema():
    torch.manual_seed(0)
    moco = MoCo(18, queue_size=8, momentum=0.99)
    for pq, pk in zip(moco.query_net.parameters(), moco.key_net.parameters()):
        assert torch.equal(pq, pk) and not pk.requires_grad
    with torch.no_grad():
        for p in moco.query_net.parameters():
            p.add_(1.0)
    before = [p.clone() for p in moco.key_net.parameters()]
    moco.momentum_update()
    for pq, pk, k in zip(moco.query_net.parameters(), moco.key_net.parameters(), before):
        torch.testing.assert_close(pk, 0.99 * k + 0.01 * pq, rtol=1e-6, atol=1e-7)


def test_queue_is_fifo_with_wrap_around():
    queue = KeyQueue(5, 2)
    a = torch.arange(6.0).view(3, 2)
    b = 10 + torch.arange(6.0).view(3, 2)
    queue.enqueue(a)
    assert torch.equal(queue.keys[:3], a) and int(queue.ptr) == 3
    queue.enqueue(b)  # rows 3, 4, then wraps to 0: a[0] (the oldest) is the one replaced
    assert torch.equal(queue.keys, torch.stack([b[2], a[1], a[2], b[0], b[1]]))
    assert int(queue.ptr) == 1
    queue.enqueue(torch.full((5, 2), -1.0))  # a whole queue's worth replaces everything
    assert torch.all(queue.keys == -1.0) and int(queue.ptr) == 1


def test_info_nce_equals_a_hand_computed_value():
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    k = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    logits, labels = info_nce_logits(q, k, queue, temperature=0.5)
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.0, -2.0], [1.92, 1.6, -1.2]]))
    assert labels.tolist() == [0, 0]
    row0 = math.log(1.0 + math.exp(-2.0) + math.exp(-4.0))
    row1 = -1.92 + math.log(math.exp(1.92) + math.exp(1.6) + math.exp(-1.2))
    torch.testing.assert_close(info_nce_loss(q, k, queue, 0.5), torch.tensor((row0 + row1) / 2))


def test_moco_step_uses_the_queue_before_enqueueing_its_keys():
    torch.manual_seed(0)
    moco = MoCo(18, queue_size=6, temperature=0.2)
    before = moco.queue.keys.clone()
    query, key = torch.randn(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    out = moco(query, key)
    assert out.logits.shape == (2, 7)
    with torch.no_grad():
        q = moco.query_net(query)  # train-mode BatchNorm on the same batch: the same queries again
    torch.testing.assert_close(out.logits[:, 1:], q @ before.t() / 0.2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits[:, 0], (q * out.keys).sum(1) / 0.2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(moco.queue.keys[:2], out.keys)
    torch.testing.assert_close(moco.queue.keys[2:], before[2:])
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, out.labels))
    with pytest.raises(ValueError, match="key view"):
        moco(query, torch.rand(2, 3, 64, 64))


def test_split_batch_norm_normalises_interleaved_sub_batches_separately():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5) * 3 + 1
    split = SplitBatchNorm2d(4, splits=2)
    out = split(x)
    for j in range(2):
        ref = nn.BatchNorm2d(4)
        torch.testing.assert_close(out[j::2], ref(x[j::2]), rtol=1e-5, atol=1e-5)
    plain = nn.BatchNorm2d(4)
    plain(x[0::2])
    mean_running = plain.running_mean.clone()
    plain2 = nn.BatchNorm2d(4)
    plain2(x[1::2])
    torch.testing.assert_close(split.running_mean, (mean_running + plain2.running_mean) / 2)
    assert set(split.state_dict()) == set(nn.BatchNorm2d(4).state_dict())
