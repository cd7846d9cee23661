"""For every route: one persona allowed and one denied (style.md habit 12).

A route missing from :data:`CASES` (or :data:`PUBLIC`) fails ``test_every_route_has_cases``.
"""

from __future__ import annotations

import pytest

from tuban.workflow import reporting
from tuban.workflow.service import perform

# rasterio/rio-tiler still multiply Affine with `*` (affine 3.x warns; not our code)
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")

PUBLIC = {
    ("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/lang/{code}"),
    ("GET", "/healthz"), ("POST", "/api/session"), ("GET", "/api/openapi.json"), ("GET", "/api/docs"),
    ("GET", "/docs/oauth2-redirect"),
}

# (method, path): (allowed persona, denied persona, denied status, url params, body)
CASES: dict[tuple[str, str], tuple[str, str, int, dict, dict | None]] = {
    ("GET", "/api/me"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/api/codelists"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/api/rounds"): ("viewer", "anonymous", 401, {}, None),
    ("POST", "/api/rounds"): ("p_admin", "a_admin", 403, {}, {"name": "2025-1"}),
    ("POST", "/api/rounds/import"): ("p_admin", "a_admin", 403, {}, "upload"),
    ("POST", "/api/rounds/{round_id}/analyse"): ("p_admin", "a_admin", 403, {}, {"previous_round": None}),
    ("PUT", "/api/rounds/{round_id}/imagery"): ("p_admin", "a_admin", 403, {}, "imagery"),
    ("GET", "/api/detection-runs"): ("p_admin", "a_staff", 403, {}, None),
    ("GET", "/api/imagery"): ("p_admin", "a_admin", 403, {}, None),
    ("GET", "/api/detection-jobs"): ("p_admin", "a_staff", 403, {}, None),
    ("GET", "/api/detection-jobs/{job_id}"): ("p_admin", "a_staff", 403, {}, None),
    ("POST", "/api/detection-jobs"): ("p_admin", "a_admin", 403, {},
                                      {"output": "persona-run", "before": "before.tif", "after": "after.tif"}),
    ("POST", "/api/detection-jobs/{job_id}/cancel"): ("p_admin", "a_admin", 403, {}, None),
    ("POST", "/api/detection-jobs/{job_id}/priority"): ("p_admin", "a_admin", 403, {}, {"priority": 5}),
    ("POST", "/api/imagery-jobs"): ("p_admin", "a_admin", 403, {}, {"output": "persona-image", "scene": "round/before.tif"}),
    ("GET", "/api/rounds/{round_id}/dashboard"): ("a_staff", "anonymous", 401, {}, None),
    ("POST", "/api/rounds/{round_id}/issue"): ("p_admin", "a_admin", 403, {}, {"due_date": "2024-11-30"}),
    ("GET", "/api/rounds/{round_id}/patches"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/api/rounds/{round_id}/features"): ("viewer", "anonymous", 401, {"bbox": "113,35,114,36"}, None),
    ("GET", "/api/rounds/{round_id}/scopes"): ("viewer", "anonymous", 401, {"bbox": "113,35,114,36"}, None),
    ("GET", "/api/rounds/{round_id}/log"): ("a_admin", "a_staff", 403, {}, None),
    ("POST", "/api/tasks/{task_id}/submit"): ("a_admin", "a_staff", 403, {}, None),
    ("GET", "/api/patches/{patch_id}"): ("viewer", "b_staff", 404, {}, None),
    ("GET", "/api/patches/{patch_id}/history"): ("viewer", "b_staff", 404, {}, None),
    ("PATCH", "/api/patches/{patch_id}"): ("a_staff", "viewer", 403, {}, {"fields": {"MEMO": "x"}}),
    ("POST", "/api/patches/{patch_id}/review"): ("a_staff", "viewer", 403, {}, {}),
    ("POST", "/api/patches/{patch_id}/reject"): ("a_staff", "viewer", 403, {}, {"reason": "farming"}),
    ("POST", "/api/patches/{patch_id}/determine"): ("a_admin", "a_staff", 403, {}, {"byd": "合规"}),
    ("POST", "/api/patches/{patch_id}/reopen"): ("a_admin", "a_staff", 403, {}, {}),
    ("PUT", "/api/patches/{patch_id}/project"): ("a_staff", "viewer", 403, {}, {"project_id": None}),
    ("POST", "/api/patches/{patch_id}/comments"): ("a_staff", "viewer", 403, {}, {"body": "意见"}),
    ("POST", "/api/patches/{patch_id}/split"): ("a_staff", "viewer", 403, {}, "split"),
    ("POST", "/api/patches/merge"): ("a_staff", "viewer", 403, {}, "merge"),
    ("POST", "/api/patches/{patch_id}/accept"): ("p_admin", "a_admin", 403, {}, {"comment": "同意"}),
    ("POST", "/api/patches/{patch_id}/return"): ("p_admin", "a_admin", 403, {}, {"comment": "补充"}),
    ("GET", "/api/cases"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/api/cases/{case_id}"): ("viewer", "b_staff", 404, {}, None),
    ("POST", "/api/cases/{case_id}/advance"): ("a_admin", "a_staff", 403, {}, {"to": "closed"}),
    ("GET", "/api/users"): ("a_admin", "a_staff", 403, {}, None),
    ("PUT", "/api/users/{user_id}/roles"): ("a_admin", "b_staff", 404, {}, {"roles": [["viewer", "410811"]]}),
    ("PUT", "/api/users/{user_id}/active"): ("a_admin", "a_staff", 404, {}, {"active": True}),
    ("GET", "/rounds/{round_id}/tiles/{which}/{z}/{x}/{y}.png"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/rounds/{round_id}/tiles/{which}/{z}/{x}/{y}"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/rounds"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/rounds/{round_id}"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/rounds/{round_id}/review"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/patches/{patch_id}"): ("viewer", "b_staff", 404, {}, None),
    ("GET", "/cases"): ("viewer", "anonymous", 401, {}, None),
    ("GET", "/account/password"): ("viewer", "anonymous", 401, {}, None),
    ("POST", "/account/password"): ("viewer", "anonymous", 401, {}, "password"),
}

#: the patch each write route acts on, put in a state where the action is allowed
PATCH_FOR = {"/reopen": "A-1", "/accept": "A-1", "/return": "A-1"}


def test_every_route_has_cases(routes) -> None:
    # the field app's routes (/field, /api/field) are tested by tests/field
    have = {(m, p) for m, p, _ in routes if not p.startswith(("/static", "/field", "/api/field"))}
    missing = have - set(CASES) - PUBLIC
    assert not missing, f"routes without persona cases: {sorted(missing)}"
    assert not (set(CASES) - have), f"cases for routes that do not exist: {sorted(set(CASES) - have)}"


def _prepare(world, method: str, path: str) -> dict:
    """Ids, and state so the allowed persona's call can succeed."""
    from sqlalchemy import select

    from tuban.store.models import Case, Task

    store = world.store
    p_admin = world.actor("p_admin")
    pid = world.patches["A-1"]
    ids = {"round_id": world.round_id, "patch_id": pid, "which": "after", "z": 14, "x": 13346, "y": 6506,
           "user_id": world.users["viewer"]}
    if path.endswith(("/reopen", "/accept", "/return")) or "/cases/" in path or path in ("/api/cases", "/cases"):
        perform(store, p_admin, reporting.determine, pid, byd="未批先建", based_on_version=world.version("A-1"))
    if path.endswith(("/accept", "/return")):
        with store.session() as s:
            task_id = s.scalar(select(Task.id).where(Task.division_code == "410811"))
        for q in ("A-2", "A-3", "X-AB"):
            perform(store, p_admin, reporting.determine, world.patches[q], byd="合规",
                    based_on_version=world.version(q))
        perform(store, p_admin, reporting.submit_task, task_id)
    if path.endswith("/analyse"):
        import geopandas as gpd
        import shapely

        store.import_divisions(gpd.GeoDataFrame({"XZQDM": ["410811"], "XZQMC": ["山阳区"]},
                                                geometry=[shapely.box(113.0, 35.0, 113.5, 35.5)], crs="EPSG:4490"),
                               actor="p_admin")
    if path.endswith("/submit"):
        for q in ("A-1", "A-2", "A-3", "X-AB"):
            perform(store, p_admin, reporting.determine, world.patches[q], byd="合规",
                    based_on_version=world.version(q))
    if "{job_id}" in path:
        from tuban.store.models import DetectionJob

        with store.transaction(actor="p_admin") as tx:
            job = DetectionJob(state="queued", output="persona.gpkg", params={}, attempts=0, max_attempts=3,
                               cancel_requested=False, created_by="p_admin")
            tx.session.add(job)
            tx.session.flush()
            ids["job_id"] = job.id
    with store.session() as s:
        ids["task_id"] = s.scalar(select(Task.id).where(Task.division_code == "410811"))
        ids["case_id"] = s.scalar(select(Case.id))
    return ids


def _body(world, spec, pid: int):
    import shapely

    from tuban.store.models import Patch

    if spec is None:
        return None
    if spec == "split":
        with world.store.session() as s:
            minx, miny, maxx, maxy = s.get(Patch, pid).geometry.bounds
        mid = (minx + maxx) / 2
        return {"based_on_version": world.version("A-1"),
                "parts": [shapely.geometry.mapping(shapely.box(minx, miny, mid, maxy)),
                          shapely.geometry.mapping(shapely.box(mid, miny, maxx, maxy))]}
    if spec == "merge":
        return {"patches": {str(world.patches["A-1"]): world.version("A-1"),
                            str(world.patches["A-2"]): world.version("A-2")}}
    if spec == "password":
        return "form"
    if spec == "upload":
        return "upload"
    if spec == "imagery":  # the world's imagery, copied into the app's imagery folder (tests/web/conftest.py)
        return {"before": "round/before.tif", "after": "round/after.tif"}
    body = dict(spec)
    if "fields" in body or body.keys() & {"reason", "byd", "project_id"} or body == {}:
        body.setdefault("based_on_version", world.version("A-1"))
    return body


def _call(c, method: str, url: str, body, username: str):
    headers = {"Accept": "application/json"}
    if body == "upload":
        fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"QDNM": "U-1"},
              "geometry": {"type": "Polygon", "coordinates": [[[113.2, 35.2], [113.21, 35.2], [113.21, 35.21],
                                                              [113.2, 35.2]]]}}]}
        import json

        return c.request(method, url, headers=headers, data={"name": "2025-U", "analyse": "false"},
                         files={"file": ("p.geojson", json.dumps(fc).encode(), "application/geo+json")})
    if body == "form":
        return c.request(method, url, data={"old_password": f"password-{username}",
                                            "new_password": "another-long-password"}, headers=headers)
    return c.request(method, url, json=body, headers=headers)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), sorted(CASES), ids=[f"{m} {p}" for m, p in sorted(CASES)])
