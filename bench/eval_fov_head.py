"""Accuracy of a Depth Pro model's focal-length head on held-out bags, through the runtime's fallback
(issue 15, item 8: "share of held-out images with focal error < 25 % and < 50 %").

Every image of the held-out bags is run through the frame path as a frame *without* camera_info
(:meth:`depth_ros.pipeline.FramePipeline.decode_frame` with no info: the model's predicted field of
view makes the camera); the predicted focal length is compared with the bag's own camera_info.
Beside it, the trivial baseline that always predicts the training bags' mean horizontal field of view
(the mean over the training bags' camera_info, one value per bag weighted by its image count).

Figures: share of images with relative focal error ``|f_pred - f_true| / f_true`` under 25 % and under
50 %, mean absolute FOV error in degrees, mean relative focal error.

Usage:
    python bench/eval_fov_head.py MODEL.onnx --train BAG... --test BAG...

Prints one JSON document. Results of the runs behind docs/depth-pro.md are recorded there.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def _frames(bag: Path) -> Iterator[tuple[Any, Any]]:
    """(image message, camera_info message) pairs of a synthetic bag (one of each per stamp)."""
    from depth_ros.bag.reader import BagReader

    with BagReader(bag) as reader:
        infos = {}
        for raw in reader.messages(["/camera/camera_info"]):
            msg = reader.deserialize(raw)
            infos[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
        for raw in reader.messages(["/camera/image_raw"]):
            msg = reader.deserialize(raw)
            yield msg, infos[(msg.header.stamp.sec, msg.header.stamp.nanosec)]


def _hfov_deg(f_px: float, width_px: float) -> float:
    return math.degrees(2.0 * math.atan(0.5 * width_px / f_px))


def _focal_px(fov_deg: float, width_px: float) -> float:
    return 0.5 * width_px / math.tan(0.5 * math.radians(fov_deg))


def _scores(f_pred: np.ndarray, f_true: np.ndarray, fov_pred: np.ndarray, fov_true: np.ndarray) -> dict[str, float]:
    rel = np.abs(f_pred - f_true) / f_true
    return {
        "share_focal_err_lt_25pct": float(np.mean(rel < 0.25)),
        "share_focal_err_lt_50pct": float(np.mean(rel < 0.50)),
        "mean_abs_fov_err_deg": float(np.mean(np.abs(fov_pred - fov_true))),
        "mean_rel_focal_err": float(np.mean(rel)),
    }


def evaluate(model: Path, train_bags: list[Path], test_bags: list[Path]) -> dict[str, Any]:
    from depth_ros import msgconv
    from depth_ros.inference.backend import create_backend
    from depth_ros.pipeline import FrameConfig, FramePipeline

    train_fovs = []
    for bag in train_bags:
        for _, info in _frames(bag):
            cam = msgconv.camera_info_to_model(info)
            train_fovs.append(_hfov_deg(cam.fx, cam.width))
    mean_fov = float(np.mean(train_fovs))

    pipeline = FramePipeline(create_backend(model, backend="onnxruntime", threads=1), FrameConfig(max_range_m=1000.0))
    rows = []
    for bag in test_bags:
        for image, info in _frames(bag):
            truth = msgconv.camera_info_to_model(info)
            rgb, camera = pipeline.decode_frame(image, None, compressed=False)
            result = pipeline.run(rgb, camera)
            # the window the network saw (aspect policy): its width is what the FOV spans
            rows.append((result.camera.fx, truth.fx, result.camera.width, str(bag.name)))
    f_pred = np.array([r[0] for r in rows])
    f_true = np.array([r[1] for r in rows])
    width = np.array([r[2] for r in rows], dtype=np.float64)
    fov_pred = np.degrees(2 * np.arctan(0.5 * width / f_pred))
    fov_true = np.degrees(2 * np.arctan(0.5 * width / f_true))
    f_base = np.array([_focal_px(mean_fov, w) for w in width])
    per_bag = {}
    for name in sorted({r[3] for r in rows}):
        sel = np.array([r[3] == name for r in rows])
        per_bag[name] = {"true_fov_deg": float(fov_true[sel].mean()), "pred_fov_deg_mean": float(fov_pred[sel].mean()),
                         "pred_fov_deg_std": float(fov_pred[sel].std())}
    return {
        "model": str(model),
        "images": len(rows),
        "train_mean_fov_deg": mean_fov,
        "train_fovs_deg": sorted({round(v, 2) for v in train_fovs}),
        "head": _scores(f_pred, f_true, fov_pred, fov_true),
        "baseline_train_mean_fov": _scores(f_base, f_true, np.full_like(fov_true, mean_fov), fov_true),
        "per_bag": per_bag,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported depth.onnx with a fov output (spec extra fov_output)")
    parser.add_argument("--train", type=Path, nargs="+", required=True, help="the training bags (for the baseline)")
    parser.add_argument("--test", type=Path, nargs="+", required=True, help="held-out bags")
    args = parser.parse_args()
    print(json.dumps(evaluate(args.model, args.train, args.test), indent=2))


if __name__ == "__main__":
    main()
