"""Bag-to-bag depth inference: the one data path of DESIGN.md, run offline at full speed.

For each image of the chosen camera (paired with its camera_info by stamp)::

    msgconv (Image / CompressedImage -> RGB, CameraInfo -> CameraModel)
      -> core.preprocess -> backend.infer -> core.postprocess (+ scale policy)
      -> core.pointcloud -> msgconv -> messages into an MCAP

Outputs, for an input image topic ``<ns>/<name>`` (e.g. ``/camera/image_raw``):

* ``<ns>/depth/image``: sensor_msgs/Image 32FC1, metres, NaN invalid (REP 118)
* ``<ns>/depth/image_raw``: sensor_msgs/Image 16UC1 millimetres, 0 invalid (only with
  ``depth_16uc1``; the depth_image_proc naming of raw vs metric depth)
* ``<ns>/depth/camera_info``: the camera_info of the depth image (camera resolution)
* ``<ns>/depth/points``: sensor_msgs/PointCloud2, organized xyz (or xyzrgb), optical frame
* ``<ns>/depth/info``: depth_ros/msg/DepthInfo, how the depth was made
* the input image, camera_info, LiDAR and ``/tf_static`` topics, copied byte for byte.

Every output copies the input image's header (stamp and frame_id) and is logged at the input
image's log time, so it lines up with the input in Foxglove.

With a GPU backend, reading + preprocessing and postprocessing + writing run in two threads
beside the network (``InferConfig.overlap``), hiding the pipeline's own CPU time behind the
network's; the network itself always runs in the calling thread.

Bad frames (invalid or duplicate header stamp, undecodable image, bad camera_info, size
mismatch, missing camera_info, non-finite model output) are skipped and counted by reason,
each reason logged once; a camera_info or LiDAR message with an invalid stamp is dropped and
counted per topic (its image then lacks a partner); a bag
that cannot be read or written, or a model that does not fit, stops the run with a
:class:`~depth_ros.errors.DepthRosError` and leaves no output file.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Union

import numpy as np

from depth_ros import msgconv
from depth_ros.bag.reader import (
    COMPRESSED_IMAGE_TYPE,
    TF_STATIC_TOPIC,
    BagMessage,
    BagReader,
    camera_namespace,
    select_camera_topics,
    select_lidar_topic,
)
from depth_ros.bag.sync import FrameSynchronizer, SyncedFrame
from depth_ros.bag.tf import StaticTransforms
from depth_ros.bag.typestore import DEPTH_INFO_TYPE, output_typestore
from depth_ros.bag.writer import BagWriter, check_not_input, check_output_path
from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import make_cloud
from depth_ros.core.postprocess import DepthPostprocessor, DepthResult, PostprocessConfig
from depth_ros.core.preprocess import preprocess
from depth_ros.core.scale import ScaleConfig, ScaleUnavailableError, validate_scale_policy
from depth_ros.errors import BackendError, BagError, DepthRosError, InputError, ModelError, one_line

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

#: Why a frame was skipped -> what the user reads in the summary.
SKIP_REASONS: dict[str, str] = {
    "bad_stamp": "image header stamp invalid (nanosec outside [0, 1e9))",
    "duplicate_stamp": "image with the stamp of an earlier image (the same frame recorded twice)",
    "missing_camera_info": "no camera_info with the image's stamp",
    "unsupported_encoding": "image encoding not supported",
    "bad_image": "image data malformed (size, step/row padding, or undecodable compressed data)",
    "bad_camera_info": "camera_info unusable (K all zeros, zero size, ...)",
    "size_mismatch": "image size differs from its camera_info",
    "non_finite_output": "model output has NaN or Inf",
    "scale_failed": "the scale policy had nothing to work with",
}
#: Image stamps remembered to recognise a duplicate (the same frame recorded twice, possibly
#: with a few other images in between).
_RECENT_STAMPS = 64
#: Timing stages of the summary, in pipeline order.
STAGES = ("read", "preprocess", "backend", "postprocess", "cloud", "write")

_SCALE_MODES = ("auto", "none", "fixed", "canonical_focal", "lidar", "lidar_shift", "ground")


@dataclass(frozen=True)
class ScaleChoice:
    """The ``--scale`` option, parsed.

    Attributes:
        mode: "auto" (the model's own scale if metric, else none), "none", "fixed" (multiply
            by ``value``), "canonical_focal", "lidar" (scale from LiDAR points), "lidar_shift"
            (scale and shift in inverse depth from LiDAR points), "ground" (camera height
            ``value`` metres above a ground plane).
        value: the factor for "fixed", the camera height in metres for "ground"; else None.
    """

    mode: str = "auto"
    value: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in _SCALE_MODES:
            raise ValueError(f"scale mode must be one of {_SCALE_MODES}, got {self.mode!r}")
        needs_value = self.mode in ("fixed", "ground")
        if needs_value and (self.value is None or not math.isfinite(self.value) or self.value <= 0):
            raise ValueError(f"scale '{self.mode}' needs a positive number, got {self.value!r}")
        if not needs_value and self.value is not None:
            raise ValueError(f"scale '{self.mode}' takes no value, got {self.value!r}")

    @property
    def uses_lidar(self) -> bool:
        return self.mode in ("lidar", "lidar_shift")

    def __str__(self) -> str:
        return self.mode if self.value is None else f"{self.mode}:{self.value:g}"


def parse_scale(text: str) -> ScaleChoice:
    """Parse ``auto | none | fixed:S | canonical_focal | lidar | lidar_shift | ground:H``.

    Raises:
        ValueError: unknown mode, a missing / extra / non-positive number.
    """
    mode, sep, value_text = text.strip().partition(":")
    value: float | None = None
    if sep:
        try:
            value = float(value_text)
        except ValueError:
            raise ValueError(f"scale '{text}': '{value_text}' is not a number") from None
    elif mode in ("fixed", "ground"):
        raise ValueError(f"scale '{text}' needs a value: '{mode}:<number>'")
    return ScaleChoice(mode, value)


@dataclass(frozen=True)
class InferConfig:
    """Options of :func:`infer_bag` (the CLI flags of ``depth-ros infer`` map one to one).

    Attributes:
        image_topic: colour image topic (Image or CompressedImage); None: chosen automatically.
        camera_info_topic: its CameraInfo; None: ``<ns>/camera_info`` or the only one.
        lidar_topic: PointCloud2 topic for scale alignment (``scale`` lidar / lidar_shift).
        stamp_tolerance_ns: largest image - camera_info stamp difference accepted.
        lidar_tolerance_ns: largest image - LiDAR stamp difference accepted.
        max_pending: images buffered while waiting for their camera_info / LiDAR.
        cloud: write the point cloud topic.
        rgb_cloud: xyzrgb cloud (colour from the image) instead of xyz.
        decimation: cloud stride (1 = every pixel).
        min_range_m, max_range_m: depth outside [min, max] metres is NaN (image and cloud).
        scale: metric scale policy.
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
    """

    image_topic: str | None = None
    camera_info_topic: str | None = None
    lidar_topic: str | None = None
    stamp_tolerance_ns: int = 0
    lidar_tolerance_ns: int = 50_000_000
    max_pending: int = 32
    cloud: bool = True
    rgb_cloud: bool = False
    decimation: int = 1
    min_range_m: float = 0.0
    max_range_m: float = math.inf
    scale: ScaleChoice = field(default_factory=ScaleChoice)
    depth_16uc1: bool = False
    max_frames: int | None = None
    overwrite: bool = False
    backend: str = "auto"
    threads: int | None = None
    overlap: bool | None = None
    copy_inputs: bool = True
    compression: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scale, str):
            object.__setattr__(self, "scale", parse_scale(self.scale))
        if not isinstance(self.scale, ScaleChoice):
            raise ValueError(f"scale must be a ScaleChoice or its text, got {self.scale!r}")
        for name in ("stamp_tolerance_ns", "lidar_tolerance_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {self.max_pending}")
        if isinstance(self.decimation, bool) or not isinstance(self.decimation, int) or self.decimation < 1:
            raise ValueError(f"decimation must be an integer >= 1, got {self.decimation!r}")
        if not (0.0 <= self.min_range_m < self.max_range_m) or math.isnan(self.max_range_m):
            raise ValueError(f"need 0 <= min_range_m < max_range_m, got {self.min_range_m}, {self.max_range_m}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.scale.uses_lidar and not self.lidar_topic:
            raise ValueError(f"scale '{self.scale}' needs a LiDAR topic (--lidar-topic)")
        if self.rgb_cloud and not self.cloud:
            raise ValueError("rgb_cloud needs the cloud (do not combine with no cloud)")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be an integer >= 1, got {self.threads!r}")
        if self.compression not in (None, "zstd"):
            raise ValueError(f"compression must be None or 'zstd', got {self.compression!r}")


@dataclass
class InferSummary:
    """What :func:`infer_bag` did.

    Attributes:
        frames_in: images taken from the bag (paired or not).
        frames_out: depth images written.
        skipped: reason (a key of :data:`SKIP_REASONS`) -> frames skipped.
        wall_s: seconds from opening the bag to the output file being complete (model
            loading excluded).
        timing_s: stage (:data:`STAGES`) -> total seconds spent in it (the stages overlap when
            ``overlapped``: they then add up to more than ``wall_s``).
        scale_sources: DepthInfo.scale_source -> frames.
        messages_dropped: topic -> camera_info / LiDAR messages dropped for an invalid stamp.
    """

    input_path: str
    output_path: str
    image_topic: str = ""
    camera_info_topic: str = ""
    lidar_topic: str | None = None
    output_topics: list[str] = field(default_factory=list)
    model: str = ""
    output_kind: str = ""
    backend: str = ""
    frames_in: int = 0
    frames_out: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    timing_s: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    scale_sources: dict[str, int] = field(default_factory=dict)
    messages_dropped: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    overlapped: bool = False

    @property
    def frames_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def fps(self) -> float:
        """Depth images written per second of wall time."""
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def scale_source(self) -> str:
        """The scale source of most frames ("" before any frame)."""
        return max(self.scale_sources, key=self.scale_sources.__getitem__) if self.scale_sources else ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(frames_skipped=self.frames_skipped, fps=self.fps, scale_source=self.scale_source)
        return d

    def format(self) -> str:
        """A few human-readable lines (the CLI prints them)."""
        per_frame = max(self.frames_out, 1)
        timing = f"wall {self.wall_s / per_frame * 1e3:.1f}; stages" + (" (overlapping)" if self.overlapped else "")
        timing += ": " + ", ".join(f"{s} {self.timing_s.get(s, 0.0) / per_frame * 1e3:.1f}" for s in STAGES)
        lines = [
            f"wrote {self.output_path}: {self.frames_out} depth frames from {self.frames_in} images "
            f"({self.frames_skipped} skipped) in {self.wall_s:.2f} s, {self.fps:.1f} FPS",
            f"  input {self.input_path}: {self.image_topic} + {self.camera_info_topic}"
            + (f" + {self.lidar_topic}" if self.lidar_topic else ""),
            f"  model {self.model} ({self.output_kind}) on {self.backend}; "
            f"scale source: {self.scale_source or 'n/a'}",
            f"  ms per frame: {timing}",
        ]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  skipped {count}: {reason} ({SKIP_REASONS.get(reason, reason)})")
        for topic, count in sorted(self.messages_dropped.items()):
            lines.append(f"  dropped {count} message(s) on {topic}: header stamp invalid")
        return "\n".join(lines)


def output_topics(image_topic: str, config: InferConfig) -> dict[str, str]:
    """Output role -> topic name for an input image topic (see the module docstring)."""
    depth_ns = f"{camera_namespace(image_topic)}/depth"
    topics = {"depth": f"{depth_ns}/image", "camera_info": f"{depth_ns}/camera_info", "info": f"{depth_ns}/info"}
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
}


# -- skips ------------------------------------------------------------------------------------
class _SkipLog:
    """Counts skipped frames by reason; logs the first of each reason, the counts at the end."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}
        self.dropped: Counter[str] = Counter()
        self.dropped_by_topic: Counter[str] = Counter()

    def skip(self, reason: str, where: str, detail: str) -> None:
        """Count one frame skipped for ``reason``; ``where``: e.g. "at stamp 17 ns"."""
        detail = one_line(detail)  # it may quote the message's own strings (encoding, format)
        if reason not in self.counts:
            self.first[reason] = detail
            _log.warning(
                "skipping frame %s: %s: %s (further frames skipped for this reason are counted)",
                where, reason, detail,
            )
        self.counts[reason] += 1

    def drop_message(self, topic: str, detail: str) -> None:
        """Count one partner message (camera_info, LiDAR) dropped; the first per topic is logged."""
        key = f"message on {topic}"
        if key not in self.dropped:
            _log.warning("dropping %s: %s (further ones are counted)", key, one_line(detail))
        self.dropped[key] += 1
        self.dropped_by_topic[topic] += 1

    def log_totals(self) -> None:
        for reason, count in sorted(self.counts.items()):
            _log.warning("skipped %d frame(s): %s (first: %s)", count, reason, self.first[reason])
        for key, count in sorted(self.dropped.items()):
            _log.warning("dropped %d %s: header stamp invalid", count, key)


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


