"""Division codes (XZQDM) per patch: every division it overlaps, lead (largest share) first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from tuban.analysis.pairwise import EdgeSet, edge_set, pair_overlaps

__all__ = ["DivisionArrays", "assign_divisions", "points_in_polygons", "subdivide"]


@dataclass(slots=True)
class DivisionArrays:
    """Per-patch lead division (-1 when none) and per-pair overlaps sorted by patch, then share."""

    lead: np.ndarray
    pair_patch: np.ndarray
    pair_division: np.ndarray
    pair_overlap_m2: np.ndarray


def assign_divisions(
    patches: np.ndarray,
    divisions: np.ndarray,
    codes: np.ndarray,
    *,
    patch_area_m2: np.ndarray,
    overlap_min_m2: float,
    rank_decimals: int = 4,
    inner_xy: tuple[np.ndarray, np.ndarray] | None = None,
    workers: int = 1,
    tree: shapely.STRtree | None = None,
    patch_edges: EdgeSet | None = None,
) -> DivisionArrays:
    """Overlap every metric patch with the metric division polygons.

    Division boundaries are cut into short pieces so that only patches near a boundary are
    tested against it. A (single) polygon patch that meets no boundary lies wholly inside
    every division holding any of its points (its first vertex, say: it lies on no division
    boundary): one point-in-polygon test, no overlay. Multipolygons and patches meeting a
    boundary are overlaid with the divisions cut into small pieces (:func:`subdivide`), by
    the numpy kernel (:func:`~tuban.analysis.pairwise.pair_overlaps`, GEOS where it is not
    sure). Pairs are ordered per patch by overlap (descending) then code: the first is the
    lead. *inner_xy* (the coordinates of one vertex of every patch), *tree* (an ``STRtree`` of
    the patches) and *patch_edges* may be passed when already at hand.
    """
    n = len(patches)
    ptree = tree if tree is not None else shapely.STRtree(patches)
    _, near = ptree.query(boundary_pieces(divisions), predicate="intersects")
    full = np.zeros(n, dtype=bool)
    full[near] = True
    full |= shapely.get_type_id(patches) != shapely.GeometryType.POLYGON
    simple = np.flatnonzero(~full)
    if inner_xy is None:
        rings = shapely.get_exterior_ring(patches)
        first = np.r_[0, np.cumsum(shapely.get_num_coordinates(rings))[:-1]].astype(np.int64)
        xy = shapely.get_coordinates(rings)[first]
        inner_xy = (xy[:, 0], xy[:, 1])
    k, dj_a = points_in_polygons(divisions, inner_xy[0][simple], inner_xy[1][simple])
    pi_a = simple[k]
    ov_a = patch_area_m2[pi_a]
    pieces, owner = subdivide(divisions)
    hard = np.flatnonzero(full)
    pk, k = shapely.STRtree(patches[hard]).query(pieces)
    pi = hard[k]
    pe = patch_edges if patch_edges is not None else edge_set(patches)
    res = pair_overlaps(pe, edge_set(pieces), pi, pk, workers=workers)
    ov = res.area
    fb = np.flatnonzero(res.fallback)
    if len(fb):
        ov[fb] = shapely.area(shapely.intersection(patches[pi[fb]], pieces[pk[fb]]))
    m = len(divisions)
    key, inv = np.unique(pi * m + owner[pk], return_inverse=True)
    ov_b = np.bincount(inv, weights=ov, minlength=len(key))
    pi_b, dj_b = np.divmod(key, m)
    pi, dj, ov = np.r_[pi_a, pi_b], np.r_[dj_a, dj_b], np.r_[ov_a, ov_b]
    keep = ov > overlap_min_m2
    pi, dj, ov = pi[keep], dj[keep], ov[keep]
    # by patch, then overlap (descending), then code; a patch with one pair needs no ranking
    count = np.bincount(pi, minlength=n)
    lone = count[pi] == 1
    order = np.empty(len(pi), dtype=np.int64)
    start = np.cumsum(count) - count
    order[start[pi[lone]]] = np.flatnonzero(lone)
    rest = np.flatnonzero(~lone)
    if len(rest):
        _, code_rank = np.unique(codes.astype(str), return_inverse=True)
        rest = rest[np.lexsort((code_rank[dj[rest]], -np.round(ov[rest], rank_decimals), pi[rest]))]
        first = np.r_[True, pi[rest][1:] != pi[rest][:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(rest)), 0))
        order[start[pi[rest]] + np.arange(len(rest)) - group_start] = rest
    pi, dj, ov = pi[order], dj[order], ov[order]
    lead = np.full(n, -1)
    first_row = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, dtype=bool)
    lead[pi[first_row]] = dj[first_row]
    return DivisionArrays(lead=lead, pair_patch=pi, pair_division=dj, pair_overlap_m2=ov)


def points_in_polygons(polygons: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (point, polygon) with the point inside the polygon (prepared ``contains_xy``);
    the points are sorted by x once and each polygon tests only those in its bounding box."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    bounds = shapely.bounds(polygons)
    shapely.prepare(polygons)
    lo = np.searchsorted(xs, bounds[:, 0], side="left")
    hi = np.searchsorted(xs, bounds[:, 2], side="right")
    pts, polys = [], []
    for d in range(len(polygons)):
        cand = order[lo[d]:hi[d]]
        cand = cand[(y[cand] >= bounds[d, 1]) & (y[cand] <= bounds[d, 3])]
        if len(cand):
            cand = cand[shapely.contains_xy(polygons[d], x[cand], y[cand])]
            pts.append(cand)
            polys.append(np.full(len(cand), d))
    if not pts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(pts), np.concatenate(polys)


def subdivide(polygons: np.ndarray, *, max_vertices: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Cut every polygon by a regular grid over its bounds into pieces of about *max_vertices*
    vertices (like PostGIS ``ST_Subdivide``): the pieces of one polygon partition it.

    Returns the polygon pieces and the index of the polygon each came from.
    """
    counts = shapely.get_num_coordinates(polygons)
    k = np.maximum(1, np.ceil(np.sqrt(counts / max_vertices))).astype(np.int64)
    owner = np.repeat(np.arange(len(polygons)), k * k)
    cell = np.concatenate([np.arange(kk * kk) for kk in k]) if len(k) else np.zeros(0, dtype=np.int64)
    kk = k[owner]
    b = shapely.bounds(polygons)[owner]
    w, h = (b[:, 2] - b[:, 0]) / kk, (b[:, 3] - b[:, 1]) / kk
    cx, cy = cell % kk, cell // kk
    x0 = b[:, 0] + cx * w
    y0 = b[:, 1] + cy * h
    # the outer cells reach the bounds exactly (no sliver lost to round-off)
    x1 = np.where(cx == kk - 1, b[:, 2], x0 + w)
    y1 = np.where(cy == kk - 1, b[:, 3], y0 + h)
    whole = kk == 1
    pieces = np.array(polygons[owner], dtype=object)
    cut = np.flatnonzero(~whole)
    pieces[cut] = shapely.intersection(polygons[owner[cut]], shapely.box(x0[cut], y0[cut], x1[cut], y1[cut]))
    parts, idx = shapely.get_parts(pieces, return_index=True)
    poly = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    poly &= ~shapely.is_empty(parts)
    return parts[poly], owner[idx[poly]]


def boundary_pieces(polygons: np.ndarray, *, vertices: int = 32) -> np.ndarray:
    """The rings of *polygons* cut into linestrings of at most *vertices* vertices."""
    lines = shapely.get_parts(shapely.boundary(polygons))
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    pieces = []
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(owner)], strict=True):
        for a in range(s, e - 1, vertices - 1):
            pieces.append(coords[a:min(a + vertices, e)])
    return shapely.linestrings(np.concatenate(pieces), indices=np.repeat(np.arange(len(pieces)),
                                                                       [len(p) for p in pieces]))
