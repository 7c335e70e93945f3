"""``depth-ros-train eval`` throughput on a 640x480 synthetic bag, and what boundary F1 and
flicker cost relative to the plain metrics (issue 14, benchmark 10).

Prints one JSON document. A synthetic 640x480 bag with the object mask is rendered (not timed)
and a prediction bag is made from its truth (1.1 x a 3x3 box blur, so that every score has
work to do). Then:

* **end_to_end**: :func:`~depth_ros_training.eval.evaluate.evaluate` with ``--pred`` (read the
  prediction and truth bags, match stamps, score, summarise; no model run, no output files) in
  four settings: ``plain`` (the depth metrics, by range, scale ratio), ``boundary`` (+ Depth Pro
  boundary F1 and the object-mask boundary recall), ``flicker`` (+ temporal flicker from the
  odometry), ``all`` (both, the command's default). Frames per second of the median run, and
  each setting's time per frame as a ratio to ``plain``'s. Runs alternate between the settings
  so that load drift on a shared machine falls on all of them alike.
* **per_frame_ms**: the scoring alone on frames held in memory (medians): the plain metrics
  (:func:`~depth_ros_training.eval.evaluate.frame_metrics` without boundary), the boundary F1
  (:func:`~depth_ros_training.eval.boundary.si_boundary_f1`), the mask recall
  (:func:`~depth_ros_training.eval.boundary.si_boundary_recall`) and the flicker of one pair
  (:func:`~depth_ros_training.eval.temporal.pair_geometry` once + ``flicker_on`` three times, as
  the command does), with their ratios to the plain metrics.

Usage:
    python bench/bench_eval.py [--frames 20] [--repeats 3]

Measured on 2 shared cores (load average ~4, so noisy: compare the ratios), 20 frames, 3
repeats, two runs (second run in brackets):

* end to end, frames/s: plain 10.4 (11.5), boundary 4.6 (5.3), flicker 5.2 (5.7), all 3.2
  (3.7); time per frame relative to plain: boundary x2.28 (x2.16), flicker x2.02 (x2.03),
  all x3.29 (x3.12). Before the flicker shared its bilinear taps (one run): flicker x3.26,
  all x3.86.
* in memory, ms per 640x480 frame: plain metrics 40.6 (18.1), boundary F1 33.8 (16.9), mask
  recall 57.9 (37.2), flicker of one pair 75.8 (46.7); relative to the plain metrics:
  boundary F1 x0.83 (x0.93), mask recall x1.42 (x2.06), flicker x1.87 (x2.58).

* **synth_object_mask**: ``depth-ros synth``'s cost of the object mask (now on by default):
  :func:`~depth_ros.synthetic.write_bag` of the same 640x480 config with ``object_mask`` off and
  on, alternating (medians of wall and process CPU seconds), and the bag sizes.
* **odometry_ms**: :func:`~depth_ros_training.eval.odometry.evaluate_trajectory` (ATE and RPE,
  se3 and sim3) of the bag's camera trajectory against a drifting copy of it.

Third run (2026-12-06, same machine, load ~7, default 20 frames, 3 repeats): end to end
plain 7.3 frames/s, boundary x2.15, flicker x2.01, all x3.08 (2.4 frames/s); object mask in
``depth-ros synth``: CPU 1.05 -> 1.10 s (x1.05), wall 2.1 -> 2.4 s, bag 44.4 -> 56.7 MB for
20 frames; ATE + RPE of 20 poses 1.4 ms.

The end-to-end ``boundary`` setting includes reading the mask topic and both boundary
scores. In memory the plain metrics are a fraction of the plain setting's time per frame: the
rest is reading and decoding both bags, stamp matching and the by-range tables.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

SETTINGS = {
    "plain": dict(boundary=False, flicker=False),
    "boundary": dict(boundary=True, flicker=False),
    "flicker": dict(boundary=False, flicker=True),
    "all": dict(boundary=True, flicker=True),
}


def _blur3(depth: np.ndarray) -> np.ndarray:
    pad = np.pad(depth.astype(np.float64), 1, mode="edge")
    h, w = depth.shape
    return (sum(pad[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0).astype(np.float32)


def _make_bags(workdir: Path, frames: int) -> tuple[Path, Path, list[Any]]:
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter
    from depth_ros.msgconv import depth_image_fields, ns_to_stamp
    from depth_ros.synthetic import SynthConfig, render_sequence, write_bag

    config = SynthConfig(width=640, height=480, frames=frames, lidar_beams=0, object_mask=True)
    truth = write_bag(config, workdir / "truth.mcap")
    rendered = list(render_sequence(config))
    ts = output_typestore()
    T = ts.types
    pred = workdir / "pred.mcap"
    with BagWriter(pred, typestore=ts) as bag:
        bag.add_topic("/camera/depth/image", "sensor_msgs/msg/Image")
        for f in rendered:
            sec, nsec = ns_to_stamp(f.stamp_ns)
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="camera_optical_frame")
            image = T["sensor_msgs/msg/Image"](header=header, **depth_image_fields(1.1 * _blur3(f.depth_m), "32FC1"))
            bag.write("/camera/depth/image", image, f.stamp_ns)
    return truth, pred, rendered


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench_end_to_end(truth: Path, pred: Path, frames: int, repeats: int) -> dict[str, Any]:
    from depth_ros_training.eval.evaluate import EvalConfig, evaluate

    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    summaries: dict[str, Any] = {}
    for _ in range(repeats):
        for name, flags in SETTINGS.items():
            config = EvalConfig(**flags)
            t0 = time.perf_counter()
            [report] = evaluate([truth], config, preds=[pred])
            times[name].append(time.perf_counter() - t0)
            summaries[name] = report.summary
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "frames": frames,
        "fps": {name: round(frames / s, 1) for name, s in median.items()},
        "s_per_run": {name: round(s, 3) for name, s in median.items()},
        "time_ratio_to_plain": {name: round(s / median["plain"], 2) for name, s in median.items()},
        "checks": {
            "frames_scored": summaries["all"]["frames"],
            "boundary_f1": summaries["all"]["boundary"]["f1"],
            "mask_boundary_recall": summaries["all"]["mask_boundary_recall"]["recall"],
            "flicker_pairs": summaries["all"]["flicker"]["pairs"],
        },
    }


def bench_per_frame(rendered: list[Any], repeats: int) -> dict[str, Any]:
    from depth_ros_training.eval.boundary import si_boundary_f1, si_boundary_recall
    from depth_ros_training.eval.evaluate import EvalConfig, frame_metrics
    from depth_ros_training.eval.temporal import flicker_on, pair_geometry

    a, b = rendered[0], rendered[1]
    gt_a, gt_b = a.depth_m.astype(np.float64), b.depth_m.astype(np.float64)
    pred_a, pred_b = (1.1 * _blur3(a.depth_m)).astype(np.float64), (1.1 * _blur3(b.depth_m)).astype(np.float64)
    mask = a.instance_id > 0
    plain = EvalConfig(boundary=False, flicker=False)
    T_b_a = np.linalg.inv(b.T_world_cam) @ a.T_world_cam
    K = a.camera.K

    def flicker() -> None:
        geometry = pair_geometry(gt_a, T_b_a, K, gt_b)
        for x, y in ((pred_a, pred_b), (1.2 * pred_a, 1.2 * pred_b), (gt_a, gt_b)):
            flicker_on(geometry, x, y)

    ms = {
        "plain_metrics": _median_ms(lambda: frame_metrics(pred_a, gt_a, plain, dense=True), repeats),
        "boundary_f1": _median_ms(lambda: si_boundary_f1(pred_a, gt_a), repeats),
        "mask_recall": _median_ms(lambda: si_boundary_recall(pred_a, mask), repeats),
        "flicker_pair": _median_ms(flicker, repeats),
    }
    return {
        "resolution": "640x480",
        "ms": {k: round(v, 2) for k, v in ms.items()},
        "ratio_to_plain": {k: round(v / ms["plain_metrics"], 2) for k, v in ms.items()},
    }


def bench_synth_mask(workdir: Path, frames: int, repeats: int) -> dict[str, Any]:
    from depth_ros.synthetic import SynthConfig, write_bag

    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    size: dict[bool, int] = {}
    for _ in range(repeats):
        for on in (False, True):
            config = SynthConfig(width=640, height=480, frames=frames, object_mask=on)
            w0, c0 = time.perf_counter(), time.process_time()
            path = write_bag(config, workdir / f"mask_{on}.mcap", overwrite=True)
            wall[on].append(time.perf_counter() - w0)
            cpu[on].append(time.process_time() - c0)
            size[on] = path.stat().st_size
    med = {k: {on: statistics.median(v[on]) for on in (False, True)} for k, v in (("wall", wall), ("cpu", cpu))}
    return {
        "frames": frames,
        "wall_s": {"off": round(med["wall"][False], 2), "on": round(med["wall"][True], 2)},
        "cpu_s": {"off": round(med["cpu"][False], 2), "on": round(med["cpu"][True], 2)},
        "cpu_ratio_on_to_off": round(med["cpu"][True] / med["cpu"][False], 2),
        "bag_mb": {"off": round(size[False] / 1e6, 1), "on": round(size[True] / 1e6, 1)},
    }


def bench_odometry(rendered: list[Any], repeats: int) -> dict[str, Any]:
    from depth_ros_training.eval.odometry import evaluate_trajectory

    stamps = np.array([f.stamp_ns for f in rendered], np.int64)
    ref = np.stack([f.T_world_cam for f in rendered])
    est = ref.copy()
    est[:, :3, 3] *= 1.05  # 5 % scale drift
    ms = _median_ms(lambda: evaluate_trajectory(stamps, ref, stamps, est, 1_000_000), repeats)
    return {"poses": len(rendered), "ms": round(ms, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames of the 640x480 bag (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (default 3; medians)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        t0 = time.perf_counter()
        truth, pred, rendered = _make_bags(Path(tmp), args.frames)
        setup_s = time.perf_counter() - t0
        out = {
            "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
            "setup_s": round(setup_s, 1),
            "end_to_end": bench_end_to_end(truth, pred, args.frames, args.repeats),
            "per_frame_ms": bench_per_frame(rendered, max(5, 3 * args.repeats)),
            "synth_object_mask": bench_synth_mask(Path(tmp), args.frames, args.repeats),
            "odometry_ms": bench_odometry(rendered, max(5, 3 * args.repeats)),
            "note": "noisy on a shared machine: compare the ratios",
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
