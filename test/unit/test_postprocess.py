"""postprocess: each output kind at hand-computed pixels, upsampling, ranges, confidence, bad outputs."""
from __future__ import annotations

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.core.postprocess import DepthPostprocessor, DepthResult, PostprocessConfig
from depth_ros.core.scale import ScaleConfig, ScaleUnavailableError
from depth_ros.errors import InputError
from depth_ros.inference.spec import ModelSpec, ModelSpecError

CAM = CameraModel.from_intrinsics(4, 3, 10.0, 10.0, 1.5, 1.0)  # camera = network resolution: no resize


def spec(kind: str, **kwargs) -> ModelSpec:
    kwargs = {"input_height": 3, "input_width": 4, **kwargs}
    return ModelSpec(output_kind=kind, **kwargs)


def run(kind: str, w, policy: str = "model", camera: CameraModel = CAM, spec_kwargs=None, **config) -> DepthResult:
    scale = ScaleConfig(policy=policy, **{k: config.pop(k) for k in list(config) if k in ("fixed_scale",)})
    pp = DepthPostprocessor(spec(kind, **(spec_kwargs or {})), PostprocessConfig(scale=scale, **config))
    return pp({"depth": np.asarray(w, np.float32)}, camera)


def test_disparity_sigmoid_hand_values():
    # min 0.1 m, max 100 m: disp = 0.01 + (10 - 0.01) w; w = 0 -> 100 m, 1 -> 0.1 m,
    # 0.5 -> 1 / 5.005 = 0.19980 m; out-of-[0, 1] values clip.
    w = np.array([[0.0, 1.0, 0.5, 0.25], [1.5, -0.2, 0.1, 0.9], [0.0, 0.0, 0.0, 0.0]])
    res = run("disparity_sigmoid", w[None, None], spec_kwargs={"metric": True})
    d = res.depth_m
    assert d.shape == (3, 4) and d.dtype == np.float32
    np.testing.assert_allclose(d[0], [100.0, 0.1, 1 / 5.005, 1 / (0.01 + 9.99 * 0.25)], rtol=1e-5)
    np.testing.assert_allclose(d[1, :3], [0.1, 100.0, 1 / (0.01 + 0.999)], rtol=1e-5)
    assert (res.scale, res.shift, res.scale_source, res.scale_support) == (1.0, 0.0, "model", 0)


def test_relative_disparity_with_fixed_scale():
    w = np.full((3, 4), 1.0)  # disp 10 -> 0.1 m unscaled
    res = run("disparity_sigmoid", w, policy="fixed", fixed_scale=30.0)
    np.testing.assert_allclose(res.depth_m, 3.0, rtol=1e-5)
    assert (res.scale, res.scale_source) == (30.0, "fixed")


def test_inverse_depth_relative_hand_values():
    # fixed scale 2: depth = 2 / w; w <= 0 has no depth
    w = np.array([[0.5, 4.0, 0.0, -1.0], [1.0, 2.0, 8.0, 0.25], [1.0, 1.0, 1.0, 1.0]])
    d = run("inverse_depth_relative", w[None], policy="fixed", fixed_scale=2.0).depth_m
    np.testing.assert_allclose(d[0, :2], [4.0, 0.5])
    assert np.isnan(d[0, 2:]).all()
    np.testing.assert_allclose(d[1], [2.0, 1.0, 0.25, 8.0])


