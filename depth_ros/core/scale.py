"""Metric scale policies for depth networks (pure numpy).

Every policy works on the network's *unscaled inverse depth* ``x`` (1/m for metric models,
arbitrary units otherwise) at camera resolution and returns a :class:`ScaleEstimate`
``(scale, shift)``; the postprocessor turns ``x`` into metres as

* ``depth_m = scale / x`` (scale-only policies: ``scale`` multiplies depth), or
* ``depth_m = 1 / (scale * x + shift)`` (``sparse_alignment`` in ``scale_shift`` mode, the
  MiDaS alignment: affine in inverse depth, ``shift`` in 1/m).

Policies (``ScaleConfig.policy``; the name is also the ``scale_source`` reported):

* ``none``: scale 1, depth as the kind's formula gives it (up to scale for relative models).
* ``fixed``: a known multiplier ``fixed_scale``.
* ``model``: the model is metric (``ModelSpec.is_metric``); scale 1, source ``model``, unless
  the spec records its training focal length (``train_fx_px``, px at the network input) and
  the camera's at the network input differs: then ``scale = f_cam / f_train``
  (:func:`focal_ratio`), source ``model_focal``. Assumption (pinhole): the network infers depth
  from apparent size, which is ``f / z``; the same scene seen with focal ``f_cam`` looks as it
  would at depth ``z f_train / f_cam`` to the training camera, so the predicted depth is
  multiplied by ``f_cam / f_train``. A ``canonical_inverse_depth`` model reports
  ``canonical_focal`` and is never corrected: its formula already uses the camera's focal
  length.
* ``canonical_focal``: Depth Pro; the kind's formula ``f_px / (W_px * w)`` is already metric.
* ``sparse_alignment``: robust fit against sparse metric points (LiDAR) already in the camera
  optical frame, projected with K. ``scale``: trimmed least squares of ``log(z / depth)``
  from a median start (a robust location estimate, iterated: outliers beyond
  ``min(inlier_threshold, 3 sigma_MAD)`` are dropped and the mean refit). ``scale_shift``:
  RANSAC on pairs, then weighted least squares of the relative inverse-depth residual on
  the inliers, iterated.
* ``ground_plane``: RANSAC plane on the back-projected lower image region (unscaled); only
  planes *below* the camera whose normal is within ``max_tilt_deg`` of gravity
  (``gravity_cam``, optical frame) count (walls and ceilings do not), refit by least
  squares; ``scale = camera_height_m / estimated height``.

Alignment estimates are smoothed over time (exponential: in log scale for scale-only,
linear in (scale, shift) for the affine fit) by
:class:`ScaleTracker`; a sudden jump (predicted depth changing by more than
``max_jump_ratio``) is held as an outlier unless it persists for ``max_rejected_jumps``
frames; with too little support the last good scale is reused (source ``<policy>_held``) for
up to ``max_hold_frames`` frames, after which :class:`ScaleUnavailableError` is raised (the
caller skips the frame: no unscaled depth is ever published as metric).

The fits themselves (pure functions) are in :mod:`depth_ros.core.scale_fit`, re-exported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.core.scale_fit import fit_ground_plane, fit_scale, fit_scale_shift, ground_points, sample_at_points
from depth_ros.errors import InputError
from depth_ros.inference.spec import ModelSpec, ModelSpecError

__all__ = [
    "FOCAL_TOLERANCE",
    "SCALE_POLICIES",
    "MetricScaler",
    "ScaleConfig",
    "ScaleEstimate",
    "ScaleTracker",
    "ScaleUnavailableError",
    "fit_ground_plane",
    "fit_scale",
    "fit_scale_shift",
    "focal_ratio",
    "ground_points",
    "sample_at_points",
    "validate_scale_policy",
]

SCALE_POLICIES = ("none", "fixed", "model", "canonical_focal", "sparse_alignment", "ground_plane")
ScalePolicy = Literal["none", "fixed", "model", "canonical_focal", "sparse_alignment", "ground_plane"]


class ScaleUnavailableError(InputError):
    """No metric scale for this frame (too little support and no recent good scale)."""


@dataclass(frozen=True)
class ScaleConfig:
    """How depth gets metric scale at run time.

    Args:
        policy: one of :data:`SCALE_POLICIES`.
        fixed_scale: multiplier of depth for ``fixed``.
        sparse_mode: ``scale``, ``scale_shift`` (affine in inverse depth) or ``auto``
            (``scale_shift`` for ``inverse_depth_relative`` models, else ``scale``).
        min_support: fewest inlier points an alignment needs to count.
        inlier_threshold: relative residual (of depth for ``scale``, of inverse depth for
            ``scale_shift``, of height for the ground plane) an inlier may have.
        smoothing: weight of the newest estimate in the exponential average (1 = none).
        max_jump_ratio: an estimate changing inverse depth by more than this factor at the
            frame's median support point is an outlier ...
        max_rejected_jumps: ... unless this many arrive in a row (then the new value is taken).
        max_hold_frames: frames the last good estimate is reused for when support is short.
        camera_height_m: height of the optical centre above the ground (``ground_plane``).
        gravity_cam: gravity direction in the camera optical frame (x right, y down, z forward);
            ``(0, 1, 0)`` for a level camera.
        max_tilt_deg: largest angle between the ground normal and gravity accepted.
        ground_region: lower fraction of image rows searched for the ground.
        ground_samples: pixels sampled (on a regular grid) from the ground region.
        min_ground_fraction: fewest plane inliers, as a fraction of valid sampled pixels.
        ransac_iterations: hypotheses tried by RANSAC.
        seed: RANSAC random seed (estimates are deterministic).
    """

    policy: ScalePolicy = "model"
    fixed_scale: float = 1.0
    sparse_mode: Literal["scale", "scale_shift", "auto"] = "auto"
    min_support: int = 20
    inlier_threshold: float = 0.05
    smoothing: float = 0.3
    max_jump_ratio: float = 1.5
    max_rejected_jumps: int = 5
    max_hold_frames: int = 30
    camera_height_m: float | None = None
    gravity_cam: tuple[float, float, float] = (0.0, 1.0, 0.0)
    max_tilt_deg: float = 30.0
    ground_region: float = 0.5
    ground_samples: int = 4000
    min_ground_fraction: float = 0.2
    ransac_iterations: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.policy not in SCALE_POLICIES:
            raise ValueError(f"scale policy must be one of {SCALE_POLICIES}, got {self.policy!r}")
        if self.sparse_mode not in ("scale", "scale_shift", "auto"):
            raise ValueError(f"sparse_mode must be 'scale', 'scale_shift' or 'auto', got {self.sparse_mode!r}")
        _positive("fixed_scale", self.fixed_scale)
        _positive("inlier_threshold", self.inlier_threshold)
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if not (math.isfinite(self.max_jump_ratio) and self.max_jump_ratio > 1.0):
            raise ValueError(f"max_jump_ratio must be a finite number > 1, got {self.max_jump_ratio}")
        for name in ("min_support", "max_rejected_jumps", "max_hold_frames", "ransac_iterations", "ground_samples"):
            value = getattr(self, name)
            lowest = 0 if name == "max_hold_frames" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
        if self.min_support < 2:
            raise ValueError(f"min_support must be >= 2, got {self.min_support}")
        if self.camera_height_m is not None:
            _positive("camera_height_m", self.camera_height_m)
        elif self.policy == "ground_plane":
            raise ValueError("the ground_plane policy needs camera_height_m (height of the camera above the ground)")
        g = tuple(float(v) for v in self.gravity_cam)
        if len(g) != 3 or not all(math.isfinite(v) for v in g) or math.hypot(*g) == 0:
            raise ValueError(f"gravity_cam must be a non-zero 3-vector, got {self.gravity_cam!r}")
        object.__setattr__(self, "gravity_cam", g)
        if not 0.0 < self.max_tilt_deg < 90.0:
            raise ValueError(f"max_tilt_deg must be in (0, 90), got {self.max_tilt_deg}")
        if not 0.0 < self.ground_region <= 1.0:
            raise ValueError(f"ground_region must be in (0, 1], got {self.ground_region}")
        if not 0.0 < self.min_ground_fraction <= 1.0:
            raise ValueError(f"min_ground_fraction must be in (0, 1], got {self.min_ground_fraction}")


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class ScaleEstimate:
    """A metric scale for one frame.

    Attributes:
        scale: multiplier of depth (scale-only) or of inverse depth (scale + shift).
        shift: added to inverse depth (1/m) after ``scale``; 0 for scale-only policies.
        source: which policy produced it (``sparse_alignment_held`` etc. when reused).
        support: points (or ground pixels) this frame's estimate used; 0 if none.
        affine: True when ``depth_m = 1 / (scale * x + shift)``, False when ``depth_m = scale / x``.
    """

    scale: float
    shift: float = 0.0
    source: str = "none"
    support: int = 0
    affine: bool = False

    def inverse_depth(self, x: np.ndarray | float) -> np.ndarray | float:
        """Metric inverse depth (1/m) from unscaled inverse depth ``x`` (``x`` itself, not a
        copy, when the estimate is the identity: a metric model's own scale)."""
        if self.scale == 1.0 and (self.shift == 0.0 or not self.affine):
            return x
        return self.scale * x + self.shift if self.affine else x / self.scale


#: A focal ratio within this of 1 is no mismatch (what rounding a resize to whole pixels gives).
FOCAL_TOLERANCE = 1e-3


def focal_ratio(spec: ModelSpec, camera: CameraModel) -> tuple[float, float] | None:
    """``(f_cam / f_train)`` per axis at the network input, or None when the spec has no
    training focal length.

    Args:
        spec: the model's contract (``train_fx_px``, ``train_fy_px``: px at its input size).
        camera: the camera of the image the network sees (after any aspect crop or pad), at
            its own resolution; rescaled here to the network input with
            :meth:`CameraModel.resized`.

    Returns:
        (ratio x, ratio y); y is the x ratio's twin ``fy / train_fx_px`` when the spec has no
        ``train_fy_px``.
    """
    if spec.train_fx_px is None:
        return None
    net = camera.resized(spec.input_width, spec.input_height)
    return net.fx / spec.train_fx_px, net.fy / (spec.train_fy_px if spec.train_fy_px is not None else spec.train_fx_px)


def _model_estimate(spec: ModelSpec, camera: CameraModel) -> ScaleEstimate:
    """The ``model`` policy: scale 1, or the focal ratio ``sqrt(r_x r_y)`` (geometric mean of the
    axes; they differ only on a stretched image) when it is off 1 by more than FOCAL_TOLERANCE."""
    if spec.output_kind == "canonical_inverse_depth":
        return ScaleEstimate(1.0, source="canonical_focal")
    ratio = focal_ratio(spec, camera)
    if ratio is None:
        return ScaleEstimate(1.0, source="model")
    factor = math.sqrt(ratio[0] * ratio[1])
    if abs(factor - 1.0) <= FOCAL_TOLERANCE:
        return ScaleEstimate(1.0, source="model")
    return ScaleEstimate(factor, source="model_focal")


def validate_scale_policy(config: ScaleConfig, spec: ModelSpec) -> None:
    """Refuse a scale policy the model's output cannot support (a clear ModelSpecError)."""
    kind = spec.output_kind
    if not spec.is_depth:
        raise ModelSpecError(f"model '{spec.name}' outputs {kind}, not depth")
    if config.policy == "model" and not spec.is_metric:
        raise ModelSpecError(
            f"scale policy 'model' needs a metric model, but '{spec.name}' ({kind}, metric: false) is up to scale; "
            "use fixed, sparse_alignment or ground_plane"
        )
    if config.policy == "canonical_focal" and kind != "canonical_inverse_depth":
        raise ModelSpecError(f"scale policy 'canonical_focal' needs a canonical_inverse_depth model, got {kind}")
    if config.policy == "ground_plane" and kind == "inverse_depth_relative":
        raise ModelSpecError(
            "scale policy 'ground_plane' needs depth up to scale, but inverse_depth_relative has an unknown shift; "
            "use sparse_alignment with sparse_mode scale_shift"
        )


# -- temporal tracking --------------------------------------------------------------------
class ScaleTracker:
    """Exponential smoothing of alignment estimates with jump rejection and a bounded hold.

    Args:
        config: smoothing, max_jump_ratio, max_rejected_jumps, max_hold_frames.
        source: the policy name reported (``<source>_held`` when an old estimate is reused).
    """

    def __init__(self, config: ScaleConfig, source: str) -> None:
        self._config = config
        self._source = source
        self.reset()

    def reset(self) -> None:
        self._current: ScaleEstimate | None = None
        self._held_frames = 0
        self._rejected = 0

    def update(self, estimate: ScaleEstimate | None, x_ref: float, support: int, why: str) -> ScaleEstimate:
        """The estimate to use for this frame.

        Args:
            estimate: this frame's fit, or None when the fit failed / had too little support.
            x_ref: unscaled inverse depth at the frame's median support point (jump test).
            support: this frame's support count (reported).
            why: reason the fit failed (for the error when nothing can be reused).

        Raises:
            ScaleUnavailableError: no estimate now and none reusable.
        """
        cfg = self._config
        prev = self._current
        if estimate is not None and prev is not None:
            ratio = estimate.inverse_depth(x_ref) / prev.inverse_depth(x_ref)
            jump = not (ratio > 0 and abs(math.log(ratio)) <= math.log(cfg.max_jump_ratio))
            if jump:
                self._rejected += 1
                if self._rejected < cfg.max_rejected_jumps:
                    return self._hold(support, f"jump by a factor {ratio:.3g} rejected")
                prev = None  # the change persisted: start over from the new value
            if prev is not None:
                a = cfg.smoothing
                if estimate.affine:
                    scale = (1 - a) * prev.scale + a * estimate.scale
                    shift = (1 - a) * prev.shift + a * estimate.shift
                else:
                    scale = math.exp((1 - a) * math.log(prev.scale) + a * math.log(estimate.scale))
                    shift = 0.0
                estimate = replace(estimate, scale=scale, shift=shift)
        if estimate is None:
            return self._hold(support, why)
        self._rejected = 0
        self._held_frames = 0
        self._current = replace(estimate, source=self._source, support=support)
        return self._current

    def _hold(self, support: int, why: str) -> ScaleEstimate:
        if self._current is None or self._held_frames >= self._config.max_hold_frames:
            age = "" if self._current is None else f" and the last good scale is {self._held_frames} frames old"
            raise ScaleUnavailableError(f"no metric scale for this frame: {why}{age}")
        self._held_frames += 1
        return replace(self._current, source=f"{self._source}_held", support=support)


# -- policy front end ---------------------------------------------------------------------
class MetricScaler:
    """The scale policy of one stream (stateful for the alignment policies).

    Args:
        config: the policy and its parameters.
        spec: the model's contract (checked with :func:`validate_scale_policy`).
    """

    def __init__(self, config: ScaleConfig, spec: ModelSpec) -> None:
        validate_scale_policy(config, spec)
        self.config = config
        self.spec = spec
        mode = config.sparse_mode
        if mode == "auto":
            mode = "scale_shift" if spec.output_kind == "inverse_depth_relative" else "scale"
        self.sparse_mode = mode
        self._tracker = ScaleTracker(config, config.policy)
        self._rng_seed = config.seed

    def reset(self) -> None:
        """Forget the temporal state (e.g. after a jump in the bag or a camera change)."""
        self._tracker.reset()

    def __call__(self, x: np.ndarray, camera: CameraModel, sparse_points_cam: np.ndarray | None = None) -> ScaleEstimate:
        """The scale for one frame.

        Args:
            x: (H, W) float32 unscaled inverse depth at camera resolution, NaN invalid.
            camera: intrinsics at (W, H).
            sparse_points_cam: (N, 3) metres in the camera optical frame, or None.

        Raises:
            ScaleUnavailableError: alignment policies with no usable estimate.
        """
        policy = self.config.policy
        if policy == "none":
            return ScaleEstimate(1.0, source="none")
        if policy == "fixed":
            return ScaleEstimate(float(self.config.fixed_scale), source="fixed")
        if policy in ("model", "canonical_focal"):
            return _model_estimate(self.spec, camera)
        if policy == "sparse_alignment":
            return self._sparse(x, camera, sparse_points_cam)
        return self._ground(x, camera)

    def _sparse(self, x: np.ndarray, camera: CameraModel, points: np.ndarray | None) -> ScaleEstimate:
        cfg = self.config
        if points is None or len(points) == 0:
            return self._tracker.update(None, math.nan, 0, "no sparse points")
        x_at, z_m = sample_at_points(x, camera, points)
        if self.sparse_mode == "scale":
            ok = x_at > 0
            x_at, z_m = x_at[ok], z_m[ok]
            scale, inliers = fit_scale(1.0 / x_at, z_m, cfg.inlier_threshold) if len(x_at) else (math.nan, np.zeros(0, bool))
            estimate = ScaleEstimate(scale) if math.isfinite(scale) else None
        else:
            rng = np.random.default_rng(self._rng_seed)
            s, t, inliers = fit_scale_shift(x_at, 1.0 / z_m, cfg.inlier_threshold, cfg.ransac_iterations, rng)
            estimate = ScaleEstimate(s, t, affine=True) if math.isfinite(s) else None
        support = int(inliers.sum())
        if support < cfg.min_support:
            why = f"{support} inliers of {len(x_at)} sparse points in view, need {cfg.min_support}"
            return self._tracker.update(None, math.nan, support, why)
        x_ref = float(np.median(x_at[inliers]))
        return self._tracker.update(estimate, x_ref, support, "")

    def _ground(self, x: np.ndarray, camera: CameraModel) -> ScaleEstimate:
        cfg = self.config
        pts = ground_points(x, camera, cfg.ground_region, cfg.ground_samples)
        rng = np.random.default_rng(self._rng_seed)
        _, h, inliers = fit_ground_plane(pts, np.asarray(cfg.gravity_cam), cfg.max_tilt_deg, cfg.inlier_threshold,
                                         cfg.ransac_iterations, rng)
        support = int(inliers.sum())
        need = max(cfg.min_support, int(math.ceil(cfg.min_ground_fraction * len(pts))))
        if not math.isfinite(h) or support < need:
            why = (f"no ground plane within {cfg.max_tilt_deg} deg of gravity" if not math.isfinite(h)
                   else f"ground plane has {support} of {len(pts)} sampled pixels, need {need}")
            return self._tracker.update(None, math.nan, support, why)
        estimate = ScaleEstimate(float(cfg.camera_height_m) / h)
        x_ref = float(np.median(1.0 / pts[inliers, 2]))
        return self._tracker.update(estimate, x_ref, support, "")
