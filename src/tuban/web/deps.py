"""Request dependencies: the acting user and the one permission check per route.

``actor = require("patch.edit")`` in a route's signature is the whole permission check:
it authenticates (signed session, user active, ``auth_epoch`` unchanged, rights read
from the database now) and, when the path names an item (``{patch_id}``, ``{round_id}``,
``{task_id}``, ``{case_id}``, ``{user_id}``), resolves the item's division and answers
404 for items outside the user's scope exactly as for missing ones.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from tuban.errors import NotFoundError, PermissionDeniedError
from tuban.web.problems import AuthenticationRequiredError, CsrfError
from tuban.web.security import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, tokens_match
from tuban.workflow.access import Actor, load_case, load_patch, load_round, load_task

__all__ = ["ITEM_PARAMS", "csrf_protect", "current_actor", "optional_actor", "path_int", "require"]

#: path parameters that name an item whose division decides visibility
ITEM_PARAMS = ("patch_id", "case_id", "task_id", "round_id", "user_id")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _session(request: Request) -> Any:
    signer = request.app.state.signer
    return signer.loads(request.cookies.get(SESSION_COOKIE))


def optional_actor(request: Request) -> Actor | None:
    """The logged-in user with rights read from the database now, or ``None``."""
    cached = getattr(request.state, "actor", None)
    if cached is not None:
        return cached
    data = _session(request)
    if data is None:
        return None
    store = request.app.state.store
    try:
        perms = store.permissions(data.user_id)
    except NotFoundError:
        return None
    if not perms.active or perms.auth_epoch != data.epoch:
        return None
    actor = Actor(user_id=perms.user_id, username=perms.username, perms=perms)
    request.state.actor = actor
    request.state.username = actor.username
    request.state.session = data
    return actor


def current_actor(request: Request) -> Actor:
    actor = optional_actor(request)
    if actor is None:
        raise AuthenticationRequiredError("log in first (no valid session)", hint="POST /login")
    return actor


def path_int(request: Request, name: str) -> int:
    """The id in path parameter *name*; anything but a plausible id answers 404 like a missing item
    (the echoed value is cut to 40 characters)."""
    raw = request.path_params.get(name)
    try:
        value = int(str(raw))
    except (TypeError, ValueError):
        raise NotFoundError(f"no item {str(raw)[:40]!r}") from None
    if value < 0 or value > 2**62:
        raise NotFoundError(f"no item {raw!r}")
    return value


def check_item(request: Request, actor: Actor, verb: str) -> None:
    """Resolve the item named by the path and apply *verb* to it (404 outside scope)."""
    store = request.app.state.store
    params = request.path_params
    with store.session() as s:
        if "patch_id" in params:
            load_patch(s, actor, path_int(request, "patch_id"), verb)
        elif "case_id" in params:
            load_case(s, actor, path_int(request, "case_id"), verb)
        elif "task_id" in params:
            load_task(s, actor, path_int(request, "task_id"), verb)
        elif "round_id" in params:
            load_round(s, actor, path_int(request, "round_id"), "round.read")
            if verb != "round.read" and actor.perms.division_scope(verb) == frozenset():
                raise PermissionDeniedError(f"{actor.username} may not {verb}")
        elif "user_id" in params:
            from tuban.workflow.accounts import load_user

            load_user(s, actor, path_int(request, "user_id"), verb)
        elif actor.perms.division_scope(verb) == frozenset():
            raise PermissionDeniedError(f"{actor.username} may not {verb}")


def require(verb: str) -> Any:
    """The permission dependency of a route: ``actor: Actor = require("patch.edit")``."""

    def dependency(request: Request, actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        check_item(request, actor, verb)
        return actor

    dependency.__name__ = f"require_{verb.replace('.', '_')}"
    dependency.verb = verb  # type: ignore[attr-defined]  # read by the route-walker test
    return Depends(dependency)


async def csrf_protect(request: Request) -> None:
    """Every unsafe method must echo the CSRF cookie (header or form field)."""
    if request.method in SAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not tokens_match(cookie, sent):
        raise CsrfError("missing or wrong CSRF token", hint="reload the page and try again")
    data = _session(request)
    if data is not None and not tokens_match(data.csrf, cookie):
        raise CsrfError("the CSRF token does not belong to this session", hint="log in again")
