"""The backlog of out-of-order field records (乱序记录暂存, reliability.md D #43).

A device numbers nothing; it names the record each new one follows (``after_client_id``,
its previous record of the same patch). A record that arrives before the one it follows
(an update before its create, or after a lost middle update) is **held**: stored durably as
a review of kind ``field_held`` with ``data.held = {waiting_for, held_at}`` and audited
``field.record.hold``. It is acknowledged (HTTP 202, ``status: "held"``): the server has it,
the device may stop resending it.

* :func:`release_waiting` — when a record is applied, the held records waiting for it are
  applied in turn (a chain releases link by link), each audited ``field.record.release``.
* :func:`release_overdue` — a held record older than ``max_age_days`` (the policy's
  ``held_max_days``) is force-applied and **flagged** (``review.conflict``,
  ``data.held.forced``), audited ``field.record.force_apply``; the missing record's client id
  stays on it. Called opportunistically after each submit (at most once a minute per store)
  and usable from a scheduler.

A held record keeps its row and id when released: nothing is ever dropped. Its patch
permission was checked when it was held.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from typing import Any

from sqlalchemy import select

from tuban.field.writer import write_lock
from tuban.store.models import Patch, Review
from tuban.store.store import Store, Transaction

__all__ = ["hold", "maybe_release_overdue", "release_overdue", "release_waiting"]

_SWEEP_EVERY_S = 60.0
_LAST_SWEEP: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_SWEEP_GUARD = threading.Lock()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hold(tx: Transaction, actor: Any, patch: Patch, record: dict[str, Any], digest: str, *, waiting_for: str,
         extra: dict[str, Any] | None = None) -> Review:
    """Keep *record* until the record *waiting_for* has been applied (audited ``field.record.hold``)."""
    from tuban.field.sync import _audit

    held = Review(patch_id=patch.id, kind="field_held", user_id=actor.user_id, client_id=record["client_id"],
                  based_on_version=record["based_on_version"], conflict=False,
                  data={**(extra or {}), "record": record, "content_sha256": digest,
                        "held": {"waiting_for": waiting_for, "held_at": _now().isoformat()},
                        "received_at": _now().isoformat()})
    tx.session.add(held)
    tx.session.flush()
    _audit(tx, "field.record.hold", "review", held.id, patch,
           after={"client_id": record["client_id"], "waiting_for": waiting_for, "content_sha256": digest})
    return held


def _waiting(tx: Transaction, patch_id: int, client_id: str) -> list[Review]:
    rows = tx.session.scalars(select(Review).where(Review.kind == "field_held", Review.patch_id == patch_id)
                              .order_by(Review.id)).all()
    return [r for r in rows if ((r.data or {}).get("held") or {}).get("waiting_for") == client_id]


def _release(tx: Transaction, patch: Patch, held: Review, *, forced: bool) -> Review:
    from tuban.field.sync import _audit, apply_record

    data = dict(held.data or {})
    info = {**(data.get("held") or {}), "released_at": _now().isoformat(), "forced": forced}
    data["held"] = info
    held.data = data
    record = data["record"]
    review = apply_record(tx, patch, record, data["content_sha256"], user_id=held.user_id, review=held)
    action = "field.record.force_apply" if forced else "field.record.release"
    _audit(tx, action, "review", review.id, patch,
           after={"client_id": record["client_id"], "waiting_for": info.get("waiting_for"), "forced": forced,
                  "conflict": (review.data or {}).get("conflict"), "user_id": held.user_id})
    return review


def release_waiting(tx: Transaction, patch: Patch, applied: Review) -> list[int]:
    """Apply the records held for *applied* (and, in turn, those held for them); their ids."""
    released: list[int] = []
    queue = [applied]
    while queue:
        current = queue.pop(0)
        for held in _waiting(tx, patch.id, current.client_id or ""):
            queue.append(_release(tx, patch, held, forced=False))
            released.append(held.id)
    return released


def release_overdue(store: Store, *, max_age_days: float, now: dt.datetime | None = None,
                    actor: str = "system:field-backlog") -> list[int]:
    """Force-apply (and flag) every record held longer than *max_age_days*; the ids applied, oldest first."""
    cutoff = (now or _now()) - dt.timedelta(days=max_age_days)
    with store.session() as s:
        candidates = s.execute(select(Review.id, Review.created_at).where(Review.kind == "field_held")
                               .order_by(Review.id)).all()
    due = []
    for rid, created in candidates:
        when = created if created.tzinfo else created.replace(tzinfo=dt.UTC)
        if when <= cutoff:
            due.append(rid)
    done: list[int] = []
    for rid in due:
        with write_lock(store), store.transaction(actor=actor) as tx:
            held = tx.session.get(Review, rid)
            if held is None or held.kind != "field_held":
                continue  # released meanwhile (its predecessor arrived, or a chain released it)
            patch = tx.session.get(Patch, held.patch_id)
            if patch is None:
                continue
            review = _release(tx, patch, held, forced=True)
            done.append(rid)
            done.extend(release_waiting(tx, patch, review))
    return done


def maybe_release_overdue(store: Store, *, max_age_days: float) -> None:
    """:func:`release_overdue` at most once a minute per store (cheap to call after every submit)."""
    now = time.monotonic()
    with _SWEEP_GUARD:
        last = _LAST_SWEEP.get(store)
        if last is not None and now - last < _SWEEP_EVERY_S:
            return
        _LAST_SWEEP[store] = now
    release_overdue(store, max_age_days=max_age_days)
