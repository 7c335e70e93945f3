"""The configuration of the frame path: :class:`FrameConfig` and the scale policy's spellings.

:class:`FrameConfig` is the one configuration of the frame path
(:class:`~depth_ros.pipeline.FramePipeline`). The depth node's parameters
(:class:`~depth_ros.ros.params.DepthNodeConfig`), ``config/depth.yaml`` and the
``depth-ros infer`` flags are generated from its fields, so the defaults are the same live and
offline: range 0.1-20 m, scale policy ``auto``, aspect policy ``crop``, cloud on, 32FC1; image
and camera_info paired within :data:`SYNC_TOLERANCE_MS` ms.

Scale policy vocabulary (``scale_policy``): ``auto`` (the model's own scale when it is metric;
else ``sparse_alignment`` when sparse metric points are given; else ``none`` with a warning),
then the policies of :mod:`depth_ros.core.scale`: ``model``, ``none``, ``fixed``,
``canonical_focal``, ``sparse_alignment``, ``ground_plane``. The short spellings of the
command line are aliases parsed by :func:`parse_scale`: ``fixed:S`` (fixed, scale_fixed S),
``lidar`` (sparse_alignment, sparse mode scale), ``lidar_shift`` (sparse_alignment, mode
scale_shift), ``ground:H`` (ground_plane, camera_height_m H).

Pure Python (no ROS).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from depth_ros import msgconv
from depth_ros.config_fields import check_described_fields, described
from depth_ros.core.aspect import ASPECT_POLICIES
from depth_ros.core.distortion import RECTIFY_MODES
from depth_ros.core.postprocess import DepthPostprocessor, PostprocessConfig
from depth_ros.core.scale import SCALE_POLICIES as CORE_SCALE_POLICIES
from depth_ros.core.scale import ScaleConfig, validate_scale_policy
from depth_ros.errors import ModelError

if TYPE_CHECKING:
    from depth_ros.inference.spec import ModelSpec

__all__ = [
    "DEPTH_ENCODINGS",
    "FrameConfig",
    "SCALE_FIELDS",
    "SCALE_POLICIES",
    "SPARSE_MODES",
    "SYNC_TOLERANCE_MS",
    "ScaleChoice",
    "check_depth_kind",
    "make_postprocessor",
    "parse_scale",
    "resolve_scale_config",
]

_log = logging.getLogger(__name__)

#: The one vocabulary of the scale policy: ``auto`` then the core policies.
SCALE_POLICIES: tuple[str, ...] = ("auto",) + tuple(CORE_SCALE_POLICIES)
SPARSE_MODES = ("auto", "scale", "scale_shift")
DEPTH_ENCODINGS: tuple[str, ...] = tuple(msgconv.DEPTH_ENCODINGS)
#: Largest |image stamp - camera_info stamp| (ms) paired as one frame, live and offline.
SYNC_TOLERANCE_MS = 1.0

_SCALE_DEFAULTS = ScaleConfig()

#: FrameConfig field -> ScaleConfig field (every ScaleConfig field but ``policy``).
SCALE_FIELDS: dict[str, str] = {
    "scale_fixed": "fixed_scale",
    "camera_height_m": "camera_height_m",
    **{f"scale_{f.name}": f.name for f in dataclasses.fields(ScaleConfig)
       if f.name not in ("policy", "fixed_scale", "camera_height_m")},
}


@dataclass(frozen=True)
class FrameConfig:
    """How every frame is turned into depth (range, scale policy, cloud, encoding).

    The field names are the depth node's parameter names and, with ``-`` for ``_``, the
    ``depth-ros infer`` flags. The ``scale_*`` fields (and ``camera_height_m``) are those of
    :class:`~depth_ros.core.scale.ScaleConfig` (mapping: :data:`SCALE_FIELDS`).
    """

    min_range_m: float = described(0.1, "depth nearer than this (m) is published as invalid", min_value=0.0, max_value=1000.0)
    max_range_m: float = described(20.0, "depth farther than this (m) is published as invalid", min_value=0.0, max_value=1000.0)
    depth_encoding: str = described("32FC1", "depth/image encoding: 32FC1 metres (NaN invalid) or 16UC1 millimetres (0 invalid)", choices=DEPTH_ENCODINGS)
    publish_cloud: bool = described(True, "publish depth/points (the node builds it only while someone subscribes)")
    cloud_decimation: int = described(1, "point cloud stride in pixels (1 = every pixel)", min_value=1, max_value=16)
    cloud_rgb: bool = described(False, "xyzrgb cloud (point_step 32) instead of xyz (point_step 16)")
    rectify: str = described(
        "auto", "lens distortion: auto (images whose camera_info has a non-zero D are rectified as image_proc does, "
        "with maps built once per camera; depth, cloud and depth/camera_info describe the rectified camera: D zero, "
        "K = P[:3, :3]) or off (the images are already rectified: D is ignored)", choices=RECTIFY_MODES)
    aspect: str = described(
        "crop", "camera image vs the model's trained aspect: crop (centre-crop to it; the cropped-off bands of the "
        "depth image are NaN, no data), pad (pad to it; every pixel gets depth) or stretch (resize as is: the "
        "geometry is squashed, warned once)", choices=ASPECT_POLICIES)
    scale_policy: str = described(
        "auto", "where metric scale comes from: auto (model if metric, else sparse_alignment when sparse points are "
        "given, else none), model (already metric), none, fixed, canonical_focal, sparse_alignment, ground_plane",
        choices=SCALE_POLICIES)
    scale_fixed: float = described(_SCALE_DEFAULTS.fixed_scale, "depth multiplier for scale_policy fixed", min_value=1e-6, max_value=1e6)
    camera_height_m: float = described(0.0, "camera height over a flat floor (m), for scale_policy ground_plane; 0 = unset", min_value=0.0, max_value=100.0)
    scale_sparse_mode: str = described(_SCALE_DEFAULTS.sparse_mode, "sparse_alignment fit: scale, scale_shift (affine in inverse depth) or auto (scale_shift for inverse_depth_relative models)", choices=SPARSE_MODES)
    scale_min_support: int = described(_SCALE_DEFAULTS.min_support, "fewest inlier points (or ground pixels) an alignment needs", min_value=2, max_value=1_000_000)
    scale_inlier_threshold: float = described(_SCALE_DEFAULTS.inlier_threshold, "relative residual an alignment inlier may have (of depth, inverse depth or height)", min_value=1e-6, max_value=10.0)
    scale_smoothing: float = described(_SCALE_DEFAULTS.smoothing, "weight of the newest scale estimate in the exponential average (1 = no smoothing)", min_value=1e-3, max_value=1.0)
    scale_max_jump_ratio: float = described(_SCALE_DEFAULTS.max_jump_ratio, "a scale estimate changing depth by more than this factor is an outlier (> 1)", min_value=1.0, max_value=1000.0)
    scale_max_rejected_jumps: int = described(_SCALE_DEFAULTS.max_rejected_jumps, "... unless this many arrive in a row (frames)", min_value=1, max_value=10_000)
    scale_max_hold_frames: int = described(_SCALE_DEFAULTS.max_hold_frames, "frames the last good scale is reused for when support is short", min_value=0, max_value=1_000_000)
    scale_gravity_cam: tuple = described(_SCALE_DEFAULTS.gravity_cam, "gravity direction in the camera optical frame (x right, y down, z forward), for ground_plane", )
    scale_max_tilt_deg: float = described(_SCALE_DEFAULTS.max_tilt_deg, "largest angle (deg) between the ground normal and gravity", min_value=0.1, max_value=89.9)
    scale_ground_region: float = described(_SCALE_DEFAULTS.ground_region, "lower fraction of image rows searched for the ground", min_value=0.01, max_value=1.0)
    scale_ground_samples: int = described(_SCALE_DEFAULTS.ground_samples, "pixels sampled from the ground region", min_value=1, max_value=10_000_000)
    scale_min_ground_fraction: float = described(_SCALE_DEFAULTS.min_ground_fraction, "fewest ground-plane inliers, as a fraction of the valid sampled pixels", min_value=1e-3, max_value=1.0)
    scale_ransac_iterations: int = described(_SCALE_DEFAULTS.ransac_iterations, "RANSAC hypotheses of the sparse and ground fits", min_value=1, max_value=100_000)
    scale_seed: int = described(_SCALE_DEFAULTS.seed, "RANSAC random seed (estimates are deterministic)", min_value=0, max_value=2**31 - 1)

    def __post_init__(self) -> None:
        check_described_fields(self, ValueError)
        if not self.min_range_m < self.max_range_m:
            raise ValueError(
                f"min_range_m must be below max_range_m, got min_range_m={self.min_range_m}, max_range_m={self.max_range_m}"
            )
        if self.scale_policy == "ground_plane" and self.camera_height_m <= 0.0:
            raise ValueError("camera_height_m: scale_policy ground_plane needs camera_height_m > 0")
        self.scale_config("none")  # every scale field checked by the core config itself

    def scale_config(self, policy: str | None = None) -> ScaleConfig:
        """The core :class:`ScaleConfig` of these fields with ``policy`` (default: ``scale_policy``;
        ``auto`` must be resolved first, :func:`resolve_scale_config`).

        Raises:
            ValueError: a field the core config refuses, named by its FrameConfig name.
        """
        kwargs: dict[str, Any] = {core: getattr(self, name) for name, core in SCALE_FIELDS.items()}
        kwargs["camera_height_m"] = self.camera_height_m if self.camera_height_m > 0 else None
        kwargs["policy"] = self.scale_policy if policy is None else policy
        try:
            return ScaleConfig(**kwargs)
        except ValueError as exc:
            text = str(exc)
            for name, core in SCALE_FIELDS.items():
                if text.startswith(core + " "):
                    text = name + text[len(core):]
            raise ValueError(text) from None


def check_depth_kind(spec: "ModelSpec") -> None:
    """Refuse a model that does not output depth (ModelError)."""
    if not spec.is_depth:
        raise ModelError(
            f"model '{spec.name}' is a {spec.output_kind} network; depth inference needs one of "
            "disparity_sigmoid, inverse_depth_relative, depth_metric, canonical_inverse_depth"
        )


def resolve_scale_config(config: FrameConfig, spec: "ModelSpec", has_sparse: bool) -> ScaleConfig:
    """The core scale config for a model: ``auto`` resolved, the policy checked against the model.

    ``auto``: ``model`` for a metric model; else ``sparse_alignment`` (sparse mode ``auto``
    unless set) when sparse metric points are given (``has_sparse``); else ``none``, with a
    warning that depth is up to scale.

    Raises:
        ModelError: the policy cannot work with this model's output kind (ModelSpecError), or
            a scale field is invalid.
    """
    policy = config.scale_policy
    if policy == "auto":
        if spec.is_metric:
            policy = "model"
        elif has_sparse:
            policy = "sparse_alignment"
        else:
            _log.warning(
                "model '%s' (%s) is not metric and no scale policy was given: depth is up to scale "
                "(set the scale policy: fixed, sparse_alignment / lidar, ground_plane for metres)", spec.name, spec.output_kind,
            )
            policy = "none"
    try:
        scale = config.scale_config(policy)
    except ValueError as exc:
        raise ModelError(f"scale policy '{policy}': {exc}") from None
    validate_scale_policy(scale, spec)
    return scale


def make_postprocessor(spec: "ModelSpec", config: FrameConfig, has_sparse: bool) -> DepthPostprocessor:
    """The core postprocessor for a model and the config's range limits and scale policy."""
    scale = resolve_scale_config(config, spec, has_sparse)
    return DepthPostprocessor(spec, PostprocessConfig(min_range_m=config.min_range_m, max_range_m=config.max_range_m, scale=scale))


