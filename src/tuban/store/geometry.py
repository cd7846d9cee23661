"""One geometry column type shared by both backends (几何字段).

* PostgreSQL/PostGIS: a ``geometry(GEOMETRY, 4490)`` column (GiST index made by the
  migration); values travel as WKB through ``ST_GeomFromWKB`` / ``ST_AsBinary``.
* SQLite: WKB in a BLOB. Spatial lookups use the ``minx/miny/maxx/maxy`` columns of
  :class:`BBoxMixin`, mirrored into an SQLite R*Tree virtual table by triggers.

On the Python side every value is a shapely geometry (or ``None``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import shapely
from sqlalchemy import DateTime, Float, LargeBinary, event, func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

__all__ = ["SRID", "BBoxMixin", "GeometryType", "UTCDateTime", "bounds_of"]

#: CGCS2000 geographic, the storage CRS of every geometry
SRID = 4490


class _PostGISGeometry(UserDefinedType[Any]):
    """``geometry(GEOMETRY, 4490)`` exchanged as WKB bytes."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return f"geometry(GEOMETRY,{SRID})"

    def bind_expression(self, bindvalue: Any) -> Any:
        return func.ST_GeomFromWKB(bindvalue, SRID)


class GeometryType(TypeDecorator[Any]):
    """A shapely geometry stored as PostGIS geometry or SQLite WKB BLOB (EPSG:4490)."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostGISGeometry())
        return dialect.type_descriptor(LargeBinary())

    def column_expression(self, colexpr: Any) -> Any:
        # this runs on the dialect-specific copy: its impl tells the backend
        if isinstance(self.impl_instance, _PostGISGeometry):
            return func.ST_AsBinary(colexpr, type_=self)
        return colexpr

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            value = shapely.from_wkt(value)
        if not isinstance(value, shapely.Geometry):
            raise TypeError(f"expected a shapely geometry, got {type(value).__name__}")
        if value.is_empty:
            return None
        return shapely.to_wkb(value, include_srid=False)

    def process_result_value(self, value: Any, dialect: Dialect) -> shapely.Geometry | None:
        if value is None:
            return None
        if isinstance(value, memoryview):
            value = value.tobytes()
        if isinstance(value, str):  # hex WKB from a driver that does not decode bytea
            return shapely.from_wkb(bytes.fromhex(value))
        return shapely.from_wkb(bytes(value))


def bounds_of(geom: shapely.Geometry | None) -> tuple[float | None, float | None, float | None, float | None]:
    """``(minx, miny, maxx, maxy)`` of *geom*, or four ``None`` for a missing/empty one."""
    if geom is None or geom.is_empty:
        return (None, None, None, None)
    minx, miny, maxx, maxy = (float(v) for v in shapely.bounds(geom))
    return (minx, miny, maxx, maxy)


class BBoxMixin:
    """``geometry`` plus its envelope columns, kept in step on every ORM flush.

    The envelope feeds the SQLite R*Tree (via triggers) and gives both backends the
    same exact bounding-box filter.
    """

    geometry: Mapped[Any] = mapped_column(GeometryType(), nullable=True)
    minx: Mapped[float | None] = mapped_column(Float, nullable=True)
    miny: Mapped[float | None] = mapped_column(Float, nullable=True)
    maxx: Mapped[float | None] = mapped_column(Float, nullable=True)
    maxy: Mapped[float | None] = mapped_column(Float, nullable=True)

    def _sync_bounds(self) -> None:
        self.minx, self.miny, self.maxx, self.maxy = bounds_of(self.geometry)


@event.listens_for(BBoxMixin, "before_insert", propagate=True)
@event.listens_for(BBoxMixin, "before_update", propagate=True)
def _bbox_before_write(mapper: Any, connection: Any, target: BBoxMixin) -> None:
    target._sync_bounds()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on both backends.

    PostgreSQL keeps ``timestamptz``; SQLite stores text without a zone, so values are
    converted to UTC on the way in (a naive value is taken as UTC) and come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
