"""Reading vector files: driver allowlist, safe zips, encodings, CRS rules, geometry policy.

``read_vector`` is the only function here that takes a path. The rules:

* **Drivers** (reliability.md #19): ESRI Shapefile (``.shp``, or a ``.zip`` holding one),
  GeoPackage (``.gpkg``), GeoJSON (``.geojson``/``.json``) and KML (``.kml``), each checked
  by extension *and* magic bytes before GDAL sees the file. Anything else (VRT, KMZ,
  CSV, remote paths …) is refused with :class:`UnsafeInputError`. KML with a DOCTYPE or
  an ENTITY declaration is refused (XXE, billion laughs; #22).
* **Encoding** of shapefile text: :mod:`tuban.io.encoding` (``.cpg``, else UTF-8, else GBK).
* **CRS**: the result is always CGCS2000 (EPSG:4490).

  - the file has no CRS and ``crs`` is not given → :class:`MissingCRSError` naming ``--crs``;
  - the file has no CRS → ``crs`` is used;
  - the file's CRS is geographic WGS84 or CGCS2000 → ``crs`` (if given) wins: GCJ-02 and
    BD-09 data are routinely labelled WGS84 (every GeoJSON is, by definition);
  - the file's CRS is anything else (e.g. a Gauss–Krüger zone) → ``crs`` must be absent
    or name the same EPSG code, else :class:`UnsupportedCRSError` (a conflict is refused,
    never guessed);
  - a file CRS that cannot be identified as an EPSG code is refused unless ``crs`` is given.
* **Geometry**: :func:`tuban.io.geometry.clean_geometries` (NaN/Inf refused, Z/M dropped,
  non-polygons refused, invalid polygons repaired and reported).

The returned GeoDataFrame carries an :class:`ImportReport` in ``gdf.attrs["tuban_report"]``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import pyproj
import shapely

from tuban.crs import CGCS2000, CRSSpec, parse_crs, transform_geometries
from tuban.errors import (
    GeometryError,
    InputError,
    InputNotFoundError,
    LimitExceededError,
    MissingCRSError,
    UnsafeInputError,
    UnsupportedCRSError,
    UsageError,
)
from tuban.io.containers import check_geojson, check_geopackage, geojson_refusal
from tuban.io.encoding import detect_dbf_encoding, normalize_encoding
from tuban.io.geometry import GeometryReport, clean_geometries
from tuban.io.safezip import ZipLimits, extract_zip

__all__ = ["REPORT_KEY", "ImportReport", "import_report", "read_vector"]

REPORT_KEY = "tuban_report"
CRS_FORMS = "--crs gcj02|bd09|wgs84|cgcs2000|EPSG:n"
ALLOWED_DRIVERS = ("ESRI Shapefile", "GPKG", "GeoJSON", "KML", "LIBKML")
_SUFFIX_KIND = {".shp": "shp", ".gpkg": "gpkg", ".geojson": "geojson", ".json": "geojson", ".kml": "kml"}
_ALLOWED_TEXT = ".shp (with .shx/.dbf), .zip of a shapefile, .gpkg, .geojson/.json, .kml"
_WGS84_LIKE = {4326, 4490, 4979, 4480}
_KML_SCAN_BYTES = 64 * 1024 * 1024
_DEFAULT_MAX_FEATURES = 2_000_000


@dataclass(slots=True)
class ImportReport:
    """How a file was read: the source, driver, encoding, CRS decision and geometry changes."""

    source: str
    driver: str
    layer: str | None
    encoding: str | None
    source_crs: str
    crs_rule: str
    geometry: GeometryReport
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        enc = f", text {self.encoding}" if self.encoding else ""
        return f"{self.source} ({self.driver}{enc}; CRS {self.source_crs}: {self.crs_rule}); {self.geometry.summary()}"


def import_report(gdf: gpd.GeoDataFrame) -> ImportReport | None:
    """The :class:`ImportReport` that :func:`read_vector` attached to *gdf*, if any."""
    report = gdf.attrs.get(REPORT_KEY)
    return report if isinstance(report, ImportReport) else None


# --------------------------------------------------------------------------- sniffing


def _same_stem_parts(shp: Path) -> dict[str, Path]:
    """Sibling files of *shp* with the same stem (case-insensitive), by lower-case suffix."""
    parts: dict[str, Path] = {}
    stem = shp.stem.lower()
    for candidate in shp.parent.iterdir():
        if candidate.is_file() and candidate.stem.lower() == stem:
            suffix = candidate.suffix.lower()
            if suffix in parts and parts[suffix] != candidate:
                raise InputError(
                    f"ambiguous shapefile component: both {parts[suffix].name} and {candidate.name}",
                    hint="keep one file per component",
                )
            parts[suffix] = candidate
    return parts


def _check_magic(path: Path, kind: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    ok = True
    if kind == "shp":
        ok = head[:4] == b"\x00\x00\x27\x0a"
    elif kind == "gpkg":
        ok = head[:16] == b"SQLite format 3\x00" and head[68:72] in (b"GPKG", b"GP10", b"GP11")
    elif kind == "geojson":
        ok = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"
    elif kind == "kml":
        ok = b"\x00" not in head and re.search(rb"<(\w+:)?kml[\s>]", head) is not None
    if not ok:
        raise UnsafeInputError(
            f"{path.name} does not look like a {kind.upper()} file (its first bytes do not match)",
            hint=f"allowed inputs: {_ALLOWED_TEXT}",
        )


def _check_kml_text(path: Path) -> None:
    size = path.stat().st_size
    if size > _KML_SCAN_BYTES:
        raise LimitExceededError(f"{path.name} is {size} bytes, above the KML limit of {_KML_SCAN_BYTES}")
    data = path.read_bytes().lower()
    if b"<!doctype" in data or b"<!entity" in data:
        raise UnsafeInputError(
            f"{path.name} contains a DOCTYPE or ENTITY declaration; KML with a DOCTYPE is refused",
            hint="remove the DOCTYPE (KML never needs one) or export the layer as GeoPackage",
        )


@contextlib.contextmanager
def _staged_shapefile(shp: Path) -> Iterator[Path]:
    """*shp* itself, or a copy with canonical names when its components' cases differ."""
    parts = _same_stem_parts(shp)
    missing = [s for s in (".shx", ".dbf") if s not in parts]
    if missing:
        raise InputError(
            f"shapefile {shp.name} is missing its {' and '.join(missing)} component",
            hint="a shapefile needs .shp, .shx and .dbf (and usually .prj) with the same name",
        )
    upper = shp.suffix == ".SHP"
    canonical = all(p.stem == shp.stem and p.suffix == (s.upper() if upper else s) for s, p in parts.items())
    if canonical:
        yield shp
        return
    tmp = Path(tempfile.mkdtemp(prefix="tuban-shp-"))
    try:
        for suffix, part in parts.items():
            shutil.copyfile(part, tmp / f"layer{suffix}")
        yield tmp / "layer.shp"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _find_in_folder(folder: Path, label: str) -> Path:
    files = [p for p in folder.rglob("*") if p.is_file()]
    shps = [p for p in files if p.suffix.lower() == ".shp"]
    if len(shps) > 1:
        names = ", ".join(sorted(p.name for p in shps)[:5])
        raise InputError(
            f"{label} holds {len(shps)} shapefiles ({names}); ambiguous", hint="zip one layer per file"
        )
    if shps:
        return shps[0]
    others = [p for p in files if p.suffix.lower() in _SUFFIX_KIND]
    if len(others) == 1:
        return others[0]
    raise InputError(
        f"{label} holds no single vector layer (found {len(others)} candidates)",
        hint="zip exactly one shapefile (.shp with .shx/.dbf/.prj)",
    )


