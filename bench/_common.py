"""Helpers shared by the bench scripts (run as ``python bench/NAME.py``; this folder is on sys.path)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path


def bench_database_url(backend: str, tmp: Path) -> str:
    """An empty database for one bench run: an SQLite file in *tmp*, or a fresh PostGIS database.

    PostGIS needs ``TUBAN_TEST_POSTGRES_URL`` (a server where the role may CREATE DATABASE,
    e.g. from ``scripts/pg-test-cluster start DIR``).
    """
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite'}"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    admin = os.environ.get("TUBAN_TEST_POSTGRES_URL", "")
    if not admin:
        sys.exit("--backend postgis needs TUBAN_TEST_POSTGRES_URL (scripts/pg-test-cluster start DIR)")
    name = f"tuban_bench_{uuid.uuid4().hex[:8]}"
    eng = create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    eng = create_engine(url, poolclass=NullPool)
    with eng.begin() as c:
        c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.dispose()
    return url
