"""Small synthetic layouts for the analysis tests, drawn in metres and stored in EPSG:4490.

Coordinates are metres in CGCS2000 / 3° GK CM 114E (EPSG:4547) around 焦作 (Jiaozuo);
frames come back in EPSG:4490 so the library projects them itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely

GK = "EPSG:4547"
X0, Y0 = 500_000.0, 3_900_000.0  # near 114°E, 35.2°N


def to_4490(geoms: Sequence[shapely.Geometry | None]) -> np.ndarray:
    """Shift local metre geometries to (X0, Y0) in EPSG:4547 and reproject to EPSG:4490."""
    arr = np.array(list(geoms), dtype=object)
    present = ~shapely.is_missing(arr)
    g = arr.copy()
    g[present] = gpd.GeoSeries(
        shapely.transform(arr[present], lambda c: c + np.array([X0, Y0])), crs=GK
    ).to_crs("EPSG:4490").to_numpy()
    return g


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x1, y1)


def patches(geoms: Sequence[shapely.Geometry], qdnm: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    qdnm = list(qdnm) if qdnm is not None else [f"T{i + 1}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"QDNM": qdnm}, geometry=to_4490(geoms), crs="EPSG:4490")


def scopes(
    geoms: Sequence[shapely.Geometry | None],
    *,
    ids: Sequence[str] | None = None,
    rp_num: Sequence[str | None] | None = None,
    vec_type: Sequence[str] | None = None,
) -> gpd.GeoDataFrame:
    n = len(geoms)
    ids = list(ids) if ids is not None else [f"P{i + 1:02d}" for i in range(n)]
    rp = list(rp_num) if rp_num is not None else [f"豫水保〔2024〕{i + 1}号" for i in range(n)]
    vt = list(vec_type) if vec_type is not None else ["防治责任范围"] * n
    return gpd.GeoDataFrame(
        {
            "SWC_P_ID": ids,
            "PRO_NAME": [f"项目{i}" for i in ids],
            "CS_UNIT": ["某公司"] * n,
            "RP_NUM": rp,
            "RP_TIME": ["2024-01-01"] * n,
            "VEC_TYPE": vt,
        },
        geometry=to_4490(geoms),
        crs="EPSG:4490",
    )


def divisions(geoms: Sequence[shapely.Geometry] | None = None, codes: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Default: two counties split at x = 0 (410821 west, 410822 east), 20 km × 20 km."""
    if geoms is None:
        geoms = [box(-10_000, -10_000, 0, 10_000), box(0, -10_000, 10_000, 10_000)]
        codes = ["410821", "410822"]
    codes = list(codes) if codes is not None else [f"4108{i:02d}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"XZQDM": codes, "XZQMC": [f"县{c}" for c in codes]}, geometry=to_4490(geoms),
                            crs="EPSG:4490")
