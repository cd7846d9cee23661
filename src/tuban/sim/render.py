"""Render one tile of one date: land cover (surface classes), then reflectance per band.

Inputs are the :class:`~tuban.sim.layout.Layout` (vectors) and the tile's pixel window;
everything continuous is a function of map coordinates (:mod:`tuban.sim.noise`), the
white sensor noise comes from a generator seeded by (seed, date, tile), so tiles are
independent of the order they are made in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from shapely.geometry import box

from tuban.sim.layout import Layout
from tuban.sim.noise import fractal_noise, hash_float, value_noise
from tuban.sim.spectra import TEXTURE_AMP, VEG_JITTER, Sensor, Surface, class_spectra, endmember, lookup

__all__ = ["DateRenderer", "render_surface"]

_VILLAGE, _URBAN = 200, 201
#: crop state before → (after states, probabilities): the harvest / rotation trap
_CROP_BEFORE = (Surface.CROP_GREEN, Surface.CROP_GREEN, Surface.CROP_GREEN, Surface.CROP_GREEN,
                Surface.CROP_GREEN, Surface.CROP_GREEN, Surface.CROP_GREEN, Surface.CROP_PLOUGHED,
                Surface.CROP_PLOUGHED, Surface.GRASS)
_AFTER_OF = {
    Surface.CROP_GREEN: ((Surface.CROP_STUBBLE, Surface.CROP_PLOUGHED, Surface.CROP_YOUNG, Surface.CROP_GREEN),
                         (0.35, 0.25, 0.2, 0.2)),
    Surface.CROP_PLOUGHED: ((Surface.CROP_YOUNG, Surface.CROP_GREEN, Surface.CROP_PLOUGHED), (0.4, 0.3, 0.3)),
    Surface.GRASS: ((Surface.GRASS, Surface.CROP_PLOUGHED), (0.7, 0.3)),
}


def _pick(states: tuple, probs: tuple, u: np.ndarray) -> np.ndarray:
    edges = np.cumsum(probs)
    idx = np.minimum(np.searchsorted(edges, u, side="right"), len(states) - 1)
    return np.asarray([int(s) for s in states], dtype=np.uint8)[idx]


def _fields(layout: Layout, X: np.ndarray, Y: np.ndarray, after: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cropland in strips on a jittered block grid (rotated by the layout's angle)."""
    seed = layout.seed
    a = math.radians(layout.angle_deg)
    cx, cy = layout.bounds[0], layout.bounds[3]
    U = (X - cx) * math.cos(a) + (Y - cy) * math.sin(a)
    V = -(X - cx) * math.sin(a) + (Y - cy) * math.cos(a)
    bw = 520.0
    col = np.floor(U / bw).astype(np.int64)
    # per-column values through small lookup tables (few columns per tile)
    c_lo = int(col.min()) - 1
    ks = np.arange(c_lo, int(col.max()) + 3)
    edges = ks * bw + (hash_float(seed, 11, ks) - 0.5) * bw * 0.5  # jittered column edges
    ci = col - c_lo
    col = np.where(edges[ci] > U, col - 1, np.where(edges[ci + 1] <= U, col + 1, col))
    ci = col - c_lo
    u0, u1 = edges[ci], edges[ci + 1]
    bh = (300.0 + 200.0 * hash_float(seed, 12, ks))[ci]
    shift = hash_float(seed, 13, ks)[ci] * bh
    row = np.floor((V + shift) / bh).astype(np.int64)
    v0 = row * bh - shift
    block = hash_float(seed, 14, col, row)
    along_v = hash_float(seed, 15, col, row) < 0.75
    width = 18.0 + 50.0 * hash_float(seed, 16, col, row)
    pos = np.where(along_v, U - u0, V - v0)
    strip = np.floor(pos / width).astype(np.int64)
    u_strip = hash_float(seed, 17, col, row, strip)
    before = np.asarray([int(s) for s in _CROP_BEFORE], dtype=np.uint8)[(u_strip * len(_CROP_BEFORE)).astype(int)]
    surf = before
    if after:
        u2 = hash_float(seed, 18, col, row, strip)
        surf = before.copy()
        for state, (states, probs) in _AFTER_OF.items():
            m = before == int(state)
            surf[m] = _pick(states, probs, u2[m])
    vigor = (hash_float(seed, 19, col, row, strip) - 0.5).astype(np.float32)
    surf = np.where(block < 0.06, np.uint8(Surface.ORCHARD), surf)
    # greenhouse rows (大棚) on some strips of a few blocks
    surf = np.where((block > 0.06) & (block < 0.08) & (u_strip < 0.45), np.uint8(Surface.GREENHOUSE), surf)
    # farm tracks on block edges, poplar lines on some of them
    d_edge = np.minimum.reduce([U - u0, u1 - U, V - v0, (v0 + bh) - V])
    trees = (hash_float(seed, 20, ks) < 0.35)[ci]
    surf = np.where(d_edge < 3.0, np.uint8(Surface.FARM_ROAD), surf)
    surf = np.where(trees & (np.minimum(U - u0, u1 - U) >= 3.0) & (np.minimum(U - u0, u1 - U) < 9.0),
                    np.uint8(Surface.TREE), surf)
    # orchard rows: trees every ~5 m with bare soil between
    rows = (np.mod(U, 5.0) < 2.6) & (np.mod(V, 5.0) < 3.0)
    surf = np.where((surf == Surface.ORCHARD) & ~rows & (layout.resolution < 4), np.uint8(Surface.CROP_PLOUGHED), surf)
    return surf, vigor


