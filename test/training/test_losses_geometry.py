"""Inverse warping and the SC-Depth v1 loss on an analytically rendered scene.

The scene (a textured room corner: back wall, floor, left wall) is rendered exactly for any
camera pose, so the ground-truth depth and relative pose are known: warping the source view
with them must reconstruct the target where it is visible, and the two views' depths must be
geometrically consistent.
"""
from __future__ import annotations

import math

import pytest
import torch

from depth_ros_training.losses import inverse_warp, masked_mean, sc_depth_loss, sc_depth_pair_loss
from depth_ros_training.models import pose_vec_to_mat

H, W = 48, 64
K = torch.tensor([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
# planes n . p = c in the world frame (= the target camera's optical frame: x right, y down, z forward)
PLANES = [((0.0, 0.0, 1.0), 5.0), ((0.0, 1.0, 0.0), 1.2), ((1.0, 0.0, 0.0), -2.5)]


def _texture(points: torch.Tensor) -> torch.Tensor:
    """(N, 3) world points -> (N, 3) colour in [0.1, 0.9], smooth (periods ~1-2 m)."""
    x, y, z = points.unbind(-1)
    return torch.stack(
        [
            0.5 + 0.2 * torch.sin(3.1 * x + 1.7 * y) + 0.2 * torch.cos(2.3 * z - 1.1 * y),
            0.5 + 0.2 * torch.sin(2.2 * y - 2.9 * z + 0.4) + 0.2 * torch.cos(3.3 * x),
            0.5 + 0.2 * torch.cos(1.9 * x + 2.7 * z) + 0.2 * torch.sin(3.7 * y + 1.0),
        ],
        dim=-1,
    )


def render(T_world_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact image (1, 3, H, W) and z-depth (1, 1, H, W) of the scene from a camera pose."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1).reshape(-1, 3)
    R, C = T_world_cam[:3, :3], T_world_cam[:3, 3]
    dirs = rays @ R.T  # world direction of each ray, scaled so the camera-frame z is 1
    depth = torch.full((H * W,), math.inf, dtype=torch.float64)
    for normal, c in PLANES:
        n = torch.tensor(normal, dtype=torch.float64)
        s = (c - n @ C) / (dirs @ n)  # ray parameter = camera z-depth, since rays have z = 1
        depth = torch.where((s > 0) & (s < depth), s, depth)
    assert torch.isfinite(depth).all()
    points = C + depth[:, None] * dirs
    img = _texture(points).T.reshape(1, 3, H, W)
    return img, depth.reshape(1, 1, H, W)


def _pose(rx: float, ry: float, rz: float, tx: float, ty: float, tz: float) -> torch.Tensor:
    return pose_vec_to_mat(torch.tensor([[rx, ry, rz, tx, ty, tz]], dtype=torch.float64))[0]


@pytest.fixture(scope="module")
def scene() -> dict[str, torch.Tensor]:
    T_world_tgt = torch.eye(4, dtype=torch.float64)
    T_world_src = _pose(0.01, -0.04, 0.005, 0.15, -0.03, 0.35)
    T_world_src2 = _pose(-0.01, 0.03, 0.0, -0.12, 0.02, -0.3)
    tgt_img, tgt_depth = render(T_world_tgt)
    src_img, src_depth = render(T_world_src)
    src2_img, src2_depth = render(T_world_src2)
    return {
        "tgt_img": tgt_img, "tgt_depth": tgt_depth,
        "src_img": src_img, "src_depth": src_depth,
        "src2_img": src2_img, "src2_depth": src2_depth,
        "T_src_tgt": (torch.linalg.inv(T_world_src) @ T_world_tgt)[None],
        "T_src2_tgt": (torch.linalg.inv(T_world_src2) @ T_world_tgt)[None],
    }


# -- inverse_warp ------------------------------------------------------------------------


def test_identity_pose_returns_the_input_for_any_depth() -> None:
    src = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    depth = torch.rand(2, 1, 6, 7, dtype=torch.float64) * 10 + 0.5
    res = inverse_warp(src, depth, torch.eye(4, dtype=torch.float64).expand(2, 4, 4), K)
    torch.testing.assert_close(res.warped, src)
    assert torch.equal(res.valid, torch.ones(2, 1, 6, 7, dtype=torch.float64))
    torch.testing.assert_close(res.projected_depth, depth)
    v, u = torch.meshgrid(torch.arange(6.0, dtype=torch.float64), torch.arange(7.0, dtype=torch.float64), indexing="ij")
    torch.testing.assert_close(res.src_pixel_coords, torch.stack([u, v], -1).expand(2, 6, 7, 2))


def test_one_pixel_shift_hand_computed() -> None:
    # p_src = p_tgt + t with t_x = z / fx: every pixel lands one column to the right
    depth_m = 4.0
    src = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)[None].clone()
    T[0, 0, 3] = depth_m / K[0, 0]
    res = inverse_warp(src, torch.full((1, 1, 5, 6), depth_m, dtype=torch.float64), T, K)
    torch.testing.assert_close(res.warped[..., :-1], src[..., 1:])
    assert torch.equal(res.valid[0, 0, :, :-1], torch.ones(5, 5, dtype=torch.float64))
    assert torch.equal(res.valid[0, 0, :, -1], torch.zeros(5, dtype=torch.float64))
    # the last column samples one full pixel beyond the image: zero padding only
    assert torch.equal(res.warped[..., -1], torch.zeros(1, 3, 5, dtype=torch.float64))


def test_points_behind_the_source_camera_are_invalid() -> None:
    T = torch.eye(4, dtype=torch.float64)[None].clone()
    T[0, 2, 3] = -10.0  # source 10 m ahead of points at 4 m
    res = inverse_warp(torch.rand(1, 1, 4, 4, dtype=torch.float64), torch.full((1, 1, 4, 4), 4.0, dtype=torch.float64), T, K)
    assert float(res.valid.max()) == 0.0
    torch.testing.assert_close(res.projected_depth, torch.full((1, 1, 4, 4), -6.0, dtype=torch.float64))


def test_warping_the_source_with_ground_truth_reconstructs_the_target(scene) -> None:
    res = inverse_warp(scene["src_img"], scene["tgt_depth"], scene["T_src_tgt"], K)
    visible = res.valid.bool().expand_as(scene["tgt_img"])
    assert res.valid.mean() > 0.6
    err = (res.warped - scene["tgt_img"]).abs()[visible]
    unwarped = (scene["src_img"] - scene["tgt_img"]).abs()[visible]
    assert float(err.mean()) < 0.01  # bilinear resampling of a smooth texture only
    assert float(unwarped.mean()) > 10 * float(err.mean())
    # the projected depth is the target points' z in the source frame = the source's own depth there
    src_depth_at = inverse_warp(scene["src_depth"], scene["tgt_depth"], scene["T_src_tgt"], K).warped
    rel = ((src_depth_at - res.projected_depth).abs() / res.projected_depth)[res.valid.bool()]
    assert float(rel.mean()) < 1e-3


def test_inverse_warp_rejects_bad_shapes() -> None:
    src = torch.rand(1, 3, 4, 5)
    with pytest.raises(ValueError, match="tgt_depth"):
        inverse_warp(src, torch.rand(1, 1, 4, 4), torch.eye(4)[None], K.float())
    with pytest.raises(ValueError, match="T_src_tgt"):
        inverse_warp(src, torch.rand(1, 1, 4, 5), torch.eye(4), K.float())
    with pytest.raises(ValueError, match="K must be"):
        inverse_warp(src, torch.rand(1, 1, 4, 5), torch.eye(4)[None], torch.eye(4))


def test_inverse_warp_gradcheck_float64() -> None:
    src = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    depth = (torch.rand(1, 1, 4, 5, dtype=torch.float64) + 2.0).requires_grad_()
    vec = torch.tensor([[0.02, -0.03, 0.01, 0.013, -0.021, 0.05]], dtype=torch.float64, requires_grad=True)

    def f(src: torch.Tensor, depth: torch.Tensor, vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        res = inverse_warp(src, depth, pose_vec_to_mat(vec), K, padding_mode="border")
        return res.warped, res.projected_depth

    assert torch.autograd.gradcheck(f, (src, depth, vec))


# -- SC-Depth v1 ----------------------------------------------------------------------------


def test_geometry_consistency_is_zero_for_ground_truth_depths(scene) -> None:
    pair = sc_depth_pair_loss(
        scene["tgt_img"], scene["src_img"], scene["tgt_depth"], scene["src_depth"], scene["T_src_tgt"], K
    )
    assert float(masked_mean(pair.geometry_map, pair.in_view)) < 1e-3
    assert float(masked_mean(pair.photo_error, pair.in_view)) < 0.02
    for name in ("valid", "weight_mask", "in_view", "auto_mask"):
        m = getattr(pair, name)
        assert m.shape == (1, 1, H, W)
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0, name
    # the camera moved and the scene is textured: the warped source explains most pixels better
    assert float(masked_mean(pair.auto_mask, pair.in_view)) > 0.8


def test_geometry_map_and_self_mask_hand_computed() -> None:
    # identity pose, source depth twice the target's: D_diff = |D - 2D| / (D + 2D) = 1/3
    img = torch.rand(1, 3, 6, 7, dtype=torch.float64)
    depth = torch.rand(1, 1, 6, 7, dtype=torch.float64) + 1.0
    pair = sc_depth_pair_loss(img, img, depth, 2 * depth, torch.eye(4, dtype=torch.float64)[None], K, use_auto_mask=False)
    torch.testing.assert_close(pair.geometry_map, torch.full_like(depth, 1 / 3))
    torch.testing.assert_close(pair.weight_mask, torch.full_like(depth, 2 / 3))
    no_mask = sc_depth_pair_loss(img, img, depth, 2 * depth, torch.eye(4, dtype=torch.float64)[None], K, use_mask=False)
    assert torch.equal(no_mask.weight_mask, torch.ones_like(depth))


def test_auto_mask_removes_a_static_pair() -> None:
    # the camera did not move and the images are identical: nothing is explained *better* by the
    # warp than by the unwarped source, so every pixel is masked and the loss is 0
    img = torch.rand(1, 3, 8, 9, dtype=torch.float64)
    depth = torch.rand(1, 1, 8, 9, dtype=torch.float64) + 1.0
    eye = torch.eye(4, dtype=torch.float64)[None]
    terms = sc_depth_loss(img, [img], depth, [depth], [eye], [eye], K)
    assert float(terms.auto_mask_fraction) == 0.0
    assert float(terms.photometric) == 0.0 and float(terms.geometry) == 0.0
    kept = sc_depth_loss(img, [img], depth, [depth], [eye], [eye], K, use_auto_mask=False)
    assert float(kept.auto_mask_fraction) == 1.0


def test_sc_depth_loss_prefers_ground_truth_over_wrong_depth(scene) -> None:
    s = scene
    poses = [s["T_src_tgt"], s["T_src2_tgt"]]
    poses_inv = [torch.linalg.inv(T) for T in poses]
    srcs, src_depths = [s["src_img"], s["src2_img"]], [s["src_depth"], s["src2_depth"]]
    good = sc_depth_loss(s["tgt_img"], srcs, s["tgt_depth"], src_depths, poses, poses_inv, K)
    bad = sc_depth_loss(s["tgt_img"], srcs, 1.5 * s["tgt_depth"], src_depths, poses, poses_inv, K)
    assert float(good.geometry) < 1e-3 and float(good.photometric) < 0.02
    assert float(bad.geometry) > 20 * float(good.geometry)
    assert float(bad.photometric) > 2 * float(good.photometric)
    assert good.self_mask.shape == (1, 1, H, W)
    assert float(good.self_mask.min()) > 0.95 and float(bad.self_mask.mean()) < float(good.self_mask.mean())
    assert 0.0 <= float(good.auto_mask_fraction) <= 1.0


def test_per_pixel_minimum_picks_the_source_that_sees_the_pixel() -> None:
    # source 1 is a perfect copy, source 2 is noise: the minimum must ignore source 2 entirely
    tgt = torch.rand(1, 3, 8, 9, dtype=torch.float64)
    noise = torch.rand(1, 3, 8, 9, dtype=torch.float64)
    depth = torch.full((1, 1, 8, 9), 3.0, dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)[None]
    one = sc_depth_loss(tgt, [tgt], depth, [depth], [eye], [eye], K, use_auto_mask=False)
    two = sc_depth_loss(tgt, [tgt, noise], depth, [depth, depth], [eye, eye], [eye, eye], K, use_auto_mask=False)
    # forward half: 0 in both; backward half of `two` averages the copy (0) and the noise pair
    noise_pair = sc_depth_pair_loss(noise, tgt, depth, depth, eye, K, use_auto_mask=False)
    expected = 0.5 * 0.5 * masked_mean(noise_pair.photo_map, noise_pair.valid)
    assert float(one.photometric) < 1e-12
    torch.testing.assert_close(two.photometric, expected)


def test_sc_depth_loss_rejects_mismatched_lists() -> None:
    img = torch.rand(1, 3, 8, 9)
    depth = torch.ones(1, 1, 8, 9)
    eye = torch.eye(4)[None]
    with pytest.raises(ValueError, match="matching lists"):
        sc_depth_loss(img, [img, img], depth, [depth], [eye], [eye], K.float())
    with pytest.raises(ValueError, match="differ in shape"):
        sc_depth_pair_loss(img, torch.rand(1, 3, 8, 8), depth, torch.ones(1, 1, 8, 8), eye, K.float())


def test_sc_depth_pair_loss_gradcheck_float64() -> None:
    tgt = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    src = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    tgt_depth = (torch.rand(1, 1, 5, 6, dtype=torch.float64) + 2.0).requires_grad_()
    src_depth = (torch.rand(1, 1, 5, 6, dtype=torch.float64) + 2.0).requires_grad_()
    vec = torch.tensor([[0.01, -0.02, 0.01, 0.011, -0.017, 0.03]], dtype=torch.float64, requires_grad=True)

    def f(tgt_depth: torch.Tensor, src_depth: torch.Tensor, vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the self-discovered mask is detached (a weight without gradient, as in sc_depth_pl), so
        # finite differences through it would not match: the photometric map is checked without
        # it here, its detached gradient in test_losses_sc_depth_reference.py
        pair = sc_depth_pair_loss(tgt, src, tgt_depth, src_depth, pose_vec_to_mat(vec), K, use_auto_mask=False, use_mask=False)
        return pair.photo_map * pair.valid, pair.geometry_map * pair.valid

    assert torch.autograd.gradcheck(f, (tgt_depth, src_depth, vec))


# -- the project's synthetic renderer ---------------------------------------------------------


def _as_tensors(frame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    img = torch.as_tensor(frame.rgb, dtype=torch.float64).permute(2, 0, 1)[None] / 255.0
    depth = torch.as_tensor(frame.depth_m, dtype=torch.float64)[None, None]
    return img, depth, torch.as_tensor(frame.T_world_cam, dtype=torch.float64)


def test_ground_truth_warp_on_a_rendered_sequence() -> None:
    """The renderer's frames (texture, occlusions, boxes) warp onto each other with GT depth and pose."""
    from depth_ros.synthetic import SynthConfig, render_sequence

    config = SynthConfig(
        width=128, height=96, frames=4, speed_mps=1.0, texture_size_px=128, lidar_beams=0, shading=False
    )
    frames = list(render_sequence(config))
    tgt_img, tgt_depth, T_world_tgt = _as_tensors(frames[0])
    src_img, src_depth, T_world_src = _as_tensors(frames[3])
    T_src_tgt = (torch.linalg.inv(T_world_src) @ T_world_tgt)[None]
    K_cam = torch.tensor(frames[0].camera.K, dtype=torch.float64)
    pair = sc_depth_pair_loss(tgt_img, src_img, tgt_depth, src_depth, T_src_tgt, K_cam)
    warped = inverse_warp(src_img, tgt_depth, T_src_tgt, K_cam).warped
    l1_warped = masked_mean((warped - tgt_img).abs().mean(1, keepdim=True), pair.in_view)
    l1_unwarped = masked_mean((src_img - tgt_img).abs().mean(1, keepdim=True), pair.in_view)
    assert float(pair.in_view.mean()) > 0.5
    assert float(l1_warped) < 0.02 and float(l1_warped) < 0.25 * float(l1_unwarped)
    # consistent except in the thin bands bilinear sampling smears across occlusion boundaries
    assert float(masked_mean(pair.geometry_map, pair.in_view)) < 0.005
    assert float(masked_mean(pair.auto_mask, pair.in_view)) > 0.8
    wrong = sc_depth_pair_loss(tgt_img, src_img, 1.3 * tgt_depth, src_depth, T_src_tgt, K_cam)
    assert float(masked_mean(wrong.photo_error, wrong.in_view)) > 1.5 * float(masked_mean(pair.photo_error, pair.in_view))


def test_projection_stays_precise_under_autocast_and_keeps_input_dtypes() -> None:
    # a bfloat16 projection would put pixel 400 of a 416 px row 1-2 px off
    b, h, w = 1, 8, 416
    K32 = torch.tensor([[200.0, 0.0, 207.5], [0.0, 200.0, 3.5], [0.0, 0.0, 1.0]])
    src = torch.rand(b, 3, h, w)
    depth = torch.full((b, 1, h, w), 7.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = inverse_warp(src, depth, torch.eye(4)[None], K32.double())
    v, u = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    assert res.src_pixel_coords.dtype == torch.float32 and res.projected_depth.dtype == torch.float32
    torch.testing.assert_close(res.src_pixel_coords[0], torch.stack([u, v], -1), atol=1e-3, rtol=0)
    assert bool(res.valid.all())


def test_scale_intrinsics_matches_an_area_downsampled_image(scene) -> None:
    """Warping at half resolution with the halved K reconstructs the half-resolution target."""
    from depth_ros_training.losses import scale_intrinsics

    K2 = scale_intrinsics(K, 0.5)
    torch.testing.assert_close(K2, torch.tensor([[25.0, 0.0, 15.5], [0.0, 25.0, 11.5], [0.0, 0.0, 1.0]], dtype=torch.float64))
    pool = lambda x: torch.nn.functional.avg_pool2d(x, 2)  # noqa: E731
    tgt, src, depth = pool(scene["tgt_img"]), pool(scene["src_img"]), pool(scene["tgt_depth"])
    res = inverse_warp(src, depth, scene["T_src_tgt"], K2)
    visible = res.valid.bool().expand_as(tgt)
    err = float((res.warped - tgt).abs()[visible].mean())
    assert res.valid.mean() > 0.5 and err < 0.02
    # a point seen at pixel u at full resolution lies at (u + 0.5) / 2 - 0.5 in the half-size
    # image (pixel centres); the naive c / 2 would put it a quarter pixel off
    p = torch.tensor([0.7, -0.3, 2.5], dtype=torch.float64)
    u = (K @ p)[:2] / p[2]
    u2 = (K2 @ p)[:2] / p[2]
    torch.testing.assert_close(u2, (u + 0.5) / 2 - 0.5)
    batched = scale_intrinsics(K.expand(3, 3, 3), 0.25)
    assert batched.shape == (3, 3, 3) and torch.equal(batched[1], scale_intrinsics(K, 0.25))
    with pytest.raises(ValueError, match="factor"):
        scale_intrinsics(K, 0.0)


def test_without_source_depths_the_gradient_is_the_bidirectional_terms(scene) -> None:
    # the demo's set-up: source depths without gradient, odometry poses, no geometry term and
    # no self-discovered mask: the backward half is a constant, so skipping the source depths
    # must leave the depth gradient exactly as it was
    s = scene
    poses = [s["T_src_tgt"], s["T_src2_tgt"]]
    poses_inv = [torch.linalg.inv(T) for T in poses]
    srcs, src_depths = [s["src_img"], s["src2_img"]], [s["src_depth"], s["src2_depth"]]
    depth = (1.2 * s["tgt_depth"]).requires_grad_()
    both = sc_depth_loss(s["tgt_img"], srcs, depth, src_depths, poses, poses_inv, K, use_mask=False)
    (grad_both,) = torch.autograd.grad(both.photometric, depth)
    fwd = sc_depth_loss(s["tgt_img"], srcs, depth, None, poses, None, K, use_mask=False)
    (grad_fwd,) = torch.autograd.grad(fwd.photometric, depth)
    assert float(grad_both.abs().sum()) > 0
    torch.testing.assert_close(grad_fwd, grad_both)
    assert float(fwd.geometry) == 0.0 and float(fwd.self_mask.min()) == 1.0
    torch.testing.assert_close(fwd.min_photo_error, both.min_photo_error)
    # the value differs by the backward half only
    assert float(fwd.photometric.detach()) < float(both.photometric.detach())


def test_self_mask_needs_source_depths(scene) -> None:
    s = scene
    with pytest.raises(ValueError, match="self-discovered mask needs the source depth"):
        sc_depth_loss(s["tgt_img"], [s["src_img"]], s["tgt_depth"], None, [s["T_src_tgt"]], None, K)
