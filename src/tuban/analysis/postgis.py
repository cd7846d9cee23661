"""The compliance rules in PostGIS SQL: the in-database path and an independent reference.

This module holds SQL text and two functions that take a live connection (a DB-API /
psycopg 3 connection, or a SQLAlchemy ``Connection``, used by duck typing). It imports
neither SQLAlchemy nor psycopg, so :mod:`tuban.analysis` stays a pure layer; the store
calls :func:`classify_in_postgis` on a round's tables, and the property tests compare it
with :func:`tuban.analysis.analyse`.

The SQL is written from domain.md §4–5 on its own, not translated from the Python kernel:
validity repair with ``ST_MakeValid`` + ``ST_CollectionExtract``, ``ST_Transform`` to the
metric SRID, ``ST_Intersection`` / ``ST_Difference(patch, ST_Union(scopes))`` for EAREA,
``ST_DWithin`` for the site-change radius, ``string_agg`` for XZQDM.

Why here and not in ``tuban.store``: the SQL *is* the rules (the same definitions as the
shapely kernel, kept side by side so a change to one is seen next to the other), and the
property tests need it without the store. The module stays pure by taking any connection
object; the store's PostGIS backend runs it on a round by exposing the round as views with
the column names below in a schema of its own (or by :func:`load_layers` into a scratch
schema) and calling :func:`classify_in_postgis`. Intermediate results are session TEMP
tables, so concurrent sessions do not collide.

Tables (created by :func:`load_layers`, geometry in EPSG:4490)::

    {schema}.an_patches   (pos, qdnm, geom)
    {schema}.an_scopes    (pos, swc_p_id, rp_num, vec_type, geom)   -- geom NULL = 无红线
    {schema}.an_divisions (pos, xzqdm, geom)
    {schema}.an_previous  (pos, qdnm, geom)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import shapely

from tuban.analysis.rules import RuleSet
from tuban.errors import UsageError

__all__ = ["CLASSIFY_SQL", "DETAILS_SQL", "SESSION_SETTINGS", "classify_in_postgis", "load_layers"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_TABLES_SQL = """
DROP TABLE IF EXISTS {s}.an_patches, {s}.an_scopes, {s}.an_divisions, {s}.an_previous;
CREATE TABLE {s}.an_patches (pos integer PRIMARY KEY, qdnm text NOT NULL, geom geometry(Geometry, 4490));
CREATE TABLE {s}.an_scopes (pos integer PRIMARY KEY, swc_p_id text, rp_num text, vec_type text,
                            geom geometry(Geometry, 4490));
