"""Geometry and CRS policy for the analysis inputs (reliability.md §C).

* A layer without a CRS is refused (:class:`~tuban.errors.MissingCRSError`) unless the
  caller names its CRS; GCJ-02 / BD-09 inputs are converted on request (``source_crs="gcj02"``).
* Empty, null (for patches), non-polygonal or NaN geometries are refused with their ids
  (:class:`~tuban.errors.GeometryError`).
* Invalid polygons (a bowtie, a hole outside its shell) are repaired with
  ``make_valid``; the original and repaired areas are recorded, nothing is dropped silently.
* Everything is projected **once** to one local metric CRS (a Gauss–Krüger zone, or an
  equal-area conic when the data span zones); all areas are computed there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyproj
import shapely

from tuban.crs import CGCS2000, local_projected_crs, transform_geometries
from tuban.errors import GeometryError, MissingCRSError, UnsupportedCRSError

__all__ = ["CGCS2000", "LazyPolygons", "PreparedLayer", "local_crs", "prepare_layer", "project", "project_coords",
           "star_simple"]

_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)


@dataclass(slots=True)
class PreparedLayer:
    """One input layer after the geometry policy: polygonal geometries in EPSG:4490.

    ``repairs`` maps a row position to ``(reason, area_before / area_after)`` for rows repaired
    with ``make_valid`` (the ratio is unit-free, so the caller reports hectares after projecting).
    ``present`` is False for rows without geometry (allowed for scopes: 无红线).
    """

    name: str
    ids: np.ndarray
    geoms: np.ndarray
    present: np.ndarray
    repairs: dict[int, tuple[str, float]] = field(default_factory=dict)
    coords: np.ndarray | None = None  # get_coordinates of the present geometries (EPSG:4490), if known
    plain: np.ndarray | None = None  # per present geometry: a polygon without holes, if known


class LazyPolygons:
    """Polygons without holes kept as their coordinates; shapely polygons are built only for
    the rows asked for (``lazy[rows]``; ``np.asarray(lazy)`` builds them all).

    Used for a layer whose geometries are needed only for a few pairs (the previous round:
    the pair kernel works on its edges, its STRtree query on :meth:`boxes`).
    """

    def __init__(self, xy: np.ndarray, counts: np.ndarray) -> None:
        self.xy = xy
        self.offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, rows: Any) -> np.ndarray:
        idx = np.arange(len(self))[rows]  # an int array, a mask, a slice or one int
        one = np.ndim(idx) == 0
        idx = np.atleast_1d(idx)
        start = self.offsets[idx]
        counts = self.offsets[idx + 1] - start
        rings = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=rings[1:])
        coord_rows = np.repeat(start - rings[:-1], counts) + np.arange(rings[-1])
        out = shapely.from_ragged_array(shapely.GeometryType.POLYGON, self.xy[coord_rows],
                                        (rings, np.arange(len(idx) + 1, dtype=np.int64)))
        return out[0] if one else out

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self[:]

    def boxes(self) -> np.ndarray:
        """Per row a two-point linestring (lower left, upper right): its envelope is the
        polygon's, so an STRtree query without predicate finds the same pairs, and it is
        cheaper to build than the polygon."""
        if len(self) == 0:
            return np.zeros(0, dtype=object)
        start = self.offsets[:-1]
        x, y = self.xy[:, 0], self.xy[:, 1]
        lo = np.stack([np.minimum.reduceat(x, start), np.minimum.reduceat(y, start)], axis=1)
        hi = np.stack([np.maximum.reduceat(x, start), np.maximum.reduceat(y, start)], axis=1)
        return shapely.linestrings(np.stack([lo, hi], axis=1))


def _crs_name(crs: object) -> str:
    return str(crs) if crs is not None else "none"


def _to_cgcs2000(geoms: np.ndarray, src: object, layer: str) -> np.ndarray:
    """Convert *geoms* from *src* to EPSG:4490 (GCJ-02 / BD-09 through :mod:`tuban.crs`)."""
    if isinstance(src, pyproj.CRS) and src.to_epsg() == 4490:
        return geoms
    try:
        return transform_geometries(geoms, src if isinstance(src, pyproj.CRS) else str(src), CGCS2000)
    except UnsupportedCRSError as exc:
        raise UnsupportedCRSError(f"layer {layer}: {exc.message}", hint=exc.hint) from None


@lru_cache(maxsize=32)
def _transformer(src: str, dst: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(src), pyproj.CRS.from_user_input(dst),
                                       always_xy=True)


@lru_cache(maxsize=32)
def _crs_key(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg(min_confidence=100)  # a database search: slow for a CRS without a code
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def _key(crs: str | pyproj.CRS) -> str | None:
    """A cache key for a plain (non-offset) CRS, ``None`` for GCJ-02 / BD-09 names."""
    if isinstance(crs, pyproj.CRS):
        return _crs_key(crs)
    text = str(crs).strip()
    return text if text.upper().startswith("EPSG:") else None


def project(geoms: np.ndarray, src: str | pyproj.CRS, dst: str | pyproj.CRS, *, workers: int = 1) -> np.ndarray:
    """Reproject an array of shapely geometries (x = longitude/easting first).

    One PROJ transform of the flat coordinate array (PROJ holds the GIL: *workers* is kept
    for the API); plain polygons (no holes) are rebuilt from that array in one
    ``from_ragged_array`` call, other geometries get their coordinates set. GCJ-02 / BD-09
    go through :func:`tuban.crs.transform_geometries`.
    """
    out = project_coords(geoms, src, dst, workers=workers)[0]
    assert isinstance(out, np.ndarray)
    return out


def _transform(ks: str, kd: str, x: np.ndarray, y: np.ndarray) -> None:
    """Transform x, y in place with PROJ (the same library and results as PostGIS ``ST_Transform``:
    touching and shared edges stay exactly as the database sees them)."""
    try:
        _transformer(ks, kd).transform(x, y, inplace=True, errcheck=True)
    except pyproj.exceptions.ProjError as exc:
        raise GeometryError(f"coordinates cannot be transformed from {ks} to {kd}: {exc}") from None


def project_coords(geoms: np.ndarray, src: str | pyproj.CRS, dst: str | pyproj.CRS, *,
                   workers: int = 1, coords: np.ndarray | None = None,
                   plain: np.ndarray | None = None,
                   lazy: bool = False) -> tuple[np.ndarray | LazyPolygons, np.ndarray | None]:
    """:func:`project`, also returning the projected coordinates (``get_coordinates`` order,
    an (n, 2) array) when they were computed on the way (``None`` otherwise).

    *coords* (``get_coordinates(geoms)``) and *plain* (polygon without holes, per geometry)
    may be passed when already known. With *lazy*, a layer of plain polygons comes back as
    :class:`LazyPolygons` (no shapely geometry built yet).
    """
    geoms = np.asarray(geoms, dtype=object)
    ks, kd = _key(src), _key(dst)
    if ks is None or kd is None or len(geoms) == 0:
        return transform_geometries(geoms, src, dst), None
    if coords is None:
        coords = shapely.get_coordinates(geoms)
    x, y = coords[:, 0].copy(), coords[:, 1].copy()
    if ks != kd:
        _transform(ks, kd, x, y)
    xy = np.column_stack([x, y])
    counts = shapely.get_num_coordinates(geoms)
    if plain is None:
        plain = _plain(geoms)
    if lazy and plain.all():
        return LazyPolygons(xy, counts), xy
    out = np.empty(len(geoms), dtype=object)
    if plain.any():
        k = int(plain.sum())
        rings = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(counts[plain], out=rings[1:])
        pts = xy if plain.all() else xy[np.repeat(plain, counts)]
        out[plain] = shapely.from_ragged_array(shapely.GeometryType.POLYGON, pts,
                                               (rings, np.arange(k + 1, dtype=np.int64)))
    if not plain.all():
        other = np.array(geoms[~plain], dtype=object)  # a new array: set_coordinates replaces its items
        out[~plain] = shapely.set_coordinates(other, xy[np.repeat(~plain, counts)])
    return out, xy


def _plain(geoms: np.ndarray) -> np.ndarray:
    """Per geometry: a polygon without holes."""
    return (shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON) & (shapely.get_num_interior_rings(geoms) == 0)


def local_crs(geoms_4490: np.ndarray) -> pyproj.CRS:
    """A metric CRS for *geoms_4490*: :func:`tuban.crs.local_projected_crs` (the CGCS2000 3°
    Gauss–Krüger zone of their centre, or an Albers equal-area for China across zones)."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms_4490)
    # the choice depends on the extent only: pass its box rather than every geometry
    return local_projected_crs(np.array([shapely.box(xmin, ymin, xmax, ymax)]), CGCS2000)