def _load_backend(model: "InferenceBackend | str | Path", config: InferConfig) -> "InferenceBackend":
    backend = config.backend
    if isinstance(model, (str, Path)):
        from depth_ros.inference.backend import create_backend

        from depth_ros.inference.spec import load_model_spec

        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
        if path.suffix.lower() == ".onnx":
            _check_depth_kind(load_model_spec(path))  # the clearest message, before loading weights
        try:
            return create_backend(path, backend=backend, **_backend_options(config))
        except DepthRosError:
            raise
        except Exception as exc:  # a runtime's own error on a damaged file
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {text})") from None
    return model


def _check_depth_kind(spec: "ModelSpec") -> None:
    if not spec.is_depth:
        raise ModelError(
            f"model '{spec.name}' is a {spec.output_kind} network; depth inference needs one of "
            "disparity_sigmoid, inverse_depth_relative, depth_metric, canonical_inverse_depth"
        )


def _check_depth_model(backend: "InferenceBackend") -> "ModelSpec":
    """Refuse a model whose contract does not fit, before any frame is read.

    The shared contract check (:func:`~depth_ros.inference.backend.check_output_contract`):
    one run on a zero input of the spec's shape, which catches a wrong input rank or size, a
    missing output and an output of the wrong shape (transposed, reshaped, another size) even
    where the model file declares dynamic shapes. Also run for an already-loaded backend.
    """
    from depth_ros.inference.backend import check_output_contract

    spec = backend.spec
    _check_depth_kind(spec)
    check_output_contract(backend, spec)
    return spec


