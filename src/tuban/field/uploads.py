"""Resumable photo uploads in the style of tus (断点续传), acknowledged only after a durable commit.

Protocol (each step safe to retry after a lost response, reliability.md D #38, #39)::

    create(meta)            → upload id (= the photo's client UUID), offset, length
    append(id, offset, b)   → new offset (409 with the persisted offset if *offset* is stale)
    status(id)              → persisted offset / the photo id once complete
    (last chunk)            → sha256 verified → image checked → blob stored (fsync, atomic
                              rename) → Photo row + audit committed → upload marked complete

State lives on disk next to the blob store: ``uploads/<id>.json`` (metadata and the
persisted offset, replaced atomically) and ``uploads/<id>.part`` (bytes, fsync'd before
the offset is recorded). After ``kill -9`` the offset in the JSON is the truth: bytes past
it are cut off on the next call, so a resumed upload continues exactly there. A Photo row
is created only from a complete, hash-verified blob, so no record ever points at a partial
file; the Photo's unique ``client_id`` makes a second completion return the first photo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tuban.blobs import BlobStore
from tuban.errors import (
    ConflictError,
    FieldError,
    InputError,
    IntegrityError,
    LimitExceededError,
    NotFoundError,
    StoreError,
    TubanError,
    UsageError,
)
from tuban.field import checks as photo_checks
from tuban.field.images import probe_image
from tuban.field.policy import PhotoPolicy, load_policy
from tuban.field.processing import PENDING, PhotoProcessor, process_photo
from tuban.field.sync import normalize_client_id
from tuban.field.writer import write_lock
from tuban.files import fsync_dir, replacing
from tuban.store.models import Photo
from tuban.store.store import Store, jsonable
from tuban.workflow.access import Actor, load_patch, patch_divisions

__all__ = ["HashMismatchError", "OffsetMismatchError", "PhotoMeta", "StorageUnavailableError", "UploadManager",
           "UploadState", "photo_to_dict"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_CHUNK = 8 * 1024 * 1024


class HashMismatchError(ConflictError):
    """The assembled bytes do not have the sha256 the device declared; the upload restarts."""

    code = "hash-mismatch"


class StorageUnavailableError(StoreError):
    """The disk refused a write or an fsync (ENOSPC, EIO …): nothing was acknowledged; retry later.

    ``status`` is the HTTP status the field router answers: 507 when the disk is full, else 503.
    """

    code = "storage-unavailable"

    def __init__(self, exc: OSError, *, during: str) -> None:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        what = "the disk is full" if full else f"the disk reported {errno.errorcode.get(exc.errno or 0, 'an error')}"
        super().__init__(f"{during} failed: {what}; nothing was acknowledged",
                         hint="the phone keeps its copy and retries; the upload resumes at the last acknowledged byte")
        self.status = 507 if full else 503
        self.errno = exc.errno


@contextlib.contextmanager
def _disk(during: str) -> Iterator[None]:
    """Turn an operating-system write error into :class:`StorageUnavailableError` (never a 2xx)."""
    try:
        yield
    except TubanError:
        raise
    except OSError as exc:
        raise StorageUnavailableError(exc, during=during) from exc


@dataclass(frozen=True, slots=True)
class PhotoMeta:
    """What the device says about a photo before sending its bytes."""

    client_id: str
    patch_id: int
    size: int
    sha256: str
    mime: str = "image/jpeg"
    kind: str | None = None
    lon: float | None = None
    lat: float | None = None
    accuracy_m: float | None = None
    bearing: float | None = None
    taken_at: str | None = None
    mock_location: bool | None = None
    record_client_id: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, policy: PhotoPolicy) -> PhotoMeta:
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise UsageError(f"unknown photo metadata keys: {extra}")
        try:
            size, patch_id = int(data["size"]), int(data["patch_id"])
        except (KeyError, TypeError, ValueError):
            raise UsageError("photo metadata needs integer size and patch_id") from None
        if size <= 0 or size > policy.max_photo_bytes:
            raise LimitExceededError(f"photo of {size} bytes; the limit is {policy.max_photo_bytes} bytes")
        sha = str(data.get("sha256") or "").lower()
        if not _SHA_RE.match(sha):
            raise UsageError("sha256 must be 64 hex digits (the device hashes the original file)")
        kind = data.get("kind")
        if kind is not None and kind not in (policy.kinds or {}):
            raise FieldError(f"photo kind {kind!r} is not one of {sorted(policy.kinds or {})}")

        def num(name: str, lo: float, hi: float) -> float | None:
            v = data.get(name)
            if v is None:
                return None
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise FieldError(f"{name}={v!r} is not a number") from None
            return f if math.isfinite(f) and lo <= f <= hi else None  # kept as "unknown", never 0

        taken = data.get("taken_at")
        if taken is not None:
            try:
                dt.datetime.fromisoformat(str(taken))
            except ValueError:
                raise FieldError(f"taken_at={str(taken)[:40]!r} is not an ISO time") from None
        mock = data.get("mock_location")
        rec = data.get("record_client_id")
        return cls(client_id=normalize_client_id(data.get("client_id")), patch_id=patch_id, size=size, sha256=sha,
                   mime=str(data.get("mime") or "image/jpeg")[:64], kind=kind,
                   lon=num("lon", -180, 180), lat=num("lat", -90, 90), accuracy_m=num("accuracy_m", 0, 1e6),
                   bearing=num("bearing", -360, 720), taken_at=str(taken) if taken else None,
                   mock_location=mock if isinstance(mock, bool) else None,
                   record_client_id=normalize_client_id(rec) if rec else None)


@dataclass(slots=True)
class UploadState:
    """The persisted state of one upload."""

    id: str
    user_id: int
    meta: dict[str, Any]
    offset: int = 0
    photo_id: int | None = None
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def length(self) -> int:
        return int(self.meta["size"])

    @property
    def complete(self) -> bool:
        return self.photo_id is not None

    def to_dict(self) -> dict[str, Any]:
        return {"upload_id": self.id, "offset": self.offset, "length": self.length, "complete": self.complete,
                "photo_id": self.photo_id}


def photo_to_dict(photo: Photo) -> dict[str, Any]:
    """A photo as JSON (no file paths: the bytes are served by id through a permission check)."""
    return {"id": photo.id, "patch_id": photo.patch_id, "client_id": photo.client_id, "sha256": photo.sha256,
            "size": photo.size, "mime": photo.mime, "lon": photo.lon, "lat": photo.lat,
            "accuracy_m": photo.accuracy_m, "bearing": photo.bearing, "taken_at": jsonable(photo.taken_at),
            "received_at": jsonable(photo.received_at), "kind": (photo.exif or {}).get("kind"),
            "checks": photo.checks, "exif": {k: v for k, v in (photo.exif or {}).items() if k != "display"}}


class UploadManager:
    """Resumable uploads for one store, blob store and upload folder."""

    def __init__(self, store: Store, blobs: BlobStore, upload_dir: str | os.PathLike[str], *,
                 policy: PhotoPolicy | None = None, processor: PhotoProcessor | None = None) -> None:
        self.store = store
        self.processor = processor
        self.blobs = blobs
        self.dir = Path(upload_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.policy = policy or load_policy()

    # -- files ---------------------------------------------------------------------------

    def _paths(self, upload_id: str) -> tuple[Path, Path, Path]:
        uid = normalize_client_id(upload_id)
        return self.dir / f"{uid}.json", self.dir / f"{uid}.part", self.dir / f"{uid}.lock"

    @contextlib.contextmanager
    def _locked(self, upload_id: str) -> Iterator[None]:
        """One writer per upload, across threads and worker processes."""
        lock = self._paths(upload_id)[2]
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load(self, upload_id: str) -> UploadState | None:
        meta_path, part, _ = self._paths(upload_id)
        try:
            state = UploadState(**json.loads(meta_path.read_text("utf-8")))
        except FileNotFoundError:
            return None
        if not state.complete:
            # bytes past the recorded offset were never acknowledged: cut them off
            size = part.stat().st_size if part.exists() else 0
            if size != state.offset:
                if size < state.offset:  # data lost below the acknowledged offset: restart honestly
                    state.offset = size
                    self._save(state)
                with part.open("r+b" if part.exists() else "wb") as fh:
                    fh.truncate(state.offset)
                    fh.flush()
                    os.fsync(fh.fileno())
        return state

    def _save(self, state: UploadState) -> None:
        meta_path = self._paths(state.id)[0]
        with replacing(meta_path, durable=True) as tmp:
            tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")

    def _owned(self, actor: Actor, upload_id: str) -> UploadState:
        state = self._load(upload_id)
        if state is None or state.user_id != actor.user_id:
            raise NotFoundError(f"no upload {upload_id}")
        return state

    def owned(self, actor: Actor, upload_id: str) -> UploadState:
        """The upload if *actor* started it, else :class:`NotFoundError` (also for a non-UUID id)."""
        try:
            uid = normalize_client_id(upload_id)
        except UsageError:
            raise NotFoundError(f"no upload {upload_id[:40]!r}") from None
        with self._locked(uid):
            return self._owned(actor, uid)

    # -- protocol ------------------------------------------------------------------------

    def create(self, actor: Actor, meta: Mapping[str, Any]) -> UploadState:
        """Start (or find again) the upload of one photo; its id is the photo's client UUID."""
        pm = PhotoMeta.from_mapping(meta, policy=self.policy)
        with self.store.session() as s:
            load_patch(s, actor, pm.patch_id, "photo.upload")
            done = s.scalar(select(Photo).where(Photo.client_id == pm.client_id))
        if done is not None:
            if done.sha256 != pm.sha256 or done.patch_id != pm.patch_id:
                raise ConflictError(f"photo client id {pm.client_id} was already used for another file",
                                    hint="generate a new client id for a new photo")
            return UploadState(id=pm.client_id, user_id=actor.user_id, meta=asdict(pm), offset=done.size,
                               photo_id=done.id)
        with self._locked(pm.client_id), _disk("starting the upload"):
            state = self._load(pm.client_id)
            if state is not None:
                if state.user_id != actor.user_id:
                    raise NotFoundError(f"no upload {pm.client_id}")
                if state.meta["sha256"] != pm.sha256 or state.meta["size"] != pm.size:
                    raise ConflictError(f"upload {pm.client_id} exists for another file (size or sha256 differ)",
                                        hint="generate a new client id for a new photo")
                return state
            part = self._paths(pm.client_id)[1]
            with part.open("wb") as fh:
                os.fsync(fh.fileno())
            state = UploadState(id=pm.client_id, user_id=actor.user_id, meta=asdict(pm))
            self._save(state)
            return state

    def status(self, actor: Actor, upload_id: str) -> UploadState:
        """The persisted offset (``HEAD``), or the photo id once complete."""
        with self._locked(upload_id), _disk("storing the photo"):
            state = self._owned(actor, upload_id)
            if not state.complete and state.offset == state.length:
                return self._finish(actor, state)
            return state

    def append(self, actor: Actor, upload_id: str, offset: int, chunk: bytes) -> UploadState:
        """Write *chunk* at *offset* (must equal the persisted offset); completes on the last byte."""
        if len(chunk) > MAX_CHUNK:
            raise LimitExceededError(f"chunk of {len(chunk)} bytes; the limit is {MAX_CHUNK}")
        with self._locked(upload_id), _disk("writing the chunk"):
            state = self._owned(actor, upload_id)
            if state.complete:
                return state
            if offset != state.offset:
                raise OffsetMismatchError(state.offset, offset)
            if offset + len(chunk) > state.length:
                raise LimitExceededError(f"chunk ends at {offset + len(chunk)}, past the declared size "
                                         f"{state.length}")
            part = self._paths(upload_id)[1]
            with part.open("r+b") as fh:
                fh.seek(offset)
                fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            state.offset = offset + len(chunk)
            self._save(state)
            if state.offset == state.length:
                return self._finish(actor, state)
            return state

    # -- completion ----------------------------------------------------------------------

    def _finish(self, actor: Actor, state: UploadState) -> UploadState:
        part = self._paths(state.id)[1]
        data = part.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha != state.meta["sha256"] or len(data) != state.length:
            state.offset = 0
            with part.open("wb") as fh:
                os.fsync(fh.fileno())
            self._save(state)
            raise HashMismatchError(f"the uploaded bytes have sha256 {sha[:12]}…, the device declared "
                                    f"{state.meta['sha256'][:12]}…", hint="the upload was reset; send it again")
        pol = self.policy
        try:  # the cheap checks only (nothing decoded): EXIF, hashes and display copy come after the ack
            _fmt, mime, width, height = probe_image(data, formats=pol.allowed_formats, max_pixels=pol.max_pixels,
                                                   max_bytes=pol.max_photo_bytes)
        except InputError:
            self._discard(state.id)
            raise
        self.blobs.put_bytes(data)  # fsync + atomic rename: whole or absent
        fsync_dir(self.blobs.path(state.meta["sha256"]).parent)  # a retry after a failed folder fsync: durable now
        photo_id = self._commit(actor, state, mime=mime, width=width, height=height)
        state.photo_id = photo_id
        self._save(state)
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        if self.processor is not None:
            self.processor.submit(photo_id)
        else:  # no background worker: process now (still after the durable commit)
            process_photo(self.store, self.blobs, self.policy, photo_id)
        return state

    def _discard(self, upload_id: str) -> None:
        for path in self._paths(upload_id)[:2]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _commit(self, actor: Actor, state: UploadState, *, mime: str, width: int, height: int) -> int:
        """The Photo row, ``checks.status = "pending"`` (persisted: processing is redone after a crash)."""
        pm = PhotoMeta(**state.meta)
        taken = dt.datetime.fromisoformat(pm.taken_at) if pm.taken_at else None
        valid = photo_checks.valid_lonlat(pm.lon, pm.lat)
        for attempt in range(2):
            try:
                with write_lock(self.store), self.store.transaction(actor=actor.username) as tx:
                    s = tx.session
                    existing = s.scalar(select(Photo.id).where(Photo.client_id == pm.client_id))
                    if existing is not None:
                        return int(existing)
                    patch = load_patch(s, actor, pm.patch_id, "photo.upload")
                    photo = Photo(
                        patch_id=patch.id, sha256=pm.sha256, size=pm.size, mime=mime,
                        lon=pm.lon if valid else None, lat=pm.lat if valid else None,
                        accuracy_m=pm.accuracy_m, bearing=None if pm.bearing is None else pm.bearing % 360.0,
                        taken_at=taken if taken is not None and taken.tzinfo is not None else None,
                        user_id=actor.user_id, client_id=pm.client_id,
                        checks={"status": PENDING, "policy": self.policy.version, "results": []},
                        exif={"pending": True, "kind": pm.kind, "width": width, "height": height,
                              "device_taken_at": pm.taken_at, "mock_location": pm.mock_location,
                              "record_client_id": pm.record_client_id})
                    s.add(photo)
                    s.flush()
                    lead = patch_divisions(patch)
                    tx.audit("photo.create", "photo", photo.id, after={
                        "client_id": pm.client_id, "patch_id": patch.id, "sha256": pm.sha256, "size": pm.size,
                        "checks": PENDING}, round_id=patch.round_id, division_code=lead[0] if lead else None)
                    return photo.id
            except IntegrityError:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


class OffsetMismatchError(ConflictError):
    """The chunk's offset is not the persisted one; the client should ``HEAD`` and resume."""

    code = "offset-mismatch"

    def __init__(self, persisted: int, sent: int) -> None:
        super().__init__(f"chunk sent at offset {sent}, but the server has {persisted} bytes",
                         hint=f"resume at offset {persisted}")
        self.persisted = persisted

    def problem_extra(self) -> dict[str, Any]:
        return {"offset": self.persisted}
