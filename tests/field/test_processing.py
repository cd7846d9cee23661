"""Photo processing after the acknowledgement, on both backends: the ack commits a pending photo (blob durable,
no decoding); EXIF, hash, display copy and checks follow; a crash in between is redone at the next start;
an undecodable photo with a valid header is kept and flagged, never dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tuban.blobs import BlobStore
from tuban.field.processing import PENDING, PhotoProcessor, pending_photo_ids, process_photo
from tuban.field.testing import make_jpeg
from tuban.field.uploads import UploadManager
from tuban.store.models import AuditEntry, Photo

from .conftest import LAT, LON, FieldWorld
from .test_uploads import meta, send


class NeverRuns:
    """A processor that crashes before doing anything (the process was killed right after the ack)."""

    def __init__(self) -> None:
        self.submitted: list[int] = []

    def submit(self, photo_id: int) -> None:
        self.submitted.append(photo_id)


def test_ack_commits_a_pending_photo_and_a_restart_redoes_the_work(fworld: FieldWorld, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    crashed = NeverRuns()
    mgr = UploadManager(fworld.store, blobs, tmp_path / "uploads", processor=crashed)  # type: ignore[arg-type]
    actor = fworld.actor("a_field")
    data = make_jpeg(lon=LON + 0.0005, lat=LAT - 0.0002, seed=11, width=640, height=480)
    state = send(mgr, actor, meta(fworld, data), data, chunk=20_000)
    assert state.complete  # acknowledged
    assert crashed.submitted == [state.photo_id]
    with fworld.store.session() as s:
        photo = s.get(Photo, state.photo_id)
        assert photo.checks["status"] == PENDING  # persisted: a restart knows what is left to do
        assert photo.exif["pending"] is True
        assert "display" not in photo.exif
    assert blobs.open(photo.sha256).read() == data  # the original is durable before the ack
    assert pending_photo_ids(fworld.store) == [state.photo_id]
    # the restarted server's processor picks it up at start
    proc = PhotoProcessor(fworld.store, blobs, mgr.policy).start()
    proc.drain()
    proc.stop()
    assert proc.errors == []
    with fworld.store.session() as s:
        photo = s.get(Photo, state.photo_id)
        assert photo.checks["status"] == "pass", photo.checks
        assert photo.exif["gps_valid"] is True
        assert len(photo.exif["phash"]) == 16
        assert blobs.exists(photo.exif["display"]["sha256"])
        audits = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "photo.checked"))
    assert audits == 1
    assert pending_photo_ids(fworld.store) == []
    assert process_photo(fworld.store, blobs, mgr.policy, state.photo_id) is False  # done once only


def test_undecodable_pixels_are_kept_and_flagged(fworld: FieldWorld, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    mgr = UploadManager(fworld.store, blobs, tmp_path / "uploads")  # no worker: processed right after the commit
    good = make_jpeg(seed=12, width=640, height=480)
    truncated = good[: len(good) // 2]  # a valid header, half the scan data
    state = send(mgr, fworld.actor("a_field"), meta(fworld, truncated), truncated)
    assert state.complete
    with fworld.store.session() as s:
        photo = s.get(Photo, state.photo_id)
        assert photo.checks["status"] == "fail"
        assert photo.checks["results"][0]["name"] == "file"
    assert blobs.open(photo.sha256).read() == truncated  # kept byte for byte for the reviewer


def test_duplicates_found_among_processed_photos(fworld: FieldWorld, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    proc = PhotoProcessor(fworld.store, blobs, UploadManager(fworld.store, blobs, tmp_path / "u").policy)
    mgr = UploadManager(fworld.store, blobs, tmp_path / "uploads", processor=proc)
    data = make_jpeg(lon=LON, lat=LAT, seed=13)
    actor = fworld.actor("a_field")
    ids = [send(mgr, actor, meta(fworld, data, q), data).photo_id for q in ("A-1", "A-2")]
    proc.drain()
    proc.stop()
    with fworld.store.session() as s:
        dup: dict[str, Any] = {r["name"]: r["status"] for r in s.get(Photo, ids[1]).checks["results"]}
    assert dup["duplicate"] == "fail"
