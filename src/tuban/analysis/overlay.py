"""Rules R1–R5 (domain.md §4) on projected arrays: vectorized shapely 2 with STRtree.

The kernel takes metric geometries and returns arrays; it knows nothing of files,
columns or languages. Definitions (the same in :mod:`tuban.analysis.postgis`):

* *overlap* of a patch and a scope: their intersection area, counted when it exceeds
  ``rules.overlap_min_m2`` (so merely touching polygons do not overlap);
* *counting* scope: an approved project (RP_NUM present) with VEC_TYPE 防治责任范围;
* R1 合规 / R2 疑似超出防治责任范围: the patch overlaps counting scopes; the part outside their
  union (EAREA) is ≤ / > max(tolerance_min_ha, tolerance_share × patch area);
* R3 疑似建设地点变更: no counting overlap, and a counting scope within the site-change radius
  overlaps no current patch (it is itself undisturbed);
* R4 疑似未批先建, or R5 (the same BYD, with the plan-threshold hint) below ``plan_threshold_ha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from tuban.analysis.pairwise import EdgeSet, edge_set, pair_overlaps
from tuban.analysis.parallel import pmap
from tuban.analysis.rules import RuleSet

__all__ = ["RULE_BYD", "ComplianceArrays", "classify_compliance", "first_per_group", "nearest_scopes"]

M2_PER_HA = 10_000.0

RULE_BYD = {
    "R1": "合规",
    "R2": "疑似超出防治责任范围",
    "R3": "疑似建设地点变更",
    "R4": "疑似未批先建",
    "R5": "疑似未批先建",
}


@dataclass(slots=True)
class ComplianceArrays:
    """Per-patch results (length n) and per-pair overlaps (patch, scope, m²), sorted by patch."""

    rule: np.ndarray  # "R1" … "R5"
    covered_m2: np.ndarray  # area of patch ∩ union(counting scopes)
    outside_m2: np.ndarray  # EAREA in m² (0 unless R1/R2)
    tolerance_m2: np.ndarray
    lead_scope: np.ndarray  # counting scope with the largest overlap (R1/R2) or the R3 scope; -1
    nearest_m: np.ndarray  # 0 for R1/R2, the R3 distance; inf otherwise (see nearest_scopes)
    nearest_scope: np.ndarray  # the lead scope for R1–R3; -1 otherwise
    site_change_m: np.ndarray  # R3: distance to the undisturbed scope in ``lead_scope``; nan otherwise
    pair_patch: np.ndarray
    pair_scope: np.ndarray
    pair_overlap_m2: np.ndarray
    pair_counting: np.ndarray  # bool; False = schematic / unapproved scope (a suggested link only)
    scope_disturbed: np.ndarray  # per scope: overlaps some current patch


def first_per_group(group: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Indices of the first row of each *group* after sorting by ``(group, *keys)``."""
    order = np.lexsort((*reversed(keys), group)) if keys else np.argsort(group, kind="stable")
    g = group[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return order[first]


def _union_area_per_patch(patch_idx: np.ndarray, pieces: np.ndarray, n: int) -> np.ndarray:
    """Area of the union of *pieces* per patch, folding rank by rank (vectorized across patches)."""
    out = np.zeros(n)
    if len(patch_idx) == 0:
        return out
    order = np.argsort(patch_idx, kind="stable")
    p = patch_idx[order]
    pc = pieces[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    counts = np.diff(np.r_[starts, len(p)])
    acc = pc[starts].copy()
    for r in range(1, int(counts.max())):
        sel = counts > r
        acc[sel] = shapely.union(acc[sel], pc[starts[sel] + r])
    out[p[starts]] = shapely.area(acc)
    return out


def classify_compliance(
    patches: np.ndarray,
    scopes: np.ndarray,
    counting: np.ndarray,
    rules: RuleSet,
    *,
    patch_area_m2: np.ndarray | None = None,
    workers: int = 1,
    patch_edges: EdgeSet | None = None,
    scope_edges: EdgeSet | None = None,
    tree: shapely.STRtree | None = None,
) -> ComplianceArrays:
    """Apply R1–R5 to metric *patches* against metric *scopes*.

    Parameters
    ----------
    patches, scopes
        Polygonal shapely geometries in one metric CRS (scopes without geometry removed).
    counting
        Boolean per scope: approved (RP_NUM present) and VEC_TYPE 防治责任范围.
    rules
        Thresholds (:func:`tuban.analysis.rules.load_rules`).
    patch_area_m2
        Precomputed patch areas, to avoid computing them twice.
    workers
        Threads for the per-pair geometry work (:func:`tuban.analysis.parallel.pmap`).
    patch_edges, scope_edges, tree
        The :func:`~tuban.analysis.pairwise.edge_set` of each layer and an ``STRtree`` of the
        patches, when the caller already has them.

    Only *undisturbed* counting scopes are searched within the radius (that is all R3
    needs); the nearest counting scope of an R4/R5 patch, disturbed or not, is found for
    the report by :func:`nearest_scopes`.
    """
    n, m = len(patches), len(scopes)
    counting = np.asarray(counting, dtype=bool)
    area = shapely.area(patches) if patch_area_m2 is None else patch_area_m2
    min_ov = rules.overlap_min_m2

    # scope × patch pairs by bounding boxes; the numpy kernel decides containment and areas
    # (:mod:`tuban.analysis.pairwise`); pairs it is not sure of (touching, shared edges) and
    # large ones go through GEOS: a prepared contains_properly, else the intersection
    ep = patch_edges if patch_edges is not None else edge_set(patches)
    es = scope_edges if scope_edges is not None else edge_set(scopes)
    tree = tree if tree is not None else shapely.STRtree(patches)
    sj, pi = tree.query(scopes)
    res = pair_overlaps(ep, es, pi, sj, workers=workers)
    inside = res.a_within & ~res.fallback
    ov = np.where(inside, area[pi], res.area)
    fb = np.flatnonzero(res.fallback)
    if len(fb):
        shapely.prepare(scopes[np.unique(sj[fb])])
        fin = shapely.contains_properly(scopes[sj[fb]], patches[pi[fb]])
        inside[fb] = fin
        rest = fb[~fin]
        ov[fb[fin]] = area[pi[fb[fin]]]
        ov[rest] = shapely.area(shapely.intersection(patches[pi[rest]], scopes[sj[rest]]))
    keep = ov > min_ov

    order = np.lexsort((sj[keep], pi[keep]))
    pair_patch, pair_scope, pair_ov = pi[keep][order], sj[keep][order], ov[keep][order]
    pair_inside = inside[keep][order]
    pair_counting = counting[pair_scope]

    scope_disturbed = np.zeros(m, dtype=bool)
    scope_disturbed[pair_scope] = True

    # covered = area(patch ∩ union of counting scopes): the patch area when one scope holds it,
    # the one overlap when one scope crosses it; for two, ov1 + ov2 − area(patch ∩ S1 ∩ S2) (two
    # GEOS intersections, no union); a union of pieces (GEOS) only for three or more
    c = pair_counting
    covered = np.zeros(n)
    has_overlap = np.zeros(n, dtype=bool)
    has_overlap[pair_patch[c]] = True
    fully = np.zeros(n, dtype=bool)
    fully[pair_patch[c & pair_inside]] = True
    partial = c & ~pair_inside & ~fully[pair_patch]
    pp, ps = pair_patch[partial], pair_scope[partial]
    nparts = np.bincount(pp, minlength=n)
    single = nparts[pp] == 1
    covered[pp[single]] = pair_ov[partial][single]
    pov = pair_ov[partial]
    two = np.flatnonzero(nparts[pp] == 2)[::2]  # the first of each patch's two pairs (sorted by patch)
    if len(two):
        tp, s1, s2 = pp[two], ps[two], ps[two + 1]
        first = pmap(shapely.intersection, patches[tp], scopes[s1], workers=workers)
        both = shapely.area(pmap(shapely.intersection, first, scopes[s2], workers=workers))
        covered[tp] = pov[two] + pov[two + 1] - both
    multi = nparts[pp] > 2
    if multi.any():
        pieces = pmap(shapely.intersection, patches[pp[multi]], scopes[ps[multi]], workers=workers)
        union_area = _union_area_per_patch(pp[multi], pieces, n)
        many = nparts > 2
        covered[many] = union_area[many]
    covered[fully] = area[fully]

    tolerance = np.maximum(rules.tolerance_min_ha * M2_PER_HA, rules.tolerance_share * area)
    outside = np.where(has_overlap, np.maximum(area - covered, 0.0), 0.0)
    eps = rules.area_eps_ha * M2_PER_HA
    rule = np.full(n, "R4", dtype=object)
    rule[has_overlap & (outside <= tolerance + eps)] = "R1"
    rule[has_overlap & (outside > tolerance + eps)] = "R2"

    lead = np.full(n, -1)
    if c.any():
        rd = rules.rank_decimals
        first = first_per_group(pair_patch[c], -np.round(pair_ov[c], rd), pair_scope[c])
        lead[pair_patch[c][first]] = pair_scope[c][first]

    # R3: an undisturbed counting scope within the radius (the nearest one, ties by row)
    nearest_m = np.where(has_overlap, 0.0, np.inf)
    nearest_scope = lead.copy()
    site_m = np.full(n, np.nan)
    cand = np.flatnonzero(~has_overlap)
    free_idx = np.flatnonzero(counting & ~scope_disturbed)
    if len(cand) and len(free_idx):
        # the few free scopes query the patch tree (dwithin is symmetric), then keep the candidates
        qj, pk = tree.query(scopes[free_idx], predicate="dwithin",
                            distance=rules.site_change_radius_m + rules.distance_eps_m)
        row = np.full(n, -1)
        row[cand] = np.arange(len(cand))
        ok = row[pk] >= 0
        qi, qj = row[pk[ok]], qj[ok]
        if len(qi):
            dist = pmap(shapely.distance, patches[cand[qi]], scopes[free_idx[qj]], workers=workers)
            first = first_per_group(qi, np.round(dist, rules.rank_decimals), free_idx[qj])
            hit = cand[qi[first]]
            rule[hit] = "R3"
            lead[hit] = free_idx[qj[first]]
            site_m[hit] = dist[first]
            nearest_scope[hit] = lead[hit]
            nearest_m[hit] = dist[first]
    small = (rule == "R4") & (area < rules.plan_threshold_ha * M2_PER_HA)
    rule[small] = "R5"
    return ComplianceArrays(
        rule=rule,
        covered_m2=covered,
        outside_m2=outside,
        tolerance_m2=tolerance,
        lead_scope=lead,
        nearest_m=nearest_m,
        nearest_scope=nearest_scope,
        site_change_m=site_m,
        pair_patch=pair_patch,
        pair_scope=pair_scope,
        pair_overlap_m2=pair_ov,
        pair_counting=pair_counting,
        scope_disturbed=scope_disturbed,
    )


def nearest_scopes(
    patches: np.ndarray, scopes: np.ndarray, counting: np.ndarray, *, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest counting scope of each patch within *max_distance* m and its distance
    (−1 / inf when there is none that close).

    Used for the report of R4/R5 patches; not needed for the classification itself.
    """
    idx = np.full(len(patches), -1)
    dist = np.full(len(patches), np.inf)
    cidx = np.flatnonzero(counting)
    if len(patches) and len(cidx):
        # candidates by boxes grown by the radius; the box gap is a lower bound of the distance:
        # one exact distance per patch (to its closest box) bounds it from above, and only the
        # candidates whose lower bound does not exceed that are measured
        pb, sb = shapely.bounds(patches), shapely.bounds(scopes[cidx])
        grown = shapely.box(pb[:, 0] - max_distance, pb[:, 1] - max_distance, pb[:, 2] + max_distance,
                            pb[:, 3] + max_distance)
        qi, qj = shapely.STRtree(scopes[cidx]).query(grown)
        gx = np.maximum(0.0, np.maximum(sb[qj, 0] - pb[qi, 2], pb[qi, 0] - sb[qj, 2]))
        gy = np.maximum(0.0, np.maximum(sb[qj, 1] - pb[qi, 3], pb[qi, 1] - sb[qj, 3]))
        low = np.hypot(gx, gy)
        ok = low <= max_distance
        qi, qj, low = qi[ok], qj[ok], low[ok]
        best = first_per_group(qi, low)
        upper = np.full(len(patches), np.inf)
        upper[qi[best]] = shapely.distance(patches[qi[best]], scopes[cidx[qj[best]]])
        ok = low <= np.minimum(upper[qi], max_distance)
        qi, qj = qi[ok], qj[ok]
        d = shapely.distance(patches[qi], scopes[cidx[qj]])
        ok = d <= max_distance
        qi, qj, d = qi[ok], qj[ok], d[ok]
        if len(qi):
            first = first_per_group(qi, d, cidx[qj])
            idx[qi[first]] = cidx[qj[first]]
            dist[qi[first]] = d[first]
    return idx, dist
