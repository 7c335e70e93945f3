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


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("with_rgb", [False, True])
def test_cloud_written_into_a_buffer_is_the_same_cloud_and_a_view_of_it(d: int, with_rgb: bool) -> None:
    import array

    from depth_ros.core.pointcloud import cloud_nbytes

    depth = _depth(np.float32)
    rgb = np.random.default_rng(5).integers(0, 255, (CAM.height, CAM.width, 3), dtype=np.uint8) if with_rgb else None
    want = make_cloud(depth, CAM, rgb=rgb, decimation=d, min_range_m=0.1, max_range_m=10.0)
    buf = array.array("B", bytes(cloud_nbytes(CAM, rgb=with_rgb, decimation=d)))
    for _ in range(2):  # the second time over the first cloud's bytes: the same bytes again
        got = make_cloud(depth, CAM, rgb=rgb, decimation=d, min_range_m=0.1, max_range_m=10.0, out=buf)
        assert got.tobytes() == want.tobytes() == bytes(buf)
        assert np.shares_memory(got, np.frombuffer(buf, np.uint8))
        del got


def test_range_checked_depth_skips_only_the_test_it_does_not_need() -> None:
    depth = _depth(np.float32)
    masked = depth.copy()
    with np.errstate(invalid="ignore"):
        masked[~((depth >= 0.1) & (depth <= 10.0))] = np.nan  # what the postprocessor publishes
    want = make_cloud(depth, CAM, min_range_m=0.1, max_range_m=10.0)
    got = make_cloud(masked, CAM, min_range_m=0.1, max_range_m=10.0, range_checked=True)
    assert got.tobytes() == want.tobytes()
    # unmasked depth with range_checked passes through: the caller's promise is what makes it right
    assert make_cloud(depth, CAM, min_range_m=0.1, max_range_m=10.0, range_checked=True)["z"][1, 1] == depth[1, 1]


@pytest.mark.parametrize("bad, text", [(bytearray(10), "holds 10 bytes"), (bytes(37 * 23 * 16), "writable"),
                                       (object(), "contiguous buffer")])
def test_a_wrong_out_buffer_is_refused_in_one_line(bad: object, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        make_cloud(np.ones((CAM.height, CAM.width), np.float32), CAM, out=bad)
