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

Input formats (``input_format``): ``float`` (the default, every spec before fused IO): a float32
tensor normalised with ``mean``/``std`` at the network input size, laid out as ``layout`` says;
the runtime resizes and normalises in numpy. ``uint8_camera``: pre-processing is inside the
graph (docs/fused-io.md): the model takes the camera image itself, ``(1, H, W, 3)`` uint8 at
``fused_width_px`` x ``fused_height_px`` in ``fused_color_order``, and does the aspect window
(``fused_aspect``), the resize to ``input_width`` x ``input_height`` and the normalisation
itself; with ``output_at_camera_resolution`` its outputs are at the window's size in camera
pixels, not at the network input size. Fused fields are written only when the input is fused,
so an unfused spec serialises exactly as before and a runtime that predates fused IO refuses a
fused one (unknown keys) instead of feeding it floats.

Batch (``max_batch``): the most frames one call takes, 1 by default (the input's first axis is
exactly 1). A model exported for several cameras (``depth-ros-train export --batch N``) has a
first axis of 1 to N frames (dynamic) or exactly N (fixed; fewer frames are padded), and says N
here: TensorRT builds its optimisation profile from it (a dynamic axis has no upper bound of
its own), ONNX Runtime refuses larger batches, and the multi-camera node batches at most N
frames. Written only when above 1, as the fused fields are.

Why one module of ~540 lines: the contract is one dataclass, every field validated where it is
declared, with its JSON / YAML sidecar reading and writing; an exporter reads it as a whole.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from depth_ros.errors import ModelError
from depth_ros.safeio import json_nesting_exceeds, load_yaml_bounded, parser_message, read_text_capped

__all__ = [
    "DEPTH_KINDS",
    "FUSED_ASPECTS",
    "INPUT_FORMATS",
    "MAX_BATCH",
    "MAX_INPUT_PIXELS",
    "MAX_INPUT_SIDE",
    "MAX_SPEC_BYTES",
    "METADATA_KEY",
    "ModelSpec",
    "ModelSpecError",
    "OUTPUT_KINDS",
    "SPEC_VERSION",
    "embed_spec",
    "json_nesting_exceeds",
    "load_model_spec",
]

METADATA_KEY = "depth_ros.model_spec"
#: Version 2 added the training camera beyond ``train_fx_px``: ``train_fy_px`` and the training
#: image size before the resize (``train_image_width_px``, ``train_image_height_px``). A version 1
#: spec loads with them None (unknown); a spec newer than this is refused.
SPEC_VERSION = 2

# -- bounds on an untrusted contract ---------------------------------------------------------
# A spec comes from a model file, a sidecar or a checkpoint, i.e. from whoever made the model;
# every size in it is bounded before anything is allocated from it.

#: Largest network input side, pixels. Published monocular depth networks run at 1536 px per
#: side at most (Depth Pro 1536x1536; Depth Anything / MiDaS / ZoeDepth 384-1024 px; KITTI
#: models 1024x320); 4096 leaves room for a wide panoramic input.
MAX_INPUT_SIDE = 4096
#: Largest network input area, pixels: 2^22 (2048x2048, or 4096x1024), 1.8x Depth Pro's. The
#: (1, 6, h, w) float32 pose input is then at most 100 MB, and a network with dynamic input
#: dims keeps activations a robot can hold (a spec asking for 16384x16384 made a 6.5 GB
#: allocation before failing).
MAX_INPUT_PIXELS = 1 << 22
#: Most frames one call of a model may take (``max_batch``): a robot's cameras, not a dataset.
MAX_BATCH = 64
#: Largest spec text (sidecar file, metadata JSON, checkpoint JSON), bytes. A spec is < 1 KB;
#: the cap bounds everything parsed from it (a 200 MB model name was once copied into every
#: DepthInfo message).
MAX_SPEC_BYTES = 64 * 1024
#: Deepest nesting of lists/mappings in a spec's JSON or YAML (a spec nests 2 deep: ``extra``,
#: ``mean``); deeper text is refused before the recursive parsers see it.
MAX_NESTING = 8
#: Longest model name, tensor name, ``scale_source`` and ``extra`` key, characters.
MAX_NAME_CHARS = 256
#: Longest ``extra`` value, characters, and most ``extra`` entries.
MAX_EXTRA_VALUE_CHARS = 1024
MAX_EXTRA_ITEMS = 64

