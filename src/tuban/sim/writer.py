"""Write the rendered dates as Cloud-Optimised GeoTIFFs, tile by tile, in bounded memory.

Each tile is rendered and written into temporary tiled GeoTIFFs (one per band file),
together with its share of every overview level (exact averages of the stored pixels,
computed from the tile: the tile size is a multiple of every overview factor); a VRT
names the levels as the overviews of the full-resolution file, and GDAL's COG driver
copies it all into DEFLATE-compressed, 512-pixel-tiled COGs, streaming block by block
(computing the overviews here, from the tile in memory, halves the copy's work). The
imagery is compressed at DEFLATE level 1: sensor noise leaves nothing for the slower
levels to gain. Nothing here holds more than one tile of one date in memory, and nothing
writes a timestamp, so equal seeds give equal bytes.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from tuban.sim.render import DateRenderer
from tuban.sim.spectra import Sensor

__all__ = ["TILE", "overview_factors", "write_date"]

#: generation tile (pixels): a multiple of 512 (COG blocks) and of 6 (the 60 m bands)
TILE = 1536
_COG = {"driver": "COG", "COMPRESS": "DEFLATE", "PREDICTOR": "2", "BLOCKSIZE": "512",
        "OVERVIEW_RESAMPLING": "AVERAGE", "NUM_THREADS": "1", "BIGTIFF": "IF_SAFER"}
#: the imagery: DEFLATE level 1 (the noise is incompressible: level 6 made files 3 % larger, not smaller,
#: at twice the time) and the overviews made here
_COG_IMAGE = {**_COG, "LEVEL": "1", "OVERVIEWS": "FORCE_USE_EXISTING"}
_BLOCK = 512
_GDAL_ENV = {"GDAL_CACHEMAX": 256, "GDAL_TIFF_INTERNAL_MASK": True, "GDAL_NUM_THREADS": 1}


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return a
    h, w = a.shape[-2:]
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
    H, W = a.shape[-2] // f, a.shape[-1] // f
    return a.reshape(*a.shape[:-2], H, f, W, f).mean(axis=(-3, -1))


def _to_dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(refl * 10000.0), 1, 65535).astype(np.uint16)


def overview_factors(size: int) -> list[int]:
    """Overview factors the COG driver would make for a ``size``-pixel side: halve while above 512."""
    out, f = [], 2
    while math.ceil(size / (f // 2)) > _BLOCK:
        out.append(f)
        f *= 2
    return out


class _Pyramid:
    """Overview levels of one output file, filled tile by tile with exact block averages.

    Sums and pixel counts are halved level by level (integer sums: exact), so a
    partial block at the right or bottom edge is the mean of the pixels it holds, as GDAL's
    AVERAGE does.
    """

    def __init__(self, base: Path, *, width: int, height: int, count: int, crs: str, transform: Affine,
                 factors: list[int]):
        self.factors = factors
        self.paths = [base.with_name(f"{base.name}.ovr{f}.tif") for f in factors]
        self.dsts = [rasterio.open(p, "w", driver="GTiff", width=math.ceil(width / f), height=math.ceil(height / f),
                                   count=count, dtype="uint16", crs=crs, transform=transform @ Affine.scale(f),
                                   nodata=0, tiled=True, blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER")
                     for p, f in zip(self.paths, factors, strict=True)]

    def write(self, data: np.ndarray, row: int, col: int) -> None:
        """Add a tile ``(bands, h, w)`` whose top-left pixel is (``row``, ``col``)."""
        sums = data
        rc = np.ones(data.shape[1], np.int64)
        cc = np.ones(data.shape[2], np.int64)
        f = 1
        for dst, target in zip(self.dsts, self.factors, strict=True):
            while f < target:
                sums, rc, cc = _halve(sums), _halve(rc), _halve(cc)
                f *= 2
            if row % f or col % f:
                raise ValueError(f"tile origin ({row}, {col}) is not on the {f}× overview grid")
            mean = sums / (rc[:, None] * cc[None, :])
            dst.write(np.rint(mean).astype(np.uint16), window=Window(col // f, row // f, mean.shape[-1],
                                                                     mean.shape[-2]))

    def close(self) -> None:
        for d in self.dsts:
            d.close()

    def remove(self) -> None:
        for p in self.paths:
            if p.exists():
                os.remove(p)


def _halve(a: np.ndarray) -> np.ndarray:
    """Sums over 2×2 blocks of the last two axes (pairs for a 1-D array), as int64; odd ends keep one row/column."""
    if a.ndim == 1:
        if len(a) % 2:
            a = np.append(a, 0)
        return a[::2].astype(np.int64) + a[1::2]
    h, w = a.shape[-2:]
    if h % 2 or w % 2:
        a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, h % 2), (0, w % 2)])
    out = a[..., ::2, ::2].astype(np.int64)
    out += a[..., 1::2, ::2]
    out += a[..., ::2, 1::2]
    out += a[..., 1::2, 1::2]
    return out


def _vrt_with_overviews(full: Path, pyramid: _Pyramid, descriptions: list[str]) -> Path:
    """A VRT of ``full`` whose bands list the pyramid's levels as their overviews."""
    with rasterio.open(full) as ds:
        width, height, count = ds.width, ds.height, ds.count
        srs = ds.crs.to_wkt() if ds.crs else ""
        gt = ", ".join(repr(float(v)) for v in ds.transform.to_gdal())
    bands = []
    for b in range(1, count + 1):
        ovr = "".join(f"<Overview><SourceFilename relativeToVRT=\"0\">{escape(str(p))}</SourceFilename>"
                      f"<SourceBand>{b}</SourceBand></Overview>" for p in pyramid.paths)
        bands.append(
            f'<VRTRasterBand dataType="UInt16" band="{b}"><Description>{escape(descriptions[b - 1])}</Description>'
            f"<NoDataValue>0</NoDataValue><SimpleSource><SourceFilename relativeToVRT=\"0\">{escape(str(full))}"
            f"</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource>{ovr}</VRTRasterBand>")
    vrt = full.with_name(full.name + ".vrt")
    vrt.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{escape(srs)}</SRS>'
                   f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>\n", encoding="utf-8")
    return vrt


