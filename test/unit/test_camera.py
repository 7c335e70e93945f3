"""CameraModel: validation, the one rescale function, rays."""
import numpy as np
import pytest

from depth_ros.core.camera import CameraModel


def make_camera() -> CameraModel:
    return CameraModel.from_intrinsics(640, 480, fx_px=500.0, fy_px=510.0, cx_px=319.5, cy_px=239.5)


def test_resize_halves_focal_and_keeps_centre_convention() -> None:
    cam = make_camera().resized(320, 240)
    assert cam.size == (320, 240)
    assert cam.fx == pytest.approx(250.0)
    assert cam.fy == pytest.approx(255.0)
    # the image centre stays the image centre under an edge-aligned resize
    assert cam.cx == pytest.approx(159.5)
    assert cam.cy == pytest.approx(119.5)


def test_resize_maps_pixel_edges_to_edges() -> None:
    cam = CameraModel.from_intrinsics(100, 50, 80.0, 80.0, cx_px=-0.5, cy_px=-0.5)
    # cx = -0.5 is the left edge of the image: it must stay the left edge at any scale
    small = cam.resized(37, 11)
    assert small.cx == pytest.approx(-0.5)
    assert small.cy == pytest.approx(-0.5)


def test_resize_round_trip_is_identity() -> None:
    cam = make_camera()
    back = cam.resized(416, 128).resized(640, 480)
    np.testing.assert_allclose(back.K, cam.K, atol=1e-12)


def test_crop_shifts_principal_point() -> None:
    cam = make_camera().cropped(10, 20, 600, 400)
    assert (cam.cx, cam.cy, cam.fx) == (309.5, 219.5, 500.0)
    with pytest.raises(ValueError, match="outside"):
        make_camera().cropped(100, 0, 600, 480)


def test_pad_shifts_principal_point_and_undoes_a_crop() -> None:
    cam = make_camera()
    padded = cam.padded(40, 0, 720, 480)
    assert (padded.size, padded.cx, padded.cy, padded.fx) == ((720, 480), cam.cx + 40, cam.cy, cam.fx)
    assert padded.cropped(40, 0, 640, 480) == cam
    with pytest.raises(ValueError, match="does not hold"):
        cam.padded(100, 0, 720, 480)


def test_projection_of_rays_returns_pixel_centres() -> None:
    cam = make_camera()
    rays = cam.pixel_rays()
    assert rays.shape == (480, 640, 3) and rays.dtype == np.float32
    u = cam.fx * rays[..., 0] / rays[..., 2] + cam.cx
    v = cam.fy * rays[..., 1] / rays[..., 2] + cam.cy
    np.testing.assert_allclose(u[7, :], np.arange(640), atol=1e-3)
    np.testing.assert_allclose(v[:, 5], np.arange(480), atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"K": np.zeros((3, 3))}, "all zeros"),
        ({"K": np.eye(2)}, "3x3"),
        ({"K": np.diag([np.nan, 1.0, 1.0])}, "non-finite"),
        ({"K": np.diag([-1.0, 1.0, 1.0])}, "positive"),
        ({"width": 0}, "image size"),
        ({"height": 100_000}, "image size"),
    ],
)
def test_invalid_cameras_are_refused_with_the_reason(kwargs: dict, message: str) -> None:
    args = {"width": 640, "height": 480, "K": make_camera().K}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        CameraModel(**args)


def test_equality_and_hash_follow_values() -> None:
    assert make_camera() == make_camera()
    assert hash(make_camera()) == hash(make_camera())
    assert make_camera() != make_camera().resized(320, 240)


def test_rescale_intrinsics_is_the_one_rescale_for_numpy_and_torch() -> None:
    import torch

    from depth_ros.core.camera import rescale_intrinsics
    from depth_ros_training.losses.warping import scale_intrinsics

    K = np.array([[500.0, 2.0, 319.5], [0.0, 510.0, 239.5], [0.0, 0.0, 1.0]])
    cam = CameraModel(640, 480, K)
    # hand-computed: focal and skew scale, the principal point follows pixel edges
    expected = np.array([[250.0, 1.0, 159.5], [0.0, 127.5, 59.5], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(rescale_intrinsics(K, 0.5, 0.25), expected, atol=1e-12)
    assert np.array_equal(cam.resized(320, 120).K, rescale_intrinsics(K, 0.5, 0.25))
    assert K[0, 0] == 500.0  # the input is not modified
    # the training losses' pyramid rescale is the same function on tensors, batched or not
    Kt = torch.tensor(K, dtype=torch.float64)
    torch.testing.assert_close(scale_intrinsics(Kt, 0.5), torch.tensor(cam.resized(320, 240).K))
    batched = rescale_intrinsics(Kt.expand(2, 3, 3), 0.5)
    assert isinstance(batched, torch.Tensor) and batched.shape == (2, 3, 3)
    torch.testing.assert_close(batched[1], torch.tensor(rescale_intrinsics(K, 0.5)))
    with pytest.raises(ValueError, match="positive"):
        rescale_intrinsics(K, 0.0)
    with pytest.raises(ValueError, match="3, 3"):
        rescale_intrinsics(np.eye(4), 0.5)
