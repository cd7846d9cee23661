"""tuban.crs: GCJ-02/BD-09 conversions against published reference points, CRS allowlist, areas."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from tuban import crs as tc
from tuban.errors import UnsupportedCRSError


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance on WGS84 (an independent measure: pyproj.Geod)."""
    return float(pyproj.Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2])


# Published WGS84 -> GCJ-02 pairs (lat, lon order in the source). Source: the test vectors of
# googollee/eviltransform (transform_test.go, copied by its Python/PHP/Ruby ports), cities
# Shanghai, Shenzhen, Beijing; and the wandergis/coordtransform README example (116.404, 39.915).
WGS_GCJ = [
    # (wgs_lon, wgs_lat, gcj_lon, gcj_lat)
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),
    (116.404, 39.915, 116.41024449916938, 39.91640428150164),
]

# wandergis/coordtransform README (GCJ-02 input 116.404, 39.915): published outputs of the
# public approximate inverses (first-order; they differ from the exact inverse by a few cm).
COORDTRANSFORM_GCJ_TO_WGS = (116.404, 39.915, 116.39775550083061, 39.91359571849836)
COORDTRANSFORM_GCJ_TO_BD = (116.404, 39.915, 116.41036949371029, 39.92133699351021)
COORDTRANSFORM_BD_TO_GCJ = (116.404, 39.915, 116.39762729119315, 39.90865673957631)
# hujiulong/gcoord test/unit/crs/GCJ02.spec.js: GCJ02 -> WGS84 and GCJ02 -> BD09 of (123, 45)
GCOORD_GCJ_TO_WGS = (123.0, 45.0, 122.99395597, 44.99804071)
GCOORD_GCJ_TO_BD = (123.0, 45.0, 123.00636499, 45.00636899)


@pytest.mark.parametrize(("wlon", "wlat", "glon", "glat"), WGS_GCJ)
def test_wgs84_to_gcj02_matches_published_pairs(wlon: float, wlat: float, glon: float, glat: float) -> None:
    lon, lat = tc.wgs84_to_gcj02(wlon, wlat)
    assert lon == pytest.approx(glon, abs=1e-9)
    assert lat == pytest.approx(glat, abs=1e-9)


@pytest.mark.parametrize(("wlon", "wlat", "glon", "glat"), WGS_GCJ)
def test_gcj02_to_wgs84_recovers_published_wgs84(wlon: float, wlat: float, glon: float, glat: float) -> None:
    lon, lat = tc.gcj02_to_wgs84(glon, glat)
    assert metres(lon, lat, wlon, wlat) < 0.01  # the iterative inverse is exact to < 1 cm


@pytest.mark.parametrize(
    ("func", "ref", "tol_m"),
    [
        (tc.gcj02_to_wgs84, COORDTRANSFORM_GCJ_TO_WGS, 0.5),
        (tc.gcj02_to_bd09, COORDTRANSFORM_GCJ_TO_BD, 0.001),
        (tc.bd09_to_gcj02, COORDTRANSFORM_BD_TO_GCJ, 0.5),
        (tc.gcj02_to_wgs84, GCOORD_GCJ_TO_WGS, 0.5),
        (tc.gcj02_to_bd09, GCOORD_GCJ_TO_BD, 0.5),
    ],
)
def test_other_published_points(func: object, ref: tuple[float, float, float, float], tol_m: float) -> None:
    lon, lat = func(ref[0], ref[1])  # type: ignore[operator]
    assert metres(lon, lat, ref[2], ref[3]) < tol_m


def test_vectorized_matches_scalar_and_keeps_shape() -> None:
    lons = np.array([[121.5272106, 113.912316], [116.377817, 116.404]])
    lats = np.array([[31.1774276, 22.543847], [39.911954, 39.915]])
    glon, glat = tc.wgs84_to_gcj02(lons, lats)
    assert glon.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            assert (glon[i, j], glat[i, j]) == tc.wgs84_to_gcj02(float(lons[i, j]), float(lats[i, j]))
    assert isinstance(tc.gcj02_to_wgs84(113.2, 35.2)[0], float)


def test_identity_outside_china() -> None:
    assert tc.wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)  # Paris
    assert tc.gcj02_to_wgs84(-74.0, 40.7) == (-74.0, 40.7)
    assert tc.out_of_china(np.array([2.35, 113.0]), np.array([48.85, 35.0])).tolist() == [True, False]


@settings(max_examples=200, deadline=None)
@given(lon=st.floats(73.7, 134.9), lat=st.floats(18.0, 53.5))
def test_round_trips_under_half_a_metre(lon: float, lat: float) -> None:
    glon, glat = tc.wgs84_to_gcj02(lon, lat)
    assert metres(*tc.gcj02_to_wgs84(glon, glat), lon, lat) < 0.01
    blon, blat = tc.wgs84_to_bd09(lon, lat)
    assert metres(*tc.bd09_to_wgs84(blon, blat), lon, lat) < 0.01
    assert metres(*tc.bd09_to_gcj02(*tc.gcj02_to_bd09(lon, lat)), lon, lat) < 0.01


def test_offset_in_jiaozuo_is_about_550m_mostly_west() -> None:
    # domain.md §7: the GCJ-02 shift in Jiaozuo is ~550 m
    glon, glat = 113.27, 35.22
    wlon, wlat = tc.gcj02_to_wgs84(glon, glat)
    assert 500 < metres(wlon, wlat, glon, glat) < 650
    assert wlon < glon


