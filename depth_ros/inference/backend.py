"""One Protocol for every inference backend, and :func:`create_backend` that picks one.

Backends (``name`` values):

* ``tensorrt-fp16`` / ``tensorrt-fp32``: a TensorRT engine built from the ONNX file and cached
  (:mod:`depth_ros.inference.tensorrt_backend`); robots with an NVIDIA GPU.
* ``onnxruntime-cuda`` / ``onnxruntime-cpu``: ONNX Runtime
  (:mod:`depth_ros.inference.onnxruntime_backend`).
* ``torch-cpu`` / ``torch-cuda``: PyTorch eager on a checkpoint (``.pt`` / ``.ckpt`` / ``.pth``),
  for models straight out of training (:mod:`depth_ros.inference.torch_backend`).

``backend="auto"`` takes the fastest one present: TensorRT > ONNX Runtime CUDA > ONNX Runtime
CPU for ONNX files; the torch backend for checkpoints. What it picked and why is logged at
INFO. The availability probes are the module functions :func:`probe_tensorrt` and
:func:`probe_onnxruntime_cuda`, looked up at call time so tests can monkeypatch them.

Input convention for every backend: ``infer(x)`` takes the array made by
:func:`depth_ros.core.preprocess.preprocess`: float32, ``(1, C, h, w)`` for NCHW specs or
``(1, h, w, C)`` for NHWC, with ``C = spec.input_channels`` and ``(h, w)`` the spec's input
size; it returns every model output by name as numpy arrays on the host.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from depth_ros.errors import BackendError, DepthRosError, InputError, ModelError
from depth_ros.inference.spec import ModelSpec, ModelSpecError, load_model_spec

__all__ = [
    "BACKEND_CHOICES",
    "CHECKPOINT_SUFFIXES",
    "InferenceBackend",
    "Probe",
    "Selection",
    "TensorInfo",
    "accepted_output_shapes",
    "check_input_array",
    "check_model_io",
    "check_output_contract",
    "create_backend",
    "probe_onnxruntime_cuda",
    "probe_tensorrt",
    "select_backend",
    "spec_input_shape",
]

_log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "torch")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
ONNX_SUFFIXES = (".onnx",)


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
            x: float32 ``spec_input_shape(spec)``: (1, C, h, w) NCHW or (1, h, w, C) NHWC.

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
    """The input tensor shape a spec implies: (1, C, h, w) for NCHW, (1, h, w, C) for NHWC."""
    c, h, w = spec.input_channels, spec.input_height, spec.input_width
    return (1, c, h, w) if spec.layout == "NCHW" else (1, h, w, c)


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
    float32/float16 type, and outputs named ``spec.output_name`` (and ``confidence_name``).

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
            f"{list(expected)} ({spec.layout}, {spec.input_channels} channels, "
            f"{spec.input_height}x{spec.input_width}); mismatch in dim {bad[0]}"
        )
    if info.dtype and info.dtype not in _INPUT_DTYPES:
        raise ModelError(f"{source}: input {info.name!r} has type {info.dtype}; depth_ros feeds float32 or float16")
    wanted_outputs = [spec.output_name] + ([spec.confidence_name] if spec.confidence_name else [])
    missing = [n for n in wanted_outputs if n not in output_names]
    if missing:
        raise ModelError(
            f"{source}: the spec names outputs {missing} but the model's outputs are {list(output_names)}; "
            "fix output_name / confidence_name in the spec"
        )
    return info


def check_input_array(x: Any, spec: ModelSpec) -> np.ndarray:
    """``x`` as a C-contiguous float32 array of the spec's input shape.

    Raises:
        InputError: ``x`` is not a floating numpy array of shape :func:`spec_input_shape`.
    """
    expected = spec_input_shape(spec)
    if not isinstance(x, np.ndarray):
        raise InputError(f"network input must be a numpy array, got {type(x).__name__}")
    if x.shape != expected:
        raise InputError(f"network input has shape {list(x.shape)}, the model takes {list(expected)} ({spec.layout})")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"network input must be floating point, got {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def accepted_output_shapes(spec: ModelSpec) -> tuple[tuple[int, ...], ...]:
    """The shapes the contract allows for ``spec.output_name`` (and ``confidence_name``).

    Depth kinds: one (h, w) map at the spec's input size, with optional leading singleton
    batch/channel dims: (h, w), (1, h, w), (1, 1, h, w). ``pose_6dof``: (1, 6) or (6,).
    Anything else (a transposed (w, h) map, the same pixels reshaped, a map at another
    resolution, a multi-channel output) is refused: it would decode to garbage.
    """
    if spec.output_kind == "pose_6dof":
        return ((1, 6), (6,))
    h, w = spec.input_height, spec.input_width
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
    x = np.zeros(spec_input_shape(spec), dtype=np.float32)
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
                f"{spec.input_height}x{spec.input_width}) expects {_fmt_shapes(accepted)}"
            )
    return dict(outputs)


# -- selection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """Whether an accelerator is usable here, and why (or why not), in words."""

    available: bool
    reason: str


def probe_tensorrt() -> Probe:
    """TensorRT usable: ``tensorrt`` imports and torch sees a CUDA device (buffers live there)."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        return Probe(False, "tensorrt not importable")
    except Exception as exc:  # a broken install raising OSError on its .so, ...
        return Probe(False, f"tensorrt import failed ({type(exc).__name__}: {exc})")
    version = str(getattr(trt, "__version__", "?"))
    major = version.split(".")[0]
    if not major.isdigit() or int(major) < 10:
        return Probe(False, f"tensorrt {version} is not >= 10 (the API this backend uses)")
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return Probe(False, "torch (needed for CUDA buffers) not importable")
    if not torch.cuda.is_available():
        return Probe(False, f"tensorrt {version} present but no CUDA device")
    return Probe(True, f"tensorrt {version} on {torch.cuda.get_device_name(0)}")


