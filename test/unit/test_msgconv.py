"""msgconv: message <-> array round trips and every malformed-message case."""
from __future__ import annotations

import array
import io
import struct
import tracemalloc
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage
from rosbags.typesys import Stores, get_typestore

from depth_ros import msgconv
from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import make_cloud
from depth_ros.errors import InputError

TS = get_typestore(Stores.ROS2_KILTED)
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
RbImage = TS.types["sensor_msgs/msg/Image"]
RbCameraInfo = TS.types["sensor_msgs/msg/CameraInfo"]
RbRoi = TS.types["sensor_msgs/msg/RegionOfInterest"]
RbPointCloud2 = TS.types["sensor_msgs/msg/PointCloud2"]
RbPointField = TS.types["sensor_msgs/msg/PointField"]
RbCompressed = TS.types["sensor_msgs/msg/CompressedImage"]
HEADER = Header(stamp=Time(sec=1, nanosec=2), frame_id="camera_optical_frame")

DATA_KINDS = ("bytes", "array", "memoryview", "ndarray")


def as_kind(raw: bytes, kind: str):
    if kind == "bytes":
        return raw
    if kind == "array":  # what rclpy messages carry
        return array.array("B", raw)
    if kind == "memoryview":
        return memoryview(raw)
    return np.frombuffer(raw, dtype=np.uint8).copy()  # what rosbags messages carry


def image_msg(rows: np.ndarray, encoding: str, step: int | None = None, big: bool = False, kind: str = "bytes"):
    """A duck-typed Image from (H, W[, C]) samples, each row padded to ``step`` bytes with 0xEE."""
    h, w = rows.shape[:2]
    row_bytes = rows[0].nbytes
    step = row_bytes if step is None else step
    samples = rows.astype(rows.dtype.newbyteorder(">" if big else "<"))
    raw = b"".join(samples[i].tobytes() + b"\xee" * (step - row_bytes) for i in range(h))
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(big), step=step,
                           data=as_kind(raw, kind))


RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 3


# -- colour images ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", DATA_KINDS)
@pytest.mark.parametrize("pad", [0, 3, 7])
def test_rgb8_round_trip_with_row_padding(kind, pad):
    msg = image_msg(RGB, "rgb8", step=5 * 3 + pad, kind=kind)
    out = msgconv.image_to_rgb(msg)
    np.testing.assert_array_equal(out, RGB)
    assert out.flags.c_contiguous and out.flags.writeable and out.dtype == np.uint8


@pytest.mark.parametrize(
    "encoding, make",
    [
        ("bgr8", lambda rgb: rgb[..., ::-1]),
        ("rgba8", lambda rgb: np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)),
        ("bgra8", lambda rgb: np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)),
    ],
)
def test_colour_encodings_give_rgb(encoding, make):
    samples = np.ascontiguousarray(make(RGB))
    out = msgconv.image_to_rgb(image_msg(samples, encoding, step=samples[0].nbytes + 2))
    np.testing.assert_array_equal(out, RGB)


def test_mono8_is_replicated():
    grey = np.array([[0, 10, 255]], dtype=np.uint8)
    out = msgconv.image_to_rgb(image_msg(grey, "mono8"))
    np.testing.assert_array_equal(out, [[[0, 0, 0], [10, 10, 10], [255, 255, 255]]])


def test_rosbags_image_message():
    msg = RbImage(header=HEADER, height=4, width=5, encoding="bgr8", is_bigendian=0, step=16,
                  data=np.frombuffer(image_msg(np.ascontiguousarray(RGB[..., ::-1]), "bgr8", step=16).data, np.uint8).copy())
    np.testing.assert_array_equal(msgconv.image_to_rgb(msg), RGB)


def test_output_does_not_alias_the_message_buffer():
    raw = bytearray(RGB.tobytes())
    msg = SimpleNamespace(height=4, width=5, encoding="rgb8", is_bigendian=0, step=15, data=raw)
    out = msgconv.image_to_rgb(msg)
    raw[0] = 200
    assert out[0, 0, 0] == RGB[0, 0, 0]


