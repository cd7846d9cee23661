"""Writing vector files: the format by extension, all-or-nothing.

``.gpkg`` GeoPackage, ``.shp`` Shapefile (with a CGCS2000 ``.prj`` and a ``.cpg`` saying
UTF-8), ``.geojson``/``.json`` GeoJSON, ``.kml`` KML (WGS84 lon/lat, as KML requires;
CGCS2000 equals WGS84 at the metre level). Data are written in EPSG:4490.

Everything is written to a temporary name in the target folder and renamed into place
only when complete, so a failure leaves nothing half-written (an existing file stays as
it was). A shapefile's components are renamed one by one after all were written.

Shapefile limits are checked first, never truncated silently: field names ≤ 10
characters (the official codes fit) and text values ≤ 254 bytes in UTF-8 (long
PROBLEM/PROPOSAL/MEMO text needs GeoPackage).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pyproj

from tuban.crs import CGCS2000
from tuban.errors import FieldError, InputError, UsageError
from tuban.files import replacing

__all__ = ["DRIVERS", "write_vector"]

DRIVERS = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".kml": "KML",
}
_SHP_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_SHP_TEXT_BYTES = 254
_SHP_NAME_CHARS = 10


def _check_shapefile(gdf: gpd.GeoDataFrame) -> None:
    geom = gdf.geometry.name
    long_names = [str(c) for c in gdf.columns if c != geom and len(str(c)) > _SHP_NAME_CHARS]
    if long_names:
        raise FieldError(
            f"shapefile field names are limited to {_SHP_NAME_CHARS} characters: {', '.join(long_names)}",
            hint="rename the columns, or export to .gpkg",
        )
    problems = []
    for col in gdf.columns:
        if col == geom or (gdf[col].dtype.kind not in "OUT" and not pd.api.types.is_string_dtype(gdf[col])):
            continue
        for i, value in enumerate(gdf[col].tolist()):
            if isinstance(value, str) and len(value.encode("utf-8")) > _SHP_TEXT_BYTES:
                problems.append(f"row {i + 1} {col} ({len(value.encode('utf-8'))} bytes)")
    if problems:
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise FieldError(
            f"text too long for a shapefile (> {_SHP_TEXT_BYTES} bytes in UTF-8): {', '.join(problems[:10])}{more}",
            hint="export to .gpkg, which has no such limit",
        )


def _dates_as_text(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Date/datetime columns as ISO text (a shapefile has no datetime type; dates stay YYYY-MM-DD)."""
    out = gdf
    for col in gdf.columns:
        if col == gdf.geometry.name:
            continue
        values = gdf[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            texts = [None if pd.isna(v) else _iso(v) for v in values]
        elif values.dtype == object and any(isinstance(v, (dt.date, dt.datetime)) for v in values):
            texts = [_iso(v) if isinstance(v, (dt.date, dt.datetime)) else v for v in values]
        else:
            continue
        if out is gdf:
            out = gdf.copy()
        out[col] = pd.Series(texts, index=gdf.index, dtype=object)
    return out


def _iso(value: dt.date | dt.datetime | pd.Timestamp) -> str:
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        if value.hour == value.minute == value.second == 0 and not value.microsecond:
            return value.date().isoformat()
        return value.isoformat()
    return value.isoformat()


def _write_shapefile(gdf: gpd.GeoDataFrame, target: Path, layer: str) -> None:
    staging = target.parent / f".{target.stem}.tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        tmp_shp = staging / f"{target.stem}.shp"
        pyogrio.write_dataframe(gdf, tmp_shp, driver="ESRI Shapefile", layer=layer, encoding="UTF-8")
        (staging / f"{target.stem}.cpg").write_text("UTF-8", encoding="ascii")
        esri_wkt = pyproj.CRS.from_epsg(4490).to_wkt(pyproj.enums.WktVersion.WKT1_ESRI)
        (staging / f"{target.stem}.prj").write_text(esri_wkt, encoding="ascii")
        for suffix in _SHP_PARTS:
            part = staging / f"{target.stem}{suffix}"
            if not part.is_file():
                raise InputError(f"the shapefile writer did not produce {part.name}")
        for suffix in _SHP_PARTS:
            os.replace(staging / f"{target.stem}{suffix}", target.with_suffix(suffix))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_vector(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str], *, layer: str | None = None) -> Path:
    """Write *gdf* to *path*, the format chosen by the extension (module doc).

    Parameters
    ----------
    gdf
        a GeoDataFrame with a CRS (written in EPSG:4490).
    path
        ``.gpkg``, ``.shp``, ``.geojson``/``.json`` or ``.kml``; replaced if it exists.
    layer
        the layer name (default: the file name without extension).

    Returns
    -------
    pathlib.Path
        the written path.
    """
    target = Path(path)
    driver = DRIVERS.get(target.suffix.lower())
    if driver is None:
        raise UsageError(
            f"cannot tell the format of {target.name!r} from its extension",
            hint="use .gpkg, .shp, .geojson or .kml",
        )
    if not target.parent.is_dir():
        raise UsageError(f"the folder {str(target.parent)!r} does not exist", hint="create it first")
    if gdf.crs is None:
        raise InputError("the data to write have no CRS", hint="set it (tuban works in EPSG:4490)")
    if gdf.crs.to_epsg() != 4490:
        gdf = gdf.to_crs(CGCS2000)
    layer = layer or target.stem
    if driver == "ESRI Shapefile":
        gdf = _dates_as_text(gdf)
        _check_shapefile(gdf)
        _write_shapefile(gdf, target, layer)
        return target
    with replacing(target) as tmp:
        pyogrio.write_dataframe(gdf, tmp, driver=driver, layer=layer)
    return target
