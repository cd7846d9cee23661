"""Migration 0003: ``patches.overview_geojson`` (the simplified outline of the zoomed-out map)
kept like the display outline on both backends, and the two backends agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from sqlalchemy import select, text, update

from tuban.store.models import OVERVIEW_DECIMALS, OVERVIEW_TOLERANCE, Patch, Round, overview_geojson


def _wiggly(x0: float, y0: float, n: int = 200) -> shapely.Polygon:
    """A pixel-staircase-like outline: many vertices, most of them within a metre of a circle."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 0.002 + 0.00002 * np.sin(t * 37)
    return shapely.Polygon(np.c_[x0 + r * np.cos(t), y0 + r * np.sin(t)])


def _check(stored: str | None, geom: shapely.Geometry) -> None:
    assert stored is not None
    got = shapely.geometry.shape(json.loads(stored))
    assert got.geom_type == geom.geom_type
    assert shapely.get_num_coordinates(got) < shapely.get_num_coordinates(geom) / 4
    assert shapely.hausdorff_distance(got, geom) <= OVERVIEW_TOLERANCE + 10.0**-OVERVIEW_DECIMALS
    assert all(len(repr(float(v)).split(".")[-1]) <= OVERVIEW_DECIMALS for v in shapely.get_coordinates(got).ravel())


def test_overview_outline_is_stored_and_kept_current(store) -> None:
    import geopandas as gpd

    geoms = [_wiggly(113.0, 35.0), _wiggly(113.01, 35.0)]
    store.import_patches(gpd.GeoDataFrame({"QDNM": ["A", "B"], "XZQDM": ["410811", "410811"]}, geometry=geoms,
                                          crs="EPSG:4490"), round_name="2024-1", actor="t")
    with store.session() as s:
        rows = dict(s.execute(select(Patch.qdnm, Patch.overview_geojson)).all())
    _check(rows["A"], geoms[0])
    _check(rows["B"], geoms[1])
    moved = _wiggly(113.5, 35.5)
    with store.transaction(actor="t") as tx:  # ORM: recomputed on the way in (SQLite) or by the trigger
        tx.session.scalar(select(Patch).where(Patch.qdnm == "A")).geometry = moved
    with store.transaction(actor="t") as tx:  # around the ORM: recomputed (PostGIS) or cleared (SQLite)
        tx.session.execute(update(Patch).where(Patch.qdnm == "B").values(geometry=moved))
    with store.session() as s:
        rows = dict(s.execute(select(Patch.qdnm, Patch.overview_geojson)).all())
    _check(rows["A"], moved)
    if store.dialect == "postgresql":
        _check(rows["B"], moved)
    else:
        assert rows["B"] is None  # readers compute it (tuban.workflow.queries)


def test_stored_overview_matches_the_python_helper(store) -> None:
    """What the database holds (PostGIS: its trigger; SQLite: the ORM) equals the helper's outline."""
    geoms = [_wiggly(113.0 + i * 0.01, 35.0, n=40 + 30 * i) for i in range(5)] + [shapely.box(113, 35, 113.001, 35.001)]
    import geopandas as gpd

    store.import_patches(gpd.GeoDataFrame({"QDNM": [f"P{i}" for i in range(len(geoms))]}, geometry=geoms,
                                          crs="EPSG:4490"), round_name="2024-1", actor="t")
    with store.session() as s:
        rows = s.execute(select(Patch.qdnm, Patch.overview_geojson).order_by(Patch.id)).all()
    for (_, stored), mine in zip(rows, overview_geojson(geoms), strict=True):
        a, b = shapely.geometry.shape(json.loads(stored)), shapely.geometry.shape(json.loads(mine))
        assert shapely.equals_exact(a, b, tolerance=10.0**-OVERVIEW_DECIMALS)


def test_overview_helper_handles_missing_and_empty() -> None:
    out = overview_geojson([None, shapely.Polygon(), shapely.box(0.123456, 0, 1, 1)])
    assert out[:2] == [None, None]
    assert json.loads(out[2])["coordinates"][0][0][0] in (0.12346, 1.0)


@pytest.mark.filterwarnings("ignore:Did not recognize type 'geometry':sqlalchemy.exc.SAWarning")
def test_upgrade_from_0002_backfills(store_url: str) -> None:
    from tuban.store import open_store

    with open_store(store_url) as store:
        store.upgrade("0002_patch_divisions")
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO rounds (name, status, imagery, created_at) "
                              "VALUES ('r', 'open', '{}', CURRENT_TIMESTAMP)"))
            rid = conn.execute(select(Round.id)).scalar()
            geom = _wiggly(113.0, 35.0)
            cols = Patch.__table__.c
            conn.execute(Patch.__table__.insert().values(
                {cols.round_id: rid, cols.qdnm: "A", cols.lead_division_code: "410811", cols.state: "issued",
                 cols.version: 1, cols.geometry: geom}))
        store.upgrade()
        with store.session() as s:
            (stored,) = s.scalars(select(Patch.overview_geojson))
        _check(stored, geom)
        store.upgrade("0002_patch_divisions")  # and back down
        store.upgrade()
