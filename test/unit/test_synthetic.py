"""Synthetic renderer: exact geometry, trajectories, determinism, configuration."""
from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import pytest

from depth_ros.errors import InputError
from depth_ros.synthetic import Renderer, SynthConfig, load_config, render_sequence
from depth_ros.synthetic.render import Frame
from depth_ros.synthetic.scene import T_BASE_CAM, T_BASE_LIDAR, Scene

SMALL = dict(width=96, height=72, frames=6, texture_size_px=64)


def scene_distance(scene: Scene, t_s: float, points_world: np.ndarray) -> np.ndarray:
    """(N,) unsigned distance from each point to the nearest scene surface (room faces, boxes),
    after checking that every point lies in the room.

    :meth:`Scene.distance_to_surfaces` is independent of the ray caster: room faces are planes
    of an axis-aligned box seen from inside, boxes use the exact box signed distance function.
    """
    p = np.asarray(points_world, dtype=np.float64)
    lo, hi = np.asarray(scene.room_lo), np.asarray(scene.room_hi)
    inside = np.all((p >= lo - 1e-3) & (p <= hi + 1e-3), axis=1)
    assert inside.all(), "a hit point lies outside the room"
    return scene.distance_to_surfaces(p, t_s)


def unproject_world(frame: Frame) -> np.ndarray:
    """(H*W, 3) world points of every pixel from depth, K and T_world_cam (float64)."""
    cam = frame.camera
    u, v = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    z = frame.depth_m.astype(np.float64)
    pc = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], axis=-1).reshape(-1, 3)
    T = frame.T_world_cam
    return pc @ T[:3, :3].T + T[:3, 3]


# -- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        dict(scene="corridor", trajectory="forward", moving_objects=2),
        dict(scene="room", trajectory="orbit"),
        dict(scene="room", trajectory="random_smooth", moving_objects=3, speed_mps=1.0),
        dict(scene="hall", trajectory="forward"),
    ],
)
def test_depth_unprojects_onto_scene_surfaces(overrides: dict) -> None:
    cfg = SynthConfig(**{**SMALL, **overrides})
    r = Renderer(cfg)
    for i in (0, cfg.frames - 1):
        f = r.render(i)
        assert np.all(np.isfinite(f.depth_m)) and f.depth_m.min() > 0.05
        pw = unproject_world(f)
        d = scene_distance(r.scene, cfg.time_s(i), pw)
        assert d.max() < 1e-4, f"frame {i}: max distance to a surface {d.max():.2e} m"
        np.testing.assert_allclose(r.scene.distance_to_surfaces(pw, cfg.time_s(i)), d, atol=1e-12)
    # The check can fail: depth 1% too short puts nearly every point off the surfaces.
    f.depth_m[...] *= np.float32(0.99)
    d_short = scene_distance(r.scene, cfg.time_s(f.index), unproject_world(f))
    assert np.mean(d_short > 1e-3) > 0.95


def test_a_hall_is_larger_and_farther_than_a_room() -> None:
    """The hall preset: at least 40 x 30 x 8 m, at most 40 boxes by default; its depths go beyond
    what the corridor and the room have."""
    medians = {}
    for scene in ("room", "hall"):
        r = Renderer(SynthConfig(**{**SMALL, "scene": scene}))
        lo, hi = np.asarray(r.scene.room_lo), np.asarray(r.scene.room_hi)
        if scene == "hall":
            assert (hi - lo >= [40.0, 30.0, 8.0]).all() and len(r.scene.boxes) <= 40
        medians[scene] = float(np.median(r.render(0).depth_m))
    assert medians["hall"] > 2.0 * medians["room"], medians


def test_floor_and_ceiling_depth_match_hand_computed_values() -> None:
    # Forward trajectory: base on the floor, no pitch/roll; camera 1.0 m up, ceiling at 3.0 m.
    # A pixel row v sees the floor at z = 1.0 * fy / (v - cy), the ceiling at z = 2.0 * fy / (cy - v),
    # whatever the yaw (the optical axis stays horizontal).
    cfg = SynthConfig(width=160, height=120, frames=3, num_boxes=0, texture_size_px=64)
    r = Renderer(cfg)
    f = r.render(1)
    cam = f.camera
    assert f.T_world_cam[2, 3] == pytest.approx(1.0)
    bottom, top = cam.height - 1, 0
    np.testing.assert_allclose(f.depth_m[bottom, :], 1.0 * cam.fy / (bottom - cam.cy), rtol=1e-6)
    np.testing.assert_allclose(f.depth_m[top, 70:90], 2.0 * cam.fy / (cam.cy - top), rtol=1e-6)
    assert set(np.unique(f.surface_id[bottom])) == {4}  # floor = -z face of the room


