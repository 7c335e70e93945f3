#!/usr/bin/env python3
"""Benchmark lens-distortion rectification (:mod:`depth_ros.core.distortion`) at 640x480, JSON.

* maps: building the rectification maps of one camera (once per camera; plumb_bob, equidistant).
* image: remapping one 640x480 rgb8 frame (bilinear, OpenCV fixed-point maps). Target: <= 2 ms.
* depth: remapping one 640x480 float32 depth label (nearest).
* copy: a plain copy of the same frame, the floor any per-frame image step pays.

Medians (and minima) of repeated runs, milliseconds; OpenCV's thread count is reported (it
uses all cores by default); on a shared machine compare ratios.

    python bench/bench_rectify.py [--repeats 50] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import platform
import numpy as np

from bench_pointcloud import timeit  # the same timing (warm-up, median / min ms)
from depth_ros.core.camera import CameraModel
from depth_ros.core.distortion import Rectifier

WIDTH, HEIGHT = 640, 480
K = np.array([[458.7, 0.0, 367.2], [0.0, 457.3, 248.4], [0.0, 0.0, 1.0]])  # a MAV camera (EuRoC-like)
CAMERAS = {
    "plumb_bob": CameraModel(WIDTH, HEIGHT, K, np.array([-0.283, 0.074, 1.9e-4, 1.8e-5, 0.0]), "plumb_bob"),
    "equidistant": CameraModel(WIDTH, HEIGHT, K, np.array([-0.01, 0.02, -0.01, 0.002]), "equidistant"),
}


def main() -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 10.0, (HEIGHT, WIDTH)).astype(np.float32)
    out: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "size": f"{WIDTH}x{HEIGHT}",
        "copy_rgb8": timeit(lambda: rgb.copy(), args.repeats),
    }
    for name, cam in CAMERAS.items():
        rect = Rectifier(cam)
        out[name] = {
            "maps": timeit(lambda cam=cam: Rectifier(cam), max(5, args.repeats // 10)),
            "image_rgb8": timeit(lambda rect=rect: rect.rectify_image(rgb), args.repeats),
            "depth_f32": timeit(lambda rect=rect: rect.rectify_depth(depth), args.repeats),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
