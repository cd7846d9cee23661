"""Imports and frames: round trips with Chinese text, refusals that write nothing."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import func, select

from tuban.errors import FieldError, GeometryError, InputError, IntegrityError
from tuban.fields import PATCH_FIELDS
from tuban.store.models import AuditEntry, Patch, Project, Round, Scope

CRS = "EPSG:4490"


def _count(store, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _patches(n: int = 3, *, start: int = 0) -> gpd.GeoDataFrame:
    rows = []
    for i in range(start, start + n):
        rows.append(
            {
                "QDNM": f"410811-2024-{i:04d}",
                "QTYPE": "其他扰动",
                "QAREA": 1.25 + i,
                "EAREA": 0.5,
                "QDCS": "施工",
                "QDTYPE": "新增",
                "BYD": "疑似未批先建",
                "ISREVIEW": "0",
                "ISFOCUS": "1",
                "XZQDM": "410811,410822" if i % 2 else "410811",
                "ADDRESS": f"焦作市山阳区新城街道{i}号",
                "PROBLEM": "未批先建，扰动面积较大",
                "PROPOSAL": "责令限期补办水土保持方案",
                "MEMO": "备注：“引号”与emoji🙂",
                "PRID": f"P{i}",
                "PRNM": "焦作市某某房地产项目",
                "SEROSION": None,
            }
        )
    geoms = [shapely.box(113.2 + 0.01 * i, 35.2, 113.205 + 0.01 * i, 35.205) for i in range(start, start + n)]
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS)


def test_divisions_round_trip_and_upsert(store) -> None:
    gdf = gpd.GeoDataFrame(
        {"XZQDM": ["410811", "410822", "410800"], "XZQMC": ["山阳区", "博爱县", "焦作市"]},
        geometry=[
            shapely.box(113.2, 35.2, 113.3, 35.3),
            shapely.box(113.0, 35.1, 113.1, 35.2),
            shapely.box(112.5, 34.8, 113.7, 35.5),
        ],
        crs=CRS,
    )
    assert store.import_divisions(gdf, actor="tester", source="焦作市.shp") == 3
    out = store.divisions_frame()
    assert out.crs.to_epsg() == 4490
    assert list(out.columns) == ["XZQDM", "XZQMC", "geometry"]
    got = out.set_index("XZQDM")
    assert got.loc["410811", "XZQMC"] == "山阳区"
    assert got.loc["410822", "geometry"].equals(shapely.box(113.0, 35.1, 113.1, 35.2))
    # upsert by code: rename, no duplicate row
    again = gdf.iloc[[0]].copy()
    again["XZQMC"] = "山阳区（新）"
    store.import_divisions(again, actor="tester")
    out = store.divisions_frame().set_index("XZQDM")
    assert len(out) == 3
    assert out.loc["410811", "XZQMC"] == "山阳区（新）"


def test_projects_group_scopes_and_approval(store) -> None:
    gdf = gpd.GeoDataFrame(
        {
            "SWC_P_ID": ["P-001", "P-001", "P-002", None],
            "PRO_NAME": ["焦作至温县高速公路", "焦作至温县高速公路", "山阳区安置房", "无编号项目"],
            "CS_UNIT": ["河南交投集团", None, "焦作城投", None],
            "RP_NUM": ["豫水保〔2021〕12号", None, None, None],
            "RP_TIME": ["2021-03-05", None, None, None],
            "PRO_TYPE": ["01", None, "29", None],
            "VEC_TYPE": ["防治责任范围", "防治责任范围", None, None],
        },
        geometry=[shapely.box(113.0, 35.0, 113.1, 35.05), shapely.box(113.2, 35.0, 113.3, 35.05), None, None],
        crs=CRS,
    )
    if not _valid_code("PRO_TYPE", "01"):
        gdf["PRO_TYPE"] = None
    assert store.import_projects(gdf, actor="tester") == 3
    with store.session() as s:
        p1 = s.scalar(select(Project).where(Project.swc_p_id == "P-001"))
        assert p1.approved
        assert p1.rp_time == dt.date(2021, 3, 5)
        assert p1.cs_unit == "河南交投集团"
        assert len(p1.scopes) == 2
        p2 = s.scalar(select(Project).where(Project.swc_p_id == "P-002"))
        assert not p2.approved
        assert p2.scopes == []
    out = store.projects_frame()
    assert len(out) == 4  # two scopes of P-001, P-002 without scope, the project without id
    assert set(out["PRO_NAME"]) == {"焦作至温县高速公路", "山阳区安置房", "无编号项目"}
    assert out["geometry"].isna().sum() == 2
    # re-import replaces the scopes, does not duplicate the project
    store.import_projects(gdf.iloc[[0]], actor="tester")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Project).where(Project.swc_p_id == "P-001")) == 1
        assert s.scalar(select(func.count()).select_from(Scope)) == 1


def _valid_code(name: str, code: str) -> bool:
    from tuban.codes import codelists

    return codelists().is_valid(name, code)


def test_patches_round_trip_every_official_field(store) -> None:
    gdf = _patches(4)
    assert store.import_patches(gdf, round_name="2024-1", actor="tester", source="issued.gpkg") == 4
    out = store.patches_frame("2024-1")
    assert list(out.columns) == [*PATCH_FIELDS, "geometry"]
    assert out.crs.to_epsg() == 4490
    for name, spec in PATCH_FIELDS.items():
        if spec.kind == "real":
            np.testing.assert_allclose(out[name].to_numpy(float), gdf[name].to_numpy(float))
        else:
            assert out[name].tolist() == gdf[name].tolist(), name
    assert all(a.equals_exact(b, 0) for a, b in zip(out.geometry, gdf.geometry, strict=True))
    extra = store.patches_frame("2024-1", extra=True)
    assert set(extra["state"]) == {"issued"}
    assert set(extra["version"]) == {1}
    with store.session() as s:
        lead = s.scalars(select(Patch.lead_division_code)).all()
        assert set(lead) == {"410811"}
        assert s.scalar(select(Round.name)) == "2024-1"
    assert store.patches_frame("2099-9").empty


def test_duplicate_qdnm_in_file_refused_and_nothing_written(store) -> None:
    gdf = pd.concat([_patches(3), _patches(1)], ignore_index=True)
    before = _count(store, AuditEntry)
    with pytest.raises(IntegrityError, match="410811-2024-0000"):
        store.import_patches(gdf, round_name="2024-1", actor="tester")
    assert _count(store, Patch) == 0
    assert _count(store, Round) == 0
    assert _count(store, AuditEntry) == before


def test_duplicate_qdnm_against_round_refused_whole(store) -> None:
    store.import_patches(_patches(2), round_name="2024-1", actor="tester")
    mixed = _patches(3, start=1)  # 0001 exists already, 0002/0003 are new
    with pytest.raises(IntegrityError, match="410811-2024-0001"):
        store.import_patches(mixed, round_name="2024-1", actor="tester")
    assert _count(store, Patch) == 2
    # the same QDNM in another round is fine
    assert store.import_patches(mixed, round_name="2024-2", actor="tester") == 3


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("BYD", "不存在的合规性", FieldError),
        ("QAREA", "abc", FieldError),
        ("ISFOCUS", "maybe", FieldError),
        ("ADDRESS", "长" * 101, FieldError),
        ("QDNM", None, FieldError),
        ("geometry", shapely.Point(113.2, 35.2), GeometryError),
        ("geometry", None, GeometryError),
    ],
)
def test_bad_row_refuses_whole_import(store, column: str, value: object, error: type) -> None:
    gdf = _patches(3)
    if column == "geometry":
        gdf = gdf.set_geometry([gdf.geometry.iloc[0], value, gdf.geometry.iloc[2]], crs=CRS)
    else:
        gdf[column] = gdf[column].astype(object)
        gdf.loc[1, column] = value
    with pytest.raises(error, match=r"row 2|QDNM"):
        store.import_patches(gdf, round_name="2024-1", actor="tester")
    assert _count(store, Patch) == 0


def test_frame_in_other_crs_refused(store) -> None:
    gdf = _patches(1).to_crs("EPSG:4546")
    with pytest.raises(InputError, match="EPSG:4490"):
        store.import_patches(gdf, round_name="2024-1", actor="tester")
    with pytest.raises(FieldError, match="XZQMC"):
        store.import_divisions(gpd.GeoDataFrame({"XZQDM": ["1"]}, geometry=[None], crs=CRS), actor="t")


def test_detected_candidates_and_bad_state(store) -> None:
    assert store.import_patches(_patches(2), round_name="2024-1", actor="detector", state="detected") == 2
    assert set(store.patches_frame("2024-1", extra=True)["state"]) == {"detected"}
    with pytest.raises(FieldError, match="PATCH_STATE"):
        store.import_patches(_patches(1, start=5), round_name="2024-1", actor="t", state="approved")
