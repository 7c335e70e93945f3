"""Export an ``nn.Module`` to ONNX with its :class:`ModelSpec` embedded.

The spec goes into ``metadata_props[METADATA_KEY]`` as JSON, so :func:`load_model_spec` finds
it with no sidecar. Output names follow :func:`depth_ros.inference.torch_backend.named_outputs`,
so the ONNX and eager backends return the same dict keys. The input shape is fixed to the
spec's (batch 1); ``batch`` asks for a fixed batch of N frames or a dynamic batch axis of 1 to
``spec.max_batch`` frames instead (several cameras in one call: the backends' ``infer_batch``),
and the embedded spec's ``max_batch`` records it (TensorRT's optimisation profile is built from it).

After export the model is run once in ONNX Runtime on the same random input as the module and
the outputs are compared (``check_atol``); the file is written only if they agree, and always
atomically (temporary file + rename, :func:`write_atomically`), so a failed export never leaves a
file at ``path``. The file gets the mode a plain ``open`` gives (0644 under umask 022): a node
running as another user must be able to read it.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depth_ros.errors import ModelError
from depth_ros.safeio import write_atomically
from depth_ros.inference.contract import spec_input_shape
from depth_ros.inference.spec import MAX_BATCH, ModelSpec, embed_spec  # embed_spec: re-exported here

if TYPE_CHECKING:
    import torch

    from depth_ros.inference.fused_io import FusedIOConfig

__all__ = ["DEFAULT_OPSET", "batch_onnx", "embed_spec", "export_fused_onnx", "export_onnx", "set_dynamic_batch", "write_atomically"]

_log = logging.getLogger(__name__)

DEFAULT_OPSET = 20
_MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit; larger models need external data (unsupported)


def set_dynamic_batch(model_proto: "object") -> None:
    """Make the first axis of every graph input and output of an ``onnx.ModelProto`` dynamic
    (``"batch"``), for a model written at batch 1. Valid only for a graph that never reshapes
    over that axis (convolutions and element-wise ops do not); a batched run shows whether it is.
    """
    graph = model_proto.graph  # type: ignore[attr-defined]
    for value in [*graph.input, *graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"


def batch_onnx(source: str | Path, path: str | Path, max_batch: int, check_atol: float | None = 1e-4, seed: int = 0) -> Path:
    """Write a batch-1 exported model with a batch axis of 1 to ``max_batch`` frames (several
    cameras in one call; ``depth-ros-train export --batch N``): :func:`set_dynamic_batch`, and the
    embedded spec's ``max_batch`` set to N.

    The result is checked before it is written: ``max_batch`` random frames in one call must give
    each frame's output run alone through ``source`` (``check_atol``; None skips the check). A
    graph that reshapes over the batch axis fails it, and nothing is written.

    Args:
        source: an exported ``.onnx`` of ``max_batch`` 1 with its spec; not a fused one (a fused
            model takes one camera image).
        path: the batched model (may be ``source`` itself; written atomically).

    Raises:
        ModelError: ``source`` is fused, already batched or unreadable, or the check failed.
        ValueError: ``max_batch`` not in 2..:data:`~depth_ros.inference.spec.MAX_BATCH`.
    """
    import onnx

    from depth_ros.inference.spec import load_model_spec

    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or not 2 <= max_batch <= MAX_BATCH:
        raise ValueError(f"max_batch must be an integer in 2..{MAX_BATCH}, got {max_batch!r}")
    source, path = Path(source), Path(path)
    spec = load_model_spec(source)
    if spec.fused:
        raise ModelError(f"{source}: a fused model takes one camera image; batch the unfused model")
    if spec.max_batch != 1:
        raise ModelError(f"{source}: already takes up to {spec.max_batch} frames per call")
    try:
        original = source.read_bytes()
        proto = onnx.load_from_string(original)
    except Exception as exc:  # OSError, protobuf DecodeError
        raise ModelError(f"{source}: not a readable ONNX file ({_one_line(exc)})") from None
    if len(proto.graph.input) != 1 or len(proto.graph.input[0].type.tensor_type.shape.dim) != 4:
        raise ModelError(f"{source}: batching needs one image input of rank 4")
    set_dynamic_batch(proto)
    embed_spec(proto, dataclasses.replace(spec, max_batch=max_batch))
    data = proto.SerializeToString()
    if check_atol is not None:
        _check_batched(original, data, spec, max_batch, check_atol, seed)
    write_atomically(path, lambda f: f.write(data))
    _log.info("%s: batch axis of 1 to %d frames", path, max_batch)
    return path


def _check_batched(original: bytes, batched: bytes, spec: ModelSpec, frames: int, atol: float, seed: int) -> None:
    """``frames`` random frames through ``batched`` in one call equal each frame through ``original``."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).random((frames, *spec_input_shape(spec)[1:]), dtype=np.float32)
    try:
        one = ort.InferenceSession(original, providers=["CPUExecutionProvider"])
        many = ort.InferenceSession(batched, providers=["CPUExecutionProvider"])
        got = many.run(None, {spec.input_name: x})
        alone = [one.run(None, {spec.input_name: x[i:i + 1]}) for i in range(frames)]
    except Exception as exc:  # ORT's own error types: the graph does not run batched
        raise ModelError(f"model '{spec.name}' does not run {frames} frames in one call ({_one_line(exc)})") from None
    for k, out in enumerate(got):
        want = np.concatenate([a[k] for a in alone])
        if out.shape != want.shape:
            raise ModelError(f"model '{spec.name}': batched output {k} has shape {list(out.shape)}, frame by frame {list(want.shape)}")
        diff = float(np.max(np.abs(out.astype(np.float64) - want))) if want.size else 0.0
        if not diff <= atol:
            raise ModelError(f"model '{spec.name}': batched output {k} differs from frame-by-frame by {diff:.3g} (allowed {atol:g})")