# --------------------------------------------------------------------------- CRS decision


def _decide_crs(
    file_crs: str | None, given: CRSSpec | None, label: str
) -> tuple[CRSSpec | pyproj.CRS, str, str]:
    """(source CRS, its display name, the rule that chose it)."""
    if file_crs is None:
        if given is None:
            raise MissingCRSError(
                f"{label} has no CRS (no .prj or CRS definition)",
                hint=f"say which one it is with {CRS_FORMS}",
            )
        return given, given.name, "no CRS in the file; --crs used"
    try:
        parsed = pyproj.CRS.from_user_input(file_crs)
    except pyproj.exceptions.CRSError:
        parsed = None
    epsg = parsed.to_epsg(min_confidence=70) if parsed is not None else None
    if parsed is not None and epsg is None and parsed.to_authority() == ("OGC", "CRS84"):
        epsg = 4326
    if epsg is None:
        if given is None:
            raise UnsupportedCRSError(
                f"the CRS of {label} cannot be identified as an EPSG code",
                hint=f"give the right one with {CRS_FORMS}",
            )
        return given, given.name, "unidentified file CRS; --crs used"
    if epsg in _WGS84_LIKE and parsed is not None and parsed.is_geographic:
        if given is not None:
            return given, given.name, f"file says EPSG:{epsg} (WGS84-like); --crs {given.name} wins"
        spec = parse_crs(f"EPSG:{epsg}")
        return spec, spec.name, "from the file"
    if given is not None and given.epsg != epsg:
        raise UnsupportedCRSError(
            f"{label} declares EPSG:{epsg} but --crs {given.name} was given; refusing to guess",
            hint="drop --crs to use the file's CRS, or fix the file's .prj",
        )
    try:
        spec = parse_crs(f"EPSG:{epsg}")
    except UnsupportedCRSError as exc:
        raise UnsupportedCRSError(
            f"the CRS of {label} (EPSG:{epsg}) is not supported", hint=exc.hint
        ) from None
    return spec, spec.name, "from the file"