def scale_config(choice: ScaleChoice, spec: "ModelSpec", has_lidar: bool) -> ScaleConfig:
    """The core :class:`ScaleConfig` for a ``--scale`` choice and a model.

    ``auto``: the model's own scale when it is metric; otherwise LiDAR alignment when a LiDAR
    topic is given, else none (depth up to scale, with a warning).

    Raises:
        ModelError: the policy cannot work with this model's output kind.
    """
    mode = choice.mode
    if mode == "auto":
        if spec.is_metric:
            kwargs: dict[str, Any] = {"policy": "model"}
        elif has_lidar:
            kwargs = {"policy": "sparse_alignment", "sparse_mode": "auto"}
        else:
            _log.warning(
                "model '%s' (%s) is not metric and no scale policy was given: depth is up to scale "
                "(use --scale fixed:S, lidar, lidar_shift or ground:H for metres)", spec.name, spec.output_kind,
            )
            kwargs = {"policy": "none"}
    else:
        kwargs = {
            "none": {"policy": "none"},
            "fixed": {"policy": "fixed", "fixed_scale": choice.value},
            "canonical_focal": {"policy": "canonical_focal"},
            "lidar": {"policy": "sparse_alignment", "sparse_mode": "scale"},
            "lidar_shift": {"policy": "sparse_alignment", "sparse_mode": "scale_shift"},
            "ground": {"policy": "ground_plane", "camera_height_m": choice.value},
        }[mode]
    try:
        config = ScaleConfig(**kwargs)
    except ValueError as exc:
        raise ModelError(f"scale '{choice}': {exc}") from None
    validate_scale_policy(config, spec)
    return config


