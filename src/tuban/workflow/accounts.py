"""Account changes the web app needs on top of the store (账户): password, roles, sessions.

Every change that must end a user's open sessions bumps ``User.auth_epoch`` (the signed
session cookie carries the epoch it was issued under).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from tuban.errors import NotFoundError, PermissionDeniedError, UsageError
from tuban.store.models import Role, RoleAssignment, User
from tuban.store.store import Transaction
from tuban.workflow.access import Actor

__all__ = ["MIN_PASSWORD_LEN", "change_password", "end_sessions", "set_active", "set_roles"]

MIN_PASSWORD_LEN = 10


def end_sessions(tx: Transaction, user_id: int, *, reason: str) -> int:
    """Bump the user's ``auth_epoch``: every session issued before ends now."""
    user = tx.session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    user.auth_epoch = (user.auth_epoch or 0) + 1
    tx.session.flush()
    tx.audit("user.end_sessions", "user", user.id, after={"auth_epoch": user.auth_epoch, "reason": reason})
    return user.auth_epoch


def change_password(tx: Transaction, actor: Actor, *, old_password: str, new_password: str) -> None:
    """The actor changes their own password (ends their other sessions)."""
    from tuban.security import hash_password, verify_password

    user = tx.session.get(User, actor.user_id)
    if user is None:
        raise NotFoundError(f"no user with id {actor.user_id}")
    if not verify_password(user.password_hash, old_password):
        raise PermissionDeniedError("the current password is wrong")
    if len(new_password) < MIN_PASSWORD_LEN or new_password == old_password:
        raise UsageError(f"the new password must have at least {MIN_PASSWORD_LEN} characters and differ "
                         "from the old one")
    user.password_hash = hash_password(new_password)
    tx.audit("user.change_password", "user", user.id, after={"username": user.username})
    end_sessions(tx, user.id, reason="password changed")


def _admin_covers(actor: Actor, roles: Sequence[tuple[str, str | None]]) -> None:
    for _, code in roles:
        if not actor.allows("user.manage", code):
            raise PermissionDeniedError(f"{actor.username} may not assign roles in division {code or 'province'}")


def set_roles(tx: Transaction, actor: Actor, user_id: int, roles: Sequence[tuple[str, str | None]]) -> None:
    """Replace a user's role assignments; the user's next request sees the new rights."""
    user = tx.session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    old = [(a.role, a.division_code) for a in user.assignments]
    _admin_covers(actor, old)
    _admin_covers(actor, roles)
    known = set(tx.session.scalars(select(Role.name)))
    for role, _ in roles:
        if role not in known:
            raise UsageError(f"unknown role {role!r}", hint=f"use one of: {', '.join(sorted(known))}")
    user.assignments = []
    tx.session.flush()  # delete the old rows first: the same (role, division) may come back
    user.assignments = [RoleAssignment(role=r, division_code=d or None) for r, d in dict.fromkeys(roles)]
    tx.session.flush()
    tx.audit("user.set_roles", "user", user.id, before={"roles": [list(r) for r in old]},
             after={"roles": [list(r) for r in roles]})


def set_active(tx: Transaction, actor: Actor, user_id: int, active: bool) -> None:
    user = tx.session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    _admin_covers(actor, [(a.role, a.division_code) for a in user.assignments])
    before = user.active
    user.active = bool(active)
    tx.audit("user.set_active", "user", user.id, before={"active": before}, after={"active": user.active})
    if not active:
        end_sessions(tx, user.id, reason="deactivated")


def load_user(session: object, actor: Actor, user_id: int, verb: str = "user.manage") -> User:
    """A user the actor may administer: all of the user's assignments lie in the actor's scope.

    Anyone else answers not found, as for a missing id.
    """
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    user = session.get(User, user_id)
    if user is None or actor.perms.division_scope(verb) == frozenset():
        raise NotFoundError(f"no user with id {user_id}")
    if actor.perms.division_scope(verb) is None:
        return user
    codes = [a.division_code for a in user.assignments]
    if not codes or not all(c is not None and actor.allows(verb, c) for c in codes):
        raise NotFoundError(f"no user with id {user_id}")
    return user
