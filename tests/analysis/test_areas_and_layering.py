"""Areas agree with PostGIS geography within 0.1 %; the analysis layer imports no outer layer."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import shapely
import shapely.affinity

from tuban.analysis import analyse
from tuban.crs import transform_geometries

from . import layouts as lay

MODULES = ["tuban.analysis", "tuban.analysis.core", "tuban.analysis.overlay", "tuban.analysis.divisions",
           "tuban.analysis.change", "tuban.analysis.explanations", "tuban.analysis.geometry",
           "tuban.analysis.rules", "tuban.analysis.parallel", "tuban.analysis.postgis", "tuban.analysis.pairwise",
           "tuban.analysis.tables"]
FORBIDDEN = ("sqlalchemy", "fastapi", "starlette", "psycopg", "tuban.store", "tuban.web", "tuban.cli",
             "tuban.workflow")


def test_analysis_modules_import_no_outer_layer():
    code = ("import importlib, json, sys\n"
            f"for m in {MODULES!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []


def _patches_at(lon: float, lat: float, crs_span_deg: float = 0.0) -> gpd.GeoDataFrame:
    """Three ~1–4 ha polygons near (lon, lat); with a span, the last one lies span degrees east."""
    rings = [shapely.box(0, 0, 0.001, 0.001), shapely.Point(0.003, 0.003).buffer(0.001, 16),
             shapely.box(crs_span_deg, 0, crs_span_deg + 0.002, 0.002)]
    geoms = [shapely.affinity.translate(g, lon, lat) for g in rings]
    return gpd.GeoDataFrame({"QDNM": ["A1", "A2", "A3"]}, geometry=geoms, crs="EPSG:4490")


@pytest.mark.postgis
@pytest.mark.parametrize(("lon", "lat", "span"), [(113.24, 35.2, 0.0), (87.6, 43.8, 0.0), (126.6, 45.7, 0.0),
                                                  (113.24, 35.2, 4.0)])
def test_areas_agree_with_postgis_geography(pg_conn, lon, lat, span):
    patches = _patches_at(lon, lat, span)
    scopes = lay.scopes([lay.box(0, 0, 1, 1)])
    divisions = gpd.GeoDataFrame({"XZQDM": ["1"], "XZQMC": ["x"]},
                                 geometry=[shapely.box(lon - 1, lat - 1, lon + span + 1, lat + 1)], crs="EPSG:4490")
    res = analyse(patches, scopes, divisions)
    wkb = shapely.to_wkb(patches.geometry.to_numpy(), hex=True)
    with pg_conn.conn.cursor() as cur:
        cur.execute("SELECT ST_Area(ST_GeomFromWKB(decode(w, 'hex'), 4490)::geography) FROM unnest(%s::text[]) w",
                    (list(wkb),))
        geog_m2 = np.array([r[0] for r in cur.fetchall()])
    np.testing.assert_allclose(res.area_m2, geog_m2, rtol=1e-3)
    if span:
        assert "Albers" in res.work_crs.name or res.work_crs.to_epsg() is None  # spans two GK zones


def test_work_crs_is_the_gauss_kruger_zone():
    res = analyse(_patches_at(113.24, 35.2), lay.scopes([lay.box(0, 0, 1, 1)]), lay.divisions())
    assert res.work_crs.to_epsg() == 4547
    back = transform_geometries(res.metric["patches"], res.work_crs, "EPSG:4490")
    assert shapely.equals_exact(back, res.patches.geometry.to_numpy(), tolerance=1e-9).all()
