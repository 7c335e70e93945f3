"""DepthTrainingModule: loss composition, logging names, hyper-parameters, gradients, errors."""
from __future__ import annotations

import pytest
import torch

from depth_ros_training.module import DepthTrainingModule

H, W = 64, 128


def _batch(b: int = 2, distance: float | None = 0.05) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[64.0, 0, 63.5], [0, 64.0, 31.5], [0, 0, 1]])
    batch = {
        "tgt": torch.rand(b, 3, H, W, generator=g),
        "srcs": torch.rand(b, 2, 3, H, W, generator=g),
        "K": K.expand(b, 3, 3).clone(),
        "gt_depth_m": torch.full((b, 1, H, W), 3.0),
    }
    if distance is not None:
        batch["distance_m"] = torch.full((b, 2), distance)
    return batch


def _model(**kw) -> DepthTrainingModule:
    torch.manual_seed(0)
    return DepthTrainingModule(image_height=H, image_width=W, **kw)


def test_total_is_the_weighted_sum_of_named_terms():
    m = _model(velocity_weight=0.7, geometry_weight=0.3, smoothness_weight=0.2, photometric_weight=1.5)
    total, terms, depth = m.shared_step(_batch(), "train")
    for name in ("photometric", "geometry", "smoothness", "velocity", "auto_mask_fraction", "translation_m", "odom_distance_m"):
        assert name in terms and torch.isfinite(terms[name])
    want = 1.5 * terms["photometric"] + 0.3 * terms["geometry"] + 0.2 * terms["smoothness"] + 0.7 * terms["velocity"]
    torch.testing.assert_close(total, want)
    assert depth.shape == (2, 1, H, W)
    assert terms["odom_distance_m"].item() == pytest.approx(0.05)
    # the randomly initialised PoseNet starts near identity: |t| << 0.05 m, so the velocity
    # term is about the distance itself
    assert terms["velocity"].item() == pytest.approx(0.05 - terms["translation_m"].item(), abs=5e-3)


def test_no_velocity_term_without_velocity_supervision():
    m = _model(velocity_weight=0.0)
    total, terms, _ = m.shared_step(_batch(distance=None), "train")
    assert "velocity" not in terms
    torch.testing.assert_close(total, terms["photometric"] + 0.5 * terms["geometry"] + 0.1 * terms["smoothness"])


def test_velocity_supervision_without_odometry_is_an_error():
    m = _model(velocity_weight=0.1)
    with pytest.raises(ValueError, match="no odometry distance"):
        m.shared_step(_batch(distance=float("nan")), "train")


def test_gradients_reach_both_networks():
    m = _model(velocity_weight=0.1)
    total, _, _ = m.shared_step(_batch(), "train")
    total.backward()
    for net in (m.depth_net, m.pose_net):
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_pose_from_inverse_uses_fewer_pose_passes():
    calls = []
    m = _model(pose_from_inverse=True)
    m.pose_net.register_forward_hook(lambda *a: calls.append(1))
    m.shared_step(_batch(), "train")
    assert len(calls) == 2  # one per source; the backward transform is the matrix inverse
    calls.clear()
    m2 = _model(pose_from_inverse=False)
    m2.pose_net.register_forward_hook(lambda *a: calls.append(1))
    m2.shared_step(_batch(), "train")
    assert len(calls) == 4


