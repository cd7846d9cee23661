"""Compliance analysis of a round in the store (图斑合规性分析入库).

:func:`analyse_round` classifies a round's patches (R1–R5, EAREA, XZQDM, QDTYPE against a
previous round) against the store's project scopes and divisions, and writes, in ONE
transaction with its audit:

* the official fields of each patch (BYD, EAREA, QAREA, QDTYPE, XZQDM, PRID, PRNM and the
  lead division), version bumped, with a ``patch.analyse`` audit row of the changed fields;
* a ``decisions`` row (kind ``suspected``) per patch: the rule id, the numbers behind it
  (JSON) and the zh/en sentences;
* ``patch_lineage`` rows (kind ``previous_round``) to the previous round's patches;
* one ``round.analyse`` audit row with the counts.

Engines: on SQLite the geometries are read out and classified by the shapely kernels
(:func:`tuban.analysis.analyse`); on PostgreSQL the classification runs **in the database**
(:mod:`tuban.analysis.postgis` over session-private temp views of the store's tables) and
only the rows behind each decision come back. ``engine="shapely"`` also works on
PostgreSQL (the two are compared in the tests).

Policy (our decision): patches in states ``superseded`` and ``rejected`` (and any without a
geometry) are left out (they are no disturbance of this round); patches already past office review (state other than
``detected``/``issued``) get the suspected decision row but keep their fields unless
``overwrite_reviewed=True``; a patch that overlaps no division keeps its XZQDM. 完工
(previous patches without successor) are reported in the result and the audit row, the
previous round itself is not changed.
"""

from __future__ import annotations

import datetime as dt
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from sqlalchemy import LargeBinary, delete, func, insert, select, type_coerce, update

from tuban.errors import NotFoundError, UsageError
from tuban.store.models import AuditEntry, Decision, Division, Patch, PatchLineage, Project, Round, Scope

if TYPE_CHECKING:
    import geopandas as gpd
    import pyproj
    from sqlalchemy.orm import Session

    from tuban.analysis.core import AnalysisResult
    from tuban.analysis.rules import RuleSet
    from tuban.store.store import Store, Transaction

__all__ = ["ENGINES", "SKIPPED_STATES", "WRITABLE_STATES", "RoundAnalysis", "analyse_round"]

ENGINES = ("auto", "shapely", "postgis")
#: states whose official fields the analysis writes (before any human review)
WRITABLE_STATES = ("detected", "issued")
#: states left out of the analysis (and out of the previous round)
SKIPPED_STATES = ("superseded", "rejected")
#: the fields written, model attribute names
FIELDS = ("byd", "qarea", "earea", "qdtype", "xzqdm", "prid", "prnm", "lead_division_code")
_COMPLETED_SHOWN = 200


@dataclass
class RoundAnalysis:
    """What :func:`analyse_round` did."""

    round_name: str
    previous_round: str | None
    engine: str
    work_crs: str
    rules_version: str
    patches: int
    rules: dict[str, int]
    qdtype: dict[str, int]
    updated: int
    kept_reviewed: int
    decisions: int
    lineage: int
    completed: list[str]
    result: AnalysisResult | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """The counts as JSON-safe data (the audit row's ``after``)."""
        return {
            "round": self.round_name, "previous_round": self.previous_round, "engine": self.engine,
            "work_crs": self.work_crs, "rules_version": self.rules_version, "patches": self.patches,
            "rules": self.rules, "qdtype": self.qdtype, "updated": self.updated,
            "kept_reviewed": self.kept_reviewed, "decisions": self.decisions, "lineage": self.lineage,
            "completed": len(self.completed), "completed_qdnm": self.completed[:_COMPLETED_SHOWN],
        }


# -- reading --------------------------------------------------------------------------------


