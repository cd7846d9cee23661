"""Resumable photo uploads on both backends: chunks, HEAD offset, lost responses, hash, bad files, checks."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tuban.errors import ConflictError, NotFoundError, UnsafeInputError
from tuban.field.testing import make_jpeg
from tuban.field.uploads import HashMismatchError, OffsetMismatchError, UploadManager
from tuban.store.models import AuditEntry, Photo

from .conftest import LAT, LON, FieldWorld


def meta(world: FieldWorld, data: bytes, qdnm: str = "A-1", **over: Any) -> dict[str, Any]:
    out = {"client_id": str(uuid.uuid4()), "patch_id": world.patches[qdnm], "size": len(data),
           "sha256": hashlib.sha256(data).hexdigest(), "mime": "image/jpeg", "kind": "overview",
           "lon": LON + 0.0005, "lat": LAT - 0.0002, "accuracy_m": 6.0, "bearing": 10.0,
           "taken_at": "2024-09-01T10:00:00+08:00", "mock_location": False}
    out.update(over)
    return out


def photos(world: FieldWorld) -> int:
    with world.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Photo)))


def send(mgr: UploadManager, actor: Any, m: dict[str, Any], data: bytes, chunk: int = 4096) -> Any:
    state = mgr.create(actor, m)
    while not state.complete:
        state = mgr.append(actor, state.id, state.offset, data[state.offset:state.offset + chunk])
    return state


def test_chunked_upload_stores_blob_and_photo_with_checks(fworld: FieldWorld, uploads: UploadManager) -> None:
    actor = fworld.actor("a_field")
    data = make_jpeg(lon=LON + 0.0005, lat=LAT - 0.0002, seed=1, width=640, height=480)
    m = meta(fworld, data)
    state = send(uploads, actor, m, data, chunk=5000)
    assert state.complete
    assert uploads.blobs.open(m["sha256"]).read() == data  # the original, byte for byte
    with fworld.store.session() as s:
        photo = s.get(Photo, state.photo_id)
        assert (photo.sha256, photo.size, photo.client_id) == (m["sha256"], len(data), m["client_id"])
        assert photo.checks["status"] == "pass", photo.checks
        assert photo.exif["gps_valid"] is True
        assert uploads.blobs.exists(photo.exif["display"]["sha256"])
    assert not list(uploads.dir.glob("*.part"))
    # the response to the last chunk was lost: every retry answers with the same photo
    assert uploads.create(actor, m).photo_id == state.photo_id
    assert uploads.status(actor, state.id).photo_id == state.photo_id
    assert uploads.append(actor, state.id, 0, data[:10]).photo_id == state.photo_id
    assert photos(fworld) == 1
    with fworld.store.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "photo.create")) == 1


def test_resume_after_lost_chunk_response_and_stale_offset(fworld: FieldWorld, uploads: UploadManager) -> None:
    actor = fworld.actor("a_field")
    data = make_jpeg(seed=2, width=400, height=300)
    m = meta(fworld, data)
    st = uploads.create(actor, m)
    st = uploads.append(actor, st.id, 0, data[:3000])
    # the device never saw the answer and re-sends the same chunk at offset 0
    with pytest.raises(OffsetMismatchError) as err:
        uploads.append(actor, st.id, 0, data[:3000])
    assert err.value.persisted == 3000
    assert uploads.status(actor, st.id).offset == 3000  # HEAD
    st = uploads.append(actor, st.id, 3000, data[3000:])
    assert st.complete
    assert photos(fworld) == 1


def test_unacknowledged_bytes_past_offset_are_cut(fworld: FieldWorld, uploads: UploadManager) -> None:
    actor = fworld.actor("a_field")
    data = make_jpeg(seed=3, width=400, height=300)
    st = uploads.create(actor, meta(fworld, data))
    uploads.append(actor, st.id, 0, data[:2000])
    part = uploads.dir / f"{st.id}.part"
    with part.open("ab") as fh:  # a crash after write() but before the offset was recorded
        fh.write(data[2000:2500])
    assert uploads.status(actor, st.id).offset == 2000
    assert part.stat().st_size == 2000
    assert uploads.append(actor, st.id, 2000, data[2000:]).complete


def test_hash_mismatch_resets_the_upload(fworld: FieldWorld, uploads: UploadManager) -> None:
    actor = fworld.actor("a_field")
    data = make_jpeg(seed=4)
    m = meta(fworld, data)
    st = uploads.create(actor, m)
    corrupted = bytes([data[0] ^ 1]) + data[1:]
    with pytest.raises(HashMismatchError):
        uploads.append(actor, st.id, 0, corrupted)
    assert uploads.status(actor, st.id).offset == 0
    assert photos(fworld) == 0
    assert uploads.append(actor, st.id, 0, data).complete


def test_not_an_image_is_refused_and_nothing_stored(fworld: FieldWorld, uploads: UploadManager) -> None:
    actor = fworld.actor("a_field")
    html = b"<html><script>alert(1)</script></html>"
    st = uploads.create(actor, meta(fworld, html))
    with pytest.raises(UnsafeInputError):
        uploads.append(actor, st.id, 0, html)
    assert photos(fworld) == 0
    assert not uploads.blobs.exists(hashlib.sha256(html).hexdigest())


def test_other_users_and_counties_get_404(fworld: FieldWorld, uploads: UploadManager) -> None:
    data = make_jpeg(seed=5)
    with pytest.raises(NotFoundError):
        uploads.create(fworld.actor("a_field"), meta(fworld, data, "B-1"))
    st = uploads.create(fworld.actor("a_field"), meta(fworld, data))
    with pytest.raises(NotFoundError):
        uploads.status(fworld.actor("b_staff"), st.id)
    with pytest.raises(NotFoundError):
        uploads.append(fworld.actor("a_staff"), st.id, 0, data)


def test_same_client_id_for_another_file_conflicts(fworld: FieldWorld, uploads: UploadManager) -> None:
    actor = fworld.actor("a_field")
    a, b = make_jpeg(seed=6), make_jpeg(seed=7)
    m = meta(fworld, a)
    uploads.create(actor, m)
    with pytest.raises(ConflictError):
        uploads.create(actor, {**m, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()})


def test_checks_flag_far_mock_and_duplicate(fworld: FieldWorld, uploads: UploadManager) -> None:
    actor = fworld.actor("a_field")
    data = make_jpeg(lon=LON, lat=LAT, seed=8)
    first = send(uploads, actor, meta(fworld, data, "A-1"), data)
    # the same file for another patch, far away, looking away, with a mock location
    second = send(uploads, actor, meta(fworld, data, "A-2", lon=LON + 0.01, lat=LAT + 0.01, bearing=0,
                                        mock_location=True, accuracy_m=80), data)
    assert first.photo_id != second.photo_id
    with fworld.store.session() as s:
        checks = {r["name"]: r["status"] for r in s.get(Photo, second.photo_id).checks["results"]}
    assert checks == {"location": "fail", "field_window": "pass", "accuracy": "fail", "mock_location": "fail",
                      "exif_position": "fail", "duplicate": "fail"}
    assert len(list(Path(uploads.blobs.root).rglob("*"))) > 0
