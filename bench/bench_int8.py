"""ONNX Runtime INT8 (static QDQ, :mod:`depth_ros.inference.quantize`) vs float32 on a depth model.

Prints one JSON document. The model is ``--model`` (an exported depth ONNX, e.g. the demo's or
``depth-ros-train export``'s ``depth.onnx``), or a ResNet-18 DispNet at 192x640 with random
weights (speed only: parity figures of an untrained network mean little). Calibration frames
come from ``--calibration-bag`` or a synthetic bag rendered here; the two sessions then run
interleaved (FP32, INT8, FP32, ...) on the same held-out frames with the same intra-op threads,
so machine-load drift hits both alike. Reported: median / p10 / p90 latency, ``speedup`` =
FP32 median / INT8 median (target >= 2 on 2 cores), and the parity of the depth outputs
(median relative difference over pixels and frames). ``--truth-bags`` also runs
``depth-ros-train eval`` on both models (median-scaled AbsRel: target at most 5 % relative
worse for INT8).

Usage:
    python bench/bench_int8.py [--model depth.onnx] [--calibration-bag BAG] [--frames 64]
        [--runs 20] [--threads 2] [--truth-bags A.mcap B.mcap]
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
from pathlib import Path

import numpy as np


def _random_dispnet(path: Path) -> Path:
    import torch

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec
    from depth_ros_training.models.dispnet import DispNet

    class Finest(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = DispNet(num_layers=18, num_scales=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.net(x)
            return out[0] if isinstance(out, (list, tuple)) else out

    torch.manual_seed(0)
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=192, input_width=640, name="resnet18-random")
    return export_onnx(Finest().eval(), spec, path, check_atol=None)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _stats(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=10)
    return {"median_ms": round(1e3 * statistics.median(times), 2), "p10_ms": round(1e3 * q[0], 2), "p90_ms": round(1e3 * q[-1], 2)}


def _abs_rel(model: Path, bags: list[str], out: Path) -> float:
    from depth_ros_training.eval.evaluate import EvalConfig, evaluate

    config = EvalConfig(boundary=False, flicker=False, max_depth_m=20.0)
    [report] = evaluate(bags, config, models=[str(model)])
    return float(report.summary["median"]["abs_rel"])


def main() -> None:
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs, quantize_model
    from depth_ros.inference.spec import load_model_spec
    from depth_ros.synthetic import SynthConfig, write_bag

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="exported depth ONNX (default: random ResNet-18 DispNet 192x640)")
    parser.add_argument("--calibration-bag", type=Path, help="bag to calibrate on (default: a synthetic corridor)")
    parser.add_argument("--frames", type=int, default=64, help="calibration frames")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--truth-bags", nargs="*", default=[], help="held-out bags with depth truth for AbsRel")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as tmp:
        d = Path(tmp)
        model = args.model or _random_dispnet(d / "fp32.onnx")
        spec = load_model_spec(model)
        bag = args.calibration_bag or write_bag(SynthConfig(width=640, height=480, frames=2 * args.frames, lidar_beams=0, seed=11), d / "calib.mcap")
        frames = calibration_inputs(bag, spec, QuantizeConfig(frames=min(2 * args.frames, 4096)))
        calib, held_out = frames[::2], frames[1::2] or frames
        t0 = time.perf_counter()
        int8 = quantize_model(model, d / "int8.onnx", calib, QuantizeConfig(frames=len(calib)))
        quant_s = time.perf_counter() - t0
        sessions = {"fp32": _session(model, args.threads), "int8": _session(int8, args.threads)}
        name = spec.input_name
        outputs = {k: [s.run(None, {name: x})[0] for x in held_out[:8]] for k, s in sessions.items()}
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for i in range(args.runs):
            x = held_out[i % len(held_out)]
            for k, s in sessions.items():
                t = time.perf_counter()
                s.run(None, {name: x})
                times[k].append(time.perf_counter() - t)
        rel = [float(np.median(np.abs(a - b) / np.maximum(np.abs(a), 1e-6))) for a, b in zip(outputs["fp32"], outputs["int8"])]
        result = {
            "machine": platform.processor() or platform.machine(),
            "model": spec.name,
            "input": f"{spec.input_width}x{spec.input_height}",
            "threads": args.threads,
            "calibration_frames": len(calib),
            "quantize_s": round(quant_s, 1),
            "size_mb": {"fp32": round(Path(model).stat().st_size / 1e6, 1), "int8": round(int8.stat().st_size / 1e6, 1)},
            "fp32": _stats(times["fp32"]),
            "int8": _stats(times["int8"]),
            "speedup": round(statistics.median(times["fp32"]) / statistics.median(times["int8"]), 2),
            "output_median_rel_diff": round(float(np.median(rel)), 4),
        }
        if args.truth_bags:
            fp32_abs_rel = _abs_rel(Path(model), args.truth_bags, d)
            int8_abs_rel = _abs_rel(int8, args.truth_bags, d)
            result["abs_rel_median_scaled"] = {"fp32": round(fp32_abs_rel, 4), "int8": round(int8_abs_rel, 4),
                                               "relative_change": round(int8_abs_rel / fp32_abs_rel - 1.0, 4)}
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
