"""Offline imagery: the tile plan of a user's tasks, its size estimate against the budget, trimming and refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuban.errors import ConfigError
from tuban.field.tiles import OfflineSettings, TileLayer, lonlat_to_tile, plan_tiles, tiles_for_bbox

from .conftest import LAT, LON, FieldWorld, add_imagery, make_app

BOX = (LON, LAT, LON + 0.001, LAT + 0.0008)


def test_lonlat_to_tile_matches_known_tiles() -> None:
    assert lonlat_to_tile(0.0, 0.0, 1) == (1, 1)
    assert lonlat_to_tile(-180.0, 85.0, 3) == (0, 0)
    assert lonlat_to_tile(179.999, -85.0, 3) == (7, 7)
    # against an independent implementation (morecantile, rio-tiler's tile matrix sets)
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    for lon, lat, z in ((113.24, 35.22, 10), (113.2437, 35.2219, 18), (-70.1, -33.4, 14), (151.2, 60.1, 7)):
        t = tms.tile(lon, lat, z)
        assert lonlat_to_tile(lon, lat, z) == (t.x, t.y)


def test_tiles_for_bbox_covers_the_box() -> None:
    tiles = tiles_for_bbox(BOX, 18)
    xs, ys = {t[0] for t in tiles}, {t[1] for t in tiles}
    assert len(tiles) == len(xs) * len(ys)
    assert lonlat_to_tile(BOX[0], BOX[3], 18) in tiles
    assert lonlat_to_tile(BOX[2], BOX[1], 18) in tiles


def test_plan_trims_highest_zoom_then_refuses() -> None:
    layers = {"1/after": TileLayer(boxes=[BOX], extent=None, bytes_per_tile=10_000)}
    full = plan_tiles(layers, zooms=(15, 18), pad_m=200, budget_bytes=10**9)
    assert full.fits
    assert not full.trimmed
    assert full.zooms == (15, 18)
    assert full.estimate_bytes == full.count * 10_000
    # a budget below the full plan but above zooms 15–17: z18 dropped
    upto17 = sum(n for z, n in full.per_zoom.items() if z <= 17) * 10_000
    trimmed = plan_tiles(layers, zooms=(15, 18), pad_m=200, budget_bytes=upto17)
    assert trimmed.fits
    assert trimmed.trimmed
    assert trimmed.zooms == (15, 17)
    assert trimmed.estimate_bytes <= upto17
    # below even one zoom level: refused, nothing to download
    refused = plan_tiles(layers, zooms=(15, 18), pad_m=200, budget_bytes=5_000)
    assert not refused.fits
    assert refused.tiles == []
    assert refused.estimate_bytes > refused.budget_bytes


def test_plan_clips_to_the_imagery_extent_and_dedups() -> None:
    far = (LON + 1.0, LAT, LON + 1.001, LAT + 0.0008)
    extent = (LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01)
    layers = {"1/after": TileLayer(boxes=[BOX, BOX, far], extent=extent, bytes_per_tile=1)}
    plan = plan_tiles(layers, zooms=(17, 17), pad_m=0, budget_bytes=10**6)
    assert sorted(plan.tiles) == sorted(("1/after", 17, x, y) for x, y in tiles_for_bbox(BOX, 17))


def test_offline_settings_from_env() -> None:
    s = OfflineSettings.from_env({"TUBAN_FIELD_TILE_BUDGET_MB": "2", "TUBAN_FIELD_TILE_ZOOMS": "14-16",
                                  "TUBAN_FIELD_TILE_LAYERS": "after"})
    assert (s.budget_bytes, s.min_zoom, s.max_zoom, s.layers) == (2 * 1024 * 1024, 14, 16, ("after",))
    with pytest.raises(ConfigError, match="zooms"):
        OfflineSettings(min_zoom=18, max_zoom=15)
    with pytest.raises(ConfigError, match="not a number"):
        OfflineSettings.from_env({"TUBAN_FIELD_TILE_BUDGET_MB": "lots"})


def test_plan_route_measures_tiles_and_serves_them(fworld: FieldWorld, tmp_path: Path, api: Any) -> None:
    add_imagery(fworld, tmp_path / "imagery")
    inspector = api("a_field")
    r = inspector.request("GET", "/api/field/tiles/plan")
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["fits"]
    assert plan["count"] == len(plan["tiles"]) > 0
    assert plan["zooms"] == [15, 18]
    assert {u.split("/")[4] for u in plan["tiles"]} == {"before", "after"}
    assert all(u.startswith(f"/rounds/{fworld.round_id}/tiles/") for u in plan["tiles"])
    per_tile = plan["bytes_per_tile"]
    assert plan["estimate_bytes"] == sum(per_tile[u.split("/")[2] + "/" + u.split("/")[4]][u.split("/")[5]]
                                         for u in plan["tiles"])
    # the estimate is measured: the real tiles are within a factor 2 of it on average
    sample = plan["tiles"][:: max(1, len(plan["tiles"]) // 8)]
    real = []
    for url in sample:
        t = inspector.request("GET", url)
        assert t.status_code == 200
        assert t.headers["content-type"] == "image/png"
        real.append(len(t.content))
    mean_est = plan["estimate_bytes"] / plan["count"]
    assert 0.5 < (sum(real) / len(real)) / mean_est < 2.0
    # a smaller budget from the phone trims the top zoom; a tiny one refuses
    per18 = plan["per_zoom"]["18"]
    smaller = inspector.request("GET", "/api/field/tiles/plan",
                                params={"budget_mb": (plan["estimate_bytes"] - 1) / 1024 / 1024}).json()
    assert smaller["trimmed"]
    assert smaller["zooms"] == [15, 17]
    assert smaller["count"] == plan["count"] - per18
    tiny = inspector.request("GET", "/api/field/tiles/plan", params={"budget_mb": 0.001}).json()
    assert (tiny["fits"], tiny["tiles"]) == (False, [])
    # a phone cannot raise the server's budget
    big = inspector.request("GET", "/api/field/tiles/plan", params={"budget_mb": 99_999}).json()
    assert big["budget_bytes"] == big["server_budget_bytes"]


def test_plan_route_refused_without_login(field_app: Any, api: Any) -> None:
    anon = api(None)
    assert anon.request("GET", "/api/field/tiles/plan").status_code == 401
    assert make_app  # the helper builds the same app for the browser tests
