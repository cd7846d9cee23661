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

import re
from typing import Any

import numpy as np
import shapely

from tuban.analysis.rules import RuleSet
from tuban.errors import UsageError

__all__ = ["CLASSIFY_SQL", "DETAILS_SQL", "classify_in_postgis", "load_layers"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_TABLES_SQL = """
DROP TABLE IF EXISTS {s}.an_patches, {s}.an_scopes, {s}.an_divisions, {s}.an_previous;
CREATE TABLE {s}.an_patches (pos integer PRIMARY KEY, qdnm text NOT NULL, geom geometry(Geometry, 4490));
CREATE TABLE {s}.an_scopes (pos integer PRIMARY KEY, swc_p_id text, rp_num text, vec_type text,
                            geom geometry(Geometry, 4490));
CREATE TABLE {s}.an_divisions (pos integer PRIMARY KEY, xzqdm text NOT NULL, geom geometry(Geometry, 4490));
CREATE TABLE {s}.an_previous (pos integer PRIMARY KEY, qdnm text NOT NULL, geom geometry(Geometry, 4490));
"""

#: the statements of the classification, run in order; {s} is the schema
CLASSIFY_SQL: tuple[str, ...] = (
    """DROP TABLE IF EXISTS _an_p, _an_s, _an_d, _an_q, _an_ps, _an_cov, _an_near, _an_pd, _an_pq""",
    # repaired, projected layers
    """CREATE TEMP TABLE _an_p AS
       SELECT pos, qdnm, g, ST_Area(g) AS a FROM (
         SELECT pos, qdnm, ST_Transform(CASE WHEN ST_IsValid(geom) THEN geom
                ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END, %(srid)s) AS g
         FROM {s}.an_patches) t""",
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
    """CREATE TEMP TABLE _an_q AS
       SELECT pos, qdnm, g, ST_Area(g) AS a FROM (
         SELECT pos, qdnm, ST_Transform(CASE WHEN ST_IsValid(geom) THEN geom
                ELSE ST_CollectionExtract(ST_MakeValid(geom), 3) END, %(srid)s) AS g
         FROM {s}.an_previous) t""",
    "CREATE INDEX ON _an_p USING gist (g)",
    "CREATE INDEX ON _an_s USING gist (g)",
    "CREATE INDEX ON _an_d USING gist (g)",
    "CREATE INDEX ON _an_q USING gist (g)",
    "ANALYZE _an_p", "ANALYZE _an_s", "ANALYZE _an_d", "ANALYZE _an_q",
    # patch × scope overlaps above the sliver threshold
    """CREATE TEMP TABLE _an_ps AS
       SELECT * FROM (SELECT p.pos AS pp, s.pos AS sp, s.swc_p_id, s.counting,
                             ST_Area(ST_Intersection(p.g, s.g)) AS ov
                      FROM _an_p p JOIN _an_s s ON ST_Intersects(p.g, s.g)) t
       WHERE ov > %(min_ov)s""",
    "CREATE INDEX ON _an_ps (pp)",
    "CREATE INDEX ON _an_ps (sp)",
    "ANALYZE _an_ps",
    # area outside the union of the counting scopes (EAREA)
    """CREATE TEMP TABLE _an_cov AS
       SELECT p.pos, ST_Area(ST_Difference(p.g, ST_Union(s.g))) AS outside
       FROM _an_p p JOIN _an_ps ps ON ps.pp = p.pos AND ps.counting JOIN _an_s s ON s.pos = ps.sp
       GROUP BY p.pos, p.g""",
    "CREATE UNIQUE INDEX ON _an_cov (pos)",
    "ANALYZE _an_cov",
    # counting scopes within the radius of patches that overlap none; disturbed = overlaps any patch
    """CREATE TEMP TABLE _an_near AS
       SELECT p.pos AS pp, s.pos AS sp, s.swc_p_id, ST_Distance(p.g, s.g) AS d,
              EXISTS (SELECT 1 FROM _an_ps x WHERE x.sp = s.pos) AS disturbed
       FROM _an_p p JOIN _an_s s ON s.counting AND ST_DWithin(p.g, s.g, %(radius)s + %(dist_eps)s)
       WHERE NOT EXISTS (SELECT 1 FROM _an_cov c WHERE c.pos = p.pos)""",
    "CREATE INDEX ON _an_near (pp)",
    """CREATE TEMP TABLE _an_pd AS
       SELECT * FROM (SELECT p.pos AS pp, d.xzqdm, ST_Area(ST_Intersection(p.g, d.g)) AS ov
                      FROM _an_p p JOIN _an_d d ON ST_Intersects(p.g, d.g)) t
       WHERE ov > %(min_ov)s""",
    """CREATE TEMP TABLE _an_pq AS
       SELECT p.pos AS pp, q.pos AS qp, q.qdnm, q.a AS qa
       FROM _an_p p JOIN _an_q q ON ST_Intersects(p.g, q.g) AND NOT ST_Touches(p.g, q.g)""",
    "CREATE INDEX ON _an_pd (pp)",
    "CREATE INDEX ON _an_pq (pp)",
    "CREATE INDEX ON _an_pq (qp)",
    "ANALYZE _an_near", "ANALYZE _an_pd", "ANALYZE _an_pq",
)

_RESULT_SQL = """
SELECT p.pos, p.qdnm, p.a / 10000.0 AS qarea,
       CASE WHEN c.pos IS NOT NULL THEN
              CASE WHEN c.outside <= greatest(%(tol_min_m2)s, %(tol_share)s * p.a) + %(eps_m2)s
                   THEN 'R1' ELSE 'R2' END
            WHEN EXISTS (SELECT 1 FROM _an_near n WHERE n.pp = p.pos AND NOT n.disturbed) THEN 'R3'
            WHEN p.a < %(plan_m2)s THEN 'R5'
            ELSE 'R4' END AS rule_id,
       coalesce(c.outside, 0) / 10000.0 AS earea,
       coalesce((SELECT ps.swc_p_id FROM _an_ps ps WHERE ps.pp = p.pos AND ps.counting
                 ORDER BY round(ps.ov::numeric, %(rd)s) DESC, ps.sp LIMIT 1),
                (SELECT n.swc_p_id FROM _an_near n WHERE n.pp = p.pos AND NOT n.disturbed
                 ORDER BY round(n.d::numeric, %(rd)s), n.sp LIMIT 1)) AS prid,
       (SELECT string_agg(pd.xzqdm, ',' ORDER BY round(pd.ov::numeric, %(rd)s) DESC, pd.xzqdm) FROM _an_pd pd WHERE pd.pp = p.pos)
         AS xzqdm,
       (SELECT CASE WHEN count(*) = 0 THEN '新增'
                    WHEN (p.a - sum(pq.qa)) / sum(pq.qa) > %(expand)s + %(share_eps)s THEN '续建（范围扩大）'
                    WHEN (p.a - sum(pq.qa)) / sum(pq.qa) < -%(shrink)s - %(share_eps)s THEN '续建（范围缩小）'
                    ELSE '续建（范围不变）' END
        FROM _an_pq pq WHERE pq.pp = p.pos) AS qdtype,
       (SELECT array_agg(ps.swc_p_id ORDER BY ps.sp) FROM _an_ps ps WHERE ps.pp = p.pos AND ps.counting)
         AS projects
FROM _an_p p LEFT JOIN _an_cov c ON c.pos = p.pos
ORDER BY p.pos
"""

#: the numbers behind each decision, read from the temp tables after :data:`CLASSIFY_SQL`
#: (``classify_in_postgis(..., details=True)``); :func:`to_result` turns them into an
#: :class:`~tuban.analysis.core.AnalysisResult`
DETAILS_SQL: dict[str, str] = {
    "area": "SELECT pos, a FROM _an_p ORDER BY pos",
    "pairs": "SELECT pp, sp, ov, counting FROM _an_ps ORDER BY pp, sp",
    "outside": "SELECT pos, outside FROM _an_cov",
    "site": "SELECT pp, sp, d FROM _an_near WHERE NOT disturbed",
    "nearest": """SELECT p.pos, n.sp, n.d FROM _an_p p CROSS JOIN LATERAL (
                    SELECT s.pos AS sp, ST_Distance(p.g, s.g) AS d FROM _an_s s
                    WHERE s.counting AND ST_DWithin(p.g, s.g, %(search)s) ORDER BY d, s.pos LIMIT 1) n
                  WHERE NOT EXISTS (SELECT 1 FROM _an_cov c WHERE c.pos = p.pos)""",
    "divisions": "SELECT pp, xzqdm, ov FROM _an_pd",
    "previous_area": "SELECT pos, a FROM _an_q ORDER BY pos",
    "lineage": """SELECT pq.pp, pq.qp, ST_Area(ST_Intersection(p.g, q.g)) FROM _an_pq pq
                  JOIN _an_p p ON p.pos = pq.pp JOIN _an_q q ON q.pos = pq.qp ORDER BY pq.pp, pq.qp""",
    "repairs": """SELECT pos, ST_IsValidReason(geom), ST_Area(ST_Transform(geom, %(srid)s)) FROM {s}.an_patches
                  WHERE NOT ST_IsValid(geom)""",
}

_COMPLETED_SQL = """
SELECT q.qdnm FROM _an_q q WHERE NOT EXISTS (SELECT 1 FROM _an_pq pq WHERE pq.qp = q.pos) ORDER BY q.pos
"""


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
    for stmt in CLASSIFY_SQL:
        sql = stmt.format(s=s)
        used = {k: v for k, v in params.items() if f"%({k})s" in sql}
        _run(conn, sql, used or None)
    has_previous = _run(conn, "SELECT count(*) FROM _an_q", fetch=True)[0][0] > 0
    rows = _run(conn, _RESULT_SQL, {k: v for k, v in params.items() if f"%({k})s" in _RESULT_SQL}, fetch=True)
    completed = [r[0] for r in _run(conn, _COMPLETED_SQL, fetch=True)]
    extra = {}
    if details:
        more = {"search": rules.nearest_search_m, "srid": int(srid)}
        for key, stmt in DETAILS_SQL.items():
            sql = stmt.format(s=s)
            extra[key] = _run(conn, sql, {k: v for k, v in more.items() if f"%({k})s" in sql} or None, fetch=True)
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
