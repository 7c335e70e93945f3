"""The light network (:class:`~depth_ros_training.models.light_dispnet.LightDispNet`) against
the ResNet-18 DispNet on a CPU: network latency (FP32 and INT8) and ``depth-ros infer`` end to end.

Prints one JSON document. Both networks are exported at 192x640 with random weights (speed
does not depend on them; accuracy is measured by training both, see the closing notes), the
INT8 versions calibrated on frames of a synthetic 640x480 bag (:mod:`depth_ros.inference.quantize`).

* ``network``: ONNX Runtime latency, the variants interleaved (median / p10 / p90 ms), and the
  multiply-accumulates of each network.
* ``pose_network``: the exported pose models (``pose.onnx`` of ``model.pose_network: resnet``, the
  ResNet-18 PoseNet, and ``light``, :class:`~depth_ros_training.models.posenet.LightPoseNet`) at
  192x640, ONNX Runtime latency interleaved: what the pose node spends per frame pair.
* ``infer``: :func:`depth_ros.bag.infer.infer_bag` on a 640x480 synthetic bag (decode,
  preprocess, network, postprocess, write; no cloud), frames per second. Target for the light
  network (INT8 allowed): >= 30 FPS on 2 cores.

Usage:
    python bench/bench_light_net.py [--runs 20] [--threads 2] [--frames 60]
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

import torch


class _Finest(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def _stats(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=10)
    return {"median_ms": round(1e3 * statistics.median(times), 2), "p10_ms": round(1e3 * q[0], 2), "p90_ms": round(1e3 * q[-1], 2)}


def _pose_latency(d: Path, runs: int, options: object) -> dict[str, dict[str, float]]:
    """ONNX Runtime latency of the exported ResNet-18 and light pose models at 192x640."""
    import numpy as np
    import onnxruntime as ort

    from depth_ros_training.export import export_module
    from depth_ros_training.module import DepthTrainingModule

    sessions = {}
    for name in ("resnet", "light"):
        module = DepthTrainingModule(image_height=192, image_width=640, depth_network="light", pose_network=name).eval()
        out = d / f"pose_{name}"
        export_module(module, out, pose=True, check_parity=False, tensorrt="off")
        sessions[name] = ort.InferenceSession(str(out / "pose.onnx"), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 6, 192, 640)).astype(np.float32)
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for k, s in sessions.items():
        s.run(None, feeds[k])
    for _ in range(runs):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append(time.perf_counter() - t)
    return {k: _stats(v) for k, v in times.items()}


def main() -> None:
    import onnxruntime as ort

    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs, quantize_model
    from depth_ros.inference.spec import ModelSpec
    from depth_ros.synthetic import SynthConfig, write_bag
    from depth_ros_training.models.dispnet import DispNet
    from depth_ros_training.models.light_dispnet import LightDispNet, count_macs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=60, help="frames of the infer bag")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    nets = {"resnet18": DispNet(num_layers=18, num_scales=1), "light": LightDispNet(num_scales=1)}
    with tempfile.TemporaryDirectory(prefix="bench_light_") as tmp:
        d = Path(tmp)
        bag = write_bag(SynthConfig(width=640, height=480, frames=args.frames, lidar_beams=0, seed=12), d / "bag.mcap")
        models: dict[str, Path] = {}
        for name, net in nets.items():
            spec = ModelSpec(output_kind="disparity_sigmoid", input_height=192, input_width=640, name=name)
            models[name] = export_onnx(_Finest(net).eval(), spec, d / f"{name}.onnx", check_atol=None)
            calib = calibration_inputs(bag, spec, QuantizeConfig(frames=32))
            models[f"{name}_int8"] = quantize_model(models[name], d / f"{name}.int8.onnx", calib, QuantizeConfig(frames=32))
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions = {k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for k, p in models.items()}
        x = calib[0]
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for s in sessions.values():
            s.run(None, {"image": x})
        for _ in range(args.runs):
            for k, s in sessions.items():
                t = time.perf_counter()
                s.run(None, {"image": x})
                times[k].append(time.perf_counter() - t)
        infer: dict[str, float] = {}
        for k, path in models.items():
            config = InferConfig(cloud=False, copy_inputs=False, overwrite=True, backend="onnxruntime-cpu", threads=args.threads)
            summary = infer_bag(bag, d / f"{k}_out.mcap", path, config)
            infer[k] = round(summary.fps, 1)
        pose = _pose_latency(d, args.runs, options)
    result = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "input": "640x192",
        "gmacs": {k: round(count_macs(n, 192, 640) / 1e9, 2) for k, n in nets.items()},
        "network": {k: _stats(v) for k, v in times.items()},
        "speedup_vs_resnet18_fp32": {k: round(statistics.median(times["resnet18"]) / statistics.median(v), 2) for k, v in times.items()},
        "infer_fps_640x480": infer,
        "pose_network": pose,
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
