"""Bag-to-bag inference end to end vs backend-only time (issue 2, benchmark 11c).

Prints one JSON document. A synthetic 640x480 bag is rendered, a ResNet-18 DispNet is exported
to ONNX, and the same frames are run

* **backend only**: ``backend.infer`` on the frames, preprocessed beforehand (not timed);
* **end to end**: ``infer_bag`` (read + decode + preprocess + backend + postprocess + cloud +
  serialise + write, output copies of the inputs, atomic rename), wall time.

``overhead = end_to_end / backend_only - 1`` (target <= 0.10): runs alternate B E B E ... B
and each end-to-end run is compared with the mean of the backend-only runs around it; the
median over the pairs is reported. On a shared machine the load drifts between runs by about
as much as the overhead itself, so also reported is ``overhead_in_run = (wall - backend) /
backend`` with the backend timed inside the same run (same frames, same moment; median over
runs): the steadier figure. ``stages_ms_per_frame`` breaks the fastest run down by stage. ``decode`` compares reading and
decoding the image topic with rosbags (what the pipeline uses) and with the ``mcap`` +
``mcap-ros2-support`` fast path, per image; ``writers`` compares writing one frame's outputs
with rosbags' MCAP writer, the ``mcap`` package's writer and BagWriter (what the pipeline
uses: depth_ros.bag.mcap_writer).

Usage:
    python bench/bench_infer.py [--frames 15] [--repeats 7] [--net 480x640] [--threads N]
        [--train-image HxW] [--variants]

``--train-image`` records a training image size in the model's spec: a camera of another aspect
is then cropped to it (the default aspect policy; ``--aspect pad`` / ``stretch`` for the others).
Without it the spec has no trained aspect and every camera is stretched to the input, as before.

``--variants`` also runs end to end with the reader / writer stages in threads beside the
network (the default only for GPU backends), without the cloud, with the xyzrgb cloud, with
decimation 2, with zstd output compression, and with ONNX Runtime's workers spinning between
runs (its default; infer_bag turns it off).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w)


def _make_bag(workdir: Path, frames: int, width: int, height: int) -> tuple[Path, float]:
    from depth_ros.synthetic import SynthConfig, write_bag

    config = SynthConfig(width=width, height=height, frames=frames, lidar_beams=0, jpeg=False)
    t0 = time.perf_counter()
    path = write_bag(config, workdir / "in.mcap")
    return path, time.perf_counter() - t0


def _make_model(workdir: Path, net_h: int, net_w: int, train_image: tuple[int, int] | None = None) -> Path:
    import torch

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec
    from depth_ros_training.export import DepthExportWrapper
    from depth_ros_training.models.dispnet import DispNet

    torch.manual_seed(0)
    net = DepthExportWrapper(DispNet(num_layers=18, num_scales=1)).eval()
    spec = ModelSpec(
        output_kind="disparity_sigmoid", input_height=net_h, input_width=net_w, metric=True,
        min_depth_m=0.1, max_depth_m=50.0, name="dispnet18", scale_source="velocity_supervision",
        **({} if train_image is None else {"train_image_height_px": train_image[0], "train_image_width_px": train_image[1]}),
    )
    return export_onnx(net, spec, workdir / "dispnet18.onnx")


def _inputs(bag: Path, spec: Any, aspect: str) -> list[np.ndarray]:
    """The network inputs of every frame, made by the same code the pipeline runs."""
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader
    from depth_ros.core.preprocess import preprocess

    images, infos = {}, {}
    with BagReader(bag) as reader:
        for raw in reader.messages(["/camera/image_raw", "/camera/camera_info"]):
            msg = reader.deserialize(raw)
            (images if raw.topic == "/camera/image_raw" else infos)[msgconv.stamp_to_ns(msg.header.stamp)] = msg
    out = []
    for stamp in sorted(images):
        camera = msgconv.camera_info_to_model(infos[stamp])
        out.append(preprocess(msgconv.image_to_rgb(images[stamp]), camera, spec, aspect).tensor)
    return out


def _backend_only(backend: Any, inputs: list[np.ndarray]) -> float:
    t0 = time.perf_counter()
    for x in inputs:
        backend.infer(x)
    return time.perf_counter() - t0


def _end_to_end(bag: Path, out: Path, backend: Any, **config: Any) -> tuple[float, Any]:
    from depth_ros.bag.infer import InferConfig, infer_bag

    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    summary = infer_bag(bag, out, backend, InferConfig(**config))
    return time.perf_counter() - t0, summary


def _decode_rates(bag: Path) -> dict[str, float]:
    """Per-image ms to read + decode /camera/image_raw and convert to RGB (bag already open)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    with BagReader(bag) as reader:
        for raw in reader.messages(["/camera/image_raw"]):  # first pass: builds rosbags' decoders
            reader.deserialize(raw)
            break
        t0 = time.perf_counter()
        n = 0
        for raw in reader.messages(["/camera/image_raw"]):
            msgconv.image_to_rgb(reader.deserialize(raw))
            n += 1
        rosbags_ms = (time.perf_counter() - t0) / n * 1e3
    with bag.open("rb") as f:
        messages = make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(topics=["/camera/image_raw"])
        next(messages)
        t0 = time.perf_counter()
        n = 0
        for _, _, _, msg in messages:
            msgconv.image_to_rgb(msg)
            n += 1
        mcap_ms = (time.perf_counter() - t0) / max(n, 1) * 1e3
    return {"rosbags_ms_per_image": round(rosbags_ms, 3), "mcap_ros2_ms_per_image": round(mcap_ms, 3)}


