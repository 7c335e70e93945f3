"""Camera image -> network input tensor, as the model's contract (ModelSpec) asks.

The node, the bag tools and training call the same :func:`preprocess`, so what is trained
is what runs.

Convention: the resize maps pixel *edges* to edges (``align_corners=False``), which is what
:meth:`CameraModel.resized` assumes; intrinsics change only through that method. The filter
is Pillow's bilinear (triangle) filter on uint8, which widens its support when shrinking
(antialiased, like ``torch.nn.functional.interpolate(..., antialias=True)``) and is plain
bilinear interpolation when enlarging. Pillow was measured faster than a vectorized numpy
resize at 640x480 -> 640x192 and 1024x320 (bench/bench_pointcloud.py).

A fused model (``spec.fused``: pre-processing inside the graph, docs/fused-io.md) gets the
camera image itself, ``(1, H, W, 3)`` uint8 (:func:`preprocess_fused`): no resize and no
normalisation here; the graph's Resize (linear, half-pixel centres, antialias) is the same
edges-to-edges triangle filter as Pillow's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_ros.core.aspect import AspectWindow, model_window
from depth_ros.core.camera import CameraModel
from depth_ros.inference.spec import ModelSpec

__all__ = [
    "Preprocessed",
    "fused_aspect_note",
    "input_window",
    "mean_colour",
    "normalize",
    "preprocess",
    "preprocess_fused",
    "preprocess_pair",
    "resize_rgb",
]


@dataclass(frozen=True)
class Preprocessed:
    """A network input and the camera it sees.

    Attributes:
        tensor: float32 ``(1, C, h, w)`` (NCHW) or ``(1, h, w, C)`` (NHWC) as the spec says;
            C = 3, or 6 for :func:`preprocess_pair`; uint8 ``(1, H, W, 3)`` camera image for a
            fused spec (:func:`preprocess_fused`).
        camera: the camera at the network input resolution (w, h).
        window: the part of the camera image the network sees (:mod:`depth_ros.core.aspect`);
            None for the whole image stretched.
    """

    tensor: np.ndarray
    camera: CameraModel
    window: AspectWindow | None = None


def _check_rgb(rgb: np.ndarray, camera: CameraModel, name: str = "rgb") -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{name} must be (H, W, 3) uint8, got shape {rgb.shape} dtype {rgb.dtype}")
    if (rgb.shape[1], rgb.shape[0]) != camera.size:
        raise ValueError(
            f"{name} is {rgb.shape[1]}x{rgb.shape[0]} but the camera is {camera.width}x{camera.height}"
        )
    return rgb


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an RGB image (edges to edges, bilinear; antialiased when shrinking).

    Args:
        rgb: (H, W, 3) uint8.
        width: output width in pixels.
        height: output height in pixels.

    Returns:
        (height, width, 3) uint8, C-contiguous (the input itself when the size already matches).
    """
    from PIL import Image

    if rgb.shape[:2] == (height, width):
        return rgb
    out = Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(out)


def normalize(rgb: np.ndarray, spec: ModelSpec, out: np.ndarray | None = None, channel_offset: int = 0) -> np.ndarray:
    """uint8 RGB -> float32 ``(x / 255 - mean) / std`` in the spec's colour order and layout.

    Args:
        rgb: (h, w, 3) uint8 RGB at the network resolution.
        spec: gives ``color_order``, ``mean``, ``std`` (in the network's channel order) and ``layout``.
        out: optional (1, C, h, w) / (1, h, w, C) float32 array to write into.
        channel_offset: first channel of ``out`` to write (3 for the source frame of a pair).

    Returns:
        ``out`` (or a new (1, 3, h, w) / (1, h, w, 3) float32 array).
    """
    h, w = rgb.shape[:2]
    if out is None:
        out = np.empty((1, 3, h, w) if spec.layout == "NCHW" else (1, h, w, 3), dtype=np.float32)
    source = (0, 1, 2) if spec.color_order == "rgb" else (2, 1, 0)
    for c, src in enumerate(source):
        # one fused multiply-add per channel: x * (1 / (255 std)) - mean / std
        gain = np.float32(1.0 / (255.0 * spec.std[c]))
        bias = np.float32(spec.mean[c] / spec.std[c])
        dst = out[0, channel_offset + c] if spec.layout == "NCHW" else out[0, :, :, channel_offset + c]
        np.multiply(rgb[..., src], gain, out=dst)
        dst -= bias
    return out


def mean_colour(spec: ModelSpec) -> np.ndarray:
    """(3,) uint8 RGB of the model's mean colour: zero after :func:`normalize` (pad bands)."""
    mean = np.asarray(spec.mean if spec.color_order == "rgb" else spec.mean[::-1], dtype=np.float64)
    return np.clip(np.round(mean * 255.0), 0, 255).astype(np.uint8)


def input_window(spec: ModelSpec, width: int, height: int, aspect: str) -> AspectWindow:
    """The window of a ``width`` x ``height`` image the model sees: :func:`model_window` under
    ``aspect``, or under the policy baked into a fused graph (``spec.fused_aspect``), whatever
    ``aspect`` says (the graph's crop cannot change at run time)."""
    return model_window(spec, width, height, spec.fused_aspect if spec.fused else aspect)


