"""ONNX Runtime backend: CPU by default, the CUDA execution provider when asked and present.

The model's input and outputs are checked against the :class:`ModelSpec` when the session is
created (:func:`depth_ros.inference.backend.check_model_io`); models with dynamic dims are
accepted and run at the spec's input size.

Batch axis: a model whose input declares a dynamic first dim, or a fixed one N > 1 (read from
the ONNX input shape), also runs several frames in one call (:meth:`OnnxRuntimeBackend.infer_batch`;
the multi-camera node uses it), at most ``batch_size`` of them: N, or the spec's ``max_batch``
for a dynamic axis (None, any number, for a spec that predates the field). A fixed batch N is
checked against the spec as if it were batch 1 and a shorter batch is padded with zeros to N.

Session tuning (measured on 2-core x86 machines, see bench/bench_backends.py): one intra-op
pool with as many threads as cores this process may use, no inter-op pool (a depth network is
one chain of convolutions, there is nothing to run in parallel at graph level), sequential
execution, all graph optimizations (constant folding, conv+bn/activation fusion, layout
transforms), memory-pattern planning and the CPU arena on (the input shape is fixed, so the
planned allocation is reused every frame), and worker spinning off: on a 2-core machine that
also runs the camera driver and the rest of the pipeline, spin-waiting workers take CPU from
them, and under load ORT without spinning measured ~5-10% faster (bench/bench_backends.py
--variants). With other heavy processes on the same cores, ``threads=1`` can be faster still.

Unverified here: the CUDA path (no GPU, no onnxruntime-gpu on these machines). It only sets
the provider list; if ONNX Runtime silently falls back to CPU the backend says so in a
warning and reports ``name == "onnxruntime-cpu"``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
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
from depth_ros.inference.spec import ModelSpec

__all__ = ["OPTIONS", "OnnxRuntimeBackend", "default_threads"]

_log = logging.getLogger(__name__)

#: Options :func:`depth_ros.inference.backend.create_backend` passes through to this backend.
OPTIONS = frozenset({"threads", "graph_optimization", "cuda_device", "allow_spinning"})

_GRAPH_LEVELS = ("disable", "basic", "extended", "all")
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(uint8)": "uint8"}


def default_threads() -> int:
    """CPU cores this process may run on (affinity-aware; containers often pin fewer)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _session_options(ort: Any, threads: int, graph_optimization: str, allow_spinning: bool) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[graph_optimization]
    so.enable_mem_pattern = True
    so.enable_cpu_mem_arena = True
    so.log_severity_level = 3  # errors only; ORT warns about harmless things (unused initializers)
    # Spinning workers answer a little faster on an idle machine but burn a core while they
    # wait; with 2 cores shared with the rest of the pipeline, not spinning measured faster.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return so