CREATE TABLE {s}.an_divisions (pos integer PRIMARY KEY, xzqdm text NOT NULL, geom geometry(Geometry, 4490));
CREATE TABLE {s}.an_previous (pos integer PRIMARY KEY, qdnm text NOT NULL, geom geometry(Geometry, 4490));
"""

#: the statements of the classification, run in order; {s} is the schema, {lineage_ov} the
#: lineage overlap column (computed with the pairs when the details are asked for).
#: ``OFFSET 0`` keeps a subquery from being pulled up (PostgreSQL would otherwise copy a
#: computed column such as ``ST_Area(ST_Intersection(…))`` into both the filter and the
#: output, computing it twice); the overlays are driven from the fewer, larger side (scopes,
#: divisions) so that PostGIS prepares each of those once for all the patches in its box.
CLASSIFY_SQL: tuple[str, ...] = (
    """DROP TABLE IF EXISTS _an_p, _an_s, _an_d, _an_q, _an_ps, _an_cov, _an_near, _an_pd, _an_pq""",
    # repaired, projected layers (validity checked once, projection done once)
    """CREATE TEMP TABLE _an_p AS
       SELECT pos, qdnm, valid, g, ST_Area(g) AS a FROM (
         SELECT pos, qdnm, valid, ST_Transform(CASE WHEN valid THEN geom
                ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END, %(srid)s) AS g
         FROM (SELECT pos, qdnm, geom, ST_IsValid(geom) AS valid FROM {s}.an_patches OFFSET 0) v OFFSET 0) t""",
    """CREATE TEMP TABLE _an_s AS
       SELECT pos, swc_p_id,
              (coalesce(btrim(rp_num), '') <> '' AND btrim(vec_type) = ANY(%(vec_types)s)) AS counting,
              ST_Transform(CASE WHEN ST_IsValid(geom) THEN geom
                           ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END, %(srid)s) AS g
       FROM {s}.an_scopes WHERE geom IS NOT NULL""",
    """CREATE TEMP TABLE _an_d AS
       SELECT pos, btrim(xzqdm) AS xzqdm, ST_Transform(CASE WHEN ST_IsValid(geom) THEN geom
              ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END, %(srid)s) AS g
       FROM {s}.an_divisions""",
    # pt: a point in the interior of the previous patch (NULL in the rare case it is not)
    """CREATE TEMP TABLE _an_q AS
       SELECT pos, qdnm, g, a, CASE WHEN ST_Contains(g, pt) THEN pt END AS pt FROM (
         SELECT pos, qdnm, g, ST_Area(g) AS a, ST_PointOnSurface(g) AS pt FROM (
           SELECT pos, qdnm, ST_Transform(CASE WHEN ST_IsValid(geom) THEN geom
                  ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END, %(srid)s) AS g
           FROM {s}.an_previous OFFSET 0) t OFFSET 0) u""",
    "CREATE INDEX ON _an_p USING gist (g)",
    "CREATE INDEX ON _an_s USING gist (g)",
    "CREATE INDEX ON _an_q USING gist (g)",
    "ANALYZE _an_p", "ANALYZE _an_s", "ANALYZE _an_d", "ANALYZE _an_q",
    # patch × scope overlaps above the sliver threshold: each scope (prepared once) against the
    # patches in its box; a patch properly inside the scope overlaps it by its own area
    """CREATE TEMP TABLE _an_ps AS
       SELECT t.pp, s.pos AS sp, s.swc_p_id, s.counting, t.inside, t.ov
       FROM _an_s s CROSS JOIN LATERAL (
         SELECT c.pp, c.inside, CASE WHEN c.inside THEN c.a ELSE ST_Area(ST_Intersection(c.g, s.g)) END AS ov
         FROM (SELECT p.pos AS pp, p.a, p.g, ST_ContainsProperly(s.g, p.g) AS inside
               FROM _an_p p WHERE p.g && s.g OFFSET 0) c
         WHERE c.inside OR ST_Intersects(s.g, c.g) OFFSET 0) t
       WHERE t.ov > %(min_ov)s""",
    "ANALYZE _an_ps",
    # area outside the union of the counting scopes (EAREA): none when one of them holds the
    # patch; the difference with the one scope, or with the union of several
    """CREATE TEMP TABLE _an_cov AS
       SELECT c.pp AS pos,
              CASE WHEN c.inside THEN 0.0::float8
                   WHEN cardinality(c.gs) = 1 THEN ST_Area(ST_Difference(p.g, c.gs[1]))
                   ELSE ST_Area(ST_Difference(p.g, ST_Union(c.gs))) END AS outside
       FROM (SELECT ps.pp, bool_or(ps.inside) AS inside, array_agg(s.g ORDER BY ps.sp) AS gs
             FROM _an_ps ps JOIN _an_s s ON s.pos = ps.sp WHERE ps.counting GROUP BY ps.pp) c
       JOIN _an_p p ON p.pos = c.pp""",
    "ANALYZE _an_cov",
    # undisturbed counting scopes (overlapping no patch) within the radius of patches that
    # overlap no counting scope: searched from those few scopes into the patch index
    """CREATE TEMP TABLE _an_near AS
       SELECT t.pp, s.pos AS sp, s.swc_p_id, t.d
       FROM _an_s s CROSS JOIN LATERAL (
         SELECT p.pos AS pp, ST_Distance(p.g, s.g) AS d FROM _an_p p
         WHERE ST_DWithin(p.g, s.g, %(radius)s + %(dist_eps)s) OFFSET 0) t
       WHERE s.counting AND NOT EXISTS (SELECT 1 FROM _an_ps x WHERE x.sp = s.pos)
         AND NOT EXISTS (SELECT 1 FROM _an_cov c WHERE c.pos = t.pp)""",
    # patch × division overlaps: each division (prepared once) against the patches in its box
    """CREATE TEMP TABLE _an_pd AS
       SELECT t.pp, d.xzqdm, t.ov
       FROM _an_d d CROSS JOIN LATERAL (
         SELECT c.pp, CASE WHEN c.inside THEN c.a ELSE ST_Area(ST_Intersection(c.g, d.g)) END AS ov
         FROM (SELECT p.pos AS pp, p.a, p.g, ST_ContainsProperly(d.g, p.g) AS inside
               FROM _an_p p WHERE p.g && d.g OFFSET 0) c
         WHERE c.inside OR ST_Intersects(d.g, c.g) OFFSET 0) t
       WHERE t.ov > %(min_ov)s""",
    # lineage: previous patches whose interiors the patch meets (intersects, not only touches);
    # settled by one point-in-polygon test when the patch holds an interior point of the previous one
    """CREATE TEMP TABLE _an_pq AS
       SELECT t.pp, q.pos AS qp, q.qdnm, q.a AS qa, t.ov
       FROM _an_q q CROSS JOIN LATERAL (
         SELECT c.pp, {lineage_ov} AS ov
         FROM (SELECT p.pos AS pp, p.g FROM _an_p p WHERE p.g && q.g OFFSET 0) c
         WHERE ST_Contains(c.g, q.pt) OR (ST_Intersects(c.g, q.g) AND NOT ST_Touches(c.g, q.g)) OFFSET 0) t""",
    "ANALYZE _an_near", "ANALYZE _an_pd", "ANALYZE _an_pq",
)

#: the lineage overlap column of ``_an_pq``: with the details, or not at all
_LINEAGE_OV = {True: "ST_Area(ST_Intersection(c.g, q.g))", False: "NULL::float8"}

_RESULT_SQL = """
WITH lead AS (SELECT DISTINCT ON (pp) pp, swc_p_id FROM _an_ps WHERE counting
              ORDER BY pp, round(ov::numeric, %(rd)s) DESC, sp),
     projects AS (SELECT pp, array_agg(swc_p_id ORDER BY sp) AS projects FROM _an_ps WHERE counting GROUP BY pp),
     site AS (SELECT DISTINCT ON (pp) pp, swc_p_id FROM _an_near ORDER BY pp, round(d::numeric, %(rd)s), sp),
     divs AS (SELECT pp, string_agg(xzqdm, ',' ORDER BY round(ov::numeric, %(rd)s) DESC, xzqdm) AS xzqdm
              FROM _an_pd GROUP BY pp),
     prev AS (SELECT pp, sum(qa ORDER BY qp) AS qa FROM _an_pq GROUP BY pp)