def _refuse(layer: str, what: str, ids: np.ndarray, fix: str) -> GeometryError:
    shown = ", ".join(str(i) for i in ids[:10])
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return GeometryError(f"layer {layer}: {len(ids)} {what}: {shown}{more}", hint=fix)


def prepare_layer(
    geoms: np.ndarray,
    ids: np.ndarray,
    crs: object,
    *,
    layer: str,
    source_crs: object = None,
    allow_missing: bool = False,
) -> PreparedLayer:
    """Apply the geometry policy to one layer and return it in EPSG:4490.

    Parameters
    ----------
    geoms, ids
        Shapely geometries and the id of each row (QDNM, SWC_P_ID or XZQDM) for messages.
    crs
        The CRS the file declares (``None`` when it has none).
    layer
        Layer name used in messages (``patches``, ``scopes`` …).
    source_crs
        The CRS the coordinates are really in; overrides *crs* (``gcj02`` for Amap data).
    allow_missing
        Rows without geometry are kept as absent (scopes without a red line) instead of refused.
    """
    src = source_crs if source_crs is not None else crs
    if src is None:
        raise MissingCRSError(
            f"layer {layer} has no CRS (no .prj or CRS metadata)",
            hint="name it, e.g. --crs EPSG:4490 or --crs gcj02; tuban never guesses a CRS",
        )
    geoms = np.asarray(geoms, dtype=object)
    ids = np.asarray(ids, dtype=object)
    missing = shapely.is_missing(geoms)
    if missing.any() and not allow_missing:
        raise _refuse(layer, "rows without geometry", ids[missing], "give every row a polygon")
    present = ~missing
    geoms = geoms.copy()
    sub = geoms[present]
    if shapely.has_z(sub).any():
        sub = shapely.force_2d(sub)
    sub_ids = ids[present]
    empty = shapely.is_empty(sub)
    if empty.any():
        raise _refuse(layer, "empty geometries", sub_ids[empty], "remove them or draw their polygons")
    gtype = shapely.get_type_id(sub)
    non_poly = ~np.isin(gtype, _POLYGONAL)
    if non_poly.any():
        raise _refuse(layer, "non-polygon geometries", sub_ids[non_poly], "patches and scopes must be polygons")
    coords = shapely.get_coordinates(sub)
    if not np.isfinite(coords).all():
        bad = ~np.array([np.isfinite(shapely.get_coordinates(g)).all() for g in sub])
        raise _refuse(layer, "geometries with NaN/Inf coordinates", sub_ids[bad], "fix the coordinates")
    repairs: dict[int, tuple[str, float]] = {}
    plain = (gtype == shapely.GeometryType.POLYGON) & (shapely.get_num_interior_rings(sub) == 0)
    invalid = np.zeros(len(sub), dtype=bool)
    if plain.all():
        unsure = np.flatnonzero(~star_simple(coords, shapely.get_num_coordinates(sub)))
    else:
        unsure = np.flatnonzero(~plain)
        if plain.any():
            rows = np.flatnonzero(plain)
            unsure = np.r_[unsure, rows[~star_simple(shapely.get_coordinates(sub[rows]),
                                                      shapely.get_num_coordinates(sub[rows]))]]
    invalid[unsure] = ~shapely.is_valid(sub[unsure])
    if invalid.any():
        positions = np.flatnonzero(present)[invalid]
        before = shapely.area(sub[invalid])
        repaired = _polygonal_part(shapely.make_valid(sub[invalid]))
        after = shapely.area(repaired)
        gone = shapely.is_empty(repaired)
        if gone.any():
            raise _refuse(layer, "geometries with no area left after repair", sub_ids[invalid][gone],
                          "redraw them as proper polygons")
        reasons = shapely.is_valid_reason(sub[invalid])
        for pos, reason, a0, a1 in zip(positions, reasons, before, after, strict=True):
            repairs[int(pos)] = (str(reason), float(a0 / a1) if a1 > 0 else float("nan"))
        sub[invalid] = repaired
    out = _to_cgcs2000(sub, src, layer)
    geoms[present] = out
    same = out is sub and not repairs  # coordinates unchanged: keep them for the projection
    return PreparedLayer(name=layer, ids=ids, geoms=geoms, present=present, repairs=repairs,
                         coords=coords if same else None, plain=plain if same else None)