def test_nan_passes_through_without_hanging() -> None:
    lon, _ = tc.gcj02_to_wgs84(np.array([math.nan, 113.0]), np.array([35.0, 35.0]))
    assert math.isnan(lon[0])
    assert np.isfinite(lon[1])


@pytest.mark.parametrize(
    ("text", "name", "epsg"),
    [
        ("gcj02", "gcj02", None),
        ("GCJ02", "gcj02", None),
        ("bd09", "bd09", None),
        ("wgs84", "wgs84", 4326),
        ("cgcs2000", "cgcs2000", 4490),
        ("EPSG:4490", "cgcs2000", 4490),
        ("epsg:4326", "wgs84", 4326),
        ("EPSG:4547", "EPSG:4547", 4547),
        ("EPSG:32649", "EPSG:32649", 32649),
    ],
)
def test_parse_crs_allowlist(text: str, name: str, epsg: int | None) -> None:
    spec = tc.parse_crs(text)
    assert (spec.name, spec.epsg) == (name, epsg)


@pytest.mark.parametrize(
    "text",
    [
        "EPSG:999999",  # reliability.md #36: unknown code
        "+proj=longlat +datum=WGS84 +no_defs",  # a PROJ string
        "+proj=pipeline +step +proj=axisswap +order=2,1",
        "http://www.opengis.net/def/crs/EPSG/0/4326",  # a URL
        "https://example.invalid/crs.json",
        '{"type": "GeographicCRS", "name": "x"}',  # PROJJSON
        "[" * 10000,  # deeply nested junk
        'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]]]',  # WKT
        "EPSG:5773",  # a vertical CRS (EGM96 height)
        "",
        "mars",
    ],
)
def test_parse_crs_refuses_everything_else(text: str) -> None:
    with pytest.raises(UnsupportedCRSError) as info:
        tc.parse_crs(text)
    msg = str(info.value)
    assert "EPSG:" in msg  # names the allowed forms
    assert "gcj02" in msg
    assert len(msg) < 400  # never echoes a huge value


def test_gk_zones() -> None:
    assert tc.gk_zone_epsg(75.0) == 4534
    assert tc.gk_zone_epsg(113.27) == 4547  # Jiaozuo: CM 114°E
    assert tc.gk_zone_epsg(135.0) == 4554
    crs = pyproj.CRS.from_epsg(tc.gk_zone_epsg(113.27))
    assert "114E" in crs.name
    with pytest.raises(UnsupportedCRSError):
        tc.gk_zone_epsg(2.35)


def test_local_projected_crs_zone_or_albers() -> None:
    one_zone = [shapely.box(113.0, 35.0, 113.5, 35.5)]
    assert tc.local_projected_crs(one_zone).to_epsg() == 4547
    spans = [shapely.box(110.0, 30.0, 120.0, 40.0)]
    albers = tc.local_projected_crs(spans)
    assert albers.is_projected
    assert "Albers" in albers.name


def test_area_ha_matches_an_independent_geodesic_area() -> None:
    # edges densified so that geodesic edges (Geod) and projected straight edges coincide
    big = shapely.segmentize(shapely.box(100.0, 25.0, 125.0, 45.0), 0.02)
    boxes = np.array([shapely.box(113.0, 35.0, 113.01, 35.01), big, None])
    got = tc.area_ha(boxes)
    geod = pyproj.Geod(ellps="GRS80")  # CGCS2000 uses GRS80-like ellipsoid
    for i in range(2):
        ref = abs(geod.geometry_area_perimeter(boxes[i])[0]) / 1e4
        assert got[i] == pytest.approx(ref, rel=2e-4)
    assert got[2] == 0.0


def test_area_ha_of_gcj02_input_is_converted_first() -> None:
    box = shapely.box(113.2, 35.2, 113.3, 35.3)
    direct = tc.area_ha([box], "gcj02")[0]
    converted = tc.transform_geometries([box], "gcj02")
    assert direct == pytest.approx(tc.area_ha(converted)[0], rel=1e-9)


def test_transform_geometries_gcj02_matches_point_functions_and_drops_z() -> None:
    pts = shapely.points([[113.2, 35.2, 100.0], [116.404, 39.915, 5.0]])
    out = tc.transform_geometries(pts, "gcj02", "wgs84")
    assert not shapely.has_z(out).any()
    for p, q in zip(pts, out, strict=True):
        lon, lat = tc.gcj02_to_wgs84(p.x, p.y)
        assert (q.x, q.y) == pytest.approx((lon, lat), abs=1e-12)
    back = tc.transform_geometries(out, "wgs84", "gcj02")
    assert shapely.get_coordinates(back) == pytest.approx(shapely.get_coordinates(pts), abs=1e-9)


def test_transform_geometries_projected_round_trip() -> None:
    poly = shapely.box(113.0, 35.0, 113.1, 35.1)
    proj = tc.transform_geometries([poly], "cgcs2000", "EPSG:4547")
    assert proj[0].bounds[0] > 100_000  # metres (false easting 500 km)
    back = tc.transform_geometries(proj, "EPSG:4547", tc.CGCS2000)
    assert shapely.get_coordinates(back) == pytest.approx(shapely.get_coordinates(poly), abs=1e-9)


def test_pure_module_imports_no_database_or_web() -> None:
    import subprocess
    import sys

    code = "import sys, tuban.crs; bad=[m for m in ('sqlalchemy','fastapi','tuban.store','tuban.cli') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
