"""MiDaS-style mixing of label groups: batches composed from the groups by weight.

Mixing (:class:`MixingBatchSampler`): every training batch is composed from the groups in
proportion to their *weights*, not to their sizes (MiDaS's dataset mixing; equal weights, the
default, are its "equal number of samples per dataset in a minibatch"). Per batch of B, group g
gets ``floor(B p_g)`` samples, and the remaining places go to groups drawn with probability
proportional to the fractional parts ``B p_g - floor(B p_g)``, so the expected share of every group
is exactly ``p_g`` even when ``B p_g`` is not an integer. Within a group, samples are drawn without
replacement from a reshuffled cycle, so a small group repeats and a large one is subsampled.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["MixingBatchSampler", "group_batch_counts"]


def group_batch_counts(weights: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """(G,) int64 samples per group in one batch: ``floor(B p_g)`` each, the remaining places to
    groups drawn without replacement with probability proportional to ``B p_g - floor(B p_g)``.
    The expected count of group g is exactly ``B p_g``; the counts sum to ``batch_size``."""
    p = np.asarray(weights, dtype=np.float64)
    p = p / p.sum()
    exact = batch_size * p
    counts = np.floor(exact + 1e-9).astype(np.int64)
    rest = int(batch_size - counts.sum())
    if rest > 0:
        frac = np.clip(exact - counts, 0.0, None)
        # systematic sampling: inclusion probability of group g = frac_g exactly (sum frac = rest)
        cum = np.concatenate([[0.0], np.cumsum(frac)])
        points = rng.uniform(0.0, 1.0) + np.arange(rest)
        picked = np.searchsorted(cum, points, side="right") - 1
        np.add.at(counts, np.clip(picked, 0, len(p) - 1), 1)
    return counts


class MixingBatchSampler(Sampler[list[int]]):
    """Batches of sample indices composed from the groups by weight (see the module docstring).

    Args:
        group_indices: per group, the dataset indices of its samples (each non-empty).
        weights: (G,) positive sampling weights.
        batch_size: samples per batch.
        num_batches: batches per epoch.
        seed: base seed; epoch ``e`` uses ``seed + e`` (call :meth:`set_epoch`), so runs repeat.
    """

    def __init__(self, group_indices: Sequence[np.ndarray], weights: Sequence[float], batch_size: int, num_batches: int, seed: int = 0) -> None:
        if len(group_indices) != len(weights) or not group_indices:
            raise ValueError(f"{len(group_indices)} groups but {len(weights)} weights")
        if any(len(g) == 0 for g in group_indices):
            raise ValueError("every group needs at least one sample")
        if batch_size < 1 or num_batches < 1:
            raise ValueError(f"batch_size and num_batches must be >= 1, got {batch_size}, {num_batches}")
        self.group_indices = [np.asarray(g, dtype=np.int64) for g in group_indices]
        self.weights = np.asarray(weights, dtype=np.float64)
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1  # a new composition next epoch even when nobody calls set_epoch
        cycles = [rng.permutation(g) for g in self.group_indices]
        pos = [0] * len(cycles)
        for _ in range(self.num_batches):
            batch: list[int] = []
            for g, count in enumerate(group_batch_counts(self.weights, self.batch_size, rng)):
                for _ in range(int(count)):
                    if pos[g] == len(cycles[g]):
                        cycles[g], pos[g] = rng.permutation(self.group_indices[g]), 0
                    batch.append(int(cycles[g][pos[g]]))
                    pos[g] += 1
            yield [batch[i] for i in rng.permutation(len(batch))]
