"""``analyse``: patches × scopes × divisions × previous round → compliance, QDTYPE, XZQDM.

Every layer passes the geometry policy (:mod:`tuban.analysis.geometry`), is projected
once to one local metric CRS, and then the kernels (:mod:`~tuban.analysis.overlay`,
:mod:`~tuban.analysis.divisions`, :mod:`~tuban.analysis.change`) work on arrays. The
result is columnar; :meth:`AnalysisResult.to_geodataframe` adds the official columns,
the numbers as JSON and the sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from tuban.analysis.change import COMPLETED, ChangeArrays, classify_change, lineage_overlaps
from tuban.analysis.divisions import DivisionArrays, assign_divisions
from tuban.analysis.explanations import HINT_R5_ZH
from tuban.analysis.geometry import (
    CGCS2000,
    LazyPolygons,
    PreparedLayer,
    local_crs,
    prepare_layer,
    project,
    project_coords,
)
from tuban.analysis.overlay import M2_PER_HA, RULE_BYD, ComplianceArrays, classify_compliance, nearest_scopes
from tuban.analysis.pairwise import EdgeSet, edge_set
from tuban.analysis.rules import RuleSet, load_rules
from tuban.analysis.tables import TextColumns, numbers_json, sentences
from tuban.errors import FieldError

__all__ = ["AnalysisResult", "analyse", "prepare_inputs"]

PATCH_REQUIRED = ("QDNM",)
SCOPE_REQUIRED = ("SWC_P_ID", "PRO_NAME", "RP_NUM", "VEC_TYPE")
SCOPE_OPTIONAL = ("CS_UNIT", "RP_TIME")
DIVISION_REQUIRED = ("XZQDM", "XZQMC")
XZQDM_SEP = ","


@dataclass(slots=True)
class AnalysisResult:
    """Columnar analysis result; ``to_geodataframe()`` gives the per-patch table."""

    patches: gpd.GeoDataFrame
    scopes: pd.DataFrame  # SWC_P_ID, PRO_NAME, CS_UNIT, RP_NUM, RP_TIME, VEC_TYPE, approved, counting
    division_codes: np.ndarray
    work_crs: pyproj.CRS
    area_m2: np.ndarray
    compliance: ComplianceArrays
    divisions: DivisionArrays
    change: ChangeArrays | None
    previous_ids: np.ndarray  # QDNM of the previous patches (empty without a previous round)
    previous: gpd.GeoDataFrame | None
    rules: RuleSet
    geometry_notes: dict[int, str] = field(default_factory=dict)
    metric: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # projected patches/scopes/previous
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def lineage_overlap_m2(self) -> np.ndarray:
        """Overlap area of each lineage link (computed on first use)."""
        if "lineage" not in self._cache:
            if self.change is None:
                self._cache["lineage"] = np.zeros(0)
            else:
                edges = self._cache.get("edges", {})
                self._cache["lineage"] = lineage_overlaps(self.metric["patches"], self.metric["previous"],
                                                          self.change, current_edges=edges.get("patches"),
                                                          previous_edges=edges.get("previous"))
        return self._cache["lineage"]

    def nearest_counting_scope(self) -> tuple[np.ndarray, np.ndarray]:
        """Per patch: the nearest approved scope within ``rules.nearest_search_m`` and its distance
        in m (−1 / inf if none is that close)."""
        if "nearest" not in self._cache:
            comp = self.compliance
            idx, dist = comp.nearest_scope.copy(), comp.nearest_m.copy()
            far = np.flatnonzero(idx < 0)
            if len(far):
                fi, fd = nearest_scopes(self.metric["patches"][far], self.metric["scopes"],
                                        self.scopes["counting"].to_numpy(),
                                        max_distance=self.rules.nearest_search_m)
                idx[far], dist[far] = fi, fd
            self._cache["nearest"] = (idx, dist)
        return self._cache["nearest"]

    # -- tables ----------------------------------------------------------------------
    @property
    def byd(self) -> np.ndarray:
        return np.array([RULE_BYD[r] for r in self.compliance.rule], dtype=object)

    def xzqdm(self) -> np.ndarray:
        """Per patch: the division codes it overlaps joined by ``,``, lead first (``None`` if none)."""
        return _xzqdm(self)

    def lead_division_code(self) -> np.ndarray:
        """Per patch: the lead division's code (largest share), ``None`` if it overlaps none."""
        lead = self.divisions.lead
        out = np.full(len(lead), None, dtype=object)
        has = lead >= 0
        out[has] = self.division_codes[lead[has]]
        return out

    def lineage(self) -> pd.DataFrame:
        """Lineage links: current QDNM ↔ previous QDNM with their overlap in ha."""
        if self.change is None:
            return pd.DataFrame({"QDNM": [], "PREV_QDNM": [], "overlap_ha": []})
        ch = self.change
        return pd.DataFrame({
            "QDNM": self.patches["QDNM"].to_numpy()[ch.pair_current],
            "PREV_QDNM": self.previous_ids[ch.pair_previous],
            "overlap_ha": self.lineage_overlap_m2() / M2_PER_HA,
        })

    def completed(self) -> gpd.GeoDataFrame:
        """Previous-round patches with no current disturbance (QDTYPE 完工)."""
        if self.change is None or self.previous is None:
            return gpd.GeoDataFrame({"QDNM": [], "QDTYPE": []}, geometry=[], crs=CGCS2000)
        out = self.previous.iloc[self.change.completed].copy()
        out["QDTYPE"] = COMPLETED
        return out

    def numbers(self) -> list[dict[str, Any]]:
        """Per patch: the numbers behind the decision (serialised to ``NUMBERS`` as JSON)."""
        return _numbers(self)

    def to_geodataframe(self, *, with_text: bool = True) -> gpd.GeoDataFrame:
        """Every input patch (same order, same columns) plus the analysis columns.

        Adds BYD, RULE_ID, QAREA, EAREA (ha), QDTYPE, XZQDM (codes joined by ``,``, lead first),
        PRID, PRNM, PREV_QDNM, NUMBERS (JSON), EXPLAIN_ZH, EXPLAIN_EN, HINT and GEOM_NOTE.
        QAREA is recomputed from the geometry in the local metric CRS.
        """
        comp = self.compliance
        out = self.patches.copy()
        out["BYD"] = self.byd
        out["RULE_ID"] = comp.rule
        out["QAREA"] = self.area_m2 / M2_PER_HA
        out["EAREA"] = comp.outside_m2 / M2_PER_HA
        out["QDTYPE"] = self.change.qdtype if self.change is not None else None
        out["XZQDM"] = _xzqdm(self)
        lead = comp.lead_scope
        has = lead >= 0
        prid = np.full(len(out), None, dtype=object)
        prnm = np.full(len(out), None, dtype=object)
        prid[has] = self.scopes["SWC_P_ID"].to_numpy()[lead[has]]
        prnm[has] = self.scopes["PRO_NAME"].to_numpy()[lead[has]]
        out["PRID"], out["PRNM"] = prid, prnm
        if self.change is not None:
            prev = _group_strings(self.change.pair_current, self.previous_ids[self.change.pair_previous], len(out))
            out["PREV_QDNM"] = prev
        cols = TextColumns(self)  # NUMBERS and sentences column by column (tuban.analysis.tables)
        out["NUMBERS"] = numbers_json(self, cols)
        if with_text:
            out["EXPLAIN_ZH"] = sentences(self, "zh", cols)
            out["EXPLAIN_EN"] = sentences(self, "en", cols)
        hint = np.full(len(out), None, dtype=object)
        hint[comp.rule == "R5"] = HINT_R5_ZH
        out["HINT"] = hint
        notes = np.full(len(out), None, dtype=object)
        for pos, note in self.geometry_notes.items():
            notes[pos] = note
        out["GEOM_NOTE"] = notes
        return out