class OnnxRuntimeBackend:
    """An ONNX model in an ONNX Runtime session.

    Args:
        model_path: the ``.onnx`` file.
        spec: its contract (checked against the model's inputs/outputs here).
        device: "cpu" or "cuda" (CUDA execution provider, CPU provider as fallback).
        threads: intra-op threads; None -> :func:`default_threads`.
        graph_optimization: "all" (default), "extended", "basic" or "disable".
        cuda_device: CUDA device index for ``device="cuda"``.
        allow_spinning: let idle worker threads spin-wait for work (ORT's own default);
            off by default here, see the module docstring.

    Raises:
        ModelError: unreadable/corrupt model file, or inputs/outputs that do not fit the spec.
        BackendError: onnxruntime is not importable.
        ValueError: a bad option value.
    """

    def __init__(
        self,
        model_path: str | Path,
        spec: ModelSpec,
        device: str = "cpu",
        threads: int | None = None,
        graph_optimization: str = "all",
        cuda_device: int = 0,
        allow_spinning: bool = False,
    ) -> None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if graph_optimization not in _GRAPH_LEVELS:
            raise ValueError(f"graph_optimization must be one of {_GRAPH_LEVELS}, got {graph_optimization!r}")
        threads = default_threads() if threads is None else threads
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError(f"onnxruntime is not importable ({exc})") from None

        self.model_path = Path(model_path)
        self.spec = spec
        self.threads = threads
        providers: list[Any] = ["CPUExecutionProvider"]
        if device == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(cuda_device)}))
        options = _session_options(ort, threads, graph_optimization, allow_spinning)
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/NoSuchFile types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.model_path}: ONNX Runtime cannot load the model ({first_line})") from None

        inputs = [
            TensorInfo(i.name, tuple(i.shape), _ORT_TYPES.get(i.type, i.type)) for i in self.session.get_inputs()
        ]
        self.output_names = [o.name for o in self.session.get_outputs()]
        fixed = _batch_axis(inputs[0].shape) if len(inputs) == 1 and len(inputs[0].shape) == 4 else 1
        if fixed is not None and spec.max_batch not in (1, fixed):
            raise ModelError(f"{self.model_path}: input batch axis is {fixed} frames, the spec's max_batch says {spec.max_batch}")
        #: a fixed batch N > 1 (shorter batches are padded to it), else None
        self._pad_to: int | None = fixed if fixed not in (None, 1) else None
        #: most frames one call takes: 1, N (fixed, or a dynamic axis bounded by the spec's
        #: ``max_batch``), or None (a dynamic axis in a spec that predates ``max_batch``: any number)
        self.batch_size: int | None = fixed if fixed is not None else (spec.max_batch if spec.max_batch > 1 else None)
        if self.batch_size != 1:  # the spec describes one frame: check the rest of the shape
            inputs = [dataclasses.replace(inputs[0], shape=(None, *inputs[0].shape[1:]))]
        info = check_model_io(inputs, self.output_names, spec, str(self.model_path))
        # a fused model (spec input_format uint8_camera; checked above) takes the camera image as it is
        self._input_dtype = np.uint8 if spec.fused else np.float16 if info.dtype == "float16" else np.float32

        self.providers = list(self.session.get_providers())
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            _log.warning("ONNX Runtime did not enable CUDA for %s; running on CPU", self.model_path.name)
        self.name = "onnxruntime-cuda" if "CUDAExecutionProvider" in self.providers else "onnxruntime-cpu"
        _log.info(
            "%s: %s, %d threads, graph optimization %s", self.model_path.name, self.name, threads, graph_optimization
        )

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run once; ``x`` of :func:`~depth_ros.inference.backend.spec_input_shape`: float32, or the
        camera's uint8 image for a fused model (``spec.fused``).

        Returns every model output by name (host numpy arrays).
        """
        return self._run(check_input_array(x, self.spec))

    def infer_batch(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``B`` frames in one call; ``x`` float32 (B, C, h, w) NCHW or (B, h, w, C) NHWC.

        Returns:
            every model output by name, its first axis the ``B`` frames.

        Raises:
            InputError: ``x`` is not a floating array of B frames of the spec's shape, or B is
                over a fixed ``batch_size``.
        """
        check_batch_input(x, spec_input_shape(self.spec)[1:], self.batch_size, self.model_path.name)
        return self._run(np.ascontiguousarray(x))

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The session on (B, ...) frames; a fixed batch N > B is padded, outputs cut back to B."""
        frames = x.shape[0]
        x = padded_batch(x.astype(self._input_dtype, copy=False), self._pad_to)
        outputs = trimmed_batch(self.session.run(None, {self.spec.input_name: x}), frames, x.shape[0])
        return dict(zip(self.output_names, outputs))


def _batch_axis(shape: tuple[Any, ...]) -> int | None:
    """The frames a model input of ``shape`` takes per call: its fixed first dim, or None when
    that dim is dynamic (a symbolic name, unknown or <= 0)."""
    first = shape[0]
    return first if isinstance(first, int) and first > 0 else None
