"""Detection jobs (检测任务): detections asked for through the server and run by ``tuban worker`` under a lease.

A province analyst names two scenes of the server's imagery folder and an output name
(:func:`submit_job`); a worker process (:class:`Worker`, ``tuban worker``) claims the job, runs
:func:`tuban.detect.engine.detect` and writes ``NAME.gpkg`` into the detection folder, where
:func:`tuban.workflow.intake.create_round_from_file` picks it up as a new round.

Imagery jobs (复核影像任务, :func:`submit_imagery_job`) go through the same queue, leases and workers: one scene
of the imagery folder (a band folder, a ``.SAFE``, a Landsat folder, a multi-band file) becomes a true-colour
COG, ``true-colour/NAME.tif`` in the imagery folder, which a round can then show as its before or after
imagery (:func:`imagery_file`).

Failure handling (reliability.md #45):

- A claim is a lease (``lease_until``) that the worker renews from a thread while it runs
  (:func:`renew_lease`, every third of the lease). A worker that dies, or hangs, or whose machine
  restarts stops renewing it; once it has run out, the next :func:`claim_job` takes the job again,
  at most ``max_attempts`` times in all, after which the job fails with a message saying so.
- The output is written under a hidden temporary name and renamed to ``NAME.gpkg`` inside the
  transaction that marks the job done (:func:`finish_job`), and only while the worker still holds
  the lease: no partial output is ever visible, a worker that lost its lease throws its result
  away, and the job has exactly one ``detection_job.done`` audit row. Detection is deterministic,
  so a job run again after a crash between the rename and the commit writes the same file.
- A run the inputs make impossible (a missing band, dates that do not overlap: a
  :class:`tuban.errors.TubanError`) fails at once; anything else (a lost Dask cluster, a bug) is
  queued again while attempts remain.

Every change of a job's state is one transaction with its audit row; renewing a lease (and the
progress written with it) is not audited.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select

from tuban.errors import (
    BandError,
    ClusterError,
    ConfigError,
    ConflictError,
    InputError,
    InputNotFoundError,
    IntegrityError,
    LeaseLostError,
    NotFoundError,
    PermissionDeniedError,
    TubanError,
    UnsafeInputError,
    UsageError,
)
from tuban.store.models import DetectionJob, utcnow
from tuban.store.store import Store, Transaction
from tuban.workflow.access import Actor
from tuban.workflow.intake import run_imagery

__all__ = [
    "ACTIVE_STATES",
    "JobClaim",
    "Worker",
    "cancel_job",
    "claim_job",
    "fail_job",
    "finish_job",
    "get_job",
    "imagery_entries",
    "imagery_file",
    "list_jobs",
    "renew_lease",
    "resolve_imagery",
    "submit_imagery_job",
    "submit_job",
]

_LOG = logging.getLogger(__name__)
VERB = "detect.run"
ACTIVE_STATES = ("queued", "running")
#: job priorities: 0 ordinary … 9 urgent; a worker claims the highest first, the oldest among equals
MAX_PRIORITY = 9
#: queued or running jobs one user may have at once (one account cannot fill the workers' queue); a soft
#: bound: two submissions racing may both pass it
MAX_ACTIVE_PER_USER = 10
WORKER_ACTOR = "worker"
#: a name in the imagery folder: up to four path parts of letters, digits, ``_ - . +`` and spaces, none hidden
_PART = re.compile(r"^[\w\-.+ ]{1,128}$")
_OUTPUT = re.compile(r"^[\w\-. ]{1,120}$")
#: scene suffixes offered by :func:`imagery_entries` (folders are offered too: band folders, SAFE, Landsat)
IMAGERY_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".vrt", ".json", ".zip", ".hdr", ".dat")
PARAM_KEYS = ("before", "after", "baseline", "sensor", "bands", "method", "mmu_ha", "threshold", "water")
IMAGERY_PARAM_KEYS = ("scene", "sensor", "bands")
#: the imagery folder's sub-folder imagery jobs write into (its files are offered as review imagery)
TRUE_COLOUR_DIR = "true-colour"


# -- names inside the imagery folder --------------------------------------------------------


def resolve_imagery(folder: Path | None, name: str) -> Path:
    """The path of the scene *name*: a relative path of plain parts inside *folder* (no ``..``, no hidden
    part, no link out of it) that exists. Anything else is refused with the reason."""
    if folder is None:
        raise UsageError("this server has no imagery folder", hint="start it with a workspace (tuban serve)")
    parts = (name or "").replace("\\", "/").split("/")
    if not name or len(parts) > 4 or any(not _PART.match(p) or p.startswith(".") for p in parts):
        raise UnsafeInputError(f"{name!r} is not the name of a scene in the imagery folder",
                               hint="use a name GET /api/imagery lists (relative, no '..' or hidden parts)")
    root = folder.resolve()
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root):
        raise UnsafeInputError(f"{name!r} leads out of the imagery folder (a link?)",
                               hint="copy the scene into the imagery folder")
    if not path.exists():
        raise InputNotFoundError(f"no scene {name!r} in the imagery folder", hint="GET /api/imagery lists them")
    return path


def imagery_file(folder: Path | None, name: str) -> Path:
    """The path of ``name`` in the imagery folder (:func:`resolve_imagery`) when it is one georeferenced raster
    file with one band or three and more (a round's review imagery, shown by bands 1–3 as red, green, blue);
    errors name the file as the client did, never by the server's path."""
    from tuban.raster.scene import quiet_open

    path = resolve_imagery(folder, name)
    if not path.is_file():
        raise UsageError(f"{name!r} is a folder, not an image file",
                         hint="give a true-colour GeoTIFF/COG (a detection job writes one per date; an imagery "
                              "job makes one from a scene)")
    try:
        with quiet_open(path) as src:
            count, crs = src.count, src.crs
    except TubanError as exc:
        exc.message = exc.message.replace(str(path), name)
        raise
    if crs is None:
        raise InputError(f"{name!r} has no georeference (CRS)", hint="give a GeoTIFF/COG with its CRS")
    if count == 2:
        raise InputError(f"{name!r} has 2 bands: the map shows band 1 alone or bands 1–3 as red, green, blue",
                         hint="give a single-band or a true-colour (red, green, blue) image")
    return path


def imagery_entries(folder: Path | None, *, limit: int = 5000) -> list[dict[str, Any]]:
    """The scenes a job may name: files with a scene suffix and folders, in the imagery folder and one level
    down (a province keeps a folder per date), sorted by name; at most ``limit``."""
    if folder is None or not folder.is_dir():
        return []
    out = []
    for level in (folder.iterdir(), *(d.iterdir() for d in sorted(folder.iterdir())
                                      if d.is_dir() and not d.name.startswith(".")
                                      and d.suffix.lower() not in (".safe",))):
        for p in level:
            if p.name.startswith(".") or not (p.is_dir() or p.suffix.lower() in IMAGERY_SUFFIXES):
                continue
            if p.is_dir() and p.parent == folder and p.name == TRUE_COLOUR_DIR:
                continue  # the imagery jobs' folder is no scene (its images are offered one by one)
            name = p.relative_to(folder).as_posix()
            if all(_PART.match(part) for part in name.split("/")):
                out.append({"name": name, "kind": "folder" if p.is_dir() else "file"})
    return sorted(out, key=lambda e: e["name"])[:limit]


def _output_name(output: str, suffix: str = ".gpkg") -> str:
    stem = output[: -len(suffix)] if output.lower().endswith(suffix) else output
    if not _OUTPUT.match(stem or "") or stem.startswith("."):
        raise UsageError(f"{output!r} is not an output name", hint="letters, digits, '_', '-', '.' and spaces, "
                         f"not starting with '.', at most 120 characters ({suffix} is added)")
    return f"{stem}{suffix}"


def _job_output(output: str, *, imagery: bool) -> str:
    """The output column of a job writing ``output``: ``NAME.gpkg`` in the detection folder, or an imagery job's
    ``true-colour/NAME.tif`` in the imagery folder (what a submission stores and the worker checks again)."""
    return f"{TRUE_COLOUR_DIR}/{_output_name(output, '.tif')}" if imagery else _output_name(output)


# -- the province's side: submit, list, cancel -----------------------------------------------


def job_view(job: DetectionJob) -> dict[str, Any]:
    """A job as the API shows it."""
    def iso(v: dt.datetime | None) -> str | None:
        return None if v is None else v.isoformat()

    return {"id": job.id, "kind": (job.params or {}).get("kind", "detect"), "state": job.state,
            "output": job.output, "params": dict(job.params or {}),
            "attempts": job.attempts, "max_attempts": job.max_attempts, "priority": job.priority or 0,
            "worker": job.lease_owner,
            "lease_until": iso(job.lease_until), "cancel_requested": bool(job.cancel_requested),
            "progress": job.progress, "result": job.result, "error": job.error, "created_by": job.created_by,
            "created_at": iso(job.created_at), "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at)}


def _sensor_bands(params: dict[str, Any], out: dict[str, Any]) -> None:
    """``sensor`` (a profile name) and ``bands`` (roles in file order) of ``params``, checked, into ``out``."""
    if params.get("sensor") is not None:
        from tuban.raster.profiles import PROFILES

        if str(params["sensor"]) not in PROFILES:
            raise UsageError(f"unknown sensor {params['sensor']!r}", hint=f"one of {', '.join(sorted(PROFILES))}")
        out["sensor"] = str(params["sensor"])
    if params.get("bands") is not None:
        from tuban.raster.profiles import parse_band_roles

        out["bands"] = list(parse_band_roles(str(params["bands"])) or ())


def _open_scene(imagery_dir: Path | None, name: str, params: dict[str, Any]):
    """The scene *name* of the imagery folder opened with the job's ``sensor`` and ``bands``; errors name it as
    the job did, never by the server's path."""
    from tuban.raster.scene import open_scene

    path = resolve_imagery(imagery_dir, name)
    try:
        return open_scene(path, sensor=params.get("sensor"),
                          bands=tuple(params["bands"]) if params.get("bands") else None)
    except TubanError as exc:
        exc.message = exc.message.replace(str(path), name)
        raise


def _imagery_params(imagery_dir: Path | None, params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(IMAGERY_PARAM_KEYS)
    if unknown:
        raise UsageError(f"unknown imagery parameters: {', '.join(sorted(unknown))}",
                         hint=f"known: {', '.join(IMAGERY_PARAM_KEYS)}")
    if not params.get("scene"):
        raise UsageError("an imagery job needs 'scene': a scene of the imagery folder")
    out: dict[str, Any] = {"kind": "imagery", "scene": str(params["scene"])}
    _sensor_bands(params, out)
    # the scene is opened now (its metadata only): a scene without visible bands is refused at once
    scene = _open_scene(imagery_dir, out["scene"], out)
    from tuban.raster.quicklook import ROLES

    missing = [r for r in ROLES if r not in scene.bands]
    if missing:
        raise BandError(f"scene {out['scene']!r} has no {', '.join(missing)} band for a true-colour image",
                        hint="name its bands (bands: blue,green,red,… in file order) or its sensor")
    return out


def _params(imagery_dir: Path | None, params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(PARAM_KEYS)
    if unknown:
        raise UsageError(f"unknown detection parameters: {', '.join(sorted(unknown))}",
                         hint=f"known: {', '.join(PARAM_KEYS)}")
    out: dict[str, Any] = {}
    for key in ("before", "after", "baseline"):
        if params.get(key) is None:
            if key != "baseline":
                raise UsageError(f"a detection job needs {key!r}: a scene of the imagery folder")
            continue
        resolve_imagery(imagery_dir, str(params[key]))
        out[key] = str(params[key])
    if params.get("method") is not None:
        from tuban.raster.change import METHODS

        if str(params["method"]) not in METHODS:
            raise UsageError(f"unknown method {params['method']!r}", hint=f"one of {', '.join(sorted(METHODS))}")
        out["method"] = str(params["method"])
    _sensor_bands(params, out)
    mmu = float(params.get("mmu_ha", 0.04))
    if not 0 <= mmu <= 100:
        raise UsageError(f"mmu_ha={mmu} is outside 0–100 ha")
    out["mmu_ha"] = mmu
    if params.get("threshold") is not None:
        out["threshold"] = float(params["threshold"])
    out["water"] = bool(params.get("water", False))
    return out


def submit_job(store: Store, actor: Actor, *, imagery_dir: Path | None, detection_dir: Path | None, output: str,
               params: dict[str, Any], max_attempts: int = 3, priority: int = 0) -> dict[str, Any]:
    """Queue a detection of ``params`` (``before``, ``after`` and optionally ``baseline``: scenes of the imagery
    folder; ``sensor``, ``bands``, ``method``, ``mmu_ha``, ``threshold``, ``water``: as ``tuban detect``) into
    ``output`` (``NAME[.gpkg]`` in the detection folder), at ``priority`` (0–:data:`MAX_PRIORITY`). One audited
    transaction."""
    detections = _may_submit(actor, detection_dir, "detection", max_attempts, priority)
    name = _job_output(output, imagery=False)
    clean = _params(imagery_dir, params)
    return _queue_new(store, actor, detections, name, "detection", "the detection output", clean, max_attempts,
                      priority)


def submit_imagery_job(store: Store, actor: Actor, *, imagery_dir: Path | None, output: str, params: dict[str, Any],
                       max_attempts: int = 3, priority: int = 0) -> dict[str, Any]:
    """Queue a true-colour image (复核影像) of ``params["scene"]`` (a scene of the imagery folder, opened with
    ``sensor`` and ``bands`` when given) into ``true-colour/NAME.tif`` of the imagery folder (``output``:
    ``NAME[.tif]``), for a round's before/after imagery. One audited transaction, as :func:`submit_job`."""
    imagery = _may_submit(actor, imagery_dir, "imagery", max_attempts, priority)
    name = _job_output(output, imagery=True)
    clean = _imagery_params(imagery, params)
    return _queue_new(store, actor, imagery, name, "imagery", "the image", clean, max_attempts, priority)


def _queue_new(store: Store, actor: Actor, folder: Path, name: str, kind: str, what: str, params: dict[str, Any],
               max_attempts: int, priority: int) -> dict[str, Any]:
    """The end of every submission: ``name`` (``what``, e.g. "the image") must not exist in ``folder`` yet and
    must be writable there (:func:`_writable`); then the job is queued (:func:`_queue`)."""
    if (folder / name).exists():
        raise ConflictError(f"{what} {name!r} exists already", hint="choose another output name")
    _writable(folder, name, kind)
    return _queue(store, actor, name, params, max_attempts, priority)


def _writable(folder: Path, name: str, kind: str) -> None:
    """Refuse a job whose output could not be written: the nearest folder on the output's path that exists (the
    worker creates the rest) must be writable here. Checked at submission, so a read-only folder (an imagery
    share mounted read-only) is said at once instead of by a failed job; the message names the folder by its
    role, never by its server path."""
    target = (folder / name).parent
    while not target.exists() and target.parent != target:
        target = target.parent
    if not os.access(target, os.W_OK | os.X_OK):
        sub = target.relative_to(folder).as_posix() if target.is_relative_to(folder) else "."
        where = f"the {kind} folder" + ("" if sub == "." else f" ({sub}/)")
        raise ConfigError(f"the server cannot write into {where}, so a job could not save {name!r}",
                          hint=f"give the server and tuban worker write access to {where}, or ask the "
                               "server's administrator")


def _may_submit(actor: Actor, folder: Path | None, kind: str, max_attempts: int, priority: int) -> Path:
    """The checks every submission starts with, before it looks at any file: the actor may run jobs, the server
    has the folder the job writes into (returned), and the attempts and priority are within bounds."""
    if not actor.allows(VERB):
        raise PermissionDeniedError(f"{actor.username} may not run {kind} jobs")
    if folder is None:
        raise UsageError(f"this server has no {kind} folder", hint="start it with a workspace (tuban serve)")
    if not 1 <= max_attempts <= 10:
        raise UsageError(f"max_attempts={max_attempts} is outside 1–10")
    _check_priority(priority)
    return folder


def _check_priority(priority: int) -> None:
    if not 0 <= priority <= MAX_PRIORITY:
        raise UsageError(f"priority={priority} is outside 0–{MAX_PRIORITY}", hint="0 ordinary … 9 urgent")


def _queue(store: Store, actor: Actor, name: str, params: dict[str, Any], max_attempts: int, priority: int
           ) -> dict[str, Any]:
    """Insert a queued job writing ``name``, with its audit row; :class:`ConflictError` when an active job
    writes it already (the partial unique index settles two submissions racing)."""
    try:
        with store.transaction(actor=actor.username) as tx:
            active = tx.session.scalars(select(DetectionJob.id).where(
                DetectionJob.output == name, DetectionJob.state.in_(ACTIVE_STATES))).first()
            if active is not None:
                raise ConflictError(f"job {active} is writing {name!r} already", hint="choose another output name")
            mine = tx.session.scalar(select(func.count()).select_from(DetectionJob).where(
                DetectionJob.created_by == actor.username, DetectionJob.state.in_(ACTIVE_STATES))) or 0
            if mine >= MAX_ACTIVE_PER_USER:
                raise ConflictError(f"{actor.username} has {mine} jobs queued or running already (at most "
                                    f"{MAX_ACTIVE_PER_USER} at once)", hint="wait for one to end, or cancel one")
            job = DetectionJob(state="queued", output=name, params=params, attempts=0, max_attempts=max_attempts,
                               priority=priority, cancel_requested=False, created_by=actor.username,
                               created_at=utcnow())
            tx.session.add(job)
            tx.session.flush()
            view = job_view(job)
            tx.audit("detection_job.submit", "detection_job", job.id, after=view)
    except IntegrityError as exc:  # a submission of the same output committed between the check and the insert
        raise ConflictError(f"another job was queued for {name!r} just now", hint="choose another output name") from exc
    return view


def list_jobs(store: Store, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest jobs first."""
    with store.session() as s:
        jobs = s.scalars(select(DetectionJob).order_by(DetectionJob.id.desc()).limit(max(1, min(limit, 500))))
        return [job_view(j) for j in jobs]


def get_job(store: Store, job_id: int) -> dict[str, Any]:
    with store.session() as s:
        job = s.get(DetectionJob, job_id)
        if job is None:
            raise NotFoundError(f"no detection job {job_id}")
        return job_view(job)


def _locked(tx: Transaction, job_id: int) -> DetectionJob:
    job = tx.session.get(DetectionJob, job_id, with_for_update=True)
    if job is None:
        raise NotFoundError(f"no detection job {job_id}")
    return job


def cancel_job(store: Store, actor: Actor, job_id: int) -> dict[str, Any]:
    """Cancel a queued job at once; ask a running one's worker to stop (it does at its next progress step)."""
    if not actor.allows(VERB):
        raise PermissionDeniedError(f"{actor.username} may not run detections")
    with store.transaction(actor=actor.username) as tx:
        job = _locked(tx, job_id)
        before = job_view(job)
        if job.state == "queued":
            job.state, job.finished_at = "cancelled", utcnow()
        elif job.state == "running":
            job.cancel_requested = True
        else:
            raise ConflictError(f"detection job {job_id} is {job.state} already")
        tx.session.flush()
        view = job_view(job)
        tx.audit("detection_job.cancel", "detection_job", job.id, before=before, after=view)
    return view


def set_priority(store: Store, actor: Actor, job_id: int, priority: int) -> dict[str, Any]:
    """Change a queued job's priority (a running one has its worker already), audited."""
    if not actor.allows(VERB):
        raise PermissionDeniedError(f"{actor.username} may not run detections")
    _check_priority(priority)
    with store.transaction(actor=actor.username) as tx:
        job = _locked(tx, job_id)
        if job.state != "queued":
            raise ConflictError(f"detection job {job_id} is {job.state}: only a queued job's priority can change")
        before = job_view(job)
        job.priority = priority
        tx.session.flush()
        view = job_view(job)
        tx.audit("detection_job.priority", "detection_job", job.id, before=before, after=view)
    return view


# -- the worker's side: claim, renew, finish, fail --------------------------------------------


@dataclass(frozen=True)
class JobClaim:
    """A job a worker holds: its id, output name, parameters, which attempt this is, and who queued it."""

    id: int
    output: str
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    created_by: str = ""


def claim_job(store: Store, owner: str, lease_s: float) -> JobClaim | None:
    """Take the queued job of highest priority (the oldest among equals), or a running one whose lease ran out, for ``lease_s`` seconds; ``None``
    when there is none. A job whose lease ran out after its last attempt fails instead (audited); a job
    cancelled while its worker was gone ends cancelled."""
    with store.transaction(actor=WORKER_ACTOR) as tx:
        s = tx.session
        while True:
            now = utcnow()
            q = (select(DetectionJob)
                 .where(or_(DetectionJob.state == "queued",
                            and_(DetectionJob.state == "running", DetectionJob.lease_until < now)))
                 .order_by(DetectionJob.priority.desc(), DetectionJob.id).limit(1))
            if store.dialect == "postgresql":  # SQLite's BEGIN IMMEDIATE already serialises the claims
                q = q.with_for_update(skip_locked=True)
            job = s.scalars(q).first()
            if job is None:
                return None
            before = job_view(job)
            lost = job.state == "running"
            if job.cancel_requested or (lost and job.attempts >= job.max_attempts):
                if job.cancel_requested:
                    job.state, action = "cancelled", "detection_job.cancelled"
                else:
                    job.state, action = "failed", "detection_job.fail"
                    job.error = (f"its worker ({job.lease_owner}) stopped renewing the lease, on each of the "
                                 f"{job.attempts} attempts allowed")
                job.finished_at, job.lease_owner, job.lease_until = now, None, None
                s.flush()
                tx.audit(action, "detection_job", job.id, before=before, after=job_view(job))
                continue
            job.attempts += 1
            job.state, job.lease_owner = "running", owner
            job.lease_until = now + dt.timedelta(seconds=lease_s)
            job.started_at = job.started_at or now
            job.progress = None
            s.flush()
            tx.audit("detection_job.claim", "detection_job", job.id, before=before,
                     after={**job_view(job), "lease_lost_by": before["worker"] if lost else None})
            return JobClaim(job.id, job.output, dict(job.params or {}), job.attempts, job.max_attempts,
                            job.created_by)


def renew_lease(store: Store, job_id: int, owner: str, lease_s: float, progress: str | None = None) -> str:
    """Extend ``owner``'s lease (and record ``progress``): ``"ok"``, ``"cancel"`` (asked to stop) or ``"lost"``
    (another worker holds the job, or it ended)."""
    with store.transaction(actor=WORKER_ACTOR) as tx:
        job = tx.session.get(DetectionJob, job_id, with_for_update=True)
        if job is None or job.state != "running" or job.lease_owner != owner:
            return "lost"
        if job.cancel_requested:
            return "cancel"
        job.lease_until = utcnow() + dt.timedelta(seconds=lease_s)
        if progress:
            job.progress = progress[:200]
        return "ok"


def _held(tx: Transaction, job_id: int, owner: str) -> DetectionJob:
    job = tx.session.get(DetectionJob, job_id, with_for_update=True)
    if job is None or job.state != "running" or job.lease_owner != owner:
        held = "ended" if job is None or job.state != "running" else f"held by {job.lease_owner}"
        raise LeaseLostError(f"detection job {job_id} is no longer this worker's ({held})",
                             hint="its result is dropped; the job is done by the worker that holds it")
    return job


def finish_job(store: Store, job_id: int, owner: str, files: list[tuple[Path, Path]], result: dict[str, Any]
               ) -> None:
    """Publish each ``(written, target)`` of ``files`` (in order: the output last, so a listed output has its
    imagery) and mark the job done, in one transaction, while ``owner`` holds it (else :class:`LeaseLostError`,
    and the written files are left to the caller)."""
    with store.transaction(actor=WORKER_ACTOR) as tx:
        job = _held(tx, job_id, owner)
        before = job_view(job)
        for written, target in files:  # a commit failing after this leaves what the next attempt writes again
            os.replace(written, target)
        job.state, job.result, job.finished_at = "done", result, utcnow()
        job.lease_until, job.progress, job.error = None, None, None
        tx.session.flush()
        tx.audit("detection_job.done", "detection_job", job.id, before=before, after=job_view(job))


def fail_job(store: Store, job_id: int, owner: str, error: str, *, retry: bool, cancelled: bool = False) -> str:
    """End ``owner``'s attempt: queued again (``retry`` and attempts left), failed, or ``cancelled``; returns the
    new state (``"lost"`` when the worker no longer held the job: nothing changes)."""
    with store.transaction(actor=WORKER_ACTOR) as tx:
        try:
            job = _held(tx, job_id, owner)
        except LeaseLostError:
            return "lost"
        before = job_view(job)
        if cancelled:
            job.state, action = "cancelled", "detection_job.cancelled"
        elif retry and job.attempts < job.max_attempts:
            job.state, action = "queued", "detection_job.retry"
        else:
            job.state, action = "failed", "detection_job.fail"
        job.error = None if cancelled else error[:2000]
        job.lease_owner = job.lease_owner if job.state == "failed" else None
        job.lease_until, job.progress = None, None
        if job.state != "queued":
            job.finished_at = utcnow()
        tx.session.flush()
        tx.audit(action, "detection_job", job.id, before=before, after=job_view(job))
        return job.state


# -- the worker -----------------------------------------------------------------------------


def _refusal(store: Store, claim: JobClaim) -> str | None:
    """Why a claimed job must not run (``None``: it may), checked again by the worker (reliability.md #9): its
    submitter may still run jobs (active, with ``detect.run`` now, not only when they queued it), and its output
    name and parameters are what a submission could have written (a row changed in the database since cannot
    lead a worker's writes out of its folders)."""
    from tuban.store.models import User

    with store.session() as s:
        uid = s.scalar(select(User.id).where(User.username == claim.created_by))
    perms = store.permissions(uid) if uid is not None else None
    if perms is None or not perms.active:
        return f"its submitter {claim.created_by} is no longer an active user: the job was not run"
    if not perms.allows(VERB):
        return f"its submitter {claim.created_by} may no longer run detection or imagery jobs: the job was not run"
    imagery = claim.params.get("kind") == "imagery"
    known = {"kind", *IMAGERY_PARAM_KEYS} if imagery else set(PARAM_KEYS)
    stem = claim.output.removeprefix(f"{TRUE_COLOUR_DIR}/") if imagery else claim.output
    try:
        expected = _job_output(stem, imagery=imagery)
    except UsageError:
        expected = None
    if expected != claim.output or not set(claim.params) <= known:
        return "the job's output or parameters are not those of a submission (changed in the database?): not run"
    return None


class _StopError(Exception):
    """Raised from the progress callback when the lease was lost or the job cancelled."""


def _progress(lease: _Lease) -> Any:
    """A run's progress callback: the latest step goes out with the next renewal; a lost or cancelled job
    stops the run at its next step (:class:`_StopError`)."""
    def progress(label: str, i: int, n: int) -> None:
        lease.progress = f"{label} {i}/{n}"
        if lease.outcome != "ok":
            raise _StopError(lease.outcome)

    return progress


class _Lease(threading.Thread):
    """Renews a job's lease every third of it and keeps the run's latest progress; ``outcome`` becomes
    ``"lost"`` or ``"cancel"`` when the job is no longer this worker's to run."""

    def __init__(self, store: Store, claim: JobClaim, owner: str, lease_s: float) -> None:
        super().__init__(name=f"tuban-lease-{claim.id}", daemon=True)
        self.store, self.claim, self.owner, self.lease_s = store, claim, owner, lease_s
        self.progress: str | None = None
        self.outcome = "ok"
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.lease_s / 3):
            try:
                self.outcome = renew_lease(self.store, self.claim.id, self.owner, self.lease_s, self.progress)
            except TubanError:  # the database is unreachable for a moment: the lease may run out, and then
                continue  # the next renewal says "lost"
            if self.outcome != "ok":
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class Worker:
    """Runs detection jobs: ``run_once`` takes one (``None``: none waiting), ``run`` polls until ``stop`` is set.

    ``workers``/``scheduler``: where each detection runs (``tuban detect``'s options: a local Dask cluster of
    N processes, or an existing one); default serial in this process."""

    def __init__(self, store: Store, *, imagery_dir: Path, detection_dir: Path, owner: str | None = None,
                 lease_s: float = 60.0, workers: int | None = None, scheduler: str | None = None) -> None:
        if lease_s < 1:
            raise UsageError(f"a lease of {lease_s} s is too short", hint="at least 1 s; the default is 60")
        self.store, self.imagery_dir, self.detection_dir = store, imagery_dir, detection_dir
        self.owner = owner or f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s, self.workers, self.scheduler = float(lease_s), workers, scheduler

    def run(self, *, poll_s: float = 5.0, stop: threading.Event | None = None) -> None:
        """Run jobs until ``stop`` is set; a store that cannot be reached for a while is waited for (logged)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                ran = self.run_once()
            except TubanError as exc:  # the database is down or locked for long: look again later
                _LOG.warning("detection worker %s: %s", self.owner, exc)
                ran = None
            if ran is None:
                stop.wait(poll_s)

    def run_once(self) -> dict[str, Any] | None:
        """Claim one job and run it; returns the job as it ended (``None``: no job waiting)."""
        claim = claim_job(self.store, self.owner, self.lease_s)
        if claim is None:
            return None
        refused = _refusal(self.store, claim)
        if refused is not None:  # nothing is read or written for it
            fail_job(self.store, claim.id, self.owner, refused, retry=False)
            return get_job(self.store, claim.id)
        lease = _Lease(self.store, claim, self.owner, self.lease_s)
        lease.start()
        imagery = claim.params.get("kind") == "imagery"
        target = (self.imagery_dir if imagery else self.detection_dir) / claim.output
        parts = target.parent / ".jobs"  # hidden from the listings, on the target's file system (renames)
        parts.mkdir(parents=True, exist_ok=True)
        for stale in [*parts.glob(f"{claim.id}-*"), *parts.glob(f".{claim.id}-*")]:  # of a worker that lost it
            stale.unlink(missing_ok=True)
        written = parts / f"{claim.id}-{uuid.uuid4().hex}{target.suffix}"
        files = [(written, target)] if imagery else \
            [*zip(run_imagery(written).values(), run_imagery(target).values(), strict=True), (written, target)]
        try:
            try:
                result = (self._true_colour if imagery else self._detect)(claim, lease, written)
            finally:
                lease.stop()  # no renewal races the ending below
            if lease.outcome == "ok":
                finish_job(self.store, claim.id, self.owner, files, result)
            elif lease.outcome == "cancel":  # asked after the run's last step: its result is not published
                fail_job(self.store, claim.id, self.owner, "cancelled", retry=False, cancelled=True)
        except _StopError:
            if lease.outcome == "cancel":
                fail_job(self.store, claim.id, self.owner, "cancelled", retry=False, cancelled=True)
        except LeaseLostError:
            pass  # another worker holds the job now: it publishes its own (identical) result
        except KeyboardInterrupt:  # the worker is being stopped: the job goes back to the queue now, not at
            fail_job(self.store, claim.id, self.owner, "its worker was stopped", retry=True)  # its lease's end
            raise
        except Exception as exc:  # every failure ends the attempt, audited
            retry = isinstance(exc, ClusterError) or not isinstance(exc, TubanError)
            fail_job(self.store, claim.id, self.owner, self._public(f"{type(exc).__name__}: {exc}"), retry=retry)
        finally:
            for part, _ in files:
                part.unlink(missing_ok=True)
        return get_job(self.store, claim.id)

    def _public(self, message: str) -> str:
        """``message`` without the server's folders: scenes by the names the job gave them."""
        for folder in (self.imagery_dir, self.detection_dir):
            for form in {str(folder.resolve()), str(folder)}:
                message = message.replace(form + os.sep, "")
        return message

    def _true_colour(self, claim: JobClaim, lease: _Lease, written: Path) -> dict[str, Any]:
        import rasterio

        from tuban.raster.quicklook import true_colour

        scene = _open_scene(self.imagery_dir, claim.params["scene"], claim.params)
        true_colour(scene, written, progress=_progress(lease))
        with rasterio.open(written) as src:
            return {"file": claim.output, "width": src.width, "height": src.height, "crs": src.crs.to_string(),
                    "attempt": claim.attempt}

    def _detect(self, claim: JobClaim, lease: _Lease, written: Path) -> dict[str, Any]:
        from tuban.detect.engine import detect
        from tuban.detect.output import write_patches
        from tuban.raster.quicklook import true_colour

        p = claim.params
        progress = _progress(lease)

        scenes = {k: str(resolve_imagery(self.imagery_dir, p[k])) for k in ("before", "after", "baseline") if p.get(k)}
        res = detect(scenes["before"], scenes["after"], baseline=scenes.get("baseline"), sensor=p.get("sensor"),
                     bands=tuple(p["bands"]) if p.get("bands") else None, method=p.get("method"),
                     threshold=p.get("threshold"), mmu_ha=float(p.get("mmu_ha", 0.04)), water=bool(p.get("water")),
                     workers=self.workers, scheduler=self.scheduler, progress=progress)
        if lease.outcome != "ok":
            raise _StopError(lease.outcome)
        write_patches(res, written)
        for date, path in run_imagery(written).items():  # the review map's imagery, on the run's grid (aligned)
            lease.progress = f"imagery {date}"
            true_colour(scenes[date], path, grid=res.grid)
            if lease.outcome != "ok":
                raise _StopError(lease.outcome)
        def number(v: float) -> float | None:  # JSON has no NaN (PostgreSQL refuses it)
            return float(v) if math.isfinite(v) else None

        return {"patches": len(res.patches), "method": res.method, "threshold": number(res.threshold),
                "unobservable_fraction": number(res.unobservable_fraction), "attempt": claim.attempt,
                "imagery": {d: p.name for d, p in run_imagery(Path(claim.output)).items()}}
