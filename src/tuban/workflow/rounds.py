"""Rounds (监管期次), tasks to counties (下发任务) and the round dashboard (进度看板)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tuban.errors import ConflictError, UsageError
from tuban.store.models import AuditEntry, Patch, Round, Task, utcnow
from tuban.store.store import Transaction
from tuban.workflow.access import Actor, load_round, patch_scope_clause, task_scope_clause
from tuban.workflow.states import check_patch_transition

__all__ = ["create_round", "dashboard", "issue_round", "list_rounds"]


def create_round(tx: Transaction, actor: Actor, name: str, *, period: str | None = None,
                 imagery: Mapping[str, str] | None = None, field_start: dt.date | None = None,
                 field_end: dt.date | None = None) -> Round:
    """A new, empty round; patches come from :meth:`Store.import_patches` or the detector."""
    if not actor.allows("round.create"):
        from tuban.errors import PermissionDeniedError

        raise PermissionDeniedError(f"{actor.username} may not create rounds")
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise UsageError(f"round name {name!r} must be 1–64 characters")
    if tx.session.scalar(select(Round.id).where(Round.name == name)) is not None:
        raise ConflictError(f"round {name!r} already exists", hint="choose another name")
    imagery = {k: str(v) for k, v in (imagery or {}).items() if k in ("before", "after") and v}
    rnd = Round(name=name, period=period, imagery=imagery, field_start=field_start, field_end=field_end)
    tx.session.add(rnd)
    tx.session.flush()
    tx.audit("round.create", "round", rnd.id, after={"name": name, "period": period, "imagery": imagery},
             round_id=rnd.id)
    return rnd


def create_round_with_patches(tx: Transaction, actor: Actor, name: str, patches: Any, *,
                              period: str | None = None, source: str | None = None,
                              state: str = "issued", imagery: Mapping[str, str] | None = None) -> tuple[Round, int]:
    """A new round and its patches (a GeoDataFrame with official fields) in one transaction.

    *state* is ``issued`` for a province's patch file, ``detected`` for a detector's output
    (candidates, issued later by :func:`issue_round`); *imagery*: the before/after COGs of its review map.
    """
    from tuban.store.importing import import_patches

    rnd = create_round(tx, actor, name, period=period, imagery=imagery)
    count = (import_patches(tx, patches, round_name=rnd.name, source=source, state=state)
             if patches is not None else 0)
    return rnd, count


def issue_round(tx: Transaction, actor: Actor, round_id: int, *, due_date: dt.date,
                due_dates: Mapping[str, dt.date] | None = None) -> list[Task]:
    """Issue the round's patches to their lead counties: one task per county (下发)."""
    rnd = load_round(tx.session, actor, round_id, "task.issue")
    if actor.perms.division_scope("task.issue") is not None:
        from tuban.errors import PermissionDeniedError

        raise PermissionDeniedError(f"{actor.username} may not issue tasks province-wide")
    counties = sorted(c for c in tx.session.scalars(
        select(Patch.lead_division_code).where(Patch.round_id == rnd.id).distinct()) if c)
    if not counties:
        raise UsageError(f"round {rnd.name} has no patches with a lead county to issue",
                         hint="import patches with XZQDM first")
    tasks = []
    for code in counties:
        task = tx.session.scalar(select(Task).where(Task.round_id == rnd.id, Task.division_code == code))
        due = (due_dates or {}).get(code, due_date)
        if task is None:
            task = Task(round_id=rnd.id, division_code=code, due_date=due, status="issued",
                        issued_by=actor.username)
            tx.session.add(task)
            tx.session.flush()
            tx.audit("task.issue", "task", task.id, after={"division_code": code, "due_date": due},
                     round_id=rnd.id, division_code=code)
        tasks.append(task)
    detected = list(tx.session.scalars(select(Patch).where(Patch.round_id == rnd.id, Patch.state == "detected")))
    for p in detected:
        p.state = check_patch_transition("issue", p.state)
        p.version += 1
    if detected:
        tx.audit("round.issue_patches", "round", rnd.id, after={"issued": len(detected)}, round_id=rnd.id)
    tx.session.flush()
    return tasks


def list_rounds(session: Any, actor: Actor) -> list[dict[str, Any]]:
    """Rounds the actor may see, newest first, with their visible patch counts."""
    scope = actor.perms.division_scope("round.read")
    q = select(Round).order_by(Round.id.desc())
    if scope is not None:
        q = q.where(Round.id.in_(select(Task.round_id).where(task_scope_clause(actor, "round.read"))))
    out = []
    for rnd in session.scalars(q):
        n = session.scalar(select(func.count(Patch.id)).where(
            Patch.round_id == rnd.id, Patch.state != "superseded",
            patch_scope_clause(actor, "patch.read", round_id=rnd.id)))
        out.append({"id": rnd.id, "name": rnd.name, "period": rnd.period, "status": rnd.status,
                    "created_at": rnd.created_at, "patches": int(n or 0),
                    "has_imagery": bool(rnd.imagery)})
    return out


