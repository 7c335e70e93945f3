"""ONNX Runtime CPU vs PyTorch eager on a ResNet-18 DispNet (issue 2, benchmark 11a).

Prints one JSON document. Both backends run the same network (``DispNet(num_layers=18,
num_scales=1)``, finest disparity only, so neither computes outputs the other skips), with the
same intra-op thread count, on the same input; runs are interleaved (ORT, torch, ORT, ...) so
machine-load drift hits both alike. Reported: median / p10 / p90 latency in ms after warm-up,
``speedup = torch median / ORT median`` (target >= 1.3), and max |ORT - torch|.

Usage:
    python bench/bench_backends.py [--runs 20] [--warmup 3] [--threads N]
        [--sizes 192x640,320x1024] [--variants]

``--variants`` also times ONNX Runtime with graph optimizations off, with worker spinning on
(the backend turns it off), and with one thread, to show where its speed comes from.

Where the difference comes from (per-op profiles, 1 thread, 192x640): convolutions are ~84% of
both, and ORT's took ~30% less time than eager's oneDNN convolutions: ONNX Runtime packs
the weights once at session start and runs convolutions in its blocked NCHWc layout (graph
level "all"), with BatchNorm folded in; eager PyTorch calls oneDNN on plain NCHW tensors
each time and runs BN as a separate kernel. Eager max-pool also computes indices (~7% of
its time; ORT's MaxPool ~0.2%). Graph optimizations "all" vs "disable" is worth ~20%. With 2 threads on a *loaded* machine eager PyTorch degrades far more
than ONNX Runtime (OpenMP barriers wait on a descheduled thread; ORT's pool lets the calling
thread take the remaining work), so the 2-thread ratio is larger than on a quiet machine; the
1-thread ratio is the cleaner comparison when the machine is shared.

Measured on a quiet 2-core machine (load average < 0.1, 2026-12-03, ``--runs 40``, 2 threads):
192x640 ORT 98.2 ms vs eager 116.8 ms = 1.19x; 320x1024 256.0 vs 351.5 ms = 1.37x. On busier
runs the 192x640 ratio ranged 1.16x-1.54x (eager suffers more from load), so the 1.3x target
holds at 320x1024 and not reliably at 192x640.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _summary(times_s: list[float]) -> dict[str, float]:
    ms = [t * 1e3 for t in times_s]
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p10_ms": round(_percentile(ms, 10), 2),
        "p90_ms": round(_percentile(ms, 90), 2),
        "min_ms": round(min(ms), 2),
    }


def _time_interleaved(fns: dict[str, Callable[[], Any]], runs: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def bench_size(height: int, width: int, runs: int, warmup: int, threads: int, variants: bool, workdir: Path) -> dict:
    import torch

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
    from depth_ros.inference.spec import ModelSpec
    from depth_ros.inference.torch_backend import TorchBackend
    from depth_ros_training.export import DepthExportWrapper
    from depth_ros_training.models.dispnet import DispNet

    torch.manual_seed(0)
    net = DepthExportWrapper(DispNet(num_layers=18, num_scales=1)).eval()
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=height, input_width=width, name="dispnet18")
    path = workdir / f"dispnet18_{height}x{width}.onnx"
    t0 = time.perf_counter()
    export_onnx(net, spec, path)
    export_s = time.perf_counter() - t0

    eager = TorchBackend(net, spec, threads=threads)
    ort_default = OnnxRuntimeBackend(path, spec, threads=threads)
    x = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
    parity = float(np.max(np.abs(ort_default.infer(x)["depth"] - eager.infer(x)["depth"])))

    fns: dict[str, Callable[[], Any]] = {"onnxruntime": lambda: ort_default.infer(x), "torch_eager": lambda: eager.infer(x)}
    if variants:
        ort_noopt = OnnxRuntimeBackend(path, spec, threads=threads, graph_optimization="disable")
        ort_spin = OnnxRuntimeBackend(path, spec, threads=threads, allow_spinning=True)
        ort_1t = OnnxRuntimeBackend(path, spec, threads=1)
        fns.update(
            {
                "onnxruntime_no_graph_opt": lambda: ort_noopt.infer(x),
                "onnxruntime_spinning": lambda: ort_spin.infer(x),
                "onnxruntime_1_thread": lambda: ort_1t.infer(x),
            }
        )
    times = _time_interleaved(fns, runs, warmup)
    result = {name: _summary(t) for name, t in times.items()}
    speedup = result["torch_eager"]["median_ms"] / result["onnxruntime"]["median_ms"]
    return {
        "input": f"{height}x{width}",
        "export_s": round(export_s, 1),
        "onnx_bytes": path.stat().st_size,
        "max_abs_diff": parity,
        "speedup_ort_vs_eager": round(speedup, 3),
        "target_met": speedup >= 1.3,
        "timings": result,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per backend (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per backend first")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for both (default: usable cores)")
    parser.add_argument("--sizes", default="192x640,320x1024", help="comma-separated HxW")
    parser.add_argument("--variants", action="store_true", help="also time ORT tuning variants")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    from depth_ros.inference.onnxruntime_backend import default_threads

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    threads = args.threads or default_threads()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        results = [bench_size(h, w, args.runs, args.warmup, threads, args.variants, Path(tmp)) for h, w in sizes]
    report = {
        "benchmark": "onnxruntime-cpu vs torch eager, DispNet ResNet-18 (finest scale)",
        "threads": threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpu": platform.processor() or platform.machine(),
        "note": "noisy (shared machine)",
        "results": results,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
