"""Overlap of many small polygon pairs on flat edge arrays (numpy), exact where it is sure.

For a pair of valid polygonal geometries A, B (metric coordinates) Green's theorem gives

    area(A ∩ B) = ½ ∮ (x dy − y dx)  over  (∂A inside B) + (∂B inside A)

with every ring oriented so that its interior lies on the left. The share of an edge of A
inside B needs no sorting: with ``t`` the parameters where it crosses the boundary of B,
``inside = [end in B] + Σ (leaving ? +t : −t)``, and the status of every vertex follows
from one point-in-polygon test per ring plus the parity of the crossings along the ring.
All of it is vectorised over pairs (padded to the bucket's edge counts) and edges.

The kernel is only used where it is *sure*: a pair in which any vertex lies within
``delta`` (1 µm) of an edge of the other, or edges run (nearly) along each other —
touching, shared edges, the degenerate cases — is flagged ``fallback`` and left to the
caller's GEOS predicates and overlay, as are pairs with too many edges. Elsewhere the
boundaries cross transversally, and crossings, containment and areas are exact up to
round-off (~1e-9 m² for patch-sized polygons).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from tuban import jit

__all__ = ["EdgeSet", "PairOverlap", "edge_set", "pair_overlaps"]

DELTA_M = 1e-6
MAX_EDGE_PAIRS = 8192  # edges(A) × edges(B) per pair above which GEOS is used
CHUNK = 1 << 20  # padded edge pairs per vectorised step
FROM_RINGS_BLOCK = 1 << 16  # coordinates per block when building an edge set
FUSED_CHUNK = 1 << 15  # pairs per call of the numba kernel (per thread task)


FIELDS = ("x", "y", "dx", "dy", "sign")
X, Y, DX, DY, SIGN = range(len(FIELDS))


@dataclass(slots=True)
class EdgeSet:
    """The edges of an array of polygonal geometries, geometry by geometry, ring by ring."""

    rec: np.ndarray  # (edges, FIELDS): start x, y; end − start dx, dy; sign (+1: interior on the left)
    ring_pos: np.ndarray  # position of the edge's ring among its geometry's rings
    ring_first: np.ndarray  # position (within its geometry) of the first edge of its ring
    start: np.ndarray  # per geometry: index of its first edge
    count: np.ndarray  # per geometry: number of edges
    ring_start: np.ndarray  # per geometry: index of its first ring in ``ring_edge``
    ring_count: np.ndarray  # per geometry: number of rings
    ring_edge: np.ndarray  # per ring: index of its first edge
    area: np.ndarray  # per geometry (m²)
    bucket: np.ndarray  # per geometry: padded edge count (see ``_bucket``)
    _pads: dict[tuple[int, float], tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(
        default_factory=dict, repr=False)
    _discs: Discs | None = field(default=None, repr=False)

    @property
    def x(self) -> np.ndarray:
        return self.rec[:, X]

    @property
    def y(self) -> np.ndarray:
        return self.rec[:, Y]

    def discs(self) -> Discs:
        """Per geometry: a centre with an inner and an outer disc (see :class:`Discs`), cached."""
        if self._discs is None:
            self._discs = _discs(self)
        return self._discs

    def padded(self, width: int, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The geometries whose edge count pads to *width*, as one block.

        Returns the row of every geometry in the block (−1 if not there), the float block
        (rows, width, len(FIELDS)): world coordinates, NaN / 0 padding, and for multi-ring
        layers an int block (rows, 2, width) of ring position and ring first edge (``None``
        when every geometry has one ring).
        """
        key = (width, delta)
        if key not in self._pads:
            g = np.flatnonzero(self.bucket == width)
            row = np.full(len(self.count), -1, dtype=np.int64)
            row[g] = np.arange(len(g))
            col = np.arange(width)
            valid = col < self.count[g][:, None]
            multi = self.ring_count.max(initial=1) > 1
            idx = None
            if len(g) == len(self.count) and valid.all():  # every geometry has *width* edges: a view
                block = self.rec.reshape(len(g), width, len(FIELDS))
            else:
                idx = np.where(valid, self.start[g][:, None] + col, 0)
                block = self.rec[idx]  # (rows, width, fields)
                block[~valid] = np.array([np.nan, np.nan, 0.0, 0.0, 0.0])
            rings = None
            if multi:
                if idx is None:
                    idx = np.where(valid, self.start[g][:, None] + col, 0)
                rings = np.stack([np.where(valid, self.ring_pos[idx], 0),
                                  np.where(valid, self.ring_first[idx], 0)], axis=1)
            self._pads[key] = (row, block, rings)
        return self._pads[key]


