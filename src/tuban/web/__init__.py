"""The review web app (网页端): ``create_app(settings)`` and ``WebSettings``.

>>> from tuban.web import create_app, WebSettings   # doctest: +SKIP
>>> app = create_app(WebSettings(database_url="sqlite:///ws/tuban.sqlite", secret_key=...))

Imports are lazy so ``import tuban.web`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["WebSettings", "create_app"]

if TYPE_CHECKING:
    from tuban.web.app import create_app
    from tuban.web.settings import WebSettings


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from tuban.web.app import create_app

        return create_app
    if name == "WebSettings":
        from tuban.web.settings import WebSettings

        return WebSettings
    raise AttributeError(f"module 'tuban.web' has no attribute {name!r}")