def make_postprocessor(spec: "ModelSpec", config: InferConfig) -> DepthPostprocessor:
    """The core postprocessor for a model and the run's range limits and scale policy."""
    scale = scale_config(config.scale, spec, has_lidar=config.lidar_topic is not None)
    try:
        post_config = PostprocessConfig(min_range_m=config.min_range_m, max_range_m=config.max_range_m, scale=scale)
    except ValueError as exc:
        raise ModelError(f"postprocess: {exc}") from None
    return DepthPostprocessor(spec, post_config)


# -- the pipeline -----------------------------------------------------------------------------
@dataclass
class _Item:
    """An image or partner message as read: raw record, decoded message, when it was read."""

    raw: BagMessage
    msg: Any
    read_at: float


class _FrameSkipped(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# Work items passed between the stages, in bag order.
@dataclass
class _Copy:
    """An input message copied byte for byte."""

    raw: BagMessage


@dataclass
class _Skip:
    """A frame dropped before inference (reason: a key of SKIP_REASONS)."""

    frame: SyncedFrame[_Item]
    reason: str
    detail: str


@dataclass
class _Ready:
    """A frame decoded and preprocessed: the network input and what postprocessing needs."""

    frame: SyncedFrame[_Item]
    rgb: np.ndarray
    camera: CameraModel
    tensor: np.ndarray
    sparse_cam: np.ndarray | None


@dataclass
class _Inferred:
    ready: _Ready
    outputs: dict[str, np.ndarray]
    inference_ms: float


_WorkItem = Union[_Copy, _Skip, _Ready, _Inferred]


class _Pipeline:
    """Per-frame work of :func:`infer_bag` in three stages: :meth:`prepare` (decode +
    preprocess), :meth:`infer` (the network), :meth:`finish` (postprocess, cloud, write).

    Each stage keeps its own timer in ``summary.timing_s``; when the stages overlap (see
    :func:`_run_overlapped`) the timers add up to more than the wall time.
    """

    def __init__(
        self,
        backend: "InferenceBackend",
        config: InferConfig,
        writer: BagWriter,
        topics: dict[str, str],
        static_tf: StaticTransforms,
        summary: InferSummary,
        skips: _SkipLog,
        postprocessor: DepthPostprocessor,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.backend = backend
        self.progress = progress
        self.spec = backend.spec
        self.config = config
        self.writer = writer
        self.topics = topics
        self.static_tf = static_tf
        self.summary = summary
        self.skips = skips
        self.postprocessor = postprocessor
        self.types = output_typestore().types
        self._lidar_T: dict[tuple[str, str], np.ndarray] = {}

    # stage helpers ---------------------------------------------------------------------
    def _decode(self, frame: SyncedFrame[_Item]) -> tuple[np.ndarray, CameraModel]:
        if frame.info is None:
            raise _FrameSkipped("missing_camera_info", f"no camera_info within {self.config.stamp_tolerance_ns} ns")
        image = frame.image.msg
        try:
            camera = msgconv.camera_info_to_model(frame.info.msg)
        except InputError as exc:
            raise _FrameSkipped("bad_camera_info", str(exc)) from None
        if frame.image.raw.msgtype == COMPRESSED_IMAGE_TYPE:
            try:
                rgb = msgconv.compressed_to_rgb(image)
            except InputError as exc:
                raise _FrameSkipped("bad_image", str(exc)) from None
        else:
            if str(image.encoding) not in msgconv.COLOR_ENCODINGS:
                raise _FrameSkipped(
                    "unsupported_encoding",
                    f"encoding '{image.encoding}' (supported: {', '.join(msgconv.COLOR_ENCODINGS)})",
                )
            try:
                msgconv.check_image_matches_camera(image, camera)
            except InputError as exc:
                raise _FrameSkipped("size_mismatch", str(exc)) from None
            try:
                rgb = msgconv.image_to_rgb(image)
            except InputError as exc:
                raise _FrameSkipped("bad_image", str(exc)) from None
        try:
            msgconv.check_image_matches_camera(rgb, camera)
        except InputError as exc:
            raise _FrameSkipped("size_mismatch", str(exc)) from None
        return rgb, camera

    def _lidar_points_cam(self, frame: SyncedFrame[_Item]) -> np.ndarray | None:
        """LiDAR points of the frame in the camera optical frame, (N, 3) float32 metres."""
        if frame.lidar is None:
            return None
        cloud = frame.lidar.msg
        key = (str(frame.image.msg.header.frame_id), str(cloud.header.frame_id))
        if key not in self._lidar_T:
            try:
                self._lidar_T[key] = self.static_tf.lookup(*key)
            except InputError as exc:
                raise BagError(f"{self.summary.input_path}: LiDAR points cannot be put in the camera frame: {exc}") from None
        try:
            xyz = msgconv.pointcloud2_to_xyz(cloud)
        except InputError as exc:
            _log.debug("LiDAR cloud unusable: %s", exc)
            return None
        T_cam_lidar = self._lidar_T[key]
        return (xyz.astype(np.float64) @ T_cam_lidar[:3, :3].T + T_cam_lidar[:3, 3]).astype(np.float32)

    # the three stages ----------------------------------------------------------------------
    def prepare(self, frame: SyncedFrame[_Item]) -> _Ready | _Skip:
        """Decode, check and preprocess one paired frame (stage 1: reading side)."""
        timing = self.summary.timing_s
        t0 = time.perf_counter()
        try:
            rgb, camera = self._decode(frame)
            sparse_cam = self._lidar_points_cam(frame)
        except _FrameSkipped as skip:
            return _Skip(frame, skip.reason, str(skip))
        t1 = time.perf_counter()
        timing["read"] += t1 - t0
        tensor = preprocess(rgb, camera, self.spec).tensor
        timing["preprocess"] += time.perf_counter() - t1
        return _Ready(frame, rgb, camera, tensor, sparse_cam)

    def infer(self, item: _WorkItem) -> _WorkItem:
        """Run the network on a prepared frame (stage 2); other items pass through."""
        if not isinstance(item, _Ready):
            return item
        t0 = time.perf_counter()
        try:
            outputs = self.backend.infer(item.tensor)
        except DepthRosError:
            raise
        except Exception as exc:  # the runtime's own error types
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise BackendError(
                f"{self.backend.name} failed on the frame at stamp {item.frame.stamp_ns} ns: {type(exc).__name__}: {text}"
            ) from exc
        seconds = time.perf_counter() - t0
        self.summary.timing_s["backend"] += seconds
        return _Inferred(item, outputs, seconds * 1e3)

    def finish(self, item: _WorkItem) -> None:
        """Postprocess, build the cloud and write (stage 3); copies and skips are recorded here
        too, so the output keeps the input's order and all accounting happens in one thread."""
        if isinstance(item, _Copy):
            t0 = time.perf_counter()
            self.writer.write_raw(item.raw.topic, item.raw.data, item.raw.log_time_ns)
            self.summary.timing_s["write"] += time.perf_counter() - t0
            return
        if isinstance(item, _Skip):
            self._skipped(item.frame, item.reason, item.detail)
            return
        if not isinstance(item, _Inferred):
            raise TypeError(f"unexpected work item {type(item).__name__}")
        timing = self.summary.timing_s
        ready, frame = item.ready, item.ready.frame
        t0 = time.perf_counter()
        try:
            result = self.postprocessor(item.outputs, ready.camera, ready.sparse_cam)
        except ScaleUnavailableError as exc:
            self._skipped(frame, "scale_failed", str(exc))
            return
        except InputError as exc:
            self._skipped(frame, "non_finite_output", str(exc))
            return
        t1 = time.perf_counter()
        timing["postprocess"] += t1 - t0
        cloud_fields = None
        if self.config.cloud:
            rgb = ready.rgb if self.config.rgb_cloud else None
            cloud = make_cloud(result.depth_m, ready.camera, rgb, decimation=self.config.decimation)
            cloud_fields = msgconv.pointcloud2_fields(cloud)
        t2 = time.perf_counter()
        timing["cloud"] += t2 - t1
        self._write(frame, result, cloud_fields, inference_ms=item.inference_ms)
        timing["write"] += time.perf_counter() - t2
        self.summary.frames_out += 1
        source = str(result.scale_source)
        self.summary.scale_sources[source] = self.summary.scale_sources.get(source, 0) + 1
        if self.progress is not None:
            self.progress(1)

    def _skipped(self, frame: SyncedFrame[_Item], reason: str, detail: str) -> None:
        if reason == "bad_stamp":  # no stamp to name: the frame's log time instead
            where = f"logged at {frame.image.raw.log_time_ns} ns"
        else:
            where = f"at stamp {frame.stamp_ns} ns"
        self.skips.skip(reason, where, detail)
        if self.progress is not None:
            self.progress(1)

    def _write(self, frame: SyncedFrame[_Item], result: DepthResult, cloud_fields: dict[str, Any] | None, inference_ms: float) -> None:
        T = self.types
        image_header = frame.image.msg.header
        header = T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=int(image_header.stamp.sec), nanosec=int(image_header.stamp.nanosec)),
            frame_id=str(image_header.frame_id),
        )
        log_ns = frame.image.raw.log_time_ns
        image_cls = T["sensor_msgs/msg/Image"]
        self.writer.write(self.topics["depth"], image_cls(header=header, **msgconv.depth_image_fields(result.depth_m)), log_ns)
        if "depth_mm" in self.topics:
            fields = msgconv.depth_image_fields(result.depth_m, "16UC1")
            self.writer.write(self.topics["depth_mm"], image_cls(header=header, **fields), log_ns)
        self.writer.write(self.topics["camera_info"], dataclasses.replace(frame.info.msg, header=header), log_ns)
        if cloud_fields is not None:
            point_field = T["sensor_msgs/msg/PointField"]
            fields = dict(cloud_fields)
            fields["fields"] = [
                point_field(name=n, offset=o, datatype=d, count=c) for n, o, d, c in cloud_fields["fields"]
            ]
            self.writer.write(self.topics["points"], T["sensor_msgs/msg/PointCloud2"](header=header, **fields), log_ns)
        valid_fraction = float(np.count_nonzero(np.isfinite(result.depth_m))) / max(result.depth_m.size, 1)
        info = T[DEPTH_INFO_TYPE](
            header=header,
            model=self.spec.name,
            output_kind=self.spec.output_kind,
            backend=self.backend.name,
            scale_source=str(result.scale_source),
            scale=float(result.scale),
            shift=float(result.shift),
            scale_support=int(result.scale_support),
            min_range_m=float(self.config.min_range_m),
            max_range_m=float(self.config.max_range_m),
            valid_fraction=valid_fraction,
            inference_ms=float(inference_ms),
            latency_ms=float((time.perf_counter() - frame.image.read_at) * 1e3),
            frames_dropped=0,
            frames_received=0,
            frames_skipped=0,
        )
        self.writer.write(self.topics["info"], info, log_ns)


