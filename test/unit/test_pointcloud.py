"""pointcloud: exact back-projection, layout, decimation, range limits, rgb packing."""
from __future__ import annotations

import math

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import (
    XYZRGB_DTYPE,
    XYZ_DTYPE,
    decimated_camera,
    depth_to_xyz,
    make_cloud,
    pack_rgb,
    pixel_rays,
    unpack_rgb,
)

CAM = CameraModel.from_intrinsics(640, 480, 525.0, 520.0, 319.5, 239.5)


def test_fronto_parallel_plane_at_2m_is_exact():
    depth_m = np.full((480, 640), 2.0, np.float32)
    xyz = depth_to_xyz(depth_m, CAM)
    assert xyz.shape == (480, 640, 3) and xyz.dtype == np.float32
    assert np.all(xyz[..., 2] == 2.0)
    u = np.arange(640)
    v = np.arange(480)
    np.testing.assert_allclose(xyz[0, :, 0], (u - 319.5) / 525.0 * 2.0, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(xyz[:, 0, 1], (v - 239.5) / 520.0 * 2.0, rtol=1e-6, atol=1e-7)
    # hand-computed corners: (0 - 319.5) / 525 * 2 = -1.217142857..., (479 - 239.5) / 520 * 2 = 0.921153846...
    assert xyz[0, 0, 0] == pytest.approx(-1.2171428571, rel=1e-6)
    assert xyz[479, 639, 1] == pytest.approx(0.9211538462, rel=1e-6)


def test_points_project_back_to_their_pixels():
    rng = np.random.default_rng(1)
    depth_m = rng.uniform(0.5, 20.0, (480, 640)).astype(np.float32)
    xyz = depth_to_xyz(depth_m, CAM).astype(np.float64)
    u = CAM.fx * xyz[..., 0] / xyz[..., 2] + CAM.cx
    v = CAM.fy * xyz[..., 1] / xyz[..., 2] + CAM.cy
    np.testing.assert_allclose(u, np.broadcast_to(np.arange(640), (480, 640)), atol=1e-3)
    np.testing.assert_allclose(v, np.broadcast_to(np.arange(480)[:, None], (480, 640)), atol=1e-3)


def test_invalid_and_out_of_range_depths_are_nan():
    cam = CameraModel.from_intrinsics(6, 1, 1.0, 1.0, 0.0, 0.0)
    depth_m = np.array([[np.nan, 0.0, -1.0, np.inf, 0.4, 5.0]], dtype=np.float32)
    xyz = depth_to_xyz(depth_m, cam)
    assert np.isnan(xyz[0, :4]).all() and np.isfinite(xyz[0, 4:]).all()
    limited = depth_to_xyz(depth_m, cam, min_range_m=0.5, max_range_m=4.0)
    assert np.isnan(limited).all()
    np.testing.assert_array_equal(depth_to_xyz(depth_m, cam, min_range_m=0.4, max_range_m=5.0)[0, 4:],
                                  np.array([[1.6, 0.0, 0.4], [25.0, 0.0, 5.0]], np.float32))


def test_xyz_cloud_layout():
    depth_m = np.full((480, 640), 2.0, np.float32)
    cloud = make_cloud(depth_m, CAM)
    assert cloud.dtype == XYZ_DTYPE and cloud.dtype.itemsize == 16 and cloud.shape == (480, 640)
    assert [cloud.dtype.fields[n][1] for n in "xyz"] == [0, 4, 8]
    raw = cloud.view(np.uint8).reshape(480, 640, 16)
    assert not raw[..., 12:].any()  # padding is zero, not garbage
    np.testing.assert_array_equal(cloud["z"], depth_m)


def test_xyzrgb_cloud_layout_and_packing():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    depth_m = np.full((480, 640), 2.0, np.float32)
    depth_m[10, 20] = np.nan
    cloud = make_cloud(depth_m, CAM, rgb)
    assert cloud.dtype == XYZRGB_DTYPE and cloud.dtype.itemsize == 32
    assert cloud.dtype.fields["rgb"][1] == 16
    np.testing.assert_array_equal(unpack_rgb(cloud["rgb"]), rgb)  # colour kept for invalid points too
    assert np.isnan(cloud["x"][10, 20])
    raw = cloud.view(np.uint8).reshape(480, 640, 32)
    assert not raw[..., 12:16].any() and not raw[..., 19].any() and not raw[..., 20:].any()
    # the packed value is the float whose bits are 0x00RRGGBB
    r, g, b = (int(c) for c in rgb[5, 7])
    assert cloud["rgb"][5, 7].view(np.uint32) == (r << 16) | (g << 8) | b


def test_pack_rgb_hand_value_and_round_trip():
    packed = pack_rgb(np.array([[255, 128, 1]], dtype=np.uint8))
    assert packed.dtype == np.float32 and packed.view(np.uint32)[0] == 0x00FF8001
    everything = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij") + (np.full((256, 256), 7),),
                          axis=-1).astype(np.uint8)
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(everything)), everything)


@pytest.mark.parametrize("d", [2, 3, 7])
def test_decimation_subsamples_depth_and_rgb_with_matching_intrinsics(d):
    rng = np.random.default_rng(d)
    depth_m = rng.uniform(1.0, 5.0, (480, 640)).astype(np.float32)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    cloud = make_cloud(depth_m, CAM, rgb, decimation=d)
    assert cloud.shape == (math.ceil(480 / d), math.ceil(640 / d))
    np.testing.assert_array_equal(cloud["z"], depth_m[::d, ::d])
    np.testing.assert_array_equal(unpack_rgb(cloud["rgb"]), rgb[::d, ::d])
    full = depth_to_xyz(depth_m, CAM)  # decimated point (i, j) is full-resolution pixel (d i, d j)
    np.testing.assert_allclose(cloud["x"], full[::d, ::d, 0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cloud["y"], full[::d, ::d, 1], rtol=1e-6, atol=1e-6)
    cam_d = decimated_camera(CAM, d)
    assert cam_d.size == (math.ceil(640 / d), math.ceil(480 / d))
    assert (cam_d.fx, cam_d.cx, cam_d.fy, cam_d.cy) == pytest.approx((525.0 / d, 319.5 / d, 520.0 / d, 239.5 / d))


def test_rays_are_cached_and_read_only():
    a = pixel_rays(CAM, 2)
    assert pixel_rays(CAM, 2) is a
    assert not a.flags.writeable
    assert pixel_rays(CameraModel.from_intrinsics(640, 480, 525.0, 520.0, 319.5, 239.5), 2) is a  # equal cameras share


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"depth_m": np.ones((480, 641), np.float32)}, r"must be \(H, W\) = \(480, 640\).*got \(480, 641\)"),
        ({"depth_m": np.ones((480, 640), np.uint16)}, "floating point metres"),
        ({"decimation": 0}, "decimation must be an integer >= 1"),
        ({"decimation": 1.5}, "decimation must be an integer >= 1"),
        ({"min_range_m": 5.0, "max_range_m": 1.0}, "need 0 <= min_range_m < max_range_m"),
        ({"rgb": np.ones((480, 640, 3), np.float32)}, r"rgb must be \(H, W, 3\)"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    args = {"depth_m": np.ones((480, 640), np.float32), "camera": CAM, **kwargs}
    with pytest.raises(ValueError, match=fragment):
        make_cloud(**args)
