"""Render one tile of one date: land cover (surface classes), then reflectance per band.

Inputs are the :class:`~tuban.sim.layout.Layout` (vectors) and the tile's pixel window;
everything continuous is a function of map coordinates (:mod:`tuban.sim.noise`), the
white sensor noise comes from a generator seeded by (seed, date, tile), so tiles are
independent of the order they are made in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from shapely.geometry import box

from tuban.sim.layout import Layout
from tuban.sim.noise import fractal_noise, hash_float, value_noise
from tuban.sim.spectra import (
    DIFFUSE,
    HAZE,
    PATH_RADIANCE,
    TEXTURE_AMP,
    VEG_JITTER,
    Sensor,
    Surface,
    band_values,
    class_spectra,
    endmember,
    lookup,
)

__all__ = ["DATES", "DateRenderer", "render_surface"]

#: the dates a scene can render: the previous round, the current one, and the baseline (the same
#: season one more year earlier: a second reference against farming change)
DATES = ("before", "after", "baseline")

_VILLAGE, _URBAN = 200, 201
#: normal deviates in a renderer's sensor-noise pool (16 MiB of float32)
NOISE_POOL = 1 << 22
#: the three dates are the same season of three years (yearly rounds are interpreted on May–July
#: imagery): early June, the winter-wheat harvest of the North China plain (麦收, late May to mid
#: June), after which summer maize is drilled into the stubble. What differs between the years is
#: how far the harvest had got on the image date, field by field: the harvest / ploughing trap.
#: Share of the wheat cut on each date (years differ by a few days of harvest):
HARVEST_PROGRESS = {"before": 0.42, "after": 0.5, "baseline": 0.38}
#: share of strips under the wheat–maize rotation; the others keep vegetables, grass or fallow
WHEAT_SHARE = 0.78
#: a field's harvest day is its habit (the same every year) plus a yearly jitter of about ± this
#: (in shares of the harvest season)
HARVEST_JITTER = 0.1
#: other strips: (state, share) and the chance a strip is in another state than in another year
_OTHER = ((Surface.CROP_GREEN, 0.4), (Surface.GRASS, 0.25), (Surface.CROP_PLOUGHED, 0.2), (Surface.CROP_YOUNG, 0.15))
OTHER_CHANGE = 0.2
_DATE_SALT = {"before": 0, "after": 1, "baseline": 2}


def _pick(states: tuple, probs: tuple, u: np.ndarray) -> np.ndarray:
    edges = np.cumsum(probs)
    idx = np.minimum(np.searchsorted(edges, u, side="right"), len(states) - 1)
    return np.asarray([int(s) for s in states], dtype=np.uint8)[idx]


def _crop_states(seed: int, col: np.ndarray, row: np.ndarray, strip: np.ndarray, date: str) -> np.ndarray:
    """Crop state per strip on one date (arrays of keys broadcast together).

    Wheat strips: standing wheat until their harvest day, then stubble, then ploughed or
    drilled, then maize seedlings; ``habit + jitter`` against the date's harvest progress
    says where a strip is. Other strips keep their state, or with :data:`OTHER_CHANGE` are in
    another one that year.
    """
    yr = _DATE_SALT[date]
    wheat = hash_float(seed, 17, col, row, strip) < WHEAT_SHARE
    habit = hash_float(seed, 18, col, row, strip)
    jitter = (hash_float(seed, 22, col, row, strip, yr) + hash_float(seed, 23, col, row, strip, yr) - 1.0)
    z = habit + jitter * HARVEST_JITTER
    p = HARVEST_PROGRESS[date]
    states = np.select([z >= p, z >= p - 0.12, z >= p - 0.22],
                       [int(Surface.CROP_GREEN), int(Surface.CROP_STUBBLE), int(Surface.CROP_PLOUGHED)],
                       int(Surface.CROP_YOUNG)).astype(np.uint8)
    kinds, shares = zip(*_OTHER, strict=True)
    usual = _pick(kinds, shares, hash_float(seed, 25, col, row, strip))
    that_year = _pick(kinds, shares, hash_float(seed, 24, col, row, strip, yr))
    other = np.where(hash_float(seed, 21, col, row, strip, yr) < OTHER_CHANGE, that_year, usual)
    return np.where(wheat, states, other).astype(np.uint8)


def _fields(layout: Layout, xs: np.ndarray, ys: np.ndarray, date: str) -> tuple[np.ndarray, np.ndarray]:
    """Cropland in strips on a jittered block grid (rotated by the layout's angle).

    Per-column, per-block and per-strip values are hashed once on small lattices of the
    keys present in the window and gathered per pixel (no per-pixel hashing); per-pixel
    work is kept to a few float32 passes with in-place arithmetic.
    """
    seed = layout.seed
    a = math.radians(layout.angle_deg)
    cx, cy = layout.bounds[0], layout.bounds[3]
    dx = (xs - cx).astype(np.float64)
    dy = (ys - cy).astype(np.float64)
    ca, sa = math.cos(a), math.sin(a)
    U = (dx * ca).astype(np.float32)[None, :] + (dy * sa).astype(np.float32)[:, None]
    V = (-dx * sa).astype(np.float32)[None, :] + (dy * ca).astype(np.float32)[:, None]
    bw = 520.0
    # per-column values through small lookup tables (few columns per tile); the column of a
    # pixel is the interval of the jittered edges that holds it
    c_lo = math.floor(float(U.min()) / bw) - 2
    ks = np.arange(c_lo, math.floor(float(U.max()) / bw) + 4)
    edges = (ks * bw + (hash_float(seed, 11, ks) - 0.5) * bw * 0.5).astype(np.float32)  # jittered, increasing
    ci = (np.searchsorted(edges, U.ravel(), side="right") - 1).astype(np.int32).reshape(U.shape)
    u0, u1 = np.take(edges, ci), np.take(edges[1:], ci)
    bh_k = (300.0 + 200.0 * hash_float(seed, 12, ks)).astype(np.float32)
    shift_k = (hash_float(seed, 13, ks) * bh_k).astype(np.float32)
    bh = np.take(bh_k, ci)
    shift = np.take(shift_k, ci)
    v0 = V + shift
    v0 /= bh
    row = np.floor(v0, out=v0).astype(np.int32)
    # v0: the block's lower edge in V (row * bh - shift)
    np.multiply(row, bh, out=v0)
    v0 -= shift
    del shift
    r_lo = int(row.min())
    nr = int(row.max()) - r_lo + 1
    kc, kr = ks[:, None], np.arange(r_lo, r_lo + nr)[None, :]
    bi = ci * nr
    bi += row - r_lo  # flat block index into the (column, row) lattice
    del row
    block = np.take(hash_float(seed, 14, kc, kr).astype(np.float32).ravel(), bi)
    along_v = np.take((hash_float(seed, 15, kc, kr) < 0.75).ravel(), bi)
    width = np.take((18.0 + 50.0 * hash_float(seed, 16, kc, kr)).astype(np.float32).ravel(), bi)
    du0 = U - u0  # distance to the column's left edge
    dv0 = V - v0  # distance to the block's lower edge
    pos = np.where(along_v, du0, dv0)
    pos /= width
    strip = pos.astype(np.int32)  # truncation: differs from floor only below 0, clipped to 0 anyway
    del pos, width, along_v
    np.maximum(strip, 0, out=strip)
    ns = int(strip.max()) + 1
    kc3, kr3, kk = kc[:, :, None], kr[:, :, None], np.arange(ns)[None, None, :]
    si = bi * ns
    si += strip  # flat strip index into the (column, row, strip) lattice
    del strip, bi
    surf = np.take(_crop_states(seed, kc3, kr3, kk, date).ravel(), si)
    u_strip = np.take(hash_float(seed, 17, kc3, kr3, kk).astype(np.float32).ravel(), si)
    vigor = np.take((hash_float(seed, 19, kc3, kr3, kk) - 0.5).astype(np.float32).ravel(), si)
    del si
    surf[block < 0.06] = Surface.ORCHARD
    # greenhouse rows (大棚) on some strips of a few blocks
    surf[(block > 0.06) & (block < 0.08) & (u_strip < 0.45)] = Surface.GREENHOUSE
    del block, u_strip
    # farm tracks on block edges, poplar lines on some of them
    np.subtract(u1, U, out=u1)  # distance to the column's right edge
    du = np.minimum(du0, u1, out=u1)
    bh += v0
    np.subtract(bh, V, out=bh)  # distance to the block's upper edge
    d_edge = np.minimum(dv0, bh, out=bh)
    np.minimum(d_edge, du, out=d_edge)
    surf[d_edge < 3.0] = Surface.FARM_ROAD
    del d_edge, dv0, du0
    trees = np.take(hash_float(seed, 20, ks) < 0.35, ci)
    trees &= du >= 3.0
    trees &= du < 9.0
    surf[trees] = Surface.TREE
    # orchard rows: trees every ~5 m with bare soil between (only orchard pixels are looked at)
    if layout.resolution < 4:
        orch = np.flatnonzero(surf == Surface.ORCHARD)
        if len(orch):
            Uo, Vo = U.ravel()[orch], V.ravel()[orch]
            gap = (np.mod(Uo, np.float32(5.0)) >= 2.6) | (np.mod(Vo, np.float32(5.0)) >= 3.0)
            surf.ravel()[orch[gap]] = Surface.CROP_PLOUGHED
    return surf, vigor


def _cells(xs: np.ndarray, ys: np.ndarray, size: float, seed: int, salt: int) -> np.ndarray:
    """Uniform value per ``size`` m square cell (hashed on the cells of the window, gathered)."""
    ix = np.floor(xs / size).astype(np.int64)
    iy = np.floor(ys / size).astype(np.int64)
    lat = hash_float(seed, salt, np.arange(ix.min(), ix.max() + 1)[None, :],
                     np.arange(iy.min(), iy.max() + 1)[:, None]).astype(np.float32)
    return lat[np.ix_(iy - iy.min(), ix - ix.min())]


def _axes(transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    return (transform.c + transform.a * (np.arange(w) + 0.5), transform.f + transform.e * (np.arange(h) + 0.5))


def render_surface(layout: Layout, transform: Affine, shape: tuple[int, int], *, date: str = "before") -> tuple:
    """Surface classes ``(h, w) uint8``, a vigour field, pixel-centre axes and the hill mask for one window.

    ``date``: ``"before"``, ``"after"`` or ``"baseline"`` (same season, a year before ``before``).
    """
    if date not in DATES:
        raise ValueError(f"unknown date {date!r}; use one of {DATES}")
    xs, ys = _axes(transform, shape)
    surf, vigor = _fields(layout, xs, ys, date)
    seed = layout.seed
    # wooded hills in the north, with a ragged edge
    edge = layout.hill_edge + 250 * fractal_noise(xs, ys[:1], 1500.0, seed + 7, octaves=3)[0]
    hills = edge[None, :] < ys[:, None]
    if hills.any():
        rock = fractal_noise(xs, ys, 300.0, seed + 8, octaves=4) > 0.05
        surf = np.where(hills, np.where(rock, np.uint8(Surface.SHRUB_ROCK), np.uint8(Surface.FOREST)), surf)
        vigor = np.where(hills, np.float32(0), vigor)
    shapes, tree = _shapes(layout, date)
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
                u = _cells(xs, ys, 16.0, seed, 30)
                roof = (np.mod(ys, 20.0) < 9.0)[:, None]
                vs = np.where(u > 0.85, Surface.TREE, np.where(roof & (u < 0.8), Surface.VILLAGE_ROOF,
                                                                  Surface.VILLAGE_YARD))
                surf = np.where(village, vs.astype(np.uint8), surf)
            urban = marks == _URBAN
            if urban.any():
                street = (np.mod(xs, 180.0) < 14)[None, :] | (np.mod(ys, 160.0) < 14)[:, None]
                u = _cells(xs, ys, 40.0, seed, 31)
                us = np.where(u < 0.45, Surface.URBAN_ROOF, np.where(u < 0.7, Surface.URBAN_DARK_ROOF,
                              np.where(u < 0.85, Surface.GRASS, Surface.VILLAGE_YARD)))
                us = np.where(street, Surface.ROAD, us)
                surf = np.where(urban, us.astype(np.uint8), surf)
            direct = (marks > 0) & (marks < _VILLAGE)
            surf = np.where(direct, marks, surf)
    return surf.astype(np.uint8), vigor, xs, ys, hills


def _shapes(layout: Layout, date: str) -> tuple[list[tuple[object, int]], shapely.STRtree]:
    """Vector features of one date, in painting order (later ones paint over)."""
    cache_key = f"_shapes_{date}"
    cached = getattr(layout, cache_key, None)
    if cached is not None:
        return cached
    after = date == "after"
    out: list[tuple[object, int]] = []
    if layout.urban is not None:
        out.append((layout.urban, _URBAN))
    out += [(v, _VILLAGE) for v in layout.villages]
    dry_base = layout.baseline_dry_ponds or (False,) * len(layout.ponds)
    for (pond, dries), dry_b in zip(layout.ponds, dry_base, strict=True):
        dry = (after and dries) or (date == "baseline" and dry_b)
        out.append((pond, int(Surface.MUD if dry else Surface.POND)))
    if layout.river is not None:
        w0 = layout.river_width[0]
        w = {"before": w0, "after": layout.river_width[1], "baseline": layout.baseline_river_width or w0}[date]
        out.append((layout.river.buffer(w0 / 2 + 25), int(Surface.SAND)))
        out.append((layout.river.buffer(w0 / 2 + 25).difference(layout.river.buffer(w0 / 2 + 10)), int(Surface.TREE)))
        if w < w0:
            out.append((layout.river.buffer(w0 / 2), int(Surface.MUD)))
        out.append((layout.river.buffer(w / 2), int(Surface.WATER)))
    for line, width in layout.roads:
        out.append((line.buffer(width / 2 + 8, cap_style="flat"), int(Surface.TREE)))
        out.append((line.buffer(width / 2, cap_style="flat"), int(Surface.ROAD)))
    for site in layout.sites:
        # the baseline (an earlier year) shows the sites of the previous round (long-running works)
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
    """Top-of-atmosphere reflectance (Level-1C-like) for one sensor and date; call it per tile.

    Ground texture is a function of the place only (the same on every date); what changes
    between dates is the land cover, crop vigour, the atmosphere (haze, clouds and their
    shadows), the sub-pixel registration and the sensor noise.
    """

    layout: Layout
    sensor: Sensor
    date: str = "before"
    date_index: int = 0

    def __post_init__(self) -> None:
        if self.date not in DATES:
            raise ValueError(f"unknown date {self.date!r}; use one of {DATES}")
        self.table, self.veg_dir = class_spectra(self.sensor)
        self.table_t = np.ascontiguousarray(self.table.T)  # (bands, surfaces): one lookup row per band
        self.tex = lookup(TEXTURE_AMP, 0.05)
        self.vj = lookup(VEG_JITTER, 0.0)
        self.haze = band_values(HAZE, self.sensor)
        self.path = band_values(PATH_RADIANCE, self.sensor)
        self.shade = np.float32(1.0) - band_values(DIFFUSE, self.sensor)  # direct share, lost in a shadow
        self.cloud = endmember("cloud", self.sensor)

    @property
    def after(self) -> bool:
        return self.date == "after"

    def render(self, transform: Affine, shape: tuple[int, int], tile_key: tuple[int, int]) -> tuple:
        """``(reflectance (bands, h, w) float32, surface (h, w) uint8)`` for one window.

        Band by band, in place: surface reflectance (class spectrum × texture brightness +
        vigour along the veg–soil line), haze, cloud shadow (on the windows the clouds
        reach), path radiance, cloud, sensor noise.
        """
        lay = self.layout
        shift = {"after": lay.misregistration, "baseline": lay.baseline_misregistration}.get(self.date)
        if shift is not None:
            transform = Affine.translation(*shift) @ transform
        surf, vigor, xs, ys, hills = render_surface(lay, transform, shape, date=self.date)
        seed = lay.seed + 1000 * self.date_index
        # ground texture: a property of the place, not of the date
        tex = fractal_noise(xs, ys, 120.0, lay.seed + 1, octaves=3)
        tex += value_noise(xs, ys, max(2.0 * lay.resolution, 3.0), lay.seed + 3) - np.float32(0.5)
        bright = np.take(self.tex, surf)
        bright *= tex
        bright += np.float32(1.0)
        del tex
        if hills.any():  # hill shading from a height field
            hgt = fractal_noise(xs, ys, 900.0, lay.seed + 9, octaves=5)
            gy, gx = np.gradient(hgt)
            slope = 150.0 * (gx + gy) / lay.resolution  # ~150 m of relief, lit from the north-west
            bright = np.where(hills, bright * np.clip(1.0 + slope, 0.5, 1.5), bright).astype(np.float32)
        # crop vigour: half a property of the field, half of the year
        mix = fractal_noise(xs, ys, 60.0, seed + 2, octaves=2)
        mix += vigor * np.float32(1.4)
        mix *= np.take(self.vj, surf)
        hz = None
        if self.date != "after":  # haze over part of the scene (thinner on the baseline)
            amp = 1.6 if self.date == "before" else 0.8
            hz = np.clip(fractal_noise(xs, ys, 4000.0, seed + 5, octaves=2) * np.float32(amp), 0, 1)
        clouds = lay.clouds if self.date == "after" else lay.baseline_clouds if self.date == "baseline" else []
        alpha, shadow = self._cloud_windows(xs, ys, clouds)
        nb = len(self.sensor.bands)
        h, w = shape
        noise = self._noise_rows(tile_key, nb, h, w)
        refl = np.empty((nb, h, w), dtype=np.float32)
        tmp = np.empty((h, w), dtype=np.float32)
        for b in range(nb):
            out = refl[b]
            np.take(self.table_t[b], surf, out=out)
            out *= bright
            np.multiply(mix, self.veg_dir[b], out=tmp)
            out += tmp
            if hz is not None:
                np.multiply(hz, self.haze[b], out=tmp)
                out += tmp
            if shadow is not None:  # a shadow keeps the diffuse skylight only
                win, sh = shadow
                out[win] *= np.float32(1.0) - sh * self.shade[b]
            out += self.path[b]
            if alpha is not None:
                win, al = alpha
                part = out[win]
                part *= np.float32(1.0) - al
                part += al * self.cloud[b]
            out += noise(b)
            np.clip(out, 0.0001, 1.0, out=out)
        return refl, surf

    def _noise_rows(self, tile_key: tuple[int, int], nb: int, h: int, w: int) -> Callable[[int], np.ndarray]:
        """White sensor noise of one tile, band by band: rows cut from a fixed pool of normal
        deviates at offsets drawn per (seed, date, tile) (a copy per row, not a draw per pixel)."""
        if w > NOISE_POOL // 4:
            raise ValueError(f"a window {w} px wide is wider than the noise pool allows ({NOISE_POOL // 4})")
        pool = self.__dict__.get("_pool")
        if pool is None:  # the same pool wherever it is built (the order of tiles does not matter)
            rng = np.random.default_rng([self.layout.seed, self.date_index, 7919])
            pool = rng.standard_normal(NOISE_POOL, dtype=np.float32) * np.float32(self.sensor.noise_sigma)
            self.__dict__["_pool"] = pool
        rng = np.random.default_rng([self.layout.seed, self.date_index, tile_key[0], tile_key[1]])
        offsets = rng.integers(0, len(pool) - w, size=(nb, h))
        rows = np.lib.stride_tricks.sliding_window_view(pool, w)
        return lambda b: rows[offsets[b]]

    def __getstate__(self) -> dict:
        # the noise pool is rebuilt where it is used (workers), not pickled
        return {k: v for k, v in self.__dict__.items() if k != "_pool"}

    def _cloud_windows(self, xs: np.ndarray, ys: np.ndarray, clouds: list[tuple[float, float, float]]) -> tuple:
        """Cloud opacity and shadow strength, each as ``((row slice, col slice), values)`` over the part
        of the window the clouds reach (beyond 3 radii a cloud's opacity is exactly 0), or None."""
        lay = self.layout
        sx, sy = lay.cloud_shift
        near = [(x, y, r) for x, y, r in clouds
                if xs[0] - 3 * r - abs(sx) < x < xs[-1] + 3 * r + abs(sx)
                and ys[-1] - 3 * r - abs(sy) < y < ys[0] + 3 * r + abs(sy)]
        if not near:
            return None, None
        noise_seed = lay.seed + 6 + 1000 * self.date_index

        def opacity(ox: float, oy: float) -> tuple | None:
            # the window reached: pixel centres within 3 r of a (shifted) cloud centre on both axes
            c0 = min(int(np.searchsorted(xs, x + ox - 3 * r)) for x, y, r in near)
            c1 = max(int(np.searchsorted(xs, x + ox + 3 * r, side="right")) for x, y, r in near)
            # ys decrease down the window
            r0 = min(int(np.searchsorted(-ys, -(y + oy + 3 * r))) for x, y, r in near)
            r1 = max(int(np.searchsorted(-ys, -(y + oy - 3 * r), side="right")) for x, y, r in near)
            if c0 >= c1 or r0 >= r1:
                return None
            bx, by = xs[c0:c1] - ox, ys[r0:r1] - oy
            blob = np.zeros((len(by), len(bx)), dtype=np.float32)
            for x, y, r in near:
                blob += (np.exp(-(((by - y) / r) ** 2)).astype(np.float32)[:, None]
                         * np.exp(-(((bx - x) / r) ** 2)).astype(np.float32)[None, :])
            tex = fractal_noise(bx, by, 500.0, noise_seed, octaves=4)
            # cumulus: a ragged but fairly sharp edge (~0.15 r from clear to opaque)
            op = np.clip((blob * 1.3 + tex * np.minimum(blob * 2.0, 1.0) - 0.55) * 5.0, 0.0, 1.0)
            return (slice(r0, r1), slice(c0, c1)), op

        alpha = opacity(0.0, 0.0)
        shadow = opacity(sx, sy)
        if shadow is not None:
            # optically thick parts block the direct sun: the shadow darkens faster than the cloud whitens
            shadow = shadow[0], np.minimum(shadow[1] * np.float32(1.5), np.float32(1.0))
        return alpha, shadow

    def _clouds(self, xs: np.ndarray, ys: np.ndarray, clouds: list[tuple[float, float, float]]) -> tuple:
        """Cloud opacity and shadow strength over the whole window (``(h, w)`` each), or ``(None, None)``."""
        alpha, shadow = self._cloud_windows(xs, ys, clouds)
        if alpha is None and shadow is None:
            return None, None
        out = []
        for part in (alpha, shadow):
            full = np.zeros((len(ys), len(xs)), dtype=np.float32)
            if part is not None:
                full[part[0]] = part[1]
            out.append(full)
        return out[0], out[1]