# -- the command-line spelling of the scale policy ------------------------------------------
_VALUE_MODES = ("fixed", "ground", "ground_plane")
_SCALE_MODES = ("auto", "none", "model", "fixed", "canonical_focal", "sparse_alignment", "ground_plane",
                "lidar", "lidar_shift", "ground")


@dataclass(frozen=True)
class ScaleChoice:
    """A scale policy as written on a command line (``--scale``), parsed.

    Attributes:
        mode: a policy of :data:`SCALE_POLICIES` or an alias: ``lidar`` (sparse_alignment,
            sparse mode scale), ``lidar_shift`` (sparse_alignment, mode scale_shift),
            ``ground`` (ground_plane).
        value: the factor for ``fixed``, the camera height in metres for ``ground`` /
            ``ground_plane``; else None.
    """

    mode: str = "auto"
    value: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in _SCALE_MODES:
            raise ValueError(f"scale mode must be one of {_SCALE_MODES}, got {self.mode!r}")
        needs_value = self.mode in _VALUE_MODES
        if needs_value and (self.value is None or not math.isfinite(self.value) or self.value <= 0):
            raise ValueError(f"scale '{self.mode}' needs a positive number, got {self.value!r}")
        if not needs_value and self.value is not None:
            raise ValueError(f"scale '{self.mode}' takes no value, got {self.value!r}")

    @property
    def uses_lidar(self) -> bool:
        """Sparse metric points are needed (a LiDAR topic offline)."""
        return self.mode in ("lidar", "lidar_shift", "sparse_alignment")

    def fields(self) -> dict[str, Any]:
        """The :class:`FrameConfig` fields this choice sets."""
        if self.mode == "fixed":
            return {"scale_policy": "fixed", "scale_fixed": float(self.value)}  # type: ignore[arg-type]
        if self.mode in ("ground", "ground_plane"):
            return {"scale_policy": "ground_plane", "camera_height_m": float(self.value)}  # type: ignore[arg-type]
        if self.mode == "lidar":
            return {"scale_policy": "sparse_alignment", "scale_sparse_mode": "scale"}
        if self.mode == "lidar_shift":
            return {"scale_policy": "sparse_alignment", "scale_sparse_mode": "scale_shift"}
        return {"scale_policy": self.mode}

    def __str__(self) -> str:
        return self.mode if self.value is None else f"{self.mode}:{self.value:g}"


def parse_scale(text: str) -> ScaleChoice:
    """Parse ``auto | none | model | fixed:S | canonical_focal | sparse_alignment | lidar |
    lidar_shift | ground:H | ground_plane:H``.

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
    elif mode in _VALUE_MODES:
        raise ValueError(f"scale '{text}' needs a value: '{mode}:<number>'")
    return ScaleChoice(mode, value)
