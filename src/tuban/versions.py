"""Versions of tuban and the native libraries it runs on (``tuban --show-versions``)."""

from __future__ import annotations

import sqlite3

import tuban

__all__ = ["show_versions"]


def show_versions(workspace: str | None = None) -> dict[str, str]:
    import numpy
    import pyproj
    import rasterio
    import shapely

    out = {
        "tuban": tuban.__version__,
        "GDAL": rasterio.__gdal_version__,
        "rasterio": rasterio.__version__,
        "PROJ": pyproj.proj_version_str,
        "GEOS": shapely.geos_version_string,
        "shapely": shapely.__version__,
        "numpy": numpy.__version__,
        "SQLite": sqlite3.sqlite_version,
    }
    try:
        from tuban.store import open_store
        from tuban.workspace import open_workspace

        ws = open_workspace(workspace)
        with open_store(ws.database_url) as store:
            out.update(store.server_versions())
    except Exception as exc:  # versions are informative; never fail on them
        out["store"] = f"not connected ({type(exc).__name__})"
    return out
