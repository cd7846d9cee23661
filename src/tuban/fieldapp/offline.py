"""The offline imagery plan of a user's tasks (离线影像下载计划): extents, measured tile sizes, the budget.

I/O happens here (the round's COGs are opened to read their extent, and a few sample tiles
are rendered to measure their size); the arithmetic is :func:`tuban.field.tiles.plan_tiles`.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Sequence
from typing import Any

from tuban.field.tiles import OfflineSettings, TileLayer, TilePlan, plan_tiles, tiles_for_bbox

__all__ = ["ImageryProbe", "tile_url", "user_tile_plan"]

#: assumed size of a tile when none can be rendered to measure (a 256 px PNG of imagery)
_FALLBACK_TILE_BYTES = 120_000


def tile_url(key: str, z: int, x: int, y: int) -> str:
    """The web app's tile route for layer *key* (``"{round_id}/{before|after}"``)."""
    rid, which = key.split("/")
    return f"/rounds/{rid}/tiles/{which}/{z}/{x}/{y}.png"


class ImageryProbe:
    """Extent and typical tile size per zoom of an imagery file, measured once per (path, mtime, zooms)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, float, int, int], tuple[Any, dict[int, float]]] = {}

    def describe(self, path: str, renderer: Any, *, zooms: tuple[int, int],
                 boxes: Sequence[tuple[float, float, float, float]]) -> tuple[Any, dict[int, float]]:
        """``(lon/lat extent or None, {zoom: bytes per tile})`` of *path*, from up to 2 sample tiles a zoom."""
        lo, hi = zooms
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None, dict.fromkeys(range(lo, hi + 1), _FALLBACK_TILE_BYTES)
        key = (path, mtime, lo, hi)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        extent = self._extent(path)
        sizes: dict[int, float] = {}
        for z in range(lo, hi + 1):
            measured = []
            for box in list(boxes)[:2]:
                tiles = tiles_for_bbox(box, z)
                x, y = tiles[len(tiles) // 2]
                try:
                    measured.append(len(renderer.render(path, z, x, y)))
                except Exception:  # a tile that cannot be rendered counts as the fallback size
                    measured.append(_FALLBACK_TILE_BYTES)
            sizes[z] = float(statistics.mean(measured)) if measured else _FALLBACK_TILE_BYTES
        out = (extent, sizes)
        with self._lock:
            self._cache[key] = out
        return out

    @staticmethod
    def _extent(path: str) -> tuple[float, float, float, float] | None:
        import rasterio
        from rasterio.warp import transform_bounds

        try:
            with rasterio.open(path) as src:
                if src.crs is None:
                    return None
                b = src.bounds
                if src.crs.is_geographic:
                    return (b.left, b.bottom, b.right, b.top)
                w, s_, e, n = transform_bounds(src.crs, "EPSG:4326", *b, densify_pts=21)
                return (w, s_, e, n)
        except Exception:
            return None


def user_tile_plan(rows: Sequence[tuple[Any, Any]], *, settings: OfflineSettings, renderer: Any,
                   probe: ImageryProbe, budget_bytes: int | None = None) -> TilePlan:
    """The plan for the task rows ``(patch, round)``; *budget_bytes* may only lower the server's budget."""
    budget = settings.budget_bytes if budget_bytes is None else max(1, min(budget_bytes, settings.budget_bytes))
    boxes: dict[int, list[tuple[float, float, float, float]]] = {}
    rounds: dict[int, Any] = {}
    for patch, rnd in rows:
        if patch.geometry is None:
            continue
        boxes.setdefault(rnd.id, []).append(tuple(patch.geometry.bounds))
        rounds[rnd.id] = rnd
    layers: dict[str, TileLayer] = {}
    for rid, rnd in rounds.items():
        for which in settings.layers:
            path = (rnd.imagery or {}).get(which)
            if not path:
                continue
            extent, sizes = probe.describe(str(path), renderer, zooms=(settings.min_zoom, settings.max_zoom),
                                           boxes=boxes[rid])
            layers[f"{rid}/{which}"] = TileLayer(boxes=boxes[rid], extent=extent,
                                                 bytes_per_tile={z: round(v) for z, v in sizes.items()})
    return plan_tiles(layers, zooms=(settings.min_zoom, settings.max_zoom), pad_m=settings.pad_m,
                      budget_bytes=budget, max_tiles=settings.max_tiles, min_keep_zooms=settings.min_keep_zooms)
