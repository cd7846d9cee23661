"""``detect``: two dates → disturbance patches (扰动图斑), tiled, serial / local Dask / distributed.

Passes (each a set of independent window tasks):

1. band statistics on scene-wide sample windows (robust median / MAD per date and band);
2. component statistics on the same windows;
3. score sample on the same windows → automatic threshold (Otsu; ``threshold`` overrides);
4. every tile (core + halo ≥ the neighbourhood and morphology radius) → polygons clipped to the core.

Then pieces cut by tile borders are merged (unary union of touching parts), holes and patches below the
minimum mapping unit are dropped, polygons are simplified (topology-preserving) and attributes computed.
The sample windows depend only on the grid, so every tile size gives the same statistics and threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuban.detect import kernel
from tuban.detect.tiles import sample_windows, tile_windows
from tuban.errors import UsageError
from tuban.raster.change import otsu_threshold, robust_stats
from tuban.raster.grid import Grid, analysis_grid
from tuban.raster.scene import Scene, open_scene

__all__ = ["DetectResult", "detect", "executor"]

Progress = Callable[[str, int, int], None]


@dataclass
class DetectResult:
    """Patches (GeoDataFrame) and run facts (threshold, unobservable area, grid, method)."""

    patches: Any
    grid: Grid
    method: str
    threshold: float
    unobservable_fraction: float
    stats: kernel.Stats = field(repr=False, default_factory=kernel.Stats)


@contextmanager
def executor(*, workers: int | None = None, scheduler: str | None = None):
    """Yield a ``map(fn, args_list, label)`` function: serial, a local cluster of processes, or a scheduler."""
    if scheduler and workers and workers > 1:
        raise UsageError("give either --workers or --scheduler, not both")
    if not scheduler and (not workers or workers <= 1):
        def serial(fn, items, label, progress=None):
            out = []
            for i, a in enumerate(items):
                out.append(fn(*a))
                if progress:
                    progress(label, i + 1, len(items))
            return out

        yield serial
        return
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler, timeout=30)
    else:
        cluster = LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster)

    def dmap(fn, items, label, progress=None):
        futures = [client.submit(fn, *a, pure=False) for a in items]
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(futures)
        for done, fut in enumerate(as_completed(futures), 1):
            out[index[fut.key]] = fut.result()
            if progress:
                progress(label, done, len(futures))
        return out

    try:
        yield dmap
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _concat(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = parts[0].keys() if parts else []
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def compute_stats(job: kernel.Job, mapper, *, threshold: float | None = None, progress: Progress | None = None,
                  sample_pixels: int = 4_000_000) -> kernel.Stats:
    """Scene-wide statistics and threshold (passes 1–3)."""
    wins = sample_windows(job.grid, max_pixels=sample_pixels)
    stats = kernel.Stats()
    bands = _concat(mapper(kernel.sample_bands, [(job, w) for w in wins], "statistics 1/3", progress))
    stats.bands = {k: robust_stats(v) for k, v in bands.items()}
    comps = _concat(mapper(kernel.sample_components, [(job, w, stats) for w in wins], "statistics 2/3", progress))
    stats.components = {k: robust_stats(v) for k, v in comps.items()}
    if threshold is not None:
        stats.threshold = float(threshold)
    else:
        scores = np.concatenate(mapper(kernel.sample_scores, [(job, w, stats) for w in wins], "statistics 3/3",
                                       progress))
        stats.threshold = otsu_threshold(scores) if scores.size else float("inf")
    return stats


def _ha_factor(grid: Grid) -> float:
    """Hectares per square CRS unit near the grid's centre."""
    import shapely

    from tuban.detect.attributes import area_ha

    x0, y0, x1, y1 = grid.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = grid.res
    box = shapely.box(cx, cy, cx + rx, cy + ry)
    return float(area_ha(np.asarray([box]), grid.crs)[0]) / (rx * ry)


