"""Configuration of the synthetic scene renderer (:class:`SynthConfig`).

One frozen dataclass is the single source of truth: YAML files are checked against its fields
(unknown keys rejected) and ``depth-ros synth`` generates one ``--<field>`` flag per field from it.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.errors import InputError
from depth_ros.safeio import load_yaml_bounded, read_text_capped

#: A scene config is a flat mapping of a few dozen fields (< 4 KB).
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NESTING = 8

__all__ = ["DISTORTION_MODELS", "HFOV_LIMITS_DEG", "RELATIVE_SCALE_RANGE", "RELATIVE_SHIFT_RANGE", "SCENES", "STORAGES", "TRAJECTORIES", "SynthConfig", "coerce_value", "load_config"]

SCENES = ("corridor", "room", "hall")
TRAJECTORIES = ("forward", "orbit", "random_smooth")
STORAGES = ("auto", "mcap", "sqlite3")
DISTORTION_MODELS = ("none", "plumb_bob", "equidistant")

_MAX_SIDE_PX = 8192
#: Horizontal fields of view (degrees) ``hfov_deg`` / ``hfov_range_deg`` accept: from a short
#: telephoto to a wide-angle pinhole (a rectified image wider than ~150 degrees wastes most pixels
#: on its rim).
HFOV_LIMITS_DEG = (20.0, 150.0)
#: The relative label's per-bag affine map of inverse depth (``relative_label``): the scale is drawn
#: log-uniformly from RELATIVE_SCALE_RANGE (per metre), the shift uniformly from RELATIVE_SHIFT_RANGE.
RELATIVE_SCALE_RANGE = (0.5, 5.0)
RELATIVE_SHIFT_RANGE = (0.0, 1.0)
# SeedSequence spawn keys of the per-bag draws: streams of their own, so turning them on leaves the
# scene, textures and trajectory (drawn from ``seed`` alone) unchanged.
_HFOV_STREAM = 0x46_4F_56  # "FOV"
_RELATIVE_STREAM = 0x52_45_4C  # "REL"
_MAX_FRAMES = 1_000_000


def _f(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic sequence; the same config always renders the same bytes.

    Intrinsics left as ``None`` take defaults: ``fx_px = 0.58 * width`` (KITTI-like, about 81 degrees
    horizontal field of view), ``fy_px = fx_px``, principal point at the image centre
    ``((width - 1) / 2, (height - 1) / 2)`` (pixel-centre convention of CameraModel).

    Field of view instead of a focal length: ``hfov_deg`` gives ``fx_px = (width / 2) / tan(hfov / 2)``
    (:meth:`CameraModel.from_fov`); ``hfov_range_deg: "50,110"`` draws it uniformly from that range
    with the bag's ``seed`` (a series of bags with seeds 0, 1, 2, ... gets a spread of cameras, each
    recorded in its camera_info). Either one excludes ``fx_px`` and the other.

    ``relative_label``: also write ``/camera/depth/relative_inverse``, 32FC1, ``scale / depth_m + shift``
    with one scale (log-uniform in :data:`RELATIVE_SCALE_RANGE`, per metre) and one shift (uniform in
    :data:`RELATIVE_SHIFT_RANGE`) per bag, drawn from ``seed`` (:attr:`relative_scale_shift`): a
    ``relative_inverse_depth`` label (disparity up to scale and shift), NaN where the depth is not
    finite and positive. The draws use streams of their own: the scene is the same with or without them.
    """

    width: int = _f(640, "image width in pixels")
    height: int = _f(480, "image height in pixels")
    fx_px: float | None = _f(None, "focal length x in pixels (default 0.58 * width)")
    fy_px: float | None = _f(None, "focal length y in pixels (default fx_px)")
    cx_px: float | None = _f(None, "principal point x in pixels (default (width - 1) / 2)")
    cy_px: float | None = _f(None, "principal point y in pixels (default (height - 1) / 2)")
    hfov_deg: float | None = _f(
        None, "horizontal field of view in degrees, [20, 150]: fx_px = (width / 2) / tan(hfov / 2), fy_px = fx_px unless given (not with fx_px)"
    )
    hfov_range_deg: str = _f(
        "", "'LO,HI' degrees: draw hfov_deg uniformly from [LO, HI] with the seed, per bag (not with fx_px or hfov_deg)"
    )
    distortion_model: str = _f(
        "none", "lens distortion of the rendered images: none, plumb_bob (radtan) or equidistant (fisheye)"
    )
    distortion_coeffs: str = _f(
        "", "distortion coefficients, comma-separated: k1,k2,p1,p2[,k3] (plumb_bob) or k1,k2,k3,k4 (equidistant)"
    )
    frames: int = _f(100, "number of camera frames")
    rate_hz: float = _f(10.0, "camera frame rate in Hz")
    start_stamp_ns: int = _f(1_700_000_000_000_000_000, "stamp of the first frame, ns since the epoch")
    seed: int = _f(0, "random seed (scene layout, textures, trajectory)")
    scene: str = _f("corridor", f"scene preset: {', '.join(SCENES)}")
    trajectory: str = _f("forward", f"camera trajectory: {', '.join(TRAJECTORIES)}")
    speed_mps: float = _f(0.5, "camera speed in m/s (mean speed for random_smooth)")
    num_boxes: int | None = _f(None, "number of static boxes (default: 0.15 per square metre of floor)")
    moving_objects: int = _f(0, "number of boxes that move on their own (0 = none)")
    texture_size_px: int = _f(512, "texture tile resolution in texels (power of two)")
    texture_tile_m: float = _f(4.0, "side of one texture tile in metres")
    texture_octaves: int = _f(6, "octaves of value noise in the textures")
    texture_edges: bool = _f(True, "add sharp edges (tiles, stripes, patches) to the textures")
    shading: bool = _f(True, "Lambertian shading from a fixed light (else flat)")
    jpeg: bool = _f(False, "also write /camera/image_raw/compressed (jpeg)")
    jpeg_quality: int = _f(90, "jpeg quality 1..100")
    object_mask: bool = _f(
        True, "also write /camera/object_mask (16UC1 box instance ids, 0 = room) for boundary recall"
    )
    relative_label: bool = _f(
        False, "also write /camera/depth/relative_inverse (32FC1: scale / depth + shift, scale and shift drawn per bag from the seed)"
    )
    lidar_beams: int = _f(16, "LiDAR beams (rows); 0 disables the LiDAR")
    lidar_azimuth_samples: int = _f(360, "LiDAR samples per beam over 360 degrees")
    lidar_vertical_fov_deg: float = _f(30.0, "LiDAR vertical field of view in degrees, centred on the horizon")
    storage: str = _f("auto", f"bag storage: {', '.join(STORAGES)} (auto: from the output suffix, else mcap)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _field_types()[f.name])
        self._check_range("width", 16, _MAX_SIDE_PX)
        self._check_range("height", 16, _MAX_SIDE_PX)
        for name in ("fx_px", "fy_px"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"SynthConfig.{name} must be a finite number > 0, got {value!r}")
        for name, side in (("cx_px", self.width), ("cy_px", self.height)):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and -0.5 <= value <= side - 0.5):
                raise ValueError(f"SynthConfig.{name} must lie inside the image [-0.5, {side - 0.5}], got {value!r}")
        self._check_fov()
        self._check_distortion()
        self._check_range("frames", 1, _MAX_FRAMES)
        if not (math.isfinite(self.rate_hz) and 0.1 <= self.rate_hz <= 1000.0):
            raise ValueError(f"SynthConfig.rate_hz must be in [0.1, 1000], got {self.rate_hz!r}")
        self._check_range("start_stamp_ns", 0, 2**63 - 1 - int(self.frames * 1e9 / self.rate_hz) - 1)
        self._check_range("seed", 0, 2**63 - 1)
        self._check_choice("scene", SCENES)
        self._check_choice("trajectory", TRAJECTORIES)
        self._check_choice("storage", STORAGES)
        if not (math.isfinite(self.speed_mps) and 0.0 <= self.speed_mps <= 20.0):
            raise ValueError(f"SynthConfig.speed_mps must be in [0, 20] m/s, got {self.speed_mps!r}")
        if self.num_boxes is not None:
            self._check_range("num_boxes", 0, 2000)
        self._check_range("moving_objects", 0, 50)
        self._check_range("texture_size_px", 16, 4096)
        if self.texture_size_px & (self.texture_size_px - 1):
            raise ValueError(f"SynthConfig.texture_size_px must be a power of two, got {self.texture_size_px}")
        if not (math.isfinite(self.texture_tile_m) and 0.1 <= self.texture_tile_m <= 100.0):
            raise ValueError(f"SynthConfig.texture_tile_m must be in [0.1, 100] m, got {self.texture_tile_m!r}")
        self._check_range("texture_octaves", 1, 10)
        self._check_range("jpeg_quality", 1, 100)
        self._check_range("lidar_beams", 0, 256)
        self._check_range("lidar_azimuth_samples", 1, 100_000)
        if not (math.isfinite(self.lidar_vertical_fov_deg) and 0.0 <= self.lidar_vertical_fov_deg <= 170.0):
            raise ValueError(
                f"SynthConfig.lidar_vertical_fov_deg must be in [0, 170] degrees, got {self.lidar_vertical_fov_deg!r}"
            )

    def _check_fov(self) -> None:
        lo, hi = HFOV_LIMITS_DEG
        given = [name for name in ("fx_px", "hfov_deg", "hfov_range_deg") if getattr(self, name) not in (None, "")]
        if len(given) > 1:
            raise ValueError(f"SynthConfig: give one of fx_px, hfov_deg, hfov_range_deg, got {' and '.join(given)}")
        if self.hfov_deg is not None and not (math.isfinite(self.hfov_deg) and lo <= self.hfov_deg <= hi):
            raise ValueError(f"SynthConfig.hfov_deg must be in [{lo:g}, {hi:g}] degrees, got {self.hfov_deg!r}")
        self.hfov_range  # parses and checks hfov_range_deg

    @property
    def hfov_range(self) -> tuple[float, float] | None:
        """``hfov_range_deg`` as (low, high) degrees, or None when empty.

        Raises:
            ValueError: not two numbers ``LO,HI`` with ``20 <= LO <= HI <= 150``.
        """
        text = self.hfov_range_deg.strip()
        if not text:
            return None
        lo, hi = HFOV_LIMITS_DEG
        try:
            low, high = (float(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"SynthConfig.hfov_range_deg must be 'LO,HI' in degrees, got {text!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and lo <= low <= high <= hi):
            raise ValueError(f"SynthConfig.hfov_range_deg must satisfy {lo:g} <= LO <= HI <= {hi:g} degrees, got {text!r}")
        return low, high

    @property
    def drawn_hfov_deg(self) -> float | None:
        """The camera's horizontal field of view in degrees when set by ``hfov_deg`` or drawn from
        ``hfov_range_deg`` (uniform, from ``seed``'s own stream), else None (``fx_px`` or the default)."""
        if self.hfov_deg is not None:
            return float(self.hfov_deg)
        bounds = self.hfov_range
        if bounds is None:
            return None
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _HFOV_STREAM]))
        return float(rng.uniform(*bounds))

    @property
    def relative_scale_shift(self) -> tuple[float, float]:
        """(scale per metre, shift) of this bag's relative label ``scale / depth_m + shift``, drawn
        from ``seed``'s own stream (see the class docstring)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _RELATIVE_STREAM]))
        log_lo, log_hi = (math.log(v) for v in RELATIVE_SCALE_RANGE)
        scale = math.exp(float(rng.uniform(log_lo, log_hi)))
        return scale, float(rng.uniform(*RELATIVE_SHIFT_RANGE))

    def _check_distortion(self) -> None:
        self._check_choice("distortion_model", DISTORTION_MODELS)
        if (self.distortion_model == "none") != (self.distortion_coeffs.strip() == ""):
            raise ValueError(
                "SynthConfig.distortion_model and distortion_coeffs go together: "
                f"got {self.distortion_model!r} with {self.distortion_coeffs!r}"
            )
        if self.distortion_model == "none":
            return
        from depth_ros.core.distortion import check_distortion

        try:
            check_distortion(self.camera)
        except InputError as exc:
            raise ValueError(f"SynthConfig.distortion_coeffs: {exc}") from None

    @property
    def distortion(self) -> tuple[float, ...]:
        """The distortion coefficients (empty for ``distortion_model: none``).

        Raises:
            ValueError: a coefficient that is not a finite number.
        """
        text = self.distortion_coeffs.strip()
        if not text:
            return ()
        try:
            values = tuple(float(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"SynthConfig.distortion_coeffs must be comma-separated numbers, got {text!r}") from None
        if not all(math.isfinite(v) for v in values) or len(values) > 14:
            raise ValueError(f"SynthConfig.distortion_coeffs must be at most 14 finite numbers, got {text!r}")
        return values

    def _check_range(self, name: str, lo: int, hi: int) -> None:
        value = getattr(self, name)
        if not lo <= value <= hi:
            raise ValueError(f"SynthConfig.{name} must be in [{lo}, {hi}], got {value!r}")

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ValueError(f"SynthConfig.{name} must be one of {', '.join(choices)}; got {value!r}")

    # -- derived quantities ------------------------------------------------------------------
    @property
    def camera(self) -> CameraModel:
        """The camera at (width, height) with the defaults above filled in: a pinhole, or the
        distorted camera of ``distortion_model`` / ``distortion_coeffs``."""
        hfov = self.drawn_hfov_deg
        if hfov is not None:
            fx = CameraModel.from_fov(self.width, self.height, hfov).fx
        else:
            fx = self.fx_px if self.fx_px is not None else 0.58 * self.width
        fy = self.fy_px if self.fy_px is not None else fx
        cx = self.cx_px if self.cx_px is not None else (self.width - 1) / 2.0
        cy = self.cy_px if self.cy_px is not None else (self.height - 1) / 2.0
        pinhole = CameraModel.from_intrinsics(self.width, self.height, fx, fy, cx, cy)
        if self.distortion_model == "none":
            return pinhole
        return CameraModel(self.width, self.height, pinhole.K, np.array(self.distortion), self.distortion_model)

    @property
    def period_ns(self) -> int:
        """Nominal frame period in nanoseconds (stamps are rounded from ``i / rate_hz``)."""
        return int(round(1e9 / self.rate_hz))

    def stamp_ns(self, index: int) -> int:
        """Stamp of frame ``index``: ``start_stamp_ns + round(index * 1e9 / rate_hz)``."""
        return self.start_stamp_ns + int(round(index * 1e9 / self.rate_hz))

    def time_s(self, index: int) -> float:
        """Scene time of frame ``index`` in seconds since the first frame (exactly the stamp's)."""
        return (self.stamp_ns(index) - self.start_stamp_ns) * 1e-9

    def replace(self, **changes: Any) -> "SynthConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "SynthConfig":
        """Build from a mapping (YAML document, CLI flags); unknown keys raise ``InputError``.

        Values are coerced from strings where the field type asks for it (``"640"`` -> 640,
        ``"true"`` -> True, ``"none"`` -> None), anything else must already have the right type.
        """
        if not isinstance(values, Mapping):
            raise InputError(f"{source}: expected a mapping of SynthConfig fields, got {type(values).__name__}")
        types_ = _field_types()
        unknown = sorted(str(k) for k in values if k not in types_)
        if unknown:
            raise InputError(
                f"{source}: unknown SynthConfig field(s) {', '.join(unknown)}; known: {', '.join(types_)}"
            )
        try:
            kwargs = {name: coerce_value(name, value, types_[name]) for name, value in values.items()}
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: {exc}") from None


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(SynthConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(SynthConfig)}


def _base_types(tp: Any) -> tuple[tuple[type, ...], bool]:
    """(allowed concrete types, None allowed) of an annotation like ``float | None``."""
    args = typing.get_args(tp) if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union else (tp,)
    optional = type(None) in args
    return tuple(a for a in args if a is not type(None)), optional


def _check_type(name: str, value: Any, tp: Any) -> None:
    allowed, optional = _base_types(tp)
    if value is None:
        if optional:
            return
        raise TypeError(f"SynthConfig.{name} must be {allowed[0].__name__}, got None")
    base = allowed[0]
    ok = (
        (base is bool and isinstance(value, bool))
        or (base is int and isinstance(value, int) and not isinstance(value, bool))
        or (base is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (base is str and isinstance(value, str))
    )
    if not ok:
        raise TypeError(f"SynthConfig.{name} must be {base.__name__}, got {type(value).__name__} {value!r}")


def coerce_value(name: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` to the type of field ``name`` (strings from the CLI, numbers from YAML).

    Raises:
        InputError: the value cannot be read as that type (message names the field and value).
    """
    allowed, optional = _base_types(tp)
    base = allowed[0]
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if optional and text.lower() in ("none", "null", "auto", ""):
            return None
        try:
            if base is bool:
                lowered = text.lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if base is int:
                return int(text.replace("_", ""))
            if base is float:
                return float(text)
        except ValueError:
            raise InputError(f"{name}: expected {base.__name__}, got {value!r}") from None
        return text
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> SynthConfig:
    """Read a YAML file of SynthConfig fields and apply overrides on top.

    The file is read as untrusted (:mod:`depth_ros.safeio`): at most ``MAX_CONFIG_BYTES``,
    UTF-8, safe-loaded with aliases refused and nesting bounded.

    The YAML document may be the mapping itself or ``{synth: {...}}``.

    Raises:
        InputError: unreadable YAML, not a mapping, unknown keys, invalid values.
        FileNotFoundError: ``path`` does not exist.
    """
    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        # untrusted like any config: size-capped, UTF-8, no aliases, bounded nesting
        doc = load_yaml_bounded(read_text_capped(path, MAX_CONFIG_BYTES, what="scene config"), source,
                                max_nesting=MAX_CONFIG_NESTING, what="scene config")
        if doc is None:
            doc = {}
        if isinstance(doc, Mapping) and set(doc) == {"synth"}:
            doc = doc["synth"]
        if not isinstance(doc, Mapping):
            raise InputError(f"{path}: expected a mapping of SynthConfig fields, got {type(doc).__name__}")
        values.update(doc)
    if overrides:
        values.update(overrides)
        if path is not None:
            source = f"{path} + flags"
        else:
            source = "flags"
    return SynthConfig.from_dict(values, source=source)