# --------------------------------------------------------------------------- reading


def _labels(frame: pd.DataFrame) -> list[str]:
    col = next((c for c in frame.columns if str(c).upper() == "QDNM"), None)
    rows = [f"row {i + 1}" for i in range(len(frame))]
    if col is None:
        return rows
    return [
        f"QDNM={v}" if v is not None and str(v) not in ("", "nan") else rows[i]
        for i, v in enumerate(frame[col])
    ]



_OGR_ERRORS = (
    pyogrio.errors.DataSourceError,
    pyogrio.errors.DataLayerError,
    pyogrio.errors.FeatureError,
    pyogrio.errors.FieldError,
    pyogrio.errors.GeometryError,
    pyogrio.errors.CRSError,
)


@contextlib.contextmanager
def _ogr_errors(label: str, kind: str) -> Iterator[None]:
    """Turn GDAL/OGR read errors of a corrupt file into one :class:`InputError`."""
    try:
        yield
    except _OGR_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        refusal = geojson_refusal(str(exc), label=label) if kind == "geojson" else None
        if refusal is not None:
            raise refusal from exc
        raise InputError(
            f"{label} cannot be read as {kind}: {first}",
            hint="the file is corrupt or truncated; export it again from the source system",
        ) from exc

def _read_one(
    path: Path,
    kind: str,
    *,
    crs: CRSSpec | None,
    encoding: str | None,
    layer: str | None,
    max_features: int,
    polygons: bool,
    allow_empty: bool,
    max_vertices: int,
    label: str,
) -> gpd.GeoDataFrame:
    _check_magic(path, kind)
    if kind == "kml":
        _check_kml_text(path)
    elif kind == "gpkg":
        check_geopackage(path, label=label)
    elif kind == "geojson":
        check_geojson(path, label=label)
    enc = None
    if kind == "shp":
        enc = normalize_encoding(encoding) if encoding else detect_dbf_encoding(path)
    with _ogr_errors(label, kind):
        layers = pyogrio.list_layers(path)
    # attribute tables (no geometry: a detection's detect_run) are not what a vector reader is asked for
    spatial = layers[[g is not None for g in layers[:, 1]]] if len(layers) else layers
    if layer is None and len(spatial) > 1:
        names = ", ".join(str(n) for n in spatial[:10, 0])
        raise UsageError(f"{label} has {len(spatial)} layers ({names})", hint="choose one with --layer NAME")
    if layer is None and len(spatial) == 1 and len(layers) > 1:
        layer = str(spatial[0, 0])
    with _ogr_errors(label, kind):
        info = pyogrio.read_info(path, layer=layer, encoding=enc)
    if info["driver"] not in ALLOWED_DRIVERS:
        raise UnsafeInputError(f"{label} opened with driver {info['driver']}, which is not allowed")
    n = int(info["features"])
    if n > max_features:
        raise LimitExceededError(
            f"{label} has {n} features, above the limit of {max_features}",
            hint="split the file, or raise limits.features_per_import in tuban.toml",
        )
    with warnings.catch_warnings(record=True) as caught, _ogr_errors(label, kind):
        warnings.simplefilter("always")
        meta, _fids, wkb, field_data = pyogrio.raw.read(
            path, layer=layer, encoding=enc, max_features=max_features
        )
    gdal_warnings = [str(w.message) for w in caught]
    frame = pd.DataFrame({str(name): values for name, values in zip(meta["fields"], field_data, strict=True)})
    labels = _labels(frame)
    with np.errstate(invalid="ignore"):
        geoms = shapely.from_wkb(wkb, on_invalid="ignore") if wkb is not None else np.full(len(frame), None)
    given = (
        np.array([w is not None for w in wkb], dtype=bool) if wkb is not None else np.zeros(len(frame), bool)
    )
    unreadable = np.flatnonzero(shapely.is_missing(geoms) & given)
    if len(unreadable):
        shown = ", ".join(labels[i] for i in unreadable[:10])
        detail = f" ({gdal_warnings[0]})" if gdal_warnings else ""
        raise GeometryError(
            f"{len(unreadable)} geometries cannot be read (unclosed ring or too few points): {shown}{detail}",
            hint="close every ring (last point equal to the first) with at least 4 points",
        )
    source, source_name, rule = _decide_crs(meta.get("crs"), crs, label)
    zm = int((shapely.has_z(geoms) | shapely.has_m(geoms)).sum())
    # non-finite coordinates are refused before any transformation
    clean_geometries(geoms, labels, polygons=False, allow_empty=True, max_vertices=max_vertices)
    geoms = transform_geometries(geoms, source, CGCS2000)
    present = geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]
    if len(present):
        minx, miny, maxx, maxy = shapely.total_bounds(present)
        if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
            raise GeometryError(
                f"{label}: coordinates {minx:.1f}..{maxx:.1f}, {miny:.1f}..{maxy:.1f} are not longitude/latitude "
                f"after applying CRS {source_name}",
                hint=f"the CRS is wrong; give the right one with {CRS_FORMS}",
            )
    geoms, geometry_report = clean_geometries(
        geoms, labels, polygons=polygons, allow_empty=allow_empty, max_vertices=max_vertices
    )
    geometry_report.zm_dropped = zm  # counted before the transformation made them 2D
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=CGCS2000), crs=CGCS2000)
    gdf.attrs[REPORT_KEY] = ImportReport(
        source=label,
        driver=str(info["driver"]),
        layer=layer or (str(layers[0, 0]) if len(layers) else None),
        encoding=enc,
        source_crs=source_name,
        crs_rule=rule,
        geometry=geometry_report,
        warnings=gdal_warnings,
    )
    return gdf


