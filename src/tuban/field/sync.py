"""Field records that never lose data (外业记录同步): idempotent creates and soft / hard conflicts.

A field record (外业记录) is what an inspector submits for one patch: official fields
(QTYPE, QDCS, ADDRESS, PROBLEM, PROPOSAL, MEMO), the responsible party, the outcome
(confirmed / corrected / not a disturbance with a reason), an optional redrawn outline
and labelled points. It is stored as a :class:`~tuban.store.models.Review` of kind
``field``, keyed by the device's ``client_id`` (a UUID).

Idempotency (reliability.md D #39, #40)
    the same ``client_id`` with the same content returns the stored record (same id,
    nothing written twice, one ``field.record.create`` audit row); the same ``client_id``
    with *different* content raises :class:`DuplicateClientIdError` (HTTP 409) **after**
    keeping the second payload as a review of kind ``field_dup`` for the reviewer.

Conflicts (D #42)
    a record carries ``based_on_version`` and ``base``, the field values the device
    downloaded. A field the device changed is applied when the server still holds the
    base value; when the server has moved on in *other* fields the record is applied and
    flagged **soft**; when the server changed the *same* field to another value it is a
    **hard** conflict: that field is not applied, both values are kept on the record
    (``data.conflict.fields``) and :func:`resolve_conflict` lets a reviewer choose, audited.

Out of order (D #43)
    a record may name ``after_client_id``, the device's previous record of the patch. When
    that one has not arrived yet, the record is **held** (kind ``field_held``, audited
    ``field.record.hold``, answered 202 ``status: "held"``) and applied when the gap fills
    (``field.record.release``); after ``policy.held_max_days`` it is force-applied and
    flagged (:func:`tuban.field.backlog.release_overdue`). Nothing is dropped.

Outline (轮廓)
    a redrawn outline must be a valid polygon of at most ``policy.outline_max_vertices``
    vertices (Z dropped) whose Hausdorff distance to the patch is at most
    ``policy.outline_max_shift_m``; the record keeps it with its area and shift for the
    reviewer (``data.outline_check``). The patch's own geometry is not changed.

Every write runs inside ``store.transaction(actor)`` with its audit rows; a record is
acknowledged only after that commit (SQLite ``synchronous=FULL``).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import shapely
from sqlalchemy import select, update

from tuban.codes import codelists
from tuban.errors import (
    ConflictError,
    FieldError,
    GeometryError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    UsageError,
)
from tuban.field.policy import PhotoPolicy, load_policy
from tuban.field.writer import write_lock
from tuban.store.models import Patch, Review
from tuban.store.store import Store, Transaction, jsonable
from tuban.workflow.access import Actor, load_patch, patch_divisions

__all__ = [
    "RECORD_FIELDS",
    "DuplicateClientIdError",
    "RecordResult",
    "UnpermittedRecordError",
    "apply_record",
    "check_outline",
    "content_hash",
    "normalize_client_id",
    "record_to_dict",
    "resolve_conflict",
    "submit_record",
]

#: official fields an inspector records on site (domain.md §3), as column names
RECORD_FIELDS = ("QTYPE", "QDCS", "ADDRESS", "PROBLEM", "PROPOSAL", "MEMO")
OUTCOMES = ("confirmed", "corrected", "not_disturbance")
MAX_POINTS = 200
MAX_OUTLINE_VERTICES = 20_000  # a hard ceiling before parsing; the policy's limit is lower


class DuplicateClientIdError(ConflictError):
    """The client id was used before with other content; the new payload was kept for review."""

    code = "duplicate-client-id"

    def __init__(self, client_id: str, *, existing_id: int, kept_id: int) -> None:
        super().__init__(
            f"client id {client_id} was already used for record {existing_id} with different content; "
            f"your payload was kept for review as record {kept_id}",
            hint="generate a new client id for a new record",
        )
        self.client_id = client_id
        self.existing_id = existing_id
        self.kept_id = kept_id

    def problem_extra(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "existing_id": self.existing_id, "kept_id": self.kept_id}


class UnpermittedRecordError(NotFoundError):
    """The user may no longer edit the patch (e.g. moved to another county): the record was kept, not applied.

    Answered as 404 with ``code: "unpermitted"`` and ``kept: true`` whether the patch is in another county or
    does not exist, so nothing reveals which (reliability.md A #8).
    """

    code = "unpermitted"

    def __init__(self, client_id: str) -> None:
        super().__init__(f"you may not edit this patch (any more); field record {client_id} was kept for an "
                         "administrator's review and not applied",
                         hint="keep the copy on the phone; ask your county administrator")
        self.client_id = client_id

    def problem_extra(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "kept": True}


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What the device is told: the record id, whether this call created it, and its conflict."""

    id: int
    client_id: str
    created: bool
    patch_id: int
    patch_version: int
    conflict: dict[str, Any] | None
    held: bool = False

    @property
    def status(self) -> str:
        if self.held:
            return "held"
        return "conflict" if self.conflict and self.conflict.get("kind") == "hard" else "done"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "client_id": self.client_id, "created": self.created, "patch_id": self.patch_id,
                "patch_version": self.patch_version, "conflict": self.conflict, "status": self.status}


