"""Division codes (XZQDM) per patch: every division it overlaps, lead (largest share) first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from tuban.analysis.parallel import pmap

__all__ = ["DivisionArrays", "assign_divisions"]


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
    inner_points: np.ndarray | None = None,
    workers: int = 1,
    tree: shapely.STRtree | None = None,
) -> DivisionArrays:
    """Overlap every metric patch with the metric division polygons.

    Division boundaries are cut into short pieces so that only patches near a boundary are
    tested against it. A (single) polygon patch that meets no boundary lies wholly inside
    every division holding any of its points (its first vertex, say: it lies on no division
    boundary): one point-in-polygon test, no overlay. Multipolygons and patches meeting a
    boundary are intersected with their divisions. Pairs are ordered per patch by overlap
    (descending) then code: the first is the lead. *inner_points* (one point of every patch)
    and *tree* (an ``STRtree`` of the patches) may be passed when already at hand.
    """
    n = len(patches)
    ptree = tree if tree is not None else shapely.STRtree(patches)
    _, near = ptree.query(boundary_pieces(divisions), predicate="intersects")
    full = np.zeros(n, dtype=bool)
    full[near] = True
    full |= shapely.get_type_id(patches) != shapely.GeometryType.POLYGON
    simple = np.flatnonzero(~full)
    shapely.prepare(divisions)
    if inner_points is not None:
        inner = inner_points[simple]
    else:
        rings = shapely.get_exterior_ring(patches[simple])
        first = np.r_[0, np.cumsum(shapely.get_num_coordinates(rings))[:-1]].astype(np.int64)
        inner = shapely.points(shapely.get_coordinates(rings)[first[:len(simple)]])
    dj_a, k = shapely.STRtree(inner).query(divisions, predicate="contains")
    pi_a = simple[k]
    ov_a = patch_area_m2[pi_a]
    hard = np.flatnonzero(full)
    dj_b, k = shapely.STRtree(patches[hard]).query(divisions, predicate="intersects")
    pi_b = hard[k]
    ov_b = shapely.area(pmap(shapely.intersection, patches[pi_b], divisions[dj_b], workers=workers))
    pi, dj, ov = np.r_[pi_a, pi_b], np.r_[dj_a, dj_b], np.r_[ov_a, ov_b]
    keep = ov > overlap_min_m2
    pi, dj, ov = pi[keep], dj[keep], ov[keep]
    order = np.lexsort((codes[dj].astype(str), -np.round(ov, rank_decimals), pi))
    pi, dj, ov = pi[order], dj[order], ov[order]
    lead = np.full(n, -1)
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, dtype=bool)
    lead[pi[first]] = dj[first]
    return DivisionArrays(lead=lead, pair_patch=pi, pair_division=dj, pair_overlap_m2=ov)


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
