"""Edges of detection: write patches to a GeoPackage, read an AOI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuban.errors import InputNotFoundError

__all__ = ["read_aoi", "write_patches"]


def write_patches(result: Any, path: str | Path) -> Path:
    """Write ``result.patches`` as GeoPackage layer ``patches`` (CRS set) and the run's provenance
    (``result.run``: scenes, calibration, clouds, threshold and its rule …) as table ``detect_run`` (``key``,
    ``value``), replacing those two only.

    All or nothing: the layers are written into a copy of the file (or a new file) under a temporary name in the
    same folder, which is then renamed over the target. A run that fails or is killed while writing leaves the
    target as it was (its other layers too) and no temporary file behind."""
    import shutil

    import pandas as pd
    import pyogrio

    from tuban.files import replacing

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with replacing(p) as tmp:
        if p.exists():
            shutil.copyfile(p, tmp)  # keeps the file's other layers
        result.patches.to_file(tmp, layer="patches", driver="GPKG")
        run = dict(getattr(result, "run", None) or {})
        if run:
            pyogrio.write_dataframe(pd.DataFrame({"key": list(run), "value": list(run.values())}), tmp,
                                    layer="detect_run", driver="GPKG")
    return p


def read_aoi(path: str | Path, *, crs: str | None = None) -> Any:
    """An area-of-interest file (Shapefile or a .zip of one, GeoPackage, GeoJSON, KML) as a GeoDataFrame in
    CGCS2000, read by :func:`tuban.io.reader.read_vector` (its encodings, CRS rules, geometry repairs and
    limits); ``crs`` says which CRS the file is in when it has none, or overrides a WGS84 label
    (``gcj02``: a county boundary from a Chinese web map)."""
    from tuban.errors import MissingCRSError
    from tuban.io.reader import CRS_FORMS, read_vector

    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"AOI file {str(p)!r} does not exist")
    try:
        return read_vector(p, crs=crs)
    except MissingCRSError as exc:
        raise MissingCRSError(f"AOI: {exc.message}",
                              hint=f"say which CRS it is in with --aoi-{CRS_FORMS.lstrip('-')}") from exc
