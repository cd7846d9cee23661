"""One writer at a time per SQLite store in this process (单写者).

SQLite allows one writer; many threads each waiting in ``BEGIN IMMEDIATE`` with the busy
handler's back-off starve each other and some hit ``database is locked`` after the busy
timeout. Field writes therefore queue on an in-process lock first (fair, no polling) and
keep their transactions short; PostgreSQL needs no lock and gets none.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["write_lock"]

_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


@contextlib.contextmanager
def write_lock(store: Any) -> Iterator[None]:
    """Hold the store's writer lock (SQLite only) for the ``with`` block."""
    if getattr(store, "dialect", "") != "sqlite":
        yield
        return
    with _GUARD:
        lock = _LOCKS.get(store)
        if lock is None:
            lock = _LOCKS[store] = threading.Lock()
    with lock:
        yield
