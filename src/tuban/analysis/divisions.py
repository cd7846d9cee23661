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
    workers: int = 1,
) -> DivisionArrays:
    """Overlap every metric patch with the metric division polygons.

    A patch lying strictly inside one division costs one prepared ``contains_properly``
    test; only patches crossing a boundary are intersected. Pairs are ordered per patch
    by overlap (descending) then code, so the first pair is the lead county.
    """
    n = len(patches)
    shapely.prepare(divisions)
    ptree = shapely.STRtree(patches)
    dj, pi = ptree.query(divisions)
    inside = pmap(shapely.contains_properly, divisions[dj], patches[pi], workers=workers)
    ov = np.where(inside, patch_area_m2[pi], 0.0)
    rest = np.flatnonzero(~inside)
    cross = rest[pmap(shapely.intersects, divisions[dj[rest]], patches[pi[rest]], workers=workers)]
    ov[cross] = shapely.area(pmap(shapely.intersection, patches[pi[cross]], divisions[dj[cross]], workers=workers))
    keep = ov > overlap_min_m2
    pi, dj, ov = pi[keep], dj[keep], ov[keep]
    order = np.lexsort((codes[dj].astype(str), -np.round(ov, rank_decimals), pi))
    pi, dj, ov = pi[order], dj[order], ov[order]
    lead = np.full(n, -1)
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, dtype=bool)
    lead[pi[first]] = dj[first]
    return DivisionArrays(lead=lead, pair_patch=pi, pair_division=dj, pair_overlap_m2=ov)
