"""Patch attributes (图斑属性): QAREA (ha, projected), centroid, index means, score, confidence, masked share."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["area_ha", "patch_table"]


def _to_lonlat(geoms: np.ndarray, crs: str) -> np.ndarray:
    import shapely
    from pyproj import CRS, Transformer

    src = CRS.from_user_input(crs)
    if src.equals(CRS.from_epsg(4326)) or src.equals(CRS.from_epsg(4490)):
        return geoms
    tr = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
    return shapely.transform(geoms, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def area_ha(geoms: np.ndarray, crs: str) -> np.ndarray:
    """Areas in hectares, computed in a local projected CRS (``tuban.crs.area_ha``; geodesic fallback)."""
    import shapely

    lonlat = _to_lonlat(np.asarray(geoms, dtype=object), crs)
    try:
        from tuban.crs import area_ha as _crs_area

        return np.asarray(_crs_area(lonlat, "EPSG:4490"), dtype=float)
    except ImportError:  # pragma: no cover - before tuban.crs lands
        from pyproj import Geod

        geod = Geod(ellps="GRS80")
        return np.asarray([abs(geod.geometry_area_perimeter(g)[0]) / 1e4 if not shapely.is_empty(g) else 0.0
                           for g in lonlat])


def patch_table(geoms: np.ndarray, sums: np.ndarray, crs: str, threshold: float) -> Any:
    """A GeoDataFrame of patches with their attributes (CRS = the analysis grid's)."""
    import geopandas as gpd
    import shapely

    n = np.maximum(sums[:, 0], 1) if len(sums) else np.zeros(0)
    if len(geoms):
        qarea = area_ha(geoms, crs)
        cent = shapely.centroid(_to_lonlat(np.asarray(geoms, dtype=object), crs))
        cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    else:
        qarea = cx = cy = np.zeros(0)
    score = sums[:, 1] / n if len(sums) else np.zeros(0)
    t = threshold if np.isfinite(threshold) and threshold > 0 else 1.0
    confidence = np.clip(1 - np.exp(-2 * (score / t - 1)), 0, 1) if len(sums) else np.zeros(0)
    masked = sums[:, 4] / np.maximum(sums[:, 5], 1) if len(sums) else np.zeros(0)
    data = {
        "QAREA": np.round(qarea, 4),
        "centroid_lon": cx,
        "centroid_lat": cy,
        "index_before": sums[:, 2] / n if len(sums) else np.zeros(0),
        "index_after": sums[:, 3] / n if len(sums) else np.zeros(0),
        "score": score,
        "confidence": confidence,
        "masked_fraction": masked,
    }
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(list(geoms), crs=crs), crs=crs)
