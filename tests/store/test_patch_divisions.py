"""Migration 0002: ``patch_divisions`` and ``patches.display_geojson`` kept by the database
whoever writes the patches (ORM, bulk UPDATE, raw SQL), on both backends."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import delete, select, text, update

from tuban.store.models import Patch, PatchDivision, Round, display_geojson


def _divisions(store) -> dict[str, list[str]]:
    with store.session() as s:
        rows = s.execute(select(Patch.qdnm, PatchDivision.division_code, PatchDivision.round_id, Patch.round_id)
                         .join(Patch, Patch.id == PatchDivision.patch_id)
                         .order_by(Patch.qdnm, PatchDivision.division_code)).all()
    out: dict[str, list[str]] = {}
    for qdnm, code, pd_round, p_round in rows:
        assert pd_round == p_round
        out.setdefault(qdnm, []).append(code)
    return out


def _frame(rows: list[tuple[str, str | None]]) -> gpd.GeoDataFrame:
    geoms = [shapely.box(113 + i * 0.01, 35, 113.005 + i * 0.01, 35.005) for i in range(len(rows))]
    return gpd.GeoDataFrame({"QDNM": [q for q, _ in rows], "XZQDM": [x for _, x in rows]}, geometry=geoms,
                            crs="EPSG:4490")


def test_patch_divisions_follow_every_write(store) -> None:
    store.import_patches(_frame([
        ("A", "410811"),
        ("B", " 410811 ，410822;410823； 410811"),  # every separator, spaces, a repeat
        ("C", None),
        ("D", 'x"y\\z,1234567890123,410822'),  # quotes/backslashes survive; over 12 characters dropped
    ]), round_name="2024-1", actor="t")
    assert _divisions(store) == {"A": ["410811"], "B": ["410811", "410822", "410823"],
                                 "D": ["410822", 'x"y\\z']}
    with store.transaction(actor="t") as tx:  # ORM update
        p = tx.session.scalar(select(Patch).where(Patch.qdnm == "A"))
        p.xzqdm, p.lead_division_code = "410822,410811", "410822"
    with store.transaction(actor="t") as tx:  # bulk UPDATE around the ORM (as the analysis writes)
        tx.session.execute(update(Patch).where(Patch.qdnm == "C").values(lead_division_code="410823"))
        tx.session.execute(update(Patch).where(Patch.qdnm == "B").values(xzqdm="", lead_division_code=None))
    with store.transaction(actor="t") as tx:
        tx.session.execute(delete(Patch).where(Patch.qdnm == "D"))
    assert _divisions(store) == {"A": ["410811", "410822"], "C": ["410823"]}


def test_display_outline_is_stored_and_kept_current(store) -> None:
    store.import_patches(_frame([("A", "410811"), ("B", "410811")]), round_name="2024-1", actor="t")
    with store.session() as s:
        rows = dict(s.execute(select(Patch.qdnm, Patch.display_geojson)).all())
        geoms = dict(s.execute(select(Patch.qdnm, Patch.geometry)).all())
    for qdnm, stored in rows.items():
        assert stored is not None
        got = shapely.geometry.shape(json.loads(stored))
        assert shapely.equals_exact(got, geoms[qdnm], tolerance=1e-6)
        assert all(len(repr(v).split(".")[-1]) <= 6 for v in shapely.get_coordinates(got).ravel())
    moved = shapely.box(113.1234567891, 35.1, 113.2, 35.2)
    with store.transaction(actor="t") as tx:  # ORM: recomputed on the way in (SQLite) or by the trigger
        tx.session.scalar(select(Patch).where(Patch.qdnm == "A")).geometry = moved
    with store.transaction(actor="t") as tx:  # around the ORM: recomputed (PostGIS) or cleared (SQLite)
        tx.session.execute(update(Patch).where(Patch.qdnm == "B").values(geometry=moved, minx=113.1,
                                                                            miny=35.1, maxx=113.2, maxy=35.2))
    with store.session() as s:
        rows = dict(s.execute(select(Patch.qdnm, Patch.display_geojson)).all())
    assert shapely.equals_exact(shapely.geometry.shape(json.loads(rows["A"])), moved, tolerance=1e-6)
    if store.dialect == "postgresql":
        assert shapely.equals_exact(shapely.geometry.shape(json.loads(rows["B"])), moved, tolerance=1e-6)
    else:
        assert rows["B"] is None  # readers compute it (tuban.workflow.queries)


def test_display_geojson_helper_handles_missing_and_empty() -> None:
    out = display_geojson([None, shapely.Polygon(), shapely.box(0.12345678, 0, 1, 1)])
    assert out[:2] == [None, None]
    assert json.loads(out[2])["coordinates"][0][0][0] in (0.123457, 1.0)


@pytest.mark.filterwarnings("ignore:Did not recognize type 'geometry':sqlalchemy.exc.SAWarning")
def test_upgrade_from_0001_backfills(store_url: str) -> None:
    from tuban.store import open_store

    with open_store(store_url) as store:
        store.upgrade("0001_initial")
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO rounds (name, status, imagery, created_at) "
                              "VALUES ('r', 'open', '{}', CURRENT_TIMESTAMP)"))
            rid = conn.execute(select(Round.id)).scalar()
            for qdnm, xzqdm, lead in (("A", "410811,410822", "410811"), ("B", None, "410822")):
                conn.execute(
                    Patch.__table__.insert().values(round_id=rid, qdnm=qdnm, xzqdm=xzqdm, lead_division_code=lead,
                                                    state="issued", version=1, geometry=shapely.box(1, 2, 3, 4))
                )
        store.upgrade()
        assert _divisions(store) == {"A": ["410811", "410822"], "B": ["410822"]}
        with store.session() as s:
            texts = list(s.scalars(select(Patch.display_geojson)))
        assert [shapely.geometry.shape(json.loads(t)).equals(shapely.box(1, 2, 3, 4)) for t in texts] == [True, True]
