"""Coordinates: CGCS2000, its 3° Gauss–Krüger zones, WGS84, GCJ-02 and BD-09 (坐标系).

China's official datum is CGCS2000 (EPSG:4490); at the metre level it equals WGS84.
Chinese web maps use GCJ-02 (火星坐标, Amap/Gaode, Tencent) or BD-09 (Baidu): an
obfuscated offset of 100–700 m that must be removed on import, never treated as WGS84.

The GCJ-02 and BD-09 forward formulas are the public algorithms (Krasovsky-ellipsoid
offset; BD-09 as a further rotation/shift of GCJ-02). The inverses are solved by
fixed-point iteration to below 1e-9° (≈ 0.1 mm). Outside China (the usual
``out_of_china`` box) GCJ-02 is the identity.

Areas are always computed in a local projected CRS: the CGCS2000 3° Gauss–Krüger zone
of the data (EPSG:4534–4554, no zone prefix), or an Albers equal-area over China when
the extent spans more than one zone; never in degrees.

This module is pure: numpy, shapely and pyproj only.

>>> lon, lat = wgs84_to_gcj02(116.404, 39.915)
>>> round(lon, 6), round(lat, 6)
(116.410244, 39.916404)
>>> parse_crs("gcj02")
CRSSpec(name='gcj02', epsg=None)
>>> gk_zone_epsg(113.2)
4547
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, overload

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

from tuban.errors import GeometryError, UnsupportedCRSError

__all__ = [
    "CGCS2000",
    "CRSSpec",
    "area_ha",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "gk_zone_epsg",
    "local_projected_crs",
    "parse_crs",
    "transform_geometries",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

CGCS2000 = "EPSG:4490"
WGS84 = "EPSG:4326"

# Krasovsky 1940 ellipsoid, as used by the public GCJ-02 algorithm
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_TOL_DEG = 1e-9  # ≈ 0.1 mm: stop criterion of the iterative inverses
_MAX_ITER = 50

_ALLOWED_FORMS = "gcj02, bd09, wgs84, cgcs2000 or EPSG:<code> (e.g. EPSG:4490, EPSG:4546)"

# 3° Gauss–Krüger zones of CGCS2000 without zone prefix: EPSG:4534 (CM 75°E) … 4554 (CM 135°E)
_GK_FIRST_EPSG, _GK_FIRST_CM, _GK_LAST_CM = 4534, 75, 135


# --------------------------------------------------------------------------- GCJ-02 / BD-09


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    scalar = x.ndim == 0 and y.ndim == 0
    x, y = np.broadcast_arrays(x, y)
    return x, y, scalar


def _out(x: NDArray[np.float64], y: NDArray[np.float64], scalar: bool) -> Any:
    if scalar:
        return float(x), float(y)
    return x, y


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where GCJ-02 does not apply (the usual rectangular ``out_of_china`` rule)."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    return ~((x >= 72.004) & (x <= 137.8347) & (y >= 0.8293) & (y <= 55.8271))


def _gcj_delta(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The GCJ-02 offset (dlon, dlat) in degrees at WGS84 position (x, y)."""
    dx = x - 105.0
    dy = y - 35.0
    sq = np.sqrt(np.abs(dx))
    common = (20.0 * np.sin(6.0 * dx * np.pi) + 20.0 * np.sin(2.0 * dx * np.pi)) * 2.0 / 3.0
    t_lat = -100.0 + 2.0 * dx + 3.0 * dy + 0.2 * dy * dy + 0.1 * dx * dy + 0.2 * sq + common
    t_lat += (20.0 * np.sin(dy * np.pi) + 40.0 * np.sin(dy / 3.0 * np.pi)) * 2.0 / 3.0
    t_lat += (160.0 * np.sin(dy / 12.0 * np.pi) + 320.0 * np.sin(dy * np.pi / 30.0)) * 2.0 / 3.0
    t_lon = 300.0 + dx + 2.0 * dy + 0.1 * dx * dx + 0.1 * dx * dy + 0.1 * sq + common
    t_lon += (20.0 * np.sin(dx * np.pi) + 40.0 * np.sin(dx / 3.0 * np.pi)) * 2.0 / 3.0
    t_lon += (150.0 * np.sin(dx / 12.0 * np.pi) + 300.0 * np.sin(dx / 30.0 * np.pi)) * 2.0 / 3.0
    rad = y / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (t_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (t_lon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    outside = out_of_china(x, y)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _wgs_to_gcj(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    dlon, dlat = _gcj_delta(x, y)
    return x + dlon, y + dlat


def _gcj_to_bd(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd_to_gcj_approx(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    u = x - 0.0065
    v = y - 0.006
    z = np.sqrt(u * u + v * v) - 0.00002 * np.sin(v * _X_PI)
    theta = np.arctan2(v, u) - 0.000003 * np.cos(u * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _invert(
    forward: Any,
    tx: NDArray[np.float64],
    ty: NDArray[np.float64],
    x0: NDArray[np.float64],
    y0: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Solve ``forward(x, y) == (tx, ty)`` by fixed-point iteration from (x0, y0)."""
    x = np.array(x0, dtype=np.float64, copy=True)
    y = np.array(y0, dtype=np.float64, copy=True)
    for _ in range(_MAX_ITER):
        fx, fy = forward(x, y)
        ex = fx - tx
        ey = fy - ty
        x -= ex
        y -= ey
        err = np.nanmax(np.maximum(np.abs(ex), np.abs(ey)), initial=0.0)
        if not err > _TOL_DEG:  # also stops on all-NaN input
            break
    return x, y


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]: ...
def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """WGS84 → GCJ-02 (the public forward formula). Floats or arrays in, the same out."""
    x, y, scalar = _as_arrays(lon, lat)
    return _out(*_wgs_to_gcj(x, y), scalar)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]: ...
def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 → WGS84, solved iteratively (residual < 1e-9°, well under 1 cm)."""
    x, y, scalar = _as_arrays(lon, lat)
    dlon, dlat = _gcj_delta(x, y)
    return _out(*_invert(_wgs_to_gcj, x, y, x - dlon, y - dlat), scalar)


@overload
def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]: ...
def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 → BD-09 (Baidu)."""
    x, y, scalar = _as_arrays(lon, lat)
    return _out(*_gcj_to_bd(x, y), scalar)


@overload
def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]: ...
def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """BD-09 → GCJ-02: the public approximate inverse, refined iteratively on the forward formula."""
    x, y, scalar = _as_arrays(lon, lat)
    x0, y0 = _bd_to_gcj_approx(x, y)
    return _out(*_invert(_gcj_to_bd, x, y, x0, y0), scalar)


@overload
def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]: ...
def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """BD-09 → WGS84 (via GCJ-02)."""
    gx, gy = bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(gx, gy)


@overload
def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]: ...
def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Any, Any]:
    """WGS84 → BD-09 (via GCJ-02)."""
    gx, gy = wgs84_to_gcj02(lon, lat)
    return gcj02_to_bd09(gx, gy)


# --------------------------------------------------------------------------- CRS parsing

_NAMED: dict[str, tuple[str, int | None]] = {
    "gcj02": ("gcj02", None),
    "gcj-02": ("gcj02", None),
    "bd09": ("bd09", None),
    "bd-09": ("bd09", None),
    "wgs84": ("wgs84", 4326),
    "wgs-84": ("wgs84", 4326),
    "cgcs2000": ("cgcs2000", 4490),
}
_EPSG_RE = re.compile(r"^epsg:(\d{1,6})$")


@dataclass(frozen=True, slots=True)
class CRSSpec:
    """An allowlisted coordinate reference system.

    ``name`` is ``gcj02``, ``bd09``, ``wgs84``, ``cgcs2000`` or ``EPSG:<n>``; ``epsg`` is
    the EPSG code (``None`` for the web-map offsets GCJ-02 and BD-09, which have none).
    """

    name: str
    epsg: int | None

    @property
    def is_offset(self) -> bool:
        """True for GCJ-02 / BD-09 (lon/lat with an obfuscation offset)."""
        return self.epsg is None

    def to_pyproj(self) -> pyproj.CRS:
        """The pyproj CRS (GCJ-02 / BD-09: the WGS84 they are offsets of)."""
        return _pyproj_crs(self.epsg if self.epsg is not None else 4326)


@lru_cache(maxsize=256)
def _pyproj_crs(epsg: int) -> pyproj.CRS:
    return pyproj.CRS.from_epsg(epsg)


def parse_crs(text: str | CRSSpec) -> CRSSpec:
    """Parse an allowlisted CRS: ``gcj02 | bd09 | wgs84 | cgcs2000 | EPSG:n``.

    Only these forms are accepted; PROJ strings, WKT, PROJJSON and URLs are refused
    with :class:`~tuban.errors.UnsupportedCRSError` (they can be hostile or slow to
    parse). ``EPSG:n`` must be a horizontal CRS in the local PROJ database (no network).

    >>> parse_crs("EPSG:4490")
    CRSSpec(name='cgcs2000', epsg=4490)
    >>> parse_crs("WGS84").epsg
    4326
    """
    if isinstance(text, CRSSpec):
        return text
    if not isinstance(text, str):
        raise UnsupportedCRSError(f"CRS {text!r} is not text", hint=f"use one of: {_ALLOWED_FORMS}")
    shown = text if len(text) <= 80 else text[:77] + "..."
    key = text.strip().lower()
    if key in _NAMED:
        name, epsg = _NAMED[key]
        return CRSSpec(name, epsg)
    match = _EPSG_RE.match(key)
    if not match:
        raise UnsupportedCRSError(
            f"CRS {shown!r} is not an allowed form (PROJ strings, WKT, JSON and URLs are refused)",
            hint=f"use one of: {_ALLOWED_FORMS}",
        )
    code = int(match.group(1))
    if code == 4490:
        return CRSSpec("cgcs2000", 4490)
    if code == 4326:
        return CRSSpec("wgs84", 4326)
    try:
        crs = _pyproj_crs(code)
    except pyproj.exceptions.CRSError:
        raise UnsupportedCRSError(
            f"CRS {shown!r} is not in the EPSG database known to PROJ", hint=f"use one of: {_ALLOWED_FORMS}"
        ) from None
    if not (crs.is_geographic or crs.is_projected) or crs.is_vertical:
        raise UnsupportedCRSError(
            f"CRS {shown!r} is not a horizontal geographic or projected CRS",
            hint=f"use one of: {_ALLOWED_FORMS}",
        )
    return CRSSpec(f"EPSG:{code}", code)


# --------------------------------------------------------------------------- transforms


@lru_cache(maxsize=128)
def _transformer(src: int | str, dst: int | str) -> pyproj.Transformer:
    src_crs = _pyproj_crs(src) if isinstance(src, int) else pyproj.CRS.from_wkt(src)
    dst_crs = _pyproj_crs(dst) if isinstance(dst, int) else pyproj.CRS.from_wkt(dst)
    return pyproj.Transformer.from_crs(src_crs, dst_crs, always_xy=True)


def _crs_key(crs: pyproj.CRS) -> int | str:
    """The EPSG code ``crs`` declares itself (reading it is free), else its WKT. Not PROJ's identification
    (``to_epsg``): a search of its database, ~0.1 s a call, on every run's areas for the CRSs tuban makes
    (the Albers over China, Lambert equal-area), which have no code anyway; a WKT transforms the same."""
    own = crs.to_json_dict().get("id") or {}
    if own.get("authority") == "EPSG" and isinstance(own.get("code"), int):
        return int(own["code"])
    return crs.to_wkt()


def _apply(geoms: NDArray[np.object_], func: Any) -> NDArray[np.object_]:
    def xy(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, xy, include_z=False), dtype=object)


def _pyproj_apply(geoms: NDArray[np.object_], src: int | str, dst: int | str) -> NDArray[np.object_]:
    if src == dst:
        return np.asarray(shapely.force_2d(geoms), dtype=object)
    transformer = _transformer(src, dst)

    def func(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[Any, Any]:
        return transformer.transform(x, y, errcheck=True)

    try:
        return _apply(geoms, func)
    except pyproj.exceptions.ProjError as exc:
        raise GeometryError(f"coordinates cannot be transformed from {src} to {dst}: {exc}") from None


def _to_key(crs: str | CRSSpec | pyproj.CRS) -> tuple[str | None, int | str]:
    """(offset name or None, pyproj key) of a CRS argument."""
    if isinstance(crs, pyproj.CRS):
        return None, _crs_key(crs)
    spec = parse_crs(crs)
    if spec.is_offset:
        return spec.name, 4326
    assert spec.epsg is not None
    return None, spec.epsg


def transform_geometries(
    geoms: ArrayLike, src: str | CRSSpec | pyproj.CRS, dst: str | CRSSpec | pyproj.CRS = CGCS2000
) -> NDArray[np.object_]:
    """Transform shapely geometries from *src* to *dst* (GCJ-02 / BD-09 handled).

    ``src``/``dst`` are as for :func:`parse_crs` (a pyproj CRS is also accepted, for
    CRSs tuban made itself). The result is a 2D object array (Z/M are dropped).
    """
    arr = np.asarray(geoms, dtype=object)
    src_off, src_key = _to_key(src)
    dst_off, dst_key = _to_key(dst)
    if src_off is not None and src_off == dst_off:
        return np.asarray(shapely.force_2d(arr), dtype=object)
    if src_off == "gcj02":
        arr = _apply(arr, gcj02_to_wgs84)
    elif src_off == "bd09":
        arr = _apply(arr, bd09_to_wgs84)
    arr = _pyproj_apply(arr, src_key, dst_key)
    if dst_off == "gcj02":
        arr = _apply(arr, wgs84_to_gcj02)
    elif dst_off == "bd09":
        arr = _apply(arr, wgs84_to_bd09)
    return arr


# --------------------------------------------------------------------------- projected CRS, areas


def gk_zone_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3° Gauss–Krüger zone (no zone prefix) containing *lon*.

    Zones have central meridians 75°E … 135°E (EPSG:4534 … 4554).

    >>> gk_zone_epsg(75.0), gk_zone_epsg(111.2), gk_zone_epsg(113.4), gk_zone_epsg(134.9)
    (4534, 4546, 4547, 4554)
    """
    lon = float(lon)
    if not np.isfinite(lon) or lon < _GK_FIRST_CM - 1.5 or lon > _GK_LAST_CM + 1.5:
        raise UnsupportedCRSError(
            f"longitude {lon!r} is outside the CGCS2000 3-degree Gauss-Kruger zones (73.5°E-136.5°E)",
            hint="check the coordinates are lon/lat degrees in China",
        )
    cm = int(np.clip(3 * np.floor(lon / 3.0 + 0.5), _GK_FIRST_CM, _GK_LAST_CM))
    return _GK_FIRST_EPSG + (cm - _GK_FIRST_CM) // 3


@lru_cache(maxsize=1)
def _china_albers() -> pyproj.CRS:
    # Albers equal-area conic for China on CGCS2000 (the common 25°N/47°N, 105°E parameters)
    conversion = pyproj.crs.coordinate_operation.AlbersEqualAreaConversion(
        latitude_first_parallel=25.0, latitude_second_parallel=47.0,
        latitude_false_origin=0.0, longitude_false_origin=105.0,
    )  # fmt: skip
    return pyproj.crs.ProjectedCRS(
        conversion, name="CGCS2000 / China Albers equal-area", geodetic_crs=_pyproj_crs(4490)
    )


@lru_cache(maxsize=64)
def _laea(lon0: float, lat0: float) -> pyproj.CRS:
    conversion = pyproj.crs.coordinate_operation.LambertAzimuthalEqualAreaConversion(
        latitude_natural_origin=lat0, longitude_natural_origin=lon0
    )
    return pyproj.crs.ProjectedCRS(
        conversion, name="local Lambert azimuthal equal-area", geodetic_crs=_pyproj_crs(4326)
    )


def _lonlat_bounds(geoms: NDArray[np.object_], crs: str | CRSSpec | pyproj.CRS) -> NDArray[np.float64]:
    lonlat = transform_geometries(geoms, crs, CGCS2000)
    bounds = shapely.total_bounds(lonlat)
    if not np.all(np.isfinite(bounds)):
        raise GeometryError(
            "cannot choose a projected CRS: the geometries are empty or have non-finite coordinates"
        )
    return np.asarray(bounds, dtype=np.float64)


def local_projected_crs(geoms: ArrayLike, crs: str | CRSSpec | pyproj.CRS = CGCS2000) -> pyproj.CRS:
    """A local projected CRS for measuring *geoms* (given in *crs*).

    The CGCS2000 3° Gauss–Krüger zone of the extent's centre when the whole extent lies
    in that zone; an Albers equal-area over China when it spans more than one zone;
    outside the zones (not China) a Lambert azimuthal equal-area on the extent's centre.
    """
    arr = np.asarray(geoms, dtype=object).ravel()
    minx, miny, maxx, maxy = _lonlat_bounds(arr, crs)
    cx, cy = (minx + maxx) / 2.0, (miny + maxy) / 2.0
    lo, hi = _GK_FIRST_CM - 1.5, _GK_LAST_CM + 1.5
    if minx < lo or maxx > hi or miny < 0.0 or maxy > 56.0:
        return _laea(round(cx, 3), round(cy, 3))
    if gk_zone_epsg(minx) != gk_zone_epsg(maxx):
        return _china_albers()
    return _pyproj_crs(gk_zone_epsg(cx))


def area_ha(geoms: ArrayLike, crs: str | CRSSpec | pyproj.CRS = CGCS2000) -> NDArray[np.float64]:
    """Areas in hectares, measured in :func:`local_projected_crs` (never in degrees).

    Missing or empty geometries have area 0.
    """
    arr = np.asarray(geoms, dtype=object).ravel()
    out = np.zeros(arr.shape[0], dtype=np.float64)
    present = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    if not present.any():
        return out
    sub = arr[present]
    target = local_projected_crs(sub, crs)
    projected = transform_geometries(sub, crs, target)
    out[present] = shapely.area(projected) / 10_000.0
    return out
