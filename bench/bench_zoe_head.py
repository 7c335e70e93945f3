"""Toy-scale ablation of the ZoeDepth metric bins head: output distribution and attractors.

Prints one JSON document: for each variant of :class:`MetricBinsConfig` (log-binomial vs softmax
output, attractors vs none, ...), the held-out metric AbsRel and delta1 after ``--steps`` Adam
steps of SILog on synthetic stage-2 inputs (``test/training/zoe_scenes.py``: the relative structure
in the finest feature, the metric scale in the bottleneck), over ``--seeds`` seeds. It measures the
head alone on features, not a network on images; the figures say whether each variant learns, not
which one the paper's ablation favours at scale.

Usage:
    python bench/bench_zoe_head.py [--steps 150] [--seeds 3] [--batch 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "training"))
from zoe_scenes import metric_scenes  # noqa: E402

from depth_ros_training.losses.silog import silog_loss  # noqa: E402
from depth_ros_training.models.zoe_bins import MetricBinsConfig, MetricBinsHead  # noqa: E402

BASE = dict(
    bottleneck_channels=12, level_channels=(10, 8), last_channels=5, n_bins=16, min_depth_m=0.5,
    max_depth_m=20.0, bin_embedding_dim=8, n_attractors=(4, 1), seed_hidden=16,
)
VARIANTS = {
    "logbinomial+attractors": {},
    "softmax+attractors": {"output_distribution": "softmax"},
    "logbinomial, no attractors": {"n_attractors": (0, 0)},
    "softmax, no attractors": {"n_attractors": (0, 0), "output_distribution": "softmax"},
    "exp attractor": {"attractor_type": "exp"},
    "alpha 1000": {"attractor_alpha": 1000.0},
}


def run(variant: dict, seed: int, steps: int, batch: int) -> tuple[float, float]:
    """(held-out AbsRel, delta1) of one variant trained from one seed."""
    gen = torch.Generator().manual_seed(100 + seed)
    torch.manual_seed(seed)
    head = MetricBinsHead(MetricBinsConfig(**{**BASE, **variant}))
    train, held_out = metric_scenes(batch, gen), metric_scenes(batch, gen)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        silog_loss(head(*train[:3]).depth_m, train[3]).total.backward()
        opt.step()
    with torch.no_grad():
        pred = head(*held_out[:3]).depth_m
    target = held_out[3]
    abs_rel = ((pred - target).abs() / target).mean().item()
    delta1 = (torch.maximum(pred / target, target / pred) < 1.25).float().mean().item()
    return abs_rel, delta1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    for name, variant in VARIANTS.items():
        results = [run(variant, s, args.steps, args.batch) for s in range(args.seeds)]
        rels = [r[0] for r in results]
        out[name] = {
            "abs_rel": [round(r, 4) for r in rels],
            "abs_rel_median": round(statistics.median(rels), 4),
            "delta1": [round(r[1], 4) for r in results],
        }
    print(json.dumps({"steps": args.steps, "batch": args.batch, "variants": out}, indent=1))


if __name__ == "__main__":
    main()
