"""The app factory: ``create_app(settings)`` builds a fresh FastAPI app (no module state)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

import tuban
from tuban.web.deps import csrf_protect, optional_actor
from tuban.web.i18n import LANGS, Catalogue, load_catalogue
from tuban.web.problems import install_problem_handlers
from tuban.web.security import CSRF_COOKIE, LoginThrottle, SessionSigner, new_csrf_token
from tuban.web.settings import WebSettings
from tuban.web.tiles import TileRenderer

__all__ = ["LANG_COOKIE", "Pages", "create_app"]

log = logging.getLogger("tuban.web")
LANG_COOKIE = "tuban_lang"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "worker-src 'self' blob:; child-src blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def request_lang(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE) or request.app.state.settings.default_lang
    return lang if lang in LANGS else "zh"


class Pages:
    """Server-rendered pages (Jinja2, autoescaped) with the catalogue and formatting helpers."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.env = Environment(loader=PackageLoader("tuban.web", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)

    def render(self, request: Request, name: str, context: dict[str, Any] | None = None, *,
               status_code: int = 200) -> HTMLResponse:
        lang = request_lang(request)
        cat = self.catalogue
        def fmt_area(ha: float | None, unit: str = "ha") -> str:
            return cat.area(lang, ha, unit=unit)

        def fmt_num(v: float | int | None, d: int = 2) -> str:
            return cat.number(lang, v, d)

        ctx: dict[str, Any] = {
            "request": request, "lang": lang, "html_lang": "zh-CN" if lang == "zh" else "en",
            "t": lambda key: cat.t(lang, key),
            "fmt_area": fmt_area,
            "fmt_date": lambda v: cat.date(lang, v),
            "fmt_num": fmt_num,
            "csrf_token": getattr(request.state, "csrf", ""),
            "actor": getattr(request.state, "actor", None),
            "version": tuban.__version__,
            "here": quote(request.url.path),
        }
        ctx.update(context or {})
        html = self.env.get_template(name).render(ctx)
        return HTMLResponse(html, status_code=status_code)


def create_app(settings: WebSettings, *, store: Any = None) -> FastAPI:
    """A new tuban web app for *settings*.

    Parameters
    ----------
    settings
        :class:`WebSettings` (database URL, secret, TLS, limits).
    store
        An already opened :class:`tuban.store.Store` to use instead of opening
        ``settings.database_url`` (the caller then closes it).
    """
    from tuban.store import open_store

    own_store = store is None
    the_store = open_store(settings.database_url) if own_store else store
    if settings.upgrade_on_start:
        the_store.upgrade()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.tiles.close()
        if own_store:
            the_store.close()

    app = FastAPI(
        title="tuban",
        version=tuban.__version__,
        summary="图斑核查: rounds, county tasks, office review, determination, cases and audit",
        lifespan=lifespan,
        dependencies=[Depends(csrf_protect)],
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.signer = SessionSigner(settings.secret_key, max_age_s=settings.session_max_age_s)
    app.state.throttle = LoginThrottle(max_failures=settings.login_max_failures,
                                       window_s=settings.login_window_s,
                                       max_failures_per_client=settings.login_max_failures_per_client)
    app.state.catalogue = load_catalogue()
    app.state.pages = Pages(app.state.catalogue)
    app.state.tiles = TileRenderer(tile_size=settings.tile_size)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > settings.max_body_bytes):
            from fastapi.responses import JSONResponse

            return JSONResponse({"type": "urn:tuban:problem:limit-exceeded", "code": "limit-exceeded",
                                 "title": f"request body over {settings.max_body_bytes} bytes", "status": 413},
                                status_code=413, media_type="application/problem+json")
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh = not csrf or len(csrf) < 20
        request.state.csrf = new_csrf_token() if fresh else csrf
        response: Response = await call_next(request)
        if fresh:
            response.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=False, samesite="strict",
                                secure=settings.behind_tls, path="/")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.url.path.startswith("/api/") or response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    install_problem_handlers(app)
    static_dir = settings.static_dir or Path(__file__).with_name("static")
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    from tuban.web.routes import api, auth, cases, intake, jobs, pages, tiles, users

    for module in (auth, pages, api, intake, jobs, cases, users, tiles):
        app.include_router(module.router)
    from tuban.fieldapp.router import router as field_router  # the field app (外业核查, PWA + sync API)

    app.include_router(field_router)

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> dict[str, Any]:
        """Liveness (database reachable); versions of GDAL/PROJ/GEOS/store for logged-in users only."""
        import rasterio
        import shapely

        store_versions = the_store.server_versions()
        if optional_actor(request) is None:
            return {"ok": True}
        import pyproj

        return {"ok": True, "versions": {"tuban": tuban.__version__, "GDAL": rasterio.__gdal_version__,
                                         "PROJ": pyproj.proj_version_str, "GEOS": shapely.geos_version_string,
                                         **store_versions}}

    app.state.optional_actor = optional_actor
    return app
