"""Import and export of vector files with the official fields (导入导出).

Public API (imported lazily, so ``import tuban.io`` stays light)::

    read_vector(path, *, crs=None, encoding=None, layer=None, max_features=None, ...) -> GeoDataFrame
    to_official(gdf, "patches" | "projects" | "divisions", *, code_field=None, name_field=None)
    write_vector(gdf, path, *, layer=None) -> Path
    import_report(gdf) -> ImportReport | None

Modules: ``reader`` (driver allowlist, CRS rules), ``safezip`` (safe zip extraction),
``encoding`` (.cpg / UTF-8 / GBK), ``geometry`` (geometry policy and repair report),
``official`` (field mapping and validation), ``writer`` (atomic writes by extension).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuban.io.geometry import GeometryReport, RepairItem
    from tuban.io.official import to_official
    from tuban.io.reader import ImportReport, import_report, read_vector
    from tuban.io.writer import write_vector

__all__ = [
    "GeometryReport",
    "ImportReport",
    "RepairItem",
    "import_report",
    "read_vector",
    "to_official",
    "write_vector",
]

_WHERE = {
    "read_vector": "reader",
    "import_report": "reader",
    "ImportReport": "reader",
    "to_official": "official",
    "write_vector": "writer",
    "GeometryReport": "geometry",
    "RepairItem": "geometry",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tuban.io' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tuban.io.{module}"), name)