def _groups(sensor: Sensor, out: Path, prefix: str) -> list[tuple[Path, list[int], int]]:
    """(file, band indexes, resolution factor) of each output file of one date."""
    if sensor.layout == "band-files":
        out.mkdir(parents=True, exist_ok=True)
        return [(out / f"{prefix}_{b.name}.tif", [i], b.resolution_factor) for i, b in enumerate(sensor.bands)]
    out.parent.mkdir(parents=True, exist_ok=True)
    return [(out, list(range(len(sensor.bands))), 1)]


def _render_tile(renderer: DateRenderer, groups: list[tuple[list[int], int]], transform: Affine,
                 r0: int, c0: int, h: int, w: int, key: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    """One tile as the DN arrays of each output file and the surface classes."""
    refl, surf = renderer.render(transform @ Affine.translation(c0, r0), (h, w), key)
    return [_to_dn(_block_mean(refl[idx], f)) for idx, f in groups], surf


_WORKER: dict[str, object] = {}


def _init_worker(renderer: DateRenderer, groups: list[tuple[list[int], int]]) -> None:
    _WORKER["renderer"], _WORKER["groups"] = renderer, groups


def _worker_tile(transform: Affine, r0: int, c0: int, h: int, w: int, key: tuple[int, int]) -> tuple:
    return _render_tile(_WORKER["renderer"], _WORKER["groups"], transform, r0, c0, h, w, key)  # type: ignore[arg-type]


def _tiles(width: int, height: int) -> list[tuple[int, int, int, int, tuple[int, int]]]:
    nty, ntx = math.ceil(height / TILE), math.ceil(width / TILE)
    return [(ty * TILE, tx * TILE, min(TILE, height - ty * TILE), min(TILE, width - tx * TILE), (ty, tx))
            for ty in range(nty) for tx in range(ntx)]


def _rendered(renderer: DateRenderer, groups: list[tuple[list[int], int]], transform: Affine,
              tiles: list, workers: int) -> Iterator[tuple]:
    """Rendered tiles in tile order: here, or in ``workers`` processes (at most 2 per worker in flight)."""
    if workers <= 1 or len(tiles) <= 1:
        for r0, c0, h, w, key in tiles:
            yield (r0, c0, h, w), _render_tile(renderer, groups, transform, r0, c0, h, w, key)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(renderer, groups)) as pool:
        pending: deque = deque()
        it = iter(tiles)
        for t in it:
            pending.append((t, pool.submit(_worker_tile, transform, *t)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            t, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_worker_tile, transform, *nxt)))
            yield t[:4], fut.result()


