"""Hostile and broken inputs (reliability.md #14–17, #19, #22, #32, #33, #36, #37), each a small generated fixture."""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from tuban.errors import (
    GeometryError,
    InputError,
    LimitExceededError,
    MissingCRSError,
    UnsafeInputError,
    UnsupportedCRSError,
)
from tuban.io import import_report, read_vector
from tuban.io.safezip import ZipLimits

BOX = shapely.box(113.25, 35.22, 113.26, 35.23)


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile at a folder we can inspect: every extraction must be cleaned up."""
    tdir = tmp_path / "systmp"
    tdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tdir))
    yield tdir
    assert list(tdir.iterdir()) == []  # temp dirs removed, success or failure


def shapefile_bytes(tmp_path: Path, *, prj: bool = True) -> dict[str, bytes]:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    gdf = gpd.GeoDataFrame({"QDNM": ["图斑1"]}, geometry=[BOX], crs="EPSG:4490")
    gdf.to_file(folder / "layer.shp", encoding="UTF-8")
    parts = {p.suffix: p.read_bytes() for p in folder.iterdir()}
    if not prj:
        parts.pop(".prj")
    return parts


def make_zip(path: Path, entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


# --------------------------------------------------------------------------- #14-17 zips


def test_zip_of_a_shapefile_with_mixed_case_names_is_read(tmp_path: Path) -> None:
    parts = shapefile_bytes(tmp_path)
    entries = {
        "Data/LAYER.SHP": parts[".shp"],
        "Data/layer.Shx": parts[".shx"],
        "Data/Layer.dbf": parts[".dbf"],
    }
    entries["Data/layer.PRJ"] = parts[".prj"]
    gdf = read_vector(make_zip(tmp_path / "in.zip", entries))
    assert gdf["QDNM"].tolist() == ["图斑1"]
    assert gdf.crs.to_epsg() == 4490


def test_zip_bomb_by_ratio_is_refused_before_extraction(tmp_path: Path, private_tempdir: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", {"a.shp": b"\0" * (2 * 1024 * 1024)})
    assert bomb.stat().st_size < 10_000
    with pytest.raises(LimitExceededError, match="compression ratio"):
        read_vector(bomb)


def test_zip_bomb_by_total_size_is_refused(tmp_path: Path) -> None:
    # declared sizes are checked from ZipInfo: 3 stored entries of 1 MiB against a 2 MiB limit
    entries = {f"x{i}.dbf": os.urandom(1024 * 1024) for i in range(3)}
    path = make_zip(tmp_path / "big.zip", entries, compression=zipfile.ZIP_STORED)
    with pytest.raises(LimitExceededError, match="more than 2097152 bytes"):
        read_vector(path, zip_limits=ZipLimits(max_total_bytes=2 * 1024 * 1024))


def test_zip_with_too_many_entries_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(50)})
    with pytest.raises(LimitExceededError, match="50 entries"):
        read_vector(path, zip_limits=ZipLimits(max_entries=20))


def test_zip_lying_about_its_size_is_stopped_by_the_stream_cap(tmp_path: Path) -> None:
    parts = shapefile_bytes(tmp_path)
    path = make_zip(
        tmp_path / "lie.zip", {"a.shp": parts[".shp"], "a.shx": parts[".shx"], "a.dbf": parts[".dbf"]}
    )
    raw = bytearray(path.read_bytes())
    # patch the central-directory uncompressed size of a.shp to 10 bytes
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info = zf.getinfo("a.shp")
    cd = raw.find(b"PK\x01\x02")
    assert raw[cd + 46 : cd + 46 + 5] == b"a.shp"
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    assert info.file_size > 10
    path.write_bytes(bytes(raw))
    with pytest.raises((LimitExceededError, UnsafeInputError)):
        read_vector(path)


@pytest.mark.parametrize(
    "name",
    ["../../app/settings.py", "/etc/cron.d/x", "C:\\x", "ok/../../x.shp", "a\x00b.shp", "..\\..\\x.shp"],
)
def test_zip_slip_names_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zi = zipfile.ZipInfo("x")
        zi.filename = name  # bypass ZipInfo's own cleaning: the hostile name goes into the archive
        zf.writestr(zi, b"evil")
    with pytest.raises(UnsafeInputError):
        read_vector(path)
    assert not (tmp_path.parent / "app").exists()


def test_zip_with_a_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zi = zipfile.ZipInfo("layer.shp")
        zi.create_system = 3
        zi.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(zi, "/etc/passwd")
    with pytest.raises(UnsafeInputError, match="symbolic link"):
        read_vector(path)


def test_nested_zips_are_refused(tmp_path: Path) -> None:
    inner = make_zip(tmp_path / "inner.zip", {"a.txt": b"x"})
    middle = make_zip(tmp_path / "middle.zip", {"inner.zip": inner.read_bytes()})
    outer = make_zip(tmp_path / "outer.zip", {"middle.zip": middle.read_bytes()})
    with pytest.raises(UnsafeInputError, match="nested"):
        read_vector(outer)


@pytest.mark.parametrize(
    ("drop", "extra", "match"),
    [
        (".shx", {}, r"missing its \.shx"),
        (".dbf", {}, r"missing its \.dbf"),
        (None, {"b.shp": b"\x00\x00\x27\x0a"}, "2 shapefiles"),
    ],
)
def test_zip_missing_or_ambiguous_component(
    tmp_path: Path, drop: str | None, extra: dict[str, bytes], match: str
) -> None:
    parts = shapefile_bytes(tmp_path)
    entries = {f"a{s}": b for s, b in parts.items() if s != drop}
    entries.update(extra)
    with pytest.raises(InputError, match=match):
        read_vector(make_zip(tmp_path / "in.zip", entries))


def test_zip_without_prj_needs_crs(tmp_path: Path) -> None:
    parts = shapefile_bytes(tmp_path, prj=False)
    path = make_zip(tmp_path / "in.zip", {f"a{s}": b for s, b in parts.items()})
    with pytest.raises(MissingCRSError, match="--crs"):
        read_vector(path)
    assert len(read_vector(path, crs="cgcs2000")) == 1


# --------------------------------------------------------------------------- #19, #22 drivers


def test_vrt_is_refused_whatever_its_name(tmp_path: Path) -> None:
    vrt = (
        '<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd</SrcDataSource>'
        "<SrcSQL>SELECT * FROM x</SrcSQL></OGRVRTLayer></OGRVRTDataSource>"
    )
    for name in ("layer.vrt", "layer.kml", "layer.geojson", "layer.gpkg", "layer.shp"):
        (tmp_path / name).write_text(vrt)
        with pytest.raises(UnsafeInputError):
            read_vector(tmp_path / name)


@pytest.mark.parametrize("name", ["/vsicurl/http://169.254.169.254/x.geojson", "layer.csv", "layer.kmz"])
def test_other_sources_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / Path(name).name
    path.write_text("x")
    with pytest.raises((UnsafeInputError, InputError)):
        read_vector(name if name.startswith("/vsi") else path)


KML_BODY = (
    '<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&x;</name>'
    "<Polygon><outerBoundaryIs><LinearRing><coordinates>113.25,35.22 113.26,35.22 113.26,35.23 113.25,35.22"
    "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></Document></kml>"
)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE kml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY x "&b;&b;&b;">]>',
        "<!doctype kml>",
    ],
)
def test_kml_with_a_doctype_is_refused(tmp_path: Path, doctype: str) -> None:
    path = tmp_path / "x.kml"
    path.write_text(f'<?xml version="1.0"?>\n{doctype}\n{KML_BODY}')
    with pytest.raises(UnsafeInputError, match="DOCTYPE") as info:
        read_vector(path)
    assert "root:" not in str(info.value)  # nothing of /etc/passwd echoed


def test_plain_kml_is_read(tmp_path: Path) -> None:
    path = tmp_path / "x.kml"
    path.write_text(f'<?xml version="1.0"?>\n{KML_BODY.replace("&x;", "图斑")}')
    gdf = read_vector(path)
    assert len(gdf) == 1
    assert gdf.crs.to_epsg() == 4490


# --------------------------------------------------------------------------- #36 CRS


def _geojson(tmp_path: Path, crs_name: str | None, coords: list[list[float]] | None = None) -> Path:
    ring = coords or [[113.25, 35.22], [113.26, 35.22], [113.26, 35.23], [113.25, 35.22]]
    doc: dict[str, object] = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"QDNM": "A1"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }
    if crs_name:
        doc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    path = tmp_path / "x.geojson"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "crs",
    ["EPSG:999999", "+proj=longlat +datum=WGS84", "http://example.invalid/crs", '{"type":"ProjectedCRS"}'],
)
def test_hostile_crs_arguments_are_refused(tmp_path: Path, crs: str) -> None:
    with pytest.raises(UnsupportedCRSError, match="EPSG:"):
        read_vector(_geojson(tmp_path, None), crs=crs)


def test_projected_file_crs_conflicting_with_crs_is_refused(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"QDNM": ["A1"]}, geometry=[BOX], crs="EPSG:4490").to_crs("EPSG:4547")
    gdf.to_file(tmp_path / "gk.gpkg")
    assert read_vector(tmp_path / "gk.gpkg").geometry.iloc[0].equals_exact(BOX, 1e-9)
    with pytest.raises(UnsupportedCRSError, match="EPSG:4547"):
        read_vector(tmp_path / "gk.gpkg", crs="gcj02")


def test_lat_lon_swapped_or_projected_without_crs_is_caught(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"QDNM": ["A1"]}, geometry=[BOX], crs="EPSG:4490").to_crs("EPSG:4547")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "crs was not provided": the point of the test
        gdf.set_crs(None, allow_override=True).to_file(tmp_path / "noprj.shp")
    with pytest.raises(GeometryError, match="not longitude/latitude"):
        read_vector(tmp_path / "noprj.shp", crs="wgs84")


# --------------------------------------------------------------------------- #32, #33, #37 geometry


def _gpkg(tmp_path: Path, geoms: list[shapely.Geometry | None], name: str = "g.gpkg") -> Path:
    gdf = gpd.GeoDataFrame({"QDNM": [f"P{i}" for i in range(len(geoms))]}, geometry=geoms, crs="EPSG:4490")
    with np.errstate(invalid="ignore"):
        pyogrio.write_dataframe(gdf, tmp_path / name, geometry_type="Unknown")
    return tmp_path / name


def test_bowtie_is_repaired_and_reported(tmp_path: Path) -> None:
    bowtie = shapely.Polygon(
        [(113.25, 35.22), (113.26, 35.23), (113.26, 35.22), (113.25, 35.23), (113.25, 35.22)]
    )
    gdf = read_vector(_gpkg(tmp_path, [BOX, bowtie]))
    report = import_report(gdf)
    assert report is not None
    [item] = report.geometry.repaired
    assert item.record == "QDNM=P1"
    assert "Self-intersection" in item.reason
    assert item.area_after_ha > 0
    assert item.original_wkt.startswith("POLYGON")
    assert gdf.geometry.iloc[1].geom_type == "MultiPolygon"  # both triangles kept, not "the largest"
    assert shapely.is_valid(gdf.geometry.values).all()
    assert "1 invalid geometries repaired (QDNM=P1" in report.summary()


def test_hole_outside_shell_is_repaired_and_reported(tmp_path: Path) -> None:
    outside = shapely.Polygon(
        BOX.exterior.coords, holes=[[(113.3, 35.3), (113.31, 35.3), (113.31, 35.31), (113.3, 35.3)]]
    )
    report = import_report(read_vector(_gpkg(tmp_path, [outside])))
    assert report is not None
    assert len(report.geometry.repaired) == 1


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("kind", "coords"),
    [
        ("polygon", [(113.25, 35.22), (NAN, 35.22), (113.26, 35.23), (113.25, 35.22)]),
        ("point", [(113.25, INF)]),
        ("line", [(113.25, 35.22), (113.26, NAN)]),
    ],
)
def test_nan_and_inf_are_refused_for_every_type(
    tmp_path: Path, kind: str, coords: list[tuple[float, float]]
) -> None:
    with np.errstate(invalid="ignore"):
        make = {"polygon": shapely.polygons, "point": shapely.points, "line": shapely.linestrings}[kind]
        bad = make(coords[0] if kind == "point" else coords)
    with pytest.raises(GeometryError, match=r"NaN or infinite.*QDNM=P1"):
        read_vector(_gpkg(tmp_path, [BOX, bad]), polygons=False)


@pytest.mark.parametrize(
    ("geom", "match"),
    [
        (shapely.Point(113.25, 35.22), "not polygons"),
        (shapely.GeometryCollection([BOX, shapely.Point(113.25, 35.22)]), "not polygons"),
        (shapely.Polygon(), "no geometry"),
        (None, "no geometry"),
    ],
)
def test_non_polygons_and_empties_are_refused_naming_the_record(
    tmp_path: Path, geom: shapely.Geometry | None, match: str
) -> None:
    with pytest.raises(GeometryError, match=rf"{match}.*QDNM=P1"):
        read_vector(_gpkg(tmp_path, [BOX, geom]))


def test_empty_geometry_allowed_for_projects(tmp_path: Path) -> None:
    gdf = read_vector(_gpkg(tmp_path, [BOX, None]), allow_empty=True)
    assert gdf.geometry.iloc[1] is None


def test_polygon_collection_becomes_multipolygon(tmp_path: Path) -> None:
    coll = shapely.GeometryCollection([BOX, shapely.box(113.27, 35.22, 113.28, 35.23)])
    gdf = read_vector(_gpkg(tmp_path, [coll]))
    assert gdf.geometry.iloc[0].geom_type == "MultiPolygon"
    report = import_report(gdf)
    assert report is not None
    assert report.geometry.collections_to_multi == 1


def test_unclosed_ring_and_short_ring_are_refused(tmp_path: Path) -> None:
    unclosed = [[113.25, 35.22], [113.26, 35.22], [113.26, 35.23], [113.25, 35.23]]
    with pytest.raises(GeometryError, match="QDNM=A1"):
        read_vector(_geojson(tmp_path, None, unclosed))
    short = [[113.25, 35.22], [113.26, 35.22], [113.25, 35.22]]
    with pytest.raises(GeometryError, match=r"fewer than 4 points.*QDNM=A1"):
        read_vector(_geojson(tmp_path, None, short))


def test_xyzm_is_dropped_to_2d_and_counted(tmp_path: Path) -> None:
    z = shapely.force_3d(BOX, 120.0)
    gdf = read_vector(_gpkg(tmp_path, [z]))
    assert not shapely.has_z(gdf.geometry.values).any()
    report = import_report(gdf)
    assert report is not None
    assert report.geometry.zm_dropped == 1


def test_vertex_and_feature_limits(tmp_path: Path) -> None:
    dense = shapely.segmentize(BOX, 0.0001)
    path = _gpkg(tmp_path, [BOX, dense])
    with pytest.raises(LimitExceededError, match=r"vertices.*QDNM=P1"):
        read_vector(path, max_vertices=100)
    with pytest.raises(LimitExceededError, match="2 features"):
        read_vector(path, max_features=1)


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_corrupt_file_is_an_input_error_naming_the_file(tmp_path: Path, suffix: str) -> None:
    good = tmp_path / f"good{suffix}"
    frame = gpd.GeoDataFrame(
        {"QDNM": ["T1"]}, geometry=[shapely.box(113.2, 35.2, 113.21, 35.21)], crs="EPSG:4490"
    )
    pyogrio.write_dataframe(frame, good)
    bad = tmp_path / f"bad{suffix}"
    data = good.read_bytes()
    # keep the magic bytes so the format is recognised, truncate and scramble the rest
    bad.write_bytes(data[:120] + bytes(range(256)) * 4)
    if suffix == ".shp":
        for ext in (".shx", ".dbf", ".prj"):
            (tmp_path / f"bad{ext}").write_bytes(b"\x00" * 64)
    from tuban.errors import InputError

    with pytest.raises(InputError, match=r"bad\.(gpkg|shp|dbf)"):
        read_vector(bad)
