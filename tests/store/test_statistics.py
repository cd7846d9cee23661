"""A bulk load refreshes PostgreSQL's planner statistics (the first map view must not meet an unanalysed table)."""

from __future__ import annotations

import geopandas as gpd
import shapely
from sqlalchemy import text


def _patches(n: int) -> gpd.GeoDataFrame:
    geoms = [shapely.box(113.2 + i * 1e-3, 35.2, 113.2005 + i * 1e-3, 35.2005) for i in range(n)]
    return gpd.GeoDataFrame({"QDNM": [f"T{i:04d}" for i in range(n)], "XZQDM": ["410811"] * n},
                            geometry=geoms, crs="EPSG:4490")


def test_import_patches_leaves_statistics_current(store) -> None:  # type: ignore[no-untyped-def]
    n = store.import_patches(_patches(300), round_name="2024-1", actor="test")
    assert n == 300
    if store.dialect != "postgresql":
        return  # SQLite plans without statistics: nothing to refresh (refresh_statistics is a no-op)
    with store.session() as s:
        # pg_class.reltuples is written by ANALYZE itself (-1 on a table never analysed)
        estimates = dict(s.execute(text(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('patches', 'patch_divisions')")).all())
    assert estimates == {"patches": 300, "patch_divisions": 300}
