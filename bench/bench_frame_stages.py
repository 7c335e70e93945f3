"""Where a frame's non-network time goes, in-process (no DDS), and the message-fill cut.

    python bench/bench_frame_stages.py [--frames 60] [--width 640 --height 480] [--model M.onnx]

The depth node's per-frame path without its executor and transport: deserialisation of the
rgb8 Image (rclpy's, and the node's from the raw CDR bytes, :mod:`depth_ros.ros.raw_image`), then the frame pipeline's stages (decode, rectify, preprocess, infer,
postprocess; :mod:`depth_ros.timing`), the cloud, the fill of depth/image and depth/points
with the node's message builder and their rclpy serialisation (what ``publish`` does before
DDS takes the bytes). Medians over ``--frames`` frames, JSON on stdout.

``fill_ab``: the same depth image and cloud filled the way rclpy's constructor takes
``data=`` (it copies the array twice) and the way the builder does now
(:func:`depth_ros.ros.messages.with_data`: the payload array itself), interleaved in one run.
``cloud_ab``: the cloud and its fill as they were (every point's range tested again, one
broadcast multiply of the rays by z into a new array, copied into the payload) and as the node
does them now (the postprocessor's range kept, plane by plane, straight into a reused payload,
:class:`depth_ros.ros.messages.ReusedPayload`), interleaved; the bytes are checked equal.
``--keep-freed-memory``: the node's glibc setting (:func:`depth_ros.ros.memory.keep_freed_memory`)
first; run with and without it back to back to see what the page faults of fresh frame
buffers cost. The machine is shared: ``loadavg`` is printed, compare within one run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node_latency import conv_depth_model  # noqa: E402


def _timed(samples: dict[str, list[float]], name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    samples.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
    return out


def _medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {k: round(float(np.median(v)), 3) for k, v in samples.items()}


def _cloud_before(depth_m: np.ndarray, camera: Any, lo: float, hi: float) -> Any:
    """The xyz cloud's payload as the node made it before: range test, broadcast multiply, copy."""
    from depth_ros.core import pointcloud
    from depth_ros.ros.messages import to_byte_array

    z = pointcloud._masked_z(depth_m, 1, lo, hi)
    rays4 = _RAYS4.get(camera)
    if rays4 is None:
        rays4 = _RAYS4[camera] = np.concatenate([camera.pixel_rays(), np.zeros(z.shape + (1,), np.float32)], -1)
    buf = np.empty(z.shape + (4,), np.float32)
    np.multiply(rays4, z[..., None], out=buf)
    buf[..., 3] = 0.0
    return to_byte_array(buf.reshape(-1).view(np.uint8))


_RAYS4: dict[Any, np.ndarray] = {}


