"""Fused vs unfused IO under ONNX Runtime CPU: the frame pipeline's per-frame time (issue 19, item 2).

    python bench/bench_fused_io.py [--runs 60] [--warmup 5] [--threads 2] [--camera 640x480]
                                   [--input 192x640] [--channels 16] [--dispnet]

Prints one JSON document. One network, three files: the unfused model (float input, the
runtime resizes and normalises in numpy and resizes the depth back), the fused one (uint8
camera image in, resize and normalisation in the graph; the depth still resized back in numpy)
and the fused one whose graph also returns depth at camera resolution. Each runs in its own
:class:`~depth_ros.pipeline.FramePipeline` (aspect ``stretch``: the whole camera image, the
same window for all three) on the same 640x480 rgb8 frame of a synthetic scene; the runs are
interleaved (unfused, fused, fused_camera_out, unfused, ...) so load drift hits all alike.

Reported per variant: median / p10 / p90 of the whole frame (preprocess + backend +
postprocess, what the node pays) and the median of each stage; ``ratio_fused_vs_unfused`` =
fused median / unfused median (target <= 1: fused no slower); the median relative depth
difference of each fused variant against the unfused one on that frame (target < 1 %); and
``/proc/loadavg`` before and after (the machine is shared).

The network: without ``--dispnet`` a conv net built here with onnx.helper (3x3 convolutions
3 -> C -> C -> 1, stride 1, sigmoid disparity; a few ms at 192x640 on 2 cores, like the node's
bench network), so the pre/post-processing share is visible; ``--dispnet`` exports the
ResNet-18 DispNet of the training package instead (about 95 ms on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def conv_disparity_model(path: Path, height: int, width: int, channels: int) -> Path:
    """A 3-layer conv net (disparity_sigmoid, opset 20) with fixed random weights, spec embedded."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from depth_ros.inference.onnx_export import embed_spec
    from depth_ros.inference.spec import ModelSpec

    rng = np.random.default_rng(0)
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=height, input_width=width, name="bench_conv_disp",
                     min_depth_m=0.5, max_depth_m=40.0, metric=True, scale_source="velocity_supervision")
    weights = {"w1": (channels, 3), "w2": (channels, channels), "w3": (1, channels)}
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, (o, i, 3, 3)).astype(np.float32), n) for n, (o, i) in weights.items()]
    pads = [1, 1, 1, 1]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=pads), helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=pads), helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], pads=pads), helper.make_node("Sigmoid", ["c3"], ["depth"]),
    ]
    graph = helper.make_graph(
        nodes, "bench_conv_disp",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, height, width])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    embed_spec(model, spec)
    onnx.save(model, str(path))
    return path


def dispnet_model(path: Path, height: int, width: int) -> Path:
    """The training package's ResNet-18 DispNet (finest disparity), exported with its spec."""
    import torch

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec
    from depth_ros_training.export import DepthExportWrapper
    from depth_ros_training.models.dispnet import DispNet

    torch.manual_seed(0)
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=height, input_width=width, name="dispnet18",
                     min_depth_m=0.5, max_depth_m=40.0, metric=True, scale_source="velocity_supervision")
    return export_onnx(DepthExportWrapper(DispNet(num_layers=18, num_scales=1)).eval(), spec, path)


def _frame(width: int, height: int) -> tuple[np.ndarray, Any]:
    """One rgb8 frame of a synthetic room and its camera (a seed no test uses)."""
    from depth_ros.synthetic import SynthConfig, render_sequence

    frame = next(iter(render_sequence(SynthConfig(width=width, height=height, seed=9241, scene="room", frames=1))))
    return frame.rgb, frame.camera


def _size(text: str) -> tuple[int, int]:
    """(a, b) of ``AxB``."""
    a, b = text.lower().split("x")
    return int(a), int(b)


