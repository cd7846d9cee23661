"""Benchmark: 200 simulated phones syncing field records with 3 photos each against one server on 127.0.0.1.

Each device (a thread with its own HTTP connection) sends its record, then uploads its photos
through the resumable protocol (create → PATCH chunks → complete), then replays the record and
one photo creation as if their responses had been lost. Afterwards the store is audited:
every acknowledged record and photo present, no duplicates, every blob's sha256 matching.

Reported: p50/p95 time to acknowledge a record and a photo, failures, duplicates, lost items, how long
the photo processing that follows the acknowledgements (EXIF, perceptual hash, display copy, checks) ran on,
and the ratio of the HTTP record ack (p95) to a baseline measured in this process: the median
time of :func:`tuban.field.sync.submit_record` called directly on the same kind of store.

    .venv/bin/python bench/bench_field_sync.py                       # SQLite, 300 KB photos
    .venv/bin/python bench/bench_field_sync.py --photo-bytes 4000000 # full-size 3–5 MB photos
    .venv/bin/python bench/bench_field_sync.py --backend postgis     # needs $TUBAN_TEST_POSTGRES_URL
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import bench_database_url

COUNTY = "410811"
LON, LAT = 113.24, 35.22


def make_store(backend: str, tmp: Path) -> str:
    return bench_database_url(backend, tmp)


def setup(url: str, devices: int, users: int) -> tuple[Any, dict[int, int], list[str]]:
    import geopandas as gpd
    import shapely
    from sqlalchemy import select

    from tuban.store import open_store
    from tuban.store.models import Patch

    store = open_store(url)
    store.upgrade()
    step = 0.0015
    gdf = gpd.GeoDataFrame(
        {"QDNM": [f"P-{i:04d}" for i in range(devices + 20)], "XZQDM": [COUNTY] * (devices + 20),
         "QDCS": ["施工"] * (devices + 20)},
        geometry=[shapely.box(LON + (i % 40) * step, LAT + (i // 40) * step, LON + (i % 40) * step + 0.001,
                              LAT + (i // 40) * step + 0.0008) for i in range(devices + 20)], crs="EPSG:4490")
    store.import_patches(gdf, round_name="bench", actor="bench")
    names = [f"inspector{u:02d}" for u in range(users)]
    for name in names:
        store.add_user(name, f"password-{name}", roles=[("field_inspector", COUNTY)], actor="bench")
    with store.session() as s:
        ids = dict(s.execute(select(Patch.qdnm, Patch.id)).all())
    return store, {i: ids[f"P-{i:04d}"] for i in range(devices + 20)}, names


def baseline_submit(store: Any, patch_ids: dict[int, int], devices: int, n: int = 15) -> float:
    """Median seconds of an in-process submit_record (the same validation, transaction and audit)."""
    from tuban.field.sync import submit_record
    from tuban.workflow.rounds import actor_for

    uid = store.add_user("baseline", "password-baseline", roles=[("field_inspector", COUNTY)], actor="bench")
    actor = actor_for(store, uid)
    times = []
    for k in range(n):
        pid = patch_ids[devices + (k % 20)]
        body = {"client_id": str(uuid.uuid4()), "patch_id": pid, "based_on_version": 1, "base": {"QDCS": "施工"},
                "fields": {"PROBLEM": f"baseline {k}"}, "outcome": "confirmed"}
        t = time.perf_counter()
        submit_record(store, actor, body)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def unique_jpeg(base: bytes, tag: str) -> bytes:
    """*base* with a JPEG comment segment after SOI: other bytes, same picture."""
    payload = tag.encode()
    return base[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + base[2:]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--photos", type=int, default=3)
    ap.add_argument("--photo-bytes", type=int, default=300_000, help="approximate size of each photo")
    ap.add_argument("--chunk", type=int, default=1024 * 1024)
    ap.add_argument("--concurrency", type=int, default=50, help="devices syncing at the same time")
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--backend", choices=["sqlite", "postgis"], default="sqlite")
    args = ap.parse_args()

    import httpx

    from tuban.field.testing import make_jpeg
    from tuban.web import WebSettings

    tmp = Path(tempfile.mkdtemp(prefix="tuban-bench-field-"))
    url = make_store(args.backend, tmp)
    store, patch_ids, users = setup(url, args.devices, args.users)
    base_s = baseline_submit(store, patch_ids, args.devices)
    print(f"generating {min(args.photos * 2, 6)} base photos of ~{args.photo_bytes} bytes …", flush=True)
    pool = [make_jpeg(lon=LON, lat=LAT, seed=100 + k, target_bytes=args.photo_bytes) for k in range(min(args.photos * 2, 6))]

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = WebSettings.random_secret()
    log = (tmp / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "tuban.fieldapp.serve", url, str(tmp / "blobs"), str(port), secret],
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        server.kill()
        sys.exit(f"server did not start; see {tmp / 'server.log'}")

    cookies: dict[str, httpx.Cookies] = {}
    for name in users:
        c = httpx.Client(base_url=base, timeout=60)
        c.get("/login")
        r = c.post("/api/session", json={"username": name, "password": f"password-{name}"},
                   headers={"X-CSRF-Token": c.cookies.get("tuban_csrf") or ""})
        r.raise_for_status()
        cookies[name] = c.cookies
        c.close()

    lock = threading.Lock()
    rec_ack: list[float] = []
    photo_ack: list[float] = []
    failures: list[str] = []
    acked_records: dict[str, int] = {}
    acked_photos: dict[str, tuple[int, str]] = {}
    replays_ok = [0]

    def device(i: int) -> None:
        name = users[i % len(users)]
        c = httpx.Client(base_url=base, timeout=120, cookies=cookies[name])
        c.headers["X-CSRF-Token"] = cookies[name].get("tuban_csrf") or ""
        try:
            body = {"client_id": str(uuid.uuid4()), "patch_id": patch_ids[i], "based_on_version": 1,
                    "base": {"QDCS": "施工"}, "fields": {"QDCS": "停工", "PROBLEM": f"设备 {i} 的核查记录"},
                    "responsible_party": "某建设单位", "outcome": "corrected"}
            t = time.perf_counter()
            r = c.post("/api/field/records", json=body)
            dt_rec = time.perf_counter() - t
            if r.status_code not in (200, 201):
                raise RuntimeError(f"record {r.status_code} {r.text[:200]}")
            rid = r.json()["id"]
            with lock:
                rec_ack.append(dt_rec)
                acked_records[body["client_id"]] = rid
            first_meta = None
            for k in range(args.photos):
                data = unique_jpeg(pool[(i + k) % len(pool)], f"device {i} photo {k}")
                meta = {"client_id": str(uuid.uuid4()), "patch_id": patch_ids[i], "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(), "kind": ("overview", "closeup", "disturbance")[k % 3],
                        "lon": LON, "lat": LAT, "accuracy_m": 6, "bearing": 45,
                        "taken_at": "2024-09-01T10:00:00+08:00", "mock_location": False, "record_client_id": body["client_id"]}
                first_meta = first_meta or meta
                t = time.perf_counter()
                r = c.post("/api/field/uploads", json=meta)
                if r.status_code != 201:
                    raise RuntimeError(f"upload create {r.status_code} {r.text[:200]}")
                st = r.json()
                while not st["complete"]:
                    off = st["offset"]
                    r = c.patch(f"/api/field/uploads/{st['upload_id']}", content=data[off:off + args.chunk],
                                headers={"Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"})
                    if r.status_code != 200:
                        raise RuntimeError(f"chunk {r.status_code} {r.text[:200]}")
                    st = r.json()
                with lock:
                    photo_ack.append(time.perf_counter() - t)
                    acked_photos[meta["client_id"]] = (st["photo_id"], meta["sha256"])
            # lost responses: replay the record and one photo creation
            r1 = c.post("/api/field/records", json=body)
            r2 = c.post("/api/field/uploads", json=first_meta)
            if r1.status_code == 200 and r1.json()["id"] == rid and r2.json().get("photo_id") == \
                    acked_photos[first_meta["client_id"]][0]:
                with lock:
                    replays_ok[0] += 1
        except Exception as exc:  # every failure is counted and reported
            with lock:
                failures.append(f"device {i}: {type(exc).__name__}: {exc}")
        finally:
            c.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as ex:
        list(ex.map(device, range(args.devices)))
    wall = time.perf_counter() - t0
    # EXIF, perceptual hash, display copy and checks follow the acknowledgement on the server's worker thread
    from tuban.field.processing import pending_photo_ids

    t1 = time.perf_counter()
    while pending_photo_ids(store) and time.perf_counter() - t1 < 1800:
        time.sleep(1.0)
    still_pending = len(pending_photo_ids(store))
    drain_s = time.perf_counter() - t1
    server.terminate()
    server.wait(timeout=30)
    log.close()

    from sqlalchemy import func, select

    from tuban.blobs import BlobStore
    from tuban.store.models import Photo, Review

    blobs = BlobStore(tmp / "blobs")
    with store.session() as s:
        n_reviews = s.scalar(select(func.count()).select_from(Review).where(Review.kind == "field"))
        stored_records = set(s.scalars(select(Review.client_id).where(Review.kind == "field")))
        photos = s.execute(select(Photo.client_id, Photo.sha256)).all()
    lost_records = [cid for cid in acked_records if cid not in stored_records]
    stored_photos = {cid: sha for cid, sha in photos}
    lost_photos = [cid for cid in acked_photos if cid not in stored_photos]
    dup_photos = len(photos) - len(stored_photos)
    bad_hash = sum(1 for cid, (_, sha) in acked_photos.items()
                   if stored_photos.get(cid) != sha or hashlib.sha256(blobs.open(sha).read()).hexdigest() != sha)
    total_mb = sum(len(p) for p in pool) / len(pool) * len(acked_photos) / 1e6
    print(f"backend={args.backend} devices={args.devices} photos/device={args.photos} "
          f"photo≈{args.photo_bytes / 1e6:.2f} MB concurrency={args.concurrency}")
    print(f"wall {wall:.1f} s · {total_mb:.0f} MB uploaded · {total_mb / wall:.1f} MB/s")
    print(f"record ack p50 {pct(rec_ack, .5) * 1000:.0f} ms · p95 {pct(rec_ack, .95) * 1000:.0f} ms "
          f"(n={len(rec_ack)})")
    print(f"photo ack  p50 {pct(photo_ack, .5) * 1000:.0f} ms · p95 {pct(photo_ack, .95) * 1000:.0f} ms "
          f"(n={len(photo_ack)})")
    print(f"baseline in-process submit_record median {base_s * 1000:.1f} ms · "
          f"ratio record-ack p95 / baseline = {pct(rec_ack, .95) / base_s:.1f}x")
    print(f"failures {len(failures)} · duplicate records {n_reviews - 15 - len(acked_records)} · duplicate photos "
          f"{dup_photos} · lost records {len(lost_records)} · lost photos {len(lost_photos)} · hash mismatches "
          f"{bad_hash} · lost-response replays answered identically {replays_ok[0]}/{args.devices - len(failures)}")
    with store.session() as s:
        statuses = [c.get("status") for c in s.scalars(select(Photo.checks))]
    print(f"photo processing (EXIF, hash, display copy, checks) after the acks: finished {drain_s:.1f} s after the "
          f"last device · still pending {still_pending} · check status "
          f"{ {k: statuses.count(k) for k in sorted(set(map(str, statuses)))} }")
    for f in failures[:10]:
        print("  ", f)
    store.close()
    cleanup(args.backend, url, tmp)


def cleanup(backend: str, url: str, tmp: Path) -> None:
    """Drop the bench database (PostGIS) and its folder (gigabytes of photos at full size)."""
    import shutil

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    if backend == "postgis":
        eng = create_engine(os.environ["TUBAN_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with eng.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        eng.dispose()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