def _cloud_ab(pipe: Any, out: Any, build: Any, header: Any, frames: int) -> dict[str, float]:
    """Median ms of the cloud + fill before and now, interleaved (same bytes asserted)."""
    from depth_ros.ros.messages import ReusedPayload

    config = pipe.config
    pool = ReusedPayload()
    samples: dict[str, list[float]] = {}
    for _ in range(frames):
        before = _timed(samples, "before", lambda: build.pointcloud(
            pipe.cloud(out), header, payload=_cloud_before(out.depth_m, out.camera, config.min_range_m, config.max_range_m)))

        def now() -> Any:
            payload = pool.take(pipe.cloud_nbytes(out))
            return build.pointcloud(pipe.cloud(out, out=payload), header, payload=payload)

        now_msg = _timed(samples, "now", now)
        assert bytes(before.data) == bytes(now_msg.data), "the two clouds differ"
        del before, now_msg
    result = _medians(samples)
    result["speedup"] = round(result["before"] / result["now"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--keep-freed-memory", action="store_true", help="the depth node's malloc setting")
    args = parser.parse_args(argv)
    if args.keep_freed_memory:
        from depth_ros.ros.memory import keep_freed_memory

        keep_freed_memory()

    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from depth_ros.inference.backend import create_backend
    from depth_ros.pipeline import FrameConfig, FramePipeline
    from depth_ros.ros.messages import ReusedPayload, rclpy_builder, to_byte_array, with_data
    from depth_ros.ros.raw_image import image_from_cdr
    from depth_ros.timing import StageTimer, non_network_ms

    model = args.model or conv_depth_model(Path(tempfile.mkdtemp(prefix="depth_ros_stages_")) / "bench_conv.onnx")
    pipe = FramePipeline(create_backend(str(model), "onnxruntime-cpu"), FrameConfig(max_range_m=100.0),
                         contract_checked=True)
    w, h = args.width, args.height
    f = 0.8 * w
    info = CameraInfo(width=w, height=h, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[f, 0.0, (w - 1) / 2, 0.0, f, (h - 1) / 2, 0.0, 0.0, 1.0])
    rgb = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    image = with_data(Image, {"height": h, "width": w, "encoding": "rgb8", "step": w * 3}, to_byte_array(rgb.reshape(-1)))
    image.header.frame_id = "camera_optical_frame"
    wire = serialize_message(image)
    build = rclpy_builder()
    cloud_pool = ReusedPayload()

    stages: dict[str, list[float]] = {}
    io: dict[str, list[float]] = {}
    non_network: list[float] = []
    for i in range(args.frames + 3):  # 3 warm-up frames
        _timed(io, "deserialize_image_rclpy", lambda: deserialize_message(wire, Image))
        msg = _timed(io, "deserialize_image_raw", lambda: image_from_cdr(wire))  # what the node does
        timer = StageTimer()
        with timer.stage("decode"):
            frame, camera = pipe.decode(msg, info, False)
        with timer.stage("rectify"):
            frame, camera = pipe.rectify(frame, camera, info)
        out = pipe.run(frame, camera, None, timer)
        with timer.stage("fill_depth"):
            depth_msg = build.depth_image(out.depth_m, msg.header)
        with timer.stage("fill_info"):
            info_msg = build.camera_info_for(info, out.camera, msg.header)
        with timer.stage("cloud"):  # as the node does
            payload = cloud_pool.take(pipe.cloud_nbytes(out))
            cloud = pipe.cloud(out, out=payload)
        with timer.stage("fill_cloud"):
            cloud_msg = build.pointcloud(cloud, msg.header, payload=payload)
        del payload
        _timed(io, "serialize_depth", lambda: serialize_message(depth_msg))
        _timed(io, "serialize_info", lambda: serialize_message(info_msg))
        _timed(io, "serialize_cloud", lambda: serialize_message(cloud_msg))
        if i < 3:
            stages.clear(), io.clear()
            continue
        for k, v in timer.ms.items():
            stages.setdefault(k, []).append(v)
        non_network.append(non_network_ms(timer.ms))

    # the fill, before (rclpy's constructor with data=) and after (with_data), interleaved
    depth_payload = to_byte_array(np.ascontiguousarray(out.depth_m).reshape(-1).view(np.uint8))
    cloud_payload = to_byte_array(cloud.reshape(-1).view(np.uint8))
    fill: dict[str, list[float]] = {}
    for _ in range(args.frames):
        _timed(fill, "depth_image_ctor_data", lambda: Image(height=h, width=w, encoding="32FC1", step=w * 4, data=depth_payload))
        _timed(fill, "depth_image_with_data", lambda: with_data(Image, {"height": h, "width": w, "encoding": "32FC1",
                                                                          "step": w * 4}, depth_payload))
        _timed(fill, "cloud_ctor_data", lambda: PointCloud2(height=h, width=w, point_step=16, data=cloud_payload))
        _timed(fill, "cloud_with_data", lambda: with_data(PointCloud2, {"height": h, "width": w, "point_step": 16},
                                                          cloud_payload))
    cloud_ab = _cloud_ab(pipe, out, build, msg.header, args.frames)
    result = {
        "bench": "frame_stages",
        "image": f"{w}x{h} rgb8",
        "model": Path(model).name,
        "frames": args.frames,
        "keep_freed_memory": args.keep_freed_memory,
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "stage_ms": _medians(stages),
        "non_network_ms_with_cloud": round(float(np.median(non_network)), 3),
        "rclpy_serialisation_ms": _medians(io),
        "fill_ab_ms": _medians(fill),
        "cloud_ab_ms": cloud_ab,
        "note": "noisy (shared machine); medians; compare within one run",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