def _copyable(topics: list[str], infos: dict[str, Any], reader: BagReader, typestore: Any) -> list[str]:
    """The input topics that can be copied byte for byte.

    A copied topic keeps the bag's own definition of its type; the outputs use this package's.
    When both use one type (an Image input next to the Image depth output) they must agree,
    since an MCAP file has one schema per type name; a topic whose recorded definition differs
    is not copied (with a warning) rather than written under a wrong schema.
    """
    kept = []
    for topic in topics:
        msgtype = infos[topic].msgtype
        if msgtype in typestore.fielddefs:
            try:
                same = reader.typestore.hash_rihs01(msgtype) == typestore.hash_rihs01(msgtype)
            except Exception:  # a type the output typestore lacks: nothing to clash with
                same = True
            if not same:
                _log.warning("not copying %s: its recorded %s definition differs from this package's", topic, msgtype)
                continue
        kept.append(topic)
    return kept


def _work_items(reader: BagReader, pipeline: _Pipeline, copied: list[str]) -> Iterator[_WorkItem]:
    """Read the camera (and LiDAR) topics in log-time order and yield, in that order, the
    copies and every paired frame prepared for the network (stage 1)."""
    summary, config, timing = pipeline.summary, pipeline.config, pipeline.summary.timing_s
    image_topic, info_topic, lidar_topic = summary.image_topic, summary.camera_info_topic, summary.lidar_topic
    sync: FrameSynchronizer[_Item] = FrameSynchronizer(
        tolerance_ns=config.stamp_tolerance_ns,
        max_pending=config.max_pending,
        with_lidar=lidar_topic is not None,
        lidar_tolerance_ns=config.lidar_tolerance_ns,
    )
    reading = [image_topic, info_topic] + ([lidar_topic] if lidar_topic else [])
    reading += [t for t in copied if t not in reading]
    recent: deque[int] = deque(maxlen=_RECENT_STAMPS)  # image stamps, to recognise duplicates
    messages = reader.messages(reading)
    try:
        while True:
            t_read = time.perf_counter()  # (not across a yield: time spent waiting downstream is not reading)
            raw = next(messages, None)
            if raw is None or (
                raw.topic == image_topic and config.max_frames is not None and summary.frames_in >= config.max_frames
            ):
                break
            if raw.topic == TF_STATIC_TOPIC:
                timing["read"] += time.perf_counter() - t_read
                yield _Copy(raw)
                continue
            msg = reader.deserialize(raw)
            item = _Item(raw, msg, time.perf_counter())
            try:
                stamp_ns: int | None = msgconv.stamp_to_ns(msg.header.stamp, what=raw.topic)
                stamp_error = ""
            except InputError as exc:  # one bad message must not end the run
                stamp_ns, stamp_error = None, f"{exc} (message logged at {raw.log_time_ns} ns)"
            timing["read"] += time.perf_counter() - t_read
            if raw.topic in copied:
                yield _Copy(raw)  # inputs are copied as they are, bad stamp or not
            if raw.topic == image_topic:
                summary.frames_in += 1
                if stamp_ns is None:
                    yield _Skip(SyncedFrame(raw.log_time_ns, item), "bad_stamp", stamp_error)
                    continue
                if stamp_ns in recent:
                    yield _Skip(SyncedFrame(stamp_ns, item), "duplicate_stamp",
                                f"{raw.topic}: stamp {stamp_ns} ns was already taken by an earlier image; not written twice")
                    continue
                recent.append(stamp_ns)
                frames = sync.add_image(stamp_ns, item)
            elif stamp_ns is None:
                pipeline.skips.drop_message(raw.topic, stamp_error)
                continue
            elif raw.topic == info_topic:
                frames = sync.add_info(stamp_ns, item)
            else:
                frames = sync.add_lidar(stamp_ns, item)
            for frame in frames:
                yield pipeline.prepare(frame)
        for frame in sync.flush():
            yield pipeline.prepare(frame)
    finally:
        messages.close()