def _cells(X: np.ndarray, Y: np.ndarray, size: float, seed: int, salt: int) -> np.ndarray:
    return hash_float(seed, salt, np.floor(X / size).astype(np.int64), np.floor(Y / size).astype(np.int64))


def render_surface(layout: Layout, transform: Affine, shape: tuple[int, int], *, after: bool) -> tuple:
    """Surface classes ``(h, w) uint8`` and a vigour field for one window on one date."""
    h, w = shape
    xs = transform.c + transform.a * (np.arange(w) + 0.5)
    ys = transform.f + transform.e * (np.arange(h) + 0.5)
    X, Y = np.meshgrid(xs, ys)
    surf, vigor = _fields(layout, X, Y, after)
    seed = layout.seed
    # wooded hills in the north, with a ragged edge
    edge = layout.hill_edge + 250 * fractal_noise(xs, ys[:1], 1500.0, seed + 7, octaves=3)[0]
    hills = edge[None, :] < Y
    if hills.any():
        rock = fractal_noise(xs, ys, 300.0, seed + 8, octaves=4) > 0.05
        surf = np.where(hills, np.where(rock, np.uint8(Surface.SHRUB_ROCK), np.uint8(Surface.FOREST)), surf)
        vigor = np.where(hills, np.float32(0), vigor)
    shapes, tree = _shapes(layout, after)
    window_box = box(xs[0] - transform.a, ys[-1] + transform.e, xs[-1] + transform.a, ys[0] - transform.e)
    geoms = [g for g, _ in shapes]
    if geoms:
        idx = np.sort(tree.query(window_box, predicate="intersects"))
        if len(idx):
            marks = features.rasterize(((geoms[i], shapes[i][1]) for i in idx), out_shape=shape,
                                       transform=transform, fill=0, dtype="uint8")
            village = marks == _VILLAGE
            if village.any():
                # courtyard houses in east-west rows: a roof strip, then the yard, some trees
                u = _cells(X, Y, 16.0, seed, 30)
                roof = np.mod(Y, 20.0) < 9.0
                vs = np.where(u > 0.85, Surface.TREE, np.where(roof & (u < 0.8), Surface.VILLAGE_ROOF,
                                                                  Surface.VILLAGE_YARD))
                surf = np.where(village, vs.astype(np.uint8), surf)
            urban = marks == _URBAN
            if urban.any():
                street = (np.mod(X, 180.0) < 14) | (np.mod(Y, 160.0) < 14)
                u = _cells(X, Y, 40.0, seed, 31)
                us = np.where(u < 0.45, Surface.URBAN_ROOF, np.where(u < 0.7, Surface.URBAN_DARK_ROOF,
                              np.where(u < 0.85, Surface.GRASS, Surface.VILLAGE_YARD)))
                us = np.where(street, Surface.ROAD, us)
                surf = np.where(urban, us.astype(np.uint8), surf)
            direct = (marks > 0) & (marks < _VILLAGE)
            surf = np.where(direct, marks, surf)
    return surf.astype(np.uint8), vigor, X, Y, hills


def _shapes(layout: Layout, after: bool) -> tuple[list[tuple[object, int]], shapely.STRtree]:
    """Vector features of one date, in painting order (later ones paint over)."""
    cache_key = "_shapes_after" if after else "_shapes_before"
    cached = getattr(layout, cache_key, None)
    if cached is not None:
        return cached
    out: list[tuple[object, int]] = []
    if layout.urban is not None:
        out.append((layout.urban, _URBAN))
    out += [(v, _VILLAGE) for v in layout.villages]
    for pond, dries in layout.ponds:
        out.append((pond, int(Surface.MUD if (after and dries) else Surface.POND)))
    if layout.river is not None:
        w = layout.river_width[1] if after else layout.river_width[0]
        out.append((layout.river.buffer(layout.river_width[0] / 2 + 25), int(Surface.SAND)))
        out.append((layout.river.buffer(layout.river_width[0] / 2 + 25).difference(
            layout.river.buffer(layout.river_width[0] / 2 + 10)), int(Surface.TREE)))
        if after:
            out.append((layout.river.buffer(layout.river_width[0] / 2), int(Surface.MUD)))
        out.append((layout.river.buffer(w / 2), int(Surface.WATER)))
    for line, width in layout.roads:
        out.append((line.buffer(width / 2 + 8, cap_style="flat"), int(Surface.TREE)))
        out.append((line.buffer(width / 2, cap_style="flat"), int(Surface.ROAD)))
    for site in layout.sites:
        geom = site.after if after else site.before
        ground = {"spoil": Surface.SPOIL, "pit": Surface.PIT}.get(site.kind, Surface.SITE_SOIL)
        if after and site.before is not None:
            done = site.before if site.after is None else site.before.difference(site.after)
            if not done.is_empty:
                out.append((done, site.completed_surface))
        if geom is None:
            continue
        out.append((geom, int(ground)))
        if site.kind == "pit":
            c = geom.centroid
            out.append((c.buffer(math.sqrt(geom.area) * (0.18 if after else 0.12)), int(Surface.MUD)))
        out += site.parts_after if after else site.parts_before
    cached = (out, shapely.STRtree([g for g, _ in out]))
    setattr(layout, cache_key, cached)
    return cached


