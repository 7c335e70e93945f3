"""OpenVINO backend for CPUs: the same ONNX files, compiled by OpenVINO's CPU plugin.

On x86 CPUs OpenVINO ran the package's networks faster than ONNX Runtime at the same precision
(``bench/bench_openvino.py``, 2 cores with AVX-512 VNNI, quiet machine, medians): ResNet-18
DispNet at 192x640 FP32 57 vs 74 ms (x1.30), the same network's INT8 QDQ model 10.9 vs 46 ms
(x4.2), the light network FP32 9.3 vs 13.1 ms (x1.41); FP32 outputs equal to 6e-8. So ``backend: auto`` prefers it to ONNX Runtime on the CPU when ``openvino`` imports
(:func:`depth_ros.inference.backend.select_backend`), and ``backend: openvino`` asks for it.

Choices:

* ``INFERENCE_PRECISION_HINT: f32``: the network runs in float32, as exported (OpenVINO's own
  default on CPUs with native bfloat16, such as these, is bf16: 5.8x ONNX Runtime's speed for
  ResNet-18 FP32 but another precision, 2e-4 off on the sigmoid output; not the default here). A QDQ INT8 model
  (``depth-ros-train export --int8``) runs its int8 kernels whatever the hint.
* ``PERFORMANCE_HINT: LATENCY`` and ``INFERENCE_NUM_THREADS``: one frame at a time on
  ``threads`` cores, as the ONNX Runtime backend does.
* One infer request, used under a lock (an OpenVINO request is not re-entrant; the multi-camera
  node may call from several threads); its output tensors are reused by the next call, so each
  output is copied out.

The model's inputs and outputs are checked against the spec as ONNX Runtime's are (float32,
float16 or, for a fused model, uint8 input); a batch axis (dynamic, or a fixed N padded) runs
several frames in one call (:meth:`OpenVinoBackend.infer_batch`), bounded by the spec's
``max_batch``.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from depth_ros.errors import BackendError, ModelError
from depth_ros.inference.contract import (
    TensorInfo,
    check_batch_input,
    check_input_array,
    check_model_io,
    padded_batch,
    spec_input_shape,
    trimmed_batch,
)
from depth_ros.inference.onnxruntime_backend import default_threads
from depth_ros.inference.spec import ModelSpec

__all__ = ["OPTIONS", "OpenVinoBackend"]

_log = logging.getLogger(__name__)

#: Options :func:`depth_ros.inference.backend.create_backend` passes through to this backend.
OPTIONS = frozenset({"threads"})

_OV_TYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "u8": "uint8"}


class OpenVinoBackend:
    """An ONNX model compiled by OpenVINO for the CPU; ``name`` "openvino-cpu".

    Args:
        model_path: the ``.onnx`` file.
        spec: its contract (checked against the model's inputs/outputs here).
        threads: inference threads; None -> :func:`default_threads`.

    Raises:
        ModelError: unreadable/corrupt model file, or inputs/outputs that do not fit the spec.
        BackendError: openvino is not importable, or cannot compile the model.
        ValueError: a bad option value.
    """

    def __init__(self, model_path: str | Path, spec: ModelSpec, threads: int | None = None) -> None:
        threads = default_threads() if threads is None else threads
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        try:
            import openvino as ov
        except Exception as exc:  # ImportError, or a broken install's OSError
            raise BackendError(f"openvino is not importable ({type(exc).__name__}: {exc})") from None
        self.model_path = Path(model_path)
        self.spec = spec
        self.threads = threads
        self.name = "openvino-cpu"
        core = _shared_core(ov)
        try:
            model = core.read_model(str(self.model_path))
        except Exception as exc:  # OpenVINO raises RuntimeError / its own types for a bad file
            raise ModelError(f"{self.model_path}: OpenVINO cannot read the model ({_first_line(exc)})") from None
        inputs = [TensorInfo(p.get_any_name(), _dims(p.get_partial_shape()), _OV_TYPES.get(p.get_element_type().get_type_name(), ""))
                  for p in model.inputs]
        self.output_names = [p.get_any_name() for p in model.outputs]
        fixed = inputs[0].shape[0] if len(inputs) == 1 and len(inputs[0].shape) == 4 else 1
        if isinstance(fixed, int) and spec.max_batch not in (1, fixed):
            raise ModelError(f"{self.model_path}: input batch axis is {fixed} frames, the spec's max_batch says {spec.max_batch}")
        #: a fixed batch N > 1 (shorter batches are padded to it), else None
        self._pad_to: int | None = fixed if isinstance(fixed, int) and fixed > 1 else None
        #: most frames one call takes (as the ONNX Runtime backend's ``batch_size``)
        self.batch_size: int | None = fixed if isinstance(fixed, int) else (spec.max_batch if spec.max_batch > 1 else None)
        if self.batch_size != 1:  # the spec describes one frame: check the rest of the shape
            inputs = [TensorInfo(inputs[0].name, (None, *inputs[0].shape[1:]), inputs[0].dtype)]
        info = check_model_io(inputs, self.output_names, spec, str(self.model_path))
        self._input_dtype = np.uint8 if spec.fused else np.float16 if info.dtype == "float16" else np.float32
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        try:
            self._compiled = core.compile_model(model, "CPU", config)
            self._request = self._compiled.create_infer_request()
        except Exception as exc:
            raise BackendError(f"{self.model_path}: OpenVINO cannot compile the model for the CPU ({_first_line(exc)})") from None
        self._lock = threading.Lock()
        _log.info("%s: openvino-cpu %s, %d threads, float32", self.model_path.name, ov.__version__, threads)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run once; ``x`` of :func:`~depth_ros.inference.backend.spec_input_shape`: float32, or the
        camera's uint8 image for a fused model. Returns every output by name (host arrays, owned)."""
        return self._run(check_input_array(x, self.spec))

    def infer_batch(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``B`` frames in one call (1 to ``batch_size``); ``x`` (B, ...) of the spec's frame
        shape. Returns every output by name, its first axis the ``B`` frames.

        Raises:
            InputError: not B frames of the spec's shape, or B over ``batch_size``.
        """
        check_batch_input(x, spec_input_shape(self.spec)[1:], self.batch_size, self.model_path.name)
        return self._run(np.ascontiguousarray(x))

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        frames = x.shape[0]
        x = padded_batch(x.astype(self._input_dtype, copy=False), self._pad_to)
        with self._lock:
            self._request.infer({0: x})
            # the request's tensors are reused by the next call: copy each output out
            outputs = [np.array(self._request.get_output_tensor(i).data, dtype=np.float32, copy=True)
                       for i in range(len(self.output_names))]
        return dict(zip(self.output_names, trimmed_batch(outputs, frames, x.shape[0])))


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def _shared_core(ov: Any) -> Any:
    """One ``ov.Core`` for the process, never released: compiled models are released before it
    at any time (a Core destroyed while models it compiled are still alive, or one Core per
    model, is what OpenVINO's own examples avoid), and its plugins load once."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = ov.Core()
        return _CORE


def _dims(shape: Any) -> tuple[Any, ...]:
    """An OpenVINO PartialShape as TensorInfo dims: ints for static dims, None for dynamic ones."""
    if shape.rank.is_dynamic:
        return ()
    return tuple(int(d.get_length()) if d.is_static else None for d in shape)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