SELECT p.pos, p.qdnm, p.a / 10000.0 AS qarea,
       CASE WHEN c.pos IS NOT NULL THEN
              CASE WHEN c.outside <= greatest(%(tol_min_m2)s, %(tol_share)s * p.a) + %(eps_m2)s
                   THEN 'R1' ELSE 'R2' END
            WHEN site.pp IS NOT NULL THEN 'R3'
            WHEN p.a < %(plan_m2)s THEN 'R5'
            ELSE 'R4' END AS rule_id,
       coalesce(c.outside, 0) / 10000.0 AS earea,
       coalesce(lead.swc_p_id, site.swc_p_id) AS prid,
       divs.xzqdm,
       CASE WHEN prev.pp IS NULL THEN '新增'
            WHEN (p.a - prev.qa) / prev.qa > %(expand)s + %(share_eps)s THEN '续建（范围扩大）'
            WHEN (p.a - prev.qa) / prev.qa < -%(shrink)s - %(share_eps)s THEN '续建（范围缩小）'
            ELSE '续建（范围不变）' END AS qdtype,
       projects.projects
FROM _an_p p LEFT JOIN _an_cov c ON c.pos = p.pos
     LEFT JOIN lead ON lead.pp = p.pos LEFT JOIN projects ON projects.pp = p.pos
     LEFT JOIN site ON site.pp = p.pos LEFT JOIN divs ON divs.pp = p.pos LEFT JOIN prev ON prev.pp = p.pos
