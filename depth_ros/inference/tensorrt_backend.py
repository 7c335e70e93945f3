"""TensorRT backend: build an engine from ONNX (FP16, FP32 or INT8), cache it, run it on a CUDA stream.

Two layers:

* **Orchestration (pure, tested here with fakes):** :func:`obtain_engine` computes the
  :class:`~depth_ros.inference.engine_cache.EngineKey`, loads a valid cached engine or
  rebuilds (with a warning when a cached file was corrupt, truncated, mismatched, or failed
  to deserialize), stores the result atomically and keeps the timing cache;
  :func:`decide_fallback` turns a build failure into a :class:`BackendError` carrying the
  parser/builder errors, or into the configured fallback (``fallback="onnxruntime"``) with a
  warning; :func:`onnx_model_io` reads the ONNX inputs the builder will see so the spec is
  checked before any GPU work.
* **TensorRT calls** (:class:`TensorRTToolkit`, :class:`TensorRTBackend`), TensorRT >= 10
  Python API: ``trt.Builder`` + ``trt.OnnxParser``, builder config with the ``FP16`` flag, a
  timing cache loaded from and saved to the engine cache directory (reused across builds of
  any model on the same TensorRT version + GPU), one optimization profile
  (:func:`profile_shapes`: min = opt = max = the spec's input shape; for a model of
  ``max_batch`` N with a dynamic batch axis min 1 frame, opt = max = N frames),
  ``build_serialized_network``; at run time ``deserialize_cuda_engine``, named I/O tensors
  (``num_io_tensors``, ``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``) bound to
  torch CUDA tensors allocated once at the most frames, and ``execute_async_v3`` on a dedicated
  ``torch.cuda.Stream``. ``infer_batch`` runs 1 to N frames in one call (a fixed batch axis is
  padded to N), as the ONNX Runtime backend's does, for the multi-camera node.

INT8 is TensorRT's *explicit* quantisation: the engine is built from a model whose Q/DQ nodes
carry the scales (``depth-ros-train export --int8 --int8-target tensorrt --calibration-bag BAG``:
:mod:`depth_ros.inference.quantize` calibrates them on the bag's frames through the runtime's
preprocess, symmetric int8 activations as TensorRT requires), with the ``INT8`` and ``FP16``
builder flags (layers outside Q/DQ pairs run in FP16). Such a model is always built as INT8
(:func:`engine_precision`); the implicit-quantisation calibrator API is deprecated since
TensorRT 10.1 and not used. A model quantised for ONNX Runtime on CPUs (uint8 activations with
zero points, which TensorRT does not take) is refused with the command that makes one.

UNVERIFIED HERE: TensorRT cannot be installed on the development/CI machines (no GPU, the
PyPI wheels download from NVIDIA at install time). Everything in the second layer is written
against the TensorRT 10 API documentation and has not been executed; test/gpu/test_tensorrt.py
exercises it where ``tensorrt`` imports and a CUDA device exists. ``BuilderFlag.FP16`` is
deprecated from TensorRT 10.12 in favour of strongly typed networks but still honoured.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from depth_ros.errors import BackendError, ModelError
from depth_ros.inference.contract import (
    InferenceBackend,
    TensorInfo,
    check_batch_input,
    check_input_array,
    check_model_io,
    spec_input_shape,
)
from depth_ros.inference.engine_cache import PRECISIONS, EngineCache, EngineKey
from depth_ros.inference.spec import ModelSpec

__all__ = [
    "MAX_IO_ELEMENTS_PER_PIXEL",
    "EngineBuildError",
    "EngineLoadError",
    "EngineToolkit",
    "FALLBACKS",
    "OPTIONS",
    "TensorRTBackend",
    "TensorRTToolkit",
    "check_io_buffer_shapes",
    "create_tensorrt_backend",
    "decide_fallback",
    "engine_input_shape",
    "engine_precision",
    "obtain_engine",
    "onnx_model_io",
    "profile_shapes",
]

_log = logging.getLogger(__name__)

#: Options :func:`depth_ros.inference.backend.create_backend` passes through to this backend.
OPTIONS = frozenset({"precision", "cache_dir", "fallback", "workspace_bytes", "device"})
FALLBACKS = (None, "onnxruntime")
DEFAULT_WORKSPACE_BYTES = 1 << 30


class EngineBuildError(Exception):
    """The ONNX parser or the TensorRT builder failed; ``errors`` holds their messages."""

    def __init__(self, stage: str, errors: Sequence[str]) -> None:
        self.stage = stage
        self.errors = [str(e) for e in errors] or ["(no error message)"]
        super().__init__(f"{stage} failed: " + "; ".join(self.errors))


class EngineLoadError(Exception):
    """A serialized engine could not be deserialized (e.g. built by another TensorRT/GPU)."""


class EngineToolkit(Protocol):
    """What :func:`obtain_engine` needs from TensorRT (real: :class:`TensorRTToolkit`)."""

    trt_version: str
    gpu_name: str

    def build(
        self, onnx_bytes: bytes, input_shape: tuple[int, ...], precision: str, timing_cache: bytes
    ) -> tuple[bytes, bytes]:
        """Build; returns (serialized engine, updated timing cache). Raises EngineBuildError."""
        ...

    def load(self, engine_bytes: bytes, spec: ModelSpec, precision: str) -> InferenceBackend:
        """Deserialize and bind buffers. Raises EngineLoadError."""
        ...


# -- pure orchestration ----------------------------------------------------------------------


def onnx_model_io(onnx_bytes: bytes, source: str) -> tuple[list[TensorInfo], list[str]]:
    """The graph inputs (initializers excluded) and output names of an ONNX model.

    Raises:
        ModelError: the bytes are not a readable ONNX model.
    """
    import onnx
    from onnx import helper

    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"{source}: not a readable ONNX file ({type(exc).__name__})") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim
        )
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
        except (KeyError, TypeError, ValueError):
            dtype = ""
        inputs.append(TensorInfo(value.name, dims, dtype))
    return inputs, [o.name for o in model.graph.output]


#: Largest engine I/O tensor, in elements per network input pixel. The image input has 3 or 6
#: per pixel, a depth or confidence map 1, a pose 6 in all; 64 leaves room for extra outputs
#: (a feature map at a quarter of the resolution with up to 1024 channels) while a deserialized
#: engine (an untrusted cache file) cannot make this backend allocate without bound. For a fused
#: model (camera-size uint8 input, maybe camera-size outputs) the pixels are those of the larger
#: of the network input and the camera image.
MAX_IO_ELEMENTS_PER_PIXEL = 64


def engine_input_shape(spec: ModelSpec) -> tuple[int, ...]:
    """The input shape an engine is built and its buffers allocated for: the spec's, with
    ``max_batch`` frames (the optimisation profile's max)."""
    return (spec.max_batch, *spec_input_shape(spec)[1:])


def profile_shapes(network_shape: Sequence[int], max_shape: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) of the optimisation profile for an input the parsed network declares as
    ``network_shape`` (-1 for a dynamic dim): a dynamic batch axis runs 1 to ``max_shape[0]``
    frames and is tuned for the most; every other dim is the spec's.

    Raises:
        EngineBuildError: the network's input has another rank, a fixed dim other than the
            spec's, or a fixed batch axis other than ``max_batch``.
    """
    network_shape, max_shape = tuple(int(d) for d in network_shape), tuple(int(d) for d in max_shape)
    if len(network_shape) != len(max_shape) or any(n >= 0 and n != m for n, m in zip(network_shape, max_shape)):
        raise EngineBuildError("optimisation profile", [
            f"the ONNX input is {list(network_shape)}; the spec's input (batch = max_batch) is {list(max_shape)}"])
    low = (1 if network_shape[0] < 0 else max_shape[0], *max_shape[1:])
    return low, max_shape, max_shape


def engine_precision(spec: ModelSpec, requested: str) -> str:
    """The precision an engine is built in: an INT8 model quantised for TensorRT is always built as
    INT8 (its Q/DQ scales decide; module docstring), anything else as ``requested``.

    Raises:
        BackendError: INT8 asked for a model without Q/DQ scales, or a model quantised for ONNX
            Runtime on CPUs (the message names the export command that makes a TensorRT one).
    """
    make = "depth-ros-train export --int8 --int8-target tensorrt --calibration-bag BAG"
    if spec.extra.get("precision") == "int8":
        if spec.extra.get("int8_target") != "tensorrt":
            raise BackendError(f"model '{spec.name}' is quantised for ONNX Runtime on CPUs (uint8 activations with zero "
                               f"points, which TensorRT does not take); for TensorRT INT8 export it with: {make}")
        if requested != "int8":
            _log.info("model '%s' is quantised for TensorRT: building INT8 (asked: %s)", spec.name, requested)
        return "int8"
    if requested == "int8":
        raise BackendError(f"TensorRT INT8 builds from a model with calibrated Q/DQ scales; model '{spec.name}' has none: {make}")
    return requested


def check_io_buffer_shapes(shapes: dict[str, tuple[int, ...]], spec: ModelSpec) -> None:
    """Check an engine's I/O tensor shapes (after binding the input) before allocating them.

    Raises:
        EngineLoadError: a dim still dynamic (negative), or a tensor larger than
            :data:`MAX_IO_ELEMENTS_PER_PIXEL` elements per input pixel (per frame, times
            ``max_batch`` frames).
    """
    pixels = spec.input_height * spec.input_width
    if spec.fused:
        pixels = max(pixels, int(spec.fused_height_px) * int(spec.fused_width_px))  # type: ignore[arg-type]
    limit = MAX_IO_ELEMENTS_PER_PIXEL * pixels * spec.max_batch
    for name, shape in shapes.items():
        if any(d < 0 for d in shape):
            raise EngineLoadError(f"tensor {name!r} still has a dynamic shape {shape} after binding the input")
        elements = 1
        for d in shape:
            elements *= d
        if elements > limit:
            raise EngineLoadError(
                f"tensor {name!r} has shape {shape} ({elements} elements); at most {limit} "
                f"({MAX_IO_ELEMENTS_PER_PIXEL} per input pixel) are allocated"
            )


def engine_key(onnx_bytes: bytes, toolkit: EngineToolkit, spec: ModelSpec, precision: str) -> EngineKey:
    """The cache key of the engine ``toolkit`` would build from ``onnx_bytes`` for ``spec``."""
    return EngineKey(
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        trt_version=toolkit.trt_version,
        gpu_name=toolkit.gpu_name,
        precision=precision,
        input_shape=engine_input_shape(spec),
    )


def _build_and_store(
    onnx_bytes: bytes, key: EngineKey, toolkit: EngineToolkit, cache: EngineCache
) -> bytes:
    timing = cache.read_timing_cache(key.trt_version, key.gpu_name)
    _log.info(
        "building TensorRT %s engine for input %s on %s (takes minutes the first time)",
        key.precision, list(key.input_shape), key.gpu_name,
    )
    engine_bytes, new_timing = toolkit.build(onnx_bytes, key.input_shape, key.precision, timing)
    try:
        cache.write_timing_cache(key.trt_version, key.gpu_name, new_timing)
        cache.store(key, engine_bytes)
    except OSError as exc:  # a read-only cache dir must not stop the robot: run uncached
        _log.warning("cannot write the TensorRT engine cache in %s (%s); engine not cached", cache.cache_dir, exc)
    return engine_bytes


def obtain_engine(
    onnx_bytes: bytes, spec: ModelSpec, toolkit: EngineToolkit, cache: EngineCache, precision: str
) -> tuple[InferenceBackend, str]:
    """A running engine for this model: from the cache when valid, else built (and cached).

    Rebuild rules: no file -> build; a file that is truncated, corrupt, or for another key ->
    warn and build; a cached engine that fails to deserialize -> warn and build once more.

    Returns:
        (backend, how) with ``how`` in {"cache", "built", "rebuilt"}.

    Raises:
        EngineBuildError: parsing or building failed.
        EngineLoadError: a freshly built engine failed to deserialize.
    """
    key = engine_key(onnx_bytes, toolkit, spec, precision)
    lookup = cache.lookup(key)
    if lookup.hit:
        assert lookup.payload is not None
        try:
            return toolkit.load(lookup.payload, spec, precision), "cache"
        except EngineLoadError as exc:
            _log.warning("cached TensorRT engine %s does not load (%s); rebuilding", lookup.path, exc)
            return toolkit.load(_build_and_store(onnx_bytes, key, toolkit, cache), spec, precision), "rebuilt"
    if lookup.needs_rebuild_warning:
        _log.warning("cached TensorRT engine %s unusable (%s); rebuilding", lookup.path, lookup.reason)
        return toolkit.load(_build_and_store(onnx_bytes, key, toolkit, cache), spec, precision), "rebuilt"
    return toolkit.load(_build_and_store(onnx_bytes, key, toolkit, cache), spec, precision), "built"


def decide_fallback(fallback: str | None, error: Exception, model_path: Path) -> str:
    """What to do when TensorRT cannot serve a model.

    Returns:
        the fallback backend name (after logging a warning with the reason).

    Raises:
        BackendError: no fallback configured; the message carries the TensorRT errors.
        ValueError: an unknown fallback name.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    reason = str(error)
    if fallback is None:
        raise BackendError(f"TensorRT cannot run {model_path.name}: {reason}")
    _log.warning("TensorRT cannot run %s (%s); falling back to %s", model_path.name, reason, fallback)
    return fallback


def create_tensorrt_backend(
    model_path: str | Path,
    spec: ModelSpec,
    precision: str = "fp16",
    cache_dir: str | Path | None = None,
    fallback: str | None = None,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    device: int = 0,
    fallback_options: dict[str, Any] | None = None,
    toolkit_factory: Callable[[], EngineToolkit] | None = None,
    fallback_factory: Callable[[str], InferenceBackend] | None = None,
) -> InferenceBackend:
    """A TensorRT backend for an ONNX file, or the configured fallback.

    Args:
        model_path: the ``.onnx`` file.
        spec: its contract; checked against the ONNX inputs/outputs before building.
        precision: "fp16" (default), "fp32" or "int8" (a model quantised for TensorRT is built
            as INT8 whatever is asked: :func:`engine_precision`).
        cache_dir: engine cache directory; None -> ``$XDG_CACHE_HOME/depth_ros/engines``.
        fallback: None (a failure raises BackendError) or "onnxruntime" (warn and use it).
        workspace_bytes: builder workspace memory pool limit.
        device: CUDA device index.
        fallback_options: options for the fallback backend (e.g. ``threads``).
        toolkit_factory, fallback_factory: injection points for tests.

    Raises:
        ModelError: unreadable ONNX, or one that does not fit ``spec`` (never falls back: the
            fallback would refuse it too).
        BackendError: TensorRT unavailable or failed, with no fallback configured.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    path = Path(model_path)
    try:
        onnx_bytes = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc}") from None
    inputs, outputs = onnx_model_io(onnx_bytes, str(path))
    if spec.max_batch > 1 and len(inputs) == 1 and inputs[0].shape:
        fixed = inputs[0].shape[0]
        if isinstance(fixed, int) and fixed > 0 and fixed != spec.max_batch:
            raise ModelError(f"{path}: input batch axis is {fixed} frames, the spec's max_batch says {spec.max_batch}")
        inputs = [TensorInfo(inputs[0].name, (None, *inputs[0].shape[1:]), inputs[0].dtype)]  # checked per frame
    check_model_io(inputs, outputs, spec, str(path))

    cache = EngineCache(cache_dir)
    try:
        precision = engine_precision(spec, precision)
        toolkit = (toolkit_factory or (lambda: TensorRTToolkit(device=device, workspace_bytes=workspace_bytes)))()
        backend, how = obtain_engine(onnx_bytes, spec, toolkit, cache, precision)
    except (BackendError, EngineBuildError, EngineLoadError) as exc:
        choice = decide_fallback(fallback, exc, path)
        if fallback_factory is not None:
            return fallback_factory(choice)
        return _onnxruntime_fallback(path, spec, fallback_options or {})
    engine_path = cache.path_for(engine_key(onnx_bytes, toolkit, spec, precision))
    if isinstance(backend, TensorRTBackend):
        backend.engine_path = engine_path
    _log.info("TensorRT engine for %s: %s (%s)", path.name, how, engine_path)
    return backend


def _onnxruntime_fallback(path: Path, spec: ModelSpec, options: dict[str, Any]) -> InferenceBackend:
    from depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
    from depth_ros.inference.probes import probe_onnxruntime_cuda

    device = "cuda" if probe_onnxruntime_cuda().available else "cpu"  # as select_backend's "onnxruntime"
    return OnnxRuntimeBackend(path, spec, device=device, **options)


# -- TensorRT calls (unverified here: no TensorRT, no GPU) -------------------------------------


def _make_logger(trt: Any) -> Any:
    """A trt.ILogger that forwards to logging and keeps error messages for EngineBuildError."""

    class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt.ILogger.Severity
            if severity in (sev.INTERNAL_ERROR, sev.ERROR):
                self.errors.append(msg)
                _log.error("TensorRT: %s", msg)
            elif severity == sev.WARNING:
                _log.warning("TensorRT: %s", msg)
            else:
                _log.debug("TensorRT: %s", msg)

    return _Logger()


class TensorRTToolkit:
    """Builds and loads engines with TensorRT >= 10 on one CUDA device (see module docstring).

    Raises:
        BackendError: tensorrt or torch not importable, TensorRT older than 10, no CUDA device.
    """

    def __init__(self, device: int = 0, workspace_bytes: int = DEFAULT_WORKSPACE_BYTES) -> None:
        try:
            import tensorrt as trt
            import torch
        except Exception as exc:  # ImportError, or OSError from a broken libnvinfer
            raise BackendError(f"TensorRT is not available ({type(exc).__name__}: {exc})") from None
        major = str(trt.__version__).split(".")[0]
        if not major.isdigit() or int(major) < 10:
            raise BackendError(f"TensorRT {trt.__version__} found; this backend needs TensorRT >= 10")
        if not torch.cuda.is_available() or device >= torch.cuda.device_count():
            raise BackendError(f"TensorRT needs CUDA device {device}; torch sees {torch.cuda.device_count()}")
        props = torch.cuda.get_device_properties(device)
        self.trt, self.torch = trt, torch
        self.device = torch.device("cuda", device)
        self.workspace_bytes = int(workspace_bytes)
        self.trt_version = str(trt.__version__)
        self.gpu_name = f"{props.name} (sm_{props.major}{props.minor})"
        self.logger = _make_logger(trt)

    def build(
        self, onnx_bytes: bytes, input_shape: tuple[int, ...], precision: str, timing_cache: bytes
    ) -> tuple[bytes, bytes]:
        trt = self.trt
        self.logger.errors.clear()
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_bytes):
            raise EngineBuildError("ONNX parser", [str(parser.get_error(i)) for i in range(parser.num_errors)])
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        if precision in ("fp16", "int8"):  # INT8: the layers outside Q/DQ pairs run in FP16
            if not getattr(builder, "platform_has_fast_fp16", True):
                _log.warning("this GPU has no fast FP16; building FP16 anyway as asked")
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":  # explicit quantisation: the scales are the model's Q/DQ nodes
            config.set_flag(trt.BuilderFlag.INT8)
        cache = config.create_timing_cache(timing_cache)
        if cache is None or not config.set_timing_cache(cache, False):
            _log.warning("TensorRT rejected the stored timing cache; starting a fresh one")
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            profile.set_shape(tensor.name, *profile_shapes(tuple(tensor.shape), input_shape))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineBuildError("TensorRT builder", list(self.logger.errors))
        new_timing = config.get_timing_cache().serialize()
        return bytes(serialized), bytes(new_timing)

    def load(self, engine_bytes: bytes, spec: ModelSpec, precision: str) -> "TensorRTBackend":
        return TensorRTBackend(self, engine_bytes, spec, precision)


class TensorRTBackend:
    """A deserialized engine with device buffers bound once at the most frames (``max_batch``);
    ``name`` "tensorrt-fp16" / "-fp32" / "-int8"; ``batch_size`` the most frames per call.

    Raises (construction):
        EngineLoadError: the engine does not deserialize.
        ModelError: its I/O tensors do not match the spec.
    """

    def __init__(self, toolkit: TensorRTToolkit, engine_bytes: bytes, spec: ModelSpec, precision: str) -> None:
        trt, torch = toolkit.trt, toolkit.torch
        self.spec = spec
        self.name = f"tensorrt-{precision}"
        self.engine_path: Path | None = None  # the cache file, set by create_tensorrt_backend
        self._torch = torch
        self._device = toolkit.device
        toolkit.logger.errors.clear()
        with torch.cuda.device(self._device):
            self._runtime = trt.Runtime(toolkit.logger)
            self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
            if self._engine is None:
                raise EngineLoadError("; ".join(toolkit.logger.errors) or "deserialize_cuda_engine returned None")
            self._context = self._engine.create_execution_context()
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            input_names = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            self.output_names = [n for n in names if n not in input_names]
            inputs = [TensorInfo(n, tuple(self._engine.get_tensor_shape(n)), "") for n in input_names]
            #: most frames one call takes; a fixed batch axis N > 1 is padded to N
            self.batch_size = spec.max_batch
            self._dynamic_batch = len(inputs) == 1 and int(inputs[0].shape[0]) < 0
            if self.batch_size > 1:  # the spec describes one frame: check the rest of the shape
                inputs = [TensorInfo(inputs[0].name, (None, *inputs[0].shape[1:]), "")]
            check_model_io(inputs, self.output_names, spec, "TensorRT engine")
            self._frame_shape = spec_input_shape(spec)[1:]
            self._bound_frames = self.batch_size
            self._context.set_input_shape(spec.input_name, engine_input_shape(spec))
            shapes = {name: tuple(int(d) for d in self._context.get_tensor_shape(name)) for name in names}
            check_io_buffer_shapes(shapes, spec)  # before any device allocation
            self._buffers = {}
            for name in names:
                shape = shapes[name]
                dtype = _torch_dtype(torch, trt, self._engine.get_tensor_dtype(name))
                self._buffers[name] = torch.empty(shape, dtype=dtype, device=self._device)
                self._context.set_tensor_address(name, self._buffers[name].data_ptr())
            self._stream = torch.cuda.Stream(self._device)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run once; ``x`` of the spec's input shape: float32, or the camera's uint8 image for a fused
        model (bound to a uint8 engine input; the graph's Cast, resize and normalisation run on the
        GPU). Returns outputs as float32 host arrays."""
        return self._run(check_input_array(x, self.spec))

    def infer_batch(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``B`` frames (1 to ``batch_size``) in one call; ``x`` (B, ...) of the spec's frame
        shape. Returns every output by name, its first axis the ``B`` frames.

        Raises:
            InputError: not B frames of the spec's shape, or B over ``batch_size``.
        """
        check_batch_input(x, self._frame_shape, self.batch_size, f"model '{self.spec.name}'")
        return self._run(np.ascontiguousarray(x))

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The engine on (B, ...) frames: a dynamic batch axis is bound to B, a fixed one is padded."""
        torch = self._torch
        frames = x.shape[0]
        run_frames = frames if self._dynamic_batch else self.batch_size
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            if run_frames != self._bound_frames:
                self._context.set_input_shape(self.spec.input_name, (run_frames, *self._frame_shape))
                self._bound_frames = run_frames
            staged = self._buffers[self.spec.input_name]
            staged[:frames].copy_(torch.from_numpy(x).to(staged.dtype))
            if frames < run_frames:
                staged[frames:run_frames].zero_()
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError("TensorRT execute_async_v3 failed")
            host = {}
            for n in self.output_names:
                # the engine writes a (run_frames, ...) output at the start of the buffer allocated
                # for the most frames: read that prefix, then keep the frames asked for
                shape = tuple(int(d) for d in self._context.get_tensor_shape(n))
                count = int(np.prod(shape)) if shape else 1
                out = self._buffers[n].reshape(-1)[:count].reshape(shape)
                host[n] = (out[:frames] if shape and shape[0] == run_frames and frames < run_frames else out).float().to("cpu")
        self._stream.synchronize()
        return {n: t.numpy() for n, t in host.items()}


def _torch_dtype(torch: Any, trt: Any, dt: Any) -> Any:
    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    if hasattr(trt.DataType, "UINT8"):  # the camera image input of a fused model (TensorRT >= 8.5)
        table[trt.DataType.UINT8] = torch.uint8
    if hasattr(trt.DataType, "INT64"):
        table[trt.DataType.INT64] = torch.int64
    if dt not in table:
        raise EngineLoadError(f"unsupported TensorRT tensor type {dt}")
    return table[dt]