def test_hyperparameters_saved_and_validated():
    m = _model(lr=3e-4, velocity_weight=0.05)
    assert m.hparams.lr == 3e-4 and m.hparams.velocity_weight == 0.05 and m.hparams.image_width == W
    assert m.is_metric
    with pytest.raises(ValueError, match="min_depth_m"):
        _model(min_depth_m=5.0, max_depth_m=1.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        _model(lr_schedule="cosine-ish")
    with pytest.raises(ValueError, match="velocity_weight"):
        _model(velocity_weight=-1.0)


def test_networks_take_the_batch_images_normalised_with_the_spec_mean_and_std():
    """The batch carries [0, 1] images; DispNet and PoseNet see ``(x - mean) / std``."""
    m = _model(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    seen: dict[str, list] = {"depth": [], "pose": []}
    m.depth_net.register_forward_hook(lambda mod, inp, out: seen["depth"].append(inp[0]))
    m.pose_net.register_forward_hook(lambda mod, inp, out: seen["pose"].append(inp))
    batch = _batch()
    m.shared_step(batch, "train")
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1)
    frames = torch.cat([batch["tgt"], batch["srcs"].flatten(0, 1)])
    torch.testing.assert_close(seen["depth"][0], (frames - mean) / std)
    tgt_in, src_in = seen["pose"][0]
    torch.testing.assert_close(tgt_in, (batch["tgt"] - mean) / std)
    torch.testing.assert_close(src_in, (batch["srcs"][:, 0] - mean) / std)
    # the image logger's view of a batch image is the [0, 1] image itself
    torch.testing.assert_close(m.to_unit_range(batch["tgt"]), batch["tgt"])


def test_depth_colormap_near_is_bright_and_invalid_is_black():
    import numpy as np

    from depth_ros_training.callbacks import colorize_inverse_depth

    depth = np.tile(np.linspace(1.0, 10.0, 20, dtype=np.float32), (4, 1))
    depth[0, 0] = np.nan
    rgb = colorize_inverse_depth(depth)
    assert rgb.shape == (3, 4, 20) and rgb.dtype == np.float32
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    brightness = rgb.sum(axis=0)
    assert brightness[1, 0] > brightness[1, 10] > brightness[1, 19]
    assert brightness[0, 0] == 0.0


def test_v3_terms_with_a_teacher():
    m = _model(ranking_weight=0.2, normal_weight=0.3, normal_ranking_weight=0.4, ranking_pairs=200)
    batch = _batch()
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    batch["teacher_depth"] = (2.0 + v / H + u / W).expand(2, 1, H, W).clone()
    total, terms, _ = m.shared_step(batch, "train")
    for name in ("ranking", "normal", "normal_ranking"):
        assert name in terms and torch.isfinite(terms[name]) and terms[name] >= 0
    want = terms["photometric"] + 0.5 * terms["geometry"] + 0.1 * terms["smoothness"]
    want = want + 0.2 * terms["ranking"] + 0.3 * terms["normal"] + 0.4 * terms["normal_ranking"]
    torch.testing.assert_close(total, want)
    _, no_teacher, _ = m.shared_step(_batch(), "train")
    assert "ranking" not in no_teacher


def test_source_depth_without_gradient_gives_the_same_loss_value():
    batch = _batch()
    with_grad = _model(source_depth_grad=True).eval()
    without = _model(source_depth_grad=False).eval()  # same seed: same weights
    t1, terms1, _ = with_grad.shared_step(batch, "val")
    t2, terms2, _ = without.shared_step(batch, "val")
    torch.testing.assert_close(t1, t2, rtol=1e-5, atol=1e-6)


def test_init_depth_sets_the_starting_depth():
    m = _model(init_depth_m=3.0, min_depth_m=0.5, max_depth_m=30.0).eval()
    with torch.no_grad():
        _, depth = m.predict_depth(torch.zeros(1, 3, H, W))
    # the random output-layer weights spread it a little around the bias
    assert abs(float(depth.median()) - 3.0) < 0.5
    with pytest.raises(ValueError, match="init_depth_m"):
        _model(init_depth_m=50.0, max_depth_m=30.0)


def test_pose_supervision_is_l1_to_odometry():
    from depth_ros_training.models import pose_vec_to_mat

    m = _model(pose_supervision_weight=2.0)
    batch = _batch()
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[..., 2, 3] = 0.2  # straight ahead 0.2 m
    batch["T_src_tgt_odom"] = T
    total, terms, _ = m.shared_step(batch, "train")
    with torch.no_grad():
        vecs = [m.predict_pose(batch["tgt"], batch["srcs"][:, i]) for i in range(2)]
    P = torch.stack([pose_vec_to_mat(v) for v in vecs], dim=1)
    want = (P[..., :3, 3] - T[..., :3, 3]).abs().mean() + (P[..., :3, :3] - T[..., :3, :3]).abs().mean()
    torch.testing.assert_close(terms["pose_supervision"], want, rtol=1e-4, atol=1e-6)
    base = terms["photometric"] + 0.5 * terms["geometry"] + 0.1 * terms["smoothness"]
    torch.testing.assert_close(total, base + 2.0 * terms["pose_supervision"])
    assert "translation_cos_odom" in terms
    batch["T_src_tgt_odom"] = torch.full_like(T, float("nan"))
    with pytest.raises(ValueError, match="no odometry pose"):
        m.shared_step(batch, "train")


def test_odometry_warp_uses_the_bag_poses():
    from depth_ros_training.losses import sc_depth_loss

    m = _model(warp_pose_source="odometry", source_depth_grad=True)
    batch = _batch(distance=None)
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.2, -0.2
    batch["T_src_tgt_odom"] = T
    total, terms, depth = m.shared_step(batch, "train")
    with torch.no_grad():
        frames = torch.cat([batch["tgt"], batch["srcs"].flatten(0, 1)])
        _, d = m.predict_depth(frames)
    src_d = list(d[2:].view(2, 2, 1, H, W).unbind(1))
    want = sc_depth_loss(
        batch["tgt"], [batch["srcs"][:, i] for i in range(2)],
        d[:2], src_d, list(T.unbind(1)), [torch.linalg.inv(t) for t in T.unbind(1)], batch["K"],
    )
    torch.testing.assert_close(terms["photometric"], want.photometric, rtol=1e-4, atol=1e-6)
    total.backward()
    # nothing in the loss depends on PoseNet now (no velocity / pose supervision)
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in m.pose_net.parameters())
    with pytest.raises(ValueError, match="warp_pose_source"):
        _model(warp_pose_source="imu")


