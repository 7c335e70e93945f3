"""Cost of the MiDaS and Depth Pro label losses per training step, beside the depth network's.

Prints one JSON document: for a batch ``B x 1 x H x W`` (prediction, target with 10 % holes),
the median / p10 / p90 time in ms of forward + backward of each loss, and of a ResNet-18
DispNet forward + backward on ``B x 3 x H x W`` (what the losses are added to), with runs
interleaved (loss, loss, ..., network, loss, ...) so load drift hits all alike; ``share`` is each
loss's median over the network's. Threads: ``--threads`` (default 1, the clean comparison on a
shared machine).

Usage:
    python bench/bench_label_losses.py [--batch 8] [--size 256x320] [--runs 5] [--threads 1]

What made them cheaper (same values, tested): the trimmed MAE's median by ``nanmedian`` (a
selection) instead of a full sort, and its trimmed sum as the total minus the ``topk`` of the
dropped fifth (8 x 256 x 320, 1 thread: ~450 -> ~170 ms forward + backward); the Depth Pro
derivative losses built on one difference pyramid shared by MAGE, MSGE and MALE, with a separable
blur (~800 -> ~500 ms). Measured on the shared 2-core machine under load, 2026-12-06.

Shares of the network's forward + backward (defaults, 1 thread, load average ~8, 2026-12-06,
``--runs 3``): SSI MSE 0.02, SSI trimmed MAE 0.04, Depth Pro trimmed MAE 0.03, normalised MAE
0.02, MAGE + MALE + MSGE 0.10 (DispNet-18 ~10 s per step at that load): the losses are not where a
CPU step's time goes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable

import torch

from depth_ros_training.losses.depth_pro import derivative_losses, normalized_mae, trimmed_mae
from depth_ros_training.losses.midas import ssi_mse_loss, ssi_trimmed_mae_loss
from depth_ros_training.models.dispnet import DispNet


def _stats(times_ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times_ms, n=10) if len(times_ms) >= 2 else [times_ms[0]] * 9
    return {"median_ms": round(statistics.median(times_ms), 1), "p10_ms": round(q[0], 1), "p90_ms": round(q[-1], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", default="256x320", help="HxW")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    target = 0.1 + torch.rand(args.batch, 1, h, w, generator=gen)
    valid = torch.rand(args.batch, 1, h, w, generator=gen) > 0.1
    prediction = (target + 0.1 * torch.rand(args.batch, 1, h, w, generator=gen)).requires_grad_(True)

    def derivative_sum(p: torch.Tensor) -> torch.Tensor:
        d = derivative_losses(p, target, valid)
        return d.mage + d.male + d.msge

    losses: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "midas_ssi_mse": lambda p: ssi_mse_loss(p, target, valid).total,
        "midas_ssi_trimmed_mae": lambda p: ssi_trimmed_mae_loss(p, target, valid).total,
        "depth_pro_trimmed_mae": lambda p: trimmed_mae(p, target, valid),
        "depth_pro_normalized_mae": lambda p: normalized_mae(p, target, valid),
        "depth_pro_mage_male_msge": derivative_sum,
    }
    net = DispNet(num_layers=18, num_scales=1)
    image = torch.rand(args.batch, 3, h, w, generator=gen)

    def run_loss(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
        prediction.grad = None
        start = time.perf_counter()
        fn(prediction).backward()
        return (time.perf_counter() - start) * 1000.0

    def run_net() -> float:
        net.zero_grad(set_to_none=True)
        start = time.perf_counter()
        net(image)[0].mean().backward()
        return (time.perf_counter() - start) * 1000.0

    times: dict[str, list[float]] = {name: [] for name in [*losses, "dispnet18_fwd_bwd"]}
    for name, fn in losses.items():  # warm-up
        run_loss(fn)
    run_net()
    for _ in range(args.runs):
        for name, fn in losses.items():
            times[name].append(run_loss(fn))
        times["dispnet18_fwd_bwd"].append(run_net())
    net_median = statistics.median(times["dispnet18_fwd_bwd"])
    report = {
        "batch": args.batch,
        "size_hw": [h, w],
        "threads": args.threads,
        "runs": args.runs,
        "results": {
            name: {**_stats(t), "share": round(statistics.median(t) / net_median, 3)} for name, t in times.items()
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
