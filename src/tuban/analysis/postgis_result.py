"""The in-database classification (:mod:`tuban.analysis.postgis`) as an :class:`AnalysisResult`.

:func:`~tuban.analysis.postgis.classify_in_postgis` with ``details=True`` returns the rule
of every patch (decided in SQL) and the rows behind it: overlaps, areas outside, the
site-change and nearest scopes, divisions and lineage. :func:`to_result` puts those rows
into the same columnar arrays the shapely kernels produce, so the numbers JSON, the
sentences and the store's writer are one code path for both backends.

Rows are keyed by the ``pos`` the caller gave each feature (e.g. the store's row ids);
the caller passes those keys, sorted ascending, for every layer.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from tuban.analysis.change import ChangeArrays
from tuban.analysis.core import SCOPE_OPTIONAL, SCOPE_REQUIRED, AnalysisResult
from tuban.analysis.divisions import DivisionArrays
from tuban.analysis.overlay import M2_PER_HA, ComplianceArrays, first_per_group
from tuban.analysis.rules import RuleSet
from tuban.errors import StoreError

__all__ = ["to_result"]


def _columns(rows: list[tuple], n: int) -> list[np.ndarray]:
    if not rows:
        return [np.zeros(0) for _ in range(n)]
    return [np.array(c) for c in zip(*rows, strict=True)]


def _index(keys: np.ndarray, values: np.ndarray, layer: str) -> np.ndarray:
    """Positions of *values* in the sorted key array *keys*."""
    values = np.asarray(values, dtype=keys.dtype) if len(values) else np.zeros(0, dtype=keys.dtype)
    idx = np.searchsorted(keys, values)
    if len(idx) and (idx.max() >= len(keys) or not np.array_equal(keys[idx], values)):
        raise StoreError(f"the database returned {layer} rows that were not among the inputs")
    return idx.astype(np.int64)


def to_result(
    out: dict[str, Any],
    *,
    patches: gpd.GeoDataFrame,
    patch_pos: np.ndarray,
    scopes: pd.DataFrame,
    scope_pos: np.ndarray,
    division_codes: np.ndarray,
    previous: gpd.GeoDataFrame | None,
    previous_pos: np.ndarray | None,
    rules: RuleSet,
    work_crs: pyproj.CRS,
) -> AnalysisResult:
    """Build the result of ``classify_in_postgis(..., details=True)``.

    Parameters
    ----------
    out
        What :func:`~tuban.analysis.postgis.classify_in_postgis` returned.
    patches, patch_pos
        The patches (QDNM and any other columns) in the order of their sorted ``pos`` keys.
    scopes, scope_pos
        Scope attributes (SWC_P_ID, PRO_NAME, CS_UNIT, RP_NUM, RP_TIME, VEC_TYPE) in the order
        of their sorted ``pos`` keys; only scopes with a geometry.
    division_codes
        XZQDM of every division (unique).
    previous, previous_pos
        The previous round's patches and their sorted keys, or ``None``.
    """
    det = out["details"]
    patch_pos = np.asarray(patch_pos, dtype=np.int64)
    scope_pos = np.asarray(scope_pos, dtype=np.int64)
    n, m = len(patch_pos), len(scope_pos)
    rows = out["patches"]
    if len(rows) != n:
        raise StoreError(f"the database classified {len(rows)} patches, {n} were given")
    rule = np.array([r["RULE_ID"] for r in rows], dtype=object)

    a_pos, a_val = _columns(det["area"], 2)
    area = np.zeros(n)
    area[_index(patch_pos, a_pos, "patch")] = a_val

    meta = pd.DataFrame({c: scopes[c].to_numpy(dtype=object) if c in scopes.columns else None
                         for c in (*SCOPE_REQUIRED, *SCOPE_OPTIONAL)}).reset_index(drop=True)
    meta["approved"] = meta["RP_NUM"].map(lambda v: v is not None and str(v).strip() != "").to_numpy(dtype=bool)
    meta["counting"] = meta["approved"].to_numpy() & meta["VEC_TYPE"].map(
        lambda v: v is not None and str(v).strip() in rules.counting_vec_types).to_numpy(dtype=bool)

    pp, sp, ov, cnt = _columns(det["pairs"], 4)
    pair_patch, pair_scope = _index(patch_pos, pp, "patch"), _index(scope_pos, sp, "scope")
    pair_ov, pair_counting = ov.astype(float), cnt.astype(bool)
    scope_disturbed = np.zeros(m, dtype=bool)
    scope_disturbed[pair_scope] = True

    o_pos, o_val = _columns(det["outside"], 2)
    has_overlap = np.zeros(n, dtype=bool)
    outside = np.zeros(n)
    oi = _index(patch_pos, o_pos, "patch")
    has_overlap[oi] = True
    outside[oi] = np.maximum(o_val.astype(float), 0.0)
    covered = np.where(has_overlap, np.maximum(area - outside, 0.0), 0.0)
    tolerance = np.maximum(rules.tolerance_min_ha * M2_PER_HA, rules.tolerance_share * area)

    lead = np.full(n, -1)
    c = pair_counting
    if c.any():
        first = first_per_group(pair_patch[c], -np.round(pair_ov[c], rules.rank_decimals), pair_scope[c])
        lead[pair_patch[c][first]] = pair_scope[c][first]
    nearest_m = np.where(has_overlap, 0.0, np.inf)
    nearest_scope = lead.copy()
    site_m = np.full(n, np.nan)
    s_pp, s_sp, s_d = _columns(det["site"], 3)
    if len(s_pp):
        qi, qj, d = _index(patch_pos, s_pp, "patch"), _index(scope_pos, s_sp, "scope"), s_d.astype(float)
        first = first_per_group(qi, np.round(d, rules.rank_decimals), qj)
        hit = qi[first]
        r3 = rule[hit] == "R3"
        hit, sj, dist = hit[r3], qj[first][r3], d[first][r3]
        lead[hit], site_m[hit], nearest_scope[hit], nearest_m[hit] = sj, dist, sj, dist
    comp = ComplianceArrays(
        rule=rule, covered_m2=covered, outside_m2=outside, tolerance_m2=tolerance, lead_scope=lead,
        nearest_m=nearest_m, nearest_scope=nearest_scope, site_change_m=site_m, pair_patch=pair_patch,
        pair_scope=pair_scope, pair_overlap_m2=pair_ov, pair_counting=pair_counting,
        scope_disturbed=scope_disturbed,
    )
    near_idx, near_d = nearest_scope.copy(), nearest_m.copy()
    q_pos, q_sp, q_d = _columns(det["nearest"], 3)
    if len(q_pos):
        qi, qj = _index(patch_pos, q_pos, "patch"), _index(scope_pos, q_sp, "scope")
        far = near_idx[qi] < 0
        near_idx[qi[far]], near_d[qi[far]] = qj[far], q_d.astype(float)[far]

    codes = np.asarray(division_codes, dtype=object)
    code_order = np.argsort(codes.astype(str))
    d_pp, d_code, d_ov = _columns(det["divisions"], 3)
    pi = _index(patch_pos, d_pp, "patch")
    dj = code_order[_index(codes.astype(str)[code_order], np.asarray(d_code, dtype=str), "division")] \
        if len(d_code) else np.zeros(0, dtype=np.int64)
    d_ov = d_ov.astype(float)
    order = np.lexsort((codes[dj].astype(str), -np.round(d_ov, rules.rank_decimals), pi))
    pi, dj, d_ov = pi[order], dj[order], d_ov[order]
    d_lead = np.full(n, -1)
    if len(pi):
        firsts = np.r_[True, pi[1:] != pi[:-1]]
        d_lead[pi[firsts]] = dj[firsts]
    divs = DivisionArrays(lead=d_lead, pair_patch=pi, pair_division=dj, pair_overlap_m2=d_ov)

    change, prev_ids, lineage_m2 = None, np.zeros(0, dtype=object), np.zeros(0)
    if previous is not None and previous_pos is not None:
        previous_pos = np.asarray(previous_pos, dtype=np.int64)
        k = len(previous_pos)
        qa_pos, qa_val = _columns(det["previous_area"], 2)
        prev_area = np.zeros(k)
        prev_area[_index(previous_pos, qa_pos, "previous")] = qa_val
        l_pp, l_qp, l_ov = _columns(det["lineage"], 3)
        ci, pj = _index(patch_pos, l_pp, "patch"), _index(previous_pos, l_qp, "previous")
        lineage_m2 = l_ov.astype(float)
        matched_prev = np.bincount(ci, weights=prev_area[pj], minlength=n)
        matched = np.bincount(ci, minlength=n) > 0
        share = np.full(n, np.nan)
        share[matched] = (area[matched] - matched_prev[matched]) / matched_prev[matched]
        has_successor = np.zeros(k, dtype=bool)
        has_successor[pj] = True
        change = ChangeArrays(
            qdtype=np.array([r["QDTYPE"] for r in rows], dtype=object), previous_area_m2=matched_prev,
            change_share=share, pair_current=ci, pair_previous=pj, completed=np.flatnonzero(~has_successor),
        )
        prev_ids = previous["QDNM"].to_numpy(dtype=object)

    notes = {}
    for pos, reason, before in det["repairs"]:
        k = int(_index(patch_pos, np.array([pos]), "patch")[0])
        notes[k] = (f"make_valid ({reason}): area {float(before or 0.0) / M2_PER_HA:.6f} ha → "
                    f"{area[k] / M2_PER_HA:.6f} ha")
    return AnalysisResult(
        patches=patches, scopes=meta, division_codes=codes, work_crs=work_crs, area_m2=area,
        compliance=comp, divisions=divs, change=change, previous_ids=prev_ids, previous=previous,
        rules=rules, geometry_notes=notes, metric={},
        _cache={"nearest": (near_idx, near_d), "lineage": lineage_m2},
    )
