"""Procedural, seeded, tileable textures with mip-maps for the synthetic renderer.

A texture tile is ``(S, S, 3)`` float32 linear RGB in [0, 1] that wraps around on both axes
(so surfaces tile it without seams). Detail comes from smooth value noise at several octaves
(fBm) plus sharp edges (tile joints, patches, stripes): self-supervised photometric losses
need gradients everywhere, not flat colours. Mip levels are 2x2 box averages, used by the
renderer to pick the level whose texel matches the pixel footprint (no aliasing far away).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MipAtlas", "make_atlas", "make_texture", "value_noise"]

# Base colours (linear RGB) of the material families; a texture tints its noise with one.
_PALETTE = np.array(
    [
        [0.55, 0.50, 0.45],  # concrete
        [0.80, 0.78, 0.72],  # plaster
        [0.45, 0.30, 0.20],  # wood
        [0.30, 0.40, 0.55],  # blue paint
        [0.55, 0.25, 0.20],  # brick red
        [0.35, 0.50, 0.30],  # green
        [0.70, 0.60, 0.35],  # ochre
        [0.50, 0.50, 0.55],  # grey metal
    ],
    dtype=np.float64,
)


def _interp_weights(size: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic smoothstep interpolation of ``cells`` grid values at ``size`` texel centres.

    Returns (i0, i1, w): texel x takes ``(1 - w) * g[i0] + w * g[i1]``.
    """
    x = (np.arange(size) + 0.5) * cells / size - 0.5
    i0 = np.floor(x).astype(np.int64)
    f = x - i0
    w = f * f * (3.0 - 2.0 * f)
    return i0 % cells, (i0 + 1) % cells, w


def value_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) float64 tileable smooth value noise in [0, 1] with ``cells`` features per side."""
    cells = max(1, min(cells, size))
    grid = rng.random((cells, cells))
    i0, i1, w = _interp_weights(size, cells)
    rows = grid[i0] * (1.0 - w)[:, None] + grid[i1] * w[:, None]  # (size, cells)
    return rows[:, i0] * (1.0 - w)[None, :] + rows[:, i1] * w[None, :]


def _fbm(size: int, base_cells: int, octaves: int, rng: np.random.Generator, gain: float = 0.7) -> np.ndarray:
    out = np.zeros((size, size))
    total = 0.0
    amp = 1.0
    for k in range(octaves):
        cells = base_cells * (2**k)
        if cells > size // 2:
            break
        out += amp * (value_noise(size, cells, rng) - 0.5)
        total += amp
        amp *= gain
    out /= max(total, 1e-9)
    # Stretch to use the range: the sum of octaves concentrates around 0.
    std = out.std()
    if std > 0:
        out = out / (3.0 * std)
    return np.clip(out + 0.5, 0.0, 1.0)


def _edges(size: int, rng: np.random.Generator, kind: int) -> np.ndarray:
    """(size, size) multiplicative brightness map with sharp edges, tileable."""
    out = np.ones((size, size))
    if kind == 0:  # tiles: joints every size/n texels, each tile a little brighter or darker
        n = int(rng.choice([4, 8, 16]))
        step = size // n
        jitter = rng.uniform(0.75, 1.2, (n, n))
        out = np.kron(jitter, np.ones((step, step)))[:size, :size]
        joint = max(1, step // 24)
        out[:, :joint] *= 0.35
        out[:joint, :] *= 0.35
    elif kind == 1:  # patches: random rectangles (posters, stains) that wrap around
        for _ in range(int(rng.integers(12, 30))):
            h, w = rng.integers(size // 32, size // 4, 2)
            y0, x0 = rng.integers(0, size, 2)
            rows = np.arange(y0, y0 + h) % size
            cols = np.arange(x0, x0 + w) % size
            out[np.ix_(rows, cols)] *= rng.uniform(0.5, 1.5)
    else:  # stripes / planks of varying width and brightness
        x = 0
        while x < size:
            w = int(rng.integers(size // 32, size // 6))
            out[:, x : x + w] *= rng.uniform(0.7, 1.25)
            out[:, x : x + max(1, size // 128)] *= 0.4
            x += w
        if rng.random() < 0.5:
            out = out.T.copy()
    return out


def make_texture(size: int, octaves: int, edges: bool, rng: np.random.Generator, color_index: int) -> np.ndarray:
    """(size, size, 3) float32 linear RGB in [0, 1], tileable, seeded by ``rng``.

    Args:
        size: texels per side (power of two).
        octaves: value-noise octaves, starting at 4 features per tile side and doubling.
        edges: multiply by a sharp-edged pattern (tiles, patches or stripes).
        color_index: base colour family (index into a fixed palette, modulo its length).
    """
    lum = _fbm(size, 4, octaves, rng)  # (S, S) in [0, 1]
    if edges:
        lum = lum * _edges(size, rng, int(rng.integers(0, 3)))
    base = _PALETTE[color_index % len(_PALETTE)]
    # Slow colour variation so that the three channels carry different information.
    tint = np.stack([_fbm(size, 2, 2, rng) for _ in range(3)], axis=-1) - 0.5  # (S, S, 3)
    rgb = base[None, None, :] * (0.3 + 1.0 * lum[..., None]) + 0.1 * tint
    return np.clip(rgb, 0.02, 1.0).astype(np.float32)


@dataclass(frozen=True)
class MipAtlas:
    """All materials' mip pyramids flattened into one texel table.

    Attributes:
        rgba: (T,) uint32 texels of every level of every material, row-major per level, as
            packed RGBA8 (bytes R, G, B, 255 in memory order, i.e. little-endian uint32).
        offsets: (M, L) int64 index of texel (0, 0) of level l of material m in ``rgba``.
        size: side of level 0 in texels (power of two); level l has side ``size >> l``.
        levels: number of levels L (down to 4x4 texels).
    """

    rgba: np.ndarray
    offsets: np.ndarray
    size: int
    levels: int

    @property
    def num_materials(self) -> int:
        return int(self.offsets.shape[0])


def _mip_chain(tex: np.ndarray, min_side: int = 4) -> list[np.ndarray]:
    chain = [tex]
    while chain[-1].shape[0] > min_side:
        t = chain[-1]
        chain.append(0.25 * (t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]))
    return chain


def make_atlas(textures: list[np.ndarray]) -> MipAtlas:
    """Build a :class:`MipAtlas` from (S, S, 3) float32 textures of one size."""
    size = textures[0].shape[0]
    chains = [_mip_chain(t) for t in textures]
    levels = len(chains[0])
    offsets = np.zeros((len(textures), levels), dtype=np.int64)
    parts: list[np.ndarray] = []
    pos = 0
    for m, chain in enumerate(chains):
        for level, t in enumerate(chain):
            offsets[m, level] = pos
            parts.append(t.reshape(-1, 3))
            pos += t.shape[0] * t.shape[1]
    texels = np.concatenate(parts, axis=0)  # (T, 3) float in [0, 1]
    packed = np.full((len(texels), 4), 255, dtype=np.uint8)
    packed[:, :3] = np.clip(texels * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgba = packed.view("<u4").reshape(-1)
    for a in (rgba, offsets):
        a.setflags(write=False)
    return MipAtlas(rgba=rgba, offsets=offsets, size=size, levels=levels)