@functools.lru_cache(maxsize=1)
def _default_policy() -> PhotoPolicy:
    return load_policy()


def normalize_client_id(value: Any) -> str:
    """A canonical lowercase UUID string; anything else is a :class:`UsageError`."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise UsageError(f"client_id {str(value)[:80]!r} is not a UUID",
                         hint="the device makes one with crypto.randomUUID()") from None


def content_hash(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of *payload* (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(jsonable(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _validate_values(values: Mapping[str, Any], where: str) -> dict[str, str | None]:
    cl = codelists()
    from tuban.fields import PATCH_FIELDS

    out: dict[str, str | None] = {}
    for name, value in values.items():
        code = str(name).upper()
        if code not in RECORD_FIELDS:
            raise FieldError(f"{where}: field {name!r} is not recorded in the field",
                             hint=f"use: {', '.join(RECORD_FIELDS)}")
        if value is not None and not isinstance(value, str):
            raise FieldError(f"{where}: {code} must be text, got {type(value).__name__}")
        text = None if value is None or value.strip() == "" else value.strip()
        spec = PATCH_FIELDS[code]
        if spec.codelist and text is not None and where == "fields":
            cl.validate(spec.codelist, text, context=f"field {code}")
        if spec.max_len and text is not None and len(text) > spec.max_len:
            raise FieldError(f"{where}: {code} is {len(text)} characters, the limit is {spec.max_len}",
                             hint="shorten the text")
        out[code] = text
    return out


def _validate_outline(value: Any) -> dict[str, Any] | None:
    """A redrawn outline as 2-D GeoJSON, or :class:`GeometryError` naming the reason (reliability.md C #37)."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("Polygon", "MultiPolygon"):
        kind = value.get("type") if isinstance(value, dict) else type(value).__name__
        raise GeometryError(f"the redrawn outline must be a GeoJSON Polygon or MultiPolygon, got {kind!r}")
    try:
        flat = json.dumps(value.get("coordinates"))
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"the redrawn outline has unreadable coordinates: {exc}") from exc
    if flat.count("[") > 4 * MAX_OUTLINE_VERTICES:
        raise GeometryError(f"the outline has more than {MAX_OUTLINE_VERTICES} vertices")
    if "NaN" in flat or "Infinity" in flat:
        raise GeometryError("the outline has NaN or infinite coordinates")
    try:
        geom = shapely.geometry.shape(value)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, shapely.errors.GEOSException) as exc:
        raise GeometryError(f"the redrawn outline is not a GeoJSON geometry: {exc}") from exc
    if not isinstance(geom, shapely.Polygon | shapely.MultiPolygon) or geom.is_empty:
        raise GeometryError(f"the redrawn outline must be a non-empty polygon, got {geom.geom_type}")
    geom = shapely.force_2d(geom)  # documented rule: Z (and M) dropped
    coords = shapely.get_coordinates(geom)
    if len(coords) > MAX_OUTLINE_VERTICES:
        raise GeometryError(f"the outline has {len(coords)} vertices, the limit is {MAX_OUTLINE_VERTICES}")
    if not all(math.isfinite(v) for v in coords.ravel()):
        raise GeometryError("the outline has NaN or infinite coordinates")
    if not (((coords[:, 0] >= -180) & (coords[:, 0] <= 180) & (coords[:, 1] >= -90) & (coords[:, 1] <= 90)).all()):
        raise GeometryError("the outline lies outside lon/lat bounds (lat/lon swapped?)")
    if not geom.is_valid:
        raise GeometryError(f"the redrawn outline is not a valid polygon: {shapely.is_valid_reason(geom)}",
                            hint="redraw it without crossing edges")
    return dict(shapely.geometry.mapping(geom))


