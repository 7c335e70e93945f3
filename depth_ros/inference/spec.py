"""ModelSpec: the contract between an exported network and the runtime.

An exported model carries its spec as JSON in the ONNX ``metadata_props`` under the key
:data:`METADATA_KEY`. Third-party ONNX files (Depth Anything V2, MiDaS, ...) get a YAML
sidecar instead: ``model.onnx`` -> ``model.onnx.yaml`` or ``model.yaml``.

Output kinds (what the network's first output means), ``w`` = network output:

* ``disparity_sigmoid``: ``w`` in [0, 1]; ``disp = 1/max_depth + (1/min_depth - 1/max_depth) * w``,
  ``depth_m = 1 / disp`` (monodepth2 / SC-Depth). Metric only when ``metric`` is true
  (trained with velocity supervision); otherwise up to scale.
* ``inverse_depth_relative``: ``w`` is affine-invariant inverse depth (MiDaS / Depth
  Anything); needs a scale policy.
* ``depth_metric``: ``w`` is depth in metres.
* ``canonical_inverse_depth``: Depth Pro; ``depth_m = f_px / (W_px * w)`` with the camera's
  focal length and the image width, both in pixels at the *camera* resolution.
* ``pose_6dof`` (pose networks): ``(1, 6)``: axis-angle rotation (rad) then translation;
  ``pose_convention`` says which way the transform maps.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from depth_ros.errors import ModelError

__all__ = [
    "DEPTH_KINDS",
    "METADATA_KEY",
    "ModelSpec",
    "ModelSpecError",
    "OUTPUT_KINDS",
    "SPEC_VERSION",
    "load_model_spec",
]

METADATA_KEY = "depth_ros.model_spec"
SPEC_VERSION = 1

DEPTH_KINDS = ("disparity_sigmoid", "inverse_depth_relative", "depth_metric", "canonical_inverse_depth")
OUTPUT_KINDS = DEPTH_KINDS + ("pose_6dof",)
OutputKind = Literal[
    "disparity_sigmoid", "inverse_depth_relative", "depth_metric", "canonical_inverse_depth", "pose_6dof"
]


class ModelSpecError(ModelError):
    """A model's contract is missing, malformed, or cannot be satisfied."""