DEPTH_KINDS = ("disparity_sigmoid", "inverse_depth_relative", "depth_metric", "canonical_inverse_depth")
OUTPUT_KINDS = DEPTH_KINDS + ("pose_6dof",)
#: ``input_format`` values: normalised float at the network size, or the camera's uint8 image.
INPUT_FORMATS = ("float", "uint8_camera")
#: Aspect windows a fused graph can hold (core.aspect's policies; ``pad`` needs a mean-colour
#: canvas the graph does not build).
FUSED_ASPECTS = ("crop", "pad", "stretch")
#: Kinds whose output is affine in inverse depth, so resizing the output in the graph equals
#: the runtime's resize of inverse depth (``depth_metric``'s output is depth: not affine).
_CAMERA_RESOLUTION_KINDS = ("disparity_sigmoid", "inverse_depth_relative", "canonical_inverse_depth")
#: The fused fields with their unfused defaults (left out of the serialised spec at these values).
_FUSED_DEFAULTS = {"input_format": "float", "fused_width_px": None, "fused_height_px": None,
                   "fused_color_order": "rgb", "fused_aspect": "stretch", "output_at_camera_resolution": False}
OutputKind = Literal[
    "disparity_sigmoid", "inverse_depth_relative", "depth_metric", "canonical_inverse_depth", "pose_6dof"
]


class ModelSpecError(ModelError):
    """A model's contract is missing, malformed, or cannot be satisfied."""


def _show(value: Any, limit: int = 60) -> str:
    """An untrusted value for an error message: short, one line, no control characters."""
    if isinstance(value, str):
        text = repr(value[:limit])  # repr escapes newlines, ESC and every other non-printable
        return text + (f"... ({len(value)} characters)" if len(value) > limit else "")
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)) and len(value) <= 6:
        inner = ", ".join(_show(v, 20) for v in value)
        return f"[{inner}]" if len(inner) <= limit else f"a list of {len(value)} items"
    if isinstance(value, (list, tuple, Mapping)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


_one_line = parser_message


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name: str, value: Any, lo: int, hi: int | None) -> int:
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ModelSpecError(f"{name} must be an integer in {bound}, got {_show(value)}")
    return int(value)


def _check_real(name: str, value: Any) -> float:
    if not _is_real(value):
        raise ModelSpecError(f"{name} must be a number, got {_show(value)}")
    return float(value)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ModelSpecError(f"{name} must be one of {choices}, got {_show(value)}")


def _check_text(name: str, value: Any, limit: int, empty: bool = True) -> None:
    if not isinstance(value, str):
        raise ModelSpecError(f"{name} must be a string, got {_show(value)}")
    if len(value) > limit:
        raise ModelSpecError(f"{name} is {len(value)} characters long; at most {limit} are accepted")
    if not empty and not value:
        raise ModelSpecError(f"{name} must not be empty")
    if not value.isprintable():
        raise ModelSpecError(
            f"{name} must hold printable characters only (no newline, tab or escape), got {_show(value)}"
        )


def _check_triple(name: str, value: Any) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_is_real(v) for v in value):
        raise ModelSpecError(f"{name} must be 3 finite numbers (one per channel), got {_show(value)}")
    triple = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in triple):
        raise ModelSpecError(f"{name} must be 3 finite numbers (one per channel), got {list(triple)}")
    return triple  # type: ignore[return-value]


