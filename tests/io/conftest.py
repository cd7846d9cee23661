"""Fixtures for tuban.io: small generated layers with every official field (Chinese text)."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from tuban.fields import PATCH_FIELDS, PROJECT_FIELDS


def patch_frame() -> gpd.GeoDataFrame:
    """Three patches near 焦作 with every official field filled (short texts fit a shapefile)."""
    rows = [
        {
            "QDNM": "410811-2024-001",
            "QTYPE": "弃土（渣）场",
            "QAREA": 1.2345,
            "EAREA": 0.25,
            "QDCS": "施工",
            "QDTYPE": "新增",
            "BYD": "疑似超出防治责任范围",
            "ISREVIEW": "1",
            "ISFOCUS": "0",
            "XZQDM": "410811",
            "ADDRESS": "河南省焦作市山阳区焦东路东侧",
            "PROBLEM": "扰动超出防治责任范围约0.25公顷",
            "PROPOSAL": "责令限期整改",
            "MEMO": "无人机复核",
            "PRID": "SWC-2023-0001",
            "PRNM": "焦作市某道路工程",
            "SEROSION": "轻度",
        },
        {
            "QDNM": "410811-2024-002",
            "QTYPE": "其他扰动",
            "QAREA": 0.4,
            "EAREA": 0.0,
            "QDCS": "停工",
            "QDTYPE": "续建（范围扩大）",
            "BYD": "疑似未批先建",
            "ISREVIEW": "0",
            "ISFOCUS": "1",
            "XZQDM": "410811,410802",
            "ADDRESS": "山阳区与解放区交界处",
            "PROBLEM": "未编报水土保持方案",
            "PROPOSAL": "补办手续",
            "MEMO": "温县、武陟县 备注",
            "PRID": "",
            "PRNM": "",
            "SEROSION": "中度",
        },
        {
            "QDNM": "410825-2024-003",
            "QTYPE": "取土（石）场",
            "QAREA": 12.5,
            "EAREA": 3.75,
            "QDCS": "完工",
            "QDTYPE": "完工",
            "BYD": "合规",
            "ISREVIEW": "1",
            "ISFOCUS": "1",
            "XZQDM": "410825",
            "ADDRESS": "温县黄河滩区",
            "PROBLEM": "",
            "PROPOSAL": "",
            "MEMO": "",
            "PRID": "SWC-2022-0042",
            "PRNM": "温县取土场",
            "SEROSION": "微度",
        },
    ]
    assert set(rows[0]) == set(PATCH_FIELDS)
    geoms = [
        shapely.box(113.25, 35.22, 113.2512, 35.2210),
        shapely.MultiPolygon(
            [shapely.box(113.26, 35.23, 113.2605, 35.2305), shapely.box(113.262, 35.23, 113.2625, 35.2306)]
        ),
        shapely.Polygon(
            [(113.05, 34.94), (113.06, 34.94), (113.06, 34.95), (113.05, 34.95), (113.05, 34.94)],
            holes=[[(113.052, 34.942), (113.054, 34.942), (113.054, 34.944), (113.052, 34.942)]],
        ),
    ]
    for row in rows:
        for key, value in row.items():
            if value == "":
                row[key] = None
    return gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:4490")


def project_frame() -> gpd.GeoDataFrame:
    rows = [
        {
            "SWC_P_ID": "SWC-2023-0001",
            "PRO_NAME": "焦作市某道路工程",
            "CS_UNIT": "焦作市交通建设投资有限公司",
            "RP_AGNT": "焦作市水利局",
            "RP_NUM": "焦水保〔2023〕12号",
            "RP_TIME": "2023-05-06",
            "PRO_TYPE": "XMLX-01",
            "PRO_CATE": "建设类",
            "PRO_NAT": "新建",
            "PRO_LEVEL": "市级",
            "CST_STATE": "施工",
            "IVV_CNTY": "410811",
            "VEC_TYPE": "防治责任范围",
        }
    ]
    assert set(rows[0]) == set(PROJECT_FIELDS)
    return gpd.GeoDataFrame(rows, geometry=[shapely.box(113.249, 35.219, 113.252, 35.222)], crs="EPSG:4490")


@pytest.fixture
def patches() -> gpd.GeoDataFrame:
    return patch_frame()


@pytest.fixture
def projects() -> gpd.GeoDataFrame:
    return project_frame()
