"""Offline imagery for the field app (离线影像): which XYZ tiles to download, and how many bytes.

An inspector downloads the round's before/after imagery tiles (WebMercator XYZ, served by
the web app at ``/rounds/{id}/tiles/{before|after}/{z}/{x}/{y}.png``) for a zoom range
around each patch. The plan is computed here, without I/O: the tiles covering each patch's
box padded by ``pad_m`` metres, clipped to the imagery's extent, at every zoom of the
range. Its size is ``tiles × bytes per tile`` (the caller measures bytes per tile by
rendering a few sample tiles). Above the budget the plan is **trimmed** by dropping the
highest zoom level, one at a time, down to ``min_keep_zooms`` levels; if it still does not
fit it is **refused** (``fits=False``) and the device downloads no imagery.

>>> layer = TileLayer(boxes=[(113.240, 35.220, 113.241, 35.2208)], extent=None, bytes_per_tile=50_000)
>>> plan = plan_tiles({"1/after": layer}, zooms=(15, 17), pad_m=100, budget_bytes=10**7)
>>> plan.zooms, plan.fits, plan.count == len(plan.tiles)
((15, 17), True, True)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuban.errors import ConfigError

__all__ = ["OfflineSettings", "TileLayer", "TilePlan", "lonlat_to_tile", "plan_tiles", "tiles_for_bbox"]

_MAX_LAT = 85.05112878
Bbox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class OfflineSettings:
    """What the offline download contains and may weigh (configurable per deployment).

    From the environment: ``TUBAN_FIELD_TILE_BUDGET_MB`` (default 150),
    ``TUBAN_FIELD_TILE_ZOOMS`` (``"15-18"``), ``TUBAN_FIELD_TILE_PAD_M`` (300),
    ``TUBAN_FIELD_TILE_LAYERS`` (``"after,before"``).
    """

    budget_bytes: int = 150 * 1024 * 1024
    min_zoom: int = 15
    max_zoom: int = 18
    pad_m: float = 300.0
    layers: tuple[str, ...] = ("after", "before")
    max_tiles: int = 20_000
    min_keep_zooms: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.min_zoom <= self.max_zoom <= 22:
            raise ConfigError(f"offline tile zooms {self.min_zoom}-{self.max_zoom} must satisfy 0 ≤ min ≤ max ≤ 22")
        if self.budget_bytes <= 0 or self.pad_m < 0 or self.max_tiles <= 0:
            raise ConfigError(f"offline tiles: budget_bytes={self.budget_bytes}, pad_m={self.pad_m} and "
                              f"max_tiles={self.max_tiles} must be positive")
        bad = [x for x in self.layers if x not in ("before", "after")]
        if bad or not self.layers:
            raise ConfigError(f"offline tile layers {list(self.layers)} must be 'before' and/or 'after'")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OfflineSettings:
        """Settings from ``TUBAN_FIELD_TILE_*`` variables (unset ones keep the defaults)."""
        env = os.environ if env is None else env
        kw: dict[str, Any] = {}
        try:
            if env.get("TUBAN_FIELD_TILE_BUDGET_MB"):
                kw["budget_bytes"] = int(float(env["TUBAN_FIELD_TILE_BUDGET_MB"]) * 1024 * 1024)
            if env.get("TUBAN_FIELD_TILE_ZOOMS"):
                lo, _, hi = env["TUBAN_FIELD_TILE_ZOOMS"].partition("-")
                kw["min_zoom"], kw["max_zoom"] = int(lo), int(hi or lo)
            if env.get("TUBAN_FIELD_TILE_PAD_M"):
                kw["pad_m"] = float(env["TUBAN_FIELD_TILE_PAD_M"])
        except ValueError as exc:
            raise ConfigError(f"a TUBAN_FIELD_TILE_* variable is not a number: {exc}",
                              hint="e.g. TUBAN_FIELD_TILE_BUDGET_MB=150 TUBAN_FIELD_TILE_ZOOMS=15-18") from None
        if env.get("TUBAN_FIELD_TILE_LAYERS"):
            kw["layers"] = tuple(x.strip() for x in env["TUBAN_FIELD_TILE_LAYERS"].split(",") if x.strip())
        return cls(**kw)


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile (WebMercator) holding *lon*, *lat* at zoom *z*."""
    n = 2**z
    lat = max(-_MAX_LAT, min(_MAX_LAT, lat))
    x = int((lon + 180.0) / 360.0 * n)
    r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tiles_for_bbox(bbox: Bbox, z: int) -> list[tuple[int, int]]:
    """Every tile at zoom *z* touching the lon/lat box ``(minx, miny, maxx, maxy)``."""
    x0, y0 = lonlat_to_tile(bbox[0], bbox[3], z)
    x1, y1 = lonlat_to_tile(bbox[2], bbox[1], z)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def _pad(bbox: Bbox, pad_m: float) -> Bbox:
    dlat = pad_m / 111_320.0
    dlon = pad_m / (111_320.0 * max(math.cos(math.radians((bbox[1] + bbox[3]) / 2)), 0.01))
    return bbox[0] - dlon, bbox[1] - dlat, bbox[2] + dlon, bbox[3] + dlat