def dashboard(session: Any, actor: Actor, round_id: int, *, today: dt.date | None = None) -> dict[str, Any]:
    """Counts by state, compliance and county; overdue tasks; progress by day; timeliness."""
    rnd = load_round(session, actor, round_id)
    today = today or utcnow().date()
    visible = patch_scope_clause(actor, "patch.read", round_id=rnd.id)
    base = (Patch.round_id == rnd.id, Patch.state != "superseded", visible)
    by_state = dict(session.execute(select(Patch.state, func.count()).where(*base).group_by(Patch.state)).all())
    by_byd = {k or "": v for k, v in session.execute(
        select(Patch.byd, func.count()).where(*base).group_by(Patch.byd)).all()}
    by_county: dict[str, Counter[str]] = {}
    for code, state, n in session.execute(
        select(Patch.lead_division_code, Patch.state, func.count()).where(*base)
        .group_by(Patch.lead_division_code, Patch.state)
    ):
        by_county.setdefault(code or "", Counter())[state] += n
    tasks = list(session.scalars(select(Task).where(Task.round_id == rnd.id,
                                                    task_scope_clause(actor, "round.read"))
                                 .order_by(Task.division_code)))
    submitted_at = {}
    for entry in session.scalars(select(AuditEntry).where(AuditEntry.round_id == rnd.id,
                                                          AuditEntry.action == "task.submit")):
        submitted_at[entry.division_code] = entry.at
    done_states = {"determined", "reported", "rejected"}
    task_rows = []
    for t in tasks:
        counts = by_county.get(t.division_code, Counter())
        total = sum(counts.values())
        done = sum(v for k, v in counts.items() if k in done_states)
        sub = submitted_at.get(t.division_code)
        on_time = None
        if sub is not None and t.due_date is not None:
            on_time = sub.date() <= t.due_date
        task_rows.append({
            "id": t.id, "division_code": t.division_code, "due_date": t.due_date, "status": t.status,
            "patches": total, "done": done, "overdue": bool(t.due_date and t.due_date < today
                                                           and t.status not in ("submitted", "accepted")),
            "submitted_at": sub, "on_time": on_time,
        })
    # progress over time: reviews/decisions/rejections per day from the audit
    progress: Counter[str] = Counter()
    actions = ("patch.office_review", "patch.reject", "patch.determine")
    q = select(AuditEntry.at).where(AuditEntry.round_id == rnd.id, AuditEntry.action.in_(actions))
    scope = actor.perms.division_scope("patch.read")
    if scope is not None:
        from sqlalchemy import false, or_

        from tuban.store.permissions import division_prefix

        q = q.where(or_(false(), *[AuditEntry.division_code.like(f"{division_prefix(c)}%") for c in scope]))
    for (at,) in session.execute(q):
        progress[at.date().isoformat()] += 1
    return {
        "round": {"id": rnd.id, "name": rnd.name, "period": rnd.period, "status": rnd.status,
                  # the review imagery's file names (never the server's folders)
                  "imagery": {k: Path(v).name for k, v in (rnd.imagery or {}).items()}},
        "total": sum(by_state.values()),
        "by_state": by_state,
        "by_byd": by_byd,
        "by_county": {k: dict(v) for k, v in sorted(by_county.items())},
        "tasks": task_rows,
        "overdue": [t for t in task_rows if t["overdue"]],
        "progress": sorted(progress.items()),
    }


def set_imagery(tx: Transaction, actor: Actor, round_id: int, *, before: str | None, after: str | None) -> Round:
    """Set the round's before/after COG paths: server-side paths, from the server's own folders (a web client
    names files of the imagery folder, resolved by :func:`tuban.workflow.jobs.imagery_file`)."""
    rnd = load_round(tx.session, actor, round_id, "round.create")
    if actor.perms.division_scope("round.create") is not None:
        from tuban.errors import PermissionDeniedError

        raise PermissionDeniedError(f"{actor.username} may not change round imagery")
    old = dict(rnd.imagery or {})
    rnd.imagery = {k: str(v) for k, v in (("before", before), ("after", after)) if v}
    tx.session.flush()
    tx.audit("round.set_imagery", "round", rnd.id, before=old, after=rnd.imagery, round_id=rnd.id)
    return rnd


def actor_for(store: Any, user_id: int) -> Actor:
    """The :class:`Actor` of *user_id* with rights read from the store now."""
    perms = store.permissions(user_id)
    return Actor(user_id=perms.user_id, username=perms.username, perms=perms)
