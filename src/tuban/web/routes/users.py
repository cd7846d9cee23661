"""User administration within the admin's divisions (用户管理): roles and activation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from tuban.web.deps import require
from tuban.workflow import accounts
from tuban.workflow.access import Actor
from tuban.workflow.service import perform

router = APIRouter(prefix="/api/users", tags=["users"])


class RolesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[tuple[str, str | None]] = Field(max_length=20)


class ActiveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool


def _public(user: Any) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "active": user.active,
            "roles": [[a.role, a.division_code] for a in user.assignments]}


@router.get("", summary="Users you may administer")
def list_users(request: Request, actor: Annotated[Actor, require("user.manage")]) -> list[dict[str, Any]]:
    from tuban.errors import NotFoundError
    from tuban.store.models import User

    out = []
    with request.app.state.store.session() as s:
        for user in s.scalars(select(User).order_by(User.username)):
            try:
                accounts.load_user(s, actor, user.id)
            except NotFoundError:
                continue
            out.append(_public(user))
    return out


@router.put("/{user_id}/roles", summary="Replace a user's roles (effective at their next request)")
def set_roles(request: Request, user_id: int, body: RolesBody,
              actor: Annotated[Actor, require("user.manage")]) -> dict[str, Any]:
    perform(request.app.state.store, actor, accounts.set_roles, user_id, body.roles)
    with request.app.state.store.session() as s:
        return _public(accounts.load_user(s, actor, user_id))


@router.put("/{user_id}/active", summary="Activate or deactivate a user (deactivation ends their sessions)")
def set_active(request: Request, user_id: int, body: ActiveBody,
               actor: Annotated[Actor, require("user.manage")]) -> dict[str, Any]:
    perform(request.app.state.store, actor, accounts.set_active, user_id, body.active)
    with request.app.state.store.session() as s:
        return _public(accounts.load_user(s, actor, user_id))
