"""Photo processing after the acknowledgement (照片后处理): EXIF, perceptual hash, display copy, the checks.

The acknowledgement of an upload waits only for what makes the photo durable and safe to
keep: the sha256, a header check (allowlisted format, pixel count, one frame — nothing
decoded), the blob's fsync and the Photo row's commit. The row is committed with
``checks.status = "pending"``; that flag is persisted, so the work below is redone after a
crash:

* decode: EXIF (GPS, time), the perceptual hash, the display copy (stored as a blob);
* the photo checks (distance / view cone, field window, accuracy, mock location, EXIF
  agreement, duplicates among the round's earlier photos);
* one short write: ``exif`` and ``checks`` replaced, audited ``photo.checked``.

A photo whose pixels turn out undecodable (a truncated file with a valid header) is kept —
it was acknowledged — and flagged: ``checks.status = "fail"`` with a ``file`` result.

:class:`PhotoProcessor` runs this on one background thread per process (decoding 3–5 MB
photos would otherwise compete with the acknowledgements); :meth:`PhotoProcessor.start`
first queues every photo still pending in the store.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from typing import Any

from sqlalchemy import select

from tuban.errors import InputError
from tuban.field import checks as photo_checks
from tuban.field.images import display_copy, inspect_image
from tuban.field.policy import PhotoPolicy
from tuban.field.writer import write_lock
from tuban.store.models import Patch, Photo, Round
from tuban.store.store import Store
from tuban.workflow.access import patch_divisions

__all__ = ["PENDING", "PhotoProcessor", "pending_photo_ids", "process_photo"]

PENDING = "pending"
_log = logging.getLogger(__name__)


def pending_photo_ids(store: Store) -> list[int]:
    """Ids of the photos whose processing has not finished (oldest first)."""
    with store.session() as s:
        return list(s.scalars(select(Photo.id).where(Photo.checks["status"].as_string() == PENDING)
                              .order_by(Photo.id)))


def _prior_uses(session: Any, patch: Patch, photo_id: int, *, limit: int = 5000) -> list[photo_checks.PriorUse]:
    """Processed photos of the same round and lead county (never another county's: nothing leaks)."""
    rows = session.execute(
        select(Photo.id, Photo.patch_id, Photo.sha256, Photo.exif).join(Patch, Patch.id == Photo.patch_id)
        .where(Patch.round_id == patch.round_id, Patch.lead_division_code == patch.lead_division_code,
               Photo.id != photo_id)
        .order_by(Photo.id.desc()).limit(limit)).all()
    return [photo_checks.PriorUse(patch_id=r.patch_id, sha256=r.sha256, phash=(r.exif or {}).get("phash"),
                                  photo_id=r.id) for r in rows]


def process_photo(store: Store, blobs: Any, policy: PhotoPolicy, photo_id: int) -> bool:
    """Decode, check and update one pending photo; ``False`` when it was not pending (already done)."""
    with store.session() as s:
        photo = s.get(Photo, photo_id)
        if photo is None or (photo.checks or {}).get("status") != PENDING:
            return False
        meta = dict(photo.exif or {})
        sha, patch_id = photo.sha256, photo.patch_id
        lon, lat, accuracy, bearing, taken = photo.lon, photo.lat, photo.accuracy_m, photo.bearing, photo.taken_at
    with blobs.open(sha) as fh:
        data = fh.read()
    info = display_sha = problem = None
    try:
        info = inspect_image(data, formats=policy.allowed_formats, max_pixels=policy.max_pixels,
                             max_bytes=policy.max_photo_bytes)
        display_sha = blobs.put_bytes(display_copy(data, max_px=policy.display_max_px,
                                                   formats=policy.allowed_formats, max_pixels=policy.max_pixels))
    except InputError as exc:
        problem = str(exc)
    # checks (read phase: no write lock held)
    with store.session() as s:
        patch = s.get(Patch, patch_id)
        rnd = s.get(Round, patch.round_id) if patch is not None else None
        if info is not None and patch is not None:
            obs = photo_checks.PhotoObservation(
                lon=lon, lat=lat, accuracy_m=accuracy, bearing=bearing, taken_at=taken,
                mock_location=meta.get("mock_location"), exif_lon=info.exif.gps_lon, exif_lat=info.exif.gps_lat,
                exif_gps_valid=info.exif.gps_valid, exif_gps_problem=info.exif.gps_problem,
                sha256=sha, phash=info.phash, kind=meta.get("kind"))
            results = photo_checks.check_photo(
                obs, patch.geometry, policy=policy, field_start=rnd.field_start if rnd else None,
                field_end=rnd.field_end if rnd else None, patch_id=patch.id, prior=_prior_uses(s, patch, photo_id))
            checks = {"status": photo_checks.summarize(results), "policy": policy.version,
                      "results": [r.to_dict() for r in results]}
        else:
            checks = {"status": "fail", "policy": policy.version, "results": [
                {"name": "file", "status": "fail", "message": f"the photo cannot be decoded: {problem}"}]}
    exif = {**meta, "pending": False, "processed_at": dt.datetime.now(dt.UTC).isoformat()}
    if info is not None:
        exif.update({**info.exif.to_dict(), "phash": info.phash, "width": info.width, "height": info.height,
                     "display": {"sha256": display_sha, "mime": "image/jpeg"}})
    with write_lock(store), store.transaction(actor="system:photo-processing") as tx:
        photo = tx.session.get(Photo, photo_id)
        if photo is None or (photo.checks or {}).get("status") != PENDING:
            return False  # another worker finished it meanwhile
        photo.exif = exif
        photo.checks = checks
        patch = tx.session.get(Patch, photo.patch_id)
        lead = patch_divisions(patch) if patch is not None else []
        tx.audit("photo.checked", "photo", photo.id, after={"checks": checks["status"], "phash": exif.get("phash")},
                 round_id=patch.round_id if patch is not None else None, division_code=lead[0] if lead else None)
    return True


class PhotoProcessor:
    """One background thread processing pending photos in order; :meth:`drain` waits for the queue."""

    def __init__(self, store: Store, blobs: Any, policy: PhotoPolicy) -> None:
        self.store, self.blobs, self.policy = store, blobs, policy
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def start(self) -> PhotoProcessor:
        """Start the thread (once) and queue every photo left pending by an earlier run."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tuban-photo-processing", daemon=True)
                self._thread.start()
                for pid in pending_photo_ids(self.store):
                    self._queue.put(pid)
        return self

    def submit(self, photo_id: int) -> None:
        self.start()
        self._queue.put(photo_id)

    def drain(self) -> None:
        """Block until every queued photo has been processed."""
        self._queue.join()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            pid = self._queue.get()
            try:
                if pid is None:
                    return
                process_photo(self.store, self.blobs, self.policy, pid)
            except Exception as exc:  # the photo stays pending and is redone at the next start
                _log.exception("processing photo %s failed", pid)
                self.errors.append(f"photo {pid}: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()