def test_allowed_and_denied(method: str, path: str, client_for, world) -> None:
    allowed, denied, status, params, spec = CASES[(method, path)]
    ids = _prepare(world, method, path)
    url = path
    for k, v in ids.items():
        url = url.replace("{" + k + "}", str(v))
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    if spec == {} and path.endswith("/review"):
        spec = {}
    # denied first (it must change nothing), then allowed
    d = client_for(None if denied == "anonymous" else denied)
    body = _body(world, spec, ids["patch_id"])
    r = _call(d, method, url, body, denied)
    assert r.status_code == status, f"{denied}: {r.status_code} {r.text[:200]}"
    a = client_for(allowed)
    body = _body(world, spec, ids["patch_id"])
    r = _call(a, method, url, body, allowed)
    ok = (200, 201, 303) if body == "form" or path == "/patches/{patch_id}" else (200, 201)
    assert r.status_code in ok, f"{allowed}: {r.status_code} {r.text[:300]}"
    if path.endswith(".png"):
        assert r.headers["content-type"] == "image/png"


def test_tiles_render_imagery_and_blank_outside(client_for, world) -> None:
    import io

    import morecantile
    import numpy as np
    from PIL import Image

    tile = morecantile.tms.get("WebMercatorQuad").tile(113.205, 35.205, 15)
    a = client_for("a_staff")
    pngs = {}
    for which in ("before", "after"):
        r = a.get(f"/rounds/{world.round_id}/tiles/{which}/{tile.z}/{tile.x}/{tile.y}.png")
        assert r.status_code == 200
        img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
        assert img.shape == (256, 256, 4)
        assert (img[..., 3] > 0).mean() > 0.9  # covered by imagery
        pngs[which] = img
    assert not np.array_equal(pngs["before"], pngs["after"])
    far = a.get(f"/rounds/{world.round_id}/tiles/after/10/0/0.png")
    assert far.status_code == 200
    assert (np.asarray(Image.open(io.BytesIO(far.content)).convert("RGBA"))[..., 3] == 0).all()
    assert a.get(f"/rounds/{world.round_id}/tiles/after/3/99/0.png").status_code == 422
    assert a.get(f"/rounds/{world.round_id}/tiles/sideways/3/1/1.png").status_code == 422


