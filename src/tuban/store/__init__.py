"""The store: SQLAlchemy 2 tables, Alembic migrations, imports, users and audit.

SQLite (one file, WAL) is the embedded default; PostgreSQL/PostGIS serves many users.
One :class:`Store` interface covers both::

    from tuban.store import open_store
    with open_store("sqlite:///ws/tuban.sqlite") as store:
        store.upgrade()
        with store.transaction(actor="alice") as tx:
            tx.session.add(...)
            tx.audit("patch.edit", "patch", 42, before=..., after=...)

Heavy modules load lazily: importing :mod:`tuban.store` imports no SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Permissions", "Store", "Transaction", "open_store"]

if TYPE_CHECKING:
    from tuban.store.permissions import Permissions
    from tuban.store.store import Store, Transaction, open_store


def __getattr__(name: str) -> Any:
    if name in ("Store", "Transaction", "open_store"):
        from tuban.store import store

        return getattr(store, name)
    if name == "Permissions":
        from tuban.store.permissions import Permissions

        return Permissions
    raise AttributeError(f"module 'tuban.store' has no attribute {name!r}")
