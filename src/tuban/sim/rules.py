"""A plain reference of the compliance (§4) and change-type (§5) rules for scene truth.

Written independently of :mod:`tuban.analysis` on purpose: the scene's expected table
comes from this loop-per-patch version, the analysis module's vectorised one is checked
against it. Default thresholds of domain.md: R1 tolerance max(0.01 ha, 5 %), R3 within
500 m, R5 below 0.5 ha, ±10 % for expanded/shrunk.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = ["expected_change", "expected_compliance"]

APPROVED_SCOPE = "防治责任范围"


def _approved(scopes: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rp = scopes["RP_NUM"].fillna("").astype(str).str.strip()
    keep = (rp != "") & (scopes["VEC_TYPE"] == APPROVED_SCOPE) & scopes.geometry.notna()
    return scopes[keep.to_numpy()]


def expected_compliance(
    patches: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, *, tolerance_ha: float = 0.01, tolerance_share: float = 0.05,
    moved_m: float = 500.0, small_ha: float = 0.5,
) -> pd.DataFrame:
    """BYD, rule, EAREA (ha) and linked project of each *active* patch (projected CRS in metres).

    ``patches`` needs ``QDNM``, ``active`` and a geometry; ``scopes`` needs ``SWC_P_ID``,
    ``RP_NUM``, ``VEC_TYPE``. Inactive (completed) patches get no BYD here.
    """
    ok = _approved(scopes)
    geoms = ok.geometry.to_numpy()
    ids = ok["SWC_P_ID"].to_numpy()
    active_union = shapely.union_all(patches.geometry[patches["active"].to_numpy()].to_numpy())
    rows = []
    for qdnm, geom, active in zip(patches["QDNM"], patches.geometry, patches["active"], strict=True):
        if not active:
            rows.append({"QDNM": qdnm, "BYD": None, "rule": None, "EAREA": 0.0, "PRID": None})
            continue
        area = geom.area / 1e4
        hits = [i for i, s in enumerate(geoms) if s.intersects(geom) and s.intersection(geom).area > 0]
        if hits:
            outside = geom.difference(shapely.union_all(geoms[hits])).area / 1e4
            best = max(hits, key=lambda i: geoms[i].intersection(geom).area)
            if outside <= max(tolerance_ha, tolerance_share * area):
                # EAREA is the real outside area for R1 too (domain.md §4: area(patch − union of scopes))
                rows.append({"QDNM": qdnm, "BYD": "合规", "rule": "R1", "EAREA": round(outside, 4),
                             "PRID": ids[best]})
            else:
                rows.append({"QDNM": qdnm, "BYD": "疑似超出防治责任范围", "rule": "R2", "EAREA": round(outside, 4),
                             "PRID": ids[best]})
            continue
        near = [i for i, s in enumerate(geoms)
                if s.distance(geom) <= moved_m and not s.intersects(active_union)]
        if near:
            best = min(near, key=lambda i: geoms[i].distance(geom))
            rows.append({"QDNM": qdnm, "BYD": "疑似建设地点变更", "rule": "R3", "EAREA": 0.0, "PRID": ids[best]})
            continue
        rule = "R5" if area < small_ha else "R4"
        rows.append({"QDNM": qdnm, "BYD": "疑似未批先建", "rule": rule, "EAREA": 0.0, "PRID": None})
    return pd.DataFrame(rows)


def expected_change(patches: gpd.GeoDataFrame, previous: gpd.GeoDataFrame, *, band: float = 0.10) -> pd.Series:
    """QDTYPE of each patch against the previous round (matched by largest overlap)."""
    prev = previous.geometry.to_numpy()
    out = []
    for geom, active in zip(patches.geometry, patches["active"], strict=True):
        if not active:
            out.append("完工")
            continue
        overlaps = np.array([p.intersection(geom).area for p in prev]) if len(prev) else np.zeros(0)
        if not len(overlaps) or overlaps.max() <= 0:
            out.append("新增")
            continue
        ratio = geom.area / prev[int(overlaps.argmax())].area - 1.0
        out.append("续建（范围扩大）" if ratio > band else "续建（范围缩小）" if ratio < -band else "续建（范围不变）")
    return pd.Series(out, index=patches.index, name="QDTYPE")