def test_unknown_encoding_is_refused():
    msg = image_msg(RGB, "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(InputError, match=r"unsupported encoding 'yuv422' for a colour image"):
        msgconv.image_to_rgb(msg)


def test_huge_claimed_image_is_rejected_without_allocating():
    msg = SimpleNamespace(height=100000, width=100000, encoding="rgb8", is_bigendian=0, step=300000, data=b"0123456789")
    tracemalloc.start()
    with pytest.raises(InputError, match=r"implausible"):
        msgconv.image_to_rgb(msg)
    msg.height = msg.width = 30000
    msg.step = 90000
    with pytest.raises(InputError, match=r"data has 10 bytes, expected step \* height = 90000 \* 30000"):
        msgconv.image_to_rgb(msg)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


def test_step_smaller_than_row_is_refused():
    msg = image_msg(RGB, "rgb8")
    msg.step = 14
    with pytest.raises(InputError, match=r"step 14 is smaller than width \* bytes per pixel = 5 \* 3 = 15"):
        msgconv.image_to_rgb(msg)


def test_truncated_data_is_refused():
    msg = image_msg(RGB, "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(InputError, match=r"data has 59 bytes, expected step \* height = 15 \* 4 = 60"):
        msgconv.image_to_rgb(msg)


@pytest.mark.parametrize("h, w", [(0, 5), (4, 0)])
def test_zero_size_is_refused(h, w):
    msg = SimpleNamespace(height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=b"")
    with pytest.raises(InputError, match=rf"zero size \({w}x{h}\)"):
        msgconv.image_to_rgb(msg)


# -- depth images -------------------------------------------------------------------------
def test_16uc1_millimetres_to_metres():
    mm = np.array([[0, 1000, 65535], [1, 2500, 300]], dtype=np.uint16)
    depth_m = msgconv.image_to_depth_m(image_msg(mm, "16UC1"))
    expected = np.array([[np.nan, 1.0, 65.535], [0.001, 2.5, 0.3]], dtype=np.float32)
    np.testing.assert_allclose(depth_m, expected, rtol=1e-6)
    assert depth_m.dtype == np.float32


@pytest.mark.parametrize("encoding, dtype", [("16UC1", np.uint16), ("32FC1", np.float32)])
def test_big_endian_depth_is_byte_swapped(encoding, dtype):
    values = np.array([[1000, 2000], [258, 513]], dtype=dtype)
    little = msgconv.image_to_depth_m(image_msg(values, encoding, step=2 * values.itemsize + 2 * values.itemsize))
    big = msgconv.image_to_depth_m(image_msg(values, encoding, big=True))
    np.testing.assert_array_equal(big, little)
    unit = 1e-3 if encoding == "16UC1" else 1.0
    np.testing.assert_allclose(big, values.astype(np.float64) * unit, rtol=1e-6)


def test_32fc1_invalid_values_become_nan():
    values = np.array([[1.5, np.inf, -np.inf, -1.0, 0.0, np.nan]], dtype=np.float32)
    depth_m = msgconv.image_to_depth_m(image_msg(values, "32FC1"))
    np.testing.assert_array_equal(np.isnan(depth_m), [[False, True, True, True, True, True]])
    assert depth_m[0, 0] == np.float32(1.5)


def test_odd_padding_of_multibyte_samples_is_refused():
    values = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(InputError, match=r"step 13 is not a multiple of the 4-byte sample size of 32FC1"):
        msgconv.image_to_depth_m(image_msg(values, "32FC1", step=13))


def test_colour_encoding_is_not_depth():
    with pytest.raises(InputError, match=r"unsupported encoding 'rgb8' for a depth image"):
        msgconv.image_to_depth_m(image_msg(RGB, "rgb8"))


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_32fc1_round_trip(kind):
    depth_m = np.array([[0.5, np.nan, 3.25], [10.0, 1e-3, 70.0]], dtype=np.float32)
    fields = msgconv.depth_image_fields(depth_m, "32FC1")
    assert (fields["height"], fields["width"], fields["step"], fields["is_bigendian"]) == (2, 3, 12, 0)
    assert fields["data"].dtype == np.uint8 and fields["data"].size == 24
    fields["data"] = as_kind(fields["data"].tobytes(), kind)
    np.testing.assert_array_equal(msgconv.image_to_depth_m(SimpleNamespace(**fields)), depth_m)


def test_16uc1_round_trip_rounds_clips_and_zeroes_invalid():
    depth_m = np.array([[1.2346, np.nan, 70.0, -2.0, 0.0004, np.inf]], dtype=np.float32)
    fields = msgconv.depth_image_fields(depth_m, "16UC1")
    np.testing.assert_array_equal(fields["data"].view("<u2"), [1235, 0, 65535, 0, 0, 65535])
    back = msgconv.image_to_depth_m(SimpleNamespace(**fields))
    np.testing.assert_allclose(back, [[1.235, np.nan, 65.535, np.nan, np.nan, 65.535]], rtol=1e-6)


def test_depth_fields_into_rosbags_message_and_serialized():
    depth_m = np.array([[1.0, 2.0]], dtype=np.float32)
    msg = RbImage(header=HEADER, **msgconv.depth_image_fields(depth_m))
    raw = TS.serialize_cdr(msg, RbImage.__msgtype__)
    back = TS.deserialize_cdr(raw, RbImage.__msgtype__)
    np.testing.assert_array_equal(msgconv.image_to_depth_m(back), depth_m)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
@pytest.mark.parametrize("depth_dtype", [np.float32, np.float64])
def test_depth_fields_written_into_a_buffer_are_the_same_bytes(encoding: str, depth_dtype: type) -> None:
    import array

    depth_m = np.array([[1.2346, np.nan, 70.0, -2.0], [0.0004, np.inf, -np.inf, 3.0]], dtype=depth_dtype)
    want = msgconv.depth_image_fields(depth_m, encoding)
    buf = array.array("B", b"\xff" * want["data"].nbytes)  # garbage from an earlier frame
    got = msgconv.depth_image_fields(depth_m, encoding, out=buf)
    assert bytes(buf) == want["data"].tobytes() == got["data"].tobytes()
    assert np.shares_memory(got["data"], np.frombuffer(buf, np.uint8))
    assert {k: v for k, v in got.items() if k != "data"} == {k: v for k, v in want.items() if k != "data"}
    if encoding == "32FC1":  # infinities written as NaN, into the buffer too
        assert np.isnan(np.frombuffer(buf, "<f4")[[1, 5, 6]]).all()
    for bad in (bytearray(3), bytes(want["data"].nbytes)):  # wrong size, read-only
        with pytest.raises(InputError, match="writable buffer of"):
            msgconv.depth_image_fields(depth_m, encoding, out=bad)


def test_depth_fields_reject_bad_arrays():
    with pytest.raises(InputError, match=r"got shape \(2, 2, 1\)"):
        msgconv.depth_image_fields(np.zeros((2, 2, 1), np.float32))
    with pytest.raises(InputError, match=r"'32FC1' or '16UC1', got 'mono16'"):
        msgconv.depth_image_fields(np.zeros((2, 2), np.float32), "mono16")


# -- camera info --------------------------------------------------------------------------
def camera_info(width=640, height=480, k=(500.0, 0, 320, 0, 510.0, 240, 0, 0, 1), **extra):
    return RbCameraInfo(
        header=HEADER, height=height, width=width, distortion_model="plumb_bob",
        d=np.array([0.1, -0.2, 0, 0, 0]), k=np.array(k, dtype=np.float64), r=np.eye(3).reshape(-1),
        p=np.zeros(12), binning_x=extra.get("binning_x", 0), binning_y=0,
        roi=extra.get("roi", RbRoi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)),
    )


def test_camera_info_to_model():
    cam = msgconv.camera_info_to_model(camera_info())
    assert cam.size == (640, 480) and (cam.fx, cam.fy, cam.cx, cam.cy) == (500.0, 510.0, 320.0, 240.0)
    np.testing.assert_array_equal(cam.D, [0.1, -0.2, 0, 0, 0])


def test_camera_info_roi_is_a_crop():
    roi = RbRoi(x_offset=10, y_offset=20, height=100, width=200, do_rectify=False)
    cam = msgconv.camera_info_to_model(camera_info(roi=roi))
    assert cam.size == (200, 100) and (cam.cx, cam.cy) == (310.0, 220.0)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"k": (0.0,) * 9}, "K is all zeros: the camera is uncalibrated"),
        ({"width": 0, "height": 0}, r"image size is zero \(0x0\)"),
        ({"k": (500.0, 0, 320, 0, 500.0, 240, 0, 0)}, "k must have 9 entries, got 8"),
        ({"k": (-500.0, 0, 320, 0, 500.0, 240, 0, 0, 1)}, "focal lengths must be positive"),
        ({"k": (np.nan, 0, 320, 0, 500.0, 240, 0, 0, 1)}, "k has non-finite entries"),
        ({"binning_x": 2}, "binning_x = 2 is not supported"),
    ],
)
def test_bad_camera_info_is_refused(kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        msgconv.camera_info_to_model(camera_info(**kwargs))


def test_image_and_camera_info_size_mismatch():
    cam = CameraModel.from_intrinsics(320, 240, 250, 250, 160, 120)
    with pytest.raises(InputError, match=r"image is 640x480 but its camera_info is 320x240"):
        msgconv.check_image_matches_camera(SimpleNamespace(height=480, width=640), cam)
    with pytest.raises(InputError, match=r"image is 321x240"):
        msgconv.check_image_matches_camera(np.zeros((240, 321, 3), np.uint8), cam)
    msgconv.check_image_matches_camera(np.zeros((240, 320, 3), np.uint8), cam)  # same size: no error


# -- compressed images --------------------------------------------------------------------
def encode(array_: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array_).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


SMOOTH = np.stack([*np.meshgrid(np.arange(32) * 8, np.arange(24) * 10, indexing="xy"), np.full((24, 32), 128)],
                  axis=-1).astype(np.uint8)


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_png_round_trip_is_exact(kind):
    msg = RbCompressed(header=HEADER, format="rgb8; png compressed rgb8", data=np.zeros(0, np.uint8))
    msg = SimpleNamespace(format=msg.format, data=as_kind(encode(SMOOTH, "PNG"), kind))
    np.testing.assert_array_equal(msgconv.compressed_to_rgb(msg), SMOOTH)


def test_jpeg_decodes_close_to_the_original():
    msg = RbCompressed(header=HEADER, format="jpeg",
                       data=np.frombuffer(encode(SMOOTH, "JPEG", quality=95), np.uint8).copy())
    out = msgconv.compressed_to_rgb(msg)
    assert out.shape == SMOOTH.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - SMOOTH).mean() < 3.0


