"""Read models for the review pages: patch lists, map features, detail and history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import shapely
from sqlalchemy import String, cast, func, literal, null, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from tuban.errors import UsageError
from tuban.store.importing import bbox_condition
from tuban.store.models import (
    AuditEntry,
    Case,
    Comment,
    Decision,
    Patch,
    PatchLineage,
    Project,
    Review,
    Scope,
    User,
)
from tuban.workflow.access import Actor, load_patch, load_round, patch_scope_clause

__all__ = ["SORT_KEYS", "features_in_bbox", "features_in_bbox_json", "list_patches", "patch_detail", "patch_history",
           "round_log", "scopes_in_bbox", "visible_extent"]

SORT_KEYS = {
    "qdnm": Patch.qdnm,
    "qarea": Patch.qarea,
    "state": Patch.state,
    "byd": Patch.byd,
    "county": Patch.lead_division_code,
    "updated": Patch.updated_at,
}
LIST_COLUMNS = ("id", "qdnm", "qarea", "earea", "byd", "state", "lead_division_code", "xzqdm", "prnm",
                "address", "version")


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise UsageError(f"bbox must be 4 numbers minx,miny,maxx,maxy, got {bbox!r}") from None
    if not all(map(lambda v: v == v and abs(v) != float("inf"), (minx, miny, maxx, maxy))) or \
            minx > maxx or miny > maxy:
        raise UsageError(f"bbox {bbox!r} is not a finite box with min ≤ max")
    return minx, miny, maxx, maxy


def list_patches(session: Any, actor: Actor, round_id: int, *, state: str | None = None,
                 byd: str | None = None, county: str | None = None, q: str | None = None,
                 sort: str = "qdnm", descending: bool = False, offset: int = 0, limit: int = 50,
                 bbox: Sequence[float] | None = None) -> dict[str, Any]:
    """One page of the round's patches visible to *actor*, with the filtered total."""
    rnd = load_round(session, actor, round_id)
    if sort not in SORT_KEYS:
        raise UsageError(f"sort={sort!r} is not supported", hint=f"use one of: {', '.join(SORT_KEYS)}")
    if limit < 1 or offset < 0:
        raise UsageError(f"limit must be ≥ 1 and offset ≥ 0 (got limit={limit}, offset={offset})")
    conds = [Patch.round_id == rnd.id, patch_scope_clause(actor, "patch.read", round_id=rnd.id)]
    conds.append(Patch.state == state if state else Patch.state != "superseded")
    if byd:
        conds.append(Patch.byd == byd)
    if county:
        conds.append(or_(Patch.lead_division_code == county, Patch.xzqdm.like(f"%{county}%")))
    if q:
        like = f"%{q.strip().replace('%', '').replace('_', '')}%"
        conds.append(or_(Patch.qdnm.like(like), Patch.address.like(like), Patch.prnm.like(like),
                         Patch.memo.like(like), Patch.problem.like(like)))
    if bbox is not None:
        conds.append(bbox_condition(Patch, _check_bbox(bbox), session.get_bind().dialect.name))
    key = SORT_KEYS[sort]
    order: list[Any] = [key.desc() if descending else key.asc(), Patch.id.asc()]
    cols = [getattr(Patch, c) for c in LIST_COLUMNS]
    page = select(*cols).where(*conds).order_by(*order).offset(offset).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL: the total rides on the page (count(*) OVER ()), one pass over the visible
        # rows instead of two (~8 ms of 20 at 5 000 visible patches); SQLite walks the sort
        # index for the page and is faster with a separate count
        rows = session.execute(page.add_columns(func.count().over().label("total"))).all()
        total = rows[0][-1] if rows else (session.scalar(select(func.count(Patch.id)).where(*conds))
                                          if offset else 0)
        rows = [r[:-1] for r in rows]
    else:
        total = session.scalar(select(func.count(Patch.id)).where(*conds))
        rows = session.execute(page).all()
    return {"total": int(total or 0), "offset": offset, "limit": limit,
            "items": [dict(zip(LIST_COLUMNS, r, strict=True)) for r in rows]}


def _feature_conds(session: Any, actor: Actor, round_id: int, bbox: Sequence[float]) -> list[Any]:
    rnd = load_round(session, actor, round_id)
    return [Patch.round_id == rnd.id, Patch.state != "superseded",
            patch_scope_clause(actor, "patch.read", round_id=rnd.id),
            bbox_condition(Patch, _check_bbox(bbox), session.get_bind().dialect.name)]


