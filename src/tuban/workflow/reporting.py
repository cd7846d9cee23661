"""Determination (认定), submission (上报), province acceptance or return (验收/退回), cases (查处).

A determination keeps the suspected decision beside the confirmed one (two
:class:`~tuban.store.models.Decision` rows); a determined violation opens a case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from tuban.codes import codelists
from tuban.errors import ConflictError, FieldError, UsageError
from tuban.store.models import Case, CaseEvent, Decision, Patch, Review, Task, utcnow
from tuban.store.store import Transaction
from tuban.workflow.access import Actor, load_case, load_patch, load_task, patch_divisions
from tuban.workflow.review import _audit, _claim
from tuban.workflow.states import VIOLATIONS, check_case_transition, check_patch_transition

__all__ = ["accept_patches", "advance_case", "determine", "reopen", "return_patches", "submit_task"]


def determine(tx: Transaction, actor: Actor, patch_id: int, *, byd: str, note: str = "",
              based_on_version: int) -> Decision:
    """Record the confirmed compliance; a violation opens a case (investigating)."""
    patch = load_patch(tx.session, actor, patch_id, "patch.determine")
    target = check_patch_transition("determine", patch.state, patch_label=patch.qdnm)
    if not byd:
        raise FieldError("a determination needs a BYD value")
    codelists().validate("BYD", byd, context="determination")
    if byd.startswith("疑似"):
        raise FieldError(f"BYD={byd!r} is a suspected value; a determination uses the confirmed form",
                         hint=f"use {byd.removeprefix('疑似')!r}")
    _claim(tx, patch, based_on_version, {"byd": byd, "note": note})
    before = {"state": patch.state, "byd": patch.byd, "version": based_on_version}
    decision = Decision(patch_id=patch.id, kind="confirmed", byd=byd, explanation_zh=note or None,
                        actor=actor.username)
    tx.session.add(decision)
    patch.state = target
    patch.byd = byd
    tx.session.flush()
    _audit(tx, "patch.determine", patch, before,
           {"state": patch.state, "byd": byd, "note": note, "decision_id": decision.id, "version": patch.version})
    if byd in VIOLATIONS:
        open_case = tx.session.scalar(select(Case).where(Case.patch_id == patch.id, Case.state != "closed"))
        if open_case is None:
            case = Case(patch_id=patch.id, state="investigating")
            case.events = [CaseEvent(kind="opened", state="investigating", note=note or None,
                                     actor=actor.username)]
            tx.session.add(case)
            tx.session.flush()
            tx.audit("case.open", "case", case.id, after={"patch_id": patch.id, "state": "investigating",
                                                           "byd": byd},
                     round_id=patch.round_id, division_code=next(iter(patch_divisions(patch)), None))
    return decision


def reopen(tx: Transaction, actor: Actor, patch_id: int, *, based_on_version: int, note: str = "") -> Patch:
    """Back to office review from rejected or determined (before submission)."""
    patch = load_patch(tx.session, actor, patch_id, "patch.determine")
    target = check_patch_transition("reopen", patch.state, patch_label=patch.qdnm)
    _claim(tx, patch, based_on_version, {"reopen": True})
    before = {"state": patch.state, "version": based_on_version}
    patch.state = target
    tx.session.flush()
    _audit(tx, "patch.reopen", patch, before, {"state": target, "note": note, "version": patch.version})
    return patch


def submit_task(tx: Transaction, actor: Actor, task_id: int) -> Task:
    """The county submits its task: every patch must be determined or rejected (上报)."""
    task = load_task(tx.session, actor, task_id, "round.submit")
    if task.status == "submitted":
        raise ConflictError(f"task {task_id} was already submitted")
    patches = list(tx.session.scalars(
        select(Patch).where(Patch.round_id == task.round_id, Patch.lead_division_code == task.division_code,
                            Patch.state != "superseded")
    ))
    open_ = [p.qdnm for p in patches if p.state not in ("determined", "rejected", "reported")]
    if open_:
        raise ConflictError(
            f"{len(open_)} patch(es) of {task.division_code} are not determined or rejected yet: "
            f"{', '.join(open_[:10])}",
            hint="determine or reject every patch before submitting",
        )
    moved = []
    for p in patches:
        if p.state == "determined":
            p.state = check_patch_transition("submit", p.state)
            p.version += 1
            moved.append(p.id)
    before = {"status": task.status}
    task.status = "submitted"
    tx.session.flush()
    tx.audit("task.submit", "task", task.id, before=before,
             after={"status": "submitted", "reported_patches": moved, "submitted_at": utcnow()},
             round_id=task.round_id, division_code=task.division_code)
    return task


def _province_review(tx: Transaction, actor: Actor, patch_ids: Sequence[int], outcome: str,
                     comment: str) -> list[Patch]:
    if outcome == "returned" and not (comment or "").strip():
        raise FieldError("returning patches needs a comment saying what to rework")
    out = []
    for pid in patch_ids:
        patch = load_patch(tx.session, actor, pid, "round.accept")
        action = "accept" if outcome == "accepted" else "return"
        target = check_patch_transition(action, patch.state, patch_label=patch.qdnm)
        before = {"state": patch.state, "version": patch.version}
        patch.state = target
        patch.version += 1
        tx.session.add(Review(patch_id=patch.id, kind="province", user_id=actor.user_id,
                              data={"outcome": outcome, "comment": comment}))
        tx.session.flush()
        _audit(tx, f"patch.{action}", patch, before, {"state": target, "comment": comment,
                                                       "version": patch.version})
        out.append(patch)
        if outcome == "returned":
            task = tx.session.scalar(select(Task).where(Task.round_id == patch.round_id,
                                                        Task.division_code == patch.lead_division_code))
            if task is not None and task.status != "returned":
                tx.audit("task.return", "task", task.id, before={"status": task.status},
                         after={"status": "returned"}, round_id=task.round_id,
                         division_code=task.division_code)
                task.status = "returned"
    return out


def accept_patches(tx: Transaction, actor: Actor, patch_ids: Sequence[int], *, comment: str = "") -> list[Patch]:
    """The province accepts reported (or rejected) patches (验收)."""
    return _province_review(tx, actor, patch_ids, "accepted", comment)


def return_patches(tx: Transaction, actor: Actor, patch_ids: Sequence[int], *, comment: str) -> list[Patch]:
    """The province returns patches for rework with a comment (退回)."""
    return _province_review(tx, actor, patch_ids, "returned", comment)


def advance_case(tx: Transaction, actor: Actor, case_id: int, *, to: str, note: str = "",
                 deadline: dt.date | None = None, documents: Sequence[str] = ()) -> Case:
    """investigating → rectifying (needs a deadline) → closed; each step dated and audited."""
    case = load_case(tx.session, actor, case_id, "case.manage")
    codelists().validate("CASE_STATE", to, context="case")
    check_case_transition(case.state, to, case_id=case.id)
    if to == "rectifying" and deadline is None:
        raise UsageError("rectification (整改) needs a deadline", hint="pass deadline=YYYY-MM-DD")
    for d in documents:
        if not (isinstance(d, str) and len(d) == 64 and all(c in "0123456789abcdef" for c in d)):
            raise FieldError(f"document {d!r} is not a sha256 of an uploaded file")
    before = {"state": case.state, "deadline": case.deadline}
    case.state = to
    if deadline is not None:
        case.deadline = deadline
    if to == "closed":
        case.closed_at = utcnow()
    case.events.append(CaseEvent(kind="transition", state=to, note=note or None, documents=list(documents),
                                 actor=actor.username))
    tx.session.flush()
    patch = tx.session.get(Patch, case.patch_id)
    tx.audit(f"case.{to}", "case", case.id, before=before,
             after={"state": to, "deadline": case.deadline, "note": note, "documents": list(documents)},
             round_id=patch.round_id if patch else None,
             division_code=patch.lead_division_code if patch else None)
    return case


def case_summary(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "patch_id": case.patch_id, "state": case.state, "deadline": case.deadline,
        "opened_at": case.opened_at, "closed_at": case.closed_at,
        "events": [{"kind": e.kind, "state": e.state, "note": e.note, "documents": e.documents,
                    "actor": e.actor, "at": e.at} for e in case.events],
    }