def test_cast_rays_hand_computed() -> None:
    r = Renderer(SynthConfig(**{**SMALL, "num_boxes": 0}))
    lo, hi = r.scene.room_lo, r.scene.room_hi
    o = np.array([0.5, 0.25, 1.0])
    dirs = np.array([[0, 0, 1.0], [0, 0, -1.0], [2.0, 0, 0], [0, -0.5, 0]])
    t, sid = r.cast_rays(o, dirs, 0.0)
    np.testing.assert_allclose(t, [hi[2] - 1.0, 1.0, (hi[0] - 0.5) / 2, (0.25 - lo[1]) / 0.5], rtol=1e-6)
    np.testing.assert_array_equal(sid, [5, 4, 1, 2])  # ceiling, floor, +x wall, -y wall
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        r.cast_rays(o, dirs[:, :2], 0.0)


def test_reprojection_between_frames_is_consistent() -> None:
    cfg = SynthConfig(width=128, height=96, frames=12, num_boxes=10, texture_size_px=64, speed_mps=1.0)
    r = Renderer(cfg)
    fi, fj = r.render(2), r.render(9)
    cam = fj.camera
    pw = unproject_world(fi)
    T_cj_w = np.linalg.inv(fj.T_world_cam)
    pc = pw @ T_cj_w[:3, :3].T + T_cj_w[:3, 3]
    z = pc[:, 2]
    u = cam.fx * pc[:, 0] / z + cam.cx
    v = cam.fy * pc[:, 1] / z + cam.cy
    ok = (z > 0.1) & (u >= 0) & (u <= cam.width - 1.001) & (v >= 0) & (v <= cam.height - 1.001)
    u, v, z = u[ok], v[ok], z[ok]
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    a, b = u - u0, v - v0
    inv = 1.0 / fj.depth_m.astype(np.float64)
    S = fj.surface_id
    corners_inv = np.stack([inv[v0, u0], inv[v0, u0 + 1], inv[v0 + 1, u0], inv[v0 + 1, u0 + 1]])
    corners_sid = np.stack([S[v0, u0], S[v0, u0 + 1], S[v0 + 1, u0], S[v0 + 1, u0 + 1]])
    # On one plane, inverse depth is affine in (u, v): bilinear interpolation of it is exact.
    planar = np.all(corners_sid == corners_sid[0], axis=0)
    w = np.stack([(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b])
    sampled = 1.0 / np.sum(w * corners_inv, axis=0)
    rel = (sampled - z) / z
    assert planar.sum() > 0.5 * len(z)
    # Frame j sees the point itself or something in front of it, never something behind it.
    assert np.all(rel[planar] < 1e-4), f"frame j sees behind a surface point: {rel[planar].max():.3e}"
    visible = planar & (np.abs(rel) < 1e-4)
    assert visible.sum() > 0.5 * planar.sum()


def test_brightness_constancy_under_ground_truth_warp() -> None:
    # What self-supervised training relies on: warping frame j into frame i with the exact
    # depth and poses reproduces frame i where visible (world-fixed textures and lighting).
    cfg = SynthConfig(width=208, height=64, frames=8)
    r = Renderer(cfg)
    fi, fj = r.render(2), r.render(5)
    cam = fi.camera
    T_cj_w = np.linalg.inv(fj.T_world_cam)
    q = unproject_world(fi) @ T_cj_w[:3, :3].T + T_cj_w[:3, 3]
    uj = cam.fx * q[:, 0] / q[:, 2] + cam.cx
    vj = cam.fy * q[:, 1] / q[:, 2] + cam.cy
    ok = (uj >= 0) & (uj <= cam.width - 1.001) & (vj >= 0) & (vj <= cam.height - 1.001)
    u0, v0 = np.floor(uj[ok]).astype(int), np.floor(vj[ok]).astype(int)
    a, b = (uj[ok] - u0)[:, None], (vj[ok] - v0)[:, None]

    def bilinear(img: np.ndarray) -> np.ndarray:
        img = img.astype(np.float64).reshape(cam.height, cam.width, -1)
        top = (1 - a) * img[v0, u0] + a * img[v0, u0 + 1]
        return (1 - b) * top + b * ((1 - a) * img[v0 + 1, u0] + a * img[v0 + 1, u0 + 1])

    visible = np.abs(bilinear(fj.depth_m)[:, 0] - q[ok, 2]) < 0.01 * q[ok, 2]
    assert visible.mean() > 0.8
    err = np.abs(bilinear(fj.rgb) - fi.rgb.reshape(-1, 3)[ok]).mean(axis=1)[visible].mean()
    unwarped = np.abs(fj.rgb.astype(np.float64) - fi.rgb).mean()
    assert err < 3.0 and err < 0.3 * unwarped, (err, unwarped)


def test_lidar_points_lie_on_surfaces_and_agree_between_frames() -> None:
    cfg = SynthConfig(**{**SMALL, "moving_objects": 2, "lidar_beams": 8, "lidar_azimuth_samples": 90})
    r = Renderer(cfg)
    f = r.render(3)
    assert f.lidar_points_lidar.shape == (8 * 90, 3) and f.lidar_points_lidar.dtype == np.float32
    T_wl = f.T_world_base @ T_BASE_LIDAR
    pw = f.lidar_points_lidar.astype(np.float64) @ T_wl[:3, :3].T + T_wl[:3, 3]
    assert scene_distance(r.scene, cfg.time_s(3), pw).max() < 1e-4
    T_cl = np.linalg.inv(f.T_world_cam) @ T_wl
    expect_cam = f.lidar_points_lidar.astype(np.float64) @ T_cl[:3, :3].T + T_cl[:3, 3]
    np.testing.assert_allclose(f.lidar_points_cam, expect_cam, atol=1e-5)
    # Beam-major, azimuth from -pi: the first beam is the lowest (elevation -15 degrees).
    p0 = f.lidar_points_lidar[0].astype(np.float64)
    assert math.degrees(math.atan2(p0[2], math.hypot(p0[0], p0[1]))) == pytest.approx(-15.0, abs=1e-3)


def test_rig_is_rep103_optical() -> None:
    R = T_BASE_CAM[:3, :3]
    np.testing.assert_array_equal(R @ [0, 0, 1], [1, 0, 0])  # optical z = base forward
    np.testing.assert_array_equal(R @ [1, 0, 0], [0, -1, 0])  # optical x = right
    np.testing.assert_array_equal(R @ [0, 1, 0], [0, 0, -1])  # optical y = down
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_moving_objects_move_and_are_masked() -> None:
    cfg = SynthConfig(**{**SMALL, "scene": "room", "trajectory": "orbit", "moving_objects": 4, "num_boxes": 0, "frames": 20})
    r = Renderer(cfg)
    movers = r.scene.boxes[r.scene.num_static :]
    assert len(movers) == 4
    c0, _ = movers[0].pose(0.0)
    c1, _ = movers[0].pose(1.0)
    assert np.linalg.norm(c1 - c0) > 1e-3
    frames = list(render_sequence(cfg))
    masks = np.stack([f.dynamic_mask for f in frames])
    assert masks.any(), "no frame sees a moving box"
    for f in frames:
        np.testing.assert_array_equal(f.dynamic_mask, f.surface_id >= 6)  # no static boxes: ids >= 6 move
    static = Renderer(cfg.replace(moving_objects=0))
    assert not any(static.render(i).dynamic_mask.any() for i in range(0, 20, 5))


def test_mip_mapping_matches_supersampling() -> None:
    # A 4x4-supersampled render box-filtered down is the alias-free picture; away from
    # geometric edges the mip-mapped render must be close to it, and clearly closer than
    # sampling the full-resolution texture (aliasing), most of all far away.
    lo = SynthConfig(width=160, height=120, frames=2)
    hi = lo.replace(width=640, height=480)
    assert hi.camera.resized(160, 120) == lo.camera
    f_hi = Renderer(hi).render(1)
    reference = f_hi.rgb.astype(np.float64).reshape(120, 4, 160, 4, 3).mean(axis=(1, 3))
    blocks = f_hi.surface_id.reshape(120, 4, 160, 4)
    one_surface = np.all(blocks == blocks[:, :1, :, :1], axis=(1, 3))
    r = Renderer(lo)
    f = r.render(1)
    far = one_surface & (f.depth_m > 4.0)
    assert far.sum() > 200
    mip_err = np.abs(f.rgb - reference)[far].mean()
    r._max_level = np.float32(0)
    aliased_err = np.abs(r.render(1).rgb - reference)[far].mean()
    assert mip_err < 3.0 and aliased_err > 1.3 * mip_err, (mip_err, aliased_err)


# -- trajectories and odometry -------------------------------------------------------------


def _log_so3(R: np.ndarray) -> np.ndarray:
    angle = math.acos(max(-1.0, min(1.0, (np.trace(R) - 1) / 2)))
    if angle < 1e-12:
        return np.zeros(3)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return w * angle / (2 * math.sin(angle))


@pytest.mark.parametrize("trajectory", ["forward", "orbit", "random_smooth"])
def test_twist_matches_finite_differences_of_poses(trajectory: str) -> None:
    cfg = SynthConfig(**{**SMALL, "trajectory": trajectory, "scene": "room", "speed_mps": 0.8, "frames": 50})
    traj = Renderer(cfg).trajectory
    h = 1e-5
    for t in (0.3, 1.7, 4.2):
        s0, s1, sm = traj.state(t), traj.state(t + h), traj.state(t - h)
        R = s0.T_world_base[:3, :3]
        v_fd = (s1.T_world_base[:3, 3] - sm.T_world_base[:3, 3]) / (2 * h)
        np.testing.assert_allclose(s0.v_world_mps, v_fd, atol=1e-6)
        np.testing.assert_allclose(s0.v_base_mps, R.T @ v_fd, atol=1e-6)
        # Body angular velocity: R(t)^T R(t + h) = exp([w]x h).
        w_fd = (_log_so3(R.T @ s1.T_world_base[:3, :3]) - _log_so3(R.T @ sm.T_world_base[:3, :3])) / (2 * h)
        np.testing.assert_allclose(s0.omega_base_radps, w_fd, atol=1e-5)


@pytest.mark.parametrize("trajectory", ["forward", "orbit", "random_smooth"])
def test_metric_speed(trajectory: str) -> None:
    cfg = SynthConfig(**{**SMALL, "trajectory": trajectory, "scene": "room", "speed_mps": 0.5, "frames": 300})
    traj = Renderer(cfg).trajectory
    t = np.linspace(0, cfg.time_s(cfg.frames - 1), 600)
    p = traj.positions(t)
    speed = np.linalg.norm(np.diff(p, axis=0), axis=1).sum() / t[-1]
    tol = 0.05 if trajectory != "random_smooth" else 0.25  # random_smooth: mean over a long run
    assert speed == pytest.approx(0.5, rel=tol)


def test_default_sequence_suits_self_supervised_training() -> None:
    cfg = SynthConfig(width=160, height=120, frames=20)
    frames = list(render_sequence(cfg))
    depth = np.stack([f.depth_m for f in frames])
    assert 0.3 < np.percentile(depth, 1) and np.percentile(depth, 99) < 30.0
    steps = [np.linalg.norm(b.T_world_cam[:3, 3] - a.T_world_cam[:3, 3]) for a, b in zip(frames, frames[1:])]
    assert 0.02 < min(steps) and max(steps) < 0.1  # a few cm per frame at 10 Hz
    # Texture everywhere: the image gradient is non-zero almost everywhere.
    g = frames[0].rgb.astype(np.float32).mean(axis=2)
    grad = np.hypot(np.diff(g, axis=1)[:-1], np.diff(g, axis=0)[:, :-1])
    assert np.mean(grad > 0.5) > 0.8
    stamps = [f.stamp_ns for f in frames]
    assert np.all(np.diff(stamps) == 100_000_000) and stamps[0] == cfg.start_stamp_ns


# -- determinism ---------------------------------------------------------------------------


def test_instance_ids_hand_computed() -> None:
    from depth_ros.synthetic.render import instance_ids

    sid = np.array([[0, 5, 6], [11, 12, 17], [18, 23, 6 * 65535 + 5]], dtype=np.int32)
    ids = instance_ids(sid)
    assert ids.dtype == np.uint16
    assert ids.tolist() == [[0, 0, 1], [1, 2, 2], [3, 3, 65535]]  # room 0, six faces per box
    with pytest.raises(ValueError, match="65535 boxes"):
        instance_ids(np.array([6 * 65536]))


def test_instance_ids_are_registered_to_the_pixels_of_their_box() -> None:
    cfg = SynthConfig(**{**SMALL, "scene": "room", "trajectory": "orbit", "moving_objects": 2, "frames": 4})
    r = Renderer(cfg)
    seen: set[int] = set()
    for f in render_sequence(cfg):
        ids = f.instance_id
        assert ids.shape == f.depth_m.shape and ids.dtype == np.uint16
        np.testing.assert_array_equal(ids == 0, f.surface_id < 6)
        np.testing.assert_array_equal(ids > r.scene.num_static, f.dynamic_mask)  # moving boxes come last
        points = unproject_world(f)
        for k in np.unique(ids[ids > 0]):
            box = r.scene.boxes[int(k) - 1]
            c, yaw = box.pose(cfg.time_s(f.index))
            cy, sy = math.cos(yaw), math.sin(yaw)
            R = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1.0]])
            q = np.abs((points[(ids == k).reshape(-1)] - c) @ R) - np.asarray(box.half_m)
            sdf = np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)
            assert np.abs(sdf).max() < 1e-3, f"a pixel of instance {k} is not on box {int(k) - 1}"
            seen.add(int(k))
    assert len(seen) >= 2, "the test sequence should see several boxes"