def export_onnx(
    module: "torch.nn.Module",
    spec: ModelSpec,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    check_atol: float | None = 1e-4,
    seed: int = 0,
    batch: int | None = 1,
) -> Path:
    """Export ``module`` to ONNX at ``path`` with ``spec`` in its metadata.

    The module is moved to the CPU and traced in eval mode; its train/eval mode is restored.

    Args:
        module: takes ``(1, C, h, w)`` (or NHWC per spec) float32 and returns a Tensor, a
            tuple/list or a dict of tensors (see ``named_outputs``).
        spec: the contract to embed; its input name/size/layout define the exported input.
        path: destination ``.onnx`` file.
        opset: ONNX opset (>= 18 for the dynamo exporter).
        check_atol: max allowed |ONNX Runtime - torch| on a random input in [0, 1) (not the
            one traced with); None skips the check (then onnxruntime is not needed).
        seed: seed of the tracing and checking inputs.
        batch: frames per call of the exported input's first axis: 1 (the spec's shape), a
            fixed N > 1, or None for a dynamic axis of 1 to ``spec.max_batch`` frames
            (:data:`~depth_ros.inference.spec.MAX_BATCH` when the spec says 1; traced and
            checked on 2 frames). The embedded spec's ``max_batch`` says N, or that bound.

    Returns:
        ``path`` as a Path.

    Raises:
        ModelError: export failed, the exported model is invalid or too large, or the parity
            check failed (nothing is written then).
        ValueError: bad ``opset``.
    """
    import onnx

    if not isinstance(opset, int) or opset < 18:
        raise ValueError(f"opset must be an integer >= 18 for the dynamo exporter, got {opset!r}")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH):
        raise ValueError(f"batch must be an integer in 1..{MAX_BATCH} or None (dynamic), got {batch!r}")
    if batch is not None and spec.max_batch not in (1, batch):
        raise ValueError(f"batch {batch} does not match the spec's max_batch {spec.max_batch}")
    if batch is None:
        spec = dataclasses.replace(spec, max_batch=spec.max_batch if spec.max_batch > 1 else MAX_BATCH)
    elif batch > 1:
        spec = dataclasses.replace(spec, max_batch=batch)
    path = Path(path)
    was_training = module.training
    module = module.eval().cpu()
    try:
        x, reference, program = _trace(module, spec, opset, seed, batch)
    finally:
        module.train(was_training)
    proto = program.model_proto
    embed_spec(proto, spec)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"exported ONNX model is invalid: {str(exc).splitlines()[0]}") from None
    data = proto.SerializeToString()
    if len(data) > _MAX_PROTO_BYTES:
        raise ModelError(f"exported model is {len(data)} bytes, over protobuf's 2 GiB limit")
    if check_atol is not None:
        _check_parity(data, spec, x, reference, check_atol)
    write_atomically(path, lambda f: f.write(data))
    _log.info("exported %s to %s (opset %d, %d bytes)", type(module).__name__, path, opset, len(data))
    return path


def _trace(module: "torch.nn.Module", spec: ModelSpec, opset: int, seed: int,
           batch: int | None = 1) -> tuple[np.ndarray, dict, object]:
    """(parity input, torch outputs on it by name, ONNXProgram) for an eval-mode CPU module."""
    import torch

    from depth_ros.inference.torch_backend import named_outputs

    generator = torch.Generator().manual_seed(seed)
    # a dynamic axis is traced on 2 frames: the exporter specialises a dim of size 1
    shape = (2 if batch is None else batch, *spec_input_shape(spec)[1:])
    dynamic_shapes = None if batch is not None else {"image": {0: torch.export.Dim("batch", min=1, max=spec.max_batch)}}
    x_trace = torch.rand(shape, generator=generator, dtype=torch.float32)
    # The parity input differs from the tracing input, so values baked into the graph as
    # constants during tracing (a .numpy() or .item() round trip) show up as a mismatch.
    x_check = torch.rand(shape, generator=generator, dtype=torch.float32)
    with torch.inference_mode():
        reference = {k: v.float().numpy() for k, v in named_outputs(module(x_check), spec).items()}
    names = list(reference)

    class _Outputs(torch.nn.Module):
        """The module with its outputs flattened to a tuple in ``names`` order."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = named_outputs(self.inner(image), spec)
            return tuple(out[n] for n in names)

    try:
        program = torch.onnx.export(
            _Outputs().eval(),
            (x_trace,),
            input_names=[spec.input_name],
            output_names=names,
            opset_version=opset,
            dynamic_shapes=dynamic_shapes,
            dynamo=True,
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many types (TorchExportError, ...)
        raise ModelError(f"ONNX export of {type(module).__name__} failed: {_one_line(exc)}") from None
    return x_check.numpy(), reference, program


def _one_line(exc: BaseException) -> str:
    """The exporter's first message line, without colour codes, plus its root cause."""
    def first_line(e: BaseException) -> str:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
        return text.splitlines()[0] if text else type(e).__name__

    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    if root is exc:
        return first_line(exc)
    return f"{first_line(exc)} (caused by {type(root).__name__}: {first_line(root)})"