def write_date(
    renderer: DateRenderer,
    out: Path,
    *,
    transform: Affine,
    width: int,
    height: int,
    crs: str,
    landcover: Path | None = None,
    prefix: str = "SIM",
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Render one date tile by tile and write it under ``out``.

    Sentinel-2-like sensors get a folder ``out/`` with one COG per band at the band's
    own resolution (``{prefix}_B02.tif`` …); GF-2-like sensors get one 4-band COG ``out``.
    ``workers`` > 1 renders tiles in that many processes (and compresses the COGs with
    as many threads); the tiles are written in the same order, so the bytes do not
    depend on it. Returns the written files.
    """
    sensor = renderer.sensor
    groups = _groups(sensor, out, prefix)
    tmp_paths = [p.with_name(p.name + ".tmp.tif") for p, _, _ in groups]
    lc_tmp = landcover.with_name(landcover.name + ".tmp.tif") if landcover else None
    tiles = _tiles(width, height)
    cog = {**_COG, "NUM_THREADS": str(max(1, workers))}
    with rasterio.Env(**_GDAL_ENV):
        dsts = []
        pyramids: list[_Pyramid] = []
        lc = None
        try:
            for (_path, idx, f), tmp in zip(groups, tmp_paths, strict=True):
                m_w, m_h = math.ceil(width / f), math.ceil(height / f)
                dsts.append(rasterio.open(
                    tmp, "w", driver="GTiff", width=m_w, height=m_h,
                    count=len(idx), dtype="uint16", crs=crs, transform=transform @ Affine.scale(f), nodata=0,
                    tiled=True, blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER"))
                for k, i in enumerate(idx, start=1):
                    dsts[-1].set_band_description(k, sensor.bands[i].name)
                pyramids.append(_Pyramid(tmp, width=m_w, height=m_h, count=len(idx), crs=crs,
                                         transform=transform @ Affine.scale(f), factors=overview_factors(max(m_w, m_h))))
            if lc_tmp is not None:
                lc = rasterio.open(lc_tmp, "w", driver="GTiff", width=width, height=height, count=1, dtype="uint8",
                                   crs=crs, transform=transform, nodata=0, tiled=True, blockxsize=512,
                                   blockysize=512, BIGTIFF="IF_SAFER")
            spec = [(idx, f) for _p, idx, f in groups]
            rendered = _rendered(renderer, spec, transform, tiles, workers)
            for done, ((r0, c0, h, w), (dns, surf)) in enumerate(rendered, start=1):
                for (_path, _idx, f), dst, pyr, data in zip(groups, dsts, pyramids, dns, strict=True):
                    dst.write(data, window=Window(c0 // f, r0 // f, data.shape[-1], data.shape[-2]))
                    pyr.write(data, r0 // f, c0 // f)
                if lc is not None:
                    lc.write(surf[None], window=Window(c0, r0, w, h))
                del dns, surf
                if progress:
                    progress(done, len(tiles))
        finally:
            for d in dsts:
                d.close()
            for pyr in pyramids:
                pyr.close()
            if lc is not None:
                lc.close()
        written = []
        for (path, idx, _f), tmp, pyr in zip(groups, tmp_paths, pyramids, strict=True):
            vrt = _vrt_with_overviews(tmp, pyr, [sensor.bands[i].name for i in idx])
            rasterio.shutil.copy(vrt, path, **{**cog, **_COG_IMAGE, "NUM_THREADS": cog["NUM_THREADS"]})
            os.remove(vrt)
            pyr.remove()
            os.remove(tmp)
            written.append(path)
        if landcover is not None and lc_tmp is not None:
            rasterio.shutil.copy(lc_tmp, landcover, **{**cog, "PREDICTOR": "NO", "OVERVIEW_RESAMPLING": "NEAREST"})
            os.remove(lc_tmp)
            written.append(landcover)
    return written