def probe_onnxruntime_cuda() -> Probe:
    """ONNX Runtime's CUDA execution provider is compiled in (onnxruntime-gpu installed)."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return Probe(False, "onnxruntime not importable")
    providers = list(ort.get_available_providers())
    if "CUDAExecutionProvider" not in providers:
        return Probe(False, f"no CUDAExecutionProvider in onnxruntime {ort.__version__} (has {providers})")
    return Probe(True, f"CUDAExecutionProvider in onnxruntime {ort.__version__}")


@dataclass(frozen=True)
class Selection:
    """A concrete backend (``tensorrt``, ``onnxruntime-cuda``, ``onnxruntime-cpu``, ``torch``) and why."""

    kind: str
    reason: str


def _model_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    raise ModelError(
        f"{path}: unknown model file type {suffix or '(no suffix)'!r}; expected .onnx or a torch "
        f"checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
    )


def select_backend(
    model_path: str | Path,
    backend: str = "auto",
    probe_trt: Callable[[], Probe] | None = None,
    probe_ort_cuda: Callable[[], Probe] | None = None,
) -> Selection:
    """Resolve a backend request to a concrete backend for this model file.

    Args:
        model_path: ``.onnx`` or a torch checkpoint (``.pt``, ``.pth``, ``.ckpt``).
        backend: one of :data:`BACKEND_CHOICES`.
        probe_trt, probe_ort_cuda: availability probes; default to this module's
            :func:`probe_tensorrt` / :func:`probe_onnxruntime_cuda` (looked up per call).

    Raises:
        ValueError: unknown backend name (the message lists the choices).
        ModelError: the file type does not fit the requested backend.
        BackendError: ``onnxruntime-cuda`` requested but not available.
    """
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    path = Path(model_path)
    fmt = _model_format(path)
    if fmt == "checkpoint":
        if backend not in ("auto", "torch"):
            raise ModelError(
                f"{path}: backend {backend!r} needs an ONNX file, got a torch checkpoint; "
                "export it (depth_ros.inference.onnx_export.export_onnx) or use backend 'torch'"
            )
        return Selection("torch", "torch checkpoint" if backend == "auto" else "requested")
    if backend == "torch":
        raise ModelError(f"{path}: the torch backend loads checkpoints ({', '.join(CHECKPOINT_SUFFIXES)}), not ONNX")
    if backend == "onnxruntime-cpu":
        return Selection("onnxruntime-cpu", "requested")
    if backend == "tensorrt":
        return Selection("tensorrt", "requested")
    ort_cuda = (probe_ort_cuda or probe_onnxruntime_cuda)()
    if backend == "onnxruntime-cuda":
        if not ort_cuda.available:
            raise BackendError(f"backend 'onnxruntime-cuda' is not available: {ort_cuda.reason}")
        return Selection("onnxruntime-cuda", "requested")
    reasons = []
    if backend == "auto":
        trt = (probe_trt or probe_tensorrt)()
        if trt.available:
            return Selection("tensorrt", f"auto: {trt.reason}")
        reasons.append(f"TensorRT unavailable: {trt.reason}")
    prefix = "auto" if backend == "auto" else "onnxruntime"
    if ort_cuda.available:
        return Selection("onnxruntime-cuda", "; ".join([f"{prefix}: {ort_cuda.reason}"] + reasons))
    reasons.append(f"ONNX Runtime CUDA unavailable: {ort_cuda.reason}")
    return Selection("onnxruntime-cpu", f"{prefix}: " + "; ".join(reasons))


# -- construction ----------------------------------------------------------------------------

_BACKEND_MODULES = {
    "tensorrt": "depth_ros.inference.tensorrt_backend",
    "onnxruntime-cuda": "depth_ros.inference.onnxruntime_backend",
    "onnxruntime-cpu": "depth_ros.inference.onnxruntime_backend",
    "torch": "depth_ros.inference.torch_backend",
}


def _backend_options(kind: str) -> frozenset[str]:
    return importlib.import_module(_BACKEND_MODULES[kind]).OPTIONS


def _accepted_options(kind: str) -> frozenset[str]:
    """Options a backend takes; TensorRT also takes its ONNX Runtime fallback's (``threads``)."""
    if kind == "tensorrt":
        return _backend_options("tensorrt") | _backend_options("onnxruntime-cpu")
    return _backend_options(kind)


