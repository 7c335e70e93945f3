"""The cloud's one-multiply fill (issue 19 item 1) against the back-projection written out by hand:
every invalid kind of depth, both layouts, decimation, float64 depth; padding bytes stay zero."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import depth_to_xyz, make_cloud, pixel_rays

CAM = CameraModel.from_intrinsics(37, 23, 30.0, 28.0, 18.0, 11.5)


def _depth(dtype: type) -> np.ndarray:
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.05, 12.0, (CAM.height, CAM.width)).astype(dtype)
    depth[0, :5] = [np.nan, np.inf, -np.inf, -1.0, 0.0]
    depth[1, :2] = [0.099, 10.001]  # just outside [0.1, 10]
    return depth


def _by_hand(depth: np.ndarray, d: int) -> np.ndarray:
    z = depth[::d, ::d].astype(np.float64)
    v, u = np.mgrid[0:CAM.height:d, 0:CAM.width:d].astype(np.float64)
    xyz = np.stack([(u - CAM.cx) / CAM.fx * z, (v - CAM.cy) / CAM.fy * z, z], axis=-1)
    xyz[~((z >= 0.1) & (z <= 10.0))] = np.nan
    return xyz


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("with_rgb", [False, True])
def test_cloud_is_the_back_projection_with_nan_for_every_invalid_depth(dtype: type, d: int, with_rgb: bool) -> None:
    depth = _depth(dtype)
    rgb = np.random.default_rng(4).integers(0, 255, (CAM.height, CAM.width, 3), dtype=np.uint8) if with_rgb else None
    cloud = make_cloud(depth, CAM, rgb=rgb, decimation=d, min_range_m=0.1, max_range_m=10.0)
    want = _by_hand(depth, d)
    got = np.stack([cloud[n] for n in "xyz"], axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # NaN where want is NaN
    assert np.isnan(got[0, 0]).all()
    raw = np.frombuffer(cloud.tobytes(), np.uint8).reshape(cloud.shape + (cloud.dtype.itemsize,))
    assert not raw[..., 12:16].any()  # padding after z, also behind NaN points
    if with_rgb:
        assert not raw[..., 20:].any()
        np.testing.assert_array_equal(raw[..., 16:19], rgb[::d, ::d, ::-1])  # B, G, R bytes
    np.testing.assert_allclose(depth_to_xyz(depth, CAM, d, 0.1, 10.0), want, rtol=1e-6, atol=1e-6)


def test_pixel_rays_stay_the_cameras_rays() -> None:
    rays = pixel_rays(CAM)
    np.testing.assert_array_equal(rays, CAM.pixel_rays())
    assert not rays.flags.writeable and pixel_rays(CAM) is rays
