"""The field sync API through the web app: permissions, idempotency, tus-style uploads, photos, 404 across counties."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from tuban.field.testing import make_jpeg

from .conftest import LAT, LON, FieldWorld


def photo_meta(world: FieldWorld, data: bytes, qdnm: str = "A-1", kind: str = "overview") -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), "patch_id": world.patches[qdnm], "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "kind": kind, "lon": LON + 0.0005, "lat": LAT - 0.0002,
            "accuracy_m": 5, "bearing": 5, "taken_at": "2024-09-01T10:00:00+08:00", "mock_location": False}


def test_me_and_tasks_only_my_county(fworld: FieldWorld, api: Any) -> None:
    c = api("a_field")
    me = c.request("GET", "/api/field/me").json()
    assert me["username"] == "a_field"
    assert me["policy"]["min_photos"] == 3
    assert any(i["code"] == "停工" for i in me["codelists"]["QDCS"])
    summary = c.request("GET", "/api/field/tasks?summary=true").json()
    assert summary["count"] == 2
    assert "features" not in summary
    assert summary["estimate_bytes"] > 0
    fc = c.request("GET", "/api/field/tasks").json()
    assert sorted(f["properties"]["qdnm"] for f in fc["features"]) == ["A-1", "A-2"]
    assert fc["features"][0]["geometry"]["type"] == "Polygon"
    assert c.request("GET", "/api/field/tasks").status_code == 200
    assert api(None).request("GET", "/api/field/tasks").status_code == 401
    assert api("viewer").request("GET", "/api/field/tasks").status_code == 403  # no field.sync anywhere


def test_record_roundtrip_idempotent_and_conflict_409(fworld: FieldWorld, api: Any) -> None:
    c = api("a_field")
    p = fworld.patch("A-1")
    body = {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": p.version,
            "base": {"QDCS": p.qdcs}, "fields": {"QDCS": "停工"}, "outcome": "corrected"}
    r1 = c.request("POST", "/api/field/records", json=body)
    assert r1.status_code == 201, r1.text
    r2 = c.request("POST", "/api/field/records", json=body)
    assert (r2.status_code, r2.json()["id"]) == (200, r1.json()["id"])
    r3 = c.request("POST", "/api/field/records", json={**body, "fields": {"QDCS": "完工"}})
    assert r3.status_code == 409
    assert r3.json()["code"] == "duplicate-client-id"
    assert r3.json()["kept_id"] != r1.json()["id"]
    recs = api("a_staff").request("GET", f"/api/field/patches/{p.id}/records").json()["records"]
    assert [r["kind"] for r in recs] == ["field", "field_dup"]
    # another county: 404, not 403
    b_body = {**body, "client_id": str(uuid.uuid4()), "patch_id": fworld.patches["B-1"]}
    assert c.request("POST", "/api/field/records", json=b_body).status_code == 404
    assert api("b_staff").request("GET", f"/api/field/patches/{p.id}/records").status_code == 404


def test_csrf_required(fworld: FieldWorld, api: Any) -> None:
    c = api("a_field")
    r = c.http.post("/api/field/records", json={"client_id": str(uuid.uuid4())})
    assert r.status_code == 403


def test_upload_protocol_head_resume_and_photo_access(fworld: FieldWorld, api: Any) -> None:
    c = api("a_field")
    data = make_jpeg(lon=LON + 0.0005, lat=LAT - 0.0002, seed=11, width=800, height=600)
    meta = photo_meta(fworld, data)
    r = c.request("POST", "/api/field/uploads", json=meta)
    assert r.status_code == 201
    uid = r.json()["upload_id"]
    assert r.headers["Location"] == f"/api/field/uploads/{uid}"
    half = len(data) // 2
    hdr = {"Content-Type": "application/offset+octet-stream"}
    r = c.request("PATCH", f"/api/field/uploads/{uid}", content=data[:half], headers={**hdr, "Upload-Offset": "0"})
    assert r.headers["Upload-Offset"] == str(half)
    # a retried chunk at a stale offset: 409 naming the persisted offset
    r = c.request("PATCH", f"/api/field/uploads/{uid}", content=data[:half], headers={**hdr, "Upload-Offset": "0"})
    assert r.status_code == 409
    assert r.json()["offset"] == half
    head = c.request("HEAD", f"/api/field/uploads/{uid}")
    assert head.headers["Upload-Offset"] == str(half)
    r = c.request("PATCH", f"/api/field/uploads/{uid}", content=data[half:],
                  headers={**hdr, "Upload-Offset": str(half)})
    done = r.json()
    assert done["complete"]
    photo_id = done["photo_id"]
    c.drain()  # EXIF, hash, display copy and checks follow the acknowledgement
    assert c.request("POST", "/api/field/uploads", json=meta).json()["photo_id"] == photo_id  # lost response
    orig = api("a_staff").request("GET", f"/api/field/photos/{photo_id}")
    assert orig.status_code == 200
    assert hashlib.sha256(orig.content).hexdigest() == meta["sha256"]
    assert orig.headers["content-type"] == "image/jpeg"
    small = api("a_staff").request("GET", f"/api/field/photos/{photo_id}?display=1")
    assert small.status_code == 200
    assert len(small.content) < len(orig.content)
    listing = api("a_staff").request("GET", f"/api/field/patches/{fworld.patches['A-1']}/photos").json()
    assert listing["photos"][0]["checks"]["status"] == "pass"
    assert listing["photo_set"]["status"] == "fail"  # one photo of three
    for who in ("b_staff", None):
        assert api(who).request("GET", f"/api/field/photos/{photo_id}").status_code in (404, 401)
    assert api("b_staff").request("HEAD", f"/api/field/uploads/{uid}").status_code == 404


def test_upload_refusals(fworld: FieldWorld, api: Any) -> None:
    c = api("a_field")
    html = b"<html><script>alert(1)</script></html>"
    r = c.request("POST", "/api/field/uploads", json=photo_meta(fworld, html))
    uid = r.json()["upload_id"]
    r = c.request("PATCH", f"/api/field/uploads/{uid}", content=html,
                  headers={"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert r.status_code == 422
    r = c.request("POST", "/api/field/uploads", json=photo_meta(fworld, html, "B-1"))
    assert r.status_code == 404
    r = c.request("POST", "/api/field/uploads", json={**photo_meta(fworld, html), "size": 10**10})
    assert r.status_code == 413
    assert c.request("HEAD", f"/api/field/uploads/{uid}").status_code == 404  # the refused upload was discarded
    uid = c.request("POST", "/api/field/uploads", json=photo_meta(fworld, html)).json()["upload_id"]
    r = c.request("PATCH", f"/api/field/uploads/{uid}", content=b"x", headers={"Upload-Offset": "0"})
    assert r.status_code == 422  # wrong content type


def test_pwa_files_served(api: Any) -> None:
    c = api(None)
    for path, mime in (("/field/", "text/html"), ("/field/app.js", "text/javascript"),
                       ("/field/sw.js", "text/javascript"), ("/field/manifest.webmanifest", "application/manifest")):
        r = c.request("GET", path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith(mime)
    assert c.request("GET", "/field/../../etc/passwd").status_code == 404


def test_two_devices_same_field_offline_conflict_surfaced(fworld: FieldWorld, api: Any) -> None:
    p = fworld.patch("A-2")
    one, two = api("a_field"), api("a_staff")  # two phones, both downloaded version 1

    def body(value: str) -> dict[str, Any]:
        return {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": p.version,
                "base": {"QDCS": p.qdcs}, "fields": {"QDCS": value}, "outcome": "corrected"}

    r1 = one.request("POST", "/api/field/records", json=body("停工"))
    r2 = two.request("POST", "/api/field/records", json=body("完工"))
    assert (r1.json()["status"], r2.json()["status"]) == ("done", "conflict")
    records = api("a_admin").request("GET", f"/api/field/patches/{p.id}/records").json()["records"]
    hard = records[1]["conflict"]
    assert hard["kind"] == "hard"
    assert hard["fields"]["QDCS"] == {"base": "施工", "server": "停工", "device": "完工"}  # both versions kept
    r = api("a_admin").request("POST", f"/api/field/records/{records[1]['id']}/resolve",
                               json={"choices": {"QDCS": "device"}, "based_on_version": r2.json()["patch_version"]})
    assert r.status_code == 200, r.text
    assert fworld.patch("A-2").qdcs == "完工"
    assert api("b_staff").request("POST", f"/api/field/records/{records[1]['id']}/resolve",
                                  json={"choices": {"QDCS": "server"}, "based_on_version": 3}).status_code in (403, 404)
