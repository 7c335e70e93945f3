"""Pre- and post-processing inside the network graph: an exported depth model -> one that takes
the camera's uint8 image (docs/fused-io.md).

:func:`fuse_io` rewrites an ONNX model whose input is the normalised float tensor of its
:class:`ModelSpec` (``input_format`` ``float``) into one whose input is the camera image,
``(1, H, W, 3)`` uint8 at one camera resolution, in RGB or BGR order, with these nodes in front
of the network (standard ONNX, opset >= 13; the Cast first because TensorRT keeps uint8 for
network I/O only)::

    Cast(float) -> [Gather: channel order] -> [Slice: the aspect crop | Sub, Pad, Add: the pad canvas]
      -> the rows resized on the (1, 1, h, 3 w) view of the NHWC image -> Transpose(NCHW)
      -> the columns resized -> Mul(1 / (255 std)) -> Add(-mean / std)
      -> [Transpose(NHWC) for an NHWC network] -> the network

and, with ``output_at_camera_resolution``, each output the spec names (depth, confidence)
resized after it to the window's size in camera pixels.

Convention: the resizes are Pillow's bilinear filter exactly (half-pixel centres, edges to
edges, the triangle widened by the shrink factor when shrinking, border taps renormalised), as
:func:`depth_ros.core.preprocess.resize_rgb` and :func:`~depth_ros.core.postprocess.upsample`
do, built from slices and MatMuls by :mod:`depth_ros.inference.resize_graph`: in float, where
Pillow rounds a resized uint8 image to uint8 (so the network input differs by < 1 grey level).
ONNX Runtime's own ``Resize`` (``antialias=1, exclude_outside=1``) gives the same weights but
took longer than Pillow; ``FusedIOConfig(antialias=False)`` uses a plain bilinear ``Resize``
instead (no antialiasing: it aliases when shrinking). The output is resized in the kind's own
quantity, which for the kinds allowed (:data:`~depth_ros.inference.spec._CAMERA_RESOLUTION_KINDS`)
is affine in inverse depth, as the runtime's upsample of inverse depth is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from depth_ros.core.aspect import model_window
from depth_ros.errors import ModelError
from depth_ros.inference.resize_graph import resize_axis_nodes
from depth_ros.inference.spec import FUSED_ASPECTS, MAX_INPUT_PIXELS, MAX_INPUT_SIDE, ModelSpec, ModelSpecError, embed_spec

__all__ = ["FusedIOConfig", "MIN_FUSED_OPSET", "fuse_io", "fused_spec", "output_agreement"]

#: Unsqueeze with its axes as an input (opset 13); Slice with steps is opset 10.
MIN_FUSED_OPSET = 13
_PREFIX = "depth_ros_fused/"


@dataclass(frozen=True)
class FusedIOConfig:
    """What a fused graph is exported for.

    Args:
        camera_width_px, camera_height_px: the camera image size the graph takes (pixels).
        color_order: channel order of the uint8 image the runtime feeds ("rgb"; "bgr" for a
            graph that reorders itself).
        aspect: the aspect window the graph cuts before its resize: "crop" to the spec's trained
            aspect (the runtime's default policy), "pad" (the image centred in a canvas of the
            trained aspect, the bands in the model's mean colour, as the numpy path pads) or
            "stretch" (the whole image).
        output_at_camera_resolution: also resize the outputs in the graph to the window's size in
            camera pixels (the runtime then resizes nothing).
        antialias: Pillow's bilinear filter, antialiased when shrinking (the numpy path's);
            False gives one plain bilinear Resize (aliases when shrinking).
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
            raise ValueError(f"aspect must be one of {FUSED_ASPECTS}, got {self.aspect!r}")
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
    """The node producing graph output ``old`` now produces ``new`` (and nodes reading it read ``new``)."""
    _rename_input(graph, old, new)
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def _pre_nodes(helper: Any, spec: ModelSpec, config: FusedIOConfig, net_input: str) -> list[Any]:
    """uint8 (1, H, W, 3) ``spec.input_name`` -> the normalised network input ``net_input``.

    The image stays NHWC until its rows are resized, so the Transpose moves the smaller image.
    """
    from onnx import TensorProto

    p = _PREFIX
    nodes = [helper.make_node("Cast", [spec.input_name], [p + "float"], to=TensorProto.FLOAT)]
    x = p + "float"
    if config.color_order != spec.color_order:  # rgb <-> bgr: the reversed channels
        nodes += [_const(helper, p + "order", np.array([2, 1, 0], np.int64)),
                  helper.make_node("Gather", [x, p + "order"], [p + "ordered"], axis=3)]
        x = p + "ordered"
    window = model_window(spec, config.camera_width_px, config.camera_height_px, config.aspect)
    if window.is_pad:
        # the canvas in the mean colour (core.preprocess.mean_colour, here in the spec's channel
        # order, which the image has after the Gather): ONNX's Pad fills one constant, so the
        # image is shifted to put the fill at 0, padded with 0 and shifted back
        fill = np.clip(np.round(np.asarray(spec.mean, np.float64) * 255.0), 0, 255).astype(np.float32).reshape(1, 1, 1, 3)
        top, left = -window.y0, -window.x0
        bottom, right = window.height - window.image_height - top, window.width - window.image_width - left
        nodes += [
            _const(helper, p + "pad_fill", fill),
            _const(helper, p + "pads", np.array([0, top, left, 0, 0, bottom, right, 0], np.int64)),
            helper.make_node("Sub", [x, p + "pad_fill"], [p + "centred"]),
            helper.make_node("Pad", [p + "centred", p + "pads"], [p + "padded"], mode="constant"),
            helper.make_node("Add", [p + "padded", p + "pad_fill"], [p + "window"]),
        ]
        x = p + "window"
    elif not window.is_full:
        nodes += [
            _const(helper, p + "crop_starts", np.array([window.y0, window.x0], np.int64)),
            _const(helper, p + "crop_ends", np.array([window.y0 + window.height, window.x0 + window.width], np.int64)),
            _const(helper, p + "crop_axes", np.array([1, 2], np.int64)),
            helper.make_node("Slice", [x, p + "crop_starts", p + "crop_ends", p + "crop_axes"], [p + "window"]),
        ]
        x = p + "window"
    nchw = spec.layout == "NCHW"
    shape = (1, 3, 1, 1)
    gain = np.array([1.0 / (255.0 * s) for s in spec.std], np.float32).reshape(shape)
    bias = np.array([-m / s for m, s in zip(spec.mean, spec.std)], np.float32).reshape(shape)
    nodes += _resize_image(helper, x, p + "resized", (window.height, window.width), (spec.input_height, spec.input_width),
                           config.antialias)
    nodes += [_const(helper, p + "gain", gain), _const(helper, p + "bias", bias),
              helper.make_node("Mul", [p + "resized", p + "gain"], [p + "scaled"])]
    if nchw:
        nodes.append(helper.make_node("Add", [p + "scaled", p + "bias"], [net_input]))
    else:
        nodes += [helper.make_node("Add", [p + "scaled", p + "bias"], [p + "normalised"]),
                  helper.make_node("Transpose", [p + "normalised"], [net_input], perm=[0, 2, 3, 1])]
    return nodes


