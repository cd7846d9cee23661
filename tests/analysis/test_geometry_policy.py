"""Geometry and CRS policy of tuban.analysis (reliability.md §C)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import shapely

from tuban.analysis import analyse
from tuban.crs import transform_geometries
from tuban.errors import FieldError, GeometryError, MissingCRSError, UnsupportedCRSError

from . import layouts as lay


def _layers():
    return (lay.patches([lay.box(0, 0, 100, 100), lay.box(300, 0, 400, 100)]),
            lay.scopes([lay.box(-10, -10, 110, 110)]), lay.divisions())


def test_a_layer_without_crs_is_refused():
    p, s, d = _layers()
    d = d.set_crs(None, allow_override=True)
    with pytest.raises(MissingCRSError, match="layer divisions has no CRS") as info:
        analyse(p, s, d)
    assert "--crs" in str(info.value)


@pytest.mark.parametrize(("geom", "what"), [
    (shapely.Polygon(), "empty"),
    (shapely.Point(114, 35.2), "non-polygon"),
    (shapely.LineString([(114, 35.2), (114.01, 35.2)]), "non-polygon"),
    (None, "without geometry"),
    ("nan", "NaN"),
])
def test_bad_patch_geometries_are_refused_with_their_qdnm(geom, what):
    if geom == "nan":
        with warnings.catch_warnings():  # shapely warns while building it; the test is what tuban does next
            warnings.simplefilter("ignore", RuntimeWarning)
            geom = shapely.from_wkt("POLYGON ((114 35.2, NaN 35.2, 114.01 35.21, 114 35.2))")
    p, s, d = _layers()
    p.loc[1, "geometry"] = geom
    p.loc[1, "QDNM"] = "BAD-7"
    with pytest.raises(GeometryError, match=what) as info:
        analyse(p, s, d)
    assert "BAD-7" in str(info.value)


def test_scope_without_red_line_is_kept_but_explains_nothing():
    p, s, d = _layers()
    s.loc[0, "geometry"] = None
    frame = analyse(p, s, d).to_geodataframe()
    assert list(frame["RULE_ID"]) == ["R4", "R4"]


def test_bowtie_repair_is_recorded_with_the_area_change():
    bowtie = shapely.Polygon([(0, 0), (100, 100), (100, 0), (0, 100), (0, 0)])
    p = lay.patches([bowtie, lay.box(300, 0, 400, 100)])
    frame = analyse(p, lay.scopes([lay.box(0, 0, 100, 50)]), lay.divisions()).to_geodataframe()
    note = frame["GEOM_NOTE"][0]
    assert "make_valid" in note
    assert "Self-intersection" in note
    assert "→ 0.500000 ha" in note
    assert frame["QAREA"][0] == pytest.approx(0.5, abs=1e-4)
    assert frame["GEOM_NOTE"].isna()[1]


def test_z_coordinates_are_dropped():
    p, s, d = _layers()
    p["geometry"] = shapely.force_3d(p.geometry.to_numpy(), 50.0)
    frame = analyse(p, s, d).to_geodataframe()
    assert not shapely.has_z(frame.geometry.to_numpy()).any()
    assert list(frame["RULE_ID"]) == ["R1", "R4"]


def test_missing_field_and_duplicate_qdnm_are_refused():
    p, s, d = _layers()
    with pytest.raises(FieldError, match="RP_NUM"):
        analyse(p, s.drop(columns="RP_NUM"), d)
    p.loc[1, "QDNM"] = p.loc[0, "QDNM"]
    with pytest.raises(FieldError, match="not unique: T1"):
        analyse(p, s, d)


def test_gcj02_inputs_are_converted_on_request():
    p, s, d = _layers()
    plain = analyse(p, s, d).to_geodataframe()
    # the same patches as an Amap (GCJ-02) export that claims to be WGS84
    gcj = p.copy()
    gcj["geometry"] = transform_geometries(p.geometry.to_numpy(), "EPSG:4490", "gcj02")
    gcj = gcj.set_crs("EPSG:4326", allow_override=True)
    naive = analyse(gcj, s, d).to_geodataframe()
    converted = analyse(gcj, s, d, source_crs={"patches": "gcj02"}).to_geodataframe()
    assert list(naive["RULE_ID"]) != list(plain["RULE_ID"])  # ~500 m off: the scope is missed
    assert list(converted["RULE_ID"]) == list(plain["RULE_ID"])
    np.testing.assert_allclose(converted["QAREA"], plain["QAREA"], rtol=1e-4)


def test_unknown_source_crs_is_refused():
    p, s, d = _layers()
    with pytest.raises(UnsupportedCRSError, match="layer patches"):
        analyse(p, s, d, source_crs={"patches": "+proj=longlat"})


def test_numbers_are_json_with_the_decision_inputs():
    p, s, d = _layers()
    frame = analyse(p, s, d).to_geodataframe()
    num = json.loads(frame["NUMBERS"][0])
    assert num["rules_version"] == "1"
    assert num["scopes"][0]["SWC_P_ID"] == "P01"
    assert num["scopes"][0]["overlap_pct"] == pytest.approx(100)
    assert num["divisions"] == [{"XZQDM": "410822", "share_pct": pytest.approx(100)}]
    far = json.loads(frame["NUMBERS"][1])
    assert far["nearest_scope"]["disturbed"] is True
    assert far["nearest_scope"]["distance_m"] == pytest.approx(190, abs=0.01)
