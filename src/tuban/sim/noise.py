"""Deterministic, seamless noise as a function of world coordinates.

Everything that must look continuous across tiles (field variability, hill shading,
clouds, haze) is a pure function of the map position and the seed, so a tile renders
the same whatever order the tiles are made in. Per-pixel sensor noise, which needs no
continuity, comes from a :class:`numpy.random.Generator` seeded by (seed, tile).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fractal_noise", "hash_float", "hash_u64", "value_noise"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


_MULS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9),
         np.uint64(0xD6E8FEB86659FD93), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def hash_u64(*keys: np.ndarray | int) -> np.ndarray:
    """Hash of up to six integer keys (broadcast together) → uint64.

    The keys are combined linearly with distinct odd multipliers, then mixed once with
    the SplitMix64 finaliser: cheap on full-size arrays, well spread for textures.
    """
    with np.errstate(over="ignore"):
        h: np.ndarray | np.uint64 = np.uint64(0x2545F4914F6CDD1D)
        for key, mul in zip(keys, _MULS, strict=False):
            h = h + np.asarray(key, dtype=np.int64).view(np.uint64) * mul
        h = (h ^ (h >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        h = h ^ (h >> np.uint64(31))
    return np.asarray(h, dtype=np.uint64)


def hash_float(*keys: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1) from integer keys."""
    return (hash_u64(*keys) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def value_noise(xs: np.ndarray, ys: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1) on the grid ``ys[:, None] × xs[None, :]`` (float32).

    ``xs`` and ``ys`` are world coordinates (metres) of pixel centres along each axis;
    ``scale`` is the lattice spacing in metres. The lattice values are hashed from
    (seed, i, j), so neighbouring tiles agree exactly on their shared lattice. The
    interpolation is separable: along x on the (small) lattice rows first, then along y,
    so a pixel costs two row gathers and one fused blend.
    """
    fx = np.asarray(xs, dtype=np.float64) / scale
    fy = np.asarray(ys, dtype=np.float64) / scale
    ix = np.floor(fx).astype(np.int64)
    iy = np.floor(fy).astype(np.int64)
    tx = _smooth(fx - ix).astype(np.float32)
    ty = _smooth(fy - iy).astype(np.float32)
    ix0, iy0 = ix.min(), iy.min()
    lx = np.arange(ix0, ix.max() + 2)
    ly = np.arange(iy0, iy.max() + 2)
    lattice = hash_float(seed, ly[:, None], lx[None, :]).astype(np.float32)
    cx = ix - ix0
    cy = iy - iy0
    left = lattice[:, cx]
    rows = left + (lattice[:, cx + 1] - left) * tx[None, :]  # (lattice rows, w)
    top = rows[cy]
    out = rows[cy + 1]
    out -= top
    out *= ty[:, None]
    out += top
    return out


def fractal_noise(
    xs: np.ndarray, ys: np.ndarray, scale: float, seed: int, *, octaves: int = 4, gain: float = 0.5
) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers, each half the scale; centred on 0, roughly in [-1, 1]."""
    total = np.zeros((len(ys), len(xs)), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        total += np.float32(amp) * (value_noise(xs, ys, scale / (2**o), seed * 131 + o) - np.float32(0.5))
        norm += amp
        amp *= gain
    return total * np.float32(2.0 / norm)
