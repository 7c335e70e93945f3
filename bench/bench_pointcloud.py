#!/usr/bin/env python3
"""Benchmark the per-frame core at 640x480 and print JSON.

* cloud: organized xyzrgb cloud (depth_image_proc layout) from a 640x480 depth image,
  vectorized (:func:`depth_ros.core.pointcloud.make_cloud`) vs a straightforward per-point
  Python loop; also xyz only and decimation 2. Target: vectorized <= 5 ms.
* resize: Pillow (what preprocess uses) vs a vectorized numpy bilinear resize, 640x480 ->
  640x192 and -> 1024x320 (the choice behind preprocess.resize_rgb). Target: < 3 ms.
* preprocess: full :func:`preprocess` (resize + normalize + layout) at both sizes.
* postprocess: :class:`DepthPostprocessor` from a 192x640 network output to 640x480 for the
  policies model, sparse_alignment (2,000 LiDAR points) and ground_plane.

Timings are medians (and minima) of repeated runs, in milliseconds; on a shared machine
they are noisy, so compare ratios.

    python bench/bench_pointcloud.py [--repeats 30]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import struct
import time
from typing import Callable

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import XYZRGB_DTYPE, make_cloud
from depth_ros.core.postprocess import DepthPostprocessor, PostprocessConfig
from depth_ros.core.preprocess import preprocess, resize_rgb
from depth_ros.core.scale import ScaleConfig
from depth_ros.inference.spec import ModelSpec

WIDTH, HEIGHT = 640, 480


def timeit(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm caches (rays, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": round(1e3 * float(np.median(times)), 3), "min_ms": round(1e3 * min(times), 3)}


def cloud_loop(depth_m: np.ndarray, rgb: np.ndarray, camera: CameraModel) -> bytearray:
    """The straightforward per-point version: one struct.pack_into per point."""
    h, w = depth_m.shape
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    out = bytearray(h * w * 32)
    pack = struct.Struct("<fff4xf12x").pack_into
    depth_rows = depth_m.tolist()
    rgb_rows = rgb.tolist()
    nan = float("nan")
    offset = 0
    for v in range(h):
        drow, crow = depth_rows[v], rgb_rows[v]
        for u in range(w):
            z = drow[u]
            r, g, b = crow[u]
            colour = struct.unpack("<f", struct.pack("<I", (r << 16) | (g << 8) | b))[0]
            if math.isfinite(z) and z > 0:
                pack(out, offset, (u - cx) / fx * z, (v - cy) / fy * z, z, colour)
            else:
                pack(out, offset, nan, nan, nan, colour)
            offset += 32
    return out


def resize_numpy(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Separable bilinear resize in numpy (edges to edges, no antialiasing), uint8 out."""
    in_h, in_w = rgb.shape[:2]

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(pos).astype(np.intp)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (pos - i0).astype(np.float32)

    y0, y1, fy = taps(height, in_h)
    x0, x1, fx = taps(width, in_w)
    img = rgb.astype(np.float32)
    rows = img[y0] * (1 - fy)[:, None, None] + img[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.rint(out).astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    camera = CameraModel.from_intrinsics(WIDTH, HEIGHT, 525.0, 525.0, 319.5, 239.5)
    depth_m = rng.uniform(0.5, 20.0, (HEIGHT, WIDTH)).astype(np.float32)
    depth_m[rng.random((HEIGHT, WIDTH)) < 0.05] = np.nan
    rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "note": "noisy (shared machine); medians of repeated runs",
        "repeats": args.repeats,
    }

    # -- cloud ---------------------------------------------------------------------------
    vec = timeit(lambda: make_cloud(depth_m, camera, rgb), args.repeats)
    t0 = time.perf_counter()
    loop_bytes = cloud_loop(depth_m, rgb, camera)
    loop_ms = 1e3 * (time.perf_counter() - t0)
    loop_cloud = np.frombuffer(bytes(loop_bytes), dtype=XYZRGB_DTYPE).reshape(HEIGHT, WIDTH)
    cloud = make_cloud(depth_m, camera, rgb)
    same = all(
        np.allclose(cloud[n], loop_cloud[n], rtol=1e-6, atol=1e-6, equal_nan=True) for n in ("x", "y", "z")
    ) and np.array_equal(cloud["rgb"].view(np.uint32), loop_cloud["rgb"].view(np.uint32))
    report["cloud_xyzrgb_640x480"] = {
        "vectorized": vec,
        "python_loop_ms": round(loop_ms, 1),
        "speedup": round(loop_ms / vec["median_ms"], 1),
        "same_result": bool(same),
        "target_ms": 5.0,
        "meets_target": vec["median_ms"] <= 5.0,
    }
    report["cloud_xyz_640x480"] = timeit(lambda: make_cloud(depth_m, camera), args.repeats)
    report["cloud_xyzrgb_640x480_decimation2"] = timeit(lambda: make_cloud(depth_m, camera, rgb, 2), args.repeats)

    # -- resize and preprocess -----------------------------------------------------------
    for w, h in ((640, 192), (1024, 320)):
        pil = timeit(lambda: resize_rgb(rgb, w, h), args.repeats)
        npy = timeit(lambda: resize_numpy(rgb, w, h), args.repeats)
        spec = ModelSpec(output_kind="disparity_sigmoid", input_height=h, input_width=w)
        report[f"resize_640x480_to_{w}x{h}"] = {"pillow": pil, "numpy": npy, "target_ms": 3.0,
                                               "meets_target": pil["median_ms"] < 3.0}
        report[f"preprocess_640x480_to_{w}x{h}"] = timeit(lambda: preprocess(rgb, camera, spec), args.repeats)

    # -- postprocess ---------------------------------------------------------------------
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=192, input_width=640, metric=True)
    outputs = {"depth": rng.uniform(0.2, 0.8, (1, 1, 192, 640)).astype(np.float32)}
    post = {}
    lidar = np.stack([rng.uniform(-5, 5, 2000), rng.uniform(-2, 2, 2000), rng.uniform(2, 20, 2000)], axis=1)
    for policy, extra in (
        ("model", {}),
        ("sparse_alignment", {}),
        ("ground_plane", {"camera_height_m": 1.2}),
    ):
        pp = DepthPostprocessor(spec, PostprocessConfig(max_range_m=50.0, scale=ScaleConfig(policy=policy, **extra)))
        points = lidar.astype(np.float32) if policy == "sparse_alignment" else None

        def step(pp: DepthPostprocessor = pp, points: np.ndarray | None = points) -> None:
            pp.reset()
            try:
                pp(outputs, camera, points)
            except ValueError:  # random depth has no ground plane: the search cost is what counts
                pass

        post[policy] = timeit(step, args.repeats)
    report["postprocess_192x640_to_640x480"] = post
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
