"""``depth-ros-train eval``: depth models measured on bags with truth (see :mod:`.evaluate`).

Examples::

    depth-ros-train eval --model a.onnx --model b.onnx run1.mcap run2.mcap -o eval_out
    depth-ros-train eval --pred run1_depth.mcap run1.mcap --truth-topic /lidar/points
    depth-ros-train eval --model depth.onnx --pose-model pose.onnx run1.mcap   # + ATE / RPE

The models run through ``depth-ros infer``'s pipeline (the nodes' preprocess, backend,
postprocess and scale policy). Prints the models side by side, writes ``summary.json``,
``frames.csv`` and PNG plots (:mod:`.plots`) under ``--output-dir``. ``--pose-model`` (one,
shared by every ``--model``) also runs the pose node's visual odometry in each model run and
reports its ATE / RPE against the truth bag's odometry (the same figures under every model). User errors are one line on stderr and exit code 1.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Callable

from depth_ros.errors import DepthRosError

__all__ = ["add_arguments", "config_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``eval`` flags (one per :class:`~depth_ros_training.eval.evaluate.EvalConfig` field users set)."""
    parser.add_argument("bags", nargs="+", metavar="BAG", help="truth bags: .mcap / .db3 file or bag directory")
    parser.add_argument("--model", action="append", default=[], metavar="M", help="model to evaluate (.onnx with its spec, or a checkpoint); repeat for several")
    from depth_ros.bag.infer_cli import add_pose_arguments

    add_pose_arguments(parser)
    parser.add_argument("--pred", action="append", default=[], metavar="PRED.mcap", help="depth written by `depth-ros infer`, one per BAG in order (instead of --model)")
    parser.add_argument("-o", "--output-dir", default="eval_results", metavar="DIR", help="where summary.json and frames.csv go (default: eval_results)")
    parser.add_argument("--truth-topic", metavar="T", help="truth: depth Image (32FC1 m / 16UC1 mm) or PointCloud2 topic (default: the only one)")
    parser.add_argument("--pose-topic", metavar="T", help="nav_msgs/Odometry of the truth bag for the flicker's camera motion (default: the only one)")
    parser.add_argument("--mask-topic", metavar="T", help="object mask Image of the truth bag (mono8 alpha or instance ids) for the mask boundary recall (default: the only Image topic with 'mask' in its name, e.g. /camera/object_mask of `depth-ros synth`)")
    parser.add_argument("--pred-topic", metavar="T", help="depth topic of a --pred bag (default: the only .../depth/image)")
    parser.add_argument("--image-topic", metavar="T", help="colour image topic (default: the only one)")
    parser.add_argument("--camera-info-topic", metavar="T", help="CameraInfo topic (default: <ns>/camera_info)")
    parser.add_argument("--lidar-topic", metavar="T", help="PointCloud2 for the model run's --scale lidar / lidar_shift")
    parser.add_argument("--scale", default="auto", metavar="POLICY", help="the model run's scale policy, as `depth-ros infer --scale` (default auto)")
    from depth_ros.inference.backend import BACKEND_CHOICES  # numpy only: cheap at --help time

    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="inference backend (default: auto)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the network")
    parser.add_argument("--min-depth", type=float, default=1e-3, metavar="M", help="nearest true depth evaluated, metres (default 0.001)")
    parser.add_argument("--max-depth", type=float, default=80.0, metavar="M", help="farthest true depth evaluated, metres (default 80)")
    parser.add_argument("--crop", type=float, nargs=4, metavar=("LEFT", "TOP", "RIGHT", "BOTTOM"), help="evaluate only this box, fractions of the image (e.g. Eigen: 0.0359 0.4081 0.9641 0.9919)")
    parser.add_argument("--stamp-tolerance", type=float, default=0.01, metavar="S", help="largest truth / prediction / pose stamp difference, seconds (default 0.01)")
    parser.add_argument("--range-edges", default="0,2,5,10,20,40,80", metavar="M,M,...", help="depth ranges of the by-range table, metres")
    parser.add_argument("--no-boundary", action="store_true", help="skip the boundary F1")
    parser.add_argument("--no-flicker", action="store_true", help="skip the temporal consistency")
    parser.add_argument("--no-plots", action="store_true", help="do not write the PNG plots (error vs distance, error histogram, boundary precision-recall, contact sheets)")
    parser.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> Any:
    """An :class:`EvalConfig` from the parsed flags (a bad value -> one-line DepthRosError)."""
    from depth_ros.bag.infer import parse_scale
    from depth_ros.bag.infer_cli import pose_config_from_args

    from depth_ros_training.eval.evaluate import EvalConfig

    try:
        parse_scale(args.scale)
        edges = tuple(float(x) for x in args.range_edges.split(",") if x.strip())
        tolerance_ns = int(round(args.stamp_tolerance * 1e9))
        return EvalConfig(
            min_depth_m=args.min_depth, max_depth_m=args.max_depth, crop=tuple(args.crop) if args.crop else None,
            stamp_tolerance_ns=tolerance_ns, truth_topic=args.truth_topic, pose_topic=args.pose_topic, mask_topic=args.mask_topic,
            pred_topic=args.pred_topic, image_topic=args.image_topic, camera_info_topic=args.camera_info_topic,
            lidar_topic=args.lidar_topic, scale=args.scale, backend=args.backend, threads=args.threads,
            range_edges_m=edges, boundary=not args.no_boundary, flicker=not args.no_flicker,
            pose_model=args.pose_model, pose=pose_config_from_args(args),
        )
    except (ValueError, OverflowError) as exc:
        raise DepthRosError(f"bad option: {exc}") from None


