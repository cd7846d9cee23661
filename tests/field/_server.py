"""Run the web app with the field router in a subprocess: ``python _server.py DB_URL BLOB_DIR PORT SECRET``.

Used by the kill-and-resume test, the browser test and the load bench.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import uvicorn

    from tuban.fieldapp.router import router
    from tuban.fieldapp.services import configure_field
    from tuban.web import WebSettings, create_app

    url, blob_dir, port, secret = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    settings = WebSettings(database_url=url, secret_key=secret, upgrade_on_start=False)
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/api/field/records" for r in app.routes):
        app.include_router(router)
    configure_field(app, blob_dir=blob_dir, upload_dir=blob_dir.parent / "uploads")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
