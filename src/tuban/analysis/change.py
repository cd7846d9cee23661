"""Change type (QDTYPE 扰动变化类型) against the previous round, with lineage links.

Our rule (domain.md §5): a current patch matches the previous patches whose interiors
it intersects (``intersects`` and not ``touches``: a shared edge is no match; the same
test as ``ST_Intersects AND NOT ST_Touches`` in PostGIS). No intersection is computed
for the classification; :func:`lineage_overlaps` gives the overlap areas for the report. None → 新增. Otherwise its area is compared
with the total area of the matched previous patches: above +expand_share → 续建（范围扩大）,
below −shrink_share → 续建（范围缩小）, else 续建（范围不变）. A previous patch that no
current patch overlaps is 完工 (reported separately, not among the current patches).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from tuban.analysis.parallel import pmap
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


def classify_change(
    current: np.ndarray,
    previous: np.ndarray,
    rules: RuleSet,
    *,
    current_area_m2: np.ndarray,
    previous_area_m2: np.ndarray | None = None,
    inner_points: np.ndarray | None = None,
    workers: int = 1,
) -> ChangeArrays:
    """QDTYPE for metric *current* patches against metric *previous* patches.

    *inner_points* (``point_on_surface`` of every current patch) may be passed when already computed.
    """
    n = len(current)
    prev_area = shapely.area(previous) if previous_area_m2 is None else previous_area_m2
    shapely.prepare(previous)
    ctree = shapely.STRtree(current)
    pj, ci = ctree.query(previous)  # bounding boxes only
    # fast path: a point strictly inside the current patch lies in the previous patch's interior
    # → their interiors meet (point-in-polygon on the prepared previous patch). The other pairs
    # need the predicates: intersects and not touches.
    inner = inner_points if inner_points is not None else pmap(shapely.point_on_surface, current,
                                                                workers=workers)
    keep = pmap(shapely.contains_properly, previous[pj], inner[ci], workers=workers)
    rest = np.flatnonzero(~keep)
    hit = pmap(shapely.intersects, previous[pj[rest]], current[ci[rest]], workers=workers)
    rest = rest[hit]
    keep[rest] = ~pmap(shapely.touches, current[ci[rest]], previous[pj[rest]], workers=workers)
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


def lineage_overlaps(current: np.ndarray, previous: np.ndarray, change: ChangeArrays) -> np.ndarray:
    """Overlap area (m²) of every lineage link of *change* (metric geometries)."""
    return shapely.area(shapely.intersection(current[change.pair_current], previous[change.pair_previous]))
