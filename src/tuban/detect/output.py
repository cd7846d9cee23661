"""Edges of detection: write patches to a GeoPackage, read an AOI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuban.errors import InputError, InputNotFoundError

__all__ = ["read_aoi", "write_patches"]


def write_patches(result: Any, path: str | Path) -> Path:
    """Write ``result.patches`` as GeoPackage layer ``patches`` (CRS set), replacing that layer only.

    All or nothing: the layer is written into a copy of the file (or a new file) under a temporary name in the
    same folder, which is then renamed over the target. A run that fails or is killed while writing leaves the
    target as it was (its other layers too) and no temporary file behind."""
    import shutil

    from tuban.files import replacing

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with replacing(p) as tmp:
        if p.exists():
            shutil.copyfile(p, tmp)  # keeps the file's other layers
        result.patches.to_file(tmp, layer="patches", driver="GPKG")
    return p


def read_aoi(path: str | Path, scene: str | Path, *, sensor: str | None = None) -> Any:
    """The union of an AOI file's geometries, in the CRS of ``scene``'s analysis grid."""
    import geopandas as gpd
    import rasterio

    from tuban.raster.scene import open_scene

    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"AOI file {str(p)!r} does not exist")
    gdf = gpd.read_file(p)
    if gdf.crs is None:
        from tuban.errors import MissingCRSError

        raise MissingCRSError(f"AOI {p} has no CRS", hint="write it with a CRS (e.g. EPSG:4490)")
    ref = next(iter(open_scene(scene, sensor=sensor).bands.values()))
    with rasterio.open(ref.path) as src:
        crs = src.crs
    geom = gdf.to_crs(crs).union_all()
    if geom.is_empty:
        raise InputError(f"AOI {p} is empty")
    return geom
