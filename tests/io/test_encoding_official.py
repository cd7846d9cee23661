"""Shapefile text encodings (.cpg / UTF-8 / GBK) and official-field validation."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from tuban.errors import EncodingError, FieldError, UsageError
from tuban.io import import_report, read_vector, to_official
from tuban.io.encoding import normalize_encoding

NAMES = ["山阳区", "温县", "解放区"]


def _write_shp(folder: Path, encoding: str, *, cpg: str | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    gdf = gpd.GeoDataFrame(
        {"XZQDM": ["410811", "410825", "410802"], "XZQMC": NAMES},
        geometry=[shapely.box(113 + i / 10, 35, 113.05 + i / 10, 35.05) for i in range(3)],
        crs="EPSG:4490",
    )
    path = folder / "d.shp"
    gdf.to_file(path, encoding=encoding)
    cpg_path = folder / "d.cpg"
    if cpg_path.exists():
        cpg_path.unlink()
    if cpg is not None:
        cpg_path.write_text(cpg)
    return path


def test_gbk_shapefile_without_cpg_is_read_correctly(tmp_path: Path) -> None:
    path = _write_shp(tmp_path / "gbk", "GBK")
    raw = (tmp_path / "gbk" / "d.dbf").read_bytes()
    assert "山阳区".encode("gbk") in raw  # really GBK bytes on disk
    gdf = read_vector(path)
    assert gdf["XZQMC"].tolist() == NAMES
    report = import_report(gdf)
    assert report is not None
    assert report.encoding == "GB18030"


def test_utf8_shapefile_without_cpg_is_read_correctly(tmp_path: Path) -> None:
    gdf = read_vector(_write_shp(tmp_path / "u", "UTF-8"))
    assert gdf["XZQMC"].tolist() == NAMES


@pytest.mark.parametrize("cpg", ["936", "GBK", "ANSI 936", "cp936"])
def test_cpg_is_followed(tmp_path: Path, cpg: str) -> None:
    gdf = read_vector(_write_shp(tmp_path / "c", "GBK", cpg=cpg))
    assert gdf["XZQMC"].tolist() == NAMES


def test_explicit_encoding_wins(tmp_path: Path) -> None:
    gdf = read_vector(_write_shp(tmp_path / "e", "GBK"), encoding="gbk")
    assert gdf["XZQMC"].tolist() == NAMES


def test_undecodable_text_names_the_fix(tmp_path: Path) -> None:
    path = _write_shp(tmp_path / "bad", "UTF-8")
    dbf = tmp_path / "bad" / "d.dbf"
    data = dbf.read_bytes().replace("山阳区".encode(), b"\xff\xfe\xff\xfe\xff\xfe\xff\xfe\xff")
    dbf.write_bytes(data)
    with pytest.raises(EncodingError, match="--encoding"):
        read_vector(path)


def test_normalize_encoding() -> None:
    assert normalize_encoding("65001") == "UTF-8"
    assert normalize_encoding("GB2312") == "GB18030"
    with pytest.raises(EncodingError):
        normalize_encoding("klingon")


# --------------------------------------------------------------------------- official fields


def test_case_insensitive_names_and_friendly_values(patches: gpd.GeoDataFrame) -> None:
    frame = patches.rename(columns={"QDNM": "qdnm", "ISREVIEW": "IsReview"})
    frame["IsReview"] = [True, False, 1]
    frame["QTYPE"] = ["弃土(渣)场", "其他扰动", "取土（石）场"]  # ASCII parentheses accepted
    frame["XZQDM"] = [410811.0, "410811,410802", "410825"]  # a number read from a file
    frame["extra"] = "dropped"
    official = to_official(frame, "patches")
    assert official["ISREVIEW"].tolist() == ["1", "0", "1"]
    assert official["QTYPE"].tolist()[0] == "弃土（渣）场"
    assert official["XZQDM"].tolist()[0] == "410811"
    assert official.attrs["tuban_dropped_columns"] == ["extra"]


def test_bad_values_are_listed_with_rows_and_fix(patches: gpd.GeoDataFrame) -> None:
    patches["BYD"] = ["合规", "违法", "合规"]
    patches["QAREA"] = [1.0, -2.0, 1.0]
    patches["ADDRESS"] = ["x" * 101, None, None]
    patches["ISFOCUS"] = ["1", "maybe", "0"]
    with pytest.raises(FieldError) as info:
        to_official(patches, "patches")
    msg = str(info.value)
    assert "4 invalid value(s)" in msg
    assert "QDNM=410811-2024-002: BYD='违法' not in code list BYD" in msg
    assert "QAREA" in msg
    assert "ADDRESS" in msg
    assert "above the limit of 100" in msg
    assert "ISFOCUS='maybe'" in msg
    assert "use one of: 合规" in msg  # the fix: the allowed codes


def test_missing_required_and_duplicates(patches: gpd.GeoDataFrame) -> None:
    with pytest.raises(FieldError, match=r"required field.*QDNM"):
        to_official(patches.drop(columns="QDNM"), "patches")
    patches["QDNM"] = ["A", "A", None]
    with pytest.raises(FieldError) as info:
        to_official(patches, "patches")
    assert "repeats QDNM=A" in str(info.value)
    assert "row 3: QDNM is empty" in str(info.value)


def test_more_than_ten_problems_are_cut(patches: gpd.GeoDataFrame) -> None:
    many = gpd.GeoDataFrame(
        {"QDNM": [f"P{i}" for i in range(15)], "BYD": ["bad"] * 15},
        geometry=[patches.geometry.iloc[0]] * 15,
        crs="EPSG:4490",
    )
    with pytest.raises(FieldError, match="and 5 more"):
        to_official(many, "patches")


def test_project_dates_and_code_labels(projects: gpd.GeoDataFrame) -> None:
    projects["RP_TIME"] = ["2023年5月6日"]
    projects["PRO_TYPE"] = ["公路工程"]  # the label is accepted for its code
    official = to_official(projects, "projects")
    assert official["RP_TIME"].tolist() == ["2023-05-06"]
    assert official["PRO_TYPE"].tolist() == ["XMLX-01"]
    projects["RP_TIME"] = ["last spring"]
    with pytest.raises(FieldError, match="YYYY-MM-DD"):
        to_official(projects, "projects")


@pytest.mark.parametrize(
    ("columns", "code_field", "name_field"),
    [
        ({"adcode": "410811", "name": "山阳区"}, None, None),
        ({"行政区划代码": "410811", "名称": "山阳区"}, None, None),
        ({"XZQDM": "410811", "XZQMC": "山阳区"}, None, None),
        ({"code": "410811", "NAME": "山阳区"}, None, None),
        ({"dm": "410811", "mc": "山阳区"}, "DM", "mc"),
    ],
)
def test_division_fields_detected_or_given(
    columns: dict[str, str], code_field: str | None, name_field: str | None
) -> None:
    gdf = gpd.GeoDataFrame(
        {k: [v] for k, v in columns.items()}, geometry=[shapely.box(113, 35, 113.1, 35.1)], crs="EPSG:4490"
    )
    out = to_official(gdf, "divisions", code_field=code_field, name_field=name_field)
    assert out[["XZQDM", "XZQMC"]].values.tolist() == [["410811", "山阳区"]]


def test_division_field_errors() -> None:
    gdf = gpd.GeoDataFrame(
        {"dm": ["4108"], "mc": ["x"]}, geometry=[shapely.box(113, 35, 113.1, 35.1)], crs="EPSG:4490"
    )
    with pytest.raises(FieldError, match="--code-field"):
        to_official(gdf, "divisions")
    with pytest.raises(FieldError, match="not in the file"):
        to_official(gdf, "divisions", code_field="nope", name_field="mc")
    with pytest.raises(FieldError, match="6, 9 or 12 digit"):
        to_official(gdf, "divisions", code_field="dm", name_field="mc")
    with pytest.raises(UsageError):
        to_official(gdf, "patches", code_field="dm")