def _group_strings(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per index 0…n−1: its *values* (``group`` sorted) joined by ``,``; ``None`` where it has none."""
    out = np.full(n, None, dtype=object)
    if len(group):
        text = [str(v) for v in values.tolist()]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        ends = np.r_[starts[1:], len(group)]
        out[group[starts]] = [text[s] if e - s == 1 else XZQDM_SEP.join(text[s:e])
                              for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
    return out


def _xzqdm(res: AnalysisResult) -> np.ndarray:
    d = res.divisions
    return _group_strings(d.pair_patch, res.division_codes[d.pair_division], len(res.area_m2))


def _bounds(group: np.ndarray, n: int) -> list[int]:
    """Start offsets of each value 0…n (group sorted) as a Python list."""
    return np.searchsorted(group, np.arange(n + 1)).tolist()


def _numbers(res: AnalysisResult) -> list[dict[str, Any]]:
    """Per-patch numbers; plain Python lists inside the loop (numpy scalars are slow)."""
    comp, n = res.compliance, len(res.area_m2)
    r = res.rules
    sc = res.scopes
    sid, rp, name, vec = (sc[c].tolist() for c in ("SWC_P_ID", "RP_NUM", "PRO_NAME", "VEC_TYPE"))
    approved = sc["approved"].tolist()
    disturbed = comp.scope_disturbed.tolist()
    area = res.area_m2.tolist()
    covered, outside, tol = comp.covered_m2.tolist(), comp.outside_m2.tolist(), comp.tolerance_m2.tolist()
    rule, lead_s, site_m = comp.rule.tolist(), comp.lead_scope.tolist(), comp.site_change_m.tolist()
    near_idx, near_m = (a.tolist() for a in res.nearest_counting_scope())
    sb = _bounds(comp.pair_patch, n)
    ps, pov, pcount = comp.pair_scope.tolist(), comp.pair_overlap_m2.tolist(), comp.pair_counting.tolist()
    db = _bounds(res.divisions.pair_patch, n)
    dcode = [str(c) for c in res.division_codes[res.divisions.pair_division]]
    dov = res.divisions.pair_overlap_m2.tolist()
    ch = res.change
    if ch is not None:
        qb = _bounds(ch.pair_current, n)
        qid = [str(q) for q in res.previous_ids[ch.pair_previous]]
        qov = res.lineage_overlap_m2().tolist()
        qarea, qshare = ch.previous_area_m2.tolist(), ch.change_share.tolist()
    version, radius = r.version, r.site_change_radius_m
    out = []
    for i in range(n):
        a = area[i]
        num: dict[str, Any] = {
            "rules_version": version,
            "area_ha": a / M2_PER_HA,
            "covered_ha": covered[i] / M2_PER_HA,
            "outside_ha": outside[i] / M2_PER_HA,
            "outside_pct": 100 * outside[i] / a if a > 0 else 0.0,
            "tolerance_ha": tol[i] / M2_PER_HA,
            "radius_m": radius,
        }
        if rule[i] in ("R4", "R5"):
            num["nearest_search_m"] = r.nearest_search_m
        scopes, suggested = [], []
        for k in range(sb[i], sb[i + 1]):
            j, ov = ps[k], pov[k]
            if pcount[k]:
                scopes.append({"SWC_P_ID": sid[j], "RP_NUM": rp[j], "overlap_ha": ov / M2_PER_HA,
                               "overlap_pct": 100 * ov / a})
            else:
                suggested.append({"SWC_P_ID": sid[j], "PRO_NAME": name[j], "VEC_TYPE": vec[j],
                                  "approved": approved[j], "overlap_ha": ov / M2_PER_HA})
        num["scopes"] = scopes
        lead = lead_s[i]
        projects: list[dict[str, Any]] = []
        if lead >= 0:
            projects.append({"SWC_P_ID": sid[lead], "RP_NUM": rp[lead], "PRO_NAME": name[lead]})
            seen = {sid[lead]}
            for sc_ in scopes:
                if sc_["SWC_P_ID"] not in seen:
                    seen.add(sc_["SWC_P_ID"])
                    projects.append({"SWC_P_ID": sc_["SWC_P_ID"], "RP_NUM": sc_["RP_NUM"]})
        num["projects"] = projects
        if rule[i] == "R3":
            num["site_change_distance_m"] = site_m[i]
        near = near_idx[i]
        if near >= 0 and rule[i] in ("R3", "R4", "R5"):
            num["nearest_scope"] = {"SWC_P_ID": sid[near], "RP_NUM": rp[near], "distance_m": near_m[i],
                                    "disturbed": disturbed[near]}
        num["suggested"] = suggested
        num["divisions"] = [{"XZQDM": dcode[k], "share_pct": 100 * dov[k] / a} for k in range(db[i], db[i + 1])]
        if ch is not None:
            num["previous"] = [{"QDNM": qid[k], "overlap_ha": qov[k] / M2_PER_HA} for k in range(qb[i], qb[i + 1])]
            num["previous_area_ha"] = qarea[i] / M2_PER_HA
            share = qshare[i]
            num["area_change_pct"] = 100 * share if share == share else None
        out.append(num)
    return out


# -- inputs ----------------------------------------------------------------------------


def _import_notes(patches: gpd.GeoDataFrame) -> dict[int, str]:
    """Repairs made on import (``tuban.io.read_vector`` puts its report in ``attrs``), by row."""
    report = patches.attrs.get("tuban_report")
    repaired = getattr(getattr(report, "geometry", None), "repaired", None) or []
    if not repaired:
        return {}
    position = {str(q): k for k, q in enumerate(patches["QDNM"])}
    notes = {}
    for item in repaired:
        pos = position.get(str(item.record))
        if pos is not None:
            notes[pos] = (f"make_valid on import ({item.reason}): area {item.area_before_ha:.6f} ha → "
                          f"{item.area_after_ha:.6f} ha")
    return notes



def _require(frame: pd.DataFrame, columns: tuple[str, ...], layer: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FieldError(
            f"layer {layer} lacks the official field(s) {', '.join(missing)}; it has: "
            f"{', '.join(str(c) for c in frame.columns if c != frame.geometry.name)}",
            hint="rename the columns to the official codes (domain.md §3)",
        )


def _source(source_crs: str | Mapping[str, str] | None, layer: str) -> str | None:
    if source_crs is None or isinstance(source_crs, str):
        return source_crs
    return source_crs.get(layer)


def _text(values: pd.Series) -> np.ndarray:
    """Stripped strings, ``None`` for missing or blank values."""
    raw = values.to_numpy(dtype=object)
    out = np.full(len(raw), None, dtype=object)
    has = np.flatnonzero(~pd.isna(raw))
    stripped = [str(v).strip() for v in raw[has]]
    out[has] = [v or None for v in stripped]
    return out


def _check_inputs(patches: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, divisions: gpd.GeoDataFrame,
                  previous: gpd.GeoDataFrame | None) -> None:
    _require(patches, PATCH_REQUIRED, "patches")
    _require(scopes, SCOPE_REQUIRED, "scopes")
    _require(divisions, DIVISION_REQUIRED, "divisions")
    if previous is not None:
        _require(previous, PATCH_REQUIRED, "previous")
    qdnm = patches["QDNM"]
    raw = qdnm.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(raw, skipna=False) == "string":  # every value a str: C-level loops
        plain = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw)) > 0
        plain &= ~np.fromiter(map(str.isspace, raw), dtype=bool, count=len(raw))
    else:
        plain = np.fromiter((type(v) is str and v != "" and not v.isspace() for v in raw), dtype=bool,
                            count=len(raw))
    blank = np.zeros(len(raw), dtype=bool)
    odd = np.flatnonzero(~plain)  # not a non-blank str: look closer (numbers are fine, NaN / blanks not)
    blank[odd] = pd.isna(_text(qdnm.iloc[odd]))
    if blank.any():
        rows = np.flatnonzero(blank)
        raise FieldError(f"layer patches: {len(rows)} row(s) without QDNM (rows {rows[:10].tolist()})",
                         hint="every patch needs its number QDNM")
    dup = qdnm[qdnm.duplicated()].unique()
    if len(dup):
        raise FieldError(f"layer patches: QDNM not unique: {', '.join(map(str, dup[:10]))}",
                         hint="QDNM must be unique within a round")


def _prepare(frame: gpd.GeoDataFrame, name: str, id_col: str, source_crs: str | Mapping[str, str] | None,
             *, allow_missing: bool = False) -> PreparedLayer:
    return prepare_layer(frame.geometry.to_numpy(), frame[id_col].to_numpy(), frame.crs, layer=name,
                         source_crs=_source(source_crs, name), allow_missing=allow_missing)


def prepare_inputs(
    patches: gpd.GeoDataFrame,
    scopes: gpd.GeoDataFrame,
    divisions: gpd.GeoDataFrame,
    previous: gpd.GeoDataFrame | None = None,
    *,
    source_crs: str | Mapping[str, str] | None = None,
) -> dict[str, PreparedLayer]:
    """Check fields and the geometry policy for every layer; geometries come back in EPSG:4490."""
    _check_inputs(patches, scopes, divisions, previous)
    layers = {
        "patches": _prepare(patches, "patches", "QDNM", source_crs),
        "scopes": _prepare(scopes, "scopes", "SWC_P_ID", source_crs, allow_missing=True),
        "divisions": _prepare(divisions, "divisions", "XZQDM", source_crs),
    }
    if previous is not None:
        layers["previous"] = _prepare(previous, "previous", "QDNM", source_crs)
    return layers


class _Done:
    """The result of a task run at once (the ``Future`` interface used here)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value = fn(*args)

    def result(self) -> Any:
        return self._value


class _Lanes:
    """A second lane for the independent stages (previous round, divisions) when ``workers > 1``."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(1) if workers > 1 else None

    def side(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.submit(fn, *args) if self.pool is not None else _Done(fn, *args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def analyse(
    patches: gpd.GeoDataFrame,
    scopes: gpd.GeoDataFrame,
    divisions: gpd.GeoDataFrame,
    previous: gpd.GeoDataFrame | None = None,
    *,
    rules: RuleSet | None = None,
    source_crs: str | Mapping[str, str] | None = None,
    work_crs: object = None,
    workers: int = 1,
) -> AnalysisResult:
    """Classify every patch (R1–R5), find its divisions and its change type.

    Parameters
    ----------
    patches
        Disturbance patches with QDNM (unique); polygons with a CRS.
    scopes
        Project scopes with SWC_P_ID, PRO_NAME, CS_UNIT, RP_NUM, RP_TIME, VEC_TYPE; a row
        without geometry (无红线) is kept but cannot explain a patch.
    divisions
        County polygons with XZQDM and XZQMC.
    previous
        The previous round's patches (QDNM); gives QDTYPE, lineage and 完工.
    rules
        Thresholds; default the packaged ``rules-v1.toml``.
    source_crs
        The real CRS of the coordinates (``"gcj02"`` for Amap data), for all layers (a string)
        or per layer name (``{"divisions": "gcj02"}``); overrides the CRS the frames declare.
    work_crs
        The metric CRS for areas and distances; default :func:`~tuban.analysis.geometry.local_crs`
        of the patches.
    workers
        Threads for the geometry work (shapely releases the GIL); results do not depend on it.

    Raises
    ------
    MissingCRSError, GeometryError, FieldError
        A layer without CRS; empty / non-polygon / NaN geometries (named by id); missing fields
        or duplicate QDNM.
    """
    rules = rules or load_rules()
    _check_inputs(patches, scopes, divisions, previous)
    lanes = _Lanes(workers)
    try:
        return _analyse(patches, scopes, divisions, previous, rules, source_crs, work_crs, workers, lanes)
    finally:
        lanes.close()


def _analyse(patches: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, divisions: gpd.GeoDataFrame,
             previous: gpd.GeoDataFrame | None, rules: RuleSet, source_crs: str | Mapping[str, str] | None,
             work_crs: object, workers: int, lanes: _Lanes) -> AnalysisResult:
    """The stages of :func:`analyse`; the divisions and the previous round go on the side lane."""
    side_div = lanes.side(_prepare, divisions, "divisions", "XZQDM", source_crs)
    side_prev = lanes.side(_prepare, previous, "previous", "QDNM", source_crs) if previous is not None else None
    lp = _prepare(patches, "patches", "QDNM", source_crs)
    ls = _prepare(scopes, "scopes", "SWC_P_ID", source_crs, allow_missing=True)
    ld = side_div.result()
    lq = side_prev.result() if side_prev is not None else None
    crs = pyproj.CRS.from_user_input(work_crs) if work_crs is not None else local_crs(lp.geoms)

    def metric(layer: PreparedLayer, lazy: bool = False) -> tuple[Any, EdgeSet]:
        geoms, coords = project_coords(layer.geoms[layer.present], CGCS2000, crs, workers=workers,
                                       coords=layer.coords, plain=layer.plain, lazy=lazy)
        if isinstance(geoms, LazyPolygons):
            return geoms, edge_set(np.zeros(0), coords, plain=True, counts=np.diff(geoms.offsets))
        plain = bool(layer.plain.all()) if layer.plain is not None else None
        return geoms, edge_set(geoms, coords, plain=plain)

    # the previous round's polygons are built only where GEOS needs them (LazyPolygons)
    side_q = lanes.side(metric, lq, True) if lq is not None else None
    side_d = lanes.side(project, ld.geoms[ld.present], CGCS2000, crs)
    pg, pe = metric(lp)
    area = pe.area
    tree = shapely.STRtree(pg)  # shared by compliance and divisions (the change has its own on the side)
    scope_rows = np.flatnonzero(ls.present)
    sg, se = metric(ls)
    meta = pd.DataFrame({c: _text(scopes[c]) if c in scopes.columns else None
                         for c in (*SCOPE_REQUIRED, *SCOPE_OPTIONAL)}).iloc[scope_rows].reset_index(drop=True)
    meta["SWC_P_ID"] = [v if v is not None else f"#{k}" for v, k in zip(meta["SWC_P_ID"], scope_rows, strict=True)]
    meta["approved"] = meta["RP_NUM"].notna().to_numpy()
    meta["counting"] = meta["approved"].to_numpy() & meta["VEC_TYPE"].isin(rules.counting_vec_types).to_numpy()
    kept = {"patches": pg, "scopes": sg}
    edges = {"patches": pe}
    side_change = None
    if side_q is not None:
        kept["previous"], qe = side_q.result()
        edges["previous"] = qe
        side_change = lanes.side(lambda: classify_change(
            pg, kept["previous"], rules, current_area_m2=area, previous_area_m2=qe.area, workers=workers,
            current_edges=pe, previous_edges=qe, tree=tree if lanes.pool is None else None))
    comp = classify_compliance(pg, sg, meta["counting"].to_numpy(), rules, patch_area_m2=area,
                               workers=workers, patch_edges=pe, scope_edges=se, tree=tree)
    dg = side_d.result()
    codes = np.array([str(c).strip() for c in ld.ids], dtype=object)
    divs = assign_divisions(pg, dg, codes, patch_area_m2=area, overlap_min_m2=rules.overlap_min_m2,
                            rank_decimals=rules.rank_decimals, inner_xy=(pe.x[pe.start], pe.y[pe.start]),
                            workers=workers, tree=tree, patch_edges=pe)
    change = None
    prev_ids = np.zeros(0, dtype=object)
    prev_frame = None
    if side_change is not None and lq is not None and previous is not None:
        change = side_change.result()
        prev_ids = np.asarray(lq.ids, dtype=object)
        prev_frame = gpd.GeoDataFrame(previous.drop(columns=previous.geometry.name),
                                      geometry=lq.geoms, crs=CGCS2000)
    notes = _import_notes(patches)
    for pos, (reason, ratio) in lp.repairs.items():
        after = area[pos] / M2_PER_HA
        before = after * ratio
        notes[pos] = f"make_valid ({reason}): area {before:.6f} ha → {after:.6f} ha"
    out_patches = gpd.GeoDataFrame(patches.drop(columns=patches.geometry.name), geometry=lp.geoms, crs=CGCS2000)
    return AnalysisResult(
        patches=out_patches,
        scopes=meta,
        division_codes=codes,
        work_crs=crs,
        area_m2=area,
        compliance=comp,
        divisions=divs,
        change=change,
        previous_ids=prev_ids,
        previous=prev_frame,
        rules=rules,
        geometry_notes=notes,
        metric=kept,
        _cache={"edges": edges},
    )
