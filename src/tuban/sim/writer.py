"""Write the rendered dates as Cloud-Optimised GeoTIFFs, tile by tile, in bounded memory.

Each tile is rendered and written into temporary tiled GeoTIFFs (one per band file);
GDAL's COG driver then copies them into DEFLATE-compressed, 512-pixel-tiled COGs with
averaged overviews, streaming block by block. Nothing here holds more than one tile of
one date in memory, and nothing writes a timestamp, so equal seeds give equal bytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from tuban.sim.render import DateRenderer

__all__ = ["TILE", "write_date"]

#: generation tile (pixels): a multiple of 512 (COG blocks) and of 6 (the 60 m bands)
TILE = 1536
_COG = {"driver": "COG", "COMPRESS": "DEFLATE", "PREDICTOR": "2", "BLOCKSIZE": "512",
        "OVERVIEW_RESAMPLING": "AVERAGE", "NUM_THREADS": "1", "BIGTIFF": "IF_SAFER"}
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
) -> list[Path]:
    """Render one date tile by tile and write it under ``out``.

    Sentinel-2-like sensors get a folder ``out/`` with one COG per band at the band's
    own resolution (``{prefix}_B02.tif`` …); GF-2-like sensors get one 4-band COG ``out``.
    Returns the written files.
    """
    sensor = renderer.sensor
    groups: list[tuple[Path, list[int], int]] = []  # (file, band indexes, factor)
    if sensor.layout == "band-files":
        out.mkdir(parents=True, exist_ok=True)
        groups = [(out / f"{prefix}_{b.name}.tif", [i], b.resolution_factor) for i, b in enumerate(sensor.bands)]
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        groups = [(out, list(range(len(sensor.bands))), 1)]
    tmp_paths = [p.with_name(p.name + ".tmp.tif") for p, _, _ in groups]
    lc_tmp = landcover.with_name(landcover.name + ".tmp.tif") if landcover else None
    nty, ntx = math.ceil(height / TILE), math.ceil(width / TILE)
    with rasterio.Env(**_GDAL_ENV):
        dsts = []
        try:
            for (_path, idx, f), tmp in zip(groups, tmp_paths, strict=True):
                dsts.append(rasterio.open(
                    tmp, "w", driver="GTiff", width=math.ceil(width / f), height=math.ceil(height / f),
                    count=len(idx), dtype="uint16", crs=crs, transform=transform @ Affine.scale(f), nodata=0,
                    tiled=True, blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER"))
                for k, i in enumerate(idx, start=1):
                    dsts[-1].set_band_description(k, sensor.bands[i].name)
            lc = None
            if lc_tmp is not None:
                lc = rasterio.open(lc_tmp, "w", driver="GTiff", width=width, height=height, count=1, dtype="uint8",
                                   crs=crs, transform=transform, nodata=0, tiled=True, blockxsize=512,
                                   blockysize=512)
                dsts.append(lc)
            done = 0
            for ty in range(nty):
                for tx in range(ntx):
                    r0, c0 = ty * TILE, tx * TILE
                    h, w = min(TILE, height - r0), min(TILE, width - c0)
                    refl, surf = renderer.render(transform @ Affine.translation(c0, r0), (h, w), (ty, tx))
                    for (_path, idx, f), dst in zip(groups, dsts, strict=False):
                        data = _to_dn(_block_mean(refl[idx], f))
                        dst.write(data, window=Window(c0 // f, r0 // f, data.shape[-1], data.shape[-2]))
                    if lc is not None:
                        lc.write(surf[None], window=Window(c0, r0, w, h))
                    del refl, surf
                    done += 1
                    if progress:
                        progress(done, nty * ntx)
        finally:
            for d in dsts:
                d.close()
        written = []
        for (path, _idx, _f), tmp in zip(groups, tmp_paths, strict=True):
            rasterio.shutil.copy(tmp, path, **_COG)
            os.remove(tmp)
            written.append(path)
        if landcover is not None and lc_tmp is not None:
            rasterio.shutil.copy(lc_tmp, landcover, **{**_COG, "PREDICTOR": "1", "OVERVIEW_RESAMPLING": "NEAREST"})
            os.remove(lc_tmp)
            written.append(landcover)
    return written