ORDER BY p.pos
"""

#: the numbers behind each decision, read from the temp tables after :data:`CLASSIFY_SQL`
#: (``classify_in_postgis(..., details=True)``); :func:`to_result` turns them into an
#: :class:`~tuban.analysis.core.AnalysisResult`
DETAILS_SQL: dict[str, str] = {
    "area": "SELECT pos, a FROM _an_p ORDER BY pos",
    "pairs": "SELECT pp, sp, ov, counting FROM _an_ps ORDER BY pp, sp",
    "outside": "SELECT pos, outside FROM _an_cov",
    "site": "SELECT pp, sp, d FROM _an_near",
    "nearest": """SELECT p.pos, n.sp, n.d FROM _an_p p CROSS JOIN LATERAL (
                    SELECT s.pos AS sp, ST_Distance(p.g, s.g) AS d FROM _an_s s
                    WHERE s.counting AND ST_DWithin(p.g, s.g, %(search)s) ORDER BY d, s.pos LIMIT 1) n
                  WHERE NOT EXISTS (SELECT 1 FROM _an_cov c WHERE c.pos = p.pos)""",
    "divisions": "SELECT pp, xzqdm, ov FROM _an_pd",
    "previous_area": "SELECT pos, a FROM _an_q ORDER BY pos",
    "lineage": "SELECT pp, qp, ov FROM _an_pq ORDER BY pp, qp",
    "repairs": """SELECT i.pos, ST_IsValidReason(i.geom), ST_Area(ST_Transform(i.geom, %(srid)s))
                  FROM {s}.an_patches i JOIN _an_p p ON p.pos = i.pos AND NOT p.valid""",
}

_COMPLETED_SQL = """
SELECT q.qdnm FROM _an_q q WHERE NOT EXISTS (SELECT 1 FROM _an_pq pq WHERE pq.qp = q.pos) ORDER BY q.pos
"""


#: session settings while the classification runs (restored after): no JIT (compiling the
#: expressions of each statement cost 0.2–1 s, more than most statements run at 100 k
#: patches), and enough memory for the hash joins and sorts of the pairs to stay in memory
SESSION_SETTINGS: dict[str, str] = {"jit": "off", "work_mem": "128MB"}


@contextlib.contextmanager
def _session_settings(conn: Any, settings: dict[str, str]) -> Iterator[None]:
    names = list(settings)
    old = _run(conn, "SELECT " + ", ".join(f"current_setting('{k}')" for k in names), fetch=True)[0]
    _run(conn, "SELECT " + ", ".join(f"set_config('{k}', %(v{i})s, false)" for i, k in enumerate(names)),
         {f"v{i}": settings[k] for i, k in enumerate(names)})
    try:
        yield
    finally:
        # after an error inside a transaction the SET is undone by its rollback, and this fails
        with contextlib.suppress(Exception):
            _run(conn, "SELECT " + ", ".join(f"set_config('{k}', %(v{i})s, false)" for i, k in enumerate(names)),
                 {f"v{i}": v for i, v in enumerate(old)})


def _schema(name: str) -> str:
    if not _IDENT.match(name):
        raise UsageError(f"schema name {name!r} is not a plain lower-case SQL identifier")
    return name


def _dbapi(conn: Any) -> Any:
    """The DB-API connection under a SQLAlchemy ``Connection`` (or *conn* itself)."""
    if hasattr(conn, "exec_driver_sql"):
        return conn.connection.driver_connection
    return conn


def _run(conn: Any, sql: str, params: dict[str, Any] | None = None, *, fetch: bool = False) -> list[tuple]:
    with _dbapi(conn).cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if fetch else []


def _copy(conn: Any, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    cols = ", ".join(columns)
    with _dbapi(conn).cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _ewkb(geoms: np.ndarray) -> list[str | None]:
    geoms = np.asarray(geoms, dtype=object)
    out: list[str | None] = [None] * len(geoms)
    present = ~shapely.is_missing(geoms)
    if present.any():
        hexes = shapely.to_wkb(shapely.set_srid(geoms[present], 4490), hex=True, include_srid=True)
        for k, h in zip(np.flatnonzero(present), hexes, strict=True):
            out[k] = h
    return out


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


def load_layers(conn: Any, schema: str, patches: Any, scopes: Any, divisions: Any, previous: Any = None) -> None:
    """(Re)create the four input tables in *schema* and copy the GeoDataFrames (EPSG:4490) in."""
    s = _schema(schema)
    for stmt in _TABLES_SQL.format(s=s).split(";"):
        if stmt.strip():
            _run(conn, stmt)
    for name, frame in (("patches", patches), ("scopes", scopes), ("divisions", divisions),
                        ("previous", previous)):
        if frame is not None and frame.crs is not None and frame.crs.to_epsg() != 4490:
            raise UsageError(f"layer {name} must be in EPSG:4490 for load_layers, not {frame.crs}")
    _copy(conn, f"{s}.an_patches", ("pos", "qdnm", "geom"),
          [(k, _text(q), g) for k, (q, g) in enumerate(zip(patches["QDNM"], _ewkb(patches.geometry), strict=True))])
    _copy(conn, f"{s}.an_scopes", ("pos", "swc_p_id", "rp_num", "vec_type", "geom"),
          [(k, _text(a), _text(b), _text(c), g) for k, (a, b, c, g) in enumerate(
              zip(scopes["SWC_P_ID"], scopes["RP_NUM"], scopes["VEC_TYPE"], _ewkb(scopes.geometry), strict=True))])
    _copy(conn, f"{s}.an_divisions", ("pos", "xzqdm", "geom"),
          [(k, _text(c), g) for k, (c, g) in enumerate(zip(divisions["XZQDM"], _ewkb(divisions.geometry),
                                                             strict=True))])
    if previous is not None:
        _copy(conn, f"{s}.an_previous", ("pos", "qdnm", "geom"),
              [(k, _text(q), g) for k, (q, g) in enumerate(zip(previous["QDNM"], _ewkb(previous.geometry),
                                                                 strict=True))])


def classify_in_postgis(conn: Any, schema: str, *, srid: int, rules: RuleSet,
                        details: bool = False) -> dict[str, Any]:
    """Run R1–R5, XZQDM and QDTYPE in the database on the tables of :func:`load_layers`.

    Parameters
    ----------
    conn
        psycopg 3 connection or SQLAlchemy ``Connection`` to PostgreSQL with PostGIS.
    schema
        Schema holding ``an_patches`` … ``an_previous``.
    srid
        The metric SRID for areas and distances (a Gauss–Krüger zone, e.g. 4547).
    rules
        Thresholds, as for :func:`tuban.analysis.analyse`.
    details
        Also read the overlaps, distances, divisions and lineage behind each decision
        (:data:`DETAILS_SQL`, under the key ``details``), for :func:`to_result`.

    Returns
    -------
    dict
        ``patches``: one dict per patch in input order with QDNM, RULE_ID, QAREA, EAREA (ha),
        PRID, XZQDM, QDTYPE (``None`` without previous patches), projects (counting scope ids
        overlapped); ``completed``: QDNM of previous patches with no successor (完工).
    """
    s = _schema(schema)
    params = {
        "srid": int(srid),
        "vec_types": list(rules.counting_vec_types),
        "min_ov": rules.overlap_min_m2,
        "radius": rules.site_change_radius_m,
        "tol_min_m2": rules.tolerance_min_ha * 10_000.0,
        "tol_share": rules.tolerance_share,
        "eps_m2": rules.area_eps_ha * 10_000.0,
        "plan_m2": rules.plan_threshold_ha * 10_000.0,
        "expand": rules.expand_share,
        "shrink": rules.shrink_share,
        "share_eps": rules.share_eps,
        "dist_eps": rules.distance_eps_m,
        "rd": int(rules.rank_decimals),
    }
    extra = {}
    with _session_settings(conn, SESSION_SETTINGS):
        for stmt in CLASSIFY_SQL:
            sql = stmt.format(s=s, lineage_ov=_LINEAGE_OV[bool(details)])
            used = {k: v for k, v in params.items() if f"%({k})s" in sql}
            _run(conn, sql, used or None)
        has_previous = _run(conn, "SELECT count(*) FROM _an_q", fetch=True)[0][0] > 0
        rows = _run(conn, _RESULT_SQL, {k: v for k, v in params.items() if f"%({k})s" in _RESULT_SQL}, fetch=True)
        completed = [r[0] for r in _run(conn, _COMPLETED_SQL, fetch=True)]
        if details:
            more = {"search": rules.nearest_search_m, "srid": int(srid)}
            for key, stmt in DETAILS_SQL.items():
                sql = stmt.format(s=s)
                extra[key] = _run(conn, sql, {k: v for k, v in more.items() if f"%({k})s" in sql} or None,
                                  fetch=True)
        _run(conn, CLASSIFY_SQL[0])
    keys = ("pos", "QDNM", "QAREA", "RULE_ID", "EAREA", "PRID", "XZQDM", "QDTYPE", "projects")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for r in out:
        r.pop("pos")
        r["projects"] = list(r["projects"] or [])
        if not has_previous:
            r["QDTYPE"] = None
    result: dict[str, Any] = {"patches": out, "completed": completed}
    if details:
        result["details"] = extra
    return result