def merge_pieces(results: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Union pieces that touch across tile seams; sum their per-piece sums."""
    import shapely

    geoms = np.asarray([g for r in results for g in shapely.from_wkb(np.asarray(r["wkb"], dtype=object))]
                       if any(len(r["wkb"]) for r in results) else [], dtype=object)
    if geoms.size == 0:
        return geoms, np.zeros((0, len(kernel.SUMS)))
    sums = np.concatenate([r["sums"] for r in results if len(r["wkb"])])
    seam = np.concatenate([r["seam"] for r in results if len(r["wkb"])])
    inner_g, inner_s = geoms[~seam], sums[~seam]
    seam_g, seam_s = geoms[seam], sums[seam]
    if seam_g.size:
        merged = shapely.get_parts(shapely.unary_union(seam_g))
        tree = shapely.STRtree(merged)
        pts = shapely.point_on_surface(seam_g)
        pi, mi = tree.query(pts, predicate="intersects")
        msums = np.zeros((len(merged), sums.shape[1]))
        _, first = np.unique(pi, return_index=True)
        np.add.at(msums, mi[first], seam_s[pi[first]])
        inner_g = np.concatenate([inner_g, merged])
        inner_s = np.concatenate([inner_s, msums])
    return inner_g, inner_s


def detect(
    before: str | Scene,
    after: str | Scene,
    *,
    baseline: str | Scene | None = None,
    sensor: str | None = None,
    bands: tuple[str, ...] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    mmu_ha: float = 0.04,
    tile_size: int = 1024,
    workers: int | None = None,
    scheduler: str | None = None,
    resolution: float | None = None,
    crs: str | None = None,
    aoi: Any = None,
    masks: bool = True,
    water: bool = False,
    simplify_px: float = 0.5,
    sample_pixels: int = 4_000_000,
    progress: Progress | None = None,
) -> DetectResult:
    """Detect disturbance patches between two dates.

    Parameters
    ----------
    before, after, baseline
        scenes (paths accepted by :func:`tuban.raster.scene.open_scene`, or :class:`Scene`).
    method
        a change method (``construction`` default, ``rgb``, ``cva``, ``expr:<index>``).
    threshold
        manual score threshold (robust-z units); ``None``: Otsu on the scene-wide sample.
    mmu_ha
        minimum mapping unit in hectares (patches and holes smaller than this are dropped).
    tile_size, workers, scheduler
        tiling and parallelism; results do not depend on them.
    aoi
        shapely geometry in the grid's CRS: only patches intersecting it are kept (clipped to it).

    Returns
    -------
    DetectResult
    """
    import shapely

    from tuban.detect.attributes import patch_table

    def _open(s: str | Scene | None) -> Scene | None:
        if s is None or isinstance(s, Scene):
            return s
        return open_scene(s, sensor=sensor, bands=bands)

    b, a, z = _open(before), _open(after), _open(baseline)
    assert b is not None
    assert a is not None
    grid = analysis_grid(b, a, resolution=resolution, crs=crs)
    job = kernel.Job(b, a, grid, method, z, masks, water)
    m = job.change_method()  # validates roles early
    if job.halo < m.halo + 4 + kernel.MORPH_RADIUS * 2:
        raise UsageError(f"halo {job.halo} is smaller than the method's neighbourhood {m.halo + 6}")
    tiles = tile_windows(grid, tile_size)
    with executor(workers=workers, scheduler=scheduler) as mapper:
        stats = compute_stats(job, mapper, threshold=threshold, progress=progress, sample_pixels=sample_pixels)
        results = mapper(kernel.tile_pieces, [(job, t, stats) for t in tiles], "tiles", progress)
    geoms, sums = merge_pieces(results)
    unobs = sum(int(r["unobservable_px"]) for r in results) / max(1, sum(int(r["pixels"]) for r in results))
    k = _ha_factor(grid)
    min_area = mmu_ha / k
    if geoms.size:
        # fill holes below the MMU, drop patches below it, simplify (topology-preserving)
        geoms = np.asarray([_fill_small_holes(g, min_area) for g in geoms], dtype=object)
        keep = shapely.area(geoms) >= min_area * (1 - 1e-9)
        geoms, sums = geoms[keep], sums[keep]
        if simplify_px > 0:
            geoms = shapely.simplify(geoms, simplify_px * grid.res[0], preserve_topology=True)
        if aoi is not None:
            hit = shapely.intersects(geoms, aoi)
            geoms, sums = shapely.intersection(geoms[hit], aoi), sums[hit]
        order = np.lexsort((shapely.bounds(geoms)[:, 0], -shapely.bounds(geoms)[:, 3])) if geoms.size else []
        geoms, sums = geoms[order], sums[order]
    table = patch_table(geoms, sums, grid.crs, stats.threshold)
    return DetectResult(table, grid, m.name, stats.threshold, unobs, stats)


def _fill_small_holes(geom, min_area: float):
    import shapely

    if geom.geom_type == "MultiPolygon":
        return shapely.MultiPolygon([_fill_small_holes(p, min_area) for p in geom.geoms])
    holes = [r for r in geom.interiors if shapely.Polygon(r).area >= min_area]
    return shapely.Polygon(geom.exterior, holes)