def fused_aspect_note(spec: ModelSpec, aspect: str) -> str | None:
    """What to tell the user, once, when a fused model's graph cuts another window of its camera
    than the aspect policy ``aspect`` would (None when they agree or the model is not fused)."""
    if not spec.fused:
        return None
    width, height = int(spec.fused_width_px), int(spec.fused_height_px)  # type: ignore[arg-type]
    if model_window(spec, width, height, aspect) == input_window(spec, width, height, aspect):
        return None
    return (f"model '{spec.name}' has its pre-processing in the graph with aspect '{spec.fused_aspect}' for its "
            f"{width}x{height} camera; the aspect policy '{aspect}' is not applied (export with --fuse-aspect {aspect} for it)")


def preprocess_fused(rgb: np.ndarray, camera: CameraModel, spec: ModelSpec) -> Preprocessed:
    """The camera image as the input of a fused model (``spec.fused``): no resize, no normalisation.

    Args:
        rgb: (H, W, 3) uint8 RGB at the camera resolution, which must be the one the graph was
            exported for (``spec.fused_width_px`` x ``spec.fused_height_px``).
        camera: intrinsics at (W, H).
        spec: a fused depth model's contract.

    Returns:
        :class:`Preprocessed` with the uint8 (1, H, W, 3) image in ``spec.fused_color_order``
        (a view of ``rgb`` for ``rgb``; one reversed copy for ``bgr``), the camera the network
        sees (window of ``spec.fused_aspect``, rescaled to the network input) and the window.

    Raises:
        ValueError: ``rgb`` is not uint8 (H, W, 3) of the camera, or the camera is not the size
            the graph was exported for (one line naming both sizes).
    """
    rgb = _check_rgb(rgb, camera)
    if (camera.width, camera.height) != (spec.fused_width_px, spec.fused_height_px):
        raise ValueError(
            f"frame is {camera.width}x{camera.height} but model '{spec.name}' has its pre-processing in the graph "
            f"for a {spec.fused_width_px}x{spec.fused_height_px} camera (fused_width_px, fused_height_px); "
            "export it for this camera or use the unfused model"
        )
    image = rgb if spec.fused_color_order == "rgb" else rgb[..., ::-1]
    window = input_window(spec, camera.width, camera.height, spec.fused_aspect)
    tensor = np.ascontiguousarray(image)[None]  # (1, H, W, 3) uint8; no copy for a contiguous rgb frame
    return Preprocessed(tensor, window.camera(camera).resized(spec.input_width, spec.input_height), window)


def preprocess(rgb: np.ndarray, camera: CameraModel, spec: ModelSpec, aspect: str = "stretch") -> Preprocessed:
    """Crop or pad to the trained aspect, resize and normalize one image for a depth network
    (for a fused model: :func:`preprocess_fused`, which leaves all of that to the graph).

    Args:
        rgb: (H, W, 3) uint8 RGB at the camera resolution.
        camera: intrinsics at (W, H).
        spec: the model contract (3-channel input; ``train_aspect``).
        aspect: ``stretch`` (the whole image resized as it is; training and the tools that
            feed a model its own camera), ``crop`` or ``pad`` to ``spec.train_aspect`` first
            (:func:`depth_ros.core.aspect.model_window`: only when the spec records its training
            image size; pad bands in the mean colour).

    Returns:
        :class:`Preprocessed` with a float32 (1, 3, h, w) or (1, h, w, 3) tensor, the camera of
        the window rescaled to (w, h) = (spec.input_width, spec.input_height) by
        :meth:`CameraModel.resized`, and the window.
    """
    if spec.input_channels != 3:
        raise ValueError(f"preprocess makes 3-channel input; this model takes {spec.input_channels} (use preprocess_pair)")
    if spec.fused:
        return preprocess_fused(rgb, camera, spec)
    rgb = _check_rgb(rgb, camera)
    window = model_window(spec, camera.width, camera.height, aspect)
    view = window.take(rgb, mean_colour(spec))
    small = resize_rgb(view, spec.input_width, spec.input_height)
    return Preprocessed(normalize(small, spec), window.camera(camera).resized(spec.input_width, spec.input_height), window)


def preprocess_pair(rgb_tgt: np.ndarray, rgb_src: np.ndarray, camera: CameraModel, spec: ModelSpec) -> Preprocessed:
    """Two frames stacked along channels for a pose network: ``[target, source]``.

    Args:
        rgb_tgt: (H, W, 3) uint8 RGB, the target frame (channels 0..2).
        rgb_src: (H, W, 3) uint8 RGB, the source frame (channels 3..5).
        camera: intrinsics at (W, H), shared by both frames.
        spec: the pose model's contract (``input_channels`` = 6).

    Returns:
        :class:`Preprocessed` with a float32 (1, 6, h, w) or (1, h, w, 6) tensor.
    """
    if spec.input_channels != 6:
        raise ValueError(f"preprocess_pair makes 6-channel input; this model takes {spec.input_channels}")
    rgb_tgt = _check_rgb(rgb_tgt, camera, "rgb_tgt")
    rgb_src = _check_rgb(rgb_src, camera, "rgb_src")
    h, w = spec.input_height, spec.input_width
    out = np.empty((1, 6, h, w) if spec.layout == "NCHW" else (1, h, w, 6), dtype=np.float32)
    normalize(resize_rgb(rgb_tgt, w, h), spec, out, 0)
    normalize(resize_rgb(rgb_src, w, h), spec, out, 3)
    return Preprocessed(out, camera.resized(w, h))
