"""Run the web app with the field router on 127.0.0.1 (tests, benchmarks, demos).

``python -m tuban.fieldapp.serve DB_URL BLOB_DIR PORT SECRET``
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["build_app", "main"]


def build_app(database_url: str, blob_dir: Path, secret: str) -> object:
    """The web app for *database_url* with the field router included once and its folders set."""
    from tuban.fieldapp.router import router
    from tuban.fieldapp.services import configure_field
    from tuban.web import WebSettings, create_app

    settings = WebSettings(database_url=database_url, secret_key=secret, upgrade_on_start=False)
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/api/field/records" for r in app.routes):
        app.include_router(router)
    configure_field(app, blob_dir=blob_dir, upload_dir=blob_dir.parent / "uploads")
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = sys.argv[1:] if argv is None else argv
    url, blob_dir, port, secret = args[0], Path(args[1]), int(args[2]), args[3]
    uvicorn.run(build_app(url, blob_dir, secret), host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
