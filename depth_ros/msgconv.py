"""Conversions between ROS messages and numpy arrays (pure Python, no ROS import).

Every function is duck-typed on the message's attributes, so it takes rclpy messages and
rosbags typestore messages alike (their field names are the same). ``data`` may be
``bytes``, ``array.array``, ``memoryview`` or a ``np.ndarray``.

Messages are untrusted input: sizes are checked against the data *before* anything is
allocated, and every malformed message raises :class:`depth_ros.errors.InputError` with a
one-line message naming what was expected and what was found. Arrays returned are fresh and
C-contiguous (they never alias the message's buffer).

Conventions (REP 117/118): depth is camera-frame z in metres, ``32FC1`` with NaN where
invalid; ``16UC1`` is millimetres with 0 invalid. Point clouds follow sensor_msgs/PointField.

Why one module of ~550 lines: one converter per message kind (colour images in five encodings,
compressed images, depth images, CameraInfo, PointCloud2 in both directions) sharing the size
checks made before any allocation, so that every decode of untrusted data is in one file.
"""
from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.errors import InputError

__all__ = [
    "COLOR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "MAX_COMPRESSED_PIXELS",
    "POINTFIELD_DATATYPES",
    "camera_info_to_model",
    "check_image_matches_camera",
    "compressed_to_rgb",
    "depth_image_fields",
    "image_to_depth_m",
    "image_to_rgb",
    "ns_to_stamp",
    "pointcloud2_fields",
    "pointcloud2_to_xyz",
    "stamp_to_ns",
]

# encoding -> (channels, sample dtype, channel indices that give R, G, B)
COLOR_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
# encoding -> sample dtype (little-endian; big-endian messages are byte-swapped on read)
DEPTH_ENCODINGS: dict[str, np.dtype] = {
    "32FC1": np.dtype("<f4"),
    "16UC1": np.dtype("<u2"),
}
# sensor_msgs/PointField datatype constants
POINTFIELD_DATATYPES: dict[int, np.dtype] = {
    1: np.dtype("i1"),  # INT8
    2: np.dtype("u1"),  # UINT8
    3: np.dtype("<i2"),  # INT16
    4: np.dtype("<u2"),  # UINT16
    5: np.dtype("<i4"),  # INT32
    6: np.dtype("<u4"),  # UINT32
    7: np.dtype("<f4"),  # FLOAT32
    8: np.dtype("<f8"),  # FLOAT64
}
_DATATYPE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in POINTFIELD_DATATYPES.items()}

#: Decoded-size cap for CompressedImage (pixels): a few bytes of PNG can claim gigapixels.
MAX_COMPRESSED_PIXELS = 64 * 1024 * 1024
_MAX_SIDE_PX = 1 << 15  # same plausibility limit as CameraModel
_COMPRESSED_FORMATS = ("JPEG", "PNG")


# -- helpers ------------------------------------------------------------------------------
def _byte_view(data: Any, what: str) -> np.ndarray:
    """``data`` as a 1-D uint8 array, without copying when the buffer allows it."""
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8 and data.ndim == 1:
            return data
        if not data.flags.c_contiguous:
            raise InputError(f"{what}: data array must be C-contiguous")
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):  # slow path (hand-made messages); len was checked first
        try:
            return np.asarray(data, dtype=np.uint8)
        except (OverflowError, ValueError, TypeError):
            raise InputError(f"{what}: data list must hold integers 0..255") from None
    try:
        view = memoryview(data)
    except TypeError:
        raise InputError(f"{what}: data must be bytes-like, got {type(data).__name__}") from None
    if not view.c_contiguous:
        raise InputError(f"{what}: data buffer must be C-contiguous")
    return np.frombuffer(view.cast("B"), dtype=np.uint8)


def _data_len(data: Any) -> int:
    """Length of ``data`` in bytes, without materialising it."""
    if isinstance(data, np.ndarray):
        return int(data.nbytes)
    if isinstance(data, (list, tuple)):
        return len(data)
    try:
        return memoryview(data).nbytes
    except TypeError:
        raise InputError(f"data must be bytes-like, got {type(data).__name__}") from None


