"""kill -9 the server in the middle of a photo upload, restart, resume: one photo, matching hash (reliability D #38)."""

from __future__ import annotations

import hashlib
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tuban.field.testing import make_jpeg
from tuban.store.models import AuditEntry, Photo
from tuban.web import WebSettings

from .conftest import LAT, LON, FieldWorld
from .server import ServerProcess, login

CHUNK = 64 * 1024


def _half_sent_chunk(port: int, path: str, cookies: str, csrf: str, offset: int, chunk: bytes) -> socket.socket:
    """Open a PATCH and send the headers and only half of the body, leaving the request in flight."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {len(chunk)}\r\nX-CSRF-Token: {csrf}\r\n"
            f"Cookie: {cookies}\r\n\r\n").encode()
    sock.sendall(head + chunk[: len(chunk) // 2])
    return sock


@pytest.mark.slow
def test_sigkill_mid_upload_then_resume(fworld: FieldWorld, tmp_path: Path) -> None:
    server = ServerProcess(fworld.store.url, tmp_path / "blobs", WebSettings.random_secret(),
                           log=tmp_path / "server.log")
    data = make_jpeg(lon=LON + 0.0005, lat=LAT - 0.0002, seed=21, width=900, height=700, target_bytes=400_000)
    sha = hashlib.sha256(data).hexdigest()
    meta: dict[str, Any] = {"client_id": str(uuid.uuid4()), "patch_id": fworld.patches["A-1"], "size": len(data),
                            "sha256": sha, "kind": "overview", "lon": LON + 0.0005, "lat": LAT - 0.0002,
                            "accuracy_m": 5, "bearing": 0, "taken_at": "2024-09-01T10:00:00+08:00"}
    server.start()
    try:
        c = login(server.base, "a_field")
        r = c.post("/api/field/uploads", json=meta)
        assert r.status_code == 201, r.text
        url = r.headers["Location"]
        acked = 0
        for _ in range(3):
            r = c.patch(url, content=data[acked:acked + CHUNK],
                        headers={"Upload-Offset": str(acked), "Content-Type": "application/offset+octet-stream"})
            assert r.status_code == 200, r.text
            acked = int(r.headers["Upload-Offset"])
        cookies = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        sock = _half_sent_chunk(server.port, url, cookies, c.headers["X-CSRF-Token"], acked,
                                data[acked:acked + CHUNK])
        server.kill()  # the server dies with a chunk half received
        sock.close()
        c.close()

        server.start()  # restart on the same store, blobs and secret: the session is still valid
        c = login(server.base, "a_field")
        head = c.head(url)
        assert head.status_code == 200
        offset = int(head.headers["Upload-Offset"])
        assert offset == acked  # exactly the acknowledged bytes, nothing of the half chunk
        while offset < len(data):
            r = c.patch(url, content=data[offset:offset + CHUNK],
                        headers={"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
            assert r.status_code == 200, r.text
            offset = int(r.headers["Upload-Offset"])
        body = r.json()
        assert body["complete"]
        # the client lost that answer and retries: the same photo, nothing new
        again = c.post("/api/field/uploads", json=meta)
        assert again.json()["photo_id"] == body["photo_id"]
        got = c.get(f"/api/field/photos/{body['photo_id']}")
        assert hashlib.sha256(got.content).hexdigest() == sha
        c.close()
    finally:
        server.stop()
    with fworld.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == 1
        photo = s.scalar(select(Photo))
        assert (photo.sha256, photo.size, photo.client_id) == (sha, len(data), meta["client_id"])
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "photo.create")) == 1
    blob = tmp_path / "blobs" / sha[:2] / sha[2:]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha
    assert not list((tmp_path / "uploads").glob("*.part"))
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))
