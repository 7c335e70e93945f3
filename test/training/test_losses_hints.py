"""Depth hints: the plane sweep finds depth from motion alone; the hint term follows Depth Hints."""
from __future__ import annotations

import math

import pytest
import torch

from depth_ros_training.losses.hints import depth_hint_loss, min_reprojection_error, plane_sweep_depth
from depth_ros_training.losses.warping import inverse_warp

H, W = 48, 96
K = torch.tensor([[70.0, 0.0, 47.5], [0.0, 70.0, 23.5], [0.0, 0.0, 1.0]])


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 3, h, w) smooth random texture in [0, 1] (several octaves of upsampled noise)."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(1, 3, h, w)
    for cells, amp in ((4, 0.5), (8, 0.3), (16, 0.2)):
        noise = torch.rand(1, 3, cells, cells * w // h, generator=g)
        img += amp * torch.nn.functional.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
    return img.clamp(0.0, 1.0)


def _translation(tz: float, tx: float = 0.0) -> torch.Tensor:
    T = torch.eye(4)
    T[0, 3], T[2, 3] = tx, tz
    return T[None]


def _fronto_parallel_pair(depth_m: float, T_src_tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, source) of a textured plane at ``depth_m``: the target is the source warped
    with the plane's exact depth, so the plane's depth explains it perfectly."""
    src = _texture(H, W)
    tgt = inverse_warp(src, torch.full((1, 1, H, W), depth_m), T_src_tgt, K, padding_mode="border").warped
    return tgt, src


@pytest.mark.parametrize("depth_m", [0.8, 1.7, 4.0])
def test_plane_sweep_recovers_a_planes_depth(depth_m: float) -> None:
    T = _translation(0.1, tx=0.2)  # sideways + forward: parallax everywhere
    tgt, src = _fronto_parallel_pair(depth_m, T)
    sweep = plane_sweep_depth(tgt, [src], [T], K, 0.5, 30.0, num_depths=32)
    assert sweep.depth.shape == (1, 1, H, W) and sweep.error.shape == (1, 1, H, W)
    # the pixels whose true match lies inside the source image (the rest are scored against
    # border padding): sub-hypothesis refinement puts them well within one hypothesis step
    # (uniform in inverse depth: (1/0.5 - 1/30) / 31 = 0.063 1/m)
    seen = inverse_warp(src, torch.full((1, 1, H, W), depth_m), T, K).valid.bool()
    step = (1 / 0.5 - 1 / 30.0) / 31
    err_steps = (1.0 / sweep.depth - 1.0 / depth_m).abs() / step
    assert float(seen.float().mean()) > 0.6
    assert float(err_steps[seen].median()) < 0.1
    assert float((err_steps[seen] < 0.3).float().mean()) > 0.9


def test_plane_sweep_takes_the_best_source_per_pixel() -> None:
    """A second source that sees nothing useful (another texture) does not spoil the estimate."""
    T = _translation(0.0, tx=0.25)
    tgt, src = _fronto_parallel_pair(2.0, T)
    other = _texture(H, W, seed=7)
    one = plane_sweep_depth(tgt, [src], [T], K, 0.5, 30.0, num_depths=24)
    two = plane_sweep_depth(tgt, [other, src], [_translation(0.0, tx=-0.25), T], K, 0.5, 30.0, num_depths=24)
    seen = inverse_warp(src, torch.full((1, 1, H, W), 2.0), T, K).valid.bool()
    assert float(((two.depth - 2.0).abs() / 2.0)[seen].median()) < 0.03
    assert torch.all(two.error <= one.error + 1e-6)


def test_plane_sweep_memory_chunks_give_the_same_result(monkeypatch) -> None:
    import depth_ros_training.losses.hints as hints

    T = _translation(0.15)
    tgt, src = _fronto_parallel_pair(1.2, T)
    whole = plane_sweep_depth(tgt, [src], [T], K, 0.5, 30.0, num_depths=10)
    monkeypatch.setattr(hints, "_CHUNK_PIXELS", 3 * H * W)  # 3 hypotheses per chunk: 3 + 3 + 3 + 1
    chunked = plane_sweep_depth(tgt, [src], [T], K, 0.5, 30.0, num_depths=10)
    torch.testing.assert_close(chunked.depth, whole.depth)
    torch.testing.assert_close(chunked.error, whole.error)


def test_plane_sweep_rejects_bad_arguments() -> None:
    tgt = _texture(H, W)
    T = _translation(0.1)
    with pytest.raises(ValueError, match="min_depth"):
        plane_sweep_depth(tgt, [tgt], [T], K, 5.0, 1.0)
    with pytest.raises(ValueError, match="num_depths"):
        plane_sweep_depth(tgt, [tgt], [T], K, 0.5, 30.0, num_depths=2)
    with pytest.raises(ValueError, match="sources"):
        min_reprojection_error(tgt, [tgt], torch.ones(1, 1, H, W), [], K)


def test_min_reprojection_error_is_zero_at_the_true_depth_and_flags_unseen_pixels() -> None:
    T = _translation(0.0, tx=0.3)
    tgt, src = _fronto_parallel_pair(1.5, T)
    err = min_reprojection_error(tgt, [src], torch.full((1, 1, H, W), 1.5), [T], K)
    seen = inverse_warp(src, torch.full((1, 1, H, W), 1.5), T, K).valid.bool()
    assert float(err[seen].max()) < 1e-4  # the target *is* the warped source there
    assert bool((err[~seen] >= 2.0).all())  # out of view of every source
    wrong = min_reprojection_error(tgt, [src], torch.full((1, 1, H, W), 3.0), [T], K)
    both = seen & (wrong < 2.0)
    assert float(wrong[both].mean()) > 0.01


def test_depth_hint_loss_hand_computed() -> None:
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
    hint = torch.tensor([[[[2.0, 2.5], [1.0, 4.0]]]])
    pred_err = torch.tensor([[[[0.3, 0.1], [0.5, 0.2]]]])
    hint_err = torch.tensor([[[[0.1, 0.2], [2.0, 0.1]]]])  # pixel (1, 0): hint unseen -> not used
    loss, fraction = depth_hint_loss(pred, hint, pred_err, hint_err)
    # used: (0, 0) |1 - 2| and (1, 1) |4 - 4|; averaged over all 4 pixels
    assert float(loss.detach()) == pytest.approx((math.log(2.0) + 0.0) / 4)
    assert float(fraction) == pytest.approx(0.5)
    loss.backward()
    # d/dp log(1 + |p - h|) = -1 / (1 + 1) at (0, 0), over 4 pixels; unused pixels get none
    torch.testing.assert_close(pred.grad, torch.tensor([[[[-0.125, 0.0], [0.0, 0.0]]]]))


def test_depth_hint_loss_log_ratio_hand_computed() -> None:
    pred = torch.tensor([[[[1.0, 8.0], [3.0, 4.0]]]], requires_grad=True)
    hint = torch.tensor([[[[2.0, 2.0], [float("nan"), 2.0]]]])
    pred_err = torch.tensor([[[[0.3, 0.1], [0.5, 0.2]]]])
    hint_err = torch.tensor([[[[0.1, 0.2], [0.1, 0.1]]]])  # (0, 1): network better; (1, 0): no hint
    loss, fraction = depth_hint_loss(pred, hint, pred_err, hint_err, kind="log_ratio")
    # used: (0, 0) |log 1 - log 2| and (1, 1) |log 4 - log 2|: the same relative error costs the
    # same at 1 m and at 4 m (log1p would charge log 2 and log 3)
    assert float(loss.detach()) == pytest.approx(2 * math.log(2.0) / 4)
    assert float(fraction) == pytest.approx(0.5)
    loss.backward()
    # d/dp |log p - log h| = sign / p: -1 at (0, 0), +1/4 at (1, 1), over 4 pixels
    torch.testing.assert_close(pred.grad, torch.tensor([[[[-0.25, 0.0], [0.0, 0.0625]]]]))
    log1p, _ = depth_hint_loss(pred, hint, pred_err, hint_err)
    assert float(log1p.detach()) == pytest.approx((math.log(2.0) + math.log(3.0)) / 4)
    with pytest.raises(ValueError, match="kind"):
        depth_hint_loss(pred, hint, pred_err, hint_err, kind="l2")


def test_depth_hint_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        depth_hint_loss(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 5), torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4))


def test_hints_find_near_boxes_on_a_rendered_corridor() -> None:
    """On the project's renderer (corridor, forward motion, boxes), the sweep gets most
    pixels within 10 % at room scale, where a network warm-started at a constant depth is off
    by 2x near the camera."""
    from depth_ros.synthetic import SynthConfig, render_sequence

    config = SynthConfig(width=192, height=64, frames=5, speed_mps=1.0, rate_hz=10.0, scene="corridor", trajectory="forward", lidar_beams=0, seed=3)
    frames = list(render_sequence(config))

    def tensors(f):
        img = torch.as_tensor(f.rgb, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        return img, torch.as_tensor(f.depth_m, dtype=torch.float32)[None, None], torch.as_tensor(f.T_world_cam, dtype=torch.float32)

    tgt, gt, T_w_t = tensors(frames[2])
    srcs, poses = [], []
    for i in (0, 4):
        img, _, T_w_s = tensors(frames[i])
        srcs.append(img)
        poses.append((torch.linalg.inv(T_w_s) @ T_w_t)[None])
    K_cam = torch.tensor(frames[0].camera.K, dtype=torch.float32)
    sweep = plane_sweep_depth(tgt, srcs, poses, K_cam, 0.5, 30.0, num_depths=32)
    ok = torch.isfinite(gt) & (gt < 5.0)
    rel = (sweep.depth - gt).abs() / gt
    assert float(ok.float().mean()) > 0.3
    assert float((rel[ok] < 0.1).float().mean()) > 0.75
    # the hint reprojects better than a constant 3 m guess on most of those pixels
    guess = torch.full_like(gt, 3.0)
    hint_err = min_reprojection_error(tgt, srcs, sweep.depth, poses, K_cam)
    guess_err = min_reprojection_error(tgt, srcs, guess, poses, K_cam)
    assert float((hint_err < guess_err)[ok].float().mean()) > 0.75
