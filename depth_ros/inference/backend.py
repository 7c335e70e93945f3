"""One Protocol for every inference backend, and :func:`create_backend` that picks one.

Backends (``name`` values):

* ``tensorrt-fp16`` / ``tensorrt-fp32``: a TensorRT engine built from the ONNX file and cached
  (:mod:`depth_ros.inference.tensorrt_backend`); robots with an NVIDIA GPU.
* ``onnxruntime-cuda`` / ``onnxruntime-cpu``: ONNX Runtime
  (:mod:`depth_ros.inference.onnxruntime_backend`).
* ``openvino-cpu``: OpenVINO's CPU plugin on the same ONNX file
  (:mod:`depth_ros.inference.openvino_backend`); faster than ONNX Runtime on x86 CPUs at the
  same precision (bench/bench_openvino.py).
* ``torch-cpu`` / ``torch-cuda``: PyTorch eager on a checkpoint (``.pt`` / ``.ckpt`` / ``.pth``),
  for models straight out of training (:mod:`depth_ros.inference.torch_backend`).

``backend="auto"`` takes the fastest one present: TensorRT > ONNX Runtime CUDA > OpenVINO CPU >
ONNX Runtime CPU for ONNX files; the torch backend for checkpoints. What it picked and why is
logged at INFO. The availability probes are the module functions :func:`probe_tensorrt`,
:func:`probe_onnxruntime_cuda` and :func:`probe_openvino`, looked up at call time so tests can
monkeypatch them.

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
from typing import Any, Callable, Mapping

from depth_ros.errors import BackendError, ModelError
from depth_ros.inference.spec import ModelSpec, load_model_spec

# the contract (inputs/outputs checks) and the accelerator probes have their own modules; they
# are re-exported here, where callers have always found them
from depth_ros.inference.contract import (
    InferenceBackend,
    TensorInfo,
    accepted_output_shapes,
    check_input_array,
    check_model_io,
    check_output_contract,
    spec_input_shape,
)
from depth_ros.inference.probes import Probe, probe_onnxruntime_cuda, probe_openvino, probe_tensorrt

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
    "probe_openvino",
    "probe_tensorrt",
    "select_backend",
    "spec_input_shape",
]

_log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda", "openvino", "torch")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
ONNX_SUFFIXES = (".onnx",)



# -- selection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """A concrete backend (``tensorrt``, ``onnxruntime-cuda``, ``openvino``, ``onnxruntime-cpu``,
    ``torch``) and why."""

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
    probe_ov: Callable[[], Probe] | None = None,
) -> Selection:
    """Resolve a backend request to a concrete backend for this model file.

    Args:
        model_path: ``.onnx`` or a torch checkpoint (``.pt``, ``.pth``, ``.ckpt``).
        backend: one of :data:`BACKEND_CHOICES`.
        probe_trt, probe_ort_cuda, probe_ov: availability probes; default to this module's
            :func:`probe_tensorrt` / :func:`probe_onnxruntime_cuda` / :func:`probe_openvino`
            (looked up per call).

    Raises:
        ValueError: unknown backend name (the message lists the choices).
        ModelError: the file type does not fit the requested backend.
        BackendError: ``onnxruntime-cuda`` or ``openvino`` requested but not available.
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
    if backend == "openvino":
        ov = (probe_ov or probe_openvino)()
        if not ov.available:
            raise BackendError(f"backend 'openvino' is not available: {ov.reason}")
        return Selection("openvino", "requested")
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
    if backend == "auto":
        ov = (probe_ov or probe_openvino)()
        if ov.available:
            return Selection("openvino", "; ".join([f"auto: {ov.reason}"] + reasons))
        reasons.append(f"OpenVINO unavailable: {ov.reason}")
    return Selection("onnxruntime-cpu", f"{prefix}: " + "; ".join(reasons))


# -- construction ----------------------------------------------------------------------------

_BACKEND_MODULES = {
    "tensorrt": "depth_ros.inference.tensorrt_backend",
    "onnxruntime-cuda": "depth_ros.inference.onnxruntime_backend",
    "onnxruntime-cpu": "depth_ros.inference.onnxruntime_backend",
    "openvino": "depth_ros.inference.openvino_backend",
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
            OpenVINO CPU > ONNX Runtime CPU for ONNX, torch for checkpoints. ``onnxruntime``
            uses CUDA when its provider is present, else CPU; ``openvino`` OpenVINO's CPU plugin.
        spec: the model contract; None -> :func:`load_model_spec` (YAML sidecar, then ONNX
            metadata; for checkpoints, sidecar then the checkpoint's ``model_spec``).
        **options: backend options, e.g. ``threads`` (ONNX Runtime, OpenVINO, torch, and TensorRT's
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
    if kind == "openvino":
        from depth_ros.inference import openvino_backend

        try:
            return openvino_backend.OpenVinoBackend(path, spec, **kind_options)
        except (ModelError, BackendError) as exc:
            if requested != "auto":
                raise
            # auto chose OpenVINO for speed only: a model it cannot read or compile (an operator
            # it lacks) still runs on ONNX Runtime, which reports a really bad file itself
            _log.warning("OpenVINO cannot run %s (%s); using ONNX Runtime on the CPU", path.name, exc)
            kind = "onnxruntime-cpu"
    from depth_ros.inference import onnxruntime_backend

    device = "cuda" if kind == "onnxruntime-cuda" else "cpu"
    return onnxruntime_backend.OnnxRuntimeBackend(path, spec, device=device, **kind_options)
