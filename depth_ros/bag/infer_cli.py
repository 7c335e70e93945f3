"""``depth-ros infer``: bag-to-bag depth inference (see :mod:`depth_ros.bag.infer`).

Example::

    depth-ros infer in.mcap -o out.mcap --model model.onnx --scale lidar --lidar-topic /lidar/points

Progress goes to stderr (tqdm), the summary to stdout. User errors (a bag or model that cannot
be used, an option value out of range) are one line on stderr and exit code 1; malformed
command lines (a missing flag, a non-number) are argparse's usage error, exit code 2; Ctrl-C
or SIGTERM exits without leaving a partial output file.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from depth_ros.errors import DepthRosError

__all__ = ["add_arguments", "run"]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``infer`` flags (one per :class:`~depth_ros.bag.infer.InferConfig` field that users set)."""
    parser.add_argument("in_bag", metavar="IN_BAG", help="input rosbag2: .mcap or .db3 file, or a bag directory")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.mcap", help="output MCAP file (written atomically)")
    parser.add_argument("--model", required=True, metavar="M.onnx", help="model file (.onnx with its spec, or a checkpoint)")
    from depth_ros.inference.backend import BACKEND_CHOICES  # numpy only: cheap at --help time

    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="inference backend (default: auto)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the network (default: the backend's)")
    parser.add_argument("--image-topic", metavar="T", help="colour Image/CompressedImage topic (default: the only one)")
    parser.add_argument("--camera-info-topic", metavar="T", help="CameraInfo topic (default: <ns>/camera_info)")
    parser.add_argument("--lidar-topic", metavar="T", help="PointCloud2 topic for --scale lidar / lidar_shift")
    parser.add_argument(
        "--scale", default="auto", metavar="POLICY",
        help="metric scale: auto | none | fixed:S | canonical_focal | lidar | lidar_shift | ground:H "
        "(H = camera height in m); auto: the model's own if metric, else none",
    )
    parser.add_argument("--no-cloud", action="store_true", help="do not write the point cloud")
    parser.add_argument("--rgb-cloud", action="store_true", help="xyzrgb cloud coloured from the image")
    parser.add_argument("--decimation", type=int, default=1, metavar="N", help="cloud stride (default 1)")
    parser.add_argument("--min-range", type=float, default=0.0, metavar="M", help="nearest depth kept, metres")
    parser.add_argument("--max-range", type=float, default=math.inf, metavar="M", help="farthest depth kept, metres")
    parser.add_argument("--depth-16uc1", action="store_true", help="also write 16UC1 millimetre depth (<ns>/depth/image_raw)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N images")
    parser.add_argument(
        "--stamp-tolerance", type=float, default=0.0, metavar="S",
        help="largest image/camera_info stamp difference accepted, seconds (default 0: exact)",
    )
    parser.add_argument("--compression", choices=("none", "zstd"), default="none", help="output compression")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")



def config_from_args(args: argparse.Namespace) -> "Any":
    """An :class:`InferConfig` from the parsed flags (ValueError -> one-line DepthRosError)."""
    from depth_ros.bag.infer import InferConfig, parse_scale

    try:
        return InferConfig(
            image_topic=args.image_topic,
            camera_info_topic=args.camera_info_topic,
            lidar_topic=args.lidar_topic,
            stamp_tolerance_ns=int(round(args.stamp_tolerance * 1e9)),
            cloud=not args.no_cloud,
            rgb_cloud=args.rgb_cloud,
            decimation=args.decimation,
            min_range_m=args.min_range,
            max_range_m=args.max_range,
            scale=parse_scale(args.scale),
            depth_16uc1=args.depth_16uc1,
            max_frames=args.max_frames,
            overwrite=args.overwrite,
            backend=args.backend,
            threads=args.threads,
            compression=None if args.compression == "none" else args.compression,
        )
    except (ValueError, OverflowError) as exc:
        raise DepthRosError(f"bad option: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Run ``depth-ros infer``; returns the exit code (errors are raised as DepthRosError)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from depth_ros.bag.infer import infer_bag

    config = config_from_args(args)
    bar: Any = None

    def on_start(total: int) -> None:
        nonlocal bar
        if not args.no_progress:
            bar = tqdm(total=total, unit="frame", desc="infer", file=sys.stderr, dynamic_ncols=True)

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        # log records go through tqdm.write while the bar is shown, so they do not tear it
        with logging_redirect_tqdm():
            summary = infer_bag(args.in_bag, args.output, args.model, config, progress=progress, on_start=on_start)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(summary.format())
    return 0
