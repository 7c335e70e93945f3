"""Pre- and post-processing inside the network graph: an exported depth model -> one that takes
the camera's uint8 image (docs/fused-io.md).

:func:`fuse_io` rewrites an ONNX model whose input is the normalised float tensor of its
:class:`ModelSpec` (``input_format`` ``float``) into one whose input is the camera image,
``(1, H, W, 3)`` uint8 at one camera resolution, in RGB or BGR order, with these nodes in front
of the network (all standard ONNX, opset >= 18; every one of them runs under ONNX Runtime and
under TensorRT's parser, the Cast first because TensorRT keeps uint8 for network I/O only)::

    Cast(float) -> Transpose(NHWC -> NCHW) -> [Gather: channel order] -> [Slice: the aspect crop]
      -> Resize(linear, half_pixel, antialias) -> Mul(1 / (255 std)) -> Add(-mean / std)
      -> [Transpose(NCHW -> NHWC) for an NHWC network] -> the network

and, with ``output_at_camera_resolution``, a Resize of each output the spec names (depth,
confidence) to the window's size in camera pixels after it.

Convention: Resize with ``coordinate_transformation_mode = half_pixel`` maps pixel edges to
edges, like Pillow's resize in :func:`depth_ros.core.preprocess.resize_rgb` and
:meth:`CameraModel.resized`; ``antialias = 1`` widens the triangle filter by the shrink factor
when shrinking, which is Pillow's bilinear filter, and is plain bilinear when enlarging;
``exclude_outside = 1`` renormalises the weights of taps that fall inside the image, as Pillow
does at the borders (without it ONNX Runtime's border rows differed from Pillow's by up to 8 grey
levels at 320x240 -> 160x64; with it the graph is within 2e-5 of torch's antialiased bilinear
and within one grey level of Pillow, which rounds its resized image to uint8 where the graph
keeps floats).
The output is resized in the kind's own quantity, which for the kinds allowed
(:data:`~depth_ros.inference.spec._CAMERA_RESOLUTION_KINDS`) is affine in inverse depth, as the
runtime's :func:`~depth_ros.core.postprocess.upsample` of inverse depth is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from depth_ros.core.aspect import model_window
from depth_ros.errors import ModelError
from depth_ros.inference.spec import FUSED_ASPECTS, MAX_INPUT_PIXELS, MAX_INPUT_SIDE, ModelSpec, ModelSpecError

__all__ = ["FusedIOConfig", "MIN_FUSED_OPSET", "fuse_io", "fused_spec", "output_agreement"]

#: Resize's ``antialias`` and ``axes`` attributes are opset 18.
MIN_FUSED_OPSET = 18
_PREFIX = "depth_ros_fused/"


@dataclass(frozen=True)
class FusedIOConfig:
    """What a fused graph is exported for.

    Args:
        camera_width_px, camera_height_px: the camera image size the graph takes (pixels).
        color_order: channel order of the uint8 image the runtime feeds ("rgb"; "bgr" for a
            graph that reorders itself).
        aspect: the aspect window the graph cuts before its resize: "crop" to the spec's trained
            aspect (the runtime's default policy) or "stretch" (the whole image).
        output_at_camera_resolution: also resize the outputs in the graph to the window's size in
            camera pixels (the runtime then resizes nothing).
        antialias: Resize's antialias (Pillow's filter when shrinking); False gives plain
            bilinear, for a runtime whose Resize has no antialiasing.
    """

    camera_width_px: int
    camera_height_px: int
    color_order: str = "rgb"
    aspect: str = "crop"
    output_at_camera_resolution: bool = False
    antialias: bool = True

    def __post_init__(self) -> None:
        for name in ("camera_width_px", "camera_height_px"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INPUT_SIDE:
                raise ValueError(f"{name} must be an integer in 1..{MAX_INPUT_SIDE}, got {value!r}")
        if self.camera_width_px * self.camera_height_px > MAX_INPUT_PIXELS:
            raise ValueError(f"camera {self.camera_width_px}x{self.camera_height_px} is over {MAX_INPUT_PIXELS} pixels")
        if self.color_order not in ("rgb", "bgr"):
            raise ValueError(f"color_order must be 'rgb' or 'bgr', got {self.color_order!r}")
        if self.aspect not in FUSED_ASPECTS:
            raise ValueError(f"aspect must be one of {FUSED_ASPECTS} (pad is not built in the graph), got {self.aspect!r}")
        for name in ("output_at_camera_resolution", "antialias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a boolean, got {getattr(self, name)!r}")

    @classmethod
    def parse_size(cls, text: str) -> tuple[int, int]:
        """(width, height) of a ``WxH`` string such as ``640x480``.

        Raises:
            ValueError: not two positive integers joined by ``x``.
        """
        parts = str(text).lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"camera size must be WIDTHxHEIGHT in pixels, e.g. 640x480, got {text!r}")
        return int(parts[0]), int(parts[1])


def fused_spec(spec: ModelSpec, config: FusedIOConfig) -> ModelSpec:
    """The contract of the fused model: ``spec`` with the fused input fields set.

    Raises:
        ModelSpecError: ``spec`` is already fused, not a 3-channel depth model, or asks for an
            output at camera resolution its kind cannot have.
    """
    if spec.fused:
        raise ModelSpecError(f"model '{spec.name}' already has its pre-processing in the graph")
    if not spec.is_depth or spec.input_channels != 3:
        raise ModelSpecError(f"fused IO is for 3-channel depth models, not {spec.output_kind} with {spec.input_channels} channels")
    return replace(
        spec, input_format="uint8_camera", fused_width_px=config.camera_width_px,
        fused_height_px=config.camera_height_px, fused_color_order=config.color_order,
        fused_aspect=config.aspect, output_at_camera_resolution=config.output_at_camera_resolution,
    )


def _const(helper: Any, name: str, array: np.ndarray) -> Any:
    from onnx import numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def _opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _rename_input(graph: Any, old: str, new: str) -> None:
    """Every top-level node input ``old`` -> ``new`` (the network's input becomes an inner tensor)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _rename_output(graph: Any, old: str, new: str) -> None:
    """The node producing graph output ``old`` now produces ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def _pre_nodes(helper: Any, spec: ModelSpec, config: FusedIOConfig, net_input: str) -> list[Any]:
    """uint8 (1, H, W, 3) ``spec.input_name`` -> the normalised network input ``net_input``."""
    from onnx import TensorProto

    p = _PREFIX
    nodes = [
        helper.make_node("Cast", [spec.input_name], [p + "float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", [p + "float"], [p + "nchw"], perm=[0, 3, 1, 2]),
    ]
    x = p + "nchw"
    if config.color_order != spec.color_order:  # rgb <-> bgr: the reversed channels
        nodes += [_const(helper, p + "order", np.array([2, 1, 0], np.int64)),
                  helper.make_node("Gather", [x, p + "order"], [p + "ordered"], axis=1)]
        x = p + "ordered"
    window = model_window(spec, config.camera_width_px, config.camera_height_px, config.aspect)
    if not window.is_full:
        nodes += [
            _const(helper, p + "crop_starts", np.array([window.y0, window.x0], np.int64)),
            _const(helper, p + "crop_ends", np.array([window.y0 + window.height, window.x0 + window.width], np.int64)),
            _const(helper, p + "crop_axes", np.array([2, 3], np.int64)),
            helper.make_node("Slice", [x, p + "crop_starts", p + "crop_ends", p + "crop_axes"], [p + "window"]),
        ]
        x = p + "window"
    gain = np.array([1.0 / (255.0 * s) for s in spec.std], np.float32).reshape(1, 3, 1, 1)
    bias = np.array([-m / s for m, s in zip(spec.mean, spec.std)], np.float32).reshape(1, 3, 1, 1)
    nodes += [
        _const(helper, p + "input_size", np.array([1, 3, spec.input_height, spec.input_width], np.int64)),
        helper.make_node("Resize", [x, "", "", p + "input_size"], [p + "resized"], mode="linear",
                         coordinate_transformation_mode="half_pixel", antialias=int(config.antialias),
                         exclude_outside=int(config.antialias)),
        _const(helper, p + "gain", gain),
        _const(helper, p + "bias", bias),
        helper.make_node("Mul", [p + "resized", p + "gain"], [p + "scaled"]),
    ]
    if spec.layout == "NCHW":
        nodes.append(helper.make_node("Add", [p + "scaled", p + "bias"], [net_input]))
    else:
        nodes += [helper.make_node("Add", [p + "scaled", p + "bias"], [p + "normalised"]),
                  helper.make_node("Transpose", [p + "normalised"], [net_input], perm=[0, 2, 3, 1])]
    return nodes


def _post_nodes(helper: Any, graph: Any, names: list[str], size: tuple[int, int], antialias: bool) -> list[Any]:
    """A Resize of each graph output in ``names`` (rank >= 2, last two dims (h, w)) to ``size``."""
    nodes = [_const(helper, _PREFIX + "output_size", np.array(size, np.int64))]
    outputs = {o.name: o for o in graph.output}
    for name in names:
        rank = len(outputs[name].type.tensor_type.shape.dim)
        if rank < 2:
            raise ModelError(f"output {name!r} has rank {rank}; a map needs at least 2 dims to be resized")
        inner = _PREFIX + name + "_net"
        _rename_output(graph, name, inner)
        nodes.append(helper.make_node("Resize", [inner, "", "", _PREFIX + "output_size"], [name], mode="linear",
                                      coordinate_transformation_mode="half_pixel", antialias=int(antialias),
                                      exclude_outside=int(antialias), axes=[rank - 2, rank - 1]))
        dims = outputs[name].type.tensor_type.shape.dim
        dims[rank - 2].Clear()
        dims[rank - 2].dim_value = size[0]
        dims[rank - 1].Clear()
        dims[rank - 1].dim_value = size[1]
    return nodes


def fuse_io(model: Any, spec: ModelSpec, config: FusedIOConfig) -> tuple[Any, ModelSpec]:
    """An ONNX model with pre-processing (and optionally the resize back) in its graph.

    Args:
        model: an ``onnx.ModelProto`` of an unfused depth model (opset >= 18) with one float
            input named ``spec.input_name`` of the spec's shape; it is not modified.
        spec: its contract.
        config: the camera the fused model is for.

    Returns:
        (the fused ModelProto with :func:`fused_spec` embedded in its metadata, that spec).

    Raises:
        ModelError: the model's opset is below :data:`MIN_FUSED_OPSET`, its input is not the
            spec's, or the fused graph fails the ONNX checker.
        ModelSpecError: see :func:`fused_spec`.
    """
    import onnx
    from onnx import TensorProto, helper

    from depth_ros.inference.onnx_export import embed_spec

    new_spec = fused_spec(spec, config)
    opset = _opset(model)
    if opset < MIN_FUSED_OPSET:
        raise ModelError(f"model '{spec.name}' is opset {opset}; fused IO needs opset >= {MIN_FUSED_OPSET} "
                         "(Resize antialias); re-export it at a newer opset")
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    graph = fused.graph
    inputs = [i for i in graph.input if i.name == spec.input_name]
    if len(inputs) != 1:
        raise ModelError(f"model '{spec.name}' has no input named {spec.input_name!r} (the spec's input_name)")
    net_input = _PREFIX + "net_input"
    _rename_input(graph, spec.input_name, net_input)
    graph.input.remove(inputs[0])
    graph.input.insert(0, helper.make_tensor_value_info(
        spec.input_name, TensorProto.UINT8, [1, config.camera_height_px, config.camera_width_px, 3]))
    nodes = _pre_nodes(helper, spec, config, net_input)
    if config.output_at_camera_resolution:
        window = model_window(spec, config.camera_width_px, config.camera_height_px, config.aspect)
        names = [spec.output_name] + ([spec.confidence_name] if spec.confidence_name else [])
        post = _post_nodes(helper, graph, names, (window.height, window.width), config.antialias)
    else:
        post = []
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + body + post)
    embed_spec(fused, new_spec)
    try:
        onnx.checker.check_model(fused)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"fused ONNX model is invalid: {str(exc).splitlines()[0]}") from None
    return fused, new_spec


def output_agreement(fused_out: np.ndarray, reference: np.ndarray) -> float:
    """Median relative difference ``|fused - reference| / |reference|`` over the pixels where
    ``|reference| > 1e-6``; NaN when there are none.

    Args:
        fused_out, reference: maps of the same shape (any leading singleton dims).
    """
    a = np.asarray(fused_out, np.float64).squeeze()
    b = np.asarray(reference, np.float64).squeeze()
    if a.shape != b.shape:
        raise ValueError(f"fused output {a.shape} and reference {b.shape} differ in shape")
    keep = np.abs(b) > 1e-6
    if not keep.any():
        return math.nan
    return float(np.median(np.abs(a[keep] - b[keep]) / np.abs(b[keep])))
