"""Defensive checks of GeoPackage and GeoJSON containers before GDAL reads them.

Reliability cases #20 and #21 (``shared/reliability.md``):

* a GeoPackage is an SQLite database, and SQLite databases can carry views that call
  functions, a corrupt page, or a schema rewritten with ``PRAGMA writable_schema``. The file
  is opened here first, read-only and immutable, with ``trusted_schema=OFF``; its structure
  is checked (``PRAGMA quick_check``), and a layer that is a view rather than a table is
  refused (reading a view runs its SQL).
* a GeoJSON is parsed whole by GDAL, so its size is capped (memory is a multiple of the
  file size); GDAL's parser refuses deep nesting and numbers that overflow a double
  (``1e999``), and those refusals are named as such instead of "corrupt file".

Each refusal is an :class:`~tuban.errors.InputError` subclass that names the file, the
problem and the fix; nothing is written.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from tuban.errors import InputError, LimitExceededError, UnsafeInputError

__all__ = ["GEOJSON_MAX_BYTES", "check_geojson", "check_geopackage", "geojson_refusal"]

GEOJSON_MAX_BYTES = 512 * 1024 * 1024
"""Largest GeoJSON read (bytes); larger layers should travel as GeoPackage."""

_TO_GPKG = "convert it to GeoPackage (ogr2ogr -f GPKG out.gpkg in.geojson), which is read in a stream"


# --------------------------------------------------------------------------- GeoPackage


def check_geopackage(path: Path, *, label: str) -> None:
    """Refuse a GeoPackage that is corrupt, or whose layers are views.

    Opened with Python's own SQLite, read-only and ``immutable`` (no lock, no journal or WAL
    replay, nothing written), with ``trusted_schema=OFF`` so that no function in the schema
    runs on our behalf.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:  # pragma: no cover - the magic bytes were checked before
        raise InputError(f"{label} cannot be opened as a GeoPackage: {exc}") from exc
    try:
        con.execute("PRAGMA trusted_schema=OFF")
        con.execute("PRAGMA query_only=ON")
        try:
            problems = [str(r[0]) for r in con.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            raise InputError(
                f"{label} fails the SQLite integrity check: {'; '.join(problems)}",
                hint="the GeoPackage is corrupt or was tampered with; export it again from the source system",
            )
        try:
            views = {str(r[0]).lower(): str(r[0]) for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'view'")}
            contents = [str(r[0]) for r in con.execute("SELECT table_name FROM gpkg_contents")]
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"{label} is not a valid GeoPackage: {exc}",
                hint="export it again as a GeoPackage (it needs a gpkg_contents table)",
            ) from exc
        as_views = [name for name in contents if name.lower() in views]
        if as_views:
            raise UnsafeInputError(
                f"{label}: layer {', '.join(as_views[:5])} is an SQL view, not a table; "
                "views run SQL when read and are refused",
                hint="save the view's result as a table (e.g. ogr2ogr -f GPKG out.gpkg in.gpkg LAYER)",
            )
    finally:
        con.close()


# --------------------------------------------------------------------------- GeoJSON


def check_geojson(path: Path, *, label: str, max_bytes: int = GEOJSON_MAX_BYTES) -> None:
    """Refuse a GeoJSON above *max_bytes*: GDAL parses it whole, in several times its size of memory."""
    size = path.stat().st_size
    if size > max_bytes:
        raise LimitExceededError(
            f"{label} is {size / 2**20:.0f} MiB, above the GeoJSON limit of {max_bytes / 2**20:.0f} MiB",
            hint=_TO_GPKG,
        )


def geojson_refusal(message: str, *, label: str) -> InputError | None:
    """A clear error for GDAL's GeoJSON parser messages that mean a hostile file, else None.

    GDAL's JSON parser stops at a fixed nesting depth ("Too many nested objects") and refuses
    numbers that overflow a double ("Unrecognized number" for ``1e999``). Duplicate keys in
    one object are not an error there: the last value wins, as RFC 8259 allows.
    """
    if "Too many nested" in message:
        return UnsafeInputError(
            f"{label}: arrays/objects are nested deeper than GDAL's JSON parser accepts",
            hint="no GeoJSON geometry needs that; the file is malformed or hostile",
        )
    match = re.search(r"Unrecognized number: (\S{1,40})", message)
    if match:
        return UnsafeInputError(
            f"{label}: the number {match.group(1)} is not a finite double",
            hint="write finite coordinates and values (no 1e999, NaN or Infinity)",
        )
    return None
