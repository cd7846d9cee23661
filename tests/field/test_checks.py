"""Pure photo checks: distance / view cone, field window, accuracy, mock, EXIF agreement, duplicates."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from tuban.errors import ConfigError
from tuban.field import checks as C  # noqa: N812
from tuban.field.policy import load_policy

GEOD = Geod(ellps="GRS80")
# a 90 m × 90 m patch near Jiaozuo (焦作)
LON0, LAT0 = 113.2400, 35.2200
PATCH = shapely.box(LON0, LAT0, LON0 + 0.001, LAT0 + 0.0008)
CST = dt.timezone(dt.timedelta(hours=8))


def offset(lon: float, lat: float, bearing: float, metres: float) -> tuple[float, float]:
    x, y, _ = GEOD.fwd(lon, lat, bearing, metres)
    return float(x), float(y)


def south_edge_point(metres: float) -> tuple[float, float]:
    """A point *metres* due south of the middle of the patch's south edge."""
    return offset(LON0 + 0.0005, LAT0, 180.0, metres)


@pytest.mark.parametrize("metres", [1.0, 37.0, 99.0, 150.0, 450.0])
def test_distance_matches_geodesic(metres: float) -> None:
    lon, lat = south_edge_point(metres)
    assert C.distance_m(PATCH, lon, lat) == pytest.approx(metres, rel=2e-3, abs=0.05)


@given(st.floats(0, 360), st.floats(5, 2000))
@settings(max_examples=60, deadline=None)
def test_point_distance_against_pyproj(bearing: float, metres: float) -> None:
    lon, lat = offset(LON0, LAT0, bearing, metres)
    got = C.distance_m(shapely.Point(LON0, LAT0), lon, lat)
    assert got == pytest.approx(metres, rel=3e-3)


def test_location_pass_inside_and_near() -> None:
    assert C.check_location(PATCH, lon=LON0 + 0.0005, lat=LAT0 + 0.0004, bearing=None).status == "pass"
    lon, lat = south_edge_point(80)
    res = C.check_location(PATCH, lon=lon, lat=lat, bearing=None)
    assert res.status == "pass"
    assert res.value == pytest.approx(80, abs=0.5)


def test_location_far_needs_view_cone() -> None:
    lon, lat = south_edge_point(200)
    looking_at = C.check_location(PATCH, lon=lon, lat=lat, bearing=0.0)  # north, towards the patch
    looking_away = C.check_location(PATCH, lon=lon, lat=lat, bearing=180.0)
    no_bearing = C.check_location(PATCH, lon=lon, lat=lat, bearing=None)
    assert (looking_at.status, looking_away.status, no_bearing.status) == ("pass", "fail", "fail")
    assert "200 m" in looking_away.message
    beyond_range = south_edge_point(400)
    assert C.check_location(PATCH, lon=beyond_range[0], lat=beyond_range[1], bearing=0.0).status == "fail"


def test_view_cone_edge_of_field_of_view() -> None:
    lon, lat = south_edge_point(200)
    # the patch spans about ±45 m around north at 200 m: ±13°; a 60° cone reaches it from bearing 40°
    assert C.check_location(PATCH, lon=lon, lat=lat, bearing=40.0, fov_deg=60).status == "pass"
    assert C.check_location(PATCH, lon=lon, lat=lat, bearing=60.0, fov_deg=60).status == "fail"
    assert C.check_location(PATCH, lon=lon, lat=lat, bearing=360.0 + 350.0, fov_deg=60).status == "pass"


@pytest.mark.parametrize(("lon", "lat"), [(None, None), (0.0, 0.0), (math.nan, 35.0), (113.0, 123.0),
                                          (math.inf, 35.0)])
def test_location_without_valid_position_is_unknown(lon: float | None, lat: float | None) -> None:
    assert C.check_location(PATCH, lon=lon, lat=lat, bearing=0).status == "unknown"


def test_field_window() -> None:
    start, end = dt.date(2024, 8, 10), dt.date(2024, 10, 31)
    inside = dt.datetime(2024, 9, 1, 10, tzinfo=CST)
    assert C.check_field_window(inside, start, end).status == "pass"
    # 23:30 UTC on Oct 31 is Nov 1 in China: outside
    late = dt.datetime(2024, 10, 31, 23, 30, tzinfo=dt.UTC)
    res = C.check_field_window(late, start, end)
    assert res.status == "fail"
    assert "2024-11-01" in res.message
    assert C.check_field_window(late, start, end, grace_days=1).status == "pass"
    assert C.check_field_window(dt.datetime(2024, 8, 9, 12, tzinfo=CST), start, end).status == "fail"
    assert C.check_field_window(dt.datetime(2024, 9, 1, 10), start, end).status == "unknown"  # naive
    assert C.check_field_window(None, start, end).status == "unknown"
    assert C.check_field_window(inside, None, None).status == "unknown"