def test_pose_pairs_one_runs_posenet_on_one_source_per_sample():
    calls = []
    m = _model(pose_pairs="one", warp_pose_source="odometry", pose_from_inverse=True, velocity_weight=1.0, pose_supervision_weight=1.0)
    m.pose_net.register_forward_hook(lambda mod, inp, out: calls.append(out.shape[0]))
    batch = _batch()
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.05, -0.05
    batch["T_src_tgt_odom"] = T
    total, terms, _ = m.shared_step(batch, "train")
    assert calls == [2]  # one pass over the batch, one pair per sample
    assert torch.isfinite(total) and terms["odom_distance_m"].item() == pytest.approx(0.05)
    total.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.pose_net.parameters())
    calls.clear()
    m.shared_step(batch, "val")  # validation sees every pair
    assert calls == [2, 2]
    with pytest.raises(ValueError, match="pose_pairs"):
        _model(pose_pairs="one")  # PoseNet warps: every source needs its pose
    with pytest.raises(ValueError, match="pose_pairs"):
        _model(pose_pairs="some", warp_pose_source="odometry")


def test_multi_scale_terms_are_the_mean_over_the_image_pyramid():
    import torch.nn.functional as F

    from depth_ros_training.losses import edge_aware_smoothness, scale_intrinsics, sc_depth_loss
    from depth_ros_training.models import disp_to_depth

    m = _model(num_scales=2, warp_pose_source="odometry", source_depth_grad=False)
    assert m.depth_net.num_scales == 2
    batch = _batch(distance=None)
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.2, -0.2
    batch["T_src_tgt_odom"] = T
    total, terms, depth = m.shared_step(batch, "train")
    assert depth.shape == (2, 1, H, W)
    with torch.no_grad():
        tgt_ws = m.depth_net(m.input_norm(batch["tgt"]))
        src_ws = m.depth_net(m.input_norm(batch["srcs"].flatten(0, 1)))
    tgt01 = batch["tgt"]
    src01 = [batch["srcs"][:, i] for i in range(2)]
    poses, inv = list(T.unbind(1)), [torch.linalg.inv(t) for t in T.unbind(1)]
    photo, smooth = [], []
    for k in range(2):
        f = 2**k
        d = disp_to_depth(tgt_ws[k], 0.1, 100.0)
        sd = list(disp_to_depth(src_ws[k], 0.1, 100.0).view(2, 2, 1, H // f, W // f).unbind(1))
        t_k = F.avg_pool2d(tgt01, f) if f > 1 else tgt01
        s_k = [F.avg_pool2d(x, f) if f > 1 else x for x in src01]
        assert t_k.shape[-2:] == tgt_ws[k].shape[-2:]
        photo.append(sc_depth_loss(t_k, s_k, d, sd, poses, inv, scale_intrinsics(batch["K"], 1 / f)).photometric)
        smooth.append(edge_aware_smoothness(tgt_ws[k], t_k) / f)
    torch.testing.assert_close(terms["photometric"], (photo[0] + photo[1]) / 2, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(terms["smoothness"], (smooth[0] + smooth[1]) / 2, rtol=1e-4, atol=1e-6)
    total.backward()
    # the coarse scale's own output layer is trained
    assert float(m.depth_net.dispconv[1][1].weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="num_scales"):
        _model(num_scales=5)


def _expected_hint_term(tgt01, src01, poses, K, depth):
    """The hint term by hand: the sweep at half resolution over 8 depths (0.1..100 m), its
    hint upsampled nearest, gated by both depths' reprojection errors on the same frames."""
    import torch.nn.functional as F

    from depth_ros_training.losses.hints import depth_hint_loss, min_reprojection_error, plane_sweep_depth
    from depth_ros_training.losses.warping import scale_intrinsics

    small = plane_sweep_depth(F.avg_pool2d(tgt01, 2), [F.avg_pool2d(x, 2) for x in src01], poses, scale_intrinsics(K, 0.5), 0.1, 100.0, 8)
    hint = F.interpolate(small.depth, size=(H, W), mode="nearest")
    return depth_hint_loss(depth, hint, min_reprojection_error(tgt01, src01, depth, poses, K), min_reprojection_error(tgt01, src01, hint, poses, K))


def test_depth_hint_term_matches_the_hint_functions():
    m = _model(warp_pose_source="odometry", source_depth_grad=False, hint_weight=0.4, hint_depths=8, hint_downsample=2)
    batch = _batch(distance=None)
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.2, -0.2
    batch["T_src_tgt_odom"] = T
    total, terms, depth = m.shared_step(batch, "train")
    assert "hint" in terms and 0.0 <= float(terms["hint_fraction"]) <= 1.0
    tgt01 = batch["tgt"]
    src01 = [batch["srcs"][:, i] for i in range(2)]
    poses, K = list(T.unbind(1)), batch["K"]
    want, fraction = _expected_hint_term(tgt01, src01, poses, K, depth.detach())
    torch.testing.assert_close(terms["hint"].detach(), want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(terms["hint_fraction"], fraction)
    base = terms["photometric"] + 0.5 * terms["geometry"] + 0.1 * terms["smoothness"]
    torch.testing.assert_close(total, base + 0.4 * terms["hint"])
    for bad in (dict(hint_depths=2), dict(hint_downsample=3), dict(hint_weight=-1.0), dict(hint_loss="l2")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _model(**bad)


def _odometry_batch(b: int = 2) -> dict[str, torch.Tensor]:
    batch = _batch(b=b, distance=None)
    T = torch.eye(4).repeat(b, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.2, -0.2
    batch["T_src_tgt_odom"] = T
    batch["index"] = torch.arange(b, dtype=torch.int64) + 10
    batch["hflip"] = torch.zeros(b, dtype=torch.bool)
    return batch


def _counting_sweeps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the samples the module plane-sweeps (hint_depth is still the real one)."""
    from depth_ros_training import module as module_mod

    real, swept = module_mod.hint_depth, []

    def counting(tgt, *args, **kw):
        swept.append(tgt.shape[0])
        return real(tgt, *args, **kw)

    monkeypatch.setattr(module_mod, "hint_depth", counting)
    return swept


def test_hints_are_swept_once_per_training_sample_and_mirrored_from_the_cache(monkeypatch: pytest.MonkeyPatch):
    from depth_ros_training.data.dataset import hflip_sample

    swept = _counting_sweeps(monkeypatch)
    m = _model(warp_pose_source="odometry", source_depth_grad=False, hint_weight=0.4, hint_depths=8)
    batch = _odometry_batch()
    tgt01 = batch["tgt"]
    src01 = [batch["srcs"][:, i] for i in range(2)]
    warp, K = list(batch["T_src_tgt_odom"].unbind(1)), batch["K"]
    first = m._hints(batch, tgt01, src01, warp, K, cache=True)
    assert swept == [2]
    again = m._hints(batch, tgt01, src01, warp, K, cache=True)
    assert swept == [2]
    torch.testing.assert_close(again, first)
    # the mirrored sample gets the mirrored hint from the cache, and a sweep of the mirrored
    # images agrees with it (the sweep is left-right symmetric)
    flipped = [hflip_sample({k: v[i] for k, v in batch.items()}) for i in range(2)]
    fb = {k: torch.stack([f[k] for f in flipped]) for k in flipped[0]}
    f_tgt01 = fb["tgt"]
    f_src01 = [fb["srcs"][:, i] for i in range(2)]
    f_warp = list(fb["T_src_tgt_odom"].unbind(1))
    from_cache = m._hints(fb, f_tgt01, f_src01, f_warp, fb["K"], cache=True)
    assert swept == [2] and fb["hflip"].all()
    torch.testing.assert_close(from_cache, first.flip(-1))
    swept_mirror = m._hints(fb, f_tgt01, f_src01, f_warp, fb["K"], cache=False)
    assert (swept_mirror - from_cache).abs().le(1e-3 * from_cache).float().mean() > 0.99
    # a new sample index is swept, alone
    batch["index"] = torch.tensor([10, 99])
    m._hints(batch, tgt01, src01, warp, K, cache=True)
    assert swept == [2, 2, 1]
    # the training step uses the cache too
    m.shared_step(batch, "train")
    assert swept == [2, 2, 1]
    m.shared_step(batch, "val")  # validation samples are never cached
    assert swept == [2, 2, 1, 2]


def test_hint_cache_respects_its_size_and_poses_from_the_network(monkeypatch: pytest.MonkeyPatch):
    swept = _counting_sweeps(monkeypatch)
    one_hint_mb = H * W * 4 / 2**20
    m = _model(warp_pose_source="odometry", source_depth_grad=False, hint_weight=0.4, hint_depths=8, hint_cache_mb=1.5 * one_hint_mb)
    batch = _odometry_batch()
    for _ in range(2):
        m.shared_step(batch, "train")
    assert swept == [2, 1] and len(m._hint_cache) == 1  # room for one sample's hint only
    m = _model(warp_pose_source="network", source_depth_grad=False, hint_weight=0.4, hint_depths=8)
    swept.clear()
    for _ in range(2):
        m.shared_step(batch, "train")
    assert swept == [2, 2] and not m._hint_cache
    with pytest.raises(ValueError, match="hint_cache_mb"):
        _model(hint_cache_mb=-1.0)


def test_source_depths_are_skipped_when_nothing_uses_them():
    # the demo's set-up: odometry warps, no geometry term, no self-discovered mask, source
    # depths without gradient: one depth pass per step (the target's), and the depth
    # network's gradient equals the one of the bidirectional loss with source depths
    kw = dict(warp_pose_source="odometry", geometry_weight=0.0, use_self_mask=False, source_depth_grad=False, velocity_weight=0.0)
    batch = _batch(distance=None)
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.2, -0.2
    batch["T_src_tgt_odom"] = T
    skip = _model(**kw)
    assert not skip.needs_source_depths
    sizes = []
    skip.depth_net.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
    total, terms, _ = skip.shared_step(batch, "train")
    assert sizes == [2] and float(terms["geometry"]) == 0.0
    total.backward()
    # the same weights with the source pass forced on (the ranking term asks for it; its
    # weight acts only when the batch has teacher depth, which this one does not)
    full = _model(**kw, ranking_weight=0.1)
    full.load_state_dict(skip.state_dict())
    assert full.needs_source_depths
    sizes.clear()
    full.depth_net.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0]))
    total_full, terms_full, _ = full.shared_step(batch, "train")
    assert sizes == [2, 4]
    total_full.backward()
    grads = [(p.grad, q.grad) for p, q in zip(skip.depth_net.parameters(), full.depth_net.parameters()) if p.grad is not None]
    assert grads and any(float(a.abs().sum()) > 0 for a, _ in grads)
    for a, b in grads:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert float(terms["photometric"].detach()) < float(terms_full["photometric"].detach())  # the backward half is gone
    for other in (dict(geometry_weight=0.1), dict(use_self_mask=True), dict(source_depth_grad=True)):
        assert _model(**(kw | other)).needs_source_depths


def test_hint_sources_join_the_sweep_and_the_comparison():
    m = _model(warp_pose_source="odometry", source_depth_grad=False, hint_weight=0.4, hint_depths=8, hint_downsample=2)
    batch = _batch(distance=None)
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.2, -0.2
    T_hint = torch.eye(4).repeat(2, 2, 1, 1)
    T_hint[:, 0, 2, 3], T_hint[:, 1, 2, 3] = 0.4, -0.4
    g = torch.Generator().manual_seed(1)
    batch |= {"T_src_tgt_odom": T, "T_hint_src_tgt_odom": T_hint, "hint_srcs": torch.rand(2, 2, 3, H, W, generator=g)}
    total, terms, depth = m.shared_step(batch, "train")
    tgt01 = batch["tgt"]
    src01 = [batch["srcs"][:, i] for i in range(2)] + [batch["hint_srcs"][:, i] for i in range(2)]
    poses, K = list(T.unbind(1)) + list(T_hint.unbind(1)), batch["K"]
    want, fraction = _expected_hint_term(tgt01, src01, poses, K, depth.detach())
    torch.testing.assert_close(terms["hint"].detach(), want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(terms["hint_fraction"], fraction)
    # the photometric term still sees the two sources only
    plain = {k: v for k, v in batch.items() if k not in ("hint_srcs", "T_hint_src_tgt_odom")}
    _, plain_terms, _ = m.shared_step(plain, "train")
    torch.testing.assert_close(plain_terms["photometric"], terms["photometric"])
    assert not torch.equal(plain_terms["hint"], terms["hint"])
    batch["T_hint_src_tgt_odom"] = torch.full_like(T_hint, float("nan"))
    with pytest.raises(ValueError, match="hint sources need odometry poses"):
        m.shared_step(batch, "train")


def test_bfloat16_networks_keep_weights_and_losses_in_float32():
    from depth_ros_training.module import bf16_supported

    assert isinstance(bf16_supported(), bool)
    kw = dict(warp_pose_source="odometry", velocity_weight=1.0, pose_supervision_weight=1.0, hint_weight=0.5, hint_depths=8)
    batch = _batch()
    T = torch.eye(4).repeat(2, 2, 1, 1)
    T[:, 0, 2, 3], T[:, 1, 2, 3] = 0.2, -0.2
    batch["T_src_tgt_odom"] = T
    ref = _model(**kw)
    m = _model(**kw, network_dtype="bfloat16")
    m.load_state_dict(ref.state_dict())
    seen = []
    m.depth_net.encoder.register_forward_hook(lambda mod, inp, out: seen.append(out[-1].dtype))
    total, terms, depth = m.shared_step(batch, "train")
    assert seen and all(d == torch.bfloat16 for d in seen)  # the network did run in bfloat16
    assert depth.dtype == torch.float32 and all(v.dtype == torch.float32 for v in terms.values())
    total_ref, terms_ref, depth_ref = ref.shared_step(batch, "train")
    # the same weights give nearly the same depth and loss (bfloat16 keeps ~3 significant digits)
    assert float(((depth - depth_ref).abs() / depth_ref).max().detach()) < 0.05
    assert float(total.detach()) == pytest.approx(float(total_ref.detach()), rel=0.05)
    total.backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert all(p.dtype == torch.float32 for p in m.parameters())
    with pytest.raises(ValueError, match="network_dtype"):
        _model(network_dtype="float16")