@dataclass(slots=True)
class Discs:
    """Per geometry: centre (x, y) = the mean of its vertices; ``outer`` ≥ the distance from the
    centre to every vertex (the geometry lies in that disc); ``inner`` ≤ the distance from the
    centre to the boundary when the centre is inside (the open disc lies in the interior), 0
    when it is not (or too close to the boundary). Both carry a ``DELTA_M`` margin."""

    x: np.ndarray
    y: np.ndarray
    inner: np.ndarray
    outer: np.ndarray


def _discs(es: EdgeSet, margin: float = DELTA_M) -> Discs:
    n = len(es.count)
    out = Discs(np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, np.inf))
    if jit.available() and n and es.count.all():
        # the centres summed by numpy (its rounding), the rest of the loop compiled
        out.x[:] = np.add.reduceat(es.rec[:, X], es.start) / es.count
        out.y[:] = np.add.reduceat(es.rec[:, Y], es.start) / es.count
        _discs_k(es.rec, es.start, es.count, out.x, out.y, float(margin), out.inner, out.outer)
        return out
    ends = es.start + es.count
    g = 0
    while g < n:  # blocks of whole geometries (small temporaries)
        stop = max(int(np.searchsorted(ends, es.start[g] + FROM_RINGS_BLOCK, side="right")), g + 1)
        cnt = es.count[g:stop]
        if not cnt.all():  # a geometry without edges: no discs for this block
            g = stop
            continue
        e0 = int(es.start[g])
        blk = es.rec[e0:int(ends[stop - 1])]
        st = es.start[g:stop] - e0
        x, y, dx, dy = blk[:, X], blk[:, Y], blk[:, DX], blk[:, DY]
        cx = np.add.reduceat(x, st) / cnt
        cy = np.add.reduceat(y, st) / cnt
        px, py = np.repeat(cx, cnt) - x, np.repeat(cy, cnt) - y  # centre − edge start
        # even–odd test of the centre (a ray towards +x); exact when the centre is > margin from
        # every edge (which ``inner`` requires) and the ray passes no vertex closer than margin in y
        up = (py >= 0) & (py < dy)
        down = (py < 0) & (py >= dy)
        o = dx * py - dy * px
        hits = (up & (o > 0)) | (down & (o < 0))
        inside = (np.add.reduceat(hits, st) & 1).astype(bool)
        inside &= np.minimum.reduceat(np.abs(py), st) > margin
        # squared distance from the centre to every edge (a segment)
        ll = dx * dx + dy * dy
        t = np.clip(np.divide(px * dx + py * dy, ll, out=np.zeros_like(ll), where=ll > 0), 0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        near = np.sqrt(np.minimum.reduceat(ex * ex + ey * ey, st))
        far = np.sqrt(np.maximum.reduceat(px * px + py * py, st))
        out.x[g:stop], out.y[g:stop] = cx, cy
        out.inner[g:stop] = np.where(inside, np.maximum(near - margin, 0.0), 0.0)
        out.outer[g:stop] = far + margin
        g = stop
    return out


def _from_rings(coords: np.ndarray, ring_off: np.ndarray, ring_geom: np.ndarray, shell: np.ndarray,
                n: int) -> EdgeSet:
    nr = len(ring_off) - 1
    per_ring = np.diff(ring_off) - 1
    ring_edge = np.zeros(nr + 1, dtype=np.int64)
    np.cumsum(per_ring, out=ring_edge[1:])
    rec = np.empty((int(ring_edge[-1]), len(FIELDS)))
    twice = np.zeros(nr)
    if jit.available() and nr:
        # the edge records and the area terms in one compiled pass; the sums by numpy (same rounding)
        term = np.empty(len(rec))
        _edges_k(np.ascontiguousarray(coords, dtype=np.float64), ring_off, rec, term)
        has = per_ring > 0
        twice[has] = np.add.reduceat(term, ring_edge[:-1][has]) if len(term) else 0.0
        r = nr
    else:
        r = 0
    # blocks of whole rings: the temporaries stay small (no page faults, in cache)
    while r < nr:
        stop = max(int(np.searchsorted(ring_off, ring_off[r] + FROM_RINGS_BLOCK, side="right")) - 1, r + 1)
        stop = min(stop, nr)
        c0, c1 = int(ring_off[r]), int(ring_off[stop])
        e0, e1 = int(ring_edge[r]), int(ring_edge[stop])
        cx, cy = coords[c0:c1, 0], coords[c0:c1, 1]
        keep = np.ones(c1 - c0 - 1, dtype=bool)  # (vertex, next vertex) pairs within a ring
        keep[ring_off[r + 1:stop] - 1 - c0] = False
        blk = rec[e0:e1]
        blk[:, X] = cx[:-1][keep]
        blk[:, Y] = cy[:-1][keep]
        blk[:, DX] = cx[1:][keep]
        blk[:, DY] = cy[1:][keep]
        blk[:, DX] -= blk[:, X]
        blk[:, DY] -= blk[:, Y]
        # twice the signed area of every ring, about its first vertex (no cancellation)
        pr = per_ring[r:stop]
        fx, fy = np.repeat(cx[ring_off[r:stop] - c0], pr), np.repeat(cy[ring_off[r:stop] - c0], pr)
        term = (blk[:, X] - fx) * blk[:, DY] - (blk[:, Y] - fy) * blk[:, DX]
        twice[r:stop] = np.add.reduceat(term, ring_edge[r:stop] - e0)
        r = stop
    ring_sign = np.where(shell, 1.0, -1.0) * np.where(twice < 0, -1.0, 1.0)
    rec[:, SIGN] = np.repeat(ring_sign, per_ring)
    if nr == n:  # one ring per geometry
        count = per_ring.astype(np.int64)
        zeros = np.zeros(len(rec), dtype=np.int32)
        return EdgeSet(rec=rec, bucket=_bucket(count), ring_pos=zeros, ring_first=zeros,
                       start=ring_edge[:-1], count=count, ring_start=np.arange(n), ring_count=np.ones(n, np.int64),
                       ring_edge=ring_edge[:-1], area=0.5 * ring_sign * twice)
    ring_of = np.repeat(np.arange(nr), per_ring)
    ring_count = np.bincount(ring_geom, minlength=n)
    ring_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(ring_count, out=ring_start[1:])
    count = np.bincount(ring_geom, weights=per_ring, minlength=n).astype(np.int64)
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count, out=start[1:])
    geom_of = ring_geom[ring_of]
    return EdgeSet(
        rec=rec, bucket=_bucket(count),
        ring_pos=(ring_of - ring_start[geom_of]).astype(np.int32),
        ring_first=(ring_edge[ring_of] - start[geom_of]).astype(np.int32),
        start=start[:-1], count=count, ring_start=ring_start[:-1], ring_count=ring_count,
        ring_edge=ring_edge[:-1],
        area=0.5 * np.bincount(ring_geom, weights=ring_sign * twice, minlength=n),
    )


