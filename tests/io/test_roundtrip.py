"""Import/export round trips of every format: official fields and areas survive unchanged."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest

from tuban.crs import area_ha
from tuban.errors import FieldError, UsageError
from tuban.fields import PATCH_FIELDS
from tuban.io import import_report, read_vector, to_official, write_vector

FORMATS = ["gpkg", "shp", "geojson", "kml"]


def assert_same_official(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame) -> None:
    assert list(got.columns[:-1]) == list(PATCH_FIELDS)
    assert len(got) == len(want)
    for name, spec in PATCH_FIELDS.items():
        a, b = got[name].tolist(), want[name].tolist()
        if spec.kind == "real":
            assert a == pytest.approx(b, rel=1e-12), name
        else:
            assert a == b, name
    ga, gb = area_ha(got.geometry.values), area_ha(want.geometry.values)
    assert np.all(np.abs(ga - gb) <= 1e-6 * gb)
    assert got.crs.to_epsg() == 4490


@pytest.mark.parametrize("fmt", FORMATS)
def test_patch_file_survives_write_read(patches: gpd.GeoDataFrame, tmp_path: Path, fmt: str) -> None:
    official = to_official(patches, "patches")
    path = write_vector(official, tmp_path / f"patches.{fmt}")
    again = to_official(read_vector(path), "patches")
    assert_same_official(again, official)
    # and a second cycle changes nothing either
    third = to_official(read_vector(write_vector(again, tmp_path / f"again.{fmt}")), "patches")
    assert_same_official(third, official)


def test_shapefile_has_cgcs2000_prj_and_utf8_cpg(patches: gpd.GeoDataFrame, tmp_path: Path) -> None:
    write_vector(to_official(patches, "patches"), tmp_path / "p.shp")
    assert (tmp_path / "p.cpg").read_text() == "UTF-8"
    prj = pyproj.CRS.from_wkt((tmp_path / "p.prj").read_text())
    assert prj.to_epsg() == 4490
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.cpg", "p.dbf", "p.prj", "p.shp", "p.shx"]
    report = import_report(read_vector(tmp_path / "p.shp"))
    assert report is not None
    assert report.encoding == "UTF-8"
    assert report.source_crs == "cgcs2000"


def test_projects_round_trip(projects: gpd.GeoDataFrame, tmp_path: Path) -> None:
    official = to_official(projects, "projects")
    for fmt in FORMATS:
        again = to_official(read_vector(write_vector(official, tmp_path / f"pr.{fmt}")), "projects")
        pd.testing.assert_frame_equal(
            pd.DataFrame(again.drop(columns="geometry")), pd.DataFrame(official.drop(columns="geometry"))
        )


def test_long_text_is_refused_for_shapefile_not_truncated(patches: gpd.GeoDataFrame, tmp_path: Path) -> None:
    official = to_official(patches, "patches")
    official.loc[0, "PROBLEM"] = "超" * 200  # 600 bytes in UTF-8
    with pytest.raises(FieldError, match=r"PROBLEM.*gpkg"):
        write_vector(official, tmp_path / "p.shp")
    assert list(tmp_path.iterdir()) == []
    again = to_official(read_vector(write_vector(official, tmp_path / "p.gpkg")), "patches")
    assert again.loc[0, "PROBLEM"] == "超" * 200


def test_failed_write_leaves_nothing_and_keeps_the_old_file(
    patches: gpd.GeoDataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    official = to_official(patches, "patches")
    target = tmp_path / "p.gpkg"
    write_vector(official.iloc[:1], target)
    before = target.read_bytes()

    import pyogrio

    real = pyogrio.write_dataframe

    def half_then_fail(df: object, path: object, **kw: object) -> None:
        real(df, path, **kw)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pyogrio, "write_dataframe", half_then_fail)
    for name in ("p.gpkg", "q.shp", "q.geojson"):
        with pytest.raises(OSError, match="simulated"):
            write_vector(official, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gpkg"]
    assert target.read_bytes() == before


def test_unknown_extension_is_a_usage_error(patches: gpd.GeoDataFrame, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.gpkg"):
        write_vector(patches, tmp_path / "p.xlsx")


def test_qarea_filled_from_geometry_when_missing(patches: gpd.GeoDataFrame) -> None:
    patches.loc[0, "QAREA"] = None
    official = to_official(patches, "patches")
    assert official.loc[0, "QAREA"] == pytest.approx(area_ha([patches.geometry.iloc[0]])[0])
