"""Fixtures: a PostGIS connection with a fresh schema per test module, and a runner for both backends."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pytest

from tuban.analysis import analyse, load_rules


def _postgres_url() -> str | None:
    url = os.environ.get("TUBAN_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("TUBAN_REQUIRE_POSTGIS"):
            pytest.fail("TUBAN_REQUIRE_POSTGIS is set but TUBAN_TEST_POSTGRES_URL is missing")
        pytest.skip("no PostGIS server: set TUBAN_TEST_POSTGRES_URL (scripts/pg-test-cluster start DIR)")
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


@dataclass
class PG:
    conn: Any
    schema: str


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


def run_postgis(pg: PG, patches: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, divisions: gpd.GeoDataFrame,
                previous: gpd.GeoDataFrame | None = None, *, srid: int = 4547) -> dict[str, Any]:
    from tuban.analysis.postgis import classify_in_postgis, load_layers

    load_layers(pg.conn, pg.schema, patches, scopes, divisions, previous)
    return classify_in_postgis(pg.conn, pg.schema, srid=srid, rules=load_rules())


def run_shapely(patches: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, divisions: gpd.GeoDataFrame,
                previous: gpd.GeoDataFrame | None = None) -> dict[str, Any]:
    """The Python result reduced to the fields the SQL returns."""
    res = analyse(patches, scopes, divisions, previous, work_crs="EPSG:4547")
    frame = res.to_geodataframe(with_text=False)
    def none(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and v != v) else v

    out = []
    for row, num in zip(frame.itertuples(), res.numbers(), strict=True):
        out.append({
            "QDNM": row.QDNM, "QAREA": row.QAREA, "RULE_ID": row.RULE_ID, "EAREA": row.EAREA,
            "PRID": none(row.PRID), "XZQDM": none(row.XZQDM),
            "QDTYPE": none(row.QDTYPE) if previous is not None else None,
            "projects": sorted(s["SWC_P_ID"] for s in num["scopes"]),
        })
    return {"patches": out, "completed": list(res.completed()["QDNM"]) if previous is not None else []}


@pytest.fixture(params=["shapely", "postgis"])
def backend(request: pytest.FixtureRequest) -> Any:
    """Run a layout through one backend and return the reduced result (same shape for both)."""
    if request.param == "shapely":
        return run_shapely
    conn = request.getfixturevalue("pg_conn")

    def _run(*layers: Any) -> dict[str, Any]:
        return run_postgis(conn, *layers)

    return _run
