"""Momentum contrast (MoCo v2) between RGB queries and gradient-field keys.

The method of Shim & Kim (ICRA 2021) on the machinery of MoCo (He et al., CVPR 2020) with the
v2 changes (Chen et al., 2020: MLP projection head, temperature 0.2, stronger augmentation).
The formulas follow the authors' public code (facebookresearch/moco, ``moco/builder.py``):

* query ``q = normalize(head_q(encoder_q(x_q)))`` and key ``k = normalize(head_k(encoder_k(x_k)))``,
  (B, D) unit vectors; the key side runs without gradient;
* momentum update, on parameters only (BatchNorm running statistics are each encoder's own),
  before the keys are computed: ``theta_k <- m * theta_k + (1 - m) * theta_q``;
* logits ``[q . k, q . queue^T] / T`` of shape (B, 1 + K), labels all 0 (the positive is
  column 0), loss = cross-entropy (InfoNCE); the queue is the one *before* this batch's keys;
* then the batch's keys (gathered from every process under DDP) replace the oldest K entries of
  the queue, which starts as K random unit vectors;
* projection head: global average pooling of the last feature map, ``Linear(C, C)``, ReLU,
  ``Linear(C, D)`` with C = 512 (ResNet-18) or 2048 (ResNet-50), D = 128, as MoCo v2's ``mlp``;
* Shuffling BN: the keys' batch is permuted before the key encoder and the result put back in
  order, across processes exactly as ``_batch_shuffle_ddp`` does; see ``bn_splits`` for one
  process.

Choices where the variants differ (stated, not hidden):

* **Key input.** The gradient field ``G`` (:mod:`.gradient_field`) is one channel; the key
  encoder must remain a parameter-wise momentum copy of the RGB query encoder. Its first conv
  is adapted to one channel by *summing the three RGB filters* of ``conv1``; this is done by
  feeding ``G`` to all three input channels (``conv(W, [G, G, G]) = conv(W_r + W_g + W_b, G)``
  exactly), so every key-encoder tensor keeps the query encoder's shape and the EMA stays exact.
  ``G`` is not normalised: ``conv1`` has no bias and BatchNorm follows it, so a constant input
  scale cancels.
* **Queue.** Stored as (K, D) rows (MoCo: (D, K) columns); the write wraps around modulo K, so
  K need not be a multiple of the batch (MoCo asserts ``K % B == 0``; where it holds, the
  positions written are MoCo's).
* **Shuffling BN on one process.** MoCo's shuffle only changes anything across GPUs (BN
  statistics are per GPU). On one process, ``bn_splits = s > 1`` computes each BatchNorm's
  training statistics over s interleaved sub-batches (the "SplitBatchNorm" of the MoCo authors'
  CIFAR-10 demo) and the key batch is permuted before the key encoder, so a query and its key
  never share BN statistics. ``bn_splits = 1`` is plain BatchNorm (the leak MoCo warns about is
  then present). The layers stay ``BatchNorm2d`` subclasses with the same state_dict keys.
  Sub-batches should be of MoCo's per-GPU size (32): with 4 frames per sub-batch the statistics,
  hence the keys, change so much with the random grouping that a few dozen steps learn little.
* **Baseline** ``key = "rgb"``: plain MoCo v2, the key is another RGB augmentation of the frame
  through the same (3-channel) key encoder.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from depth_ros_training.models.resnet_encoder import ResNetEncoder

__all__ = [
    "ContrastiveNet",
    "KeyQueue",
    "MoCo",
    "MoCoOutput",
    "ProjectionHead",
    "SplitBatchNorm2d",
    "info_nce_logits",
    "info_nce_loss",
    "momentum_update",
    "split_batch_norm",
]

KeyKind = Literal["gradient", "rgb"]


class ProjectionHead(nn.Module):
    """MoCo v2's MLP head: global average pool, ``Linear(C, C)``, ReLU, ``Linear(C, D)``.

    Shapes: ``forward(f: (B, C, h, w)) -> (B, D)`` (not normalised).
    """

    def __init__(self, in_dim: int, out_dim: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, in_dim)
        self.fc2 = nn.Linear(in_dim, out_dim)

    def forward(self, f: Tensor) -> Tensor:
        pooled = f.mean(dim=(2, 3))  # (B, C)
        return self.fc2(F.relu(self.fc1(pooled)))


class ContrastiveNet(nn.Module):
    """The DispNet's ResNet encoder plus a projection head.

    ``encoder`` is a :class:`ResNetEncoder` with 3 input channels, the very module whose
    ``state_dict()`` becomes the pretrained weights (keys identical to ``DispNet.encoder``).

    Shapes: ``forward(x: (B, 3, H, W)) -> (B, D)`` unit vectors (L2-normalised).
    """

    def __init__(self, num_layers: int = 18, dim: int = 128) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(num_layers, in_channels=3)
        self.head = ProjectionHead(self.encoder.num_ch_enc[-1], dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.head(self.encoder(x)[-1]), dim=1)


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are per sub-batch: samples ``n`` with the same
    ``n mod splits`` are normalised together; the running statistics are the mean over
    sub-batches. In eval mode it is plain BatchNorm2d. Same parameters, buffers and keys.

    Raises:
        ValueError: in training, a batch not divisible by ``splits``.
    """

    def __init__(self, num_features: int, splits: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.splits = splits

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.splits == 1:
            return super().forward(x)
        n, c, h, w = x.shape
        s = self.splits
        if n % s:
            raise ValueError(f"batch of {n} is not divisible by bn_splits={s}")
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        mean_s = self.running_mean.repeat(s)
        var_s = self.running_var.repeat(s)
        out = F.batch_norm(
            x.reshape(n // s, c * s, h, w),  # channel block j = samples j, j+s, j+2s, ...
            mean_s,
            var_s,
            self.weight.repeat(s),
            self.bias.repeat(s),
            True,
            self.momentum if self.momentum is not None else 0.1,
            self.eps,
        )
        with torch.no_grad():
            self.running_mean.copy_(mean_s.view(s, c).mean(0))
            self.running_var.copy_(var_s.view(s, c).mean(0))
        return out.view(n, c, h, w)


def split_batch_norm(module: nn.Module, splits: int) -> nn.Module:
    """Replace every ``BatchNorm2d`` of ``module`` (in place) by a :class:`SplitBatchNorm2d`
    holding the same tensors; ``splits = 1`` leaves the module unchanged. Returns ``module``."""
    if splits < 1:
        raise ValueError(f"bn_splits must be >= 1, got {splits}")
    if splits == 1:
        return module
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SplitBatchNorm2d):
            new = SplitBatchNorm2d(child.num_features, splits, eps=child.eps, momentum=child.momentum, affine=child.affine, track_running_stats=child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            split_batch_norm(child, splits)
    return module


@torch.no_grad()
def momentum_update(query_net: nn.Module, key_net: nn.Module, m: float) -> None:
    """``theta_k <- m * theta_k + (1 - m) * theta_q`` for every parameter pair (buffers are
    left alone, as in MoCo). ``m = 0``: copy; ``m = 1``: frozen."""
    for p_q, p_k in zip(query_net.parameters(), key_net.parameters(), strict=True):
        p_k.mul_(m).add_(p_q.detach(), alpha=1.0 - m)


def info_nce_logits(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """MoCo's logits and labels.

    Args:
        q: (B, D) queries, unit vectors.
        k: (B, D) positive keys, unit vectors (no gradient expected).
        queue: (K, D) negative keys, unit vectors.
        temperature: T > 0.

    Returns:
        logits (B, 1 + K) = ``[q . k, q . queue^T] / T`` and labels (B,) int64 zeros.
    """
    if q.ndim != 2 or k.shape != q.shape or queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"expected q (B, D), k (B, D), queue (K, D); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(queue.shape)}")
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
    l_neg = q @ queue.detach().t()  # (B, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return logits, labels


def info_nce_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """InfoNCE: mean over the batch of ``-log softmax(logits)[0]`` (see :func:`info_nce_logits`)."""
    logits, labels = info_nce_logits(q, k, queue, temperature)
    return F.cross_entropy(logits, labels)


class KeyQueue(nn.Module):
    """FIFO of the K most recent keys, (K, D) unit vectors, started as random unit vectors.

    ``enqueue(keys (B, D))`` writes rows ``ptr, ptr+1, ... (mod K)`` and advances ``ptr`` by B
    modulo K, so the oldest entries are replaced first. Buffers (saved in checkpoints):
    ``keys`` (K, D) and ``ptr`` () int64.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be >= 1, got {size}, {dim}")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        if keys.ndim != 2 or keys.shape[1] != self.keys.shape[1]:
            raise ValueError(f"expected keys (B, {self.keys.shape[1]}), got {tuple(keys.shape)}")
        keys = keys[-self.size :]  # more keys than slots: only the newest K survive anyway
        b = keys.shape[0]
        start = int(self.ptr)
        rows = (start + torch.arange(b, device=self.keys.device)) % self.size
        self.keys[rows] = keys.to(self.keys.dtype)
        self.ptr.fill_((start + b) % self.size)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


@torch.no_grad()
def _all_gather(x: Tensor) -> Tensor:
    """Concatenation over processes along dim 0 (no gradient); ``x`` itself on one process."""
    world, _ = _world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@dataclass(frozen=True)
class MoCoOutput:
    """One contrastive step: ``logits`` (B, 1 + K), ``labels`` (B,) zeros, ``loss`` () InfoNCE,
    ``accuracy`` () share of queries whose positive has the largest logit (top-1 among 1 + K),
    ``keys`` (B, D) this batch's keys (unit vectors, no gradient)."""

    logits: Tensor
    labels: Tensor
    loss: Tensor
    accuracy: Tensor
    keys: Tensor


class MoCo(nn.Module):
    """Query network, momentum key network, queue.

    Args:
        num_layers: ResNet depth, 18 or 50 (the DispNet encoder's).
        key: "gradient" (the key view is the gradient field G, one channel, fed as described in
            the module docstring) or "rgb" (plain MoCo v2 baseline).
        dim: projection dimension D (MoCo: 128).
        queue_size: K negatives (MoCo: 65536; smaller for small data sets).
        momentum: m of the key network's EMA (MoCo: 0.999).
        temperature: T of the logits (MoCo v2: 0.2).
        bn_splits: sub-batches of the BatchNorm statistics on one process (see the module
            docstring); the per-process batch must be a multiple.
    """

    def __init__(
        self,
        num_layers: int = 18,
        key: KeyKind = "gradient",
        dim: int = 128,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        bn_splits: int = 1,
    ) -> None:
        super().__init__()
        if key not in ("gradient", "rgb"):
            raise ValueError(f"key must be 'gradient' or 'rgb', got {key!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.key = key
        self.momentum = momentum
        self.temperature = temperature
        self.query_net = split_batch_norm(ContrastiveNet(num_layers, dim), bn_splits)
        self.key_net = copy.deepcopy(self.query_net)
        for p in self.key_net.parameters():
            p.requires_grad_(False)
        self.queue = KeyQueue(queue_size, dim)

    @property
    def encoder(self) -> ResNetEncoder:
        """The query encoder: the weights a depth network starts from."""
        return self.query_net.encoder

    def momentum_update(self) -> None:
        momentum_update(self.query_net, self.key_net, self.momentum)

    @staticmethod
    def key_input(key_view: Tensor) -> Tensor:
        """(B, 1, H, W) gradient field -> (B, 3, H, W), the three channels equal (the summed-RGB
        first filter, see the module docstring); a 3-channel view passes through."""
        return key_view.expand(-1, 3, -1, -1) if key_view.shape[1] == 1 else key_view

    @torch.no_grad()
    def compute_keys(self, key_view: Tensor) -> Tensor:
        """(B, D) keys of a batch, computed on a shuffled batch and put back in order."""
        x = self.key_input(key_view)
        world, rank = _world()
        if world == 1:
            perm = torch.randperm(x.shape[0], device=x.device)
            k = self.key_net(x[perm])
            return k[torch.argsort(perm)]
        b = x.shape[0]
        x_all = _all_gather(x)
        perm = torch.randperm(x_all.shape[0], device=x.device)
        dist.broadcast(perm, src=0)
        k = self.key_net(x_all[perm.view(world, b)[rank]])
        k_all = _all_gather(k)
        return k_all[torch.argsort(perm).view(world, b)[rank]]

    def forward(self, query_view: Tensor, key_view: Tensor, update_queue: bool = True) -> MoCoOutput:
        """One contrastive step (the momentum update is the caller's, before this call, as in
        MoCo's forward; see :meth:`momentum_update`).

        Args:
            query_view: (B, 3, H, W) normalised RGB.
            key_view: (B, 1, H, W) gradient field (key="gradient") or (B, 3, H, W) normalised
                RGB (key="rgb").
            update_queue: enqueue this batch's keys (training) or not (validation).
        """
        want = 1 if self.key == "gradient" else 3
        if key_view.ndim != 4 or key_view.shape[1] != want:
            raise ValueError(f"key={self.key!r} expects a (B, {want}, H, W) key view, got {tuple(key_view.shape)}")
        q = self.query_net(query_view)
        k = self.compute_keys(key_view)
        logits, labels = info_nce_logits(q, k, self.queue.keys.clone(), self.temperature)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(dim=1) == 0).float().mean()
        if update_queue:
            self.queue.enqueue(_all_gather(k))
        return MoCoOutput(logits, labels, loss, accuracy, k)