def _odometry_line(odometry: dict[str, Any] | None) -> str:
    """The odometry part of a bag's line: its ATE / RPE, or why there is none."""
    if not odometry:
        return ""
    if "error" in odometry:
        return f"; no odometry error: {odometry['error']}"
    se3, sim3 = odometry["se3"], odometry["sim3"]
    text = (f"; odometry {odometry['topic']} vs {odometry['reference']} ({odometry['matched']} poses, "
            f"{odometry['path_length_m']:.2f} m): ATE {se3['ate']['rmse_m']:.4f} m (se3), "
            f"{sim3['ate']['rmse_m']:.4f} m (sim3, scale {sim3['ate']['scale']:.3f})")
    if se3["rpe"]:
        text += f", RPE {se3['rpe']['translation_pct']:.2f} % {se3['rpe']['rotation_deg_per_m']:.3f} deg/m"
    return text


def run(args: argparse.Namespace) -> int:
    """Run ``depth-ros-train eval``; returns the exit code (errors are raised as DepthRosError)."""
    from depth_ros_training.eval.evaluate import evaluate, format_table, write_outputs

    config = config_from_args(args)
    bars: list[Any] = []

    def progress(description: str) -> Callable[[int], None] | None:
        if args.no_progress:
            return None
        from tqdm import tqdm

        for bar in bars:
            bar.close()
        bars[:] = [tqdm(desc=description, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)]
        return bars[0].update

    try:
        reports = evaluate(args.bags, config, models=args.model, preds=args.pred, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    paths = write_outputs(reports, args.output_dir, config, plots=not args.no_plots)
    if args.json:
        print(paths["summary"].read_text(), end="")
    else:
        print(format_table(reports))
        for report in reports:
            for bag in report.bags:
                frames = bag["frames"]
                line = f"{report.name} on {bag['bag']}: {frames['matched']} of {frames['truth']} truth frames matched ({bag['truth_kind']} truth {bag['truth_topic']})"
                if bag.get("mask_topic"):
                    line += f"; object mask {bag['mask_topic']} ({frames.get('masks', 0)} frames)"
                if frames["unmatched_truth"] or frames["unmatched_predictions"]:
                    line += f"; unmatched: {frames['unmatched_truth']} truth, {frames['unmatched_predictions']} predictions"
                if frames.get("bad_truth_messages"):
                    line += f"; {frames['bad_truth_messages']} truth messages unusable"
                if frames.get("all_nan_predictions"):
                    line += f"; {frames['all_nan_predictions']} predictions NaN everywhere"
                if bag.get("flicker_note"):
                    line += f"; no flicker: {bag['flicker_note']}"
                print(line + _odometry_line(bag.get("odometry")))
        plots = [p.name for k, p in paths.items() if k not in ("summary", "frames")]
        print(f"wrote {paths['summary']}, {paths['frames'].name}" + (f" and the plots {', '.join(plots)}" if plots else " (no plots)"))
    return 0 if all(math.isfinite(r.summary["median"]["abs_rel"]) for r in reports) else 1
