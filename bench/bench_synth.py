"""Synthetic renderer speed: frames/s at 640x480 and 416x128 on one core, and bag writing.

Usage: python bench/bench_synth.py [--frames N]. Prints one JSON object. Timings on a shared
machine are noisy; CPU time (process_time) is reported beside wall time for that reason.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from depth_ros.synthetic import Renderer, SynthConfig  # noqa: E402
from depth_ros.synthetic.bagio import write_bag  # noqa: E402


def bench_render(width: int, height: int, frames: int, **kw: object) -> dict:
    cfg = SynthConfig(width=width, height=height, frames=frames + 1, **kw)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    r = Renderer(cfg)
    build_s = time.perf_counter() - t0
    r.render(0)  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, frames + 1):
        r.render(i)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {
        "resolution": f"{width}x{height}",
        "options": kw,
        "frames": frames,
        "build_s": round(build_s, 3),
        "ms_per_frame_wall": round(1e3 * wall / frames, 2),
        "ms_per_frame_cpu": round(1e3 * cpu / frames, 2),
        "fps_wall": round(frames / wall, 1),
        "fps_cpu": round(frames / cpu, 1),
    }


def bench_bag(width: int, height: int, frames: int, suffix: str) -> dict:
    cfg = SynthConfig(width=width, height=height, frames=frames)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        path = write_bag(cfg, os.path.join(d, "bench" + suffix))
        wall = time.perf_counter() - t0
        size = path.stat().st_size
    return {"resolution": f"{width}x{height}", "storage": suffix, "frames": frames, "s": round(wall, 2), "fps": round(frames / wall, 1), "MB": round(size / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    out = {
        "render": [
            bench_render(640, 480, args.frames),
            bench_render(640, 480, args.frames, moving_objects=3),
            bench_render(416, 128, args.frames * 4),
        ],
        "bag": [bench_bag(640, 480, args.frames, ".mcap"), bench_bag(416, 128, args.frames * 2, ".mcap"), bench_bag(416, 128, args.frames * 2, ".db3")],
        "target": ">= 15 fps at 640x480 on one core",
        "note": "noisy (shared machine)",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