def check_outline(outline: Mapping[str, Any], patch_geometry: Any, *, policy: PhotoPolicy) -> dict[str, Any]:
    """The outline's vertices, area (ha) and Hausdorff distance (m) to the patch; refused beyond the policy.

    Distances are computed in a local equirectangular frame around the patch (metre-accurate
    at patch scale).
    """
    geom = shapely.geometry.shape(outline)
    n = len(shapely.get_coordinates(geom)) - len(shapely.get_parts(geom))
    if n > policy.outline_max_vertices:
        raise GeometryError(f"the outline has {n} vertices, the limit is {policy.outline_max_vertices}",
                            hint="simplify the outline")
    out: dict[str, Any] = {"vertices": n}
    if patch_geometry is None:
        return out
    lat0 = math.radians(shapely.centroid(patch_geometry).y)
    kx, ky = 111_320.0 * math.cos(lat0), 110_540.0

    def local(g: Any) -> Any:
        return shapely.transform(g, lambda c: c * [kx, ky])

    a, b = local(geom), local(patch_geometry)
    shift = float(shapely.hausdorff_distance(a, b))
    if shift > policy.outline_max_shift_m:
        raise GeometryError(f"the outline is {shift:.0f} m from the patch outline (Hausdorff distance); the limit is "
                            f"{policy.outline_max_shift_m:.0f} m", hint="draw the outline of this patch, not another")
    out.update({"area_ha": round(float(a.area) / 10_000, 4), "patch_area_ha": round(float(b.area) / 10_000, 4),
                "hausdorff_m": round(shift, 1)})
    return out


def _validate_points(points: Any) -> list[dict[str, Any]]:
    if points is None:
        return []
    if not isinstance(points, list) or len(points) > MAX_POINTS:
        raise FieldError(f"points must be a list of at most {MAX_POINTS} labelled points")
    out = []
    for i, p in enumerate(points):
        try:
            lon, lat = float(p["lon"]), float(p["lat"])
        except (KeyError, TypeError, ValueError):
            raise FieldError(f"point {i + 1} needs numeric lon and lat") from None
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise FieldError(f"point {i + 1} has an invalid position ({lon}, {lat})")
        label = str(p.get("label") or "")[:200]
        out.append({"lon": lon, "lat": lat, "label": label})
    return out