def _props(pid: int, qdnm: str, state: str, byd: str | None, version: int, lead: str | None) -> dict[str, Any]:
    return {"id": pid, "qdnm": qdnm, "state": state, "byd": byd or "", "version": version, "lead": lead or ""}


def features_in_bbox(session: Any, actor: Actor, round_id: int, bbox: Sequence[float], *,
                     limit: int = 5000, simplify: float | None = None) -> dict[str, Any]:
    """GeoJSON FeatureCollection of the visible patches meeting *bbox* (the map's patch layer).

    The reference form (full-precision geometries as dicts); the app sends
    :func:`features_in_bbox_json`.
    """
    conds = _feature_conds(session, actor, round_id, bbox)
    rows = session.execute(
        select(Patch.id, Patch.qdnm, Patch.state, Patch.byd, Patch.version, Patch.lead_division_code,
               Patch.geometry).where(*conds).order_by(Patch.id).limit(limit + 1)
    ).all()
    truncated = len(rows) > limit
    rows = rows[:limit]
    geoms = [r[-1] for r in rows]
    if simplify:
        geoms = list(shapely.simplify(geoms, simplify, preserve_topology=True))
    feats = []
    for row, geom in zip(rows, geoms, strict=True):
        if geom is None:
            continue
        feats.append({"type": "Feature", "id": row[0], "properties": _props(*row[:6]),
                      "geometry": shapely.geometry.mapping(geom)})
    return {"type": "FeatureCollection", "features": feats, "truncated": truncated}


class _JsonString(FunctionElement[str]):
    """A text column as a JSON string literal: ``json_quote(x)`` (SQLite), ``to_json(x)::text`` (PostgreSQL)."""

    type = String()
    inherit_cache = True
    name = "json_string"


@compiles(_JsonString)
def _json_string_sqlite(element: _JsonString, compiler: Any, **kw: Any) -> str:
    return f"json_quote({compiler.process(element.clauses, **kw)})"


@compiles(_JsonString, "postgresql")
def _json_string_postgresql(element: _JsonString, compiler: Any, **kw: Any) -> str:
    # to_json only where the text needs escaping (a quote, a backslash or a control character):
    # otherwise its output is the text in quotes, and calling it for every property of a county's
    # patches is a third of the map layer's time in the database
    text = compiler.process(element.clauses, **kw)
    return (f"CASE WHEN {text} ~ '[[.backslash.]\"[:cntrl:]]' THEN to_json(CAST({text} AS TEXT))::text "
            f"ELSE '\"' || {text} || '\"' END")


def _feature_text(outline: Any) -> Any:
    """One GeoJSON Feature as text, assembled by the database from a stored outline column."""
    def num(col: Any) -> Any:
        return cast(col, String)

    def jstr(col: Any) -> Any:
        return _JsonString(func.coalesce(col, ""))

    return (literal('{"type":"Feature","id":') + num(Patch.id) + ',"properties":{"id":' + num(Patch.id)
            + ',"qdnm":' + jstr(Patch.qdnm) + ',"state":' + jstr(Patch.state) + ',"byd":' + jstr(Patch.byd)
            + ',"version":' + num(Patch.version) + ',"lead":' + jstr(Patch.lead_division_code)
            + '},"geometry":' + outline + "}")


