"""Run a layout through the shapely kernel or the PostGIS SQL and reduce both to the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd

from tuban.analysis import analyse, load_rules


@dataclass
class PG:
    conn: Any
    schema: str


def run_postgis(pg: PG, patches: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, divisions: gpd.GeoDataFrame,
                previous: gpd.GeoDataFrame | None = None, *, srid: int = 4547) -> dict[str, Any]:
    from tuban.analysis.postgis import classify_in_postgis, load_layers

    load_layers(pg.conn, pg.schema, patches, scopes, divisions, previous)
    return classify_in_postgis(pg.conn, pg.schema, srid=srid, rules=load_rules())


def run_shapely(patches: gpd.GeoDataFrame, scopes: gpd.GeoDataFrame, divisions: gpd.GeoDataFrame,
                previous: gpd.GeoDataFrame | None = None) -> dict[str, Any]:
    """The Python result reduced to the fields the SQL returns."""
    res = analyse(patches, scopes, divisions, previous, work_crs="EPSG:4547")
    frame = res.to_geodataframe(with_text=False)
    def none(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and v != v) else v

    out = []
    for row, num in zip(frame.itertuples(), res.numbers(), strict=True):
        out.append({
            "QDNM": row.QDNM, "QAREA": row.QAREA, "RULE_ID": row.RULE_ID, "EAREA": row.EAREA,
            "PRID": none(row.PRID), "XZQDM": none(row.XZQDM),
            "QDTYPE": none(row.QDTYPE) if previous is not None else None,
            "projects": sorted(s["SWC_P_ID"] for s in num["scopes"]),
        })
    return {"patches": out, "completed": list(res.completed()["QDNM"]) if previous is not None else []}
