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

from tuban.analysis.rules import RuleSet

__all__ = ["RULE_BYD", "ComplianceArrays", "classify_compliance", "first_per_group"]

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
    nearest_m: np.ndarray  # distance to the nearest counting scope (0 when overlapping; inf if none)
    nearest_scope: np.ndarray  # that scope; -1
    nearest_disturbed: np.ndarray  # bool: the nearest counting scope overlaps some current patch
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
    """
    n, m = len(patches), len(scopes)
    counting = np.asarray(counting, dtype=bool)
    area = shapely.area(patches) if patch_area_m2 is None else patch_area_m2
    min_ov = rules.overlap_min_m2

    # all scope × patch pairs whose geometries intersect; the (fewer) scopes are the prepared side
    shapely.prepare(scopes)
    ptree = shapely.STRtree(patches)
    sj, pi = ptree.query(scopes, predicate="intersects")
    inside = shapely.contains_properly(scopes[sj], patches[pi])
    ov = np.where(inside, area[pi], 0.0)
    part = np.flatnonzero(~inside)
    pieces = shapely.intersection(patches[pi[part]], scopes[sj[part]])
    ov[part] = shapely.area(pieces)
    keep = ov > min_ov
    piece_of = np.full(len(sj), -1)
    piece_of[part] = np.arange(len(part))

    order = np.lexsort((sj[keep], pi[keep]))
    pair_patch, pair_scope, pair_ov = pi[keep][order], sj[keep][order], ov[keep][order]
    pair_piece = piece_of[keep][order]
    pair_counting = counting[pair_scope]

    scope_disturbed = np.zeros(m, dtype=bool)
    scope_disturbed[pair_scope] = True

    # covered = area(patch ∩ union of counting scopes)
    c = pair_counting
    covered = np.zeros(n)
    has_overlap = np.zeros(n, dtype=bool)
    has_overlap[pair_patch[c]] = True
    fully = np.zeros(n, dtype=bool)
    fully[pair_patch[c & (pair_piece < 0)]] = True
    partial = c & (pair_piece >= 0) & ~fully[pair_patch]
    pp, pk = pair_patch[partial], pair_piece[partial]
    nparts = np.bincount(pp, minlength=n)
    single = nparts[pp] == 1
    covered[pp[single]] = pair_ov[partial][single]
    multi = ~single
    if multi.any():
        union_area = _union_area_per_patch(pp[multi], pieces[pk[multi]], n)
        many = nparts > 1
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

    nearest_m = np.where(has_overlap, 0.0, np.inf)
    nearest_scope = lead.copy()
    site_m = np.full(n, np.nan)
    cand = np.flatnonzero(~has_overlap)
    cidx = np.flatnonzero(counting)
    if len(cand) and len(cidx):
        ctree = shapely.STRtree(scopes[cidx])
        qi, qj = ctree.query(patches[cand], predicate="dwithin",
                              distance=rules.site_change_radius_m + rules.distance_eps_m)
        dist = shapely.distance(patches[cand[qi]], scopes[cidx[qj]])
        if len(qi):
            first = first_per_group(qi, np.round(dist, rules.rank_decimals), cidx[qj])
            nearest_m[cand[qi[first]]] = dist[first]
            nearest_scope[cand[qi[first]]] = cidx[qj[first]]
            free = ~scope_disturbed[cidx[qj]]
            if free.any():
                first = first_per_group(qi[free], np.round(dist[free], rules.rank_decimals), cidx[qj][free])
                hit = cand[qi[free][first]]
                rule[hit] = "R3"
                lead[hit] = cidx[qj[free][first]]
                site_m[hit] = dist[free][first]
        far = cand[~np.isfinite(nearest_m[cand])]
        if len(far):
            fi, fj = ctree.query_nearest(patches[far], all_matches=False, return_distance=False)
            nearest_scope[far[fi]] = cidx[fj]
            nearest_m[far[fi]] = shapely.distance(patches[far[fi]], scopes[cidx[fj]])
    small = (rule == "R4") & (area < rules.plan_threshold_ha * M2_PER_HA)
    rule[small] = "R5"
    nearest_disturbed = np.zeros(n, dtype=bool)
    has_near = nearest_scope >= 0
    nearest_disturbed[has_near] = scope_disturbed[nearest_scope[has_near]]
    return ComplianceArrays(
        rule=rule,
        covered_m2=covered,
        outside_m2=outside,
        tolerance_m2=tolerance,
        lead_scope=lead,
        nearest_m=nearest_m,
        nearest_scope=nearest_scope,
        nearest_disturbed=nearest_disturbed,
        site_change_m=site_m,
        pair_patch=pair_patch,
        pair_scope=pair_scope,
        pair_overlap_m2=pair_ov,
        pair_counting=pair_counting,
        scope_disturbed=scope_disturbed,
    )
