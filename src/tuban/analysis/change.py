"""Change type (QDTYPE 扰动变化类型) against the previous round, with lineage links.

Our rule (domain.md §5): a current patch matches the previous patches whose interiors
it intersects (``intersects`` and not ``touches``: a shared edge is no match; the same
test as ``ST_Intersects AND NOT ST_Touches`` in PostGIS); the overlap areas of the links
are computed on demand (:func:`lineage_overlaps`). None → 新增. Otherwise its area is compared
with the total area of the matched previous patches: above +expand_share → 续建（范围扩大）,
below −shrink_share → 续建（范围缩小）, else 续建（范围不变）. A previous patch that no
current patch overlaps is 完工 (reported separately, not among the current patches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from tuban.analysis.geometry import LazyPolygons
from tuban.analysis.pairwise import EdgeSet, edge_set, pair_overlaps
from tuban.analysis.rules import RuleSet

__all__ = [
    "COMPLETED",
    "CONTINUED_EXPANDED",
    "CONTINUED_SAME",
    "CONTINUED_SHRUNK",
    "NEW",
    "ChangeArrays",
    "classify_change",
    "lineage_overlaps",
]

NEW = "新增"
CONTINUED_EXPANDED = "续建（范围扩大）"
CONTINUED_SHRUNK = "续建（范围缩小）"
CONTINUED_SAME = "续建（范围不变）"
COMPLETED = "完工"


@dataclass(slots=True)
class ChangeArrays:
    qdtype: np.ndarray  # per current patch
    previous_area_m2: np.ndarray  # total area of the matched previous patches (0 for 新增)
    change_share: np.ndarray  # (area − previous) / previous; nan for 新增
    pair_current: np.ndarray  # lineage links, sorted by current patch then previous patch
    pair_previous: np.ndarray
    completed: np.ndarray  # indices of previous patches with no current match (完工)
    pair_overlap_m2: np.ndarray | None = None  # overlap of each lineage link (None: compute)


def classify_change(
    current: np.ndarray,
    previous: np.ndarray,
    rules: RuleSet,
    *,
    current_area_m2: np.ndarray,
    previous_area_m2: np.ndarray | None = None,
    workers: int = 1,
    current_edges: EdgeSet | None = None,
    previous_edges: EdgeSet | None = None,
    tree: shapely.STRtree | None = None,
) -> ChangeArrays:
    """QDTYPE for metric *current* patches against metric *previous* patches.

    Pairs come from the bounding boxes (*tree*: an ``STRtree`` of *current*, when at hand);
    the numpy kernel (:func:`~tuban.analysis.pairwise.pair_overlaps`) says whether their
    interiors meet and gives the lineage overlap areas; the pairs it is not sure of
    (touching, shared edges) use the GEOS predicates ``intersects and not touches``.
    """
    n = len(current)
    if previous_area_m2 is None:
        previous_area_m2 = shapely.area(np.asarray(previous, dtype=object))
    prev_area = previous_area_m2
    ec = current_edges if current_edges is not None else edge_set(current)
    eq = previous_edges if previous_edges is not None else edge_set(np.asarray(previous, dtype=object))
    boxes = previous.boxes() if isinstance(previous, LazyPolygons) else previous  # same envelopes
    pj, ci = (tree if tree is not None else shapely.STRtree(current)).query(boxes)  # bounding boxes
    res = pair_overlaps(ec, eq, ci, pj, areas=False, workers=workers)
    keep = res.interiors & ~res.fallback
    fb = np.flatnonzero(res.fallback)
    if len(fb):
        hit = shapely.intersects(current[ci[fb]], previous[pj[fb]])
        hit[hit] = ~shapely.touches(current[ci[fb[hit]]], previous[pj[fb[hit]]])
        keep[fb] = hit
    ci, pj = ci[keep], pj[keep]
    order = np.lexsort((pj, ci))
    ci, pj = ci[order], pj[order]
    matched_prev = np.bincount(ci, weights=prev_area[pj], minlength=n)
    matched = np.bincount(ci, minlength=n) > 0
    share = np.full(n, np.nan)
    share[matched] = (current_area_m2[matched] - matched_prev[matched]) / matched_prev[matched]
    qdtype = np.full(n, NEW, dtype=object)
    qdtype[matched] = CONTINUED_SAME
    qdtype[matched & (share > rules.expand_share + rules.share_eps)] = CONTINUED_EXPANDED
    qdtype[matched & (share < -rules.shrink_share - rules.share_eps)] = CONTINUED_SHRUNK
    has_successor = np.zeros(len(previous), dtype=bool)
    has_successor[pj] = True
    return ChangeArrays(
        qdtype=qdtype,
        previous_area_m2=matched_prev,
        change_share=share,
        pair_current=ci,
        pair_previous=pj,
        completed=np.flatnonzero(~has_successor),
    )


def lineage_overlaps(current: np.ndarray, previous: np.ndarray, change: ChangeArrays, *,
                     current_edges: EdgeSet | None = None, previous_edges: EdgeSet | None = None) -> np.ndarray:
    """Overlap area (m²) of every lineage link of *change* (metric geometries): the pair
    kernel, GEOS for the pairs it is not sure of."""
    if change.pair_overlap_m2 is not None:
        return change.pair_overlap_m2
    ci, pj = change.pair_current, change.pair_previous
    ec = current_edges if current_edges is not None else edge_set(current)
    eq = previous_edges if previous_edges is not None else edge_set(previous)
    res = pair_overlaps(ec, eq, ci, pj)
    ov = res.area
    fb = np.flatnonzero(res.fallback)
    if len(fb):
        ov[fb] = shapely.area(shapely.intersection(current[ci[fb]], previous[pj[fb]]))
    return ov