@dataclass
class DateRenderer:
    """Reflectance for one sensor and date; call it per tile."""

    layout: Layout
    sensor: Sensor
    after: bool
    date_index: int

    def __post_init__(self) -> None:
        self.table, self.veg_dir = class_spectra(self.sensor)
        self.tex = lookup(TEXTURE_AMP, 0.05)
        self.vj = lookup(VEG_JITTER, 0.0)
        self.haze = np.array([0.07, 0.06, 0.045, 0.03, 0.025, 0.02, 0.017, 0.015, 0.014, 0.01, 0.0, 0.006, 0.004],
                             dtype=np.float32)[list(self.sensor.s2_index)]
        self.cloud = endmember("cloud", self.sensor)

    def render(self, transform: Affine, shape: tuple[int, int], tile_key: tuple[int, int]) -> tuple:
        """``(reflectance (bands, h, w) float32, surface (h, w) uint8)`` for one window."""
        lay = self.layout
        if self.after:
            dx, dy = lay.misregistration
            transform = Affine.translation(dx, dy) @ transform
        surf, vigor, X, Y, hills = render_surface(lay, transform, shape, after=self.after)
        xs, ys = X[0], Y[:, 0]
        seed = lay.seed + 1000 * self.date_index
        n1 = fractal_noise(xs, ys, 120.0, seed + 1, octaves=3)
        n2 = fractal_noise(xs, ys, 60.0, seed + 2, octaves=2) + vigor * 1.4
        fine = value_noise(xs, ys, max(2.0 * lay.resolution, 3.0), seed + 3) - np.float32(0.5)
        bright = 1.0 + self.tex[surf] * (n1 + fine)
        if hills.any():  # hill shading from a height field
            hgt = fractal_noise(xs, ys, 900.0, lay.seed + 9, octaves=5)
            gy, gx = np.gradient(hgt)
            slope = 150.0 * (gx + gy) / lay.resolution  # ~150 m of relief, lit from the north-west
            bright = np.where(hills, bright * np.clip(1.0 + slope, 0.5, 1.5), bright)
        mix = self.vj[surf] * n2
        refl = self.table[surf].transpose(2, 0, 1) * bright[None] + mix[None] * self.veg_dir[:, None, None]
        if not self.after:  # haze over part of the first date
            hz = np.clip(fractal_noise(xs, ys, 4000.0, seed + 5, octaves=2) * 1.6, 0, 1)
            refl += hz[None] * self.haze[:, None, None]
        else:
            alpha, shadow = self._clouds(xs, ys)
            if alpha is not None:
                refl *= (1.0 - 0.65 * shadow)[None]
                refl = refl * (1.0 - alpha)[None] + alpha[None] * self.cloud[:, None, None]
        rng = np.random.default_rng([lay.seed, self.date_index, tile_key[0], tile_key[1]])
        refl += rng.standard_normal(refl.shape, dtype=np.float32) * np.float32(self.sensor.noise_sigma)
        return np.clip(refl, 0.0001, 1.0), surf

    def _clouds(self, xs: np.ndarray, ys: np.ndarray) -> tuple:
        lay = self.layout
        sx, sy = lay.cloud_shift
        near = [(x, y, r) for x, y, r in lay.clouds
                if xs[0] - 3 * r - abs(sx) < x < xs[-1] + 3 * r + abs(sx)
                and ys[-1] - 3 * r - abs(sy) < y < ys[0] + 3 * r + abs(sy)]
        if not near:
            return None, None

        def opacity(ox: float, oy: float) -> np.ndarray:
            bx, by = xs - ox, ys - oy
            blob = np.zeros((len(ys), len(xs)), dtype=np.float32)
            for x, y, r in near:
                blob += np.exp(-(((bx - x) / r) ** 2)[None, :] - (((by - y) / r) ** 2)[:, None]).astype(np.float32)
            tex = fractal_noise(bx, by, 500.0, lay.seed + 6, octaves=4)
            return np.clip((blob * 1.3 + tex * np.minimum(blob * 2.0, 1.0) - 0.55) * 2.5, 0.0, 1.0)

        return opacity(0.0, 0.0), opacity(sx, sy)
