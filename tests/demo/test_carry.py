"""Carry-forward of the previous round's still-disturbed patches (tuban.demo.carry)."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from tuban.demo.carry import carry_forward, clip_out, detect_round, merge_patches

CRS = "EPSG:4547"


def _gdf(geoms, **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=CRS)


def test_carry_forward_drops_completed_patches_only():
    prev = _gdf([shapely.box(0, 0, 200, 100), shapely.box(1000, 0, 1100, 100), shapely.box(0, 500, 10, 510)],
                QDNM=["P1", "P2", "P3"])
    # half of P1 changed (buildings rose, a net was laid, or a part was given back): still a site;
    # P2 changed back all but its edge: completed
    gone = shapely.union_all([shapely.box(100, 0, 200, 100), shapely.box(1002, 2, 1100, 100)])
    out = carry_forward(prev, gone, mmu_ha=0.04)
    assert list(out["prev_QDNM"]) == ["P1"]  # P3 is under the mapping unit
    assert out.geometry.iloc[0].equals(prev.geometry.iloc[0])
    assert out["gone_share"].iloc[0] == pytest.approx(0.5)
    assert list(carry_forward(prev, shapely.Polygon())["prev_QDNM"]) == ["P1", "P2", "P3"]
    assert list(carry_forward(prev, gone, completed_share=0.99)["prev_QDNM"]) == ["P1", "P2", "P3"]


def test_merge_joins_an_expanded_site_into_one_patch():
    carried = _gdf([shapely.box(0, 0, 100, 100)], prev_QDNM=["P1"])
    detected = _gdf([shapely.box(100, 0, 150, 100), shapely.box(500, 500, 560, 560)])
    out = merge_patches(detected, carried)
    assert len(out) == 2
    by_source = dict(zip(out["source"], out.geometry.area, strict=True))
    assert by_source["detected+carried"] == pytest.approx(150 * 100)
    assert by_source["detected"] == pytest.approx(60 * 60)
    assert out["QAREA"].sum() == pytest.approx((15000 + 3600) / 1e4)
    assert len(merge_patches(_gdf([]), _gdf([]))) == 0


def test_clip_out_removes_an_area_and_small_pieces():
    pats = _gdf([shapely.box(0, 0, 100, 100), shapely.box(300, 0, 400, 100)], score=[1.0, 2.0])
    out = clip_out(pats, shapely.box(-10, -10, 97, 110), mmu_ha=0.04)
    assert list(out["score"]) == [2.0]  # the 3 m strip left of the first is under the mapping unit
    assert clip_out(pats, None, mmu_ha=0.04) is pats


def test_round_finds_continuing_sites_and_drops_completed_ones(tiny_scene):
    s = tiny_scene
    r = detect_round(s)
    t = s.truth
    merged = shapely.union_all(r.patches.geometry.to_numpy())
    # every continuing site (bare in both rounds) is covered mostly by the round's patches
    cont = t[t["active"].to_numpy() & t["sim_change"].isin(["unchanged", "shrunk"]).to_numpy()]
    assert len(cont)
    for g in cont.geometry:
        assert g.intersection(merged).area > 0.6 * g.area
    # completed sites are not carried forward
    done = t[~t["active"].to_numpy()]
    assert len(done)
    carried = shapely.union_all(r.carried.geometry.to_numpy())
    for g in done.geometry:
        assert g.intersection(carried).area < 0.2 * g.area
        # nor is their hardening taken for new disturbance
        assert g.intersection(merged).area < 0.2 * g.area