@dataclass(frozen=True)
class ModelSpec:
    """What a network expects and what it returns.

    Args:
        output_kind: one of :data:`OUTPUT_KINDS`.
        input_height: network input height in pixels.
        input_width: network input width in pixels.
        input_name: name of the image input tensor.
        output_name: name of the depth (or pose) output tensor.
        confidence_name: name of an optional per-pixel confidence output in [0, 1], or None.
        layout: "NCHW" or "NHWC" for the image input.
        color_order: "rgb" or "bgr" channel order the network was trained on.
        mean: per-channel mean subtracted after scaling pixels to [0, 1].
        std: per-channel std divided after the mean.
        input_channels: 3 for depth networks; 6 for pose networks (two frames stacked
            along channels: ``[target, source]``).
        min_depth_m: for ``disparity_sigmoid``: depth at w = 1; for all kinds the nearest
            depth the model is trusted at.
        max_depth_m: for ``disparity_sigmoid``: depth at w = 0; the farthest trusted depth.
        metric: the depth (or translation) is in metres as returned (after the kind's
            formula); False means "up to scale", a scale policy is needed for metres.
        scale_source: how the model got metric scale ("velocity_supervision", "metric_labels",
            "canonical_focal", "none").
        train_fx_px: focal length (px, at input resolution) of the training camera, or None.
        pose_convention: for pose networks, "T_tgt_src" (maps points of the source frame into
            the target frame) or "T_src_tgt".
        name: a human-readable model name.
        extra: free-form string metadata (kept verbatim, never interpreted).
    """

    output_kind: OutputKind
    input_height: int
    input_width: int
    input_name: str = "image"
    output_name: str = "depth"
    confidence_name: str | None = None
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color_order: Literal["rgb", "bgr"] = "rgb"
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    input_channels: int = 3
    min_depth_m: float = 0.1
    max_depth_m: float = 100.0
    metric: bool = False
    scale_source: str = "none"
    train_fx_px: float | None = None
    pose_convention: Literal["T_tgt_src", "T_src_tgt"] = "T_tgt_src"
    name: str = "unnamed"
    extra: Mapping[str, str] = field(default_factory=dict)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if self.output_kind not in OUTPUT_KINDS:
            raise ModelSpecError(f"output_kind must be one of {OUTPUT_KINDS}, got {self.output_kind!r}")
        for name in ("input_height", "input_width", "input_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 16384:
                raise ModelSpecError(f"{name} must be an integer in 1..16384, got {value!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ModelSpecError(f"layout must be 'NCHW' or 'NHWC', got {self.layout!r}")
        if self.color_order not in ("rgb", "bgr"):
            raise ModelSpecError(f"color_order must be 'rgb' or 'bgr', got {self.color_order!r}")
        for name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 3 or not all(math.isfinite(v) for v in value):
                raise ModelSpecError(f"{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        if any(s <= 0 for s in self.std):
            raise ModelSpecError(f"std must be positive, got {self.std}")
        if not (0 < self.min_depth_m < self.max_depth_m and math.isfinite(self.max_depth_m)):
            raise ModelSpecError(
                f"need 0 < min_depth_m < max_depth_m < inf, got {self.min_depth_m}, {self.max_depth_m}"
            )
        expected_channels = 6 if self.output_kind == "pose_6dof" else 3
        if self.input_channels != expected_channels:
            raise ModelSpecError(
                f"{self.output_kind} models take {expected_channels} input channels, spec says {self.input_channels}"
            )
        if self.pose_convention not in ("T_tgt_src", "T_src_tgt"):
            raise ModelSpecError(f"pose_convention must be 'T_tgt_src' or 'T_src_tgt', got {self.pose_convention!r}")
        if self.train_fx_px is not None and not (math.isfinite(self.train_fx_px) and self.train_fx_px > 0):
            raise ModelSpecError(f"train_fx_px must be a positive number, got {self.train_fx_px}")
        if self.version > SPEC_VERSION:
            raise ModelSpecError(
                f"model spec version {self.version} is newer than this depth_ros understands ({SPEC_VERSION})"
            )
        object.__setattr__(self, "extra", {str(k): str(v) for k, v in dict(self.extra).items()})

    @property
    def is_depth(self) -> bool:
        return self.output_kind in DEPTH_KINDS

    @property
    def is_metric(self) -> bool:
        """True when the kind's formula gives metres without a runtime scale policy."""
        return self.metric or self.output_kind in ("depth_metric", "canonical_inverse_depth")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["extra"] = dict(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model spec") -> "ModelSpec":
        if not isinstance(data, Mapping):
            raise ModelSpecError(f"{source}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelSpecError(f"{source}: unknown keys {unknown} (known: {sorted(known)})")
        missing = [k for k in ("output_kind", "input_height", "input_width") if k not in data]
        if missing:
            raise ModelSpecError(f"{source}: missing required keys {missing}")
        kwargs = dict(data)
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        try:
            return cls(**kwargs)
        except ModelSpecError as exc:
            raise ModelSpecError(f"{source}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ModelSpecError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "model spec") -> "ModelSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelSpecError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ModelSpec":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ModelSpecError(f"{path}: not valid YAML ({exc})") from None
        return cls.from_dict(data, str(path))

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=True))


def sidecar_candidates(model_path: str | Path) -> list[Path]:
    """YAML sidecar names looked for next to a model file, in order."""
    p = Path(model_path)
    return [p.with_name(p.name + ".yaml"), p.with_suffix(".yaml")]


def load_model_spec(model_path: str | Path) -> ModelSpec:
    """The spec of a model file: a YAML sidecar wins over embedded ONNX metadata.

    Raises:
        ModelSpecError: neither a sidecar nor ``metadata_props[METADATA_KEY]`` exists, or the
            spec found is malformed.
        FileNotFoundError: the model file does not exist.
    """
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    for sidecar in sidecar_candidates(path):
        if sidecar.is_file() and sidecar != path:
            return ModelSpec.from_yaml(sidecar)
    if path.suffix.lower() != ".onnx":
        raise ModelSpecError(
            f"{path}: no spec sidecar ({', '.join(str(s.name) for s in sidecar_candidates(path))}) "
            "and not an ONNX file with embedded metadata"
        )
    import onnx  # heavy; only here

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError variants
        raise ModelSpecError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelSpecError(
            f"{path}: no '{METADATA_KEY}' in the ONNX metadata and no YAML sidecar; "
            f"write one with the keys of depth_ros.inference.spec.ModelSpec (see README, 'Model contract')"
        )
    return ModelSpec.from_json(props[METADATA_KEY], f"{path} metadata")