def _int_field(msg: Any, name: str, what: str) -> int:
    try:
        value = getattr(msg, name)
    except AttributeError:
        raise InputError(f"{what}: message has no field '{name}'") from None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what}: field '{name}' must be an integer, got {type(value).__name__}")
    return int(value)


def _image_samples(msg: Any, channels: int, sample: np.dtype, what: str) -> np.ndarray:
    """(H, W, C) array of ``sample`` viewing ``msg.data`` (no copy), all sizes checked.

    Row padding (``step`` > width * bytes per pixel) is skipped by striding. ``step`` must be
    a multiple of the sample size (as cv_bridge requires), and ``len(data)`` must equal
    ``step * height`` exactly: a mismatch means a wrong encoding or a truncated message.
    """
    height = _int_field(msg, "height", what)
    width = _int_field(msg, "width", what)
    step = _int_field(msg, "step", what)
    encoding = str(msg.encoding)
    if height <= 0 or width <= 0:
        raise InputError(f"{what}: image has zero size ({width}x{height})")
    if height > _MAX_SIDE_PX or width > _MAX_SIDE_PX:
        raise InputError(f"{what}: image size {width}x{height} is implausible (max {_MAX_SIDE_PX} px per side)")
    pixel_bytes = channels * sample.itemsize
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise InputError(
            f"{what}: step {step} is smaller than width * bytes per pixel = {width} * {pixel_bytes} = {row_bytes} "
            f"for {encoding}"
        )
    if step % sample.itemsize:
        raise InputError(
            f"{what}: step {step} is not a multiple of the {sample.itemsize}-byte sample size of {encoding} "
            "(odd row padding)"
        )
    n_bytes = _data_len(msg.data)
    if n_bytes != step * height:
        raise InputError(
            f"{what}: data has {n_bytes} bytes, expected step * height = {step} * {height} = {step * height} "
            f"for a {width}x{height} {encoding} image"
        )
    big = bool(msg.is_bigendian) and sample.itemsize > 1
    dtype = sample.newbyteorder(">") if big else sample
    raw = _byte_view(msg.data, what)
    return np.ndarray(
        shape=(height, width, channels),
        dtype=dtype,
        buffer=raw,
        strides=(step, pixel_bytes, sample.itemsize),
    )