def test_depth_metric_hand_values():
    w = np.array([[3.0, 0.0, -2.0, 7.5], [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    d = run("depth_metric", w).depth_m
    np.testing.assert_allclose(d[0, [0, 3]], [3.0, 7.5], rtol=1e-6)
    assert np.isnan(d[0, 1:3]).all()


def test_canonical_inverse_depth_uses_camera_focal_and_width():
    # depth = f_px / (W_px * w) at camera resolution: 10 / (4 * 0.1) = 25 m, 10 / (4 * 2.5) = 1 m
    w = np.array([[0.1, 2.5, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    res = run("canonical_inverse_depth", w)
    np.testing.assert_allclose(res.depth_m[0, [0, 1, 3]], [25.0, 1.0, 2.5], rtol=1e-6)
    assert np.isnan(res.depth_m[0, 2]) and res.scale_source == "canonical_focal"
    # the same network output on a camera of twice the resolution gives the same metric depth
    cam2 = CameraModel.from_intrinsics(8, 6, 20.0, 20.0, 3.5, 2.5)
    res2 = run("canonical_inverse_depth", np.full((3, 4), 0.1), camera=cam2)
    np.testing.assert_allclose(res2.depth_m, 25.0, rtol=1e-6)


def test_upsampling_in_inverse_depth_is_exact_for_a_plane():
    # A slanted plane: 1/z = a u + b v + c at camera resolution (affine in pixels). The network
    # sees it at half resolution; interpolating inverse depth reproduces it exactly inside the
    # grid of network pixel centres (interpolating depth would not).
    cam = CameraModel.from_intrinsics(64, 48, 50.0, 50.0, 31.5, 23.5)
    net = cam.resized(32, 24)

    def inv_at(u, v):
        return 0.1 + 0.004 * u + 0.006 * v

    vn, un = np.mgrid[0:24, 0:32].astype(np.float64)
    u_cam, v_cam = (un + 0.5) * 2 - 0.5, (vn + 0.5) * 2 - 0.5  # network pixel centres in camera pixels
    depth_net = 1.0 / inv_at(u_cam, v_cam)
    pp = DepthPostprocessor(ModelSpec(output_kind="depth_metric", input_height=24, input_width=32))
    d = pp({"depth": depth_net[None, None].astype(np.float32)}, cam).depth_m
    v, u = np.mgrid[0:48, 0:64].astype(np.float64)
    inner = (slice(1, 47), slice(1, 63))
    np.testing.assert_allclose(d[inner], 1.0 / inv_at(u, v)[inner], rtol=1e-5)
    assert net.size == (32, 24)


def test_invalid_network_pixels_stay_local_after_upsampling():
    cam = CameraModel.from_intrinsics(16, 12, 10.0, 10.0, 7.5, 5.5)
    w = np.full((6, 8), 2.0, np.float32)
    w[3, 4] = 0.0  # invalid depth
    d = DepthPostprocessor(spec("depth_metric", input_height=6, input_width=8))({"depth": w}, cam).depth_m
    nan_rows, nan_cols = np.nonzero(np.isnan(d))
    assert set(nan_rows) <= {5, 6, 7, 8} and set(nan_cols) <= {7, 8, 9, 10} and len(nan_rows) > 0
    assert np.count_nonzero(np.isnan(d)) <= 16
    np.testing.assert_allclose(d[~np.isnan(d)], 2.0, rtol=1e-6)


def test_range_limits():
    w = np.array([[0.5, 1.0, 5.0, 50.0]] * 3)
    d = run("depth_metric", w, min_range_m=1.0, max_range_m=10.0).depth_m
    assert np.isnan(d[:, 0]).all() and np.isnan(d[:, 3]).all()
    np.testing.assert_allclose(d[:, 1:3], [[1.0, 5.0]] * 3)


@pytest.mark.parametrize("min_range_m", [0.0, 0.5])
def test_every_inverse_depth_without_a_usable_depth_becomes_nan(min_range_m: float) -> None:
    pp = DepthPostprocessor(spec("depth_metric"), PostprocessConfig(min_range_m=min_range_m, max_range_m=10.0))
    tiny = np.nextafter(np.float32(0), np.float32(1))
    inv = np.array([np.inf, -np.inf, 0.0, -0.0, -2.0, np.nan, tiny, 0.05, 0.1, 1.0, 2.0, 1.0 / min_range_m if min_range_m else 3.0],
                   np.float32)
    d = pp._to_depth(inv)
    assert d.dtype == np.float32
    assert np.isnan(d[:8]).all()  # 0 m, -0 m, inf, negative, NaN, 1 / subnormal, 20 m beyond 10
    np.testing.assert_array_equal(d[8:], np.float32(1.0) / inv[8:])  # 10 m, 1, 0.5 and the minimum itself stay


@pytest.mark.parametrize("shape", [(1, 1, 3, 4), (1, 3, 4), (3, 4)])
def test_accepted_output_shapes(shape):
    d = run("depth_metric", np.full(shape, 2.0)).depth_m
    assert d.shape == (3, 4) and np.all(d == 2.0)


@pytest.mark.parametrize("shape", [(2, 1, 3, 4), (1, 2, 3, 4), (12,), (1, 3, 4, 1)])
def test_rejected_output_shapes(shape):
    with pytest.raises(ModelSpecError, match=r"has shape .*expected \(1, 1, h, w\), \(1, h, w\) or \(h, w\)"):
        run("depth_metric", np.full(shape, 2.0))


def test_non_finite_output_names_the_count():
    w = np.full((3, 4), 2.0)
    w[0, 0], w[1, 1], w[2, 2] = np.nan, np.inf, -np.inf
    with pytest.raises(InputError, match=r"model output 'depth' has 3 non-finite values \(NaN/Inf\) of 12"):
        run("depth_metric", w)


def test_missing_output_is_a_contract_error():
    pp = DepthPostprocessor(spec("depth_metric"))
    with pytest.raises(ModelSpecError, match=r"model output 'depth' not found; the model returned \['disp'\]"):
        pp({"disp": np.ones((3, 4), np.float32)}, CAM)


def test_confidence_is_upsampled_and_clipped():
    cam = CameraModel.from_intrinsics(8, 6, 10.0, 10.0, 3.5, 2.5)
    s = spec("depth_metric", confidence_name="confidence")
    conf = np.array([[0.2, 0.4, 1.5, -0.3]] * 3, np.float32)
    res = DepthPostprocessor(s)({"depth": np.ones((1, 1, 3, 4), np.float32), "confidence": conf[None, None]}, cam)
    assert res.confidence.shape == (6, 8) and res.confidence.dtype == np.float32
    assert res.confidence.min() >= 0.0 and res.confidence.max() <= 1.0
    # camera column 2 sits at network u = (2 + 0.5) / 2 - 0.5 = 0.75: 0.25 * 0.2 + 0.75 * 0.4 = 0.35
    np.testing.assert_allclose(res.confidence[:, 2], 0.35, rtol=1e-5)
    with pytest.raises(ModelSpecError, match="'confidence' not found"):
        DepthPostprocessor(s)({"depth": np.ones((3, 4), np.float32)}, cam)
    assert DepthPostprocessor(spec("depth_metric"))({"depth": np.ones((3, 4), np.float32)}, cam).confidence is None


def test_sparse_alignment_end_to_end_reports_its_scale():
    cam = CameraModel.from_intrinsics(40, 30, 20.0, 20.0, 19.5, 14.5)
    s = spec("disparity_sigmoid", input_height=30, input_width=40)
    pp = DepthPostprocessor(s, PostprocessConfig(scale=ScaleConfig(policy="sparse_alignment")))
    w = np.full((30, 40), 0.5, np.float32)  # unscaled depth 1 / 5.005
    true_depth_m = 4.0
    rng = np.random.default_rng(0)
    uv = rng.uniform([0, 0], [39, 29], (60, 2))
    pts = np.stack([(uv[:, 0] - 19.5) / 20.0, (uv[:, 1] - 14.5) / 20.0, np.ones(60)], axis=1) * true_depth_m
    res = pp({"depth": w}, cam, pts.astype(np.float32))
    np.testing.assert_allclose(res.depth_m, true_depth_m, rtol=1e-5)
    assert res.scale == pytest.approx(4.0 * 5.005, rel=1e-5)
    assert (res.scale_source, res.scale_support) == ("sparse_alignment", 60)
    held = pp({"depth": w}, cam, None)  # no points this frame: the last good scale is reused
    assert (held.scale_source, held.scale_support) == ("sparse_alignment_held", 0)
    pp.reset()
    with pytest.raises(ScaleUnavailableError, match="no sparse points"):
        pp({"depth": w}, cam, None)


def test_construction_refuses_what_cannot_be_satisfied():
    with pytest.raises(ModelSpecError, match="needs a metric model"):
        DepthPostprocessor(spec("inverse_depth_relative"))
    with pytest.raises(ModelSpecError, match="not depth"):
        DepthPostprocessor(ModelSpec(output_kind="pose_6dof", input_height=3, input_width=4, input_channels=6))
    with pytest.raises(ValueError, match="need 0 <= min_range_m < max_range_m"):
        PostprocessConfig(min_range_m=5.0, max_range_m=1.0)


@pytest.mark.parametrize(("size", "to"), [((192, 640), (480, 640)), ((64, 192), (128, 384)), ((128, 416), (375, 1242)),
                                          ((7, 5), (7, 30)), ((192, 640), (190, 640)), ((48, 64), (24, 128))])
def test_upsample_is_pillows_bilinear_filter(size: tuple, to: tuple) -> None:
    """The fast path (OpenCV, when neither side shrinks) gives Pillow's map to float rounding;
    a shrink stays Pillow's antialiased filter."""
    from PIL import Image

    from depth_ros.core.postprocess import upsample

    x = (np.random.default_rng(sum(size)).random(size) * 10 + 0.5).astype(np.float32)
    want = np.asarray(Image.fromarray(x).resize((to[1], to[0]), Image.Resampling.BILINEAR), dtype=np.float32)
    got = upsample(x, to[1], to[0])
    assert got.shape == to and got.dtype == np.float32 and got.flags.c_contiguous and got.flags.writeable
    assert float(np.max(np.abs(got - want) / want)) < 2e-6
