"""The JSON API the pages use (the public API, documented at /api/docs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tuban.web.deps import require
from tuban.workflow import queries, reporting, review, rounds
from tuban.workflow.access import Actor
from tuban.workflow.service import perform

router = APIRouter(prefix="/api", tags=["api"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoundCreate(Strict):
    name: str = Field(min_length=1, max_length=64)
    period: str | None = Field(default=None, max_length=16)
    features: dict[str, Any] | None = Field(default=None, description="GeoJSON FeatureCollection of patches "
                                            "with official fields (EPSG:4490)")


class IssueBody(Strict):
    due_date: dt.date
    due_dates: dict[str, dt.date] = Field(default_factory=dict)


class FieldsEdit(Strict):
    based_on_version: int
    fields: dict[str, str | None]


class ReviewBody(Strict):
    based_on_version: int
    byd: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=1000)
    client_id: str | None = Field(default=None, max_length=64)


class RejectBody(Strict):
    based_on_version: int
    reason: str = Field(max_length=32)
    note: str = Field(default="", max_length=1000)


class DetermineBody(Strict):
    based_on_version: int
    byd: str = Field(max_length=64)
    note: str = Field(default="", max_length=1000)


class VersionBody(Strict):
    based_on_version: int
    note: str = Field(default="", max_length=1000)


class LinkBody(Strict):
    based_on_version: int
    project_id: int | None


class CommentBody(Strict):
    body: str = Field(min_length=1, max_length=4000)


class SplitBody(Strict):
    based_on_version: int
    parts: list[dict[str, Any]] | None = Field(default=None, min_length=2, max_length=50,
                                               description="GeoJSON polygons inside the patch")
    line: dict[str, Any] | None = Field(default=None, description="or a GeoJSON LineString drawn across the patch")


class MergeBody(Strict):
    patches: dict[int, int] = Field(description="patch id → the version you merged")


class ProvinceBody(Strict):
    comment: str = Field(default="", max_length=1000)


def _store(request: Request) -> Any:
    return request.app.state.store


def _bbox(text: str) -> list[float]:
    from tuban.errors import UsageError

    parts = text.split(",")
    if len(parts) != 4:
        raise UsageError(f"bbox must be minx,miny,maxx,maxy, got {text!r}")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"bbox must be 4 numbers, got {text!r}") from None


def _geometry(obj: dict[str, Any]) -> Any:
    import shapely

    from tuban.errors import GeometryError

    try:
        geom = shapely.geometry.shape(obj)
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.GEOSException) as exc:
        raise GeometryError(f"not a GeoJSON geometry: {exc}") from None
    if not shapely.is_valid(geom) or geom.is_empty or shapely.get_num_coordinates(geom) > 100_000:
        raise GeometryError("geometry is empty, invalid or has more than 100,000 vertices")
    if not all(map(lambda v: v == v and abs(v) != float("inf"), shapely.bounds(geom))):
        raise GeometryError("geometry has NaN or infinite coordinates")
    return geom


@router.get("/me", summary="The logged-in user and their rights")
def me(request: Request, actor: Annotated[Actor, require("round.read")]) -> dict[str, Any]:
    verbs: dict[str, list[str] | None] = {}
    for v in sorted(actor.perms.verbs):
        scope = actor.perms.division_scope(v)
        verbs[v] = None if scope is None else sorted(scope)
    return {"user_id": actor.user_id, "username": actor.username, "verbs": verbs}


@router.get("/codelists", summary="Code lists for the official fields")
def code_lists(request: Request, actor: Annotated[Actor, require("patch.read")]) -> dict[str, Any]:
    from tuban.codes import codelists

    cl = codelists()
    return {"version": cl.version, "lists": {name: [{"code": i.code, "zh": i.zh, "en": i.en} for i in lst.items]
                                             for name, lst in cl.lists.items()}}


# -- rounds -----------------------------------------------------------------------------------


@router.get("/rounds", summary="Rounds visible to you")
def list_rounds(request: Request, actor: Annotated[Actor, require("round.read")]) -> list[dict[str, Any]]:
    with _store(request).session() as s:
        return rounds.list_rounds(s, actor)


@router.post("/rounds", status_code=201, summary="Create a round (optionally with its patches as GeoJSON)")
def create_round(request: Request, body: RoundCreate, actor: Annotated[Actor, require("round.create")]) -> dict[str, Any]:
    gdf = None
    if body.features:
        import geopandas as gpd

        from tuban.errors import InputError

        try:
            gdf = gpd.GeoDataFrame.from_features(body.features, crs="EPSG:4490")
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise InputError(f"features are not a GeoJSON FeatureCollection: {exc}") from None
        if len(gdf) > request.app.state.settings.max_upload_features:
            from tuban.errors import LimitExceededError

            raise LimitExceededError(f"{len(gdf)} features; the limit for an upload is "
                                     f"{request.app.state.settings.max_upload_features}",
                                     hint="import large rounds with `tuban import`")
    rnd, count = perform(_store(request), actor, rounds.create_round_with_patches, body.name, gdf,
                         period=body.period, source="upload")
    return {"id": rnd.id, "name": rnd.name, "patches": count}


@router.get("/rounds/{round_id}/dashboard", summary="Counts by state, compliance and county; tasks; progress")
def dashboard(request: Request, round_id: int, actor: Annotated[Actor, require("round.read")]) -> dict[str, Any]:
    with _store(request).session() as s:
        return rounds.dashboard(s, actor, round_id)


@router.post("/rounds/{round_id}/issue", summary="Issue the round's patches to counties as tasks (下发)")
def issue(request: Request, round_id: int, body: IssueBody, actor: Annotated[Actor, require("task.issue")]) -> dict[str, Any]:
    tasks = perform(_store(request), actor, rounds.issue_round, round_id, due_date=body.due_date,
                    due_dates=body.due_dates)
    return {"tasks": [{"id": t.id, "division_code": t.division_code, "due_date": t.due_date} for t in tasks]}


@router.get("/rounds/{round_id}/patches", summary="Patch list: filters, sort, search, paging")
def list_patches(
    request: Request,
    round_id: int,
    actor: Annotated[Actor, require("patch.read")],
    state: str | None = None,
    byd: str | None = None,
    county: str | None = Query(default=None, max_length=12),
    q: str | None = Query(default=None, max_length=100),
    sort: str = "qdnm",
    order: Literal["asc", "desc"] = "asc",
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=50, ge=1, le=500),
    bbox: str | None = None,
) -> dict[str, Any]:
    with _store(request).session() as s:
        return queries.list_patches(s, actor, round_id, state=state, byd=byd, county=county, q=q, sort=sort,
                                    descending=order == "desc", offset=offset, limit=limit,
                                    bbox=_bbox(bbox) if bbox else None)


@router.get("/rounds/{round_id}/features", summary="Patches in a bbox as GeoJSON (the map's patch layer)")
def features(request: Request, round_id: int, bbox: str, actor: Annotated[Actor, require("patch.read")],
             simplify: float | None = Query(default=None, ge=0, le=0.01),
             zoom: float | None = Query(default=None, ge=0, le=24, description="the map's zoom: below 13 the "
                                        "outlines are the stored overview (simplified by 1e-4 degree)")) -> Any:
    from fastapi.responses import Response

    limit = request.app.state.settings.max_features
    with _store(request).session() as s:
        body = queries.features_in_bbox_json(s, actor, round_id, _bbox(bbox), limit=limit, simplify=simplify,
                                             zoom=zoom)
    return Response(body, media_type="application/geo+json")


@router.get("/rounds/{round_id}/scopes", summary="Project scopes in a bbox with project labels")
def scopes(request: Request, round_id: int, bbox: str, actor: Annotated[Actor, require("patch.read")]) -> dict[str, Any]:
    with _store(request).session() as s:
        return queries.scopes_in_bbox(s, _bbox(bbox))


@router.get("/rounds/{round_id}/log", summary="Round-level audit log (admins)")
def round_log(request: Request, round_id: int, actor: Annotated[Actor, require("audit.read")],
              offset: int = Query(default=0, ge=0), limit: int = Query(default=200, ge=1, le=1000)) -> dict[str, Any]:
    with _store(request).session() as s:
        return queries.round_log(s, actor, round_id, offset=offset, limit=limit)


@router.post("/tasks/{task_id}/submit", summary="Submit a county's results to the province (上报)")
def submit(request: Request, task_id: int, actor: Annotated[Actor, require("round.submit")]) -> dict[str, Any]:
    task = perform(_store(request), actor, reporting.submit_task, task_id)
    return {"id": task.id, "status": task.status}


# -- patches ----------------------------------------------------------------------------------


@router.get("/patches/{patch_id}", summary="One patch: fields, decisions, reviews, comments, lineage")
def get_patch(request: Request, patch_id: int, actor: Annotated[Actor, require("patch.read")]) -> dict[str, Any]:
    with _store(request).session() as s:
        return queries.patch_detail(s, actor, patch_id)


@router.get("/patches/{patch_id}/history", summary="The patch's audit history")
def history(request: Request, patch_id: int, actor: Annotated[Actor, require("patch.read")]) -> list[dict[str, Any]]:
    with _store(request).session() as s:
        return queries.patch_history(s, actor, patch_id)


def _detail(request: Request, actor: Actor, patch_id: int) -> dict[str, Any]:
    with _store(request).session() as s:
        return queries.patch_detail(s, actor, patch_id)


@router.patch("/patches/{patch_id}", summary="Edit official fields (stale version → 409 with both versions)")
def edit(request: Request, patch_id: int, body: FieldsEdit, actor: Annotated[Actor, require("patch.edit")]) -> dict[str, Any]:
    perform(_store(request), actor, review.edit_fields, patch_id, body.fields,
            based_on_version=body.based_on_version)
    return _detail(request, actor, patch_id)


@router.post("/patches/{patch_id}/review", summary="Record the office review decision (内业复核结论)")
def office_review(request: Request, patch_id: int, body: ReviewBody,
                  actor: Annotated[Actor, require("patch.review")]) -> dict[str, Any]:
    perform(_store(request), actor, review.record_office_review, patch_id, byd=body.byd, note=body.note,
            based_on_version=body.based_on_version, client_id=body.client_id)
    return _detail(request, actor, patch_id)


@router.post("/patches/{patch_id}/reject", summary="Reject as not a disturbance, with a reason (误提)")
def reject(request: Request, patch_id: int, body: RejectBody, actor: Annotated[Actor, require("patch.reject")]) -> dict[str, Any]:
    perform(_store(request), actor, review.reject_patch, patch_id, reason=body.reason, note=body.note,
            based_on_version=body.based_on_version)
    return _detail(request, actor, patch_id)


@router.post("/patches/{patch_id}/determine", summary="Determine compliance (认定); a violation opens a case")
def determine(request: Request, patch_id: int, body: DetermineBody,
              actor: Annotated[Actor, require("patch.determine")]) -> dict[str, Any]:
    perform(_store(request), actor, reporting.determine, patch_id, byd=body.byd, note=body.note,
            based_on_version=body.based_on_version)
    return _detail(request, actor, patch_id)


@router.post("/patches/{patch_id}/reopen", summary="Back to office review (before submission)")
def reopen(request: Request, patch_id: int, body: VersionBody,
           actor: Annotated[Actor, require("patch.determine")]) -> dict[str, Any]:
    perform(_store(request), actor, reporting.reopen, patch_id, based_on_version=body.based_on_version,
            note=body.note)
    return _detail(request, actor, patch_id)


@router.put("/patches/{patch_id}/project", summary="Link a project (project_id) or unlink (null)")
def link(request: Request, patch_id: int, body: LinkBody, actor: Annotated[Actor, require("patch.edit")]) -> dict[str, Any]:
    perform(_store(request), actor, review.link_project, patch_id, body.project_id,
            based_on_version=body.based_on_version)
    return _detail(request, actor, patch_id)


@router.post("/patches/{patch_id}/comments", status_code=201, summary="Add a comment")
def comment(request: Request, patch_id: int, body: CommentBody,
            actor: Annotated[Actor, require("patch.review")]) -> dict[str, Any]:
    c = perform(_store(request), actor, review.add_comment, patch_id, body.body)
    return {"id": c.id, "body": c.body}


@router.post("/patches/{patch_id}/split", status_code=201,
             summary="Split a patch into parts, or along a line drawn across it (lineage kept)")
def split(request: Request, patch_id: int, body: SplitBody,
          actor: Annotated[Actor, require("patch.split_merge")]) -> dict[str, Any]:
    from tuban.errors import UsageError

    if (body.parts is None) == (body.line is None):
        raise UsageError("give either parts (polygons) or a line, not both or neither")
    if body.line is not None:
        children = perform(_store(request), actor, review.split_by_line, patch_id, _geometry(body.line),
                           based_on_version=body.based_on_version)
    else:
        parts = [_geometry(p) for p in body.parts or []]
        children = perform(_store(request), actor, review.split_patch, patch_id, parts,
                           based_on_version=body.based_on_version)
    return {"children": [{"id": c.id, "qdnm": c.qdnm} for c in children]}


@router.post("/patches/merge", status_code=201, summary="Merge patches of one county (lineage kept)")
def merge(request: Request, body: MergeBody, actor: Annotated[Actor, require("patch.split_merge")]) -> dict[str, Any]:
    merged = perform(_store(request), actor, review.merge_patches, body.patches)
    return {"id": merged.id, "qdnm": merged.qdnm}


@router.post("/patches/{patch_id}/accept", summary="Province accepts a reported patch (验收)")
def accept(request: Request, patch_id: int, body: ProvinceBody,
           actor: Annotated[Actor, require("round.accept")]) -> dict[str, Any]:
    perform(_store(request), actor, reporting.accept_patches, [patch_id], comment=body.comment)
    return _detail(request, actor, patch_id)


@router.post("/patches/{patch_id}/return", summary="Province returns a patch for rework (退回)")
def return_patch(request: Request, patch_id: int, body: ProvinceBody,
                 actor: Annotated[Actor, require("round.accept")]) -> dict[str, Any]:
    perform(_store(request), actor, reporting.return_patches, [patch_id], comment=body.comment)
    return _detail(request, actor, patch_id)