def test_same_seed_same_arrays_any_order_different_seed_different_texture() -> None:
    cfg = SynthConfig(**{**SMALL, "moving_objects": 1})
    a = list(render_sequence(cfg))
    r = Renderer(cfg)
    b4 = r.render(4)
    b1 = r.render(1)
    for x, y in ((a[4], b4), (a[1], b1)):
        np.testing.assert_array_equal(x.rgb, y.rgb)
        np.testing.assert_array_equal(x.depth_m, y.depth_m)
        np.testing.assert_array_equal(x.lidar_points_cam, y.lidar_points_cam)
        np.testing.assert_array_equal(x.T_world_cam, y.T_world_cam)
    other = Renderer(cfg.replace(seed=1)).render(0)
    assert np.mean(np.abs(other.rgb.astype(int) - a[0].rgb.astype(int))) > 5
    tex_a = Renderer(cfg).scene.atlas.rgba
    tex_b = Renderer(cfg.replace(seed=1)).scene.atlas.rgba
    assert not np.array_equal(tex_a, tex_b)


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(width=0), ["width", "[16, 8192]", "0"]),
        (dict(fx_px=-3.0), ["fx_px", "> 0"]),
        (dict(cx_px=900.0), ["cx_px", "inside the image"]),
        (dict(frames=0), ["frames"]),
        (dict(rate_hz=0.0), ["rate_hz"]),
        (dict(scene="forest"), ["scene", "corridor", "forest"]),
        (dict(trajectory="spiral"), ["trajectory", "orbit"]),
        (dict(storage="bag"), ["storage", "sqlite3"]),
        (dict(texture_size_px=100), ["texture_size_px", "power of two"]),
        (dict(jpeg_quality=101), ["jpeg_quality"]),
        (dict(speed_mps=-1.0), ["speed_mps"]),
    ],
)
def test_config_errors_are_specific(changes: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        SynthConfig(**changes)
    for w in words:
        assert w in str(info.value)


def test_config_types_are_checked() -> None:
    with pytest.raises(TypeError, match="width must be int, got str"):
        SynthConfig(width="640")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="jpeg must be bool"):
        SynthConfig(jpeg=1)  # type: ignore[arg-type]


