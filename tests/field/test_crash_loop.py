"""Crash loop (reliability D #48): the server, an SQLite writer, is ``kill -9``'d at random moments while three
phones sync field records and photos at once, again and again. After every crash ``PRAGMA integrity_check`` is ok;
in the end every record and photo a phone got an acknowledgement for is stored, once, with its audit row (each
photo's blob whole under its hash); each record in flight at a crash, sent again with the same client id after the
restart, is stored once too, and each photo upload a crash cut resumes at its persisted offset. No answer is a 5xx
or a refusal ("database is locked" included).

CI runs :data:`CRASHES` crashes; ``TUBAN_CRASH_LOOPS=1000`` runs the full case (about an hour on 2 cores)."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tuban.field.testing import make_jpeg
from tuban.store.models import AuditEntry, Photo, Review
from tuban.web import WebSettings

from .conftest import LAT, LON, FieldWorld
from .server import ServerProcess, login

CRASHES = int(os.environ.get("TUBAN_CRASH_LOOPS", "6"))


class _Phone:
    """Sends field records on ``patch`` one after the other until the server stops answering; a record without
    an answer stays pending and goes again, unchanged, first thing after the restart (the phone's outbox)."""

    def __init__(self, world: FieldWorld, patch: str, seed: int) -> None:
        self.world, self.patch = world, patch
        self.rng = random.Random(seed)
        self.acked: dict[str, int] = {}  # client id → the record id the server answered
        self.pending: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.sent = 0
        self.resent: list[int] = []  # the answers to records sent again after a crash: 200 stored before it, 201 not
        self._again = False
        self.photos: dict[str, tuple[int, str]] = {}  # client id → (photo id, sha-256) of acknowledged photos
        self.photo: tuple[dict[str, Any], bytes] | None = None  # the photo being uploaded (meta, bytes)
        self.photos_cut = 0  # crashes while a photo was being uploaded

    def _next(self) -> dict[str, Any]:
        if self.pending is None:
            p = self.world.patch(self.patch)
            self.pending = {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": p.version,
                            "base": {"QDCS": p.qdcs}, "fields": {"QDCS": self.rng.choice(["停工", "施工", "完工"])}}
        return self.pending

    def _upload(self, c: httpx.Client) -> None:
        """Upload (or resume) the pending photo, starting one every third record; ``httpx.HTTPError`` when the
        server dies meanwhile (the photo stays pending: its upload resumes at the persisted offset)."""
        if self.photo is None:
            if self.sent % 3:
                return
            data = make_jpeg(lon=LON + 0.0005, lat=LAT - 0.0002, seed=self.rng.randrange(1 << 30))
            meta = {"client_id": str(uuid.uuid4()), "patch_id": self.world.patches[self.patch], "size": len(data),
                    "kind": "overview", "sha256": hashlib.sha256(data).hexdigest(), "lon": LON + 0.0005,
                    "lat": LAT - 0.0002, "accuracy_m": 5, "bearing": 10, "taken_at": "2024-09-01T10:00:00+08:00",
                    "mock_location": False}
            self.photo = (meta, data)
        meta, data = self.photo
        r = c.post("/api/field/uploads", json=meta, timeout=10)  # starts it, or finds it again after a crash
        if r.status_code == 201 and not r.json()["complete"]:
            off = int(r.headers["Upload-Offset"])
            r = c.patch(f"/api/field/uploads/{r.json()['upload_id']}", content=data[off:], timeout=10,
                        headers={"Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"})
        if r.status_code not in (200, 201) or not r.json().get("complete"):
            self.errors.append(f"photo {r.status_code}: {r.text[:200]}")
            return
        self.photos[meta["client_id"]] = (int(r.json()["photo_id"]), meta["sha256"])
        self.photo = None

    def run(self, base: str, stop: threading.Event) -> None:
        try:
            c = login(base, "a_field")
        except httpx.HTTPError:
            return  # killed before the phone got in
        try:
            while not stop.is_set() and not self.errors:
                body = self._next()
                try:
                    self._upload(c)
                    r = c.post("/api/field/records", json=body, timeout=10)
                except httpx.HTTPError:
                    self._again = True
                    self.photos_cut += self.photo is not None
                    return  # the server died with the record in flight: it stays pending
                self.sent += 1
                if r.status_code not in (200, 201):
                    self.errors.append(f"{r.status_code}: {r.text[:200]}")
                    return
                self.acked[body["client_id"]] = int(r.json()["id"])
                if self._again:
                    self.resent.append(r.status_code)
                self.pending, self._again = None, False
        finally:
            c.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sigkill_loop_keeps_every_acknowledged_record(fworld: FieldWorld, tmp_path: Path) -> None:
    from contextlib import closing

    path = Path(fworld.store.url.removeprefix("sqlite:///"))
    server = ServerProcess(fworld.store.url, tmp_path / "blobs", WebSettings.random_secret(),
                           log=tmp_path / "server.log")
    phones = [_Phone(fworld, patch, seed) for seed, patch in enumerate(("A-1", "A-2", "A-1"))]  # at once
    rng = random.Random(48)

    def acked() -> int:
        return sum(len(p.acked) for p in phones)

    for _ in range(CRASHES):
        server.start()
        stop = threading.Event()
        threads = [threading.Thread(target=p.run, args=(server.base, stop), daemon=True) for p in phones]
        for t in threads:
            t.start()
        before, deadline = acked(), time.monotonic() + 60
        while acked() == before and any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            time.sleep(0.01)  # the phones are in and syncing
        time.sleep(rng.uniform(0.0, 0.5))  # then the crash, wherever the server is: mid-request, mid-commit …
        server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        assert [e for p in phones for e in p.errors] == []  # no 5xx, no "database is locked", no refusal
        with closing(sqlite3.connect(path)) as db:  # the file as the crash left it (its WAL included)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    server.start()  # the last records in flight go again
    try:
        c = login(server.base, "a_field")
        for p in phones:
            if p.photo is not None:
                p._upload(c)  # resumes it
            if p.pending is not None:
                r = c.post("/api/field/records", json=p.pending)
                assert r.status_code in (200, 201), r.text
                p.acked[p.pending["client_id"]] = int(r.json()["id"])
                p.resent.append(r.status_code)
        c.close()
    finally:
        server.stop()
    assert acked() >= CRASHES  # records were acknowledged between the crashes
    told = {k: v for p in phones for k, v in p.acked.items()}
    resent = [code for p in phones for code in p.resent]
    with fworld.store.session() as s:
        rows = dict(s.execute(select(Review.client_id, Review.id).where(Review.kind == "field")).all())
        assert rows == told  # every acknowledged record, with the id its phone was told; nothing else
        audits = s.scalar(select(func.count()).select_from(AuditEntry)
                          .where(AuditEntry.action == "field.record.create"))
        assert audits == len(rows)
        photos = {cid: (pid, sha) for cid, pid, sha in s.execute(select(Photo.client_id, Photo.id, Photo.sha256))}
        assert photos == {k: v for p in phones for k, v in p.photos.items()}  # every acknowledged photo, once
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "photo.create")) \
            == len(photos)
    for _, sha in photos.values():  # each blob whole, under its hash
        assert hashlib.sha256((tmp_path / "blobs" / sha[:2] / sha[2:]).read_bytes()).hexdigest() == sha
    print(f"{CRASHES} crashes, {len(rows)} records and {len(photos)} photos acknowledged and stored; {len(resent)} "
          f"records in flight at a crash, sent again: {resent.count(200)} had been stored before it, "
          f"{resent.count(201)} had not; {sum(p.photos_cut for p in phones)} photo uploads cut by a crash, resumed")
