"""Disk faults and lost responses (reliability D #39, #46, #47), through the API on both backends.

ENOSPC / EIO from ``os.fsync`` or ``os.replace`` while a photo is stored: no 2xx (507 / 503), no Photo row
pointing at a missing file, and a retry succeeds once the disk is back. A response lost after the commit:
the retry with the same client id returns the same id and the audit shows one create.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tuban.field.testing import make_jpeg
from tuban.store.models import AuditEntry, Photo, Review

from .conftest import LAT, LON, ApiClient, FieldWorld

HDR = {"Content-Type": "application/offset+octet-stream"}


def _meta(world: FieldWorld, data: bytes) -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), "patch_id": world.patches["A-1"], "size": len(data), "kind": "overview",
            "sha256": hashlib.sha256(data).hexdigest(), "lon": LON + 0.0005, "lat": LAT - 0.0002, "accuracy_m": 5,
            "bearing": 10, "taken_at": "2024-09-01T10:00:00+08:00", "mock_location": False}


class Fault:
    """Make ``os.<name>`` raise OSError(*code*) while armed (the rest of the time it is the real one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
        self.real = getattr(os, name)
        self.code, self.armed, self.hits = code, False, 0
        monkeypatch.setattr(os, name, self)

    def __call__(self, *args: Any, **kw: Any) -> Any:
        if self.armed:
            self.hits += 1
            raise OSError(self.code, os.strerror(self.code))
        return self.real(*args, **kw)


@pytest.mark.parametrize(("name", "code", "status"), [("fsync", errno.ENOSPC, 507), ("replace", errno.EIO, 503),
                                                      ("fsync", errno.EIO, 503)])
def test_disk_fault_on_last_chunk_no_ack_then_retry(fworld: FieldWorld, field_app: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, name: str, code: int,
                                                    status: int) -> None:
    c = ApiClient(field_app, "a_field")
    data = make_jpeg(lon=LON + 0.0005, lat=LAT - 0.0002, seed=5, width=640, height=480)
    meta = _meta(fworld, data)
    uid = c.request("POST", "/api/field/uploads", json=meta).json()["upload_id"]
    half = len(data) // 2
    assert c.request("PATCH", f"/api/field/uploads/{uid}", content=data[:half],
                     headers={**HDR, "Upload-Offset": "0"}).status_code == 200
    fault = Fault(monkeypatch, name, code)
    fault.armed = True
    r = c.request("PATCH", f"/api/field/uploads/{uid}", content=data[half:],
                  headers={**HDR, "Upload-Offset": str(half)})
    fault.armed = False
    assert fault.hits >= 1
    assert r.status_code == status, r.text  # never a 2xx: the phone keeps its copy
    assert r.json()["code"] == "storage-unavailable"
    assert r.headers["Retry-After"]
    with fworld.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == 0  # no record of a file that may be missing
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))
    # the disk is back: the phone asks where it stands and sends what is missing
    offset = int(c.request("HEAD", f"/api/field/uploads/{uid}").headers["Upload-Offset"])
    assert offset in (half, len(data))
    state = c.request("GET", f"/api/field/uploads/{uid}").json()
    if not state["complete"]:
        state = c.request("PATCH", f"/api/field/uploads/{uid}", content=data[offset:],
                          headers={**HDR, "Upload-Offset": str(offset)}).json()
    assert state["complete"]
    with fworld.store.session() as s:
        photos = s.scalars(select(Photo)).all()
    assert len(photos) == 1
    got = c.request("GET", f"/api/field/photos/{photos[0].id}")
    assert hashlib.sha256(got.content).hexdigest() == meta["sha256"]
    c.http.close()


def test_disk_full_when_the_upload_starts(fworld: FieldWorld, field_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    c = ApiClient(field_app, "a_field")
    data = make_jpeg(seed=6)
    fault = Fault(monkeypatch, "fsync", errno.ENOSPC)
    fault.armed = True
    r = c.request("POST", "/api/field/uploads", json=_meta(fworld, data))
    fault.armed = False
    assert r.status_code == 507
    c.http.close()


def test_response_lost_after_commit_retry_returns_same_ids(fworld: FieldWorld, field_app: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 between the commit and the response, simulated: the route commits, then the answer is lost."""
    from fastapi.testclient import TestClient

    import tuban.field.sync as sync
    from tuban.field.uploads import UploadManager

    c = ApiClient(field_app, "a_field")
    c.http = TestClient(field_app, follow_redirects=False, raise_server_exceptions=False, cookies=c.http.cookies)
    real_submit = sync.submit_record
    drop = {"record": True, "photo": True}

    def submit_then_die(*args: Any, **kw: Any) -> Any:
        result = real_submit(*args, **kw)  # committed
        if drop["record"]:
            drop["record"] = False
            raise ConnectionResetError("the process died before answering")
        return result

    monkeypatch.setattr(sync, "submit_record", submit_then_die)
    p = fworld.patch("A-1")
    body = {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": p.version,
            "base": {"QDCS": p.qdcs}, "fields": {"QDCS": "停工"}}
    assert c.request("POST", "/api/field/records", json=body).status_code == 500  # the phone got no answer
    again = c.request("POST", "/api/field/records", json=body)
    assert again.status_code == 200  # found, not created again
    with fworld.store.session() as s:
        assert s.scalar(select(Review.id).where(Review.client_id == body["client_id"])) == again.json()["id"]
        assert s.scalar(select(func.count()).select_from(AuditEntry)
                        .where(AuditEntry.action == "field.record.create")) == 1

    real_commit = UploadManager._commit

    def commit_then_die(self: Any, *args: Any, **kw: Any) -> int:
        photo_id = real_commit(self, *args, **kw)
        if drop["photo"]:
            drop["photo"] = False
            raise ConnectionResetError("the process died before answering")
        return photo_id

    monkeypatch.setattr(UploadManager, "_commit", commit_then_die)
    data = make_jpeg(lon=LON + 0.0005, lat=LAT - 0.0002, seed=8)
    meta = _meta(fworld, data)
    uid = c.request("POST", "/api/field/uploads", json=meta).json()["upload_id"]
    r = c.request("PATCH", f"/api/field/uploads/{uid}", content=data, headers={**HDR, "Upload-Offset": "0"})
    assert r.status_code >= 500  # no answer reached the phone
    retry = c.request("POST", "/api/field/uploads", json=meta)  # the phone starts over with the same client id
    assert retry.json()["complete"]
    with fworld.store.session() as s:
        photo_id = s.scalar(select(Photo.id).where(Photo.client_id == meta["client_id"]))
        assert retry.json()["photo_id"] == photo_id
        assert s.scalar(select(func.count()).select_from(Photo)) == 1
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "photo.create")) == 1
    c.http.close()