def _resize_image(helper: Any, x: str, out: str, size: tuple[int, int], to: tuple[int, int], antialias: bool) -> list[Any]:
    """Float (1, h, w, 3) NHWC ``x`` of ``size`` (h, w) -> (1, 3, H, W) NCHW ``out`` of ``to`` (H, W).

    ``antialias``: Pillow's filter exactly (:mod:`depth_ros.inference.resize_graph`): the rows
    resized on the (1, 1, h, 3 w) view of the NHWC image (no transpose of the large image), then
    the Transpose, then the columns. Otherwise one plain bilinear Resize (no antialias).
    """
    p = _PREFIX
    (h, w), (h_to, w_to) = size, to
    if not antialias:
        return [_const(helper, p + "input_size", np.array([1, h_to, w_to, 3], np.int64)),
                helper.make_node("Resize", [x, "", "", p + "input_size"], [p + "nhwc_resized"], mode="linear",
                                 coordinate_transformation_mode="half_pixel"),
                helper.make_node("Transpose", [p + "nhwc_resized"], [out], perm=[0, 3, 1, 2])]
    return [
        _const(helper, p + "rows_view", np.array([1, 1, h, w * 3], np.int64)),
        helper.make_node("Reshape", [x, p + "rows_view"], [p + "rows_in"]),
        *resize_axis_nodes(helper, p + "rows_in", p + "rows_out", (1, 1, h, w * 3), 2, h_to, p + "rows"),
        _const(helper, p + "nhwc_view", np.array([1, h_to, w, 3], np.int64)),
        helper.make_node("Reshape", [p + "rows_out", p + "nhwc_view"], [p + "rows_nhwc"]),
        helper.make_node("Transpose", [p + "rows_nhwc"], [p + "rows_nchw"], perm=[0, 3, 1, 2]),
        *resize_axis_nodes(helper, p + "rows_nchw", out, (1, 3, h_to, w), 3, w_to, p + "cols"),
    ]