def test_accuracy_and_mock() -> None:
    assert C.check_accuracy(8.0, max_accuracy_m=30).status == "pass"
    assert C.check_accuracy(45.0, max_accuracy_m=30).status == "fail"
    assert C.check_accuracy(None).status == "unknown"
    assert C.check_accuracy(math.nan).status == "unknown"
    assert C.check_accuracy(-3).status == "unknown"
    assert [C.check_mock_location(v).status for v in (False, True, None)] == ["pass", "fail", "unknown"]


def test_exif_position_agreement() -> None:
    lon, lat = south_edge_point(30)
    elon, elat = offset(lon, lat, 90, 40)
    ok = C.check_exif_position(exif_lon=elon, exif_lat=elat, exif_valid=True, lon=lon, lat=lat)
    assert ok.status == "pass"
    assert ok.value == pytest.approx(40, abs=0.5)
    flon, flat = offset(lon, lat, 90, 800)
    assert C.check_exif_position(exif_lon=flon, exif_lat=flat, exif_valid=True, lon=lon, lat=lat).status == "fail"


@pytest.mark.parametrize(("elon", "elat", "valid"), [(0.0, 0.0, True), (None, None, False), (math.nan, 35.0, True),
                                                     (113.0, 123.0, True), (113.24, 35.22, False)])
def test_invalid_exif_position_is_never_zero_zero(elon: float | None, elat: float | None, valid: bool) -> None:
    res = C.check_exif_position(exif_lon=elon, exif_lat=elat, exif_valid=valid, lon=LON0, lat=LAT0,
                                problem="GPS value is not a number")
    assert res.status == "unknown"
    assert "invalid" in res.message


def test_duplicates() -> None:
    prior = [C.PriorUse(patch_id=7, sha256="a" * 64, phash="ffff0000ffff0000"),
             C.PriorUse(patch_id=3, sha256="b" * 64, phash="0f0f0f0f0f0f0f0f")]
    same = C.check_duplicate(sha256="a" * 64, phash=None, patch_id=1, prior=prior)
    assert same.status == "fail"
    assert "[7]" in same.message
    near = C.check_duplicate(sha256="c" * 64, phash="ffff0000ffff0003", patch_id=1, prior=prior)
    assert near.status == "fail"
    assert "near-identical" in near.message
    far = C.check_duplicate(sha256="c" * 64, phash="ffff00000000ffff", patch_id=1, prior=prior)
    assert far.status == "pass"
    own = C.check_duplicate(sha256="a" * 64, phash=None, patch_id=7, prior=prior)
    assert own.status == "pass"  # the same photo re-used for the same patch is not a duplicate elsewhere
    assert C.hamming("ff", "0f") == 4


def test_photo_set_policy() -> None:
    policy = load_policy()
    assert C.check_photo_set(["overview", "closeup", "disturbance"], policy=policy).status == "pass"
    res = C.check_photo_set(["overview", "overview", "closeup"], policy=policy)
    assert res.status == "fail"
    assert "disturbance" in res.message
    assert C.check_photo_set(["overview"], policy=load_policy({"min_photos": 1, "required_kinds": ["overview"]})
                             ).status == "pass"


def test_policy_from_file_and_refusals(tmp_path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"max_distance_m": 50, "min_photos": 4}', "utf-8")
    p = load_policy(path)
    assert (p.max_distance_m, p.min_photos, p.camera_fov_deg) == (50.0, 4, 60.0)
    with pytest.raises(ConfigError, match="unknown keys"):
        load_policy({"max_distanse_m": 50})
    with pytest.raises(ConfigError, match="camera_fov_deg"):
        load_policy({"camera_fov_deg": 270})
    with pytest.raises(ConfigError, match="positive"):
        load_policy({"max_accuracy_m": -1})


def test_check_photo_runs_every_rule() -> None:
    lon, lat = south_edge_point(20)
    obs = C.PhotoObservation(lon=lon, lat=lat, accuracy_m=5, bearing=0, taken_at=dt.datetime(2024, 9, 1, tzinfo=CST),
                             mock_location=False, exif_lon=lon, exif_lat=lat, exif_gps_valid=True, sha256="d" * 64,
                             phash="0123456789abcdef")
    results = C.check_photo(obs, PATCH, policy=load_policy(), field_start=dt.date(2024, 8, 1),
                            field_end=dt.date(2024, 10, 31), patch_id=1)
    assert [r.name for r in results] == ["location", "field_window", "accuracy", "mock_location", "exif_position",
                                         "duplicate"]
    assert C.summarize(results) == "pass"
    assert C.summarize([*results, C.check_mock_location(None)]) == "unknown"
    assert C.summarize([*results, C.check_mock_location(True)]) == "fail"
