"""Login, logout, password change, language (登录、退出、修改密码、语言)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from tuban.errors import PermissionDeniedError, TubanError
from tuban.web.deps import current_actor, optional_actor
from tuban.web.i18n import LANGS
from tuban.web.problems import ThrottledError
from tuban.web.security import CSRF_COOKIE, SESSION_COOKIE, SessionData
from tuban.workflow.access import Actor

router = APIRouter(tags=["auth"])


def _safe_next(value: str | None) -> str:
    """Only local paths: no open redirect (``//host``, ``/\\host``, schemes)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or "\n" in value or "\r" in value:
        return "/rounds"
    return value


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def start_session(request: Request, response: Response, user_id: int) -> None:
    app = request.app
    perms = app.state.store.permissions(user_id)
    csrf = request.state.csrf
    data = SessionData(user_id=user_id, epoch=perms.auth_epoch, issued_at=time.time(), csrf=csrf)
    s = app.state.settings
    response.set_cookie(SESSION_COOKIE, app.state.signer.dumps(data), httponly=True, samesite="lax",
                        secure=s.behind_tls, max_age=s.session_max_age_s, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="strict", secure=s.behind_tls, path="/")


@router.get("/login", include_in_schema=False)
def login_page(request: Request, next: str | None = None) -> Response:
    return request.app.state.pages.render(request, "login.html", {"next": _safe_next(next), "error": None})


def _login(request: Request, username: str, password: str) -> int:
    app = request.app
    throttle = app.state.throttle
    client = _client(request)
    from tuban.security import dummy_verify

    if throttle.blocked(username, client):
        dummy_verify(password[:64])  # same work as a real attempt
        raise ThrottledError("too many failed logins", retry_after_s=int(throttle.window_s))
    if any(ord(ch) < 32 for ch in username + password):  # NUL etc. never reach the database
        dummy_verify(password[:64])
        user_id = None
    else:
        user_id = app.state.store.verify_user(username.strip(), password)
    if user_id is None:
        throttle.failed(username, client)
        import logging

        logging.getLogger("tuban.web").warning("login failed user=%r client=%s", username[:64], client)
        raise PermissionDeniedError("wrong username or password")
    throttle.succeeded(username)
    return user_id


@router.post("/login", include_in_schema=False)
def login_form(request: Request, username: Annotated[str, Form(max_length=64)],
               password: Annotated[str, Form(max_length=1024)],
               next: Annotated[str | None, Form()] = None) -> Response:
    pages = request.app.state.pages
    try:
        user_id = _login(request, username, password)
    except ThrottledError:
        return pages.render(request, "login.html", {"next": _safe_next(next), "error": "login.throttled"},
                            status_code=429)
    except PermissionDeniedError:
        return pages.render(request, "login.html", {"next": _safe_next(next), "error": "login.failed"},
                            status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    start_session(request, response, user_id)
    return response


@router.post("/api/session", tags=["auth"], summary="Log in (JSON): sets the session cookie")
def login_api(request: Request, body: dict[str, str]) -> Response:
    from fastapi.responses import JSONResponse

    username, password = str(body.get("username", ""))[:64], str(body.get("password", ""))[:1024]
    try:
        user_id = _login(request, username, password)
    except PermissionDeniedError as exc:
        from tuban.web.problems import AuthenticationRequiredError

        raise AuthenticationRequiredError("wrong username or password") from exc
    response = JSONResponse({"ok": True, "user_id": user_id})
    start_session(request, response, user_id)
    return response


def _end(request: Request, actor: Actor | None) -> Response:
    if actor is not None:
        from tuban.workflow.accounts import end_sessions

        with request.app.state.store.transaction(actor=actor.username) as tx:
            end_sessions(tx, actor.user_id, reason="logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, actor: Annotated[Actor | None, Depends(optional_actor)]) -> Response:
    """Ends every session of the user (the epoch is bumped), so a copied cookie stops working."""
    return _end(request, actor)


@router.get("/account/password", include_in_schema=False)
def password_page(request: Request, actor: Annotated[Actor, Depends(current_actor)]) -> Response:
    return request.app.state.pages.render(request, "password.html", {"error": None})


@router.post("/account/password", include_in_schema=False)
def password_change(request: Request, actor: Annotated[Actor, Depends(current_actor)],
                    old_password: Annotated[str, Form(max_length=1024)],
                    new_password: Annotated[str, Form(max_length=1024)]) -> Response:
    from tuban.workflow.accounts import change_password

    try:
        with request.app.state.store.transaction(actor=actor.username) as tx:
            change_password(tx, actor, old_password=old_password, new_password=new_password)
    except TubanError as exc:
        return request.app.state.pages.render(request, "password.html", {"error": str(exc)}, status_code=422)
    response = RedirectResponse("/login?changed=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}", include_in_schema=False)
def set_lang(request: Request, code: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LANGS:
        response.set_cookie("tuban_lang", code, httponly=True, samesite="lax", path="/", max_age=365 * 86400)
    return response
