"""Areas of interest: only their part of the scenes is read, their CRS is honoured (GCJ-02 county
boundaries), bad AOIs are refused with the fix."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from synth import RECTS, scene_arrays, write_stack

from tuban.detect.engine import detect

ORIGIN = (500000.0, 3800000.0)  # EPSG:32650, 10 m pixels (synth.write_stack)


@pytest.fixture(scope="module")
def tiled_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("aoi")
    before, after, _ = scene_arrays(shape=(512, 512), seed=4)
    return write_stack(d / "b.tif", before, block=128), write_stack(d / "a.tif", after, block=128)


def _site_box(k: int, pad_px: int) -> shapely.Polygon:
    """Changed site ``k`` of :data:`synth.RECTS` and ``pad_px`` pixels around it, in EPSG:32650."""
    r0, r1, c0, c1 = RECTS[k]
    x, y = ORIGIN
    return shapely.box(x + 10 * (c0 - pad_px), y - 10 * (r1 + pad_px), x + 10 * (c1 + pad_px), y - 10 * (r0 - pad_px))


def test_an_aoi_in_another_crs_reads_only_its_tiles(tiled_pair) -> None:
    """An AOI in lon/lat around one site: 4 of the 16 tiles of 128 px are read, and the patches are the whole
    run's inside it, the threshold the scene's."""
    from tuban.detect.engine import plan

    b, a = tiled_pair
    box = _site_box(1, 20)
    aoi = gpd.GeoSeries([box], crs="EPSG:32650").to_crs("EPSG:4326")
    assert (len(plan(b, a, tile_size=128).tiles), len(plan(b, a, tile_size=128, aoi=aoi).tiles)) == (16, 4)
    full = detect(b, a, tile_size=128)
    res = detect(b, a, tile_size=128, aoi=aoi)
    assert res.threshold == full.threshold
    assert len(res.patches) == 1
    inside = shapely.union_all(full.patches.geometry.values).intersection(aoi.to_crs("EPSG:32650").iloc[0])
    got = shapely.union_all(res.patches.geometry.values)
    assert got.symmetric_difference(inside).area <= 1e-6 * inside.area


def test_a_gcj02_boundary_needs_its_crs_named(tiled_pair, tmp_path) -> None:
    """A boundary drawn on a Chinese web map (GCJ-02) and saved as GeoJSON, which calls every file WGS84: read
    as WGS84 it lands ~500 m east and cuts the site; with --aoi-crs gcj02 it holds the whole site."""
    from tuban.cli import main
    from tuban.crs import wgs84_to_gcj02

    b, a = tiled_pair
    box = _site_box(1, 5)
    lonlat = gpd.GeoSeries([box], crs="EPSG:32650").to_crs("EPSG:4326").iloc[0]
    gcj = shapely.transform(lonlat, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    aoi = tmp_path / "county.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "县"}, "geometry": shapely.geometry.mapping(gcj)}]}))
    site = _site_box(1, 0).area
    areas = {}
    for name, extra in (("as wgs84", []), ("gcj02", ["--aoi-crs", "gcj02"])):
        out = tmp_path / f"{name}.gpkg"
        assert main(["detect", str(b), str(a), "-o", str(out), "--aoi", str(aoi), "-q", *extra]) == 0
        areas[name] = float(gpd.read_file(out, layer="patches").area.sum())
    assert areas["gcj02"] >= 0.95 * site
    assert areas["as wgs84"] <= 0.7 * site


def test_bad_aois_are_refused_with_the_fix(tiled_pair, tmp_path) -> None:
    from tuban.detect.output import read_aoi
    from tuban.errors import InputError, MissingCRSError, NoOverlapError

    b, a = tiled_pair
    far = gpd.GeoSeries([shapely.box(600000, 3700000, 601000, 3701000)], crs="EPSG:32650")
    with pytest.raises(NoOverlapError, match="outside the dates' common area"):
        detect(b, a, aoi=far)
    with pytest.raises(MissingCRSError, match="AOI has no CRS"):
        detect(b, a, aoi=gpd.GeoSeries([_site_box(1, 5)]))
    with pytest.raises(InputError, match="empty"):
        detect(b, a, aoi=shapely.Polygon())
    shp = tmp_path / "no_prj.shp"
    with pytest.warns(UserWarning, match="crs"):
        gpd.GeoDataFrame(geometry=[_site_box(1, 5)]).to_file(shp)  # no CRS: no .prj
    with pytest.raises(MissingCRSError, match="AOI") as err:
        read_aoi(shp)
    assert "--aoi-crs" in str(err.value.hint)
    assert len(read_aoi(shp, crs="EPSG:32650")) == 1