def star_simple(coords: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per closed ring (``counts`` coordinates each, in ``coords``): is it surely simple?

    True when the ring is star-shaped about the mean of its vertices: every edge turns
    strictly the same way around that point (``|cross| > 1e-9 |a||b|``) and goes round it
    once. Each ray from the point then meets the ring once, so the ring cannot cross or
    touch itself and the polygon is valid. False means "not shown": run GEOS ``is_valid``.
    Rings are taken in blocks of about ``STAR_BLOCK`` coordinates (small temporaries).
    """
    counts = np.asarray(counts, dtype=np.int64)
    out = np.zeros(len(counts), dtype=bool)
    ends = np.cumsum(counts)
    r = 0
    while r < len(counts):
        base = ends[r] - counts[r]
        stop = max(int(np.searchsorted(ends, base + STAR_BLOCK, side="right")), r + 1)
        out[r:stop] = _star_block(coords[base:ends[stop - 1]], counts[r:stop])
        r = stop
    return out


STAR_BLOCK = 1 << 16


def _star_block(coords: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if len(coords) < 2:
        return np.zeros(len(counts), dtype=bool)
    ends = np.cumsum(counts)
    starts = ends - counts
    nv = counts - 1
    ok = nv >= 3
    cx = (np.add.reduceat(coords[:, 0], starts) - coords[ends - 1, 0]) / np.maximum(nv, 1)
    cy = (np.add.reduceat(coords[:, 1], starts) - coords[ends - 1, 1]) / np.maximum(nv, 1)
    rx = coords[:, 0] - np.repeat(cx, counts)
    ry = coords[:, 1] - np.repeat(cy, counts)
    cross = rx[:-1] * ry[1:] - ry[:-1] * rx[1:]
    ax, ay = np.abs(rx), np.abs(ry)
    tol = 1e-9 * (ax[:-1] + ay[:-1]) * (ax[1:] + ay[1:])
    inner = np.ones(len(cross), dtype=bool)
    inner[ends[:-1] - 1] = False  # the step from one ring to the next
    pos = (cross > tol) & inner
    neg = (cross < -tol) & inner
    below = ry < 0
    up = below[:-1] & ~below[1:] & inner
    down = ~below[:-1] & below[1:] & inner
    s = np.minimum(starts, len(cross) - 1)
    n_pos, n_neg = np.add.reduceat(pos, s), np.add.reduceat(neg, s)
    n_up, n_down = np.add.reduceat(up, s), np.add.reduceat(down, s)
    return ok & (((n_pos == nv) & (n_up == 1)) | ((n_neg == nv) & (n_down == 1)))


def _polygonal_part(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal parts of ``make_valid`` output (collections may hold stray lines)."""
    out = geoms.copy()
    types = shapely.get_type_id(geoms)
    for k in np.flatnonzero(~np.isin(types, _POLYGONAL)):
        parts = shapely.get_parts(geoms[k])
        polys = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
        out[k] = shapely.union_all(polys) if len(polys) else shapely.Polygon()
    return out
