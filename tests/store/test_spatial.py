"""Bounding-box lookups (R*Tree on SQLite, GiST on PostGIS) agree with a brute-force check."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from sqlalchemy import select

from tuban.errors import UsageError
from tuban.store.models import Patch, Round


def _random_patches(rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    x = rng.uniform(113.0, 113.5, n)
    y = rng.uniform(35.0, 35.4, n)
    w = rng.uniform(0.0005, 0.02, n)
    h = rng.uniform(0.0005, 0.02, n)
    geoms = shapely.box(x, y, x + w, y + h)
    return gpd.GeoDataFrame({"QDNM": [f"Q{i:05d}" for i in range(n)]}, geometry=geoms, crs="EPSG:4490")


def _brute_force(gdf: gpd.GeoDataFrame, ids: dict[str, int], bbox: tuple[float, ...]) -> list[int]:
    minx, miny, maxx, maxy = bbox
    b = gdf.geometry.bounds
    hit = (b.maxx >= minx) & (b.minx <= maxx) & (b.maxy >= miny) & (b.miny <= maxy)
    return sorted(ids[q] for q in gdf.loc[hit, "QDNM"])


def test_bbox_lookup_matches_brute_force(store) -> None:
    rng = np.random.default_rng(20240801)
    gdf = _random_patches(rng, 300)
    store.import_patches(gdf, round_name="2024-1", actor="t")
    store.import_patches(gdf, round_name="2024-2", actor="t")  # same shapes, other round: never returned
    with store.session() as s:
        round_id = s.scalar(select(Round.id).where(Round.name == "2024-1"))
        ids = dict(s.execute(select(Patch.qdnm, Patch.id).where(Patch.round_id == round_id)).all())
    boxes = [(113.1, 35.1, 113.2, 35.2), (112.0, 34.0, 112.5, 34.5), (113.0, 35.0, 113.6, 35.5)]
    for _ in range(20):
        x, y = rng.uniform(113.0, 113.5), rng.uniform(35.0, 35.4)
        boxes.append((x, y, x + rng.uniform(0, 0.1), y + rng.uniform(0, 0.1)))
    # a box touching one patch's corner exactly (float32 R*Tree rounding must not lose or add it)
    first = gdf.geometry.iloc[0].bounds
    boxes.append((first[2], first[3], first[2] + 0.001, first[3] + 0.001))
    boxes.append((first[2] + 1e-9, first[3] + 1e-9, first[2] + 0.001, first[3] + 0.001))
    for bbox in boxes:
        assert store.patch_ids_in_bbox(round_id, bbox) == _brute_force(gdf, ids, bbox), bbox


def test_bbox_follows_geometry_updates(store) -> None:
    gdf = _random_patches(np.random.default_rng(1), 2)
    store.import_patches(gdf, round_name="2024-1", actor="t")
    with store.transaction(actor="t") as tx:
        patch = tx.session.scalar(select(Patch).where(Patch.qdnm == "Q00000"))
        patch.geometry = shapely.box(120.0, 30.0, 120.01, 30.01)
        round_id, patch_id = patch.round_id, patch.id
    assert store.patch_ids_in_bbox(round_id, (119.9, 29.9, 120.1, 30.1)) == [patch_id]
    assert patch_id not in store.patch_ids_in_bbox(round_id, (113.0, 35.0, 113.6, 35.5))
    with store.transaction(actor="t") as tx:
        tx.session.delete(tx.session.get(Patch, patch_id))
    assert store.patch_ids_in_bbox(round_id, (119.9, 29.9, 120.1, 30.1)) == []


@pytest.mark.parametrize("bbox", [(1, 2, 3), (3, 0, 1, 1), (0, 0, float("nan"), 1), ("a", 0, 1, 1)])
def test_bad_bbox_refused(store, bbox) -> None:
    with pytest.raises(UsageError, match="bbox"):
        store.patch_ids_in_bbox(1, bbox)