def _stage_timer(pipe: Any, rgb: np.ndarray, camera: Any, stages: dict[str, list[float]]) -> Callable[[], Any]:
    """One frame through ``pipe``, each stage's seconds appended to ``stages``."""
    def run() -> Any:
        t0 = time.perf_counter()
        tensor = pipe.preprocess(rgb, camera)
        t1 = time.perf_counter()
        outputs, _ = pipe.infer(tensor)
        t2 = time.perf_counter()
        result = pipe.postprocess(outputs, rgb, camera)
        t3 = time.perf_counter()
        for name, dt in (("preprocess", t1 - t0), ("infer", t2 - t1), ("postprocess", t3 - t2), ("frame", t3 - t0)):
            stages[name].append(dt)
        return result
    return run


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values) * 1e3, q)), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--camera", default="640x480", help="camera WxH (rgb8)")
    parser.add_argument("--input", default="192x640", help="network input HxW")
    parser.add_argument("--channels", type=int, default=16, help="width of the conv net (without --dispnet)")
    parser.add_argument("--dispnet", action="store_true", help="the ResNet-18 DispNet instead of the conv net")
    args = parser.parse_args(argv)
    cam_w, cam_h = _size(args.camera)
    net_h, net_w = _size(args.input)

    from depth_ros.inference.backend import create_backend
    from depth_ros.inference.fused_io import FusedIOConfig, output_agreement
    from depth_ros.inference.onnx_export import export_fused_onnx
    from depth_ros.pipeline import FrameConfig, FramePipeline

    load_before = _loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        unfused = (dispnet_model(work / "net.onnx", net_h, net_w) if args.dispnet
                   else conv_disparity_model(work / "net.onnx", net_h, net_w, args.channels))
        paths = {
            "unfused": unfused,
            "fused": export_fused_onnx(unfused, work / "fused.onnx", FusedIOConfig(cam_w, cam_h, aspect="stretch")),
            "fused_camera_out": export_fused_onnx(unfused, work / "fused_cam.onnx", FusedIOConfig(
                cam_w, cam_h, aspect="stretch", output_at_camera_resolution=True)),
        }
        config = FrameConfig(aspect="stretch")
        pipes = {k: FramePipeline(create_backend(p, "onnxruntime-cpu", threads=args.threads), config) for k, p in paths.items()}
        rgb, camera = _frame(cam_w, cam_h)
        stages = {k: {s: [] for s in ("preprocess", "infer", "postprocess", "frame")} for k in pipes}
        runs = {k: _stage_timer(p, rgb, camera, stages[k]) for k, p in pipes.items()}
        depth = {k: run().depth_m for k, run in runs.items()}
        for _ in range(args.warmup):
            for run in runs.values():
                run()
        for s in stages.values():
            for values in s.values():
                values.clear()
        for _ in range(args.runs):
            for run in runs.values():
                run()
    timings = {
        k: {"frame_median_ms": _ms(s["frame"], 50), "frame_p10_ms": _ms(s["frame"], 10), "frame_p90_ms": _ms(s["frame"], 90),
            **{f"{name}_median_ms": _ms(s[name], 50) for name in ("preprocess", "infer", "postprocess")}}
        for k, s in stages.items()
    }
    base = statistics.median(stages["unfused"]["frame"])
    ratios = {f"ratio_{k}_vs_unfused": round(statistics.median(stages[k]["frame"]) / base, 3) for k in ("fused", "fused_camera_out")}
    parity = {f"depth_median_rel_diff_{k}": output_agreement(depth[k], depth["unfused"]) for k in ("fused", "fused_camera_out")}
    print(json.dumps({
        "camera": f"{cam_w}x{cam_h} rgb8", "network_input": f"{net_h}x{net_w}",
        "network": "dispnet18" if args.dispnet else f"conv3x3 C={args.channels}", "threads": args.threads,
        "runs": args.runs, "loadavg_before": load_before, "loadavg_after": _loadavg(),
        "timings": timings, **ratios, "target_met": max(ratios.values()) <= 1.0, **parity,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