def _network_on_gpu(backend: "InferenceBackend") -> bool:
    name = backend.name.lower()
    return "cuda" in name or "tensorrt" in name


def _run_sequential(pipeline: _Pipeline, items: Iterator[_WorkItem]) -> None:
    for item in items:
        pipeline.finish(pipeline.infer(item))


_END = object()
_POLL_S = 0.1
_QUEUE_ITEMS = 3


def _run_overlapped(pipeline: _Pipeline, items: Iterator[_WorkItem]) -> None:
    """Stage 1 in a reader thread, stage 2 (the network) here, stage 3 in a writer thread.

    The network runs in the calling thread (CUDA / TensorRT contexts belong to the thread that
    made them; Ctrl-C arrives here). Bounded queues keep at most a few frames in flight and
    the output in input order. The first exception of any stage stops all three and is
    raised here.
    """
    to_network: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ITEMS)
    to_writer: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ITEMS)
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(q: "queue.Queue[Any]", item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(q: "queue.Queue[Any]") -> Any:
        while True:
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                if stop.is_set():
                    return _END

    def read() -> None:
        try:
            for item in items:
                if not put(to_network, item):
                    return
            put(to_network, _END)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)
            stop.set()
        finally:
            items.close()  # type: ignore[attr-defined]

    def write() -> None:
        try:
            while (item := get(to_writer)) is not _END:
                pipeline.finish(item)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=read, name="depth_ros-infer-read", daemon=True),
        threading.Thread(target=write, name="depth_ros-infer-write", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        while (item := get(to_network)) is not _END:
            if not put(to_writer, pipeline.infer(item)):
                break
        put(to_writer, _END)
        threads[1].join()
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def infer_bag(
    in_path: str | Path,
    out_path: str | Path,
    model: "InferenceBackend | str | Path",
    config: InferConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> InferSummary:
    """Run depth inference over a bag's camera stream and write the results to an MCAP.

    Args:
        in_path: rosbag2 input: bag directory, ``.mcap`` or ``.db3`` file.
        out_path: output ``.mcap`` (or ``.db3``) file; written atomically.
        model: a loaded backend, or a model file for :func:`create_backend` (``config.backend``).
        config: options (defaults: automatic topics, cloud on, auto scale).
        progress: called with the number of images handled after each one.
        on_start: called once with the number of images that will be handled.

    Returns:
        The :class:`InferSummary`.

    Raises:
        BagError: the input cannot be read (missing, truncated, corrupt, topics absent or
            ambiguous), the output cannot be written, or not one frame could be processed;
            no output file is left.
        ModelError: the model is not a depth model or does not run on its spec'd input;
            raised before any frame is read.
    """
    config = config or InferConfig()
    in_path, out_path = Path(in_path), Path(out_path)
    check_output_path(out_path, overwrite=config.overwrite)
    check_not_input(in_path, out_path)
    backend = _load_backend(model, config)
    spec = _check_depth_model(backend)
    postprocessor = make_postprocessor(spec, config)
    started = time.perf_counter()
    summary = InferSummary(
        input_path=str(in_path), output_path=str(out_path), model=spec.name,
        output_kind=spec.output_kind, backend=backend.name,
    )
    skips = _SkipLog()
    typestore = output_typestore()
    with BagReader(in_path, default_typestore=typestore) as reader:
        topics_in = reader.topics
        image_topic, info_topic = select_camera_topics(
            topics_in, config.image_topic, config.camera_info_topic, source=str(in_path)
        )
        lidar_topic = select_lidar_topic(topics_in, config.lidar_topic, source=str(in_path)) if config.lidar_topic else None
        static_tf = reader.static_transforms() if lidar_topic else StaticTransforms()
        summary.image_topic, summary.camera_info_topic, summary.lidar_topic = image_topic, info_topic, lidar_topic
        out_topics = output_topics(image_topic, config)
        total = topics_in[image_topic].count
        if config.max_frames is not None:
            total = min(total, config.max_frames)
        if on_start is not None:
            on_start(total)

        copied = [image_topic, info_topic] + ([lidar_topic] if lidar_topic else [])
        if TF_STATIC_TOPIC in topics_in:
            copied.append(TF_STATIC_TOPIC)
        copied = _copyable(copied, topics_in, reader, typestore) if config.copy_inputs else []
        with BagWriter(out_path, typestore=typestore, overwrite=config.overwrite, compression=config.compression) as writer:
            for topic in copied:
                writer.add_topic(
                    topic, topics_in[topic].msgtype, typestore=reader.typestore,
                    offered_qos_profiles=reader.offered_qos_yaml(topic),
                )
            for role, topic in out_topics.items():
                writer.add_topic(topic, _OUTPUT_TYPES[role])
            summary.output_topics = sorted(set(out_topics.values()) | set(copied))
            pipeline = _Pipeline(backend, config, writer, out_topics, static_tf, summary, skips, postprocessor, progress)
            # sqlite3 connections belong to the thread that opened them: .db3 output runs in one thread
            overlap = config.overlap if config.overlap is not None else _network_on_gpu(backend)
            summary.overlapped = overlap and out_path.suffix == ".mcap"
            run = _run_overlapped if summary.overlapped else _run_sequential
            run(pipeline, _work_items(reader, pipeline, copied))
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
