"""Evaluate depth models (or depth already written by ``depth-ros infer``) on bags with truth.

The library behind ``depth-ros-train eval`` (:mod:`depth_ros_training.eval.cli`).

What is measured is what runs: a model goes through
:func:`depth_ros.bag.infer.infer_bag` (the nodes' preprocess, backend, postprocess and scale
policy, with their defaults), into a temporary MCAP; its ``<ns>/depth/image`` (32FC1 metres) is
then matched by header stamp to the truth of the input bag:

* a dense depth topic (sensor_msgs/Image ``32FC1`` metres or ``16UC1`` millimetres), or
* a LiDAR sensor_msgs/PointCloud2, moved into the camera's optical frame through
  ``/tf_static`` and projected with the camera_info's K (nearest return per pixel; the motion
  between the LiDAR and camera stamps is not compensated, so keep the stamp tolerance small).

Per matched frame, on the valid pixels (finite truth in ``[min_depth_m, max_depth_m]``, inside
the optional crop): AbsRel, SqRel, RMSE, RMSE log, delta < 1.25^k, median-scaled and metric
(:func:`~depth_ros_training.eval.metrics.compute_depth_metrics`), the scale ratio
median(truth) / median(prediction), Depth Pro's boundary F1 (dense truth only,
:mod:`~depth_ros_training.eval.boundary`), and the flicker against the previous matched frame
(:mod:`~depth_ros_training.eval.temporal`; needs camera poses: the truth bag's odometry and
``/tf_static``), and, with ``mask_topic``, Depth Pro's boundary recall against an object mask. Aggregates are the mean over frames of the per-frame values (the KITTI /
monodepth2 convention: every frame weighs the same); the by-range table pools pixels.

Odometry of a pose model: with ``pose_model`` (``--pose-model``, one pose model shared by every
``--model``), each model run also runs the pose node's visual odometry
(``depth-ros infer --pose-model``, :class:`depth_ros.pose_pipeline.PosePipeline`); where the
prediction bag carries a nav_msgs/Odometry trajectory (that, or ``--pred`` with a recorded
pose-node output), ATE (se(3) and sim(3) alignment) and RPE against the truth bag's odometry
(:mod:`~depth_ros_training.eval.odometry`), the truth's body moved to the estimate's frame
through ``/tf_static`` (base_link -> camera optical frame).

Memory: one model's predicted depth images of one bag are held (float32) while the truth bag
is streamed past them.

Modules: this one runs an evaluation (open the truth, run the models, score each bag); the options
are :mod:`~depth_ros_training.eval.config`, the bag reading :mod:`~depth_ros_training.eval.truth`,
the per-frame scores and summaries :mod:`~depth_ros_training.eval.scoring`, the table and files
:mod:`~depth_ros_training.eval.report`. Their public names stay importable from here.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from depth_ros.bag.reader import IMAGE_TYPE
from depth_ros.core.distortion import Rectifier, is_distorted, rectified_projection
from depth_ros.errors import BagError, DepthRosError, InputError

from depth_ros_training.eval.config import AGGREGATION, EvalConfig
from depth_ros_training.eval.odometry import evaluate_trajectory
from depth_ros_training.eval.report import format_table, write_outputs
from depth_ros_training.eval.scoring import ModelReport, RangeAccumulator, frame_metrics, score_frames, sheet_candidates, summarise
from depth_ros_training.eval.truth import (
    Truth,
    auto_mask_topic,
    mask_from_image,
    odometry_topic,
    project_points_to_depth,
    read_pred_trajectory,
    read_predictions,
    read_trajectory,
    select_truth_topic,
)


__all__ = [
    "AGGREGATION",
    "EvalConfig",
    "ModelReport",
    "evaluate",
    "evaluate_predictions",
    "format_table",
    "frame_metrics",
    "mask_from_image",
    "project_points_to_depth",
    "select_truth_topic",
    "write_outputs",
]

_log = logging.getLogger(__name__)

#: :func:`~depth_ros_training.eval.scoring.sheet_candidates` under the name it had here.
_sheet_candidates = sheet_candidates


def _open_truth(bag: Path, config: EvalConfig) -> Truth:
    """The truth side of ``bag`` as ``config`` chooses it: camera (rectified when distorted),
    truth, mask and odometry topics, the camera trajectory for the flicker.

    Raises:
        BagError: a topic that cannot serve (absent, ambiguous, of another type), an unusable
            camera_info, a LiDAR or odometry frame that does not connect to the camera.
    """
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader, select_camera_topics

    with BagReader(bag) as reader:
        topics = reader.topics
        mask_topic = config.mask_topic
        if mask_topic is None:
            mask_topic = auto_mask_topic(reader, topics, config.image_topic)
        # the mask is an Image too: not a camera candidate (and read only for the boundary scores)
        cameras = {k: v for k, v in topics.items() if k != mask_topic}
        image_topic, info_topic = select_camera_topics(cameras, config.image_topic, config.camera_info_topic, source=str(bag))
        first_info = reader.deserialize(next(reader.messages([info_topic])))
        try:
            camera = msgconv.camera_info_to_model(first_info)
            rectifier = None
            if is_distorted(camera):
                # the model runs on rectified images (the frame pipeline's rectify: auto), so the
                # truth is compared in the rectified camera too: dense truth and masks remapped
                # (nearest), LiDAR projected through the rectified intrinsics
                rectifier = Rectifier(camera, *rectified_projection(first_info.p, first_info.r))
                camera = rectifier.rectified
        except InputError as exc:
            raise BagError(f"{bag}: camera_info {info_topic} unusable: {exc}") from None
        camera_frame = str(first_info.header.frame_id)
        topic, kind = select_truth_topic(topics, config.truth_topic, str(bag), exclude=(image_topic,))
        if topics[topic].count == 0:
            raise BagError(f"{bag}: truth topic {topic} has no messages")
        if config.mask_topic is not None:
            info = topics.get(config.mask_topic)
            if info is None or info.msgtype != IMAGE_TYPE:
                raise BagError(f"{bag}: mask topic {config.mask_topic} {'is ' + info.msgtype if info else 'is not in the bag'}; need an Image")
        tf = reader.static_transforms()
        trajectory, note = None, ""
        pose_topic = odometry_topic(topics, config.pose_topic, str(bag), required=config.flicker)
        if kind == "lidar":
            lidar_frame = str(reader.deserialize(next(reader.messages([topic]))).header.frame_id)
            try:
                tf.lookup(camera_frame, lidar_frame)
            except InputError as exc:
                raise BagError(f"{bag}: LiDAR {topic} cannot be put in the camera frame: {exc}") from None
        if config.flicker and pose_topic is None:
            note = "no odometry topic for the camera motion"
        elif config.flicker and pose_topic is not None:
            traj = read_trajectory(reader, pose_topic)
            try:
                trajectory = traj.in_frame(tf.lookup(traj.body_frame, camera_frame), camera_frame)
            except InputError as exc:
                note = f"{pose_topic}'s frame {traj.body_frame!r} does not connect to the camera: {exc}"
    used_mask = mask_topic if config.boundary else None
    return Truth(bag, topic, kind, camera, camera_frame, trajectory, note, used_mask, image_topic, info_topic, rectifier)


def _run_model(model: str, truth: Truth, out_path: Path, config: EvalConfig, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from depth_ros.bag.infer import InferConfig, infer_bag

    bag = truth.path
    try:
        infer_config = InferConfig(  # the camera the truth was read for
            image_topic=truth.image_topic, camera_info_topic=truth.camera_info_topic, lidar_topic=config.lidar_topic,
            cloud=False, copy_inputs=False, overwrite=True, backend=config.backend, threads=config.threads, scale=config.scale,
            pose=config.pose,
            # no range limit of the run: the metrics clamp predictions to [min_depth, max_depth] (the
            # KITTI convention) instead of dropping them, so a prediction beyond the node's default 20 m
            # counts as an error, and an up-to-scale model's depth (unit unknown) is not cut in metres
            min_range_m=0.0, max_range_m=1000.0,
        )
    except ValueError as exc:
        raise DepthRosError(f"bad option: {exc}") from None
    summary = infer_bag(bag, out_path, model, infer_config, progress=progress, pose_model=config.pose_model)
    out = {
        "model": summary.model, "output_kind": summary.output_kind, "backend": summary.backend,
        "scale_source": summary.scale_source, "frames_in": summary.frames_in, "frames_out": summary.frames_out,
        "skipped": dict(summary.skipped), "fps": summary.fps,
    }
    if config.pose_model is not None:
        out["pose"] = {"model": summary.pose_model, "poses": summary.odometry_out, "resets": summary.odometry_resets,
                       "not_written": dict(summary.pose_skipped)}
    return out


def _unique_names(paths: Sequence[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    return [s if stems.count(s) == 1 else f"{s}#{i + 1}" for i, s in enumerate(stems)]


def evaluate(
    bags: Sequence[str | Path],
    config: EvalConfig,
    *,
    models: Sequence[str | Path] = (),
    preds: Sequence[str | Path] = (),
    progress: Callable[[str], Callable[[int], None] | None] | None = None,
) -> list[ModelReport]:
    """Evaluate models (run on every bag) or prediction bags (one per truth bag).

    Args:
        bags: truth bags (each with a camera and a depth or LiDAR truth topic).
        config: options.
        models: model files for :func:`~depth_ros.bag.infer.infer_bag`; or
        preds: MCAPs written by ``depth-ros infer``, paired with ``bags`` in order.
        progress: ``progress(description)`` returns a callback called with the count of each
            step done (images inferred, truth messages read), or None.

    Returns:
        One :class:`ModelReport` per model / prediction set, with per-frame rows and a summary.

    Raises:
        DepthRosError: unusable bag, model or options; a one-line message.
    """
    bags = [Path(b) for b in bags]
    if not bags:
        raise DepthRosError("no bag to evaluate on")
    if bool(models) == bool(preds):
        raise DepthRosError("give either models (--model) or prediction bags (--pred), not both or neither")
    if preds and len(preds) != len(bags):
        raise DepthRosError(f"--pred needs one prediction bag per truth bag, got {len(preds)} for {len(bags)}")
    if preds and config.pose_model is not None:
        raise DepthRosError("--pose-model runs beside --model; a --pred bag brings its own odometry (depth-ros infer --pose-model)")
    truths = [_open_truth(b, config) for b in bags]
    reports: list[ModelReport] = []
    sources = [str(m) for m in (models or preds)]
    names = _unique_names(sources)
    with tempfile.TemporaryDirectory(prefix="depth_eval_") as tmp:
        for index, (name, source) in enumerate(zip(names, sources)):
            report = ModelReport(name=name, source=source)
            acc = RangeAccumulator(config)
            pairs = [(Path(preds[index]), truths[index])] if preds else [(None, t) for t in truths]
            for pred_path, truth in pairs:
                inference = None
                if pred_path is None:
                    pred_path = Path(tmp) / f"{index}_{len(report.bags)}.mcap"
                    bar = progress(f"{name}: infer {truth.path.name}") if progress else None
                    inference = _run_model(source, truth, pred_path, config, bar)
                _score_bag(report, acc, pred_path, truth, config, progress, inference)
            report.summary = summarise(report, acc, config)
            reports.append(report)
    return reports


def evaluate_predictions(
    pairs: Sequence[tuple[str | Path, str | Path]],
    config: EvalConfig,
    *,
    name: str = "prediction",
    progress: Callable[[str], Callable[[int], None] | None] | None = None,
) -> ModelReport:
    """Depth already written (``depth-ros infer`` outputs) scored against truth bags, the
    frames of all pairs pooled into one report (``depth-ros demo``'s held-out scenes).

    Args:
        pairs: (prediction bag, truth bag) per scene.
        config: options (as :func:`evaluate`).
        name: the report's name.
        progress: as :func:`evaluate`.

    Returns:
        One :class:`ModelReport`: ``summary`` is the mean over the frames of all pairs, each
        row of ``frames`` names its truth ``bag`` (per-scene figures are the means of a bag's
        rows), ``bags`` one entry per pair.

    Raises:
        DepthRosError: unusable bag or options; a one-line message.
    """
    if not pairs:
        raise DepthRosError("no (prediction, truth) bag pair to evaluate")
    report = ModelReport(name=name, source=", ".join(str(p) for p, _ in pairs))
    acc = RangeAccumulator(config)
    for pred_path, bag in pairs:
        _score_bag(report, acc, Path(pred_path), _open_truth(Path(bag), config), config, progress, None)
    report.summary = summarise(report, acc, config)
    return report


def _score_bag(
    report: ModelReport,
    acc: RangeAccumulator,
    pred_path: Path,
    truth: Truth,
    config: EvalConfig,
    progress: Callable[[str], Callable[[int], None] | None] | None,
    inference: dict[str, Any] | None,
) -> None:
    """Adds one prediction bag's frames against its truth to ``report`` and ``acc``."""
    bag_info: dict[str, Any] = {"bag": str(truth.path), "truth_topic": truth.topic, "truth_kind": truth.kind, "mask_topic": truth.mask_topic}
    if inference is not None:
        bag_info["inference"] = inference
    predictions, pred_topic = read_predictions(pred_path, config.pred_topic)
    bag_info["pred_topic"] = pred_topic
    bar = progress(f"{report.name}: evaluate {truth.path.name}") if progress else None
    first_row = len(report.frames)
    bag_info["frames"] = score_frames(report, acc, predictions, truth, config, bar)
    report.sheet.extend(sheet_candidates(report.frames[first_row:], predictions, truth))
    del predictions
    if config.flicker and truth.trajectory is None:
        bag_info["flicker_note"] = truth.pose_note
    # a model run writes odometry only with a pose model; a --pred bag may carry a recorded one
    bag_info["odometry"] = _odometry(pred_path, truth, config) if inference is None or config.pose_model else None
    report.bags.append(bag_info)


def _odometry(pred_path: Path, truth: Truth, config: EvalConfig) -> dict[str, Any] | None:
    """ATE / RPE of a prediction bag's odometry against the truth's, when both exist."""
    from depth_ros.bag.reader import BagReader

    found = read_pred_trajectory(pred_path, None)
    if found is None:
        return {"error": "the pose model wrote fewer than two poses"} if config.pose_model else None
    topic, est = found
    with BagReader(truth.path) as reader:
        ref_topic = odometry_topic(reader.topics, config.pose_topic, str(truth.path), required=False)
        if ref_topic is None:
            if config.pose_model:  # asked for: say why there is no figure
                return {"topic": topic, "reference": None, "error": f"{truth.path}: no single nav_msgs/Odometry topic to compare with (name one with --pose-topic)"}
            return None
        ref = read_trajectory(reader, ref_topic)
        tf = reader.static_transforms()
    if est.body_frame and ref.body_frame and est.body_frame != ref.body_frame:
        try:
            ref = ref.in_frame(tf.lookup(ref.body_frame, est.body_frame), est.body_frame)
        except InputError:
            pass  # compared as they are: the offset between the two bodies counts as error
    try:
        result = evaluate_trajectory(ref.stamps_ns, ref.T_world_body, est.stamps_ns, est.T_world_body, config.stamp_tolerance_ns)
    except ValueError as exc:
        return {"topic": topic, "reference": ref_topic, "error": str(exc)}
    return {"topic": topic, "reference": ref_topic} | result