def _check_parity(
    data: bytes, spec: ModelSpec, x: np.ndarray, reference: dict[str, np.ndarray], atol: float
) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {spec.input_name: x})))
    for name, want in reference.items():
        if name not in got or got[name].shape != want.shape:
            raise ModelError(
                f"exported output {name!r}: shape {getattr(got.get(name), 'shape', None)} vs torch {want.shape}"
            )
        diff = float(np.max(np.abs(got[name].astype(np.float64) - want))) if want.size else 0.0
        _log.info("export parity %s: max |onnxruntime - torch| = %.3g", name, diff)
        if not diff <= atol:
            raise ModelError(f"exported output {name!r} differs from torch by {diff:.3g} (allowed {atol:g})")


def export_fused_onnx(
    source: str | Path, path: str | Path, config: "FusedIOConfig", check_rtol: float | None = 0.01, seed: int = 0
) -> Path:
    """Write the fused-IO version of an exported depth model (:mod:`depth_ros.inference.fused_io`):
    it takes the camera's uint8 (1, H, W, 3) image and resizes and normalises it in the graph.

    Args:
        source: an unfused ``.onnx`` with its spec (embedded, or a YAML sidecar).
        path: destination ``.onnx``; the fused spec is embedded in it.
        config: the camera size and colour order, the aspect window, and whether the outputs
            come back at camera resolution.
        check_rtol: largest allowed median relative difference between the fused model's output
            and the unfused model's on the runtime's numpy pre-processing of an image-like frame
            (its output resized by :func:`~depth_ros.core.postprocess.upsample` when the fused one
            is at camera resolution); None skips the check (then onnxruntime is not needed).
        seed: seed of the check frame.

    Returns:
        ``path`` as a Path (written atomically, only when the check passes).

    Raises:
        ModelError: the source cannot be fused, or the check failed (nothing is written then).
        ModelSpecError: the source's spec cannot be fused (not a depth model, already fused, ...).
    """
    import onnx

    from depth_ros.inference.fused_io import fuse_io
    from depth_ros.inference.spec import load_model_spec

    source, path = Path(source), Path(path)
    spec = load_model_spec(source)
    model = onnx.load(str(source))
    fused, fused_spec = fuse_io(model, spec, config)
    data = fused.SerializeToString()
    if check_rtol is not None:
        _check_fused(model.SerializeToString(), data, spec, fused_spec, check_rtol, seed)
    write_atomically(path, lambda f: f.write(data))
    _log.info("fused-IO model for a %dx%d %s camera: %s", config.camera_width_px, config.camera_height_px,
              config.color_order, path)
    return path


def _check_fused(unfused: bytes, fused: bytes, spec: ModelSpec, fused_spec: ModelSpec, rtol: float, seed: int) -> None:
    """The fused model against the numpy path on one image-like frame (see :func:`export_fused_onnx`)."""
    import onnxruntime as ort
    from PIL import Image

    from depth_ros.core.camera import CameraModel
    from depth_ros.core.postprocess import upsample
    from depth_ros.core.preprocess import preprocess
    from depth_ros.inference.fused_io import output_agreement

    w, h = int(fused_spec.fused_width_px), int(fused_spec.fused_height_px)  # type: ignore[arg-type]
    coarse = (np.random.default_rng(seed).random((max(2, h // 24), max(2, w // 24), 3)) * 255).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
    camera = CameraModel.from_fov(w, h, 70.0)
    x_fused = preprocess(rgb, camera, fused_spec).tensor
    x_numpy = preprocess(rgb, camera, spec, fused_spec.fused_aspect).tensor
    providers = ["CPUExecutionProvider"]
    want = ort.InferenceSession(unfused, providers=providers).run([spec.output_name], {spec.input_name: x_numpy})[0]
    got = ort.InferenceSession(fused, providers=providers).run([spec.output_name], {spec.input_name: x_fused})[0]
    if fused_spec.output_at_camera_resolution:
        want = upsample(np.asarray(want, np.float32).reshape(want.shape[-2:]), got.shape[-1], got.shape[-2])
    diff = output_agreement(got, want)
    _log.info("fused-IO parity: median relative difference %.3g", diff)
    if not diff <= rtol:
        raise ModelError(f"fused model's output differs from the numpy pre-processing path by {diff:.3g} "
                         f"(median relative; allowed {rtol:g})")
