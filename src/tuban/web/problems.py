"""Exceptions → HTTP, in one table (RFC 9457 problem details, 问题详情).

Every :class:`tuban.errors.TubanError` maps to a status and keeps its stable ``code``
as the problem ``type``; the message goes to the client because tuban's messages are
written for users. Anything else is a bug: logged with its traceback, answered as a
plain 500 with no internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuban import errors as E  # noqa: N812

__all__ = [
    "PROBLEM_TABLE",
    "AuthenticationRequiredError",
    "CsrfError",
    "ThrottledError",
    "install_problem_handlers",
    "problem_for",
]

log = logging.getLogger("tuban.web")


class AuthenticationRequiredError(E.TubanError):
    """No valid session: missing, expired, logged out, deactivated or epoch changed."""

    code = "authentication-required"


class CsrfError(E.PermissionDeniedError):
    """An unsafe request without the matching CSRF token."""

    code = "csrf"


class ThrottledError(E.TubanError):
    """Too many failed logins."""

    code = "throttled"

    def __init__(self, message: str, *, retry_after_s: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


#: the one table: most specific class first
PROBLEM_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationRequiredError, 401),
    (CsrfError, 403),
    (ThrottledError, 429),
    (E.NotFoundError, 404),
    (E.InputNotFoundError, 404),
    (E.ConflictError, 409),
    (E.IntegrityError, 409),
    (E.LimitExceededError, 413),
    (E.InputError, 422),
    (E.UsageError, 422),
    (E.PermissionDeniedError, 403),
    (E.MigrationError, 503),
    (E.ClusterError, 503),
    (E.ConfigError, 500),
    (E.StoreError, 500),
    (E.RasterError, 422),
    (E.TubanError, 400),
)


def problem_for(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and problem body for *exc* (a TubanError)."""
    status = 500
    for cls, code in PROBLEM_TABLE:
        if isinstance(exc, cls):
            status = code
            break
    body: dict[str, Any] = {
        "type": f"urn:tuban:problem:{getattr(exc, 'code', 'error')}",
        "code": getattr(exc, "code", "error"),
        "title": getattr(exc, "message", str(exc)),
        "status": status,
    }
    hint = getattr(exc, "hint", None)
    if hint:
        body["hint"] = hint
    extra = getattr(exc, "problem_extra", None)
    if callable(extra):
        body.update(extra())
    if isinstance(exc, E.NotFoundError):
        # one message for missing and not-visible, so nothing reveals that an item exists
        body["title"] = "not found"
        body.pop("hint", None)
    return status, body


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and not request.url.path.startswith("/api/")


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that apply :data:`PROBLEM_TABLE`."""

    async def tuban_error(request: Request, exc: Exception) -> Response:
        status, body = problem_for(exc)
        if status in (401, 403, 404):
            user = getattr(request.state, "username", None)
            log.warning("refused %s %s user=%s status=%s code=%s", request.method, request.url.path, user,
                        status, body["code"])
        elif status >= 500:
            log.error("server-side error on %s %s: %s", request.method, request.url.path, exc)
        headers = {}
        if isinstance(exc, ThrottledError):
            headers["Retry-After"] = str(exc.retry_after_s)
        if _wants_html(request):
            if status == 401:
                from fastapi.responses import RedirectResponse

                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            pages = request.app.state.pages
            return pages.render(request, "error.html", {"problem": body}, status_code=status)
        return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        body = {"type": "urn:tuban:problem:validation", "code": "validation", "title": "invalid request",
                "status": 422, "errors": details}
        return JSONResponse(body, status_code=422, media_type="application/problem+json")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http")
        body = {"type": f"urn:tuban:problem:{code}", "code": code, "title": str(exc.detail),
                "status": exc.status_code}
        if exc.status_code == 404:
            body["title"] = "not found"
        return JSONResponse(body, status_code=exc.status_code, media_type="application/problem+json",
                            headers=getattr(exc, "headers", None))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {"type": "urn:tuban:problem:internal", "code": "internal", "title": "internal error",
                "status": 500}
        return JSONResponse(body, status_code=500, media_type="application/problem+json")

    app.add_exception_handler(E.TubanError, tuban_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