def _normalize(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The validated, canonical record (what is hashed and stored)."""
    known = {"client_id", "patch_id", "based_on_version", "base", "fields", "responsible_party", "outcome",
             "not_disturbance_reason", "outline", "points", "recorded_at", "device", "after_client_id"}
    extra = sorted(set(payload) - known)
    if extra:
        raise UsageError(f"unknown keys in the field record: {extra}")
    try:
        patch_id = int(payload["patch_id"])
        based_on = int(payload["based_on_version"])
    except (KeyError, TypeError, ValueError):
        raise UsageError("a field record needs an integer patch_id and based_on_version") from None
    outcome = str(payload.get("outcome") or "confirmed")
    if outcome not in OUTCOMES:
        raise FieldError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    reason = payload.get("not_disturbance_reason")
    if outcome == "not_disturbance":
        if not reason:
            raise FieldError("a 'not a disturbance' record needs a reason")
        codelists().validate("REJECT_REASON", str(reason), context="not_disturbance_reason")
    party = payload.get("responsible_party")
    if party is not None and (not isinstance(party, str) or len(party) > 200):
        raise FieldError("responsible_party must be text of at most 200 characters")
    after = payload.get("after_client_id")
    device = payload.get("device") or {}
    if not isinstance(device, dict) or len(json.dumps(jsonable(device))) > 4000:
        raise FieldError("device must be a small JSON object")
    out = {
        "client_id": normalize_client_id(payload.get("client_id")),
        "patch_id": patch_id,
        "based_on_version": based_on,
        "base": _validate_values(payload.get("base") or {}, "base"),
        "fields": _validate_values(payload.get("fields") or {}, "fields"),
        "responsible_party": party.strip() if isinstance(party, str) else None,
        "outcome": outcome,
        "not_disturbance_reason": str(reason) if reason else None,
        "outline": _validate_outline(payload.get("outline")),
        "points": _validate_points(payload.get("points")),
        "recorded_at": str(payload.get("recorded_at") or "")[:40] or None,
        "device": device,
    }
    if after:  # only when given: records without it hash as before
        out["after_client_id"] = normalize_client_id(after)
        if out["after_client_id"] == out["client_id"]:
            raise UsageError("after_client_id names the record itself")
    return out


def record_to_dict(review: Review) -> dict[str, Any]:
    """A stored field record as JSON for the device and the reviewer."""
    data = dict(review.data or {})
    return {"id": review.id, "kind": review.kind, "client_id": review.client_id, "patch_id": review.patch_id,
            "based_on_version": review.based_on_version, "conflict": data.get("conflict"),
            "flagged": bool(review.conflict), "applied": data.get("applied"), "record": data.get("record"),
            "resolution": data.get("resolution"), "created_at": jsonable(review.created_at),
            "held": data.get("held"), "outline_check": data.get("outline_check")}


def _existing(tx: Transaction, client_id: str) -> Review | None:
    return tx.session.scalar(select(Review).where(Review.client_id == client_id))


def _result(review: Review, patch: Patch, *, created: bool) -> RecordResult:
    return RecordResult(id=review.id, client_id=review.client_id or "", created=created, patch_id=review.patch_id,
                        patch_version=patch.version, conflict=(review.data or {}).get("conflict"),
                        held=review.kind == "field_held")


def _merge(record: dict[str, Any], patch: Patch) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Three-way merge of the device's edits onto the patch: ``(to_apply, conflict)``."""
    base, new = record["base"], record["fields"]
    stale = record["based_on_version"] != patch.version
    apply: dict[str, Any] = {}
    hard: dict[str, Any] = {}
    for code, value in new.items():
        current = getattr(patch, code.lower())
        before = base.get(code, current if not stale else None)
        if code in base and value == base[code]:
            continue  # the device did not change this field
        if value == current:
            continue  # nothing to do (or both sides made the same change)
        if not stale or current == before:
            apply[code] = value
        else:
            hard[code] = {"base": before, "server": current, "device": value}
    if not stale:
        return apply, None
    conflict = {"kind": "hard" if hard else "soft", "based_on_version": record["based_on_version"],
                "server_version": patch.version, "fields": hard, "applied": sorted(apply)}
    return apply, conflict


def _apply(tx: Transaction, patch: Patch, values: Mapping[str, Any], *, seen_version: int) -> None:
    """Write *values* and bump the version iff it is still *seen_version* (compare-and-swap)."""
    cols = {k.lower(): v for k, v in values.items()}
    res = tx.session.execute(
        update(Patch).where(Patch.id == patch.id, Patch.version == seen_version)
        .values(version=Patch.version + 1, **cols).execution_options(synchronize_session=False))
    if getattr(res, "rowcount", 0) != 1:
        raise ConflictError(f"patch {patch.id} changed while the field record was applied", hint="retry")
    tx.session.refresh(patch)


def _audit(tx: Transaction, action: str, entity: str, entity_id: Any, patch: Patch, *, before: Any = None,
           after: Any = None) -> None:
    lead = patch_divisions(patch)
    tx.audit(action, entity, entity_id, before=before, after=after, round_id=patch.round_id,
             division_code=lead[0] if lead else None)


def _keep_unpermitted(tx: Transaction, actor: Actor, record: dict[str, Any], digest: str) -> str:
    """Store a record the actor may not apply (kind ``field_unperm``) for an administrator; audited."""
    patch = tx.session.get(Patch, record["patch_id"])
    after = {"client_id": record["client_id"], "content_sha256": digest, "user_id": actor.user_id}
    if patch is None:  # nothing to attach it to: the audit row keeps the whole payload
        tx.audit("field.record.unpermitted", "review", None, after={**after, "record": record})
        return "unpermitted"
    kept = Review(patch_id=patch.id, kind="field_unperm", user_id=actor.user_id, client_id=record["client_id"],
                  based_on_version=record["based_on_version"], conflict=True,
                  data={"record": record, "content_sha256": digest, "reason": "the user may not edit this patch",
                        "received_at": dt.datetime.now(dt.UTC).isoformat()})
    tx.session.add(kept)
    tx.session.flush()
    _audit(tx, "field.record.unpermitted", "review", kept.id, patch, after=after)
    return "unpermitted"


def apply_record(tx: Transaction, patch: Patch, record: dict[str, Any], digest: str, *, user_id: int | None,
                 review: Review | None = None, extra: Mapping[str, Any] | None = None) -> Review:
    """Merge *record* onto *patch* and store it as a ``field`` review (a new row, or *review* turned into one).

    A record that names ``after_client_id`` is not stale when the patch is still at the version
    its predecessor left it at (the device's own chain of edits).
    """
    pred_version = None
    if record.get("after_client_id"):
        pred = _existing(tx, record["after_client_id"])
        if pred is not None and pred.kind == "field":
            pred_version = (pred.data or {}).get("patch_version_after")
    merged = dict(record)
    if pred_version is not None and pred_version == patch.version:
        merged["based_on_version"] = patch.version
    seen = patch.version
    apply, conflict = _merge(merged, patch)
    before = {k: getattr(patch, k.lower()) for k in apply}
    if apply:
        _apply(tx, patch, apply, seen_version=seen)
    data = {**(dict(review.data or {}) if review is not None else {}), **dict(extra or {}), "record": record,
            "content_sha256": digest, "applied": apply, "conflict": conflict, "patch_version_after": patch.version}
    data.setdefault("received_at", dt.datetime.now(dt.UTC).isoformat())
    forced = bool((data.get("held") or {}).get("forced"))
    if review is None:
        review = Review(patch_id=patch.id, kind="field", user_id=user_id, client_id=record["client_id"],
                        based_on_version=record["based_on_version"], conflict=conflict is not None or forced,
                        data=data)
        tx.session.add(review)
    else:
        review.kind = "field"
        review.conflict = conflict is not None or forced
        review.data = data
    tx.session.flush()
    if apply:
        _audit(tx, "patch.field_edit", "patch", patch.id, patch, before={**before, "version": seen},
               after={**apply, "version": patch.version, "review_id": review.id})
    return review


def _submit(tx: Transaction, actor: Actor, record: dict[str, Any], digest: str,
            policy: PhotoPolicy) -> RecordResult | tuple[int, int] | str:
    from tuban.field import backlog

    existing = _existing(tx, record["client_id"])
    if existing is not None and existing.kind == "field_unperm":
        if (existing.data or {}).get("content_sha256") != digest:  # other content under a kept id: keep it too
            tx.audit("field.record.unpermitted", "review", existing.id,
                     after={"client_id": record["client_id"], "content_sha256": digest, "record": record})
        return "unpermitted"  # the same refused record again: nothing new stored
    if existing is not None:
        patch = load_patch(tx.session, actor, existing.patch_id, "field.sync")
        if (existing.data or {}).get("content_sha256") == digest:
            return _result(existing, patch, created=False)
        kept = Review(patch_id=existing.patch_id, kind="field_dup", user_id=actor.user_id, client_id=None,
                      based_on_version=record["based_on_version"], conflict=True,
                      data={"reason": "client_id reused with different content", "duplicate_of": existing.id,
                            "content_sha256": digest, "record": record})
        tx.session.add(kept)
        tx.session.flush()
        _audit(tx, "field.record.duplicate_client_id", "review", kept.id, patch,
               after={"client_id": record["client_id"], "existing_id": existing.id, "content_sha256": digest})
        return (existing.id, kept.id)
    try:
        patch = load_patch(tx.session, actor, record["patch_id"], "field.sync")
    except (NotFoundError, PermissionDeniedError):
        return _keep_unpermitted(tx, actor, record, digest)
    extra: dict[str, Any] = {}
    if record.get("outline") is not None:
        extra["outline_check"] = check_outline(record["outline"], patch.geometry, policy=policy)
    after = record.get("after_client_id")
    if after:
        pred = _existing(tx, after)
        if pred is None or pred.kind == "field_held":  # the earlier record has not been applied yet: hold this one
            held = backlog.hold(tx, actor, patch, record, digest, waiting_for=after, extra=extra)
            return _result(held, patch, created=True)
    review = apply_record(tx, patch, record, digest, user_id=actor.user_id, extra=extra)
    _audit(tx, "field.record.create", "review", review.id, patch,
           after={"client_id": record["client_id"], "content_sha256": digest, "conflict": review.data["conflict"],
                  "outcome": record["outcome"]})
    backlog.release_waiting(tx, patch, review)
    return _result(review, patch, created=True)


def submit_record(store: Store, actor: Actor, payload: Mapping[str, Any], *,
                  policy: PhotoPolicy | None = None) -> RecordResult:
    """Store one field record (idempotent by ``client_id``) and apply its field edits.

    A record whose ``after_client_id`` has not arrived yet is held (``result.held``, HTTP 202).

    Raises
    ------
    DuplicateClientIdError
        Same client id, different content (the payload is kept; HTTP 409).
    UnpermittedRecordError
        The patch does not exist or is outside the actor's counties (kept; HTTP 404).
    FieldError, GeometryError, UsageError
        The payload is invalid (HTTP 422).
    """
    policy = policy or _default_policy()
    record = _normalize(payload)
    digest = content_hash(record)
    for attempt in range(3):
        try:
            with write_lock(store), store.transaction(actor=actor.username) as tx:
                out = _submit(tx, actor, record, digest, policy)
        except IntegrityError:
            # a concurrent request inserted the same client id first: read it back
            if attempt == 2:
                raise
            continue
        except ConflictError as exc:
            if attempt == 2 or isinstance(exc, DuplicateClientIdError):
                raise
            continue
        if isinstance(out, str):  # "unpermitted"
            raise UnpermittedRecordError(record["client_id"])  # after the commit: the record is kept
        if isinstance(out, tuple):
            raise DuplicateClientIdError(record["client_id"], existing_id=out[0], kept_id=out[1])
        from tuban.field.backlog import maybe_release_overdue

        maybe_release_overdue(store, max_age_days=policy.held_max_days)
        return out
    raise AssertionError("unreachable")  # pragma: no cover


def resolve_conflict(store: Store, actor: Actor, review_id: int, choices: Mapping[str, str], *,
                     based_on_version: int) -> dict[str, Any]:
    """A reviewer settles a hard conflict: per field ``"server"`` or ``"device"`` (audited).

    Fields resolved to ``"device"`` are written to the patch (compare-and-swap on
    *based_on_version*); the record keeps both values and the resolution.
    """
    with write_lock(store), store.transaction(actor=actor.username) as tx:
        review = tx.session.get(Review, review_id)
        if review is None or review.kind != "field":
            raise NotFoundError(f"no field record with id {review_id}")
        patch = load_patch(tx.session, actor, review.patch_id, "patch.edit")
        data = dict(review.data or {})
        conflict = data.get("conflict") or {}
        fields = conflict.get("fields") or {}
        if conflict.get("kind") != "hard" or data.get("resolution"):
            raise ConflictError(f"field record {review_id} has no open hard conflict")
        unknown = set(choices) - set(fields)
        missing = set(fields) - set(choices)
        bad = {k: v for k, v in choices.items() if v not in ("server", "device")}
        if unknown or missing or bad:
            raise UsageError(f"choose 'server' or 'device' for each conflicting field: {sorted(fields)}")
        if patch.version != based_on_version:
            raise ConflictError(f"patch {patch.id} is at version {patch.version}, not {based_on_version}",
                                hint="reload and resolve again")
        values = {k: fields[k]["device"] for k, v in choices.items() if v == "device"}
        before = {k: getattr(patch, k.lower()) for k in values}
        if values:
            _apply(tx, patch, values, seen_version=based_on_version)
        data["resolution"] = {"by": actor.username, "at": dt.datetime.now(dt.UTC).isoformat(),
                              "choices": dict(choices), "patch_version": patch.version}
        review.data = data
        review.conflict = False
        tx.session.flush()
        _audit(tx, "field.conflict.resolve", "review", review.id, patch, before={**before, "version": based_on_version},
               after={"choices": dict(choices), "applied": values, "version": patch.version})
        return record_to_dict(review)