# -- colour images ------------------------------------------------------------------------
def image_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image (rgb8, bgr8, mono8, rgba8, bgra8) as RGB.

    Args:
        msg: an Image message (rclpy or rosbags); ``step`` row padding is honoured.

    Returns:
        (H, W, 3) uint8 RGB, fresh and C-contiguous (alpha dropped, mono replicated).

    Raises:
        InputError: unknown encoding, zero size, ``step`` too small, data length wrong.
    """
    encoding = str(getattr(msg, "encoding", ""))
    if encoding not in COLOR_ENCODINGS:
        raise InputError(
            f"Image: unsupported encoding '{encoding}' for a colour image (supported: {', '.join(COLOR_ENCODINGS)})"
        )
    channels, order = COLOR_ENCODINGS[encoding]
    view = _image_samples(msg, channels, np.dtype(np.uint8), "Image")
    rgb = np.empty(view.shape[:2] + (3,), dtype=np.uint8)
    if encoding == "rgb8":
        rgb[...] = view
    else:
        for dst, src in enumerate(order):
            rgb[..., dst] = view[..., src]
    return rgb


def compressed_to_rgb(msg: Any, max_pixels: int = MAX_COMPRESSED_PIXELS) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG or PNG colour/grey) as RGB, decoded by Pillow.

    The decoded size is read from the header and checked against ``max_pixels`` before any
    pixel is decoded (decompression bombs). ``compressedDepth`` payloads are refused.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        InputError: empty data, a format Pillow cannot decode (or not JPEG/PNG), a truncated
            stream, a non-colour pixel mode (16-bit / float), or too many pixels.
    """
    from PIL import Image as PILImage  # only the compressed path needs Pillow

    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower():
        raise InputError(f"CompressedImage: format '{fmt}' is a compressed depth image, not a colour image")
    n_bytes = _data_len(msg.data)
    if n_bytes == 0:
        raise InputError("CompressedImage: data is empty")
    stream = io.BytesIO(_byte_view(msg.data, "CompressedImage"))
    try:
        with PILImage.open(stream, formats=_COMPRESSED_FORMATS) as image:
            width, height = image.size
            if width <= 0 or height <= 0:
                raise InputError(f"CompressedImage: image has zero size ({width}x{height})")
            if width * height > max_pixels:
                raise InputError(
                    f"CompressedImage: {image.format} claims {width}x{height} = {width * height} pixels, "
                    f"more than the cap of {max_pixels} (decompression bomb?)"
                )
            if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr", "1"):
                raise InputError(
                    f"CompressedImage: {image.format} pixel mode '{image.mode}' is not a colour or 8-bit grey image"
                )
            image.draft("RGB", (width, height))  # JPEG: decode straight to RGB, full size
            rgb = np.asarray(image.convert("RGB"))
    except InputError:
        raise
    except PILImage.DecompressionBombError as exc:
        raise InputError(f"CompressedImage: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports unknown formats as UnidentifiedImageError (an OSError) and
        # truncated streams as OSError. The former's text names the BytesIO object (an address
        # that differs per message), which says nothing to the user.
        why = "not a JPEG or PNG stream" if isinstance(exc, PILImage.UnidentifiedImageError) else str(exc)
        raise InputError(
            f"CompressedImage: cannot decode format '{fmt}' ({len(stream.getbuffer())} bytes) as JPEG/PNG: {why}"
        ) from None
    if rgb.shape != (height, width, 3):  # a lying header: decoded size differs
        raise InputError(f"CompressedImage: decoded shape {rgb.shape} does not match header size {width}x{height}")
    return np.ascontiguousarray(rgb)


# -- depth images -------------------------------------------------------------------------
def image_to_depth_m(msg: Any) -> np.ndarray:
    """A depth sensor_msgs/Image as metres.

    Args:
        msg: Image with encoding ``32FC1`` (metres) or ``16UC1`` (millimetres); ``step`` and
            ``is_bigendian`` are honoured.

    Returns:
        (H, W) float32 metres, NaN where invalid (16UC1 zeros; 32FC1 NaN, +-Inf, <= 0).
    """
    encoding = str(getattr(msg, "encoding", ""))
    if encoding not in DEPTH_ENCODINGS:
        raise InputError(
            f"Image: unsupported encoding '{encoding}' for a depth image (supported: {', '.join(DEPTH_ENCODINGS)})"
        )
    view = _image_samples(msg, 1, DEPTH_ENCODINGS[encoding], "depth Image")[..., 0]
    if encoding == "16UC1":
        depth_m = view.astype(np.float32)
        invalid = depth_m == 0
        depth_m *= np.float32(1e-3)
    else:
        depth_m = view.astype(np.float32)  # native byte order, fresh
        with np.errstate(invalid="ignore"):
            invalid = ~(np.isfinite(depth_m) & (depth_m > 0))
    depth_m[invalid] = np.nan
    return depth_m


def _depth_out(out: Any, shape: tuple[int, ...], sample: np.dtype) -> np.ndarray:
    """``out`` (a writable buffer of exactly ``shape`` samples) as an array of that shape."""
    try:
        view = np.frombuffer(out, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise InputError(f"depth image out must be a writable contiguous buffer, got {type(out).__name__}: {exc}") from None
    need = int(np.prod(shape)) * sample.itemsize
    if view.nbytes != need or not view.flags.writeable:
        raise InputError(f"depth image out must be a writable buffer of {need} bytes, got "
                         f"{'a read-only ' if not view.flags.writeable else ''}{view.nbytes} bytes")
    return view.view(sample).reshape(shape)


def depth_image_fields(depth_m: np.ndarray, encoding: str = "32FC1", out: Any = None) -> dict[str, Any]:
    """The fields of a depth sensor_msgs/Image (everything but the header).

    Args:
        depth_m: (H, W) float metres, NaN (or any non-finite / <= 0 value) invalid.
        encoding: ``32FC1`` (metres, non-finite values written as NaN) or ``16UC1``
            (millimetres, rounded to nearest, 0 = invalid, clipped to 65535).
        out: None, or a writable buffer of exactly the image's bytes (H W 4 for 32FC1, H W 2
            for 16UC1; e.g. the message's reused payload) that the samples are written into:
            ``data`` is then a view of it.

    Returns:
        dict with height, width, encoding, is_bigendian (0), step and data (1-D np.uint8,
        little-endian samples, no row padding).

    Raises:
        InputError: not a non-empty 2-D float array, an unknown encoding, or ``out`` not
            a writable buffer of the image's size.
    """
    depth_m = np.asarray(depth_m)
    if depth_m.ndim != 2 or depth_m.size == 0:
        raise InputError(f"depth_m must be a non-empty (H, W) array, got shape {depth_m.shape}")
    if depth_m.dtype.kind != "f":
        raise InputError(f"depth_m must be floating point metres, got dtype {depth_m.dtype}")
    if encoding not in ("32FC1", "16UC1"):
        raise InputError(f"depth encoding must be '32FC1' or '16UC1', got '{encoding}'")
    sample = np.dtype("<f4" if encoding == "32FC1" else "<u2")
    target = None if out is None else _depth_out(out, depth_m.shape, sample)
    if encoding == "32FC1":
        if target is None:
            target = depth_m.astype(sample, copy=True)
        else:
            np.copyto(target, depth_m, casting="same_kind")
        # NaN is kept as it is: only infinities need rewriting
        np.copyto(target, np.float32(np.nan), where=np.isinf(target))
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            mm = np.rint(depth_m.astype(np.float64) * 1000.0)
            valid = mm > 0  # False for NaN
            mm = np.where(valid, np.minimum(mm, 65535.0), 0.0)
        if target is None:
            target = mm.astype(sample)
        else:
            np.copyto(target, mm, casting="unsafe")  # whole numbers within 0..65535
    out = target
    height, width = out.shape
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * out.itemsize,
        "data": out.reshape(-1).view(np.uint8),
    }


# -- camera info --------------------------------------------------------------------------
def camera_info_to_model(msg: Any) -> CameraModel:
    """A sensor_msgs/CameraInfo as a :class:`CameraModel` at the image's resolution.

    A region of interest (``roi`` with non-zero size smaller than the image) is applied with
    :meth:`CameraModel.cropped`; binning other than 0/1 is refused (ambiguous pixel centres).

    Raises:
        InputError: zero size, K not 9 finite numbers, K all zeros (uncalibrated),
            non-positive focal length, focal length or principal point no physical camera has
            (:func:`~depth_ros.core.camera.check_physical_intrinsics`: a field of view between
            0.01 and 179 degrees), binning, an ROI outside the image.
    """
    width = _int_field(msg, "width", "CameraInfo")
    height = _int_field(msg, "height", "CameraInfo")
    if width <= 0 or height <= 0:
        raise InputError(f"CameraInfo: image size is zero ({width}x{height}); the camera is not calibrated")
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise InputError(f"CameraInfo: k must have 9 entries, got {k.size}")
    if not np.all(np.isfinite(k)):
        raise InputError(f"CameraInfo: k has non-finite entries: {k.tolist()}")
    if not np.any(k):
        raise InputError("CameraInfo: K is all zeros: the camera is uncalibrated")
    for name in ("binning_x", "binning_y"):
        binning = int(getattr(msg, name, 0) or 0)
        if binning > 1:
            raise InputError(f"CameraInfo: {name} = {binning} is not supported (publish the binned intrinsics)")
    d = np.asarray(getattr(msg, "d", ()), dtype=np.float64).reshape(-1)
    try:
        camera = CameraModel(width, height, k.reshape(3, 3), d, str(getattr(msg, "distortion_model", "") or "plumb_bob"))
        camera.check_physical()  # on the full sensor, before any ROI crop
    except ValueError as exc:
        raise InputError(f"CameraInfo: {exc}") from None
    roi = getattr(msg, "roi", None)
    if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
        x0, y0, w, h = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
        if (x0, y0, w, h) != (0, 0, width, height):
            try:
                camera = camera.cropped(x0, y0, w, h)
            except ValueError as exc:
                raise InputError(f"CameraInfo: roi {exc}") from None
    return camera


def check_image_matches_camera(image: Any, camera: CameraModel) -> None:
    """Check that an image and a camera_info describe the same resolution.

    Args:
        image: an Image message (height/width fields) or an (H, W, ...) array (e.g. a
            decoded CompressedImage).
        camera: the paired camera model.

    Raises:
        InputError: the sizes differ (e.g. camera_info of another stream, or a resized image).
    """
    if isinstance(image, np.ndarray):
        if image.ndim < 2:
            raise InputError(f"image array must be (H, W, ...), got shape {image.shape}")
        height, width = int(image.shape[0]), int(image.shape[1])
    else:
        height, width = int(image.height), int(image.width)
    if (width, height) != camera.size:
        raise InputError(
            f"image is {width}x{height} but its camera_info is {camera.width}x{camera.height} "
            "(camera_info of another stream or resolution?)"
        )


# -- point clouds -------------------------------------------------------------------------
def pointcloud2_fields(cloud: np.ndarray) -> dict[str, Any]:
    """The fields of a sensor_msgs/PointCloud2 (everything but the header).

    Args:
        cloud: structured array, (H, W) organized or (N,) unorganized (height 1); each field a
            scalar or sub-array of one of the PointField datatypes. Padding in the dtype
            (``itemsize`` > sum of fields) is kept as ``point_step``.

    Returns:
        dict with height, width, fields (list of (name, offset, datatype, count)),
        is_bigendian (False), point_step, row_step (= point_step * width), data (1-D
        np.uint8, little-endian) and is_dense (False).
    """
    cloud = np.asarray(cloud)
    if cloud.dtype.names is None:
        raise InputError(f"cloud must be a structured array, got dtype {cloud.dtype}")
    if cloud.ndim == 1:
        cloud = cloud.reshape(1, -1)
    if cloud.ndim != 2:
        raise InputError(f"cloud must be (H, W) or (N,), got shape {cloud.shape}")
    fields = []
    le_fields = {}
    for name in cloud.dtype.names:
        sub, offset = cloud.dtype.fields[name][:2]
        base, shape = (sub.subdtype if sub.subdtype else (sub, ()))
        code = _DATATYPE_OF_KIND.get((base.kind, base.itemsize))
        if code is None or base.kind not in "iuf":
            raise InputError(f"cloud field '{name}' has dtype {sub}, not a PointField datatype")
        count = int(np.prod(shape)) if shape else 1
        fields.append((name, int(offset), code, count))
        le_fields[name] = (np.dtype((base.newbyteorder("<"), shape)) if shape else base.newbyteorder("<"), offset)
    le_dtype = np.dtype(
        {
            "names": list(le_fields),
            "formats": [f for f, _ in le_fields.values()],
            "offsets": [o for _, o in le_fields.values()],
            "itemsize": cloud.dtype.itemsize,
        }
    )
    out = np.ascontiguousarray(cloud if cloud.dtype == le_dtype else cloud.astype(le_dtype))
    height, width = out.shape
    return {
        "height": height,
        "width": width,
        "fields": fields,
        "is_bigendian": False,
        "point_step": le_dtype.itemsize,
        "row_step": le_dtype.itemsize * width,
        "data": out.reshape(-1).view(np.uint8),
        "is_dense": False,
    }


def _field_tuple(field: Any) -> tuple[str, int, int, int]:
    if isinstance(field, tuple):
        name, offset, datatype, count = field
    else:
        name, offset, datatype, count = field.name, field.offset, field.datatype, field.count
    return str(name), int(offset), int(datatype), int(count)


def pointcloud2_to_xyz(msg: Any) -> np.ndarray:
    """The finite x, y, z of a sensor_msgs/PointCloud2 of any layout, in the cloud's frame.

    Fields x, y, z may have any PointField datatype and offsets; rows may be padded
    (``row_step`` > ``point_step * width``); ``is_bigendian`` is honoured.

    Returns:
        (N, 3) float32, only points whose x, y and z are all finite. An empty cloud gives (0, 3).

    Raises:
        InputError: missing x/y/z, unknown datatype, fields outside ``point_step``,
            ``row_step`` too small, data length wrong.
    """
    what = "PointCloud2"
    height = _int_field(msg, "height", what)
    width = _int_field(msg, "width", what)
    point_step = _int_field(msg, "point_step", what)
    row_step = _int_field(msg, "row_step", what)
    if height < 0 or width < 0:
        raise InputError(f"{what}: negative size {width}x{height}")
    by_name = {}
    for field in msg.fields:
        name, offset, datatype, count = _field_tuple(field)
        by_name[name] = (offset, datatype, count)
    missing = [n for n in "xyz" if n not in by_name]
    if missing:
        raise InputError(f"{what}: no field(s) {missing} (fields: {sorted(by_name)})")
    if height * width == 0:
        return np.zeros((0, 3), dtype=np.float32)
    big = bool(msg.is_bigendian)
    formats, offsets = [], []
    for name in "xyz":
        offset, datatype, count = by_name[name]
        if datatype not in POINTFIELD_DATATYPES:
            raise InputError(f"{what}: field '{name}' has unknown datatype {datatype} (valid: 1..8)")
        dtype = POINTFIELD_DATATYPES[datatype]
        dtype = dtype.newbyteorder(">") if big else dtype
        if count != 1:
            raise InputError(f"{what}: field '{name}' has count {count}, expected 1")
        if offset < 0 or offset + dtype.itemsize > point_step:
            raise InputError(
                f"{what}: field '{name}' at offset {offset} ({dtype.itemsize} bytes) lies outside point_step {point_step}"
            )
        formats.append(dtype)
        offsets.append(offset)
    if row_step < point_step * width:
        raise InputError(
            f"{what}: row_step {row_step} is smaller than point_step * width = {point_step} * {width} = {point_step * width}"
        )
    n_bytes = _data_len(msg.data)
    if n_bytes != row_step * height:
        raise InputError(
            f"{what}: data has {n_bytes} bytes, expected row_step * height = {row_step} * {height} = {row_step * height}"
        )
    dtype = np.dtype({"names": list("xyz"), "formats": formats, "offsets": offsets, "itemsize": point_step})
    points = np.ndarray(
        shape=(height, width), dtype=dtype, buffer=_byte_view(msg.data, what), strides=(row_step, point_step)
    )
    xyz = np.empty((height * width, 3), dtype=np.float32)
    for i, name in enumerate("xyz"):
        xyz[:, i] = points[name].reshape(-1)
    return xyz[np.isfinite(xyz).all(axis=1)]


# -- time ---------------------------------------------------------------------------------
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def stamp_to_ns(stamp: Any, what: str = "stamp") -> int:
    """A builtin_interfaces/Time (``sec``, ``nanosec``) as integer nanoseconds.

    Args:
        stamp: the Time (e.g. ``msg.header.stamp``).
        what: what the stamp belongs to, for the error (e.g. the topic name).

    Raises:
        InputError: ``nanosec`` outside [0, 1e9) (a normalised Time; rclpy and rosbags both
            accept up to 2^32 - 1), or fields that are not integers.
    """
    try:
        sec, nanosec = stamp.sec, stamp.nanosec
    except AttributeError:
        raise InputError(f"{what}: header.stamp must be a builtin_interfaces/Time (sec, nanosec), got {type(stamp).__name__}") from None
    for name, value in (("sec", sec), ("nanosec", nanosec)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputError(f"{what}: header.stamp.{name} must be an integer, got {type(value).__name__}")
    sec, nanosec = int(sec), int(nanosec)
    if not 0 <= nanosec < 1_000_000_000:
        raise InputError(f"{what}: header.stamp.nanosec must be in [0, 1e9), got {nanosec}")
    return sec * 1_000_000_000 + nanosec


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """Integer nanoseconds as (sec, nanosec) with 0 <= nanosec < 1e9 (sec fits int32)."""
    if isinstance(ns, float):
        if not math.isfinite(ns):
            raise ValueError(f"stamp must be finite, got {ns}")
        ns = round(ns)
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise ValueError(f"stamp {ns} ns is outside the int32 seconds range of builtin_interfaces/Time")
    return int(sec), int(nanosec)