def _clip(bbox: Bbox, extent: Bbox | None) -> Bbox | None:
    if extent is None:
        return bbox
    out = (max(bbox[0], extent[0]), max(bbox[1], extent[1]), min(bbox[2], extent[2]), min(bbox[3], extent[3]))
    return out if out[0] < out[2] and out[1] < out[3] else None


@dataclass(frozen=True, slots=True)
class TilePlan:
    """The tiles to download: ``(layer, z, x, y)``, the size estimate and what the budget did."""

    tiles: list[tuple[str, int, int, int]]
    zooms: tuple[int, int] | None
    requested_zooms: tuple[int, int]
    per_zoom: dict[int, int]
    estimate_bytes: int
    budget_bytes: int
    fits: bool
    trimmed: bool
    bytes_per_tile: dict[str, dict[int, int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.tiles)

    def to_dict(self, *, url: Any = None) -> dict[str, Any]:
        """JSON for the device; *url* maps ``(layer, z, x, y)`` to the tile's URL."""
        return {"count": self.count, "zooms": list(self.zooms) if self.zooms else None,
                "requested_zooms": list(self.requested_zooms), "per_zoom": {str(k): v for k, v in self.per_zoom.items()},
                "estimate_bytes": self.estimate_bytes, "budget_bytes": self.budget_bytes, "fits": self.fits,
                "trimmed": self.trimmed, "bytes_per_tile": {k: {str(z): n for z, n in v.items()} for k, v in self.bytes_per_tile.items()},
                "tiles": [url(*t) for t in self.tiles] if url is not None else [list(t) for t in self.tiles]}


@dataclass(frozen=True, slots=True)
class TileLayer:
    """One imagery layer to plan: the patch boxes it serves, its extent and one tile's size.

    *bytes_per_tile* is one number, or one per zoom level (a zoom not named uses their mean).
    """

    boxes: Sequence[Bbox]
    extent: Bbox | None
    bytes_per_tile: float | Mapping[int, float]

    def tile_bytes(self, z: int) -> float:
        """The size of one tile at zoom *z*."""
        if isinstance(self.bytes_per_tile, Mapping):
            sizes = self.bytes_per_tile
            return float(sizes[z]) if z in sizes else float(sum(sizes.values()) / max(len(sizes), 1))
        return float(self.bytes_per_tile)


def plan_tiles(layers: Mapping[str, TileLayer], *, zooms: tuple[int, int], pad_m: float, budget_bytes: int,
               max_tiles: int = 20_000, min_keep_zooms: int = 1) -> TilePlan:
    """The tiles around each layer's patch boxes, clipped to its extent, trimmed to *budget_bytes*.

    Parameters
    ----------
    layers
        Per layer key (e.g. ``"12/after"``): the patches' lon/lat boxes, the imagery's lon/lat
        extent (``None``: unknown, no clipping) and the measured size of one tile.
    zooms
        The inclusive zoom range wanted.
    pad_m
        Metres of imagery around each patch box.
    budget_bytes
        Above it the highest zoom is dropped (down to *min_keep_zooms* levels), then refused.
    """
    lo, hi = zooms
    per_zoom_tiles: dict[int, list[tuple[str, int, int, int]]] = {}
    padded = {key: [_pad(b, pad_m) for b in layer.boxes] for key, layer in layers.items()}
    for z in range(lo, hi + 1):
        seen: set[tuple[str, int, int, int]] = set()
        out: list[tuple[str, int, int, int]] = []
        for key, layer in layers.items():
            for box in padded[key]:
                clipped = _clip(box, layer.extent)
                if clipped is None:
                    continue
                for x, y in tiles_for_bbox(clipped, z):
                    item = (key, z, x, y)
                    if item not in seen:
                        seen.add(item)
                        out.append(item)
        per_zoom_tiles[z] = out

    def size(tiles: Sequence[tuple[str, int, int, int]]) -> int:
        return round(sum(layers[t[0]].tile_bytes(t[1]) for t in tiles))

    top = hi
    trimmed = False
    while True:
        chosen = [t for z in range(lo, top + 1) for t in per_zoom_tiles[z]]
        est = size(chosen)
        if (est <= budget_bytes and len(chosen) <= max_tiles) or top - lo + 1 <= min_keep_zooms:
            break
        top -= 1
        trimmed = True
    fits = est <= budget_bytes and len(chosen) <= max_tiles
    per_zoom = {z: len(per_zoom_tiles[z]) for z in range(lo, top + 1)}
    return TilePlan(tiles=chosen if fits else [], zooms=(lo, top) if fits else None, requested_zooms=(lo, hi),
                    per_zoom=per_zoom, estimate_bytes=est, budget_bytes=budget_bytes, fits=fits, trimmed=trimmed,
                    bytes_per_tile={k: {z: round(v.tile_bytes(z)) for z in range(lo, hi + 1)}
                                    for k, v in layers.items()})
