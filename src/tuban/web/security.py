"""Sessions, CSRF and login throttling (会话、跨站请求伪造防护、登录限速).

* The session cookie (``tuban_session``, HttpOnly, SameSite=Lax, Secure behind TLS) holds
  a signed payload: user id, the user's ``auth_epoch`` at login, issue time and the
  CSRF token. Nothing else: rights are read from the database at every request, and a
  changed ``auth_epoch`` (password change, logout, deactivation, role change by an
  admin) ends every session of that user at its next request.
* CSRF: double submit. A random token lives in the readable cookie ``tuban_csrf``
  (SameSite=Strict) and, once logged in, inside the signed session too. Every unsafe
  method must echo it in the ``X-CSRF-Token`` header or a ``csrf_token`` form field.
* Throttling: failures are counted per username and per client address in a sliding
  window held on the app (no module state).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "LoginThrottle",
    "SessionData",
    "SessionSigner",
    "new_csrf_token",
    "tokens_match",
]

SESSION_COOKIE = "tuban_session"
CSRF_COOKIE = "tuban_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(a: str | None, b: str | None) -> bool:
    """Constant-time comparison; empty or missing never matches."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class SessionData:
    user_id: int
    epoch: int
    issued_at: float
    csrf: str


class SessionSigner:
    """HMAC-SHA256 signed session payloads (the key is derived from the app secret)."""

    def __init__(self, secret_key: str, *, max_age_s: int) -> None:
        self._key = hashlib.sha256(b"tuban-session\0" + secret_key.encode("utf-8")).digest()
        self.max_age_s = max_age_s

    def dumps(self, data: SessionData) -> str:
        payload = json.dumps(
            {"u": data.user_id, "e": data.epoch, "t": round(data.issued_at, 3), "c": data.csrf},
            separators=(",", ":"),
        ).encode("utf-8")
        body = _b64(payload)
        sig = _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
        return f"{body}.{sig}"

    def loads(self, token: str | None, *, now: float | None = None) -> SessionData | None:
        """The session in *token*, or ``None`` if missing, forged, malformed or expired."""
        if not token or token.count(".") != 1 or len(token) > 4096:
            return None
        body, sig = token.split(".")
        expected = _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
        if not hmac.compare_digest(sig.encode("ascii", "replace"), expected.encode("ascii")):
            return None
        try:
            raw = json.loads(_unb64(body))
            data = SessionData(int(raw["u"]), int(raw["e"]), float(raw["t"]), str(raw["c"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = time.time() if now is None else now
        if data.issued_at > now + 60 or now - data.issued_at > self.max_age_s:
            return None
        return data


class LoginThrottle:
    """Sliding-window count of failed logins per username and per client address."""

    def __init__(self, *, max_failures: int, window_s: float, max_failures_per_client: int) -> None:
        self.max_failures = max_failures
        self.max_failures_per_client = max_failures_per_client
        self.window_s = window_s
        self._by_user: dict[str, deque[float]] = defaultdict(deque)
        self._by_client: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, q: deque[float], now: float) -> None:
        while q and now - q[0] > self.window_s:
            q.popleft()

    def blocked(self, username: str, client: str, *, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = username.strip().lower()
        with self._lock:
            uq, cq = self._by_user[key], self._by_client[client]
            self._prune(uq, now)
            self._prune(cq, now)
            return len(uq) >= self.max_failures or len(cq) >= self.max_failures_per_client

    def failed(self, username: str, client: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._by_user[username.strip().lower()].append(now)
            self._by_client[client].append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._by_user.pop(username.strip().lower(), None)
