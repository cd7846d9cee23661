"""Serving the app for a workspace (``tuban serve``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from tuban.web.settings import WebSettings

__all__ = ["freeze_startup_objects", "serve", "settings_for_workspace"]

SECRET_FILE = "web-secret.key"


def _workspace_secret(root: Path) -> str:
    """``$TUBAN_SECRET_KEY``, else a random key kept in the workspace (created once, mode 0600)."""
    env = os.environ.get("TUBAN_SECRET_KEY", "")
    if env:
        return env
    path = root / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="ascii").strip()


def settings_for_workspace(workspace: str | None) -> WebSettings:
    """Web settings of the workspace: its store URL, its secret, TLS and language from the environment."""
    from tuban.workspace import open_workspace

    ws = open_workspace(workspace)
    env = dict(os.environ)
    env["TUBAN_SECRET_KEY"] = _workspace_secret(ws.root)
    return WebSettings.from_env(ws.database_url, environ=env, detection_dir=ws.detection_dir,
                                imagery_dir=ws.imagery_dir)


def freeze_startup_objects() -> int:
    """Move everything allocated so far out of the garbage collector's sight; returns how many.

    The app imports numpy, GDAL, shapely, SQLAlchemy and FastAPI: ~200 000 long-lived objects
    that every full collection walks (~50–150 ms). Requests that build thousands of rows (a
    county's map layer) trigger such collections often enough that they were the slowest
    tenth of those requests (bench/bench_web.py: CPU p95 135 ms against a median of 38 ms;
    54 ms once frozen). Frozen objects are never collected, which costs nothing for objects
    that live as long as the process anyway.
    """
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def serve(settings: WebSettings, *, host: str = "127.0.0.1", port: int = 8000, worker: bool = False) -> None:
    """Run the app with uvicorn until interrupted (start-up objects frozen for the GC).

    ``worker``: run detection jobs too, on a thread of this process (:class:`tuban.workflow.jobs.Worker`,
    serial detection): for one machine serving a few users; elsewhere ``tuban worker`` processes run them."""
    import threading

    import uvicorn

    from tuban.web.app import create_app

    app = create_app(settings)
    stop = threading.Event()
    if worker:
        threading.Thread(target=_run_worker, args=(settings, stop), name="tuban-detection-worker",
                         daemon=True).start()
    freeze_startup_objects()
    try:
        uvicorn.run(app, host=host, port=port, proxy_headers=settings.behind_tls, log_level="info")
    finally:
        stop.set()  # a job still running is taken by the next worker once its lease runs out


def _run_worker(settings: WebSettings, stop: Any) -> None:
    from tuban.errors import UsageError
    from tuban.store import open_store
    from tuban.workflow.jobs import Worker

    if settings.imagery_dir is None or settings.detection_dir is None:
        raise UsageError("a detection worker needs the workspace's imagery and detection folders")
    with open_store(settings.database_url) as store:
        Worker(store, imagery_dir=settings.imagery_dir, detection_dir=settings.detection_dir).run(stop=stop)