def features_in_bbox_json(session: Any, actor: Actor, round_id: int, bbox: Sequence[float], *,
                          limit: int = 5000, simplify: float | None = None, zoom: float | None = None) -> bytes:
    """The map's patch layer as GeoJSON bytes, assembled from the stored outlines.

    The database writes each Feature's text from a stored outline and the properties
    (JSON-quoted in SQL), so a county view decodes no geometry and builds no Python
    objects per patch; SQLite hands the texts over as bytes (no decode/encode). Below
    *zoom* :data:`~tuban.store.models.OVERVIEW_MAX_ZOOM` the outline is
    ``patches.overview_geojson`` (simplified by 1e-4 degree, 5 decimals: under a pixel
    there), else ``patches.display_geojson`` (every vertex, 6 decimals). Rows whose outline
    is NULL (written around the ORM on SQLite) are computed here; with *simplify*
    (degrees) every outline is simplified from the geometry instead.
    """
    from sqlalchemy import LargeBinary

    from tuban.store.models import OVERVIEW_MAX_ZOOM

    overview = zoom is not None and zoom < OVERVIEW_MAX_ZOOM
    conds = _feature_conds(session, actor, round_id, bbox)
    text: Any = null()
    if not simplify:
        text = _feature_text(Patch.overview_geojson if overview else Patch.display_geojson)
        if session.get_bind().dialect.name == "sqlite":
            text = cast(text, LargeBinary)
    rows = session.execute(select(Patch.id, text).where(*conds).order_by(Patch.id).limit(limit + 1)).all()
    truncated = len(rows) > limit
    rows = rows[:limit]
    texts: list[Any] = [r[1] for r in rows]
    missing = [i for i, t in enumerate(texts) if t is None]
    if missing:
        computed = _features_from_geometry(session, [rows[i][0] for i in missing], simplify, overview=overview)
        for i, t in zip(missing, computed, strict=True):
            texts[i] = t
    head = b'{"type":"FeatureCollection","truncated":' + (b"true" if truncated else b"false") + b',"features":['
    parts = [t if isinstance(t, bytes) else t.encode() for t in texts if t is not None]
    return head + b",".join(parts) + b"]}"


def _features_from_geometry(session: Any, ids: list[int], simplify: float | None, *,
                            overview: bool = False) -> list[str | None]:
    """Feature texts of *ids* computed from their geometries (``None`` for a patch without one)."""
    from json.encoder import encode_basestring as esc

    from tuban.store.models import display_geojson, overview_geojson

    found: dict[int, Any] = {}
    for chunk in range(0, len(ids), 900):
        for row in session.execute(
            select(Patch.id, Patch.qdnm, Patch.state, Patch.byd, Patch.version, Patch.lead_division_code,
                   Patch.geometry).where(Patch.id.in_(ids[chunk:chunk + 900]))
        ):
            found[row[0]] = row
    rows = [found[i] for i in ids]
    geoms = [r[-1] for r in rows]
    if simplify:
        geoms = list(shapely.simplify(geoms, simplify, preserve_topology=True))
    outlines = overview_geojson(geoms) if overview and not simplify else display_geojson(geoms)
    return [
        None if g is None else
        f'{{"type":"Feature","id":{pid},"properties":{{"id":{pid},"qdnm":{esc(qdnm or "")},"state":{esc(state or "")},'
        f'"byd":{esc(byd or "")},"version":{int(version)},"lead":{esc(lead or "")}}},"geometry":{g}}}'
        for (pid, qdnm, state, byd, version, lead, _), g in zip(rows, outlines, strict=True)
    ]


def visible_extent(session: Any, actor: Actor, round_id: int) -> list[float] | None:
    """``[minx, miny, maxx, maxy]`` of the round's patches visible to *actor* (the review map opens
    on it), or ``None`` when none has a geometry."""
    rnd = load_round(session, actor, round_id)
    row = session.execute(
        select(func.min(Patch.minx), func.min(Patch.miny), func.max(Patch.maxx), func.max(Patch.maxy))
        .where(Patch.round_id == rnd.id, Patch.state != "superseded",
               patch_scope_clause(actor, "patch.read", round_id=rnd.id))
    ).one()
    return None if row[0] is None else [float(v) for v in row]


def scopes_in_bbox(session: Any, bbox: Sequence[float], *, limit: int = 2000) -> dict[str, Any]:
    """Project scopes (防治责任范围) meeting *bbox*, labelled with the project name."""
    rows = session.execute(
        select(Scope.id, Scope.vec_type, Scope.geometry, Project.id, Project.pro_name, Project.rp_num)
        .join(Project, Project.id == Scope.project_id)
        .where(bbox_condition(Scope, _check_bbox(bbox), session.get_bind().dialect.name))
        .order_by(Scope.id).limit(limit)
    ).all()
    feats = [{"type": "Feature", "id": sid,
              "properties": {"scope_id": sid, "vec_type": vt or "", "project_id": pid, "name": name,
                             "approved": bool(rp)},
              "geometry": shapely.geometry.mapping(geom)} for sid, vt, geom, pid, name, rp in rows if geom]
    return {"type": "FeatureCollection", "features": feats}


