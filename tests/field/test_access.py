"""Every field route that names an item ({patch_id}, {photo_id}, {upload_id}, {review_id}) answers 404 for
another county's item exactly as for a missing one, 401 anonymously, and leaves B's rows unchanged (A #1, #5, #6)."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from tuban.field.testing import make_jpeg
from tuban.store.models import AuditEntry, Patch, Photo, Review

from .conftest import COUNTY_B, LAT, LON, ApiClient, FieldWorld

B_LON = LON + 0.0205  # inside B-1


@pytest.fixture
def b_items(fworld: FieldWorld, field_app: Any) -> dict[str, Any]:
    """A photo, a hard-conflict field record and an unfinished upload, all in county B."""
    fworld.store.add_user("b_field", "password-b_field", roles=[("field_inspector", COUNTY_B)], actor="test")
    b = ApiClient(field_app, "b_field")
    pid = fworld.patches["B-1"]
    data = make_jpeg(lon=B_LON, lat=LAT + 0.0003, seed=77)
    meta = {"client_id": str(uuid.uuid4()), "patch_id": pid, "size": len(data), "kind": "overview",
            "sha256": hashlib.sha256(data).hexdigest(), "lon": B_LON, "lat": LAT + 0.0003, "accuracy_m": 5}
    photo_id = b.upload(meta, data)["photo_id"]
    half = {**meta, "client_id": str(uuid.uuid4())}
    upload_id = b.request("POST", "/api/field/uploads", json=half).json()["upload_id"]
    p = fworld.patch("B-1")
    rec = {"client_id": str(uuid.uuid4()), "patch_id": pid, "based_on_version": p.version, "base": {"QDCS": "施工"},
           "fields": {"QDCS": "停工"}}
    b.request("POST", "/api/field/records", json=rec)
    r = b.request("POST", "/api/field/records", json={**rec, "client_id": str(uuid.uuid4()), "fields": {"QDCS": "完工"}})
    assert r.json()["status"] == "conflict"
    b.http.close()
    return {"patch_id": pid, "photo_id": photo_id, "upload_id": upload_id, "review_id": r.json()["id"],
            "which": "after"}


def _walk(routes: Any, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for route in routes:
        original = getattr(route, "original_router", None)  # an included router
        if original is not None:
            out += _walk(original.routes, prefix + route.include_context.prefix)
            continue
        path = prefix + getattr(route, "path", "")
        if path.startswith("/api/field/") and hasattr(route, "endpoint"):
            out += [(m, path) for m in sorted(getattr(route, "methods", ()) or ())]
    return out


def _routes(app: Any) -> list[tuple[str, str]]:
    return sorted(set(_walk(app.routes)))


def _fill(path: str, items: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(items[m.group(1)]), path)


def _snapshot(store: Any) -> tuple[Any, ...]:
    with store.session() as s:
        patches = s.execute(select(Patch.id, Patch.version, Patch.qdcs).order_by(Patch.id)).all()
        reviews = s.execute(select(Review.id, Review.conflict).order_by(Review.id)).all()
        photos = s.scalar(select(func.count()).select_from(Photo))
        audits = s.scalar(select(func.count()).select_from(AuditEntry))
    return patches, reviews, photos, audits


def test_every_item_route_404_across_counties(fworld: FieldWorld, field_app: Any, b_items: dict[str, Any],
                                              api: Any) -> None:
    a_staff, a_field, anon = api("a_staff"), api("a_field"), api(None)
    before = _snapshot(fworld.store)
    missing = {"patch_id": 999999, "photo_id": 999999, "upload_id": str(uuid.uuid4()), "review_id": 999999,
               "which": "after"}
    checked = []
    for method, path in _routes(field_app):
        if not re.search(r"\{(patch_id|photo_id|upload_id|review_id)\}", path):
            continue
        body: dict[str, Any] = {"content": b"x", "headers": {"Upload-Offset": "0",
                                                                "Content-Type": "application/offset+octet-stream"}} \
            if method == "PATCH" else {"json": {"choices": {"QDCS": "device"}, "based_on_version": 1}} \
            if method == "POST" else {}
        statuses = set()
        for who in (a_staff, a_field):  # a user without the right anywhere gets 403 for both: nothing told
            foreign = who.request(method, _fill(path, b_items), **body)
            gone = who.request(method, _fill(path, missing), **body)
            assert foreign.status_code == gone.status_code in (403, 404), \
                f"{method} {path}: {foreign.status_code} {foreign.text[:200]} / missing {gone.status_code}"
            if method != "HEAD":
                assert foreign.json()["title"] == gone.json()["title"]
            statuses.add(foreign.status_code)
        assert 404 in statuses, (method, path)  # a user holding the right in A is told "not found"
        assert anon.request(method, _fill(path, b_items), **body).status_code == 401, (method, path)
        checked.append((method, path))
    # every item route is covered, the three ids the web app's require() does not resolve included
    assert {p for _, p in checked} >= {
        "/api/field/photos/{photo_id}", "/api/field/uploads/{upload_id}", "/api/field/records/{review_id}/resolve",
        "/api/field/patches/{patch_id}/records", "/api/field/patches/{patch_id}/photos",
        "/api/field/patches/{patch_id}/chips/{which}.png"}, checked
    assert {m for m, p in checked if p == "/api/field/uploads/{upload_id}"} == {"GET", "HEAD", "PATCH"}
    assert _snapshot(fworld.store) == before  # B's rows unchanged, nothing audited


def test_same_county_access_still_works(fworld: FieldWorld, b_items: dict[str, Any], api: Any) -> None:
    fworld.store.add_user("b_admin", "password-b_admin", roles=[("county_admin", COUNTY_B)], actor="test")
    b_staff, b_admin = api("b_staff"), api("b_admin")
    assert b_staff.request("GET", f"/api/field/photos/{b_items['photo_id']}").status_code == 200
    assert b_staff.request("HEAD", f"/api/field/uploads/{b_items['upload_id']}").status_code == 404  # not the owner
    version = b_staff.request("GET", f"/api/field/patches/{b_items['patch_id']}/records").json()["patch_version"]
    r = b_admin.request("POST", f"/api/field/records/{b_items['review_id']}/resolve",
                        json={"choices": {"QDCS": "server"}, "based_on_version": version})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"]["choices"] == {"QDCS": "server"}
    assert api("b_field").request("GET", f"/api/field/uploads/{b_items['upload_id']}").json()["offset"] == 0
    # a photo id that is a field record id, a non-numeric id, a non-UUID upload id: plain 404
    assert b_staff.request("GET", "/api/field/photos/abc").status_code == 404
    assert api("b_field").request("HEAD", "/api/field/uploads/not-a-uuid").status_code == 404
