"""Enforcement cases (查处 → 整改 → 销号)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from tuban.web.deps import require
from tuban.workflow import reporting
from tuban.workflow.access import Actor, load_case, patch_scope_clause
from tuban.workflow.service import perform

router = APIRouter(prefix="/api/cases", tags=["cases"])


class AdvanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal["rectifying", "closed"]
    note: str = Field(default="", max_length=2000)
    deadline: dt.date | None = None
    documents: list[str] = Field(default_factory=list, max_length=50)


@router.get("", summary="Cases visible to you")
def list_cases(request: Request, actor: Annotated[Actor, require("patch.read")], state: str | None = None) -> list[dict[str, Any]]:
    from tuban.store.models import Case, Patch

    q = (select(Case, Patch.qdnm, Patch.lead_division_code, Patch.round_id).join(Patch, Patch.id == Case.patch_id)
         .where(patch_scope_clause(actor, "patch.read")).order_by(Case.id.desc()).limit(1000))
    if state:
        q = q.where(Case.state == state)
    with request.app.state.store.session() as s:
        return [{"id": c.id, "patch_id": c.patch_id, "qdnm": qdnm, "division_code": div, "round_id": rid,
                 "state": c.state, "deadline": c.deadline, "opened_at": c.opened_at, "closed_at": c.closed_at}
                for c, qdnm, div, rid in s.execute(q).all()]


@router.get("/{case_id}", summary="One case with its dated events")
def get_case(request: Request, case_id: int, actor: Annotated[Actor, require("patch.read")]) -> dict[str, Any]:
    with request.app.state.store.session() as s:
        return reporting.case_summary(load_case(s, actor, case_id, "patch.read"))


@router.post("/{case_id}/advance", summary="investigating → rectifying (deadline) → closed")
def advance(request: Request, case_id: int, body: AdvanceBody, actor: Annotated[Actor, require("case.manage")]) -> dict[str, Any]:
    perform(request.app.state.store, actor, reporting.advance_case, case_id, to=body.to, note=body.note,
            deadline=body.deadline, documents=body.documents)
    with request.app.state.store.session() as s:
        return reporting.case_summary(load_case(s, actor, case_id, "patch.read"))
