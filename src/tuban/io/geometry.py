"""Geometry policy on import (reliability.md #32, #33, #37).

The rules, applied to every record in this order:

1. Non-finite coordinates (NaN, ±Inf) in any geometry type → :class:`GeometryError`.
2. Z and M are dropped (tuban works in 2D; heights are not part of any official field).
3. Missing or empty geometries → :class:`GeometryError`, unless ``allow_empty`` (project
   scopes may be absent: "无红线"), in which case they become ``None``.
4. Where polygons are expected, anything not Polygon/MultiPolygon → :class:`GeometryError`;
   a GeometryCollection made only of polygons becomes a MultiPolygon (lossless, counted).
5. A ring with fewer than 4 points → :class:`GeometryError` (cannot be repaired honestly).
6. More vertices than the limit → :class:`LimitExceededError`.
7. Invalid polygons (self-intersections, holes outside shells, duplicate rings …) are
   repaired with :func:`shapely.make_valid`, keeping only the polygonal parts; every repair
   is reported with the reason, the area before and after and the original geometry.
   A repair that leaves no polygon → :class:`GeometryError`. Never silent.

Errors name the records (``QDNM`` when present, else the 1-based row number).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import NDArray

from tuban.crs import CGCS2000, area_ha
from tuban.errors import GeometryError, LimitExceededError

__all__ = ["GeometryReport", "RepairItem", "clean_geometries"]

_POLYGONAL = {"Polygon", "MultiPolygon"}
_SHOW = 10


@dataclass(frozen=True, slots=True)
class RepairItem:
    """One repaired geometry: which record, why, and the area change (hectares)."""

    record: str
    reason: str
    area_before_ha: float
    area_after_ha: float
    original_wkt: str


@dataclass(slots=True)
class GeometryReport:
    """What the geometry policy changed in one import."""

    records: int = 0
    repaired: list[RepairItem] = field(default_factory=list)
    zm_dropped: int = 0
    collections_to_multi: int = 0
    empty: int = 0

    @property
    def area_change_ha(self) -> float:
        return float(sum(r.area_after_ha - r.area_before_ha for r in self.repaired))

    def summary(self) -> str:
        """One line for the CLI and the audit log."""
        parts = [f"{self.records} records"]
        if self.repaired:
            shown = ", ".join(r.record for r in self.repaired[:_SHOW])
            more = f" and {len(self.repaired) - _SHOW} more" if len(self.repaired) > _SHOW else ""
            parts.append(
                f"{len(self.repaired)} invalid geometries repaired ({shown}{more}; "
                f"area change {self.area_change_ha:+.4f} ha)"
            )
        if self.zm_dropped:
            parts.append(f"Z/M dropped from {self.zm_dropped}")
        if self.collections_to_multi:
            parts.append(f"{self.collections_to_multi} polygon collections made MultiPolygon")
        if self.empty:
            parts.append(f"{self.empty} without geometry")
        return "; ".join(parts)


def _names(labels: Sequence[str], idx: NDArray[np.intp]) -> str:
    shown = ", ".join(labels[i] for i in idx[:_SHOW])
    more = f" and {len(idx) - _SHOW} more" if len(idx) > _SHOW else ""
    return shown + more


def _polygonal_only(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal part of *geom* as a (Multi)Polygon, or ``None`` when there is none."""
    if geom is None or geom.is_empty:
        return None
    kind = geom.geom_type
    if kind in _POLYGONAL:
        return geom
    if kind == "GeometryCollection":
        parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL and not p.is_empty]
        polys = [q for p in parts for q in shapely.get_parts(p)]
        if not polys:
            return None
        return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    return None