def _check_extra(extra: Any) -> dict[str, str]:
    """``extra`` as {str: str}: string keys; string, number or boolean values (kept as text)."""
    if not isinstance(extra, Mapping):
        raise ModelSpecError(f"extra must be a mapping of names to strings, got {_show(extra)}")
    if len(extra) > MAX_EXTRA_ITEMS:
        raise ModelSpecError(f"extra has {len(extra)} entries; at most {MAX_EXTRA_ITEMS} are accepted")
    out: dict[str, str] = {}
    for key, value in extra.items():
        if not isinstance(key, str):
            raise ModelSpecError(f"extra keys must be strings, got {_show(key)}")
        _check_text(f"extra key {_show(key, 40)}", key, MAX_NAME_CHARS, empty=False)
        if isinstance(value, bool):
            value = str(value)
        elif isinstance(value, float) or (isinstance(value, int) and value.bit_length() <= 64):
            value = str(value)
        elif not isinstance(value, str):
            raise ModelSpecError(f"extra[{key!r}] must be a string, number or boolean, got {_show(value)}")
        _check_text(f"extra[{key!r}]", value, MAX_EXTRA_VALUE_CHARS)
        out[key] = value
    return out


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
        train_fx_px: horizontal focal length of the training camera in pixels *at the network
            input* (after any training crop and the resize to input_width x input_height), or
            None (unknown). A metric model's depth is corrected by the focal ratio on another
            camera (:func:`depth_ros.core.scale.focal_ratio`).
        train_fy_px: the vertical one, px at the network input, or None (unknown; then
            ``train_fx_px`` stands for both).
        train_image_width_px, train_image_height_px: size in pixels of the training images
            before their resize to the network input (after any training crop), or None
            (unknown: the input size itself). Their ratio is the trained aspect, which a run
            on another camera crops or pads to (:mod:`depth_ros.core.aspect`). Both or neither.
        input_format: "float" (normalised float32 at the network input size) or
            "uint8_camera" (pre-processing inside the graph; see the module docstring).
        fused_width_px, fused_height_px: for ``uint8_camera``: the camera image size the graph
            takes, pixels (one camera resolution per exported file); None otherwise.
        fused_color_order: for ``uint8_camera``: channel order of the uint8 image fed ("rgb" or
            "bgr"); the graph reorders to ``color_order`` itself.
        fused_aspect: for ``uint8_camera``: the aspect window the graph cuts before its resize
            ("crop" to ``train_aspect``, "pad" to it (bands in the mean colour), or "stretch":
            the whole image).
        output_at_camera_resolution: for ``uint8_camera``: the outputs are resized in the graph
            to the window's size in camera pixels (the runtime resizes nothing); only for kinds
            whose output is affine in inverse depth.
        max_batch: the most frames one call of the model takes (module docstring, "Batch"), 1 to
            :data:`MAX_BATCH`; the input's first axis takes 1 to ``max_batch`` frames (dynamic) or
            exactly ``max_batch``.
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
    train_fy_px: float | None = None
    train_image_width_px: int | None = None
    train_image_height_px: int | None = None
    input_format: Literal["float", "uint8_camera"] = "float"
    fused_width_px: int | None = None
    fused_height_px: int | None = None
    fused_color_order: Literal["rgb", "bgr"] = "rgb"
    fused_aspect: Literal["crop", "pad", "stretch"] = "stretch"
    output_at_camera_resolution: bool = False
    max_batch: int = 1
    pose_convention: Literal["T_tgt_src", "T_src_tgt"] = "T_tgt_src"
    name: str = "unnamed"
    extra: Mapping[str, str] = field(default_factory=dict)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        # Types first (a spec is untrusted: "false" is not False, 1.5 is not a size), then ranges.
        _check_choice("output_kind", self.output_kind, OUTPUT_KINDS)
        for name in ("input_height", "input_width"):
            object.__setattr__(self, name, _check_int(name, getattr(self, name), 1, MAX_INPUT_SIDE))
        if self.input_height * self.input_width > MAX_INPUT_PIXELS:
            raise ModelSpecError(
                f"input size {self.input_height}x{self.input_width} is {self.input_height * self.input_width} pixels; "
                f"at most {MAX_INPUT_PIXELS} (e.g. 2048x2048) are accepted"
            )
        object.__setattr__(self, "input_channels", _check_int("input_channels", self.input_channels, 1, 6))
        for name in ("input_name", "output_name"):
            _check_text(name, getattr(self, name), MAX_NAME_CHARS, empty=False)
        if self.confidence_name is not None:
            _check_text("confidence_name", self.confidence_name, MAX_NAME_CHARS, empty=False)
        _check_choice("layout", self.layout, ("NCHW", "NHWC"))
        _check_choice("color_order", self.color_order, ("rgb", "bgr"))
        for name in ("mean", "std"):
            object.__setattr__(self, name, _check_triple(name, getattr(self, name)))
        if any(s <= 0 for s in self.std):
            raise ModelSpecError(f"std must be positive, got {list(self.std)}")
        for name in ("min_depth_m", "max_depth_m"):
            object.__setattr__(self, name, _check_real(name, getattr(self, name)))
        if not (0 < self.min_depth_m < self.max_depth_m and math.isfinite(self.max_depth_m)):
            raise ModelSpecError(
                f"need 0 < min_depth_m < max_depth_m < inf, got {self.min_depth_m}, {self.max_depth_m}"
            )
        if not isinstance(self.metric, bool):
            raise ModelSpecError(f"metric must be a boolean (true or false, unquoted), got {_show(self.metric)}")
        _check_text("scale_source", self.scale_source, MAX_NAME_CHARS)
        _check_text("name", self.name, MAX_NAME_CHARS)
        expected_channels = 6 if self.output_kind == "pose_6dof" else 3
        if self.input_channels != expected_channels:
            raise ModelSpecError(
                f"{self.output_kind} models take {expected_channels} input channels, spec says {self.input_channels}"
            )
        _check_choice("pose_convention", self.pose_convention, ("T_tgt_src", "T_src_tgt"))
        self._check_training_camera()
        self._check_fused_io()
        object.__setattr__(self, "max_batch", _check_int("max_batch", self.max_batch, 1, MAX_BATCH))
        version = _check_int("version", self.version, 1, None)
        if version > SPEC_VERSION:
            raise ModelSpecError(
                f"model spec version {version} is newer than this depth_ros understands ({SPEC_VERSION})"
            )
        object.__setattr__(self, "extra", _check_extra(self.extra))

    def _check_training_camera(self) -> None:
        """Types and ranges of the training camera fields (all optional)."""
        for name in ("train_fx_px", "train_fy_px"):
            value = getattr(self, name)
            if value is not None:
                f = _check_real(name, value)
                if not (math.isfinite(f) and f > 0):
                    raise ModelSpecError(f"{name} must be a positive number, got {f}")
                object.__setattr__(self, name, f)
        size = (self.train_image_width_px, self.train_image_height_px)
        if (size[0] is None) != (size[1] is None):
            raise ModelSpecError(
                f"train_image_width_px and train_image_height_px go together, got {_show(size[0])} and {_show(size[1])}"
            )
        for name in ("train_image_width_px", "train_image_height_px"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _check_int(name, getattr(self, name), 1, 1 << 15))

    def _check_fused_io(self) -> None:
        """The fused input fields: all at their defaults for ``float``, complete for ``uint8_camera``."""
        _check_choice("input_format", self.input_format, INPUT_FORMATS)
        _check_choice("fused_color_order", self.fused_color_order, ("rgb", "bgr"))
        _check_choice("fused_aspect", self.fused_aspect, FUSED_ASPECTS)
        if not isinstance(self.output_at_camera_resolution, bool):
            raise ModelSpecError(
                f"output_at_camera_resolution must be a boolean, got {_show(self.output_at_camera_resolution)}"
            )
        if not self.fused:
            set_fields = [k for k, v in _FUSED_DEFAULTS.items() if getattr(self, k) != v]
            if set_fields:
                raise ModelSpecError(f"{set_fields} apply only to input_format 'uint8_camera', got input_format 'float'")
            return
        for name in ("fused_width_px", "fused_height_px"):
            if getattr(self, name) is None:
                raise ModelSpecError(f"input_format 'uint8_camera' needs {name} (the camera image size the graph takes)")
            object.__setattr__(self, name, _check_int(name, getattr(self, name), 1, MAX_INPUT_SIDE))
        if self.fused_width_px * self.fused_height_px > MAX_INPUT_PIXELS:
            raise ModelSpecError(
                f"fused input {self.fused_width_px}x{self.fused_height_px} is {self.fused_width_px * self.fused_height_px} "
                f"pixels; at most {MAX_INPUT_PIXELS} are accepted"
            )
        if self.output_kind not in DEPTH_KINDS:
            raise ModelSpecError(f"input_format 'uint8_camera' is for depth models, not {self.output_kind}")
        if self.output_at_camera_resolution and self.output_kind not in _CAMERA_RESOLUTION_KINDS:
            raise ModelSpecError(
                f"output_at_camera_resolution is for outputs affine in inverse depth {_CAMERA_RESOLUTION_KINDS}, "
                f"not {self.output_kind} (its depth would be interpolated, not its inverse)"
            )

    @property
    def fused(self) -> bool:
        """Pre-processing is inside the graph: the model takes the camera's uint8 image."""
        return self.input_format == "uint8_camera"

    @property
    def train_aspect(self) -> float:
        """Width / height of the images the network was trained on, before their resize (the
        network input's own aspect when the spec does not record them)."""
        if self.train_image_width_px is not None and self.train_image_height_px is not None:
            return self.train_image_width_px / self.train_image_height_px
        return self.input_width / self.input_height

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
        if not self.fused:  # an unfused spec reads as it did before fused IO existed
            for key in _FUSED_DEFAULTS:
                del d[key]
        if self.max_batch == 1:  # and an unbatched one as it did before batches existed
            del d["max_batch"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model spec") -> "ModelSpec":
        """A spec from parsed JSON/YAML; every field is type-checked (no coercion of strings).

        Raises:
            ModelSpecError: one line naming ``source``, the field, what was expected and found.
        """
        if not isinstance(data, Mapping):
            raise ModelSpecError(f"{source}: expected a mapping, got {_show(data)}")
        bad_keys = [k for k in data if not isinstance(k, str)]
        if bad_keys:
            raise ModelSpecError(f"{source}: keys must be strings, got {_show(bad_keys[0])}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            shown = ", ".join(_show(k, 40) for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise ModelSpecError(f"{source}: unknown keys [{shown}] (known: {sorted(known)})")
        missing = [k for k in ("output_kind", "input_height", "input_width") if k not in data]
        if missing:
            raise ModelSpecError(f"{source}: missing required keys {missing}")
        try:
            return cls(**dict(data))
        except ModelSpecError as exc:
            raise ModelSpecError(f"{source}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ModelSpecError(f"{source}: {_one_line(str(exc))}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "model spec") -> "ModelSpec":
        """A spec from JSON text of at most :data:`MAX_SPEC_BYTES`, nested at most :data:`MAX_NESTING` deep."""
        if not isinstance(text, str):
            raise ModelSpecError(f"{source}: expected JSON text, got {_show(text)}")
        if len(text) > MAX_SPEC_BYTES:
            raise ModelSpecError(f"{source}: spec JSON is {len(text)} characters; at most {MAX_SPEC_BYTES} are accepted")
        if json_nesting_exceeds(text, MAX_NESTING):
            raise ModelSpecError(f"{source}: spec JSON is nested more than {MAX_NESTING} levels deep")
        try:
            data = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, and an integer of more than 4300 digits
            raise ModelSpecError(f"{source}: not valid JSON ({_one_line(str(exc))})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ModelSpec":
        """A spec from a YAML sidecar: at most :data:`MAX_SPEC_BYTES`, UTF-8, no aliases.

        Raises:
            ModelSpecError: one line naming the file and what is wrong with it.
        """
        path = Path(path)
        return cls.from_dict(_safe_yaml(_read_spec_file(path), str(path)), str(path))

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=True))


def _read_spec_file(path: Path) -> str:
    """The text of a spec file: a regular file of at most MAX_SPEC_BYTES, UTF-8."""
    return read_text_capped(path, MAX_SPEC_BYTES, what="spec sidecar", error=ModelSpecError)


def _safe_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with aliases refused (a "billion laughs" sidecar made 5.8 GB of 1 KB)
    and nesting bounded (:func:`depth_ros.safeio.load_yaml_bounded`)."""
    return load_yaml_bounded(text, source, max_nesting=MAX_NESTING, what="spec YAML", error=ModelSpecError)


def embed_spec(model_proto: "object", spec: ModelSpec) -> None:
    """Set ``metadata_props[METADATA_KEY]`` of an ``onnx.ModelProto`` to ``spec`` (replacing any)."""
    props = model_proto.metadata_props  # type: ignore[attr-defined]
    for i in reversed(range(len(props))):
        if props[i].key == METADATA_KEY:
            del props[i]
    entry = props.add()
    entry.key, entry.value = METADATA_KEY, spec.to_json()


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
        raise ModelSpecError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {_one_line(str(exc))})") from None
    props = {p.key: p.value for p in model.metadata_props if p.key == METADATA_KEY}
    if METADATA_KEY not in props:
        raise ModelSpecError(
            f"{path}: no '{METADATA_KEY}' in the ONNX metadata and no YAML sidecar; "
            f"write one with the keys of depth_ros.inference.spec.ModelSpec (see README, 'Model contract')"
        )
    return ModelSpec.from_json(props[METADATA_KEY], f"{path} metadata")
