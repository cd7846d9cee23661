"""Engines for both backends, with the SQLite pragmas on every connection.

SQLite: one file, ``journal_mode=WAL``, ``foreign_keys=ON``, ``busy_timeout`` and
``synchronous=FULL`` (anything acknowledged to a user is on disk). Python's ``sqlite3``
driver is put in autocommit mode and SQLAlchemy emits ``BEGIN`` itself, so DDL and
savepoints are transactional; write transactions start with ``BEGIN IMMEDIATE`` so a
second writer waits (``busy_timeout``) instead of failing on a lock upgrade.

SQLite connections are pooled (:data:`SQLITE_POOL_SIZE` kept open, more opened on demand
and closed when returned): opening one costs ~2 ms (file open, the pragmas, parsing the
schema on the first statement), and a web request opens two or three sessions. Each
connection serves one thread at a time; the pool rolls back whatever a returned
connection left open.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool

from tuban.errors import ConfigError
from tuban.store.localfs import check_local_filesystem

__all__ = ["BUSY_TIMEOUT_MS", "SQLITE_POOL_SIZE", "SQLITE_PRAGMAS", "make_engine"]

#: SQLite connections kept open between sessions (more are opened under load, then closed)
SQLITE_POOL_SIZE = 8

BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS = (
    ("journal_mode", "WAL"),
    ("foreign_keys", "ON"),
    ("busy_timeout", str(BUSY_TIMEOUT_MS)),
    ("synchronous", "FULL"),
)


def _sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    try:
        for name, value in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {name}={value}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://…``.

    Raises
    ------
    ConfigError
        The URL is malformed, names a backend tuban does not support, or puts an SQLite
        file on a network filesystem (:mod:`tuban.store.localfs`).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"cannot parse database URL {url!r}",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            # one shared in-memory connection would be needed; tuban always uses a file
            raise ConfigError(
                f"SQLite store needs a file path, got {url!r}", hint="use sqlite:///path/to/tuban.sqlite"
            )
        check_local_filesystem(database)
        engine = create_engine(parsed, poolclass=QueuePool, pool_size=SQLITE_POOL_SIZE, max_overflow=-1,
                               **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    raise ConfigError(
        f"unsupported database backend {backend!r} in {parsed.render_as_string(hide_password=True)}",
        hint="tuban supports sqlite:///PATH and postgresql+psycopg://…",
    )