def test_grey_png_is_replicated():
    grey = SMOOTH[..., 0]
    out = msgconv.compressed_to_rgb(SimpleNamespace(format="png", data=encode(grey, "PNG")))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))


def _forged_png(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR claims width x height (CRC fixed up)."""
    png = bytearray(encode(np.zeros((1, 1), np.uint8), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(png[24:29])
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(png)


@pytest.mark.parametrize(
    "fmt, data, fragment",
    [
        ("jpeg", b"", "data is empty"),
        ("jpeg", b"not an image at all", "cannot decode format 'jpeg'"),
        ("png", encode(SMOOTH, "PNG")[:60], "cannot decode format 'png'"),
        ("bmp", encode(SMOOTH, "BMP"), "cannot decode format 'bmp'"),
        ("png", encode(np.full((4, 4), 1000, np.uint16), "PNG"), "pixel mode 'I;16'"),
        ("16UC1; compressedDepth png", b"xx", "compressed depth image, not a colour image"),
        ("png", _forged_png(9000, 9000), "81000000 pixels, more than the cap"),
    ],
)
def test_bad_compressed_images_are_refused(fmt, data, fragment):
    with pytest.raises(InputError, match=fragment):
        msgconv.compressed_to_rgb(SimpleNamespace(format=fmt, data=data))


def test_pixel_cap_is_a_parameter():
    with pytest.raises(InputError, match=r"32x24 = 768 pixels, more than the cap of 700"):
        msgconv.compressed_to_rgb(SimpleNamespace(format="png", data=encode(SMOOTH, "PNG")), max_pixels=700)


# -- point clouds -------------------------------------------------------------------------
CAM = CameraModel.from_intrinsics(4, 3, 2.0, 2.0, 1.5, 1.0)
DEPTH = np.array([[1.0, 2.0, np.nan, 4.0], [1.5, 2.5, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0]], dtype=np.float32)


def test_pointcloud2_fields_layout():
    rgb = np.zeros((3, 4, 3), np.uint8)
    fields = msgconv.pointcloud2_fields(make_cloud(DEPTH, CAM, rgb))
    assert fields["fields"] == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 16, 7, 1)]
    assert (fields["height"], fields["width"], fields["point_step"], fields["row_step"]) == (3, 4, 32, 128)
    assert fields["is_dense"] is False and fields["is_bigendian"] is False
    assert fields["data"].dtype == np.uint8 and fields["data"].size == 3 * 128


def to_rosbags_cloud(fields: dict) -> object:
    pf = [RbPointField(name=n, offset=o, datatype=t, count=c) for n, o, t, c in fields["fields"]]
    return RbPointCloud2(header=HEADER, **{**fields, "fields": pf})


def test_pointcloud2_round_trip_through_rosbags_cdr():
    cloud = make_cloud(DEPTH, CAM)
    msg = to_rosbags_cloud(msgconv.pointcloud2_fields(cloud))
    back = TS.deserialize_cdr(TS.serialize_cdr(msg, RbPointCloud2.__msgtype__), RbPointCloud2.__msgtype__)
    xyz = msgconv.pointcloud2_to_xyz(back)
    expected = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1).reshape(-1, 3)
    expected = expected[np.isfinite(expected).all(axis=1)]
    assert xyz.shape == (11, 3)
    np.testing.assert_array_equal(xyz, expected)


@pytest.mark.parametrize("big", [False, True])
def test_pointcloud2_any_layout_with_row_padding(big):
    # float64 z first, float32 x, int16 y, 3 bytes of point padding, 5 bytes of row padding
    e = ">" if big else "<"
    dtype = np.dtype({"names": ["z", "x", "y"], "formats": [e + "f8", e + "f4", e + "i2"],
                      "offsets": [0, 8, 12], "itemsize": 17})
    pts = np.zeros((2, 2), dtype)
    pts["x"], pts["y"], pts["z"] = [[1, 2], [3, np.nan]], [[-1, -2], [-3, -4]], [[0.5, 1.5], [2.5, 3.5]]
    raw = b"".join(pts[i].tobytes() + b"\0" * 5 for i in range(2))
    fields = [SimpleNamespace(name="z", offset=0, datatype=8, count=1),
              SimpleNamespace(name="x", offset=8, datatype=7, count=1),
              SimpleNamespace(name="y", offset=12, datatype=3, count=1)]
    msg = SimpleNamespace(height=2, width=2, fields=fields, is_bigendian=big, point_step=17, row_step=39,
                          data=array.array("B", raw))
    np.testing.assert_array_equal(msgconv.pointcloud2_to_xyz(msg), [[1, -1, 0.5], [2, -2, 1.5], [3, -3, 2.5]])


def test_empty_cloud_gives_no_points():
    msg = SimpleNamespace(height=1, width=0, fields=[("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)],
                          is_bigendian=False, point_step=16, row_step=0, data=b"")
    assert msgconv.pointcloud2_to_xyz(msg).shape == (0, 3)


def _xyz_msg(**overrides):
    fields = msgconv.pointcloud2_fields(make_cloud(DEPTH, CAM))
    ns = SimpleNamespace(**fields)
    for key, value in overrides.items():
        setattr(ns, key, value)
    return ns


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"fields": [("x", 0, 7, 1), ("y", 4, 7, 1)]}, r"no field\(s\) \['z'\]"),
        ({"fields": [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 9, 1)]}, "field 'z' has unknown datatype 9"),
        ({"fields": [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 14, 7, 1)]}, "field 'z' at offset 14 .* outside point_step 16"),
        ({"fields": [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 2)]}, "field 'z' has count 2"),
        ({"row_step": 60}, r"row_step 60 is smaller than point_step \* width = 16 \* 4 = 64"),
        ({"data": b"\0" * 10}, r"data has 10 bytes, expected row_step \* height = 64 \* 3 = 192"),
        ({"height": 100000, "width": 100000, "row_step": 1600000}, "data has 192 bytes"),
    ],
)
def test_bad_pointcloud2_is_refused(overrides, fragment):
    with pytest.raises(InputError, match=fragment):
        msgconv.pointcloud2_to_xyz(_xyz_msg(**overrides))


def test_pointcloud2_fields_refuses_plain_arrays():
    with pytest.raises(InputError, match="structured array"):
        msgconv.pointcloud2_fields(np.zeros((2, 3), np.float32))


def test_pointcloud2_fields_converts_big_endian_clouds():
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": [">f4"] * 3, "offsets": [0, 4, 8], "itemsize": 12})
    cloud = np.zeros(2, dtype)
    cloud["x"] = [1.0, 2.0]
    fields = msgconv.pointcloud2_fields(cloud)
    assert (fields["height"], fields["width"]) == (1, 2)
    np.testing.assert_array_equal(fields["data"][:4].view("<f4"), [1.0])


# -- stamps -------------------------------------------------------------------------------
@pytest.mark.parametrize("ns", [0, 1, 1_700_000_000_123_456_789, -1, -1_500_000_000])
def test_stamp_round_trip(ns):
    sec, nanosec = msgconv.ns_to_stamp(ns)
    assert 0 <= nanosec < 1_000_000_000
    assert msgconv.stamp_to_ns(SimpleNamespace(sec=sec, nanosec=nanosec)) == ns
    assert msgconv.stamp_to_ns(Time(sec=sec, nanosec=nanosec)) == ns


def test_stamp_values():
    assert msgconv.ns_to_stamp(-1) == (-1, 999_999_999)
    assert msgconv.stamp_to_ns(HEADER.stamp) == 1_000_000_002
    with pytest.raises(InputError, match=r"nanosec must be in \[0, 1e9\)"):
        msgconv.stamp_to_ns(SimpleNamespace(sec=0, nanosec=1_000_000_000))
    with pytest.raises(ValueError, match="int32"):
        msgconv.ns_to_stamp(1 << 62)


def test_list_data_is_accepted_and_checked():
    msg = image_msg(RGB, "rgb8")
    msg.data = list(msg.data)
    np.testing.assert_array_equal(msgconv.image_to_rgb(msg), RGB)
    msg.data[0] = 300
    with pytest.raises(InputError, match="data list must hold integers 0..255"):
        msgconv.image_to_rgb(msg)


def test_rclpy_messages_convert_like_rosbags_ones():
    # message objects only (no ROS graph): rclpy carries uint8[] as array.array, k as ndarray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

    rgb_msg = Image(height=4, width=5, encoding="rgb8", is_bigendian=0, step=16,
                    data=array.array("B", image_msg(RGB, "rgb8", step=16).data))
    np.testing.assert_array_equal(msgconv.image_to_rgb(rgb_msg), RGB)
    depth_m = np.array([[1.25, np.nan], [3.0, 0.5]], np.float32)
    f = msgconv.depth_image_fields(depth_m, "16UC1")
    depth_msg = Image(**{**f, "data": array.array("B", f["data"].tobytes())})
    np.testing.assert_allclose(msgconv.image_to_depth_m(depth_msg), depth_m)
    info = CameraInfo(width=640, height=480, k=[500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0])
    assert msgconv.camera_info_to_model(info).fy == 510.0
    with pytest.raises(InputError, match="K is all zeros"):
        msgconv.camera_info_to_model(CameraInfo(width=640, height=480))
    cloud = make_cloud(DEPTH, CAM, np.zeros((3, 4, 3), np.uint8))
    f = msgconv.pointcloud2_fields(cloud)
    pc_msg = PointCloud2(**{**f, "fields": [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in f["fields"]],
                            "data": array.array("B", f["data"].tobytes())})
    assert msgconv.pointcloud2_to_xyz(pc_msg).shape == (11, 3)
