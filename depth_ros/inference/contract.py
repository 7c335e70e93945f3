"""What every inference backend accepts and returns: the :class:`InferenceBackend` Protocol and
the pure checks of a model's inputs and outputs against its :class:`ModelSpec`.

Shared by the backends (ONNX Runtime, TensorRT, torch) and :func:`depth_ros.inference.backend.
create_backend`, which imports the backends; this module imports none of them (no import cycle).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from depth_ros.errors import DepthRosError, InputError, ModelError
from depth_ros.inference.spec import ModelSpec, ModelSpecError

__all__ = [
    "InferenceBackend",
    "TensorInfo",
    "accepted_output_shapes",
    "check_batch_input",
    "padded_batch",
    "trimmed_batch",
    "check_input_array",
    "check_model_io",
    "check_output_contract",
    "spec_input_dtype",
    "spec_input_shape",
    "spec_output_size",
]


@runtime_checkable
class InferenceBackend(Protocol):
    """A loaded network ready to run.

    Attributes:
        name: what runs it, e.g. "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt-fp16",
            "torch-cpu" (goes into the DepthInfo record and the CLI summary).
        spec: the model contract the network was checked against at load.
    """

    name: str
    spec: ModelSpec

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network once.

        Args:
            x: ``spec_input_shape(spec)`` of ``spec_input_dtype(spec)``: float32 (1, C, h, w)
                NCHW or (1, h, w, C) NHWC; for a fused spec the camera's uint8 (1, H, W, 3).

        Returns:
            every output tensor by name, as host numpy arrays (float32 unless the model
            says otherwise); always contains ``spec.output_name``.
        """
        ...


# -- model I/O contract checks (pure; shared by the ONNX Runtime and TensorRT backends) ----

Dim = int | str | None


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as the model file declares it.

    ``shape`` entries are positive ints for fixed dims, a string (symbolic name) or None for
    dynamic ones; ``dtype`` is a numpy dtype name ("float32", "float16", ...) or "" if unknown.
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"


def spec_input_shape(spec: ModelSpec) -> tuple[int, int, int, int]:
    """The input tensor shape a spec implies: (1, C, h, w) for NCHW, (1, h, w, C) for NHWC;
    (1, H, W, 3) at the camera size ``fused_height_px`` x ``fused_width_px`` for a fused spec."""
    if spec.fused:
        return (1, int(spec.fused_height_px), int(spec.fused_width_px), 3)  # type: ignore[arg-type]
    c, h, w = spec.input_channels, spec.input_height, spec.input_width
    return (1, c, h, w) if spec.layout == "NCHW" else (1, h, w, c)


def spec_input_dtype(spec: ModelSpec) -> str:
    """The input's numpy dtype name: "uint8" for a fused spec, else "float32"."""
    return "uint8" if spec.fused else "float32"


def spec_output_size(spec: ModelSpec) -> tuple[int, int]:
    """(h, w) in pixels of a depth (or confidence) output: the network input size, or for a
    fused spec with ``output_at_camera_resolution`` the size of its aspect window in camera pixels
    (:func:`depth_ros.core.aspect.model_window` of ``fused_aspect``)."""
    if spec.fused and spec.output_at_camera_resolution:
        from depth_ros.core.aspect import model_window  # core.aspect imports the spec module only

        window = model_window(spec, int(spec.fused_width_px), int(spec.fused_height_px), spec.fused_aspect)  # type: ignore[arg-type]
        return window.height, window.width
    return spec.input_height, spec.input_width


def _is_dynamic(dim: Dim) -> bool:
    return dim is None or isinstance(dim, str) or (isinstance(dim, int) and dim <= 0)