def _split_options(kind: str, options: Mapping[str, Any], requested: str) -> dict[str, Any]:
    """The options that apply to ``kind``; unknown names are errors, others' are dropped under auto."""
    known_anywhere = frozenset().union(*(_backend_options(k) for k in _BACKEND_MODULES))
    unknown = sorted(set(options) - known_anywhere)
    if unknown:
        raise ValueError(f"unknown backend options {unknown}; known: {sorted(known_anywhere)}")
    mine = _accepted_options(kind)
    foreign = sorted(set(options) - mine)
    if foreign and requested != "auto":
        raise ValueError(f"options {foreign} do not apply to backend {kind!r} (its options: {sorted(mine)})")
    if foreign:
        _log.debug("auto picked %s; ignoring options %s", kind, foreign)
    return {k: v for k, v in options.items() if k in mine}


def create_backend(
    model_path: str | Path,
    backend: str = "auto",
    spec: ModelSpec | None = None,
    **options: Any,
) -> InferenceBackend:
    """Load a model with the requested (or best available) backend.

    Args:
        model_path: ``.onnx`` file, or a torch checkpoint (``.pt``, ``.pth``, ``.ckpt``) in the
            format of :func:`depth_ros.inference.torch_backend.load_checkpoint`.
        backend: one of :data:`BACKEND_CHOICES`; ``auto`` = TensorRT > ONNX Runtime CUDA >
            ONNX Runtime CPU for ONNX, torch for checkpoints. ``onnxruntime`` uses CUDA when
            its provider is present, else CPU.
        spec: the model contract; None -> :func:`load_model_spec` (YAML sidecar, then ONNX
            metadata; for checkpoints, sidecar then the checkpoint's ``model_spec``).
        **options: backend options, e.g. ``threads`` (ONNX Runtime, torch, and TensorRT's
            ONNX Runtime fallback), ``precision``, ``cache_dir``, ``fallback`` (TensorRT;
            ``fallback`` defaults to "onnxruntime" under ``auto``, to None when TensorRT is
            asked for by name), ``device`` (torch, TensorRT). Under ``auto``, options of
            backends not picked are ignored; otherwise they are an error.

    Returns:
        an :class:`InferenceBackend` whose ``name`` says what runs the model, after one dry
        run on a zero input has shown its outputs fit the spec (:func:`check_output_contract`).

    Raises:
        ModelError: the file is missing, unreadable, or does not fit its spec (inputs as
            declared; outputs as produced by the dry run).
        ModelSpecError: no spec found, a malformed one, or outputs of the wrong shape.
        BackendError: the requested backend is unavailable or failed to build.
        ValueError: unknown backend name or option.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    selection = select_backend(path, backend)
    kind_options = _split_options(selection.kind, options, backend)
    _log.info("inference backend: %s for %s (%s)", selection.kind, path.name, selection.reason)

    loaded = _construct(path, selection.kind, backend, spec, kind_options)
    check_output_contract(loaded, source=f"{path} (model '{loaded.spec.name}')")
    return loaded


def _construct(
    path: Path, kind: str, requested: str, spec: ModelSpec | None, kind_options: dict[str, Any]
) -> InferenceBackend:
    """The backend of ``kind`` for ``path``, before its output contract is checked."""
    if kind == "torch":
        from depth_ros.inference import torch_backend

        return torch_backend.TorchBackend.from_checkpoint(path, spec=spec, **kind_options)
    if spec is None:
        spec = load_model_spec(path)
    if kind == "tensorrt":
        from depth_ros.inference import tensorrt_backend

        trt_options = {k: v for k, v in kind_options.items() if k in tensorrt_backend.OPTIONS}
        trt_options.setdefault("fallback", "onnxruntime" if requested == "auto" else None)
        fallback_options = {k: v for k, v in kind_options.items() if k not in tensorrt_backend.OPTIONS}
        return tensorrt_backend.create_tensorrt_backend(path, spec, fallback_options=fallback_options, **trt_options)
    from depth_ros.inference import onnxruntime_backend

    device = "cuda" if kind == "onnxruntime-cuda" else "cpu"
    return onnxruntime_backend.OnnxRuntimeBackend(path, spec, device=device, **kind_options)