def _writer_rates(workdir: Path, height: int, width: int, frames: int) -> dict[str, float]:
    """ms per frame to serialise and write one frame's outputs (image copy, 32FC1 depth, xyz
    cloud, camera_info) with rosbags' MCAP writer, the mcap package's writer, and BagWriter."""
    from mcap.writer import CompressionType, Writer as McapWriter
    from rosbags.rosbag2 import StoragePlugin, Writer as RosbagsWriter

    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter

    ts = output_typestore()
    T = ts.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam")
    image = T["sensor_msgs/msg/Image"](
        header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width,
        data=np.zeros(height * width * 3, np.uint8),
    )
    depth = T["sensor_msgs/msg/Image"](
        header=header, height=height, width=width, encoding="32FC1", is_bigendian=0, step=4 * width,
        data=np.zeros(height * width * 4, np.uint8),
    )
    fields = [T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    cloud = T["sensor_msgs/msg/PointCloud2"](
        header=header, height=height, width=width, fields=fields, is_bigendian=False, point_step=16,
        row_step=16 * width, data=np.zeros(height * width * 16, np.uint8), is_dense=False,
    )
    msgs = [("/image", "sensor_msgs/msg/Image", image), ("/depth", "sensor_msgs/msg/Image", depth),
            ("/points", "sensor_msgs/msg/PointCloud2", cloud)]

    def rosbags_writer(path: Path) -> None:
        with RosbagsWriter(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {topic: w.add_connection(topic, t, typestore=ts) for topic, t, _ in msgs}
            for i in range(frames):
                for topic, t, m in msgs:
                    w.write(conns[topic], i, ts.serialize_cdr(m, t))

    def mcap_package_writer(path: Path) -> None:
        with path.open("wb") as f:
            w = McapWriter(f, compression=CompressionType.NONE)
            w.start("ros2", "bench")
            ids = {}
            for topic, t, _ in msgs:
                sid = w.register_schema(t, "ros2msg", ts.generate_msgdef(t, ros_version=2)[0].encode())
                ids[topic] = w.register_channel(topic, "cdr", sid)
            for i in range(frames):
                for topic, t, m in msgs:
                    w.add_message(ids[topic], i, bytes(ts.serialize_cdr(m, t)), i)
            w.finish()

    def bagwriter(path: Path) -> None:
        with BagWriter(path.with_suffix(".mcap"), typestore=ts) as bag:
            for topic, t, _ in msgs:
                bag.add_topic(topic, t)
            for i in range(frames):
                for topic, _, m in msgs:
                    bag.write(topic, m, i)

    def raw_file(path: Path) -> None:
        with path.open("wb") as f:
            for _ in range(frames):
                for _, _, m in msgs:
                    f.write(m.data)

    out: dict[str, float] = {}
    writers = {"rosbags_writer": rosbags_writer, "mcap_package_writer": mcap_package_writer,
               "bagwriter": bagwriter, "raw_file_write": raw_file}
    best = {name: math.inf for name in writers}
    for repeat in range(3):  # interleaved; best of three against load noise
        for name, fn in writers.items():
            path = workdir / f"w_{name}_{repeat}"
            t0 = time.perf_counter()
            fn(path)
            best[name] = min(best[name], time.perf_counter() - t0)
            for p in workdir.glob(f"w_{name}_{repeat}*"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    for name, seconds in best.items():
        out[f"{name}_ms_per_frame"] = round(seconds / frames * 1e3, 2)
    out["mb_per_frame"] = round(sum(len(m.data) for _, _, m in msgs) / 1e6, 2)
    return out


def _stages(summary: Any) -> dict[str, float]:
    n = max(summary.frames_out, 1)
    return {k: round(v / n * 1e3, 2) for k, v in summary.timing_s.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--camera", type=_size, default=(480, 640), help="camera HxW (default 480x640)")
    parser.add_argument("--net", type=_size, default=(480, 640), help="network input HxW (default 480x640)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    parser.add_argument("--train-image", type=_size, default=None, help="training image HxW recorded in the spec (its aspect is cropped to)")
    parser.add_argument("--aspect", default=None, help="aspect policy (default: FrameConfig's)")
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--writers-only", action="store_true", help="only the writer comparison (no model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    from depth_ros.inference.backend import create_backend
    from depth_ros.pipeline import FrameConfig

    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        workdir = Path(tmp)
        (cam_h, cam_w), (net_h, net_w) = args.camera, args.net
        if args.writers_only:
            json.dump({"writers": _writer_rates(workdir, cam_h, cam_w, args.frames)}, sys.stdout, indent=2)
            print()
            return 0
        bag, synth_s = _make_bag(workdir, args.frames, cam_w, cam_h)
        t0 = time.perf_counter()
        model = _make_model(workdir, net_h, net_w, args.train_image)
        frame = FrameConfig() if args.aspect is None else FrameConfig(aspect=args.aspect)
        export_s = time.perf_counter() - t0
        # as infer_bag creates it from a path: ONNX Runtime workers do not spin between runs
        options: dict[str, Any] = {"allow_spinning": False}
        if args.threads:
            options["threads"] = args.threads
        backend = create_backend(model, backend="onnxruntime-cpu", **options)
        inputs = _inputs(bag, backend.spec, frame.aspect)
        out = workdir / "out.mcap"
        _backend_only(backend, inputs[:2])  # warm-up
        # B0 E0 B1 E1 ... E(n-1) Bn: each end-to-end run against the mean of the backend-only
        # runs just before and after it, so slow load drift cancels pair by pair.
        backend_s, e2e_s, summaries = [_backend_only(backend, inputs)], [], []
        for _ in range(args.repeats):
            wall, summary = _end_to_end(bag, out, backend, frame=frame)
            e2e_s.append(wall)
            summaries.append(summary)
            backend_s.append(_backend_only(backend, inputs))
        frames = len(inputs)
        pair_overheads = [e / ((backend_s[i] + backend_s[i + 1]) / 2) - 1.0 for i, e in enumerate(e2e_s)]
        in_run = [(s.wall_s - s.timing_s["backend"]) / s.timing_s["backend"] for s in summaries]
        backend_med, e2e_med = statistics.median(backend_s), statistics.median(e2e_s)
        best = summaries[int(np.argmin(e2e_s))]
        result: dict[str, Any] = {
            "benchmark": "bag-to-bag inference vs backend only (issue 2, 11c)",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "note": "noisy (shared machine)"},
            "camera": f"{cam_w}x{cam_h}",
            "network_input": f"{net_w}x{net_h}",
            "train_image": None if args.train_image is None else f"{args.train_image[1]}x{args.train_image[0]}",
            "aspect": frame.aspect,
            "model": "ResNet-18 DispNet (disparity_sigmoid), ONNX",
            "backend": backend.name,
            "ort_allow_spinning": False,
            "frames": frames,
            "repeats": args.repeats,
            "backend_only_ms_per_frame": round(backend_med / frames * 1e3, 2),
            "end_to_end_ms_per_frame": round(e2e_med / frames * 1e3, 2),
            "end_to_end_fps": round(frames / e2e_med, 2),
            "overhead": round(statistics.median(pair_overheads), 4),
            "overhead_target": 0.10,
            "overhead_pairs": [round(v, 3) for v in pair_overheads],
            "overhead_in_run": round(statistics.median(in_run), 4),
            "overhead_in_run_all": [round(v, 3) for v in in_run],
            "stages_ms_per_frame": _stages(best),
            "output_mb_per_frame": round(best.bytes_written / frames / 1e6, 2),
            "all_backend_only_s": [round(v, 3) for v in backend_s],
            "all_end_to_end_s": [round(v, 3) for v in e2e_s],
            "decode": _decode_rates(bag),
            "writers": _writer_rates(workdir, cam_h, cam_w, frames),
            "setup_s": {"synth_bag": round(synth_s, 1), "onnx_export": round(export_s, 1)},
        }
        if args.variants:
            variants = {}
            for name, config in {
                "overlapped_stages": {"overlap": True},
                "no_cloud": {"cloud": False},
                "rgb_cloud": {"rgb_cloud": True},
                "decimation_2": {"decimation": 2},
                "zstd": {"compression": "zstd"},
            }.items():
                base = _backend_only(backend, inputs)
                wall, summary = _end_to_end(bag, out, backend, frame=frame, **config)
                variants[name] = {
                    "overhead": round(wall / base - 1.0, 4),
                    "stages_ms_per_frame": _stages(summary),
                    "output_mb_per_frame": round(summary.bytes_written / frames / 1e6, 2),
                }
            spinning = create_backend(model, backend="onnxruntime-cpu", **{**options, "allow_spinning": True})
            _backend_only(spinning, inputs[:2])
            base = _backend_only(spinning, inputs)
            wall, summary = _end_to_end(bag, out, spinning, frame=frame)
            variants["ort_spinning"] = {
                "backend_only_ms_per_frame": round(base / frames * 1e3, 2),
                "overhead": round(wall / base - 1.0, 4),
                "stages_ms_per_frame": _stages(summary),
            }
            result["variants"] = variants
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