def test_map_tiles_are_jpeg_inside_png_at_the_edge_and_revalidate(client_for, world) -> None:
    import io

    import morecantile
    import numpy as np
    from PIL import Image

    a = client_for("a_staff")
    tms = morecantile.tms.get("WebMercatorQuad")
    inside = tms.tile(113.205, 35.205, 15)
    r = a.get(f"/rounds/{world.round_id}/tiles/after/{inside.z}/{inside.x}/{inside.y}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    jpeg = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), dtype=float)
    png = np.asarray(Image.open(io.BytesIO(
        a.get(f"/rounds/{world.round_id}/tiles/after/{inside.z}/{inside.x}/{inside.y}.png").content)).convert("RGB"),
        dtype=float)
    assert jpeg.shape == png.shape == (256, 256, 3)
    # the same picture, lossy: colours kept on average, pixels strongly correlated
    assert np.abs(jpeg.mean(axis=(0, 1)) - png.mean(axis=(0, 1))).max() < 3
    assert np.corrcoef(jpeg.ravel(), png.ravel())[0, 1] > 0.8
    etag = r.headers["etag"]
    again = a.get(f"/rounds/{world.round_id}/tiles/after/{inside.z}/{inside.x}/{inside.y}",
                  headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    # a tile over the imagery's edge keeps its transparency
    with world.store.session() as s:
        from tuban.store.models import Round

        path = s.get(Round, world.round_id).imagery["after"]
    import rasterio

    with rasterio.open(path) as src:
        left, bottom, _, top = src.bounds
    edge = tms.tile(left, (bottom + top) / 2, 15)
    r = a.get(f"/rounds/{world.round_id}/tiles/after/{edge.z}/{edge.x}/{edge.y}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    alpha = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))[..., 3]
    assert (alpha == 0).any()
    assert (alpha == 255).any()
