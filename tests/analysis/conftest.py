"""Fixtures: a PostGIS connection with a fresh schema per test module, and a runner for both backends."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from .backends import PG, run_postgis, run_shapely


def _postgres_url() -> str | None:
    url = os.environ.get("TUBAN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("TUBAN_REQUIRE_POSTGIS"):
            pytest.fail("TUBAN_REQUIRE_POSTGIS is set but TUBAN_TEST_POSTGRES_URL is missing")
        pytest.skip("no PostGIS server: set TUBAN_TEST_POSTGRES_URL (scripts/pg-test-cluster start DIR)")
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


@pytest.fixture(scope="module")
def pg_conn(request: pytest.FixtureRequest) -> Iterator[PG]:
    """A psycopg connection (autocommit) and a schema made for this test module (dropped after)."""
    psycopg = pytest.importorskip("psycopg")
    url = _postgres_url()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = re.sub(r"[^a-z0-9_]", "_", f"an_{request.module.__name__.rsplit('.', 1)[-1]}_{worker}_{os.getpid()}")
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield PG(conn, schema)
    finally:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()


@pytest.fixture(params=["shapely", "postgis"])
def backend(request: pytest.FixtureRequest) -> Any:
    """Run a layout through one backend and return the reduced result (same shape for both)."""
    if request.param == "shapely":
        return run_shapely
    conn = request.getfixturevalue("pg_conn")

    def _run(*layers: Any) -> dict[str, Any]:
        return run_postgis(conn, *layers)

    return _run
