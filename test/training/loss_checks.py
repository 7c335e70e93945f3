"""Checks shared by the loss tests (import as ``from loss_checks import ...``; test directories
are not packages)."""
from __future__ import annotations

from typing import Callable

import torch

MapLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def assert_unlabelled_image_changes_nothing(loss: MapLoss, gen: torch.Generator) -> None:
    """A batch image whose label is all NaN adds no value and no gradient (and no NaN).

    ``loss(prediction, target)`` takes (B, 1, H, W) maps and returns a scalar; it is checked on a
    batch of 2 (16 x 20, float64) whose first target is all NaN against the batch of the second
    image alone.
    """
    t = torch.rand(2, 1, 16, 20, generator=gen, dtype=torch.float64)
    t[0] = float("nan")
    p = torch.rand(2, 1, 16, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    value = loss(p, t)
    value.backward()
    torch.testing.assert_close(value, loss(p[1:], t[1:]))
    assert torch.equal(p.grad[0], torch.zeros_like(p.grad[0])) and torch.isfinite(p.grad).all()
