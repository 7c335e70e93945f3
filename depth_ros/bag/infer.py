"""Bag-to-bag depth inference: the one data path of DESIGN.md, run offline at full speed.

For each image of the chosen camera (paired with its camera_info by stamp), the frame
pipeline the depth node runs (:class:`depth_ros.pipeline.FramePipeline`, with the same
defaults: :class:`~depth_ros.pipeline.FrameConfig`)::

    decode -> preprocess -> backend.infer -> postprocess (+ scale policy) -> cloud
      -> messages (depth_ros.msgbuild, the node's builder on a rosbags typestore) into an MCAP

Outputs, for an input image topic ``<ns>/<name>`` (e.g. ``/camera/image_raw``):

* ``<ns>/depth/image``: sensor_msgs/Image, 32FC1 metres NaN invalid (REP 118), or 16UC1
  millimetres with ``depth_encoding`` 16UC1 (as the node's ``depth/image``)
* ``<ns>/depth/image_raw``: sensor_msgs/Image 16UC1 millimetres, 0 invalid (only with
  ``depth_16uc1``; the depth_image_proc naming of raw vs metric depth)
* ``<ns>/depth/camera_info``: the camera_info of the depth image (camera resolution)
* ``<ns>/depth/points``: sensor_msgs/PointCloud2, organized xyz (or xyzrgb), optical frame
* ``<ns>/depth/info``: depth_ros/msg/DepthInfo, how the depth was made
* ``<ns>/odom``: nav_msgs/Odometry, with a pose model (``pose_model``): the pose node's visual
  odometry (:class:`depth_ros.pose_pipeline.PosePipeline`, the node's code and defaults): pose of
  the camera (child frame = the image's frame_id, or ``PoseConfig.camera_frame``) in
  ``PoseConfig.odom_frame`` (the camera at the first frame after a reset), twist in the camera
  frame; metric when the pose model is, else up to scale
* the input image, camera_info, LiDAR and ``/tf_static`` topics, copied byte for byte.

A frame without a usable camera_info (K all zeros, fx / fy not finite and positive, no camera_info
with its stamp) is skipped, unless the model predicts its field of view (a Depth Pro export: spec
``extra["fov_output"]``): then its camera is built from the prediction (``fx = fy = (W / 2) /
tan(fov / 2)``, principal point at the centre; :mod:`depth_ros.core.focal_fallback`), the depth
camera_info carries that K, DepthInfo's scale_source ends in ``_predicted``
(``canonical_focal_predicted``) and a warning says so once. A valid camera_info is always used as it
is. A bag with no CameraInfo topic at all is accepted for such a model (every frame predicted; not
with a LiDAR topic or a pose model, which need the camera's intrinsics).

Every output copies the input image's header (stamp and frame_id) and is logged at the input
image's log time, so it lines up with the input in Foxglove.

With a GPU backend, reading + preprocessing and postprocessing + writing run in two threads
beside the network (``InferConfig.overlap``, :mod:`depth_ros.bag.infer_runner`), hiding the
pipeline's own CPU time behind the network's; the network itself always runs in the calling
thread.

Bad frames (invalid or duplicate header stamp, undecodable image, bad camera_info, size
mismatch, missing camera_info, non-finite model output, no metric scale) are skipped and counted
by reason (:data:`~depth_ros.bag.infer_summary.SKIP_REASONS`), each reason logged once; a
camera_info or LiDAR message with an invalid stamp is dropped and counted per topic (its image
then lacks a partner); a bag that cannot be read or written, or a model that does not fit,
stops the run with a :class:`~depth_ros.errors.DepthRosError` and leaves no output file.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from depth_ros.bag.infer_runner import network_on_gpu, run_overlapped, run_sequential
from depth_ros.bag.infer_stages import InferStages, copyable_topics, work_items
from depth_ros.bag.infer_summary import SKIP_REASONS, STAGES, InferSummary, SkipLog
from depth_ros.bag.odometry_msg import ODOMETRY_TYPE
from depth_ros.bag.reader import (
    CAMERA_INFO_TYPE,
    TF_STATIC_TOPIC,
    BagReader,
    camera_namespace,
    select_camera_topics,
    select_image_topic,
    select_lidar_topic,
)
from depth_ros.bag.tf import StaticTransforms
from depth_ros.bag.typestore import DEPTH_INFO_TYPE, output_typestore
from depth_ros.bag.writer import BagWriter, check_not_input, check_output_path
from depth_ros.core.postprocess import DepthPostprocessor
from depth_ros.core.scale import ScaleConfig
from depth_ros.errors import BagError, DepthRosError, ModelError
from depth_ros.pose_pipeline import PoseConfig, PosePipeline, check_pose_kind
from depth_ros.pipeline import (
    SYNC_TOLERANCE_MS,
    FrameConfig,
    FramePipeline,
    ScaleChoice,
    check_depth_kind,
    parse_scale,
    resolve_scale_config,
)
from depth_ros.pipeline import make_postprocessor as _make_frame_postprocessor

if TYPE_CHECKING:
    from depth_ros.inference.backend import InferenceBackend
    from depth_ros.inference.spec import ModelSpec

__all__ = [
    "InferConfig",
    "InferSummary",
    "SKIP_REASONS",
    "STAGES",
    "ScaleChoice",
    "infer_bag",
    "make_postprocessor",
    "output_topics",
    "parse_scale",
    "scale_config",
]

_log = logging.getLogger(__name__)

#: InferConfig's short spellings of FrameConfig fields (the older flag names) -> the field.
_FRAME_ALIASES = {"cloud": "publish_cloud", "rgb_cloud": "cloud_rgb", "decimation": "cloud_decimation",
                  "min_range_m": "min_range_m", "max_range_m": "max_range_m"}


@dataclass(frozen=True)
class InferConfig:
    """Options of :func:`infer_bag` (the CLI flags of ``depth-ros infer`` map one to one).

    The frame path (range, scale policy with all its fields, cloud, encoding) is ``frame``, a
    :class:`~depth_ros.pipeline.FrameConfig`: the depth node's parameters, with the same
    defaults (range 0.1-20 m, scale policy auto, cloud on, 32FC1). ``cloud``, ``rgb_cloud``,
    ``decimation``, ``min_range_m``, ``max_range_m`` and ``scale`` are short spellings of its
    fields, folded into ``frame`` when given (None: ``frame``'s value); after construction
    they read back the effective values.

    Attributes:
        image_topic: colour image topic (Image or CompressedImage); None: chosen automatically.
        camera_info_topic: its CameraInfo; None: ``<ns>/camera_info`` or the only one.
        lidar_topic: PointCloud2 topic for scale alignment (scale policy sparse_alignment;
            with ``auto``, a non-metric model is aligned to it).
        stamp_tolerance_ns: largest image - camera_info stamp difference accepted (default:
            the node's ``sync_tolerance_ms``, 1 ms).
        lidar_tolerance_ns: largest image - LiDAR stamp difference accepted.
        max_pending: images buffered while waiting for their camera_info / LiDAR.
        frame: the frame pipeline's config.
        cloud: ``frame.publish_cloud``: write the point cloud topic.
        rgb_cloud: ``frame.cloud_rgb``: xyzrgb cloud (colour from the image) instead of xyz.
        decimation: ``frame.cloud_decimation``: cloud stride (1 = every pixel).
        min_range_m, max_range_m: ``frame``'s range: depth outside is NaN (image and cloud).
        scale: a scale policy as ``--scale`` spells it (:func:`~depth_ros.pipeline.parse_scale`:
            ``auto``, ``fixed:S``, ``lidar``, ``ground:H``, ...), folded into ``frame``.
        depth_16uc1: also write 16UC1 millimetre depth.
        max_frames: stop after this many images (None: all).
        overwrite: replace an existing output file.
        backend: backend choice when a model path is given (see create_backend).
        threads: CPU threads for the backend (None: its default).
        overlap: read/preprocess and postprocess/write in two threads beside the network
            (output identical). None (default): only when the network runs on a GPU
            (backend name with "cuda" or "tensorrt"), where the CPU is otherwise idle during
            inference; on a CPU backend the threads compete with the network for the same
            cores and measured no faster (bench/bench_infer.py, 2 cores). MCAP output only
            (a .db3 output is always written from one thread).
        copy_inputs: copy the input image, camera_info, LiDAR and /tf_static topics.
        compression: None or "zstd" for the output storage.
        pose: the visual odometry's options when a pose model is given (the pose node's
            ``max_gap_s``, ``odom_frame``, ``camera_frame``, with its defaults).
    """

    image_topic: str | None = None
    camera_info_topic: str | None = None
    lidar_topic: str | None = None
    stamp_tolerance_ns: int = int(SYNC_TOLERANCE_MS * 1_000_000)
    lidar_tolerance_ns: int = 50_000_000
    max_pending: int = 32
    frame: FrameConfig | None = None
    cloud: bool | None = None
    rgb_cloud: bool | None = None
    decimation: int | None = None
    min_range_m: float | None = None
    max_range_m: float | None = None
    scale: ScaleChoice | str | None = None
    depth_16uc1: bool = False
    max_frames: int | None = None
    overwrite: bool = False
    backend: str = "auto"
    threads: int | None = None
    overlap: bool | None = None
    copy_inputs: bool = True
    compression: str | None = None
    pose: PoseConfig = PoseConfig()

    def __post_init__(self) -> None:
        frame = self.frame if self.frame is not None else FrameConfig()
        if not isinstance(frame, FrameConfig):
            raise ValueError(f"frame must be a FrameConfig, got {type(frame).__name__}")
        changes = {field: getattr(self, alias) for alias, field in _FRAME_ALIASES.items() if getattr(self, alias) is not None}
        scale = self.scale
        if isinstance(scale, str):
            scale = parse_scale(scale)
        if scale is not None:
            if not isinstance(scale, ScaleChoice):
                raise ValueError(f"scale must be a ScaleChoice or its text, got {scale!r}")
            changes.update(scale.fields())
        if changes:
            frame = dataclasses.replace(frame, **changes)  # validated by FrameConfig
        object.__setattr__(self, "frame", frame)
        for alias, field in _FRAME_ALIASES.items():  # read back the effective values
            object.__setattr__(self, alias, getattr(frame, field))
        for name in ("stamp_tolerance_ns", "lidar_tolerance_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {self.max_pending}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if frame.scale_policy == "sparse_alignment" and not self.lidar_topic:
            raise ValueError(f"scale '{scale or frame.scale_policy}' needs a LiDAR topic (--lidar-topic)")
        if frame.cloud_rgb and not frame.publish_cloud:
            raise ValueError("rgb_cloud needs the cloud (do not combine with no cloud)")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be an integer >= 1, got {self.threads!r}")
        if self.compression not in (None, "zstd"):
            raise ValueError(f"compression must be None or 'zstd', got {self.compression!r}")
        if not isinstance(self.pose, PoseConfig):
            raise ValueError(f"pose must be a PoseConfig, got {type(self.pose).__name__}")


def output_topics(image_topic: str, config: InferConfig, odometry: bool = False) -> dict[str, str]:
    """Output role -> topic name for an input image topic (see the module docstring);
    ``odometry``: a pose model runs too."""
    depth_ns = f"{camera_namespace(image_topic)}/depth"
    topics = {"depth": f"{depth_ns}/image", "camera_info": f"{depth_ns}/camera_info", "info": f"{depth_ns}/info"}
    if odometry:
        topics["odom"] = f"{camera_namespace(image_topic)}/odom"
    if config.cloud:
        topics["points"] = f"{depth_ns}/points"
    if config.depth_16uc1:
        topics["depth_mm"] = f"{depth_ns}/image_raw"
    return topics


_OUTPUT_TYPES = {
    "depth": "sensor_msgs/msg/Image",
    "depth_mm": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "points": "sensor_msgs/msg/PointCloud2",
    "info": DEPTH_INFO_TYPE,
    "odom": ODOMETRY_TYPE,
}


# -- model set-up -----------------------------------------------------------------------------
def _backend_options(config: InferConfig) -> dict[str, Any]:
    """Options for create_backend.

    ONNX Runtime workers are told not to spin between runs: offline, the rest of the pipeline
    runs between two inferences on the same cores, and spinning workers slowed both it and the
    network itself (bench/bench_infer.py, 2 cores: backend 130-175 -> ~100 ms per frame,
    writing 12-32 -> 5-6 ms per frame at a 256x192 network input).
    """
    options: dict[str, Any] = {}
    if config.backend in ("auto", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda"):
        options["allow_spinning"] = False  # dropped by create_backend if auto picks another backend
    if config.threads is not None:
        options["threads"] = config.threads
    return options


def _load_backend(model: "InferenceBackend | str | Path", config: InferConfig, what: str = "model",
                  check_kind: Callable[["ModelSpec"], None] = check_depth_kind) -> "InferenceBackend":
    """A backend for a model file (its kind checked by ``check_kind`` from the spec, before the
    weights load), or ``model`` itself when it is a loaded backend. ``what`` names the file in
    errors ("model", "pose model")."""
    backend = config.backend
    if isinstance(model, (str, Path)):
        from depth_ros.inference.backend import create_backend

        from depth_ros.inference.spec import load_model_spec

        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{what} file {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
        if path.suffix.lower() == ".onnx":
            check_kind(load_model_spec(path))  # the clearest message, before loading weights
        try:
            return create_backend(path, backend=backend, **_backend_options(config))
        except DepthRosError:
            raise
        except Exception as exc:  # a runtime's own error on a damaged file
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelError(f"{path}: cannot load the {what} ({type(exc).__name__}: {text})") from None
    return model


def _pose_pipeline(pose_model: "InferenceBackend | str | Path", config: InferConfig) -> PosePipeline:
    """The pose node's step on ``pose_model`` (a file or a loaded pose backend).

    Raises:
        ModelError: missing or unloadable file, or not a pose_6dof model (one line).
    """
    who = "depth-ros infer --pose-model"
    backend = _load_backend(pose_model, config, "pose model", lambda spec: check_pose_kind(spec, who))
    # the pose frames are rectified as the depth frames are (the frame config's rectify)
    pose = dataclasses.replace(config.pose, rectify=config.frame.rectify)  # type: ignore[union-attr]
    pipeline = PosePipeline(backend, pose, who=who)
    if not pipeline.spec.metric:
        _log.warning("pose model '%s' is not metric: the odometry's translation is up to scale", pipeline.spec.name)
    return pipeline


def _check_depth_model(backend: "InferenceBackend") -> "ModelSpec":
    """Refuse a non-depth model whose contract does not fit, before any frame is read: the
    shared contract dry run (:func:`~depth_ros.inference.backend.check_output_contract`) on a
    backend handed in already loaded (create_backend runs it for a model file)."""
    from depth_ros.inference.backend import check_output_contract

    check_depth_kind(backend.spec)
    check_output_contract(backend, backend.spec)
    return backend.spec


def scale_config(choice: ScaleChoice, spec: "ModelSpec", has_lidar: bool) -> ScaleConfig:
    """The core :class:`ScaleConfig` for a ``--scale`` choice and a model (the other scale fields
    at their defaults): :func:`~depth_ros.pipeline.resolve_scale_config`.

    Raises:
        ModelError: the policy cannot work with this model's output kind.
    """
    try:
        frame = dataclasses.replace(FrameConfig(), **choice.fields())
    except ValueError as exc:
        raise ModelError(f"scale '{choice}': {exc}") from None
    return resolve_scale_config(frame, spec, has_sparse=has_lidar)


def make_postprocessor(spec: "ModelSpec", config: InferConfig) -> DepthPostprocessor:
    """The core postprocessor for a model and the run's range limits and scale policy."""
    assert config.frame is not None  # set by InferConfig.__post_init__
    return _make_frame_postprocessor(spec, config.frame, has_sparse=config.lidar_topic is not None)


def _camera_topics(topics: dict[str, Any], config: InferConfig, frames: FramePipeline, with_pose: bool,
                   source: str) -> tuple[str, str | None]:
    """(image topic, camera_info topic) of the run: :func:`select_camera_topics`, or (image topic,
    None) for a bag with no CameraInfo topic at all and a model that predicts its field of view.

    Raises:
        BagError: as :func:`select_camera_topics`; no CameraInfo topic with a LiDAR topic or a pose
            model (they need the camera's intrinsics).
    """
    has_info = any(t.msgtype == CAMERA_INFO_TYPE for t in topics.values())
    if has_info or config.camera_info_topic is not None or frames.fov_output is None:
        return select_camera_topics(topics, config.image_topic, config.camera_info_topic, source=source)
    image_topic = select_image_topic(topics, config.image_topic, source=source)
    if config.lidar_topic or with_pose:
        needs = "--lidar-topic" if config.lidar_topic else "--pose-model"
        raise BagError(f"{source}: no CameraInfo topic, and {needs} needs the camera's intrinsics "
                       f"(the depth model '{frames.spec.name}' alone can run on its predicted field of view)")
    _log.warning("%s: no CameraInfo topic: every frame's camera comes from the field of view model '%s' predicts",
                 source, frames.spec.name)
    return image_topic, None


def infer_bag(
    in_path: str | Path,
    out_path: str | Path,
    model: "InferenceBackend | str | Path",
    config: InferConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    pose_model: "InferenceBackend | str | Path | None" = None,
) -> InferSummary:
    """Run depth inference over a bag's camera stream and write the results to an MCAP.

    Args:
        in_path: rosbag2 input: bag directory, ``.mcap`` or ``.db3`` file.
        out_path: output ``.mcap`` (or ``.db3``) file; written atomically.
        model: a loaded backend, or a model file for :func:`create_backend` (``config.backend``).
        config: options (defaults: automatic topics, cloud on, auto scale).
        progress: called with the number of images handled after each one.
        on_start: called once with the number of images that will be handled.
        pose_model: a pose_6dof model (file or loaded backend): also write its visual
            odometry (``<ns>/odom``, see the module docstring), frame by frame as the pose node.

    Returns:
        The :class:`InferSummary`.

    Raises:
        BagError: the input cannot be read (missing, truncated, corrupt, topics absent or
            ambiguous), the output cannot be written, or not one frame could be processed;
            no output file is left.
        ModelError: the model is not a depth model (or ``pose_model`` not a pose model) or
            does not run on its spec'd input; raised before any frame is read.
    """
    config = config or InferConfig()
    in_path, out_path = Path(in_path), Path(out_path)
    check_output_path(out_path, overwrite=config.overwrite)
    check_not_input(in_path, out_path)
    loaded_here = isinstance(model, (str, Path))
    backend = _load_backend(model, config)
    if not loaded_here:
        _check_depth_model(backend)  # create_backend ran the contract check for a model file
    assert config.frame is not None  # set by InferConfig.__post_init__
    frames = FramePipeline(backend, config.frame, has_sparse=config.lidar_topic is not None, contract_checked=True)
    pose = _pose_pipeline(pose_model, config) if pose_model is not None else None
    spec = frames.spec
    started = time.perf_counter()
    summary = InferSummary(
        input_path=str(in_path), output_path=str(out_path), model=spec.name,
        output_kind=spec.output_kind, backend=backend.name,
    )
    if pose is not None:
        summary.pose_model = pose.spec.name
        summary.timing_s["pose"] = 0.0
    skips = SkipLog()
    typestore = output_typestore()
    with BagReader(in_path, default_typestore=typestore) as reader:
        topics_in = reader.topics
        image_topic, info_topic = _camera_topics(topics_in, config, frames, pose is not None, str(in_path))
        lidar_topic = select_lidar_topic(topics_in, config.lidar_topic, source=str(in_path)) if config.lidar_topic else None
        static_tf = reader.static_transforms() if lidar_topic else StaticTransforms()
        summary.image_topic, summary.camera_info_topic, summary.lidar_topic = image_topic, info_topic or "", lidar_topic
        out_topics = output_topics(image_topic, config, odometry=pose is not None)
        total = topics_in[image_topic].count
        if config.max_frames is not None:
            total = min(total, config.max_frames)
        if on_start is not None:
            on_start(total)

        copied = [image_topic] + ([info_topic] if info_topic else []) + ([lidar_topic] if lidar_topic else [])
        if TF_STATIC_TOPIC in topics_in:
            copied.append(TF_STATIC_TOPIC)
        copied = copyable_topics(copied, topics_in, reader, typestore) if config.copy_inputs else []
        with BagWriter(out_path, typestore=typestore, overwrite=config.overwrite, compression=config.compression) as writer:
            for topic in copied:
                writer.add_topic(
                    topic, topics_in[topic].msgtype, typestore=reader.typestore,
                    offered_qos_profiles=reader.offered_qos_yaml(topic),
                )
            for role, topic in out_topics.items():
                writer.add_topic(topic, _OUTPUT_TYPES[role])
            summary.output_topics = sorted(set(out_topics.values()) | set(copied))
            pipeline = InferStages(frames, config, writer, out_topics, static_tf, summary, skips, progress, pose)
            # sqlite3 connections belong to the thread that opened them: .db3 output runs in one thread
            overlap = config.overlap if config.overlap is not None else network_on_gpu(backend)
            summary.overlapped = overlap and out_path.suffix == ".mcap"
            run = run_overlapped if summary.overlapped else run_sequential
            run(pipeline, work_items(reader, pipeline, copied))
            summary.bytes_written = writer.bytes_written
            summary.skipped = dict(skips.counts)
            summary.messages_dropped = dict(skips.dropped_by_topic)
            skips.log_totals()
            if summary.frames_out == 0:
                # A bag of copies without a single depth image is not a result: leave no file.
                reasons = ", ".join(f"{n} {r}" for r, n in sorted(summary.skipped.items())) or "none"
                raise BagError(
                    f"{in_path}: no depth frame could be made from {summary.frames_in} image(s) on {image_topic} "
                    f"(skipped: {reasons}); nothing written"
                )
    summary.wall_s = time.perf_counter() - started
    return summary