def patch_detail(session: Any, actor: Actor, patch_id: int) -> dict[str, Any]:
    """Everything the side panel shows: fields, decisions, reviews, comments, lineage, case."""
    from tuban.workflow.review import latest_decisions, public_fields

    patch = load_patch(session, actor, patch_id, "patch.read")
    dec = latest_decisions(session, patch.id)

    def _dec(d: Decision | None) -> dict[str, Any] | None:
        if d is None:
            return None
        return {"byd": d.byd, "rule_id": d.rule_id, "numbers": d.numbers, "explanation_zh": d.explanation_zh,
                "explanation_en": d.explanation_en, "actor": d.actor, "at": d.at}

    users = dict(session.execute(select(User.id, User.username)).all())
    comments = [{"id": c.id, "user": users.get(c.user_id), "body": c.body, "at": c.created_at}
                for c in session.scalars(select(Comment).where(Comment.patch_id == patch.id).order_by(Comment.id))]
    reviews = [{"id": r.id, "kind": r.kind, "user": users.get(r.user_id), "data": r.data, "at": r.created_at}
               for r in session.scalars(select(Review).where(Review.patch_id == patch.id).order_by(Review.id))]
    lineage = [{"parent_id": a, "child_id": b, "kind": k} for a, b, k in session.execute(
        select(PatchLineage.parent_id, PatchLineage.child_id, PatchLineage.kind)
        .where(or_(PatchLineage.parent_id == patch.id, PatchLineage.child_id == patch.id)))]
    case = session.scalar(select(Case).where(Case.patch_id == patch.id).order_by(Case.id.desc()).limit(1))
    geom = patch.geometry
    return {
        "id": patch.id, "round_id": patch.round_id, "lead_division_code": patch.lead_division_code,
        "fields": public_fields(patch),
        "suspected": _dec(dec["suspected"]), "confirmed": _dec(dec["confirmed"]),
        "detection": patch.detection,
        "reviews": reviews, "comments": comments, "lineage": lineage,
        "case": None if case is None else {"id": case.id, "state": case.state, "deadline": case.deadline},
        "bbox": None if geom is None else [float(v) for v in shapely.bounds(geom)],
        "geometry": None if geom is None else shapely.geometry.mapping(geom),
        "can_edit": actor.allows("patch.edit", (patch.lead_division_code,) if patch.lead_division_code else None),
    }


def patch_history(session: Any, actor: Actor, patch_id: int) -> list[dict[str, Any]]:
    """The audit rows of one patch (and of its cases), oldest first."""
    patch = load_patch(session, actor, patch_id, "patch.read")
    case_ids = [str(c) for c in session.scalars(select(Case.id).where(Case.patch_id == patch.id))]
    cond = (AuditEntry.entity == "patch") & (AuditEntry.entity_id == str(patch.id))
    if case_ids:
        cond = cond | ((AuditEntry.entity == "case") & AuditEntry.entity_id.in_(case_ids))
    rows = session.scalars(select(AuditEntry).where(cond).order_by(AuditEntry.id))
    return [{"id": a.id, "at": a.at, "actor": a.actor, "action": a.action, "entity": a.entity,
             "entity_id": a.entity_id, "before": a.before, "after": a.after} for a in rows]


def round_log(session: Any, actor: Actor, round_id: int, *, offset: int = 0, limit: int = 200) -> dict[str, Any]:
    """The round-level audit log for admins (``audit.read``), limited to their divisions."""
    from tuban.store.permissions import division_prefix

    rnd = load_round(session, actor, round_id, "audit.read")
    conds = [AuditEntry.round_id == rnd.id]
    scope = actor.perms.division_scope("audit.read")
    if scope is not None:
        conds.append(or_(*[AuditEntry.division_code.like(f"{division_prefix(c)}%") for c in scope]))
    total = session.scalar(select(func.count(AuditEntry.id)).where(*conds))
    rows = session.scalars(select(AuditEntry).where(*conds).order_by(AuditEntry.id.desc())
                           .offset(offset).limit(limit))
    return {"total": int(total or 0), "items": [
        {"id": a.id, "at": a.at, "actor": a.actor, "action": a.action, "entity": a.entity,
         "entity_id": a.entity_id, "division_code": a.division_code, "before": a.before, "after": a.after}
        for a in rows]}