def _post_nodes(helper: Any, graph: Any, names: list[str], size: tuple[int, int], antialias: bool) -> list[Any]:
    """Each graph output in ``names`` (h, w) map, any leading singleton dims, resized to ``size`` with
    Pillow's filter (as :func:`~depth_ros.core.postprocess.upsample`), or plain bilinear Resize
    without ``antialias``."""
    nodes = []
    outputs = {o.name: o for o in graph.output}
    for name in names:
        dims = outputs[name].type.tensor_type.shape.dim
        shape = [d.dim_value for d in dims]
        if len(shape) < 2 or any(v <= 0 for v in shape) or any(v != 1 for v in shape[:-2]):
            raise ModelError(f"output {name!r} has shape {shape}; resizing it needs a fixed (..., 1, h, w) map")
        h, w = shape[-2:]
        inner, q = _PREFIX + name + "_net", _PREFIX + name + "/"
        _rename_output(graph, name, inner)
        back = np.array(shape[:-2] + [size[0], size[1]], np.int64)
        nodes += [_const(helper, q + "map4", np.array([1, 1, h, w], np.int64)), _const(helper, q + "back", back),
                  helper.make_node("Reshape", [inner, q + "map4"], [q + "in"])]
        if antialias:
            nodes += resize_axis_nodes(helper, q + "in", q + "rows", (1, 1, h, w), 2, size[0], q + "rows")
            nodes += resize_axis_nodes(helper, q + "rows", q + "out", (1, 1, size[0], w), 3, size[1], q + "cols")
        else:
            nodes += [_const(helper, q + "size", np.array([1, 1, size[0], size[1]], np.int64)),
                      helper.make_node("Resize", [q + "in", "", "", q + "size"], [q + "out"], mode="linear",
                                       coordinate_transformation_mode="half_pixel")]
        nodes.append(helper.make_node("Reshape", [q + "out", q + "back"], [name]))
        dims[-2].Clear()
        dims[-2].dim_value = size[0]
        dims[-1].Clear()
        dims[-1].dim_value = size[1]
    return nodes


def fuse_io(model: Any, spec: ModelSpec, config: FusedIOConfig) -> tuple[Any, ModelSpec]:
    """An ONNX model with pre-processing (and optionally the resize back) in its graph.

    Args:
        model: an ``onnx.ModelProto`` of an unfused depth model (opset >= 13) with one float
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

    new_spec = fused_spec(spec, config)
    opset = _opset(model)
    if opset < MIN_FUSED_OPSET:
        raise ModelError(f"model '{spec.name}' is opset {opset}; fused IO needs opset >= {MIN_FUSED_OPSET} "
                         "(Unsqueeze axes input); re-export it at a newer opset")
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
