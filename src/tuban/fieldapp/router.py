"""The field sync API (外业同步接口) and the PWA's files, as one FastAPI router.

Routes (every one makes exactly one permission call through :func:`tuban.web.deps.require`;
items outside the user's counties answer 404 like missing ones)::

    GET   /field/…                              the PWA (index, app.js, sw.js, manifest)
    GET   /api/field/me                         who I am, the photo policy, the code lists
    GET   /api/field/tasks[?round_id&summary]   my patches as GeoJSON (+ size estimate)
    GET   /api/field/patches/{patch_id}/chips/{which}.png   before/after image chip
    GET   /api/field/tiles/plan[?round_id&budget_mb]   offline imagery tiles of my tasks, size vs budget
    POST  /api/field/records                    submit a field record (idempotent by client_id; 202 when held)
    GET   /api/field/patches/{patch_id}/records field records of a patch (conflicts included)
    POST  /api/field/records/{review_id}/resolve   settle a hard conflict (audited)
    POST  /api/field/uploads                    start / find a resumable photo upload
    HEAD  /api/field/uploads/{upload_id}        persisted offset (Upload-Offset header)
    GET   /api/field/uploads/{upload_id}        the same as JSON
    PATCH /api/field/uploads/{upload_id}        bytes at Upload-Offset
    GET   /api/field/patches/{patch_id}/photos  photos with their checks, and the photo-set check
    GET   /api/field/photos/{photo_id}[?display=1]   the original (or display copy) bytes

The web app's :func:`~tuban.web.deps.require` resolves ``{patch_id}`` only; the items this
router adds (``{photo_id}``, ``{upload_id}``, ``{review_id}``) are resolved in one place,
:func:`field_item`, which answers 404 for another county's item exactly as for a missing one.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tuban.errors import LimitExceededError, NotFoundError, UsageError
from tuban.fieldapp.services import field_services
from tuban.web.deps import path_int, require
from tuban.workflow.access import Actor

__all__ = ["router"]

router = APIRouter()

#: path parameters of this router that :func:`field_item` resolves (the route walker reads it)
FIELD_ITEM_PARAMS = ("photo_id", "upload_id", "review_id")


def check_field_item(request: Request, actor: Actor, verb: str) -> None:
    """Resolve ``{photo_id}`` / ``{review_id}`` / ``{upload_id}`` and apply *verb* (404 outside scope).

    A photo or a field record is visible when its patch is (``patch.read``); *verb* then
    decides (403 for a visible item the user may not change). An upload is visible to the
    user who started it only.
    """
    from tuban.store.models import Photo, Review
    from tuban.workflow.access import load_patch

    params = request.path_params
    store = request.app.state.store
    if "upload_id" in params:
        field_services(request.app).uploads.owned(actor, str(params["upload_id"]))
        return
    for name, model, kinds in (("photo_id", Photo, None), ("review_id", Review, _RECORD_KINDS)):
        if name not in params:
            continue
        ident = path_int(request, name)
        with store.session() as s:
            item = s.get(model, ident)
            if item is None or (kinds is not None and item.kind not in kinds):
                raise NotFoundError(f"no {name[:-3]} with id {ident}")
            try:
                load_patch(s, actor, item.patch_id, "patch.read")
            except NotFoundError:
                raise NotFoundError(f"no {name[:-3]} with id {ident}") from None
            if verb != "patch.read":
                load_patch(s, actor, item.patch_id, verb)
        return


def field_item(verb: str) -> Any:
    """The permission dependency of a field route: :func:`require` plus :func:`check_field_item`."""
    inner = require(verb)

    def dependency(request: Request, actor: Actor = inner) -> Actor:  # a default: annotations are strings here
        check_field_item(request, actor, verb)
        return actor

    dependency.__name__ = f"field_item_{verb.replace('.', '_')}"
    dependency.verb = verb  # type: ignore[attr-defined]
    return Depends(dependency)

_STATIC = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "map.js": ("map.js", "text/javascript; charset=utf-8"),
    "sw.js": ("sw.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "manifest.webmanifest": ("manifest.webmanifest", "application/manifest+json"),
    "icon.svg": ("icon.svg", "image/svg+xml"),
}
_CHIP_BYTES_ESTIMATE = 60_000
_SERVED_MIME = {"image/jpeg", "image/png", "image/webp"}
_RECORD_KINDS = ("field", "field_dup", "field_held", "field_unperm")
_PATCH_PROPS = ("qdnm", "qtype", "qdcs", "address", "problem", "proposal", "memo", "prnm", "byd", "qarea", "state",
                "version", "round_id", "lead_division_code")


def _static(name: str) -> Response:
    if name not in _STATIC:
        raise NotFoundError(f"no file {name}")
    filename, mime = _STATIC[name]
    body = resources.files("tuban.fieldapp").joinpath("static", filename).read_bytes()
    headers = {"Cache-Control": "no-cache"}
    if filename == "sw.js":
        headers["Service-Worker-Allowed"] = "/"
    return Response(body, media_type=mime, headers=headers)


@router.get("/field", include_in_schema=False)
@router.get("/field/", include_in_schema=False)
def field_index() -> Response:
    return _static("")


@router.get("/field/{name}", include_in_schema=False)
def field_file(name: str) -> Response:
    return _static(name)


@router.get("/api/field/me", tags=["field"], summary="The user, the photo policy and the code lists")
def me(request: Request, actor: Annotated[Actor, require("field.sync")]) -> dict[str, Any]:
    from tuban.codes import codelists

    cl = codelists()
    lists = {name: [{"code": i.code, "zh": i.zh, "en": i.en} for i in cl[name].items]
             for name in ("QTYPE", "QDCS", "REJECT_REASON", "BYD")}
    policy = field_services(request.app).policy
    return {"user_id": actor.user_id, "username": actor.username, "policy": policy.to_dict(), "codelists": lists,
            "codelists_version": cl.version}


def _tasks(request: Request, actor: Actor, round_id: int | None) -> list[Any]:
    from sqlalchemy import select

    from tuban.store.models import Patch, Round
    from tuban.workflow.access import patch_scope_clause

    store = request.app.state.store
    with store.session() as s:
        q = (select(Patch, Round).join(Round, Round.id == Patch.round_id)
             .where(patch_scope_clause(actor, "field.sync", lead_only=True),
                    Patch.state.in_(("issued", "office_reviewed", "field_verified", "returned")))
             .order_by(Patch.id).limit(request.app.state.settings.max_features))
        if round_id is not None:
            q = q.where(Patch.round_id == round_id)
        return list(s.execute(q).all())


@router.get("/api/field/tasks", tags=["field"], summary="My patches to verify, as GeoJSON with a size estimate")
def tasks(request: Request, actor: Annotated[Actor, require("field.sync")], round_id: int | None = None,
          summary: bool = False) -> dict[str, Any]:
    import shapely

    rows = _tasks(request, actor, round_id)
    features = []
    for patch, rnd in rows:
        props = {k: getattr(patch, k) for k in _PATCH_PROPS}
        props.update({"id": patch.id, "round": rnd.name, "field_start": str(rnd.field_start or "") or None,
                      "field_end": str(rnd.field_end or "") or None,
                      "chips": {w: f"/api/field/patches/{patch.id}/chips/{w}.png"
                                for w in ("before", "after") if (rnd.imagery or {}).get(w)}})
        geom = None if patch.geometry is None else shapely.geometry.mapping(patch.geometry)
        features.append({"type": "Feature", "id": patch.id, "geometry": geom, "properties": props})
    body = json.dumps(features, ensure_ascii=False, default=str)
    n_chips = sum(len(f["properties"]["chips"]) for f in features)
    estimate = len(body.encode("utf-8")) + n_chips * _CHIP_BYTES_ESTIMATE
    out: dict[str, Any] = {"count": len(features), "chips": n_chips, "estimate_bytes": estimate}
    if not summary:
        out["type"] = "FeatureCollection"
        out["features"] = features
    return out


@router.get("/api/field/tiles/plan", tags=["field"],
            summary="The imagery tiles of my tasks for offline use: URLs, size estimate, budget (trimmed/refused)")
def tile_plan(request: Request, actor: Annotated[Actor, require("field.sync")], round_id: int | None = None,
              budget_mb: Annotated[float | None, Query(gt=0, le=100_000)] = None) -> dict[str, Any]:
    from tuban.fieldapp.offline import tile_url, user_tile_plan

    services = field_services(request.app)
    rows = _tasks(request, actor, round_id)
    budget = None if budget_mb is None else int(budget_mb * 1024 * 1024)
    plan = user_tile_plan(rows, settings=services.offline, renderer=request.app.state.tiles, probe=services.probe,
                          budget_bytes=budget)
    return {**plan.to_dict(url=tile_url), "server_budget_bytes": services.offline.budget_bytes}


@router.get("/api/field/patches/{patch_id}/chips/{which}.png", tags=["field"], response_class=Response,
            summary="A before/after image chip around the patch")
def chip(request: Request, patch_id: int, which: str, actor: Annotated[Actor, require("patch.read")]) -> Response:
    from rio_tiler.io import Reader

    from tuban.store.models import Patch, Round

    if which not in ("before", "after"):
        raise NotFoundError(f"no chip {which}")
    with request.app.state.store.session() as s:
        patch = s.get(Patch, patch_id)
        rnd = s.get(Round, patch.round_id) if patch is not None else None
        path = (rnd.imagery or {}).get(which) if rnd is not None else None
        geom = patch.geometry if patch is not None else None
    if not path or geom is None:
        raise NotFoundError(f"no {which} imagery for patch {patch_id}")
    minx, miny, maxx, maxy = geom.bounds
    pad = max(maxx - minx, maxy - miny) * 0.5 + 1e-4
    with Reader(path) as src:
        img = src.part((minx - pad, miny - pad, maxx + pad, maxy + pad), bounds_crs=src.geographic_crs,
                       max_size=256)
    if img.count >= 3:
        img = img.__class__(array=img.array[:3], assets=img.assets, crs=img.crs, bounds=img.bounds)
    png = img.render(img_format="PNG")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


@router.post("/api/field/records", tags=["field"], summary="Submit a field record (idempotent by client_id)")
def post_record(request: Request, body: Annotated[dict[str, Any], Body()],
                actor: Annotated[Actor, require("field.sync")]) -> JSONResponse:
    from tuban.field.sync import submit_record

    result = submit_record(request.app.state.store, actor, body, policy=field_services(request.app).policy)
    status = 202 if result.held else 201 if result.created else 200
    return JSONResponse(result.to_dict(), status_code=status)


@router.get("/api/field/patches/{patch_id}/records", tags=["field"], summary="Field records of a patch")
def patch_records(request: Request, patch_id: int, actor: Annotated[Actor, require("patch.read")]) -> dict[str, Any]:
    from sqlalchemy import select

    from tuban.field.sync import record_to_dict
    from tuban.store.models import Patch, Review, User

    with request.app.state.store.session() as s:
        rows = s.execute(select(Review, User.username).outerjoin(User, User.id == Review.user_id)
                         .where(Review.patch_id == patch_id, Review.kind.in_(_RECORD_KINDS))
                         .order_by(Review.id)).all()
        records = [{**record_to_dict(r), "user": name} for r, name in rows]
        version = s.scalar(select(Patch.version).where(Patch.id == patch_id))
    return {"patch_id": patch_id, "patch_version": version, "records": records}


@router.post("/api/field/records/{review_id}/resolve", tags=["field"], summary="Settle a hard conflict")
def resolve(request: Request, review_id: int, body: Annotated[dict[str, Any], Body()],
            actor: Annotated[Actor, field_item("patch.edit")]) -> dict[str, Any]:
    from tuban.field.sync import resolve_conflict

    choices = body.get("choices")
    version = body.get("based_on_version")
    if not isinstance(choices, dict) or not isinstance(version, int):
        raise UsageError("send {\"choices\": {FIELD: \"server\"|\"device\"}, \"based_on_version\": N}")
    return resolve_conflict(request.app.state.store, actor, review_id, choices, based_on_version=version)


def _storage_problem(exc: Any) -> JSONResponse:
    """507 (disk full) or 503 (I/O error) with a problem body and Retry-After: never a 2xx."""
    from tuban.web.problems import problem_for

    _, body = problem_for(exc)
    body["status"] = exc.status
    return JSONResponse(body, status_code=exc.status, media_type="application/problem+json",
                        headers={"Retry-After": "30"})


def _upload_headers(state: Any) -> dict[str, str]:
    headers = {"Upload-Offset": str(state.offset), "Upload-Length": str(state.length), "Tus-Resumable": "1.0.0"}
    if state.photo_id is not None:
        headers["Tuban-Photo-Id"] = str(state.photo_id)
    return headers


@router.post("/api/field/uploads", tags=["field"], summary="Start (or find again) a resumable photo upload")
def create_upload(request: Request, body: Annotated[dict[str, Any], Body()],
                  actor: Annotated[Actor, require("photo.upload")]) -> JSONResponse:
    from tuban.field.uploads import StorageUnavailableError

    try:
        state = field_services(request.app).uploads.create(actor, body)
    except StorageUnavailableError as exc:
        return _storage_problem(exc)
    return JSONResponse(state.to_dict(), status_code=201, headers={
        **_upload_headers(state), "Location": f"/api/field/uploads/{state.id}"})


@router.head("/api/field/uploads/{upload_id}", tags=["field"], summary="The persisted offset")
def head_upload(request: Request, upload_id: str, actor: Annotated[Actor, field_item("photo.upload")]) -> Response:
    from tuban.field.uploads import StorageUnavailableError

    try:
        state = field_services(request.app).uploads.status(actor, upload_id)
    except StorageUnavailableError as exc:
        return _storage_problem(exc)
    return Response(status_code=200, headers={**_upload_headers(state), "Cache-Control": "no-store"})


@router.get("/api/field/uploads/{upload_id}", tags=["field"], summary="The upload's state as JSON")
def get_upload(request: Request, upload_id: str, actor: Annotated[Actor, field_item("photo.upload")]) -> JSONResponse:
    from tuban.field.uploads import StorageUnavailableError

    try:
        state = field_services(request.app).uploads.status(actor, upload_id)
    except StorageUnavailableError as exc:
        return _storage_problem(exc)
    return JSONResponse(state.to_dict(), headers=_upload_headers(state))


@router.patch("/api/field/uploads/{upload_id}", tags=["field"], summary="Append bytes at Upload-Offset")
async def patch_upload(request: Request, upload_id: str,
                       upload_offset: Annotated[int, Header(alias="Upload-Offset", ge=0)],
                       actor: Annotated[Actor, field_item("photo.upload")]) -> JSONResponse:
    from tuban.field.uploads import MAX_CHUNK, StorageUnavailableError

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CHUNK:
        raise LimitExceededError(f"chunk of {declared} bytes; the limit is {MAX_CHUNK}")
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("application/offset+octet-stream"):
        raise UsageError("send chunks as Content-Type: application/offset+octet-stream")
    chunks, total = [], 0
    async for part in request.stream():
        total += len(part)
        if total > MAX_CHUNK:
            raise LimitExceededError(f"chunk larger than {MAX_CHUNK} bytes")
        chunks.append(part)
    manager = field_services(request.app).uploads
    try:
        state = await run_in_threadpool(manager.append, actor, upload_id, upload_offset, b"".join(chunks))
    except StorageUnavailableError as exc:
        return _storage_problem(exc)
    return JSONResponse(state.to_dict(), headers=_upload_headers(state))


@router.get("/api/field/patches/{patch_id}/photos", tags=["field"], summary="Photos of a patch with their checks")
def patch_photos(request: Request, patch_id: int, actor: Annotated[Actor, require("photo.read")]) -> dict[str, Any]:
    from sqlalchemy import select

    from tuban.field.checks import check_photo_set
    from tuban.field.uploads import photo_to_dict
    from tuban.store.models import Photo, User

    policy = field_services(request.app).policy
    with request.app.state.store.session() as s:
        rows = s.execute(select(Photo, User.username).outerjoin(User, User.id == Photo.user_id)
                         .where(Photo.patch_id == patch_id).order_by(Photo.id)).all()
        items = [{**photo_to_dict(p), "user": name} for p, name in rows]
    photo_set = check_photo_set([p["kind"] for p in items], policy=policy)
    return {"patch_id": patch_id, "photos": items, "photo_set": photo_set.to_dict(),
            "camera": {"fov_deg": policy.camera_fov_deg, "view_range_m": policy.view_range_m,
                       "max_distance_m": policy.max_distance_m}}


@router.get("/api/field/photos/{photo_id}", tags=["field"], response_class=Response,
            summary="A photo's original bytes (or ?display=1 for the small copy)")
def photo_bytes(request: Request, photo_id: int, actor: Annotated[Actor, field_item("photo.read")],
                display: Annotated[bool, Query()] = False) -> Response:
    from tuban.store.models import Photo

    services = field_services(request.app)
    with request.app.state.store.session() as s:  # the permission was checked by field_item
        photo = s.get(Photo, photo_id)
        if photo is None:
            raise NotFoundError(f"no photo {photo_id}")
        small = ((photo.exif or {}).get("display") or {}).get("sha256") if display else None
        # until the display copy is made (after the acknowledgement) the original is served
        sha = small or photo.sha256
        mime = "image/jpeg" if small else photo.mime
    if not sha or mime not in _SERVED_MIME:
        raise NotFoundError(f"no photo {photo_id}")
    with services.blobs.open(sha) as fh:
        data = fh.read()
    ext = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}[mime]
    return Response(data, media_type=mime, headers={
        "Content-Disposition": f'inline; filename="photo-{photo_id}.{ext}"', "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"})