def _wkb(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return type_coerce(func.ST_AsBinary(column), LargeBinary)
    return type_coerce(column, LargeBinary)


def _geoms(values: list[Any]) -> np.ndarray:
    raw = np.array([None if v is None else bytes(v) for v in values], dtype=object)
    return np.asarray(shapely.from_wkb(raw), dtype=object)


def _round(s: Session, name: str, what: str) -> Round:
    rnd = s.scalar(select(Round).where(Round.name == name))
    if rnd is None:
        known = ", ".join(s.scalars(select(Round.name).order_by(Round.id).limit(20))) or "none"
        raise NotFoundError(f"{what} {name!r} is not in the store (rounds: {known})",
                            hint="import its patches first: tuban import patches FILE --round NAME")
    return rnd


def _analysed(round_id: int) -> tuple[Any, ...]:
    """The patches of a round that take part: not superseded/rejected, with a geometry."""
    t = Patch.__table__.c
    return (t.round_id == round_id, t.state.not_in(SKIPPED_STATES), t.geometry.is_not(None))


def _patch_rows(s: Session, round_id: int, dialect: str, *, geometry: bool, lock: bool) -> list[Any]:
    t = Patch.__table__.c
    cols = [t.id, t.qdnm, t.state, t.version, *(t[f] for f in FIELDS)]
    if geometry:
        cols.append(_wkb(t.geometry, dialect))
    q = select(*cols).where(*_analysed(round_id)).order_by(t.id)
    if lock and dialect == "postgresql":
        q = q.with_for_update()
    return list(s.execute(q).all())


def _scope_rows(s: Session, dialect: str, *, geometry: bool) -> list[Any]:
    sc, pr = Scope.__table__.c, Project.__table__.c
    cols = [sc.id, pr.id, pr.swc_p_id, pr.pro_name, pr.cs_unit, pr.rp_num, pr.rp_time, sc.vec_type]
    if geometry:
        cols.append(_wkb(sc.geometry, dialect))
    q = select(*cols).join(Project, Project.id == Scope.project_id).where(sc.geometry.is_not(None)).order_by(sc.id)
    return list(s.execute(q).all())


def _division_filter(s: Session) -> Any:
    """County divisions when there are any (XZQDM lists counties), else every division."""
    t = Division.__table__.c
    has_county = s.scalar(select(func.count()).where(t.level == "county", t.geometry.is_not(None)))
    cond = t.geometry.is_not(None)
    return (cond & (t.level == "county")) if has_county else cond


def _division_rows(s: Session, dialect: str, *, geometry: bool) -> list[Any]:
    t = Division.__table__.c
    cols = [t.id, t.code, t.name]
    if geometry:
        cols.append(_wkb(t.geometry, dialect))
    return list(s.execute(select(*cols).where(_division_filter(s)).order_by(t.id)).all())


def _work_crs(s: Session, round_id: int) -> pyproj.CRS:
    """The metric CRS of the round: :func:`tuban.analysis.geometry.local_crs` of its extent."""
    from tuban.analysis.geometry import local_crs

    t = Patch.__table__.c
    box = s.execute(select(func.min(t.minx), func.min(t.miny), func.max(t.maxx), func.max(t.maxy))
                    .where(*_analysed(round_id))).one()
    if any(v is None for v in box):
        raise UsageError(f"round {round_id} has no patch with a geometry to analyse")
    return local_crs(np.array([shapely.box(*(float(v) for v in box))]))


def _scope_frame(rows: list[Any], geoms: np.ndarray | None) -> gpd.GeoDataFrame:
    import geopandas as gpd

    return gpd.GeoDataFrame({
        "SWC_P_ID": [r[2] if r[2] else f"#{r[1]}" for r in rows],
        "PRO_NAME": [r[3] for r in rows], "CS_UNIT": [r[4] for r in rows], "RP_NUM": [r[5] for r in rows],
        "RP_TIME": [None if r[6] is None else r[6].isoformat() for r in rows],
        "VEC_TYPE": [r[7] for r in rows],
    }, geometry=geoms if geoms is not None else [None] * len(rows), crs="EPSG:4490")


# -- engines --------------------------------------------------------------------------------


def _run_shapely(s: Session, dialect: str, rows: list[Any], prev_rows: list[Any] | None, crs: pyproj.CRS,
                 rules: RuleSet, workers: int) -> AnalysisResult:
    import geopandas as gpd

    from tuban.analysis import analyse

    scope_rows = _scope_rows(s, dialect, geometry=True)
    div_rows = _division_rows(s, dialect, geometry=True)
    if not div_rows:
        raise UsageError("the store holds no division with a geometry",
                         hint="import divisions first: tuban import divisions FILE")
    patches = gpd.GeoDataFrame({"QDNM": [r.qdnm for r in rows]}, geometry=_geoms([r[-1] for r in rows]),
                               crs="EPSG:4490")
    scopes = _scope_frame(scope_rows, _geoms([r[-1] for r in scope_rows]))
    divisions = gpd.GeoDataFrame({"XZQDM": [r[1] for r in div_rows], "XZQMC": [r[2] for r in div_rows]},
                                 geometry=_geoms([r[-1] for r in div_rows]), crs="EPSG:4490")
    previous = None
    if prev_rows is not None:
        previous = gpd.GeoDataFrame({"QDNM": [r.qdnm for r in prev_rows]},
                                    geometry=_geoms([r[-1] for r in prev_rows]), crs="EPSG:4490")
    return analyse(patches, scopes, divisions, previous, rules=rules, work_crs=crs, workers=workers)


def _srid(conn: Any, crs: pyproj.CRS) -> int:
    """The SRID of *crs*; a CRS without EPSG code (Albers, LAEA) is added to ``spatial_ref_sys``."""
    epsg = crs.to_epsg()
    if epsg is not None:
        return int(epsg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proj4 = crs.to_proj4()
    srid = 910_000 + zlib.crc32(proj4.encode()) % 89_000  # PostGIS user range 910000–998999
    conn.exec_driver_sql(
        "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text) "
        "VALUES (%(srid)s, 'tuban', %(srid)s, %(wkt)s, %(proj4)s) ON CONFLICT (srid) DO NOTHING",
        {"srid": srid, "wkt": crs.to_wkt("WKT1_GDAL"), "proj4": proj4},
    )
    return srid


_VIEWS = ("an_patches", "an_scopes", "an_divisions", "an_previous")


def _run_postgis(s: Session, rows: list[Any], prev_rows: list[Any] | None, round_id: int,
                 prev_id: int | None, crs: pyproj.CRS, rules: RuleSet) -> AnalysisResult:
    """Classify in the database over temp views of the store's tables (this session only)."""
    import geopandas as gpd

    from tuban.analysis.postgis import classify_in_postgis
    from tuban.analysis.postgis_result import to_result

    scope_rows = _scope_rows(s, "postgresql", geometry=False)
    div_rows = _division_rows(s, "postgresql", geometry=False)
    if not div_rows:
        raise UsageError("the store holds no division with a geometry",
                         hint="import divisions first: tuban import divisions FILE")
    conn = s.connection()
    srid = _srid(conn, crs)
    skipped = ", ".join(f"'{x}'" for x in SKIPPED_STATES)  # constants, not user input
    div_ids = ", ".join(str(int(r[0])) for r in div_rows)
    views = (
        f"""CREATE TEMP VIEW an_patches AS SELECT id AS pos, qdnm, geometry AS geom FROM patches
            WHERE round_id = {int(round_id)} AND state NOT IN ({skipped}) AND geometry IS NOT NULL""",
        """CREATE TEMP VIEW an_scopes AS SELECT s.id AS pos, coalesce(p.swc_p_id, '#' || p.id) AS swc_p_id,
            p.rp_num, s.vec_type, s.geometry AS geom FROM scopes s JOIN projects p ON p.id = s.project_id
            WHERE s.geometry IS NOT NULL""",
        f"CREATE TEMP VIEW an_divisions AS SELECT id AS pos, code AS xzqdm, geometry AS geom FROM divisions "
        f"WHERE id IN ({div_ids})",
        f"""CREATE TEMP VIEW an_previous AS SELECT id AS pos, qdnm, geometry AS geom FROM patches
            WHERE {f'round_id = {int(prev_id)}' if prev_id is not None else 'false'} AND state NOT IN ({skipped})
            AND geometry IS NOT NULL""",
    )
    drop = "DROP VIEW IF EXISTS " + ", ".join(f"pg_temp.{v}" for v in _VIEWS)
    conn.exec_driver_sql(drop)
    for stmt in views:
        conn.exec_driver_sql(stmt)
    try:
        out = classify_in_postgis(conn, "pg_temp", srid=srid, rules=rules, details=True)
    finally:
        conn.exec_driver_sql(drop)
    patches = gpd.GeoDataFrame({"QDNM": [r.qdnm for r in rows]}, geometry=[None] * len(rows), crs="EPSG:4490")
    previous = previous_pos = None
    if prev_rows is not None:
        previous = gpd.GeoDataFrame({"QDNM": [r.qdnm for r in prev_rows]}, geometry=[None] * len(prev_rows),
                                    crs="EPSG:4490")
        previous_pos = np.array([r.id for r in prev_rows], dtype=np.int64)
    return to_result(
        out, patches=patches, patch_pos=np.array([r.id for r in rows], dtype=np.int64),
        scopes=_scope_frame(scope_rows, None), scope_pos=np.array([r[0] for r in scope_rows], dtype=np.int64),
        division_codes=np.array([r[1] for r in div_rows], dtype=object), previous=previous,
        previous_pos=previous_pos, rules=rules, work_crs=crs,
    )


# -- writing --------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal, areas (ha) within 1e-9 ha: the two engines differ by round-off only."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9
    return a == b


def _write(tx: Transaction, res: AnalysisResult, rows: list[Any], prev_rows: list[Any] | None,
           project_of_scope: list[tuple[str | None, str]], *, round_id: int,
           overwrite_reviewed: bool) -> tuple[int, int, int]:
    """Fields, decisions, per-patch audit and lineage; returns (updated, kept_reviewed, lineage)."""
    from tuban.analysis.explanations import HINT_R5_ZH, explain_rule
    from tuban.analysis.overlay import M2_PER_HA

    s = tx.session
    now = dt.datetime.now(dt.UTC)
    comp = res.compliance

    byd = res.byd.tolist()
    rule = comp.rule.tolist()
    qarea = (res.area_m2 / M2_PER_HA).tolist()
    earea = (comp.outside_m2 / M2_PER_HA).tolist()
    xzqdm = res.xzqdm().tolist()
    lead_div = res.lead_division_code().tolist()
    qdtype = res.change.qdtype.tolist() if res.change is not None else None
    lead = comp.lead_scope.tolist()
    numbers = res.numbers()
    notes = res.geometry_notes
    updates, audits, decisions = [], [], []
    kept = 0
    for i, row in enumerate(rows):
        num = numbers[i]
        if i in notes:
            num["geometry_note"] = notes[i]
        if rule[i] == "R5":
            num["hint"] = HINT_R5_ZH
        decisions.append({
            "patch_id": row.id, "kind": "suspected", "byd": byd[i], "rule_id": rule[i], "numbers": num,
            "explanation_zh": explain_rule(rule[i], num, row.qdnm, "zh"),
            "explanation_en": explain_rule(rule[i], num, row.qdnm, "en"), "actor": tx.actor, "at": now,
        })
        if row.state not in WRITABLE_STATES and not overwrite_reviewed:
            kept += 1
            continue
        prid, prnm = project_of_scope[lead[i]] if lead[i] >= 0 else (None, None)
        new: dict[str, Any] = {"byd": byd[i], "qarea": qarea[i], "earea": earea[i], "prid": prid, "prnm": prnm}
        if xzqdm[i] is not None:
            new["xzqdm"], new["lead_division_code"] = xzqdm[i], lead_div[i]
        if qdtype is not None:
            new["qdtype"] = qdtype[i]
        before = {k: getattr(row, k) for k in new}
        changed = [k for k in new if not _same(before[k], new[k])]
        if not changed:
            continue
        updates.append({"id": row.id, **{f: new.get(f, getattr(row, f)) for f in FIELDS},
                        "version": row.version + 1, "updated_at": now})
        audits.append({
            "at": now, "actor": tx.actor, "action": "patch.analyse", "entity": "patch", "entity_id": str(row.id),
            "round_id": round_id, "division_code": new.get("lead_division_code", row.lead_division_code),
            "before": {**{k: before[k] for k in changed}, "version": row.version},
            "after": {**{k: new[k] for k in changed}, "version": row.version + 1, "rule_id": rule[i]},
        })
    if updates:
        s.execute(update(Patch), updates)
    if decisions:
        s.execute(insert(Decision), decisions)
    if audits:
        s.execute(insert(AuditEntry), audits)
    links = 0
    if prev_rows is not None and res.change is not None:
        s.execute(delete(PatchLineage).where(
            PatchLineage.kind == "previous_round",
            PatchLineage.child_id.in_(select(Patch.__table__.c.id).where(*_analysed(round_id)))))
        ch = res.change
        pairs = [{"parent_id": prev_rows[q].id, "child_id": rows[c].id, "kind": "previous_round", "created_at": now}
                 for c, q in zip(ch.pair_current.tolist(), ch.pair_previous.tolist(), strict=True)]
        if pairs:
            s.execute(insert(PatchLineage), pairs)
        links = len(pairs)
    return len(updates), kept, links


# -- the entry point ------------------------------------------------------------------------


def analyse_round(
    store: Store,
    round_name: str,
    *,
    previous_round: str | None = None,
    actor: str,
    engine: str = "auto",
    rules: RuleSet | None = None,
    workers: int = 1,
    overwrite_reviewed: bool = False,
) -> RoundAnalysis:
    """Analyse the patches of *round_name* in *store* and write the results (one transaction).

    Parameters
    ----------
    store
        An upgraded :class:`~tuban.store.Store` holding the round, projects with scopes and divisions.
    round_name
        The round to analyse.
    previous_round
        The previous round: gives QDTYPE, ``previous_round`` lineage rows and 完工.
    actor
        Who runs it (decisions and audit rows carry the name).
    engine
        ``auto`` (PostGIS in the database on PostgreSQL, shapely on SQLite), ``shapely`` or ``postgis``.
    rules
        Thresholds; default the packaged ``rules-v1.toml``.
    workers
        Threads for the shapely engine.
    overwrite_reviewed
        Also write the fields of patches already past office review (default: decision row only).

    Raises
    ------
    NotFoundError
        The round or the previous round is not in the store.
    UsageError
        Unknown engine, ``postgis`` on SQLite, the same round as its previous round, no divisions.
    """
    from tuban.analysis.rules import load_rules

    if engine not in ENGINES:
        raise UsageError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    dialect = store.dialect
    if engine == "auto":
        engine = "postgis" if dialect == "postgresql" else "shapely"
    if engine == "postgis" and dialect != "postgresql":
        raise UsageError(f"engine 'postgis' needs a PostgreSQL store, this one is {dialect}",
                         hint="use engine 'shapely' (the default on SQLite)")
    if previous_round is not None and previous_round == round_name:
        raise UsageError(f"round {round_name!r} cannot be its own previous round")
    rules = rules or load_rules()
    with store.transaction(actor=actor) as tx:
        s = tx.session
        rnd = _round(s, round_name, "round")
        prev = _round(s, previous_round, "previous round") if previous_round is not None else None
        geometry = engine == "shapely"
        rows = _patch_rows(s, rnd.id, dialect, geometry=geometry, lock=True)
        prev_rows = _patch_rows(s, prev.id, dialect, geometry=geometry, lock=False) if prev is not None else None
        if not rows:
            raise UsageError(f"round {round_name!r} has no patch to analyse (states {', '.join(SKIPPED_STATES)} "
                             f"are left out)")
        crs = _work_crs(s, rnd.id)
        if engine == "shapely":
            res = _run_shapely(s, dialect, rows, prev_rows, crs, rules, workers)
        else:
            res = _run_postgis(s, rows, prev_rows, rnd.id, prev.id if prev else None, crs, rules)
        scope_rows = _scope_rows(s, dialect, geometry=False)
        project_of_scope = [(r[2], r[3]) for r in scope_rows]
        updated, kept, links = _write(tx, res, rows, prev_rows, project_of_scope, round_id=rnd.id,
                                      overwrite_reviewed=overwrite_reviewed)
        completed = [str(q) for q in res.previous_ids[res.change.completed]] if res.change is not None else []
        out = RoundAnalysis(
            round_name=rnd.name, previous_round=prev.name if prev else None, engine=engine,
            work_crs=crs.name, rules_version=rules.version, patches=len(rows),
            rules=dict(sorted(Counter(res.compliance.rule.tolist()).items())),
            qdtype=dict(sorted(Counter(res.change.qdtype.tolist()).items())) if res.change is not None else {},
            updated=updated, kept_reviewed=kept, decisions=len(rows), lineage=links, completed=completed,
            result=res,
        )
        tx.audit("round.analyse", "round", rnd.id, after=out.summary(), round_id=rnd.id)
    return out