def read_vector(
    path: str | os.PathLike[str],
    *,
    crs: str | CRSSpec | None = None,
    encoding: str | None = None,
    layer: str | None = None,
    max_features: int | None = None,
    polygons: bool = True,
    allow_empty: bool = False,
    max_vertices: int = 1_000_000,
    zip_limits: ZipLimits | None = None,
) -> gpd.GeoDataFrame:
    """Read a vector file into a GeoDataFrame in CGCS2000 (EPSG:4490).

    Parameters
    ----------
    path
        ``.shp``, ``.zip`` (one shapefile), ``.gpkg``, ``.geojson``/``.json`` or ``.kml``.
    crs
        the source CRS when the file has none, or overriding a WGS84 label (module doc):
        ``gcj02 | bd09 | wgs84 | cgcs2000 | EPSG:n``.
    encoding
        shapefile text encoding; default ``.cpg``, else UTF-8, else GBK.
    layer
        layer name for multi-layer files (GeoPackage).
    max_features
        refuse files with more features (default 2,000,000).
    polygons, allow_empty, max_vertices
        the geometry policy (:func:`tuban.io.geometry.clean_geometries`).
    zip_limits
        limits for ``.zip`` inputs.

    Returns
    -------
    geopandas.GeoDataFrame
        the file's attribute columns as read, ``geometry`` in EPSG:4490, and the
        :class:`ImportReport` in ``attrs["tuban_report"]``.
    """
    p = Path(path)
    label = p.name
    if not p.is_file():
        raise InputNotFoundError(f"input file {str(p)!r} does not exist", hint="check the path")
    spec = parse_crs(crs) if crs is not None else None
    options: dict[str, Any] = {
        "crs": spec,
        "encoding": encoding,
        "layer": layer,
        "max_features": _DEFAULT_MAX_FEATURES if max_features is None else int(max_features),
        "polygons": polygons,
        "allow_empty": allow_empty,
        "max_vertices": max_vertices,
        "label": label,
    }
    suffix = p.suffix.lower()
    if suffix == ".zip":
        with extract_zip(p, limits=zip_limits) as folder:
            inner = _find_in_folder(folder, label)
            kind = _SUFFIX_KIND[inner.suffix.lower()]
            if kind == "shp":
                _check_magic(inner, kind)
                with _staged_shapefile(inner) as shp:
                    return _read_one(shp, kind, **options)
            return _read_one(inner, kind, **options)
    kind_or_none = _SUFFIX_KIND.get(suffix)
    if kind_or_none is None:
        raise UnsafeInputError(
            f"{label}: the file type {suffix or '(none)'} is not allowed",
            hint=f"allowed inputs: {_ALLOWED_TEXT}",
        )
    if kind_or_none == "shp":
        _check_magic(p, kind_or_none)
        with _staged_shapefile(p) as shp:
            return _read_one(shp, kind_or_none, **options)
    return _read_one(p, kind_or_none, **options)