def clean_geometries(
    geoms: Sequence[shapely.Geometry | None] | NDArray[np.object_],
    labels: Sequence[str],
    *,
    polygons: bool = True,
    allow_empty: bool = False,
    max_vertices: int = 1_000_000,
    crs: str = CGCS2000,
) -> tuple[NDArray[np.object_], GeometryReport]:
    """Apply the import geometry policy (module doc) to *geoms*; return them and a report.

    Parameters
    ----------
    geoms
        shapely geometries (``None`` for missing), in *crs*.
    labels
        one label per record for error messages (``QDNM=…`` or ``row N``).
    polygons
        polygons are expected (patches, scopes, divisions).
    allow_empty
        missing/empty geometries are allowed and become ``None``.
    max_vertices
        the vertex limit per geometry.
    """
    arr = np.array(geoms, dtype=object).ravel()
    report = GeometryReport(records=len(arr))
    if len(arr) == 0:
        return arr, report
    missing = shapely.is_missing(arr)

    # 1. non-finite coordinates, for every geometry type alike
    with np.errstate(invalid="ignore"):
        coords, index = shapely.get_coordinates(arr, return_index=True)
        bad_xy = index[~np.isfinite(coords).all(axis=1)]
        with_z = np.flatnonzero(shapely.has_z(arr))
        zs, z_index = shapely.get_coordinates(arr[with_z], include_z=True, return_index=True)
        bad_z = with_z[z_index[~np.isfinite(zs[:, 2])]] if len(with_z) else np.array([], dtype=np.intp)
    bad = np.unique(np.concatenate([bad_xy, bad_z]))
    if len(bad):
        raise GeometryError(
            f"{len(bad)} geometries have NaN or infinite coordinates: {_names(labels, bad)}",
            hint="fix or remove these records in the source file",
        )

    # 2. Z/M dropped
    has_zm = shapely.has_z(arr) | shapely.has_m(arr)
    if has_zm.any():
        report.zm_dropped = int(has_zm.sum())
        arr = np.asarray(shapely.force_2d(arr), dtype=object)

    # 3. missing / empty
    empty = missing | shapely.is_empty(arr)
    if empty.any():
        if not allow_empty:
            idx = np.flatnonzero(empty)
            raise GeometryError(
                f"{len(idx)} records have no geometry: {_names(labels, idx)}",
                hint="every record needs a polygon; remove these records or draw their outline",
            )
        report.empty = int(empty.sum())
        arr[empty] = None

    present = np.flatnonzero(~empty)
    if polygons:
        # 4. polygonal types only
        kinds = shapely.get_type_id(arr[present])
        is_poly = (kinds == shapely.GeometryType.POLYGON) | (kinds == shapely.GeometryType.MULTIPOLYGON)
        for i in present[~is_poly]:
            geom = arr[i]
            converted = _polygonal_only(geom) if geom.geom_type == "GeometryCollection" else None
            if converted is None or len(shapely.get_parts(geom)) != len(shapely.get_parts(converted)):
                wrong = present[~is_poly]
                kinds_found = sorted({arr[j].geom_type for j in wrong})
                raise GeometryError(
                    f"{len(wrong)} records are not polygons ({', '.join(kinds_found)}) where polygons are "
                    f"expected: {_names(labels, wrong)}",
                    hint="export the layer as polygons (Polygon/MultiPolygon)",
                )
            arr[i] = converted
            report.collections_to_multi += 1

        # 5. rings with fewer than 4 points
        rings, ring_index = shapely.get_rings(arr[present], return_index=True)
        short = np.unique(present[ring_index[shapely.get_num_coordinates(rings) < 4]])
        if len(short):
            raise GeometryError(
                f"{len(short)} polygons have a ring with fewer than 4 points: {_names(labels, short)}",
                hint="a ring needs at least 4 points, the last equal to the first",
            )

    # 6. vertex limit
    n_coords = shapely.get_num_coordinates(arr)
    over = np.flatnonzero(n_coords > max_vertices)
    if len(over):
        raise LimitExceededError(
            f"{len(over)} geometries have more than {max_vertices} vertices "
            f"(largest {int(n_coords.max())}): {_names(labels, over)}",
            hint="simplify them, or raise limits.vertices_per_geometry in tuban.toml",
        )

    # 7. repair invalid polygons, reported
    if polygons and len(present):
        invalid = present[~shapely.is_valid(arr[present])]
        if len(invalid):
            originals = arr[invalid].copy()
            reasons = shapely.is_valid_reason(originals)
            fixed = shapely.make_valid(originals)
            before = area_ha(originals, crs)
            kept = np.array([_polygonal_only(g) for g in fixed], dtype=object)
            lost = np.flatnonzero(shapely.is_missing(kept))
            if len(lost):
                raise GeometryError(
                    f"{len(lost)} invalid geometries have no polygonal area after repair: "
                    f"{_names(labels, invalid[lost])}",
                    hint="redraw these polygons",
                )
            after = area_ha(kept, crs)
            for k, i in enumerate(invalid):
                report.repaired.append(
                    RepairItem(
                        record=labels[i],
                        reason=str(reasons[k]),
                        area_before_ha=float(before[k]),
                        area_after_ha=float(after[k]),
                        original_wkt=shapely.to_wkt(originals[k], rounding_precision=-1),
                    )
                )
            arr[invalid] = kept
    return arr, report
