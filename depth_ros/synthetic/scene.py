"""Scene layout of the synthetic renderer: a closed room (or corridor) and boxes in it.

Frames and conventions (REP 103/105):
- world = ``odom``: z up, the floor at z = 0.
- ``base_link``: x forward, y left, z up, on the floor; moves along the trajectory.
- ``camera_optical_frame``: z forward, x right, y down; at ``CAMERA_XYZ_BASE`` on the base.
- ``lidar_link``: axes of base_link; at ``LIDAR_XYZ_BASE`` on the base.

The room is an axis-aligned box seen from inside, so every ray from inside hits something.
Boxes stand on the floor with a yaw; moving boxes slide and turn on their own (sinusoids of
time), away from the camera's path so that the camera never enters one.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np

from depth_ros.synthetic.config import SynthConfig
from depth_ros.synthetic.textures import MipAtlas, make_atlas, make_texture
from depth_ros.synthetic.trajectory import Trajectory

__all__ = [
    "Box",
    "CAMERA_XYZ_BASE",
    "LIDAR_XYZ_BASE",
    "Scene",
    "T_BASE_CAM",
    "T_BASE_LIDAR",
    "build_scene",
    "surface_table",
]

CAMERA_XYZ_BASE = (0.2, 0.0, 1.0)
LIDAR_XYZ_BASE = (0.0, 0.0, 1.3)

_log = logging.getLogger(__name__)

# Rotation camera_optical_frame -> base_link (columns: the optical x, y, z axes in base_link).
_R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _make_T(R: np.ndarray, t: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    T.setflags(write=False)
    return T


T_BASE_CAM = _make_T(_R_BASE_OPTICAL, CAMERA_XYZ_BASE)
"""(4, 4) camera_optical_frame -> base_link."""
T_BASE_LIDAR = _make_T(np.eye(3), LIDAR_XYZ_BASE)
"""(4, 4) lidar_link -> base_link."""

_LIGHT_DIR_WORLD = np.array([0.35, -0.5, 1.0]) / np.linalg.norm([0.35, -0.5, 1.0])
_AMBIENT = 0.55

# Materials: 0 floor, 1 ceiling, 2-3 walls, 4.. boxes.
_NUM_MATERIALS = 8
_BOX_DENSITY_PER_M2 = 0.15  # default static boxes per square metre of floor
_HALL_MAX_BOXES = 40  # default static boxes of a hall (fewer per square metre: an open space)
_CLEARANCE_M = 0.4  # free space kept around the camera path (base and camera origins) for boxes


@dataclass(frozen=True)
class Box:
    """A box standing on the floor, possibly moving.

    The pose at time t (seconds): centre ``center + motion_axis * motion_amp_m * sin(motion_omega
    * t + motion_phase)``, yaw ``yaw + yaw_rate_radps * t`` (about world z).
    """

    center: tuple[float, float, float]
    half_m: tuple[float, float, float]
    yaw: float
    materials: tuple[int, ...]  # one per face, 6
    tex_offsets: tuple[tuple[float, float], ...]  # texel offset (u, v) per face, 6
    motion_axis: tuple[float, float, float] = (0.0, 0.0, 0.0)
    motion_amp_m: float = 0.0
    motion_omega: float = 0.0
    motion_phase: float = 0.0
    yaw_rate_radps: float = 0.0

    @property
    def moving(self) -> bool:
        return self.motion_amp_m != 0.0 or self.yaw_rate_radps != 0.0

    def pose(self, t_s: float) -> tuple[np.ndarray, float]:
        """(centre (3,) float64 in the world, yaw in radians) at time ``t_s``."""
        c = np.asarray(self.center, dtype=np.float64)
        if self.motion_amp_m:
            c = c + np.asarray(self.motion_axis) * self.motion_amp_m * math.sin(self.motion_omega * t_s + self.motion_phase)
        return c, self.yaw + self.yaw_rate_radps * t_s

    def footprint_radius(self) -> float:
        return math.hypot(self.half_m[0], self.half_m[1])


@dataclass(frozen=True)
class Scene:
    """The static description of a scene; poses of moving boxes are functions of time.

    Attributes:
        room_lo, room_hi: (3,) corners of the room (inner faces) in the world, metres.
        room_materials: material per room face, index ``2 * axis + side`` (side 1 = the +axis face).
        room_tex_offsets: texel offset (u, v) per room face.
        boxes: static boxes first, then moving ones.
        num_static: number of static boxes.
        atlas: textures of all materials.
        texels_per_m: texture density (level 0).
    """

    room_lo: tuple[float, float, float]
    room_hi: tuple[float, float, float]
    room_materials: tuple[int, ...]
    room_tex_offsets: tuple[tuple[float, float], ...]
    boxes: tuple[Box, ...]
    num_static: int
    atlas: MipAtlas
    texels_per_m: float
    shading: bool

    @property
    def num_surfaces(self) -> int:
        return 6 + 6 * len(self.boxes)

    @property
    def first_moving_surface(self) -> int:
        """Surface ids >= this belong to moving boxes."""
        return 6 + 6 * self.num_static

    def box_surface(self, box_index: int, axis: int, side: int) -> int:
        return 6 + 6 * box_index + 2 * axis + side

    def distance_to_surfaces(self, points_world: np.ndarray, t_s: float) -> np.ndarray:
        """(N,) float64 distance in metres from each point to the nearest surface at time ``t_s``.

        For checking geometry against the exact scene (e.g. a cloud made from ground-truth
        depth must give ~0 everywhere). Room faces count as planes (exact for points inside
        the room), boxes use the exact box distance function.

        Args:
            points_world: (N, 3) points in the world (odom) frame, metres.
            t_s: scene time in seconds since the first frame (moving boxes).
        """
        p = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        lo, hi = np.asarray(self.room_lo), np.asarray(self.room_hi)
        best = np.min(np.concatenate([np.abs(p - lo), np.abs(p - hi)], axis=1), axis=1)
        for box in self.boxes:
            c, yaw = box.pose(t_s)
            cy, sy = math.cos(yaw), math.sin(yaw)
            R = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
            q = np.abs((p - c) @ R) - np.asarray(box.half_m)
            sdf = np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)
            np.minimum(best, np.abs(sdf), out=best)
        return best


def _room_bounds(config: SynthConfig, path_xy: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    lo = path_xy.min(axis=0)
    hi = path_xy.max(axis=0)
    if config.scene == "corridor":
        # Long along x: 3 m behind the start, 15 m beyond the end; at least 4 m wide.
        x0, x1 = lo[0] - 3.0, hi[0] + 15.0
        yc = 0.5 * (lo[1] + hi[1])
        half_w = max(2.0, 0.5 * (hi[1] - lo[1]) + 1.5)
        return (x0, yc - half_w, 0.0), (x1, yc + half_w, 3.0)
    c = 0.5 * (lo + hi)
    if config.scene == "hall":
        # Hall (warehouse, atrium): at least 40 x 30 m and 8 m high, 10 m of margin around the path;
        # depths the corridor and the room never have.
        half = np.maximum(0.5 * (hi - lo) + 10.0, [20.0, 15.0])
        return (c[0] - half[0], c[1] - half[1], 0.0), (c[0] + half[0], c[1] + half[1], 8.0)
    # Room: at least 10 x 8 m, 2.5 m of margin around the path.
    half = np.maximum(0.5 * (hi - lo) + 2.5, [5.0, 4.0])
    return (c[0] - half[0], c[1] - half[1], 0.0), (c[0] + half[0], c[1] + half[1], 3.2)


def _box_clear_of_path(center_xy: np.ndarray, radius: float, path_xy: np.ndarray) -> bool:
    d = np.hypot(path_xy[:, 0] - center_xy[0], path_xy[:, 1] - center_xy[1])
    return bool(d.min() > radius + _CLEARANCE_M)


def _random_box(
    rng: np.random.Generator, lo: tuple[float, ...], hi: tuple[float, ...], tex_range: float, moving: bool
) -> Box:
    half = (float(rng.uniform(0.15, 0.6)), float(rng.uniform(0.15, 0.6)), float(rng.uniform(0.15, 1.1)))
    cx = float(rng.uniform(lo[0] + 0.2, hi[0] - 0.2))
    cy = float(rng.uniform(lo[1] + 0.2, hi[1] - 0.2))
    # Mostly on the floor; some float (shelves, hanging signs) for depth variety.
    cz = half[2] if rng.random() < 0.8 else float(rng.uniform(half[2] + 0.3, max(half[2] + 0.31, hi[2] - half[2])))
    mats = tuple(int(m) for m in rng.integers(4, _NUM_MATERIALS, 6))
    offs = tuple((float(rng.uniform(0, tex_range)), float(rng.uniform(0, tex_range))) for _ in range(6))
    kwargs = {}
    if moving:
        ang = float(rng.uniform(0, 2 * math.pi))
        kwargs = dict(
            motion_axis=(math.cos(ang), math.sin(ang), 0.0),
            motion_amp_m=float(rng.uniform(0.4, 1.0)),
            motion_omega=float(rng.uniform(0.6, 1.5)),
            motion_phase=float(rng.uniform(0, 2 * math.pi)),
            yaw_rate_radps=float(rng.uniform(-0.5, 0.5)),
        )
    yaw = float(rng.uniform(-math.pi, math.pi))
    return Box(center=(cx, cy, cz), half_m=half, yaw=yaw, materials=mats, tex_offsets=offs, **kwargs)


@functools.lru_cache(maxsize=4)
def _atlas(seed: int, size: int, octaves: int, edges: bool) -> MipAtlas:
    """Textures of all materials (cached: building them takes most of a Renderer's start-up)."""
    tex_rng = np.random.default_rng(seed)
    return make_atlas([make_texture(size, octaves, edges, tex_rng, color_index=m) for m in range(_NUM_MATERIALS)])


def build_scene(config: SynthConfig, trajectory: Trajectory, rng: np.random.Generator) -> Scene:
    """Lay out the room and boxes around ``trajectory`` and make the textures.

    Boxes whose footprint (plus their motion) comes within 0.4 m of the base or camera path are
    rejected, so the camera (0.2 m ahead of the base) never enters a box.
    """
    times = np.array([config.time_s(i) for i in range(config.frames)])
    # Sample between frames too: boxes must stay clear of the continuous path.
    dense_t = np.linspace(0.0, times[-1], max(2, 4 * config.frames))
    path_xy = trajectory.positions(dense_t)[:, :2]
    # The camera sits ahead of the base: treat its track as part of the path too.
    cam_t = dense_t[:: max(1, len(dense_t) // 400)]
    cam_xy = np.array([trajectory.state(float(t)).T_world_base[:2, :] @ np.r_[CAMERA_XYZ_BASE, 1.0] for t in cam_t])
    path_xy = np.concatenate([path_xy, cam_xy], axis=0)
    lo, hi = _room_bounds(config, path_xy)

    size = config.texture_size_px
    atlas = _atlas(int(rng.integers(0, 2**63)), size, config.texture_octaves, config.texture_edges)

    layout_rng = np.random.default_rng(rng.integers(0, 2**63))
    room_materials = (2, 3, 3, 2, 0, 1)  # -x, +x walls; -y, +y walls; floor; ceiling
    room_offsets = tuple((float(layout_rng.uniform(0, size)), float(layout_rng.uniform(0, size))) for _ in range(6))
    boxes: list[Box] = []
    floor_m2 = (hi[0] - lo[0]) * (hi[1] - lo[1])
    num_static = config.num_boxes if config.num_boxes is not None else int(round(_BOX_DENSITY_PER_M2 * floor_m2))
    if config.scene == "hall" and config.num_boxes is None:
        num_static = min(num_static, _HALL_MAX_BOXES)  # the density of a room would fill a hall with ~180
    for moving, count in ((False, num_static), (True, config.moving_objects)):
        placed = 0
        for _ in range(200 * max(count, 1)):
            if placed == count:
                break
            box = _random_box(layout_rng, lo, hi, size, moving)
            radius = box.footprint_radius() + (box.motion_amp_m if moving else 0.0)
            if _box_clear_of_path(np.asarray(box.center[:2]), radius, path_xy):
                boxes.append(box)
                placed += 1
        if placed < count:
            kind = "moving" if moving else "static"
            _log.warning("placed only %d of %d %s boxes: no more room clear of the camera path", placed, count, kind)
    num_static = sum(1 for b in boxes if not b.moving)
    return Scene(
        room_lo=tuple(float(v) for v in lo),
        room_hi=tuple(float(v) for v in hi),
        room_materials=room_materials,
        room_tex_offsets=room_offsets,
        boxes=tuple(boxes),
        num_static=num_static,
        atlas=atlas,
        texels_per_m=size / config.texture_tile_m,
        shading=config.shading,
    )


# Surface table columns.
AU = slice(0, 4)  # texel u = a . p + b, p relative to the ray origin (world axes)
AV = slice(4, 8)
NRM = slice(8, 11)  # unit normal in the world, facing the viewer side of the surface
SHADE = 11
MAT = 12
NUM_COLS = 13


def _face_axes(axis: int) -> tuple[int, int]:
    """In-plane (u, v) axes of a face normal to ``axis``: walls use (horizontal, z)."""
    return {0: (1, 2), 1: (0, 2), 2: (0, 1)}[axis]


def surface_table(scene: Scene, t_s: float, origin_world: np.ndarray) -> np.ndarray:
    """(num_surfaces, NUM_COLS) float64: texture mapping, normal, shading and material per surface.

    Texel coordinates of a hit point ``p`` (world axes, relative to ``origin_world``) on surface
    s are ``u = table[s, 0:3] . p + table[s, 3]`` and ``v = table[s, 4:7] . p + table[s, 7]``.
    """
    table = np.zeros((scene.num_surfaces, NUM_COLS))
    tpm = scene.texels_per_m
    o = np.asarray(origin_world, dtype=np.float64)

    def fill(
        sid: int, R: np.ndarray, center: np.ndarray, axis: int, sign: float, material: int, off: tuple[float, float]
    ) -> None:
        ua, va = _face_axes(axis)
        eu, ev, n = R[:, ua], R[:, va], sign * R[:, axis]
        rel = o - center
        table[sid, 0:3] = eu * tpm
        table[sid, 3] = eu @ rel * tpm + off[0]
        table[sid, 4:7] = ev * tpm
        table[sid, 7] = ev @ rel * tpm + off[1]
        table[sid, NRM] = n
        table[sid, SHADE] = (_AMBIENT + (1.0 - _AMBIENT) * max(0.0, float(n @ _LIGHT_DIR_WORLD))) if scene.shading else 1.0
        table[sid, MAT] = material

    eye = np.eye(3)
    zero = np.zeros(3)
    for axis in range(3):
        for side in range(2):
            sid = 2 * axis + side
            # Room faces are seen from inside: the normal points into the room.
            fill(sid, eye, zero, axis, -1.0 if side else 1.0, scene.room_materials[sid], scene.room_tex_offsets[sid])
    for k, box in enumerate(scene.boxes):
        c, yaw = box.pose(t_s)
        cy, sy = math.cos(yaw), math.sin(yaw)
        R = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        for axis in range(3):
            for side in range(2):
                f = 2 * axis + side
                fill(scene.box_surface(k, axis, side), R, c, axis, 1.0 if side else -1.0, box.materials[f], box.tex_offsets[f])
    return table
