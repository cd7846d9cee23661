"""Settings of the web app (网页服务设置): read once, passed to :func:`create_app`.

Secrets that look like placeholders are refused (the full-stack-fastapi-template habit):
an app started with ``changeme`` as its session secret would let anyone forge sessions.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tuban.errors import ConfigError

__all__ = ["PLACEHOLDER_SECRETS", "WebSettings"]

#: values that are refused as ``secret_key`` (compared case-insensitively)
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "changethis", "secret", "password", "tuban", "dev", "test", "xxx"}
)
MIN_SECRET_LEN = 32


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Everything the app needs; no module-level state elsewhere.

    Parameters
    ----------
    database_url
        ``sqlite:///path`` or ``postgresql+psycopg://…``.
    secret_key
        Signs session cookies and CSRF tokens; at least 32 characters, no placeholder.
    behind_tls
        Mark cookies ``Secure`` (set when served over HTTPS or behind a TLS proxy).
    session_max_age_s
        Lifetime of a session cookie; an older one answers 401.
    login_max_failures, login_window_s
        Throttling: after this many failures for one username (or one client address)
        within the window, logins are refused with 429 until the window passes.
    default_lang
        ``zh`` (default) or ``en``.
    tile_size
        Imagery tile size in pixels.
    detection_dir
        Folder of detection outputs (``tuban detect -o DIR/NAME.gpkg``) that a province
        analyst may create a round from; ``None``: none offered.
    imagery_dir
        Folder of scenes a detection job may read (``POST /api/detection-jobs`` names entries inside it);
        ``None``: no detection jobs.
    max_import_features
        Most patches in a file uploaded (or a detection run picked) to create a round.
    """

    database_url: str
    secret_key: str
    behind_tls: bool = False
    session_max_age_s: int = 12 * 3600
    login_max_failures: int = 5
    login_window_s: int = 300
    login_max_failures_per_client: int = 50
    default_lang: str = "zh"
    tile_size: int = 256
    max_page_size: int = 500
    max_features: int = 5000
    max_upload_features: int = 20_000
    max_body_bytes: int = 64 * 1024 * 1024
    upgrade_on_start: bool = True
    static_dir: Path | None = field(default=None)
    detection_dir: Path | None = None
    imagery_dir: Path | None = None
    max_import_features: int = 200_000

    def __post_init__(self) -> None:
        key = self.secret_key or ""
        if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_LEN:
            raise ConfigError(
                "the web secret key is missing, a placeholder or shorter than "
                f"{MIN_SECRET_LEN} characters (got {len(key)} characters)",
                hint="set TUBAN_SECRET_KEY to a random value, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
            )
        if self.default_lang not in ("zh", "en"):
            raise ConfigError(f"default_lang={self.default_lang!r} is not supported", hint="use 'zh' or 'en'")
        if not self.database_url:
            raise ConfigError("no database url given for the web app", hint="pass database_url")

    @classmethod
    def from_env(cls, database_url: str, *, environ: dict[str, str] | None = None,
                 detection_dir: Path | None = None, imagery_dir: Path | None = None) -> WebSettings:
        """Settings from ``TUBAN_SECRET_KEY``, ``TUBAN_BEHIND_TLS`` and ``TUBAN_LANG``."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=database_url,
            detection_dir=detection_dir,
            imagery_dir=imagery_dir,
            secret_key=env.get("TUBAN_SECRET_KEY", ""),
            behind_tls=env.get("TUBAN_BEHIND_TLS", "").lower() in ("1", "true", "yes"),
            default_lang=env.get("TUBAN_LANG", "zh") or "zh",
        )

    @staticmethod
    def random_secret() -> str:
        """A fresh random secret (for tests and the demo)."""
        return secrets.token_urlsafe(48)