def edge_set(geoms: np.ndarray, coords: np.ndarray | None = None, *, plain: bool | None = None,
             counts: np.ndarray | None = None) -> EdgeSet:
    """The :class:`EdgeSet` of polygonal *geoms* (polygons and multipolygons, holes allowed).

    *coords* (``shapely.get_coordinates(geoms)``) may be passed when already at hand; it is
    only used when every geometry is a polygon without holes (*plain*, when known). With
    *plain*, *coords* and *counts* (coordinates per polygon) no geometry is needed.
    """
    if plain and coords is not None and counts is not None:
        n = len(counts)
        ring_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=ring_off[1:])
        return _from_rings(coords, ring_off, np.arange(n), np.ones(n, dtype=bool), n)
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    if plain is None:
        plain = bool(np.all(shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON)) and not bool(
            shapely.get_num_interior_rings(geoms).any())
    if plain:
        if coords is None:
            coords = shapely.get_coordinates(geoms)
        ring_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(shapely.get_num_coordinates(geoms), out=ring_off[1:])
        return _from_rings(coords, ring_off, np.arange(n), np.ones(n, dtype=bool), n)
    parts, part_geom = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    shell = np.r_[True, ring_part[1:] != ring_part[:-1]] if len(ring_part) else np.zeros(0, dtype=bool)
    coords = shapely.get_coordinates(rings)
    ring_off = np.zeros(len(rings) + 1, dtype=np.int64)
    np.cumsum(shapely.get_num_coordinates(rings), out=ring_off[1:])
    return _from_rings(coords, ring_off, part_geom[ring_part], shell, n)


@dataclass(slots=True)
class PairOverlap:
    """Per pair (a, b): ``area`` of A ∩ B; ``interiors`` meet; ``a_within`` (A inside the
    interior of B); ``fallback`` pairs (degenerate or too large) carry no answer: use GEOS."""

    area: np.ndarray
    interiors: np.ndarray
    a_within: np.ndarray
    fallback: np.ndarray


