"""OpenVINO against ONNX Runtime on the CPU: the same ONNX files, the same precision.

    python bench/bench_openvino.py [--runs 20] [--threads 2]

The ResNet-18 DispNet and the light network (:class:`LightDispNet`) exported at 192x640 with
random weights (speed does not depend on them), and their INT8 QDQ models (ONNX Runtime static
quantisation, U8S8, per-channel, calibrated on 16 frames of a synthetic 640x480 bag: what
``depth-ros-train export --int8`` writes). Each file runs in ONNX Runtime (the package's session
options: ``threads`` intra-op threads, no spinning) and in OpenVINO's CPU plugin (what
:class:`~depth_ros.inference.openvino_backend.OpenVinoBackend` compiles: LATENCY hint,
``threads`` threads, ``INFERENCE_PRECISION_HINT`` f32), interleaved, on one preprocessed frame.
OpenVINO with ``bf16`` (its own default on CPUs with native bfloat16: another precision) is
timed beside them and labelled as such.

Prints one JSON document: median / p10 / p90 ms of each, ``openvino_speedup`` = ONNX Runtime
median / OpenVINO f32 median per model, and the largest |OpenVINO - ONNX Runtime| difference of
each model's sigmoid output.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_light_net import _Finest, _stats  # noqa: E402


def main() -> None:
    import onnxruntime as ort
    import openvino as ov

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs, quantize_model
    from depth_ros.inference.spec import ModelSpec
    from depth_ros.synthetic import SynthConfig, write_bag
    from depth_ros_training.models.dispnet import DispNet
    from depth_ros_training.models.light_dispnet import LightDispNet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    nets = {"resnet18": DispNet(num_layers=18, num_scales=1), "light": LightDispNet(num_scales=1)}
    with tempfile.TemporaryDirectory(prefix="bench_ov_") as tmp:
        d = Path(tmp)
        bag = write_bag(SynthConfig(width=640, height=480, frames=40, lidar_beams=0, seed=12), d / "bag.mcap")
        files: dict[str, Path] = {}
        for name, net in nets.items():
            spec = ModelSpec(output_kind="disparity_sigmoid", input_height=192, input_width=640, name=name)
            files[name] = export_onnx(_Finest(net).eval(), spec, d / f"{name}.onnx", check_atol=None)
            calib = calibration_inputs(bag, spec, QuantizeConfig(frames=16))
            files[f"{name}_int8"] = quantize_model(files[name], d / f"{name}.int8.onnx", calib, QuantizeConfig(frames=16))
        x = calib[0]
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        core = ov.Core()
        runners, diff = {}, {}
        for k, path in files.items():
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            runners[f"onnxruntime/{k}"] = lambda s=session: s.run(None, {"image": x})[0]
            for hint in ("f32", "bf16"):
                compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY",
                                                                 "INFERENCE_PRECISION_HINT": hint})
                request = compiled.create_infer_request()
                runners[f"openvino_{hint}/{k}"] = lambda r=request: r.infer({0: x})[0]
            want = runners[f"onnxruntime/{k}"]()
            diff[k] = {hint: float(np.max(np.abs(np.asarray(runners[f"openvino_{hint}/{k}"]()) - want))) for hint in ("f32", "bf16")}
        for run in runners.values():
            run()
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(args.runs):
            for k, run in runners.items():
                t = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "input": "640x192",
        "versions": {"onnxruntime": ort.__version__, "openvino": ov.__version__},
        "ms": {k: _stats(v) for k, v in times.items()},
        "openvino_speedup": {k: round(med[f"onnxruntime/{k}"] / med[f"openvino_f32/{k}"], 2) for k in files},
        "openvino_bf16_speedup (other precision)": {k: round(med[f"onnxruntime/{k}"] / med[f"openvino_bf16/{k}"], 2) for k in files},
        "max_abs_diff_vs_onnxruntime": diff,
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
