"""``depth-ros infer``: bag-to-bag depth inference (see :mod:`depth_ros.bag.infer`).

Example::

    depth-ros infer in.mcap -o out.mcap --model model.onnx --scale lidar --lidar-topic /lidar/points
    depth-ros infer in.mcap -o out.mcap --model depth.onnx --pose-model pose.onnx   # + <ns>/odom

With ``--pose-model``, the pose node's visual odometry is written too (nav_msgs/Odometry on
``<ns>/odom``, :class:`depth_ros.pose_pipeline.PosePipeline`: the node's code and defaults;
``--pose-max-gap`` is its ``max_gap_s``), so ``depth-ros-train eval --pred`` can score its
trajectory (ATE / RPE) without recording the live node.

A model that predicts its field of view (a Depth Pro export: spec ``extra["fov_output"]``) makes the
camera of a frame whose camera_info is unusable (K all zeros, no camera_info; also a bag with no
CameraInfo topic at all) from its prediction; DepthInfo's scale_source then ends in ``_predicted``
(:mod:`depth_ros.core.focal_fallback`). A valid camera_info is always used as it is.

The frame flags (range, scale policy and its fields, cloud, encoding) are generated from
:class:`depth_ros.pipeline.FrameConfig`: the depth node's parameters of the same names (``-``
for ``_``), with the same defaults (range 0.1-20 m, scale policy auto, cloud on, 32FC1); images
pair with their camera_info within 1 ms, as in the node.

Progress goes to stderr (tqdm), the summary to stdout. User errors (a bag or model that cannot
be used, an option value out of range) are one line on stderr and exit code 1; malformed
command lines (a missing flag, a non-number) are argparse's usage error, exit code 2; Ctrl-C
or SIGTERM exits without leaving a partial output file.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from depth_ros.errors import DepthRosError

__all__ = ["add_arguments", "add_pose_arguments", "pose_config_from_args", "run"]

#: Older spellings of the frame flags, kept as aliases of the generated ones.
FRAME_FLAG_ALIASES: dict[str, tuple[str, ...]] = {
    "min_range_m": ("--min-range",),
    "max_range_m": ("--max-range",),
    "publish_cloud": ("--no-cloud",),
    "cloud_rgb": ("--rgb-cloud",),
    "cloud_decimation": ("--decimation",),
    "scale_policy": ("--scale",),
}


def frame_flag(name: str, default: Any) -> str:
    """The ``depth-ros infer`` flag of FrameConfig field ``name``: ``--`` + the name with ``-``
    for ``_`` (``--no-...`` for a setting that is on by default)."""
    dashed = name.replace("_", "-")
    return f"--no-{dashed}" if default is True else f"--{dashed}"


def _add_frame_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`~depth_ros.pipeline.FrameConfig` field (the depth node's parameters
    of the same names), its help and default from the field's description."""
    import dataclasses

    from depth_ros.config_fields import param_info
    from depth_ros.pipeline import FrameConfig

    group = parser.add_argument_group(
        "frame pipeline (the depth node's parameters of the same names, with the same defaults)")
    for f in dataclasses.fields(FrameConfig):
        info = param_info(FrameConfig, f.name)
        flags = (frame_flag(f.name, f.default),) + FRAME_FLAG_ALIASES.get(f.name, ())
        kwargs: dict[str, Any] = {"dest": f.name, "default": None}
        if f.name == "scale_policy":
            kwargs.update(metavar="POLICY", help=(
                "metric scale: auto | model | none | fixed:S | canonical_focal | sparse_alignment | lidar | "
                "lidar_shift | ground:H (S = depth multiplier, H = camera height in m; lidar = sparse_alignment "
                "with sparse mode scale, lidar_shift = scale_shift, both need --lidar-topic); auto: the model's own "
                "scale if metric, else LiDAR alignment with --lidar-topic, else none (default: auto)"))
        elif isinstance(f.default, bool):
            kwargs.update(action="store_const", const=not f.default, help=f"{info.description} (default: {'on' if f.default else 'off'})")
        elif isinstance(f.default, tuple):
            kwargs.update(type=float, nargs=len(f.default), metavar="X",
                          help=f"{info.description} (default: {' '.join(f'{v:g}' for v in f.default)})")
        else:
            kwargs.update(type=type(f.default), help=f"{info.description} (default: {f.default})")
            if info.choices is not None:
                kwargs["choices"] = info.choices
            else:
                kwargs["metavar"] = "N" if isinstance(f.default, int) else "X"
        group.add_argument(*flags, **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``infer`` flags (one per :class:`~depth_ros.bag.infer.InferConfig` field that users set,
    and one per :class:`~depth_ros.pipeline.FrameConfig` field)."""
    from depth_ros.pipeline import SYNC_TOLERANCE_MS

    parser.add_argument("in_bag", metavar="IN_BAG", help="input rosbag2: .mcap or .db3 file, or a bag directory")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.mcap", help="output MCAP file (written atomically)")
    parser.add_argument("--model", required=True, metavar="M.onnx", help="model file (.onnx with its spec, or a checkpoint)")
    add_pose_arguments(parser)
    from depth_ros.inference.backend import BACKEND_CHOICES  # numpy only: cheap at --help time

    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="inference backend (default: auto)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the network (default: the backend's)")
    parser.add_argument("--image-topic", metavar="T", help="colour Image/CompressedImage topic (default: the only one)")
    parser.add_argument("--camera-info-topic", metavar="T", help="CameraInfo topic (default: <ns>/camera_info; a bag with "
                        "none runs on the predicted camera of a model with a field-of-view output)")
    parser.add_argument("--lidar-topic", metavar="T", help="PointCloud2 topic for --scale lidar / lidar_shift / sparse_alignment")
    parser.add_argument("--depth-16uc1", action="store_true", help="also write 16UC1 millimetre depth (<ns>/depth/image_raw)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N images")
    parser.add_argument(
        "--stamp-tolerance", type=float, default=SYNC_TOLERANCE_MS * 1e-3, metavar="S",
        help="largest image/camera_info stamp difference accepted, seconds (default "
        f"{SYNC_TOLERANCE_MS * 1e-3:g}: the depth node's sync_tolerance_ms; 0: exact)",
    )
    parser.add_argument("--compression", choices=("none", "zstd"), default="none", help="output compression")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_frame_arguments(parser)


def add_pose_arguments(parser: argparse.ArgumentParser) -> None:
    """``--pose-model`` and ``--pose-max-gap`` (shared by ``depth-ros infer`` and ``depth-ros-train eval``)."""
    from depth_ros.pose_pipeline import PoseConfig

    parser.add_argument("--pose-model", metavar="P.onnx",
                        help="pose_6dof model: also write its visual odometry (<ns>/odom), as the pose node computes it")
    parser.add_argument("--pose-max-gap", type=float, default=PoseConfig.max_gap_s, metavar="S",
                        help=f"with --pose-model: frames further apart reset the odometry, seconds (default {PoseConfig.max_gap_s:g}: the pose node's max_gap_s)")


def pose_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~depth_ros.pose_pipeline.PoseConfig` of the parsed flags (ValueError on a bad value)."""
    from depth_ros.pose_pipeline import PoseConfig

    return PoseConfig(max_gap_s=args.pose_max_gap)


def frame_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~depth_ros.pipeline.FrameConfig` of the parsed flags: its defaults, the scale
    policy's alias (``--scale lidar``, ``fixed:S``, ``ground:H``), then every flag given.

    Raises:
        ValueError: a value the config refuses (naming the field).
    """
    import dataclasses

    from depth_ros.pipeline import FrameConfig, parse_scale

    changes: dict[str, Any] = {}
    if args.scale_policy is not None:
        changes.update(parse_scale(args.scale_policy).fields())
    for f in dataclasses.fields(FrameConfig):
        value = getattr(args, f.name, None)
        if value is not None and f.name != "scale_policy":
            changes[f.name] = tuple(value) if isinstance(f.default, tuple) else value
    return dataclasses.replace(FrameConfig(), **changes) if changes else FrameConfig()


def config_from_args(args: argparse.Namespace) -> "Any":
    """An :class:`InferConfig` from the parsed flags (ValueError -> one-line DepthRosError)."""
    from depth_ros.bag.infer import InferConfig

    try:
        return InferConfig(
            image_topic=args.image_topic,
            camera_info_topic=args.camera_info_topic,
            lidar_topic=args.lidar_topic,
            stamp_tolerance_ns=int(round(args.stamp_tolerance * 1e9)),
            frame=frame_config_from_args(args),
            depth_16uc1=args.depth_16uc1,
            max_frames=args.max_frames,
            overwrite=args.overwrite,
            backend=args.backend,
            threads=args.threads,
            compression=None if args.compression == "none" else args.compression,
            pose=pose_config_from_args(args),
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
            summary = infer_bag(args.in_bag, args.output, args.model, config, progress=progress, on_start=on_start,
                                pose_model=args.pose_model)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(summary.format())
    return 0