def _bucket(count: np.ndarray) -> np.ndarray:
    """Padded edge count: exact up to 16, a multiple of 8 up to 64, then a power of two."""
    out = np.where(count <= 16, count, (count + 7) // 8 * 8)
    big = np.flatnonzero(count > 64)
    if len(big):
        out[big] = 1 << np.ceil(np.log2(count[big])).astype(np.int64)
    return out


def _gather(es: EdgeSet, g: np.ndarray, width: int, delta: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The padded edges of geometries *g* as (fields, width, len(g)): pairs vary fastest."""
    row, block, rings = es.padded(width, delta)
    r = row[g]
    out = np.ascontiguousarray(block[r].transpose(2, 1, 0))
    return out, (np.ascontiguousarray(rings[r].transpose(1, 2, 0)) if rings is not None else None)


def _bounds(p: np.ndarray, delta: float) -> tuple[np.ndarray, ...]:
    """xmin, xmax, ymin, ymax of every padded edge, widened by *delta*."""
    x1, y1 = p[X] + p[DX], p[Y] + p[DY]
    return (np.minimum(p[X], x1) - delta, np.maximum(p[X], x1) + delta,
            np.minimum(p[Y], y1) - delta, np.maximum(p[Y], y1) + delta)


def _inside(px: np.ndarray, py: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Even–odd point-in-polygon of the points (px, py) against the edges ``other`` (fields,
    width, points) of the same pair."""
    x, y, dx, dy = other[X], other[Y], other[DX], other[DY]
    up = (y <= py) & (y + dy > py)
    down = (y > py) & (y + dy <= py)
    o = dx * (py - y) - dy * (px - x)
    hits = (up & (o > 0)) | (down & (o < 0))
    return (np.count_nonzero(hits, axis=0) & 1).astype(bool)


def _ring_status(es: EdgeSet, g: np.ndarray, pa: np.ndarray, rings: np.ndarray | None, other: np.ndarray,
                 crossings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per padded edge (width, pairs): is its end inside the other geometry? Per pair: is any /
    every ring start inside?"""
    n = len(g)
    cum = np.cumsum(crossings, axis=0)
    if rings is None:  # one ring per geometry: its start is the first vertex
        start_in = _inside(pa[X, 0], pa[Y, 0], other)
        end_in = start_in ^ (cum & 1).astype(bool)
        return end_in, start_in, start_in
    rc = es.ring_count[g]
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(rc, out=off[1:])
    k = np.repeat(np.arange(n), rc)
    e = es.ring_edge[es.ring_start[g][k] + (np.arange(off[-1]) - off[k])]
    start_in = _inside(es.x[e], es.y[e], other[:, :, k])
    before = np.take_along_axis(cum - crossings, rings[1], axis=0)
    status0 = start_in[off[:-1] + rings[0]]
    end_in = status0 ^ ((cum - before) & 1).astype(bool)
    hits = np.bincount(k[start_in], minlength=n)
    return end_in, hits > 0, hits == rc


def _probe(px: np.ndarray, py: np.ndarray, other: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: is the point (px, py) inside the other geometry, and is it within *delta* of
    one of its edges (then the answer is not sure)?"""
    inside = _inside(px, py, other)
    x, y, dx, dy = other[X], other[Y], other[DX], other[DY]
    lo_x, hi_x, lo_y, hi_y = _bounds(other, delta)
    o = np.abs(dx * (py - y) - dy * (px - x))
    near = (lo_x <= px) & (hi_x >= px) & (lo_y <= py) & (hi_y >= py)
    near &= o < 2 * delta * (np.abs(dx) + np.abs(dy))
    return inside, np.asarray(near.any(axis=0))


def _chunk(a: EdgeSet, b: EdgeSet, ia: np.ndarray, ib: np.ndarray, wa: int, wb: int,
           delta: float, areas: bool) -> tuple[np.ndarray, ...]:
    pa, ra = _gather(a, ia, wa, delta)
    pb, rb = _gather(b, ib, wb, delta)
    if areas:
        return _solve(a, b, ia, ib, pa, ra, pb, rb, wa, wb, delta)
    # interiors only: a boundary point of one strictly inside the other settles it
    in_a, near_a = _probe(pa[X, 0], pa[Y, 0], pb, delta)
    in_b, near_b = _probe(pb[X, 0], pb[Y, 0], pa, delta)
    sure = (in_a & ~near_a) | (in_b & ~near_b)
    n = len(ia)
    area = np.full(n, np.nan)
    interiors = sure.copy()
    a_within = np.zeros(n, dtype=bool)
    fallback = np.zeros(n, dtype=bool)
    rest = np.flatnonzero(~sure)
    if len(rest):
        sub = _solve(a, b, ia[rest], ib[rest], pa[:, :, rest], None if ra is None else ra[:, :, rest],
                     pb[:, :, rest], None if rb is None else rb[:, :, rest], wa, wb, delta)
        interiors[rest], a_within[rest], fallback[rest] = sub[1], sub[2], sub[3]
    return area, interiors, a_within, fallback


def _solve(a: EdgeSet, b: EdgeSet, ia: np.ndarray, ib: np.ndarray, pa: np.ndarray, ra: np.ndarray | None,
           pb: np.ndarray, rb: np.ndarray | None, wa: int, wb: int, delta: float) -> tuple[np.ndarray, ...]:
    n = len(ia)
    ba, bb = _bounds(pa, delta), _bounds(pb, 0.0)  # NaN padding fails every comparison
    cand = ba[0][:, None, :] <= bb[1][None, :, :]
    cand &= ba[1][:, None, :] >= bb[0][None, :, :]
    cand &= ba[2][:, None, :] <= bb[3][None, :, :]
    cand &= ba[3][:, None, :] >= bb[2][None, :, :]
    flat = np.flatnonzero(cand)
    i, rem = np.divmod(flat, wb * n)
    j, k = np.divmod(rem, n)
    fa, fb = i * n + k, j * n + k  # flat positions in the (width, n) arrays
    ax_, ay_, adx, ady = (pa[f].ravel()[fa] for f in (X, Y, DX, DY))
    bx_, by_, bdx, bdy = (pb[f].ravel()[fb] for f in (X, Y, DX, DY))
    wx, wy = ax_ - bx_, ay_ - by_
    c = bdx * ady - bdy * adx
    o1 = bdx * wy - bdy * wx  # start of the A edge w.r.t. the B edge (> 0: left)
    o2 = o1 + c
    o3 = ady * wx - adx * wy  # start of the B edge w.r.t. the A edge
    o4 = o3 - c
    tol = 2 * delta * (np.abs(adx) + np.abs(ady) + np.abs(bdx) + np.abs(bdy))
    small = np.minimum(np.minimum(np.abs(o1), np.abs(o2)), np.minimum(np.abs(o3), np.abs(o4))) < tol
    fallback = np.bincount(k[small], minlength=n) > 0
    hit = ~small & (o1 * o2 < 0) & (o3 * o4 < 0)
    k, fa, fb, o1, o2, o3, o4 = k[hit], fa[hit], fb[hit], o1[hit], o2[hit], o3[hit], o4[hit]
    t = o1 / (o1 - o2)
    u = o3 / (o3 - o4)
    sa, sb = pa[SIGN].ravel()[fa], pb[SIGN].ravel()[fb]
    # leaving B (the A edge starts on B's interior side) counts +t, entering −t; the same for B
    lead_a = np.where(sb * o1 > 0, t, -t)
    lead_b = np.where(sa * o3 > 0, u, -u)
    ca = np.bincount(fa, minlength=wa * n).reshape(wa, n)
    cb = np.bincount(fb, minlength=wb * n).reshape(wb, n)
    end_a, any_a, all_a = _ring_status(a, ia, pa, ra, pb, ca)
    end_b, any_b, _ = _ring_status(b, ib, pb, rb, pa, cb)
    la = end_a + np.bincount(fa, weights=lead_a, minlength=wa * n).reshape(wa, n)
    lb = end_b + np.bincount(fb, weights=lead_b, minlength=wb * n).reshape(wb, n)
    # ½ Σ sign · cross(start − origin, d) · inside share, in a frame at the pair's first vertex
    ox, oy = pa[X, 0], pa[Y, 0]
    wa_ = np.nan_to_num(pa[SIGN] * ((pa[X] - ox) * pa[DY] - (pa[Y] - oy) * pa[DX]))
    wb_ = np.nan_to_num(pb[SIGN] * ((pb[X] - ox) * pb[DY] - (pb[Y] - oy) * pb[DX]))
    area = 0.5 * ((wa_ * la).sum(axis=0) + (wb_ * lb).sum(axis=0))
    crossed = np.bincount(k, minlength=n) > 0
    interiors = crossed | any_a | any_b
    a_within = ~crossed & all_a & ~any_b
    return np.maximum(area, 0.0), interiors, a_within, fallback


def pair_overlaps(a: EdgeSet, b: EdgeSet, ia: np.ndarray, ib: np.ndarray, *, delta: float = DELTA_M,
                  areas: bool = True, workers: int = 1) -> PairOverlap:
    """Overlap of the pairs ``(A[ia[k]], B[ib[k]])`` (see the module docstring).

    With ``areas=False`` only ``interiors`` (and ``fallback``) are answered: a pair is settled
    as soon as a vertex of one lies strictly inside the other; ``area`` is NaN and
    ``a_within`` is not computed.

    With numba (:mod:`tuban.jit`) the pairs not settled by their discs run through one compiled
    kernel, pair by pair; without it they are grouped by padded edge counts and processed in
    chunks with numpy. Same answers either way; on *workers* threads (both release the GIL).
    """
    ia, ib = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
    m = len(ia)
    area = np.zeros(m)
    interiors = np.zeros(m, dtype=bool)
    a_within = np.zeros(m, dtype=bool)
    fallback = np.zeros(m, dtype=bool)
    if m == 0:
        return PairOverlap(area, interiors, a_within, fallback)
    # discs settle most pairs without their edges: apart (the outer discs do not meet), A within
    # the interior of B, or (interiors only) two inner discs that overlap
    da, db = a.discs(), b.discs()
    d = np.hypot(da.x[ia] - db.x[ib], da.y[ia] - db.y[ib])
    in_a, in_b = da.inner[ia], db.inner[ib]
    apart = d > da.outer[ia] + db.outer[ib]
    within = (in_b > 0) & (d + da.outer[ia] < in_b)
    settled = apart | within
    if areas:
        area[within] = a.area[ia[within]]
        a_within[within] = True
    else:
        settled |= (in_a > 0) & (in_b > 0) & (d < in_a + in_b)
    interiors[settled & ~apart] = True
    wa, wb = _bucket(a.count[ia]), _bucket(b.count[ib])
    too_big = (wa * wb > MAX_EDGE_PAIRS) & ~settled
    fallback[too_big] = True
    run: Callable[[Any], tuple[np.ndarray, tuple[np.ndarray, ...]]]
    if jit.available():  # one compiled kernel, pair by pair, in chunks of pairs
        rest = np.flatnonzero(~(too_big | settled))
        jobs: list[Any] = [rest[c:c + FUSED_CHUNK] for c in range(0, len(rest), FUSED_CHUNK)]

        def run(sel: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
            n = len(sel)
            out = (np.zeros(n) if areas else np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, bool),
                   np.zeros(n, bool))
            _pairs_fused(a, b, ia[sel], ib[sel], delta, areas, *out)
            return sel, out
    else:  # numpy: pairs grouped by padded edge counts, in chunks of padded edge pairs
        key = wa * (1 << 20) + wb
        key[too_big | settled] = -1
        jobs = []
        order = np.argsort(key, kind="stable")
        ks = key[order]
        bounds = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1], True])
        for s, e in itertools.pairwise(bounds):
            if ks[s] < 0:
                continue
            sel = order[s:e]
            wa_, wb_ = int(wa[sel[0]]), int(wb[sel[0]])
            step = max(1, CHUNK // (wa_ * wb_))
            a.padded(wa_, delta)  # build the padded arrays here, not in the threads
            b.padded(wb_, delta)
            for c in range(0, len(sel), step):
                jobs.append((sel[c:c + step], wa_, wb_))

        def run(job: tuple[np.ndarray, int, int]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
            sel, wa_, wb_ = job
            return sel, _chunk(a, b, ia[sel], ib[sel], wa_, wb_, delta, areas)

    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(workers) as ex:
            results = list(ex.map(run, jobs))
    else:
        results = [run(j) for j in jobs]
    for sel, (ar, it, aw, fb) in results:
        area[sel], interiors[sel], a_within[sel], fallback[sel] = ar, it, aw, fb
    return PairOverlap(area, interiors, a_within, fallback)


# ------------------------------------------------------------------------------------------ numba kernel
# The same arithmetic as _probe / _solve, pair by pair on the edge sets themselves (no padding, no
# temporaries): every float is computed by the same operations in the same order, so the answers are
# bit for bit those of the numpy code (tests/analysis/test_pairwise.py), which stays the reference and
# the path without numba.


def _inside_nb(px, py, rec, e0, n):
    """Even–odd test of (px, py) against edges ``e0 … e0 + n`` (as :func:`_inside`)."""
    odd = False
    for e in range(e0, e0 + n):
        y, dy = rec[e, 1], rec[e, 3]
        o = rec[e, 2] * (py - y) - dy * (px - rec[e, 0])
        if ((y <= py) and (y + dy > py) and o > 0) or ((y > py) and (y + dy <= py) and o < 0):
            odd = not odd
    return odd


def _near_nb(px, py, rec, e0, n, delta):
    """(px, py) within ``delta`` of one of the edges (as the ``near`` of :func:`_probe`)."""
    for e in range(e0, e0 + n):
        x, y, dx, dy = rec[e, 0], rec[e, 1], rec[e, 2], rec[e, 3]
        x1, y1 = x + dx, y + dy
        if (min(x, x1) - delta <= px and max(x, x1) + delta >= px and min(y, y1) - delta <= py
                and max(y, y1) + delta >= py
                and abs(dx * (py - y) - dy * (px - x)) < 2 * delta * (abs(dx) + abs(dy))):
            return True
    return False


def _rings_nb(rec, g0, n, ring_start, ring_count, ring_edge, g, other, o0, on, cnt, lead, ox, oy):
    """Σ sign · cross · inside share over the edges of one geometry, and whether any / every ring
    start lies inside the other (as :func:`_ring_status` and the sums of :func:`_solve`)."""
    acc = 0.0
    any_in, all_in = False, True
    nr = ring_count[g]
    for r in range(nr):
        rr = ring_start[g] + r
        e0 = ring_edge[rr]
        e1 = ring_edge[rr + 1] if r + 1 < nr else g0 + n
        par = _inside_nb(rec[e0, 0], rec[e0, 1], other, o0, on)
        any_in = any_in or par
        all_in = all_in and par
        for e in range(e0, e1):
            if cnt[e - g0] & 1:
                par = not par
            la = (1.0 if par else 0.0) + lead[e - g0]
            w = rec[e, 4] * ((rec[e, 0] - ox) * rec[e, 3] - (rec[e, 1] - oy) * rec[e, 2])
            acc += w * la
    return acc, any_in, all_in


def _pairs_py(arec, astart, acount, aring_start, aring_count, aring_edge,
              brec, bstart, bcount, bring_start, bring_count, bring_edge,
              ia, ib, delta, areas, area, interiors, a_within, fallback):
    wmax_a, wmax_b = 1, 1
    for k in range(len(ia)):
        wmax_a = max(wmax_a, acount[ia[k]])
        wmax_b = max(wmax_b, bcount[ib[k]])
    lead_a = np.zeros(wmax_a)
    lead_b = np.zeros(wmax_b)
    ca = np.zeros(wmax_a, np.int64)
    cb = np.zeros(wmax_b, np.int64)
    for k in range(len(ia)):
        ga, gb = ia[k], ib[k]
        a0, na, b0, nb = astart[ga], acount[ga], bstart[gb], bcount[gb]
        if not areas:  # interiors only: a first vertex strictly inside the other settles it
            if _inside_nb(arec[a0, 0], arec[a0, 1], brec, b0, nb) and not _near_nb(
                    arec[a0, 0], arec[a0, 1], brec, b0, nb, delta):
                interiors[k] = True
                continue
            if _inside_nb(brec[b0, 0], brec[b0, 1], arec, a0, na) and not _near_nb(
                    brec[b0, 0], brec[b0, 1], arec, a0, na, delta):
                interiors[k] = True
                continue
        lead_a[:na] = 0.0
        lead_b[:nb] = 0.0
        ca[:na] = 0
        cb[:nb] = 0
        crossed = False
        small = False
        for i in range(na):
            ax, ay, adx, ady = arec[a0 + i, 0], arec[a0 + i, 1], arec[a0 + i, 2], arec[a0 + i, 3]
            ax1, ay1 = ax + adx, ay + ady
            lx, hx = min(ax, ax1) - delta, max(ax, ax1) + delta
            ly, hy = min(ay, ay1) - delta, max(ay, ay1) + delta
            sa = arec[a0 + i, 4]
            for j in range(nb):
                bx, by, bdx, bdy = brec[b0 + j, 0], brec[b0 + j, 1], brec[b0 + j, 2], brec[b0 + j, 3]
                bx1, by1 = bx + bdx, by + bdy
                if not (lx <= max(bx, bx1) and hx >= min(bx, bx1) and ly <= max(by, by1) and hy >= min(by, by1)):
                    continue
                wx, wy = ax - bx, ay - by
                c = bdx * ady - bdy * adx
                o1 = bdx * wy - bdy * wx
                o2 = o1 + c
                o3 = ady * wx - adx * wy
                o4 = o3 - c
                tol = 2 * delta * (abs(adx) + abs(ady) + abs(bdx) + abs(bdy))
                if min(min(abs(o1), abs(o2)), min(abs(o3), abs(o4))) < tol:
                    small = True
                    break
                if o1 * o2 < 0 and o3 * o4 < 0:
                    t = o1 / (o1 - o2)
                    u = o3 / (o3 - o4)
                    lead_a[i] += t if brec[b0 + j, 4] * o1 > 0 else -t
                    lead_b[j] += u if sa * o3 > 0 else -u
                    ca[i] += 1
                    cb[j] += 1
                    crossed = True
            if small:
                break
        if small:
            fallback[k] = True
            continue
        ox, oy = arec[a0, 0], arec[a0, 1]
        sa_, any_a, all_a = _rings_nb(arec, a0, na, aring_start, aring_count, aring_edge, ga, brec, b0, nb,
                                      ca, lead_a, ox, oy)
        sb_, any_b, _all_b = _rings_nb(brec, b0, nb, bring_start, bring_count, bring_edge, gb, arec, a0, na,
                                       cb, lead_b, ox, oy)
        if areas:
            area[k] = max(0.5 * (sa_ + sb_), 0.0)
        interiors[k] = crossed or any_a or any_b
        a_within[k] = (not crossed) and all_a and not any_b


_HELPERS = jit.Helpers(globals(), inline=("_inside_nb", "_near_nb"), called=("_rings_nb",))
_pairs_k = jit.Kernel(_pairs_py, _HELPERS)


def _edges_py(coords, ring_off, rec, term):
    """Edge records of closed rings (as the numpy loop of :func:`_from_rings`) and, per edge, the term of
    twice its ring's signed area about the ring's first vertex."""
    e = 0
    for r in range(len(ring_off) - 1):
        c0, c1 = ring_off[r], ring_off[r + 1]
        fx, fy = coords[c0, 0], coords[c0, 1]
        for c in range(c0, c1 - 1):
            x, y = coords[c, 0], coords[c, 1]
            dx = coords[c + 1, 0] - x
            dy = coords[c + 1, 1] - y
            rec[e, 0] = x
            rec[e, 1] = y
            rec[e, 2] = dx
            rec[e, 3] = dy
            term[e] = (x - fx) * dy - (y - fy) * dx
            e += 1


_edges_k = jit.Kernel(_edges_py)


def _discs_py(rec, start, count, cx, cy, margin, inner, outer):
    """Inner and outer discs about the centres (as the numpy loop of :func:`_discs`)."""
    for g in range(len(start)):
        hits = 0
        low = np.inf
        near = np.inf
        far = -np.inf
        for e in range(start[g], start[g] + count[g]):
            x, y, dx, dy = rec[e, 0], rec[e, 1], rec[e, 2], rec[e, 3]
            px, py = cx[g] - x, cy[g] - y
            o = dx * py - dy * px
            if ((py >= 0) and (py < dy) and o > 0) or ((py < 0) and (py >= dy) and o < 0):
                hits += 1
            low = min(low, abs(py))
            ll = dx * dx + dy * dy
            t = (px * dx + py * dy) / ll if ll > 0 else 0.0
            t = min(max(t, 0.0), 1.0)
            ex, ey = px - t * dx, py - t * dy
            near = min(near, ex * ex + ey * ey)
            far = max(far, px * px + py * py)
        inside = (hits & 1) == 1 and low > margin
        inner[g] = max(np.sqrt(near) - margin, 0.0) if inside else 0.0
        outer[g] = np.sqrt(far) + margin


_discs_k = jit.Kernel(_discs_py)


def _pairs_fused(a: EdgeSet, b: EdgeSet, ia: np.ndarray, ib: np.ndarray, delta: float, areas: bool,
                 area: np.ndarray, interiors: np.ndarray, a_within: np.ndarray, fallback: np.ndarray) -> None:
    _pairs_k(a.rec, a.start, a.count, a.ring_start, a.ring_count, a.ring_edge,
             b.rec, b.start, b.count, b.ring_start, b.ring_count, b.ring_edge,
             ia, ib, float(delta), bool(areas), area, interiors, a_within, fallback)