def test_config_yaml_and_overrides(tmp_path) -> None:
    p = tmp_path / "synth.yaml"
    p.write_text("width: 320\nheight: 240\njpeg: true\nfx_px: 250\n")
    cfg = load_config(p, {"height": "200", "seed": "7"})
    assert (cfg.width, cfg.height, cfg.jpeg, cfg.seed) == (320, 200, True, 7)
    assert cfg.camera.fx == 250.0 and cfg.camera.fy == 250.0
    assert cfg.camera.cx == pytest.approx(159.5) and cfg.camera.cy == pytest.approx(99.5)
    nested = tmp_path / "nested.yaml"
    nested.write_text("synth:\n  frames: 3\n")
    assert load_config(nested).frames == 3


@pytest.mark.parametrize(
    "text, words",
    [
        ("widht: 3\n", ["unknown SynthConfig field", "widht"]),
        ("width: abc\n", ["width", "expected int", "abc"]),
        ("width: 8\n", ["width", "[16, 8192]"]),
        ("- 1\n- 2\n", ["expected a mapping", "list"]),
        ("width: [1\n", ["not valid YAML"]),
        ("!!python/object/apply:os.system ['true']\n", ["not valid YAML"]),
    ],
)
def test_config_yaml_errors(tmp_path, text: str, words: list[str]) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as info:
        load_config(p)
    for w in words:
        assert w in str(info.value)
    assert str(p) in str(info.value)


def test_cli_flags_are_generated_from_every_field() -> None:
    from depth_ros.synthetic.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    names = [f.name for f in dataclasses.fields(SynthConfig)]
    argv = ["-o", "x.mcap"]
    for n in names:
        argv += ["--" + n.replace("_", "-"), "1"]
    args = parser.parse_args(argv)
    assert all(getattr(args, f"cfg_{n}") == "1" for n in names)