def _fmt_shape(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


_INPUT_DTYPES = ("float32", "float16")


def check_model_io(
    inputs: Sequence[TensorInfo], output_names: Sequence[str], spec: ModelSpec, source: str
) -> TensorInfo:
    """Check a model's declared inputs and outputs against its spec.

    Dynamic dims (symbolic or unknown) are accepted for any size; fixed dims must equal the
    spec's. The model must have exactly one input, named ``spec.input_name``, of rank 4 and
    float32/float16 type (uint8 for a fused spec), and outputs named ``spec.output_name`` (and ``confidence_name``).

    Args:
        inputs: the model's graph inputs (initializers excluded).
        output_names: the model's output names.
        spec: the contract.
        source: what to call the model in messages (usually its path).

    Returns:
        the image input's :class:`TensorInfo`.

    Raises:
        ModelError: naming what the model has and what the spec says.
    """
    names = [t.name for t in inputs]
    if spec.input_name not in names:
        raise ModelError(
            f"{source}: the spec's input_name is {spec.input_name!r} but the model's inputs are {names}; "
            "fix input_name in the spec (YAML sidecar or metadata)"
        )
    if len(inputs) != 1:
        raise ModelError(
            f"{source}: the model has {len(inputs)} inputs {names}; depth_ros feeds exactly one "
            f"image input ({spec.input_name!r})"
        )
    info = inputs[0]
    expected = spec_input_shape(spec)
    if len(info.shape) != len(expected):
        raise ModelError(
            f"{source}: input {info.name!r} has rank {len(info.shape)} (shape {_fmt_shape(info.shape)}) "
            f"but the spec says rank 4 {spec.layout} {list(expected)}"
        )
    bad = [i for i, (got, want) in enumerate(zip(info.shape, expected)) if not _is_dynamic(got) and got != want]
    if bad:
        raise ModelError(
            f"{source}: input {info.name!r} has shape {_fmt_shape(info.shape)} but the spec says "
            f"{list(expected)} ({_input_words(spec)}); mismatch in dim {bad[0]}"
        )
    if spec.fused:
        if info.dtype and info.dtype != "uint8":
            raise ModelError(
                f"{source}: input {info.name!r} has type {info.dtype} but the spec's input_format is "
                "'uint8_camera' (the camera image, uint8); re-export with fused IO or drop the fused fields"
            )
    elif info.dtype and info.dtype not in _INPUT_DTYPES:
        raise ModelError(f"{source}: input {info.name!r} has type {info.dtype}; depth_ros feeds float32 or float16")
    wanted_outputs = [spec.output_name] + ([spec.confidence_name] if spec.confidence_name else [])
    missing = [n for n in wanted_outputs if n not in output_names]
    if missing:
        raise ModelError(
            f"{source}: the spec names outputs {missing} but the model's outputs are {list(output_names)}; "
            "fix output_name / confidence_name in the spec"
        )
    return info


def _input_words(spec: ModelSpec) -> str:
    """The input in words, for messages."""
    if spec.fused:
        return f"the {spec.fused_width_px}x{spec.fused_height_px} {spec.fused_color_order} camera image, uint8 NHWC"
    return f"{spec.layout}, {spec.input_channels} channels, {spec.input_height}x{spec.input_width}"


def check_input_array(x: Any, spec: ModelSpec) -> np.ndarray:
    """``x`` as a C-contiguous array of the spec's input shape: float32, or uint8 for a fused spec.

    Raises:
        InputError: ``x`` is not a numpy array of shape :func:`spec_input_shape` and of a floating
            type (uint8 for a fused spec).
    """
    expected = spec_input_shape(spec)
    if not isinstance(x, np.ndarray):
        raise InputError(f"network input must be a numpy array, got {type(x).__name__}")
    if x.shape != expected:
        raise InputError(f"network input has shape {list(x.shape)}, the model takes {list(expected)} ({_input_words(spec)})")
    if spec.fused:
        if x.dtype != np.uint8:
            raise InputError(f"network input must be uint8 (the camera image; input_format 'uint8_camera'), got {x.dtype}")
        return np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"network input must be floating point, got {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def check_batch_input(x: Any, frame_shape: tuple[int, ...], max_frames: int | None, source: str) -> None:
    """Check the input of a backend's ``infer_batch``: B frames of ``frame_shape``, numeric, with
    1 <= B <= ``max_frames`` (None: any number).

    Raises:
        InputError: one line naming ``source`` (the model) and what was expected.
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fu" or x.ndim != len(frame_shape) + 1 or x.shape[1:] != tuple(frame_shape):
        raise InputError(f"batched network input must be a numeric (B, {', '.join(map(str, frame_shape))}) array, "
                         f"got {getattr(x, 'dtype', type(x).__name__)} {list(getattr(x, 'shape', ()))}")
    if x.shape[0] < 1 or (max_frames is not None and x.shape[0] > max_frames):
        raise InputError(f"batch of {x.shape[0]} frames; {source} takes 1 to {max_frames}")


def padded_batch(x: np.ndarray, pad_to: int | None) -> np.ndarray:
    """``x`` (B, ...) with zero frames appended up to ``pad_to`` (a fixed batch axis N > B), else
    ``x`` itself."""
    if pad_to is None or x.shape[0] >= pad_to:
        return x
    return np.concatenate([x, np.zeros((pad_to - x.shape[0], *x.shape[1:]), x.dtype)])


def trimmed_batch(outputs: list[np.ndarray], frames: int, ran: int) -> list[np.ndarray]:
    """Outputs of a call on ``ran`` frames (padded) cut back to the ``frames`` asked for: each
    output whose first axis is the batch keeps its first ``frames`` entries."""
    if frames == ran:
        return outputs
    return [o[:frames] if o.ndim and o.shape[0] == ran else o for o in outputs]


def accepted_output_shapes(spec: ModelSpec) -> tuple[tuple[int, ...], ...]:
    """The shapes the contract allows for ``spec.output_name`` (and ``confidence_name``).

    Depth kinds: one (h, w) map at :func:`spec_output_size` (the spec's input size unless a fused
    spec returns camera resolution), with optional leading singleton batch/channel dims:
    (h, w), (1, h, w), (1, 1, h, w). ``pose_6dof``: (1, 6) or (6,).
    Anything else (a transposed (w, h) map, the same pixels reshaped, a map at another
    resolution, a multi-channel output) is refused: it would decode to garbage.
    """
    if spec.output_kind == "pose_6dof":
        return ((1, 6), (6,))
    h, w = spec_output_size(spec)
    return ((h, w), (1, h, w), (1, 1, h, w))


def _fmt_shapes(shapes: Sequence[tuple[int, ...]]) -> str:
    return " or ".join(str(tuple(s)) for s in shapes)


def check_output_contract(
    backend: InferenceBackend, spec: ModelSpec | None = None, source: str | None = None
) -> dict[str, np.ndarray]:
    """Run the network once on a zero input of the spec's shape and check what comes out.

    The one contract check every loader shares (the nodes and ``depth-ros infer`` through
    :func:`create_backend`, export after writing the ONNX file): a model file may declare
    dynamic or wrong output dims, so the shapes are taken from a real run. The spec's input
    size is bounded (:data:`~depth_ros.inference.spec.MAX_INPUT_PIXELS`) before this allocates.

    Args:
        backend: a loaded backend.
        spec: the contract to check against; None -> ``backend.spec``.
        source: what to call the model in messages; None -> ``model '<spec.name>'``.

    Returns:
        the dry run's outputs by name.

    Raises:
        ModelError: the network does not run on its spec'd input.
        ModelSpecError: an output the spec names is missing, not numeric, or of a shape
            other than :func:`accepted_output_shapes` (the message gives expected and actual).
    """
    spec = backend.spec if spec is None else spec
    what = source if source is not None else f"model '{spec.name}'"
    x = np.zeros(spec_input_shape(spec), dtype=spec_input_dtype(spec))
    try:
        outputs = backend.infer(x)
    except DepthRosError as exc:
        raise ModelError(f"{what} does not run on its spec'd input {list(x.shape)}: {exc}") from None
    except Exception as exc:  # the runtime's own error types (onnxruntime, torch, TensorRT), MemoryError
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelError(
            f"{what} does not run on its spec'd input {list(x.shape)}: {type(exc).__name__}: {text}"
        ) from None
    if not isinstance(outputs, Mapping):
        raise ModelSpecError(f"{what}: the backend returned {type(outputs).__name__}, not outputs by name")
    accepted = accepted_output_shapes(spec)
    wanted = [("output_name", spec.output_name)]
    if spec.confidence_name is not None:
        wanted.append(("confidence_name", spec.confidence_name))
    for field_name, name in wanted:
        if name not in outputs:
            raise ModelSpecError(
                f"{what} has no output {name!r} ({field_name} in its spec); it returned {sorted(map(str, outputs))[:8]}"
            )
        out = np.asarray(outputs[name])
        if out.dtype.kind not in "fiu":
            raise ModelSpecError(f"{what}: output {name!r} has dtype {out.dtype}, expected a number type")
        if out.shape not in accepted:
            raise ModelSpecError(
                f"{what}: output {name!r} has shape {tuple(out.shape)}; its spec ({spec.output_kind}, input "
                f"{spec.input_height}x{spec.input_width}{', output at camera resolution' if spec.fused and spec.output_at_camera_resolution else ''}) "
                f"expects {_fmt_shapes(accepted)}"
            )
    return dict(outputs)
