"""Hostile GeoPackages and GeoJSON (reliability.md #20, #21): refused with a named reason, nothing written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from tuban.errors import InputError, LimitExceededError, UnsafeInputError
from tuban.io import read_vector
from tuban.io.containers import check_geojson

BOXES = [shapely.box(113.2 + i * 0.01, 35.2, 113.205 + i * 0.01, 35.205) for i in range(200)]


def write_gpkg(path: Path) -> Path:
    frame = gpd.GeoDataFrame({"QDNM": [f"T{i}" for i in range(len(BOXES))]}, geometry=BOXES, crs="EPSG:4490")
    pyogrio.write_dataframe(frame, path, layer="patches")
    return path


def test_plain_geopackage_is_read_and_left_unchanged(tmp_path: Path) -> None:
    path = write_gpkg(tmp_path / "ok.gpkg")
    before = path.read_bytes()
    gdf = read_vector(path)
    assert len(gdf) == len(BOXES)
    assert path.read_bytes() == before  # opened read-only: not a byte changed


def test_geopackage_layer_that_is_a_view_is_refused(tmp_path: Path) -> None:
    path = write_gpkg(tmp_path / "view.gpkg")
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE VIEW v AS SELECT fid, geom, upper(QDNM) || hex(randomblob(4)) AS QDNM FROM patches;
        INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id)
            VALUES ('v', 'features', 'v', 4490);
        INSERT INTO gpkg_geometry_columns VALUES ('v', 'geom', 'POLYGON', 4490, 0, 0);
        DELETE FROM gpkg_geometry_columns WHERE table_name = 'patches';
        DELETE FROM gpkg_contents WHERE table_name = 'patches';
        """
    )
    con.commit()
    con.close()
    with pytest.raises(UnsafeInputError, match=r"view\.gpkg: layer v is an SQL view"):
        read_vector(path)


def test_geopackage_with_a_corrupt_page_fails_the_integrity_check(tmp_path: Path) -> None:
    path = write_gpkg(tmp_path / "corrupt.gpkg")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    # scramble the inside of the last page (a b-tree page of the layer), keep the header sane
    start = len(data) - page + 8
    data[start:start + 200] = bytes((i * 37) % 256 for i in range(200))
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"corrupt\.gpkg (fails the SQLite integrity check|is not a valid)"):
        read_vector(path)


def test_geopackage_with_a_rewritten_schema_is_refused(tmp_path: Path) -> None:
    path = write_gpkg(tmp_path / "schema.gpkg")
    con = sqlite3.connect(path)
    con.execute("PRAGMA writable_schema=ON")
    con.execute("UPDATE sqlite_master SET sql = 'CREATE TABLE patches(' WHERE name = 'patches'")
    con.commit()
    con.close()
    with pytest.raises(InputError, match=r"schema\.gpkg"):
        read_vector(path)


def test_geojson_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}' + " " * 5000)
    with pytest.raises(LimitExceededError, match=r"big\.geojson is .* above the GeoJSON limit.*GeoPackage"):
        check_geojson(path, label=path.name, max_bytes=4096)


def test_deeply_nested_geojson_is_refused_as_hostile(tmp_path: Path) -> None:
    depth = 1_000_000
    path = tmp_path / "deep.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"a":'
        + "[" * depth + "]" * depth
        + '},"geometry":{"type":"Point","coordinates":[113.2,35.2]}}]}'
    )
    with pytest.raises(UnsafeInputError, match=r"deep\.geojson: arrays/objects are nested deeper"):
        read_vector(path, polygons=False)


def test_overflowing_number_in_geojson_is_named(tmp_path: Path) -> None:
    path = tmp_path / "inf.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"QDNM":"T1"},'
        '"geometry":{"type":"Polygon","coordinates":[[[113.2,35.2],[1e999,35.2],[113.3,35.3],[113.2,35.2]]]}}]}'
    )
    with pytest.raises(UnsafeInputError, match=r"inf\.geojson: the number 1e999 is not a finite double"):
        read_vector(path)


def test_duplicate_keys_in_geojson_take_the_last_value(tmp_path: Path) -> None:
    path = tmp_path / "dup.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"QDNM":"T1","QDNM":"T2"},'
        '"geometry":{"type":"Polygon","coordinates":[[[113.2,35.2],[113.3,35.2],[113.3,35.3],[113.2,35.2]]]}}]}'
    )
    gdf = read_vector(path)
    assert gdf["QDNM"].tolist() == ["T2"]
