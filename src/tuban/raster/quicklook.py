"""True-colour quicklooks (真彩色影像): the red, green and blue bands of a scene as one COG, for the web app's
before/after imagery tiles (office review, 内业复核)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tuban.errors import BandError
from tuban.raster.grid import Grid, Window, finest_grid, read_block
from tuban.raster.scene import Scene, open_scene

__all__ = ["true_colour"]

ROLES = ("red", "green", "blue")


def true_colour(scene: str | Path | Scene, target: str | Path, *, grid: Grid | None = None, rows: int = 512,
                progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Write the scene's red, green and blue bands as a COG at ``target`` (bands 1–3, DEFLATE, 512² blocks,
    averaged overviews) and return its path.

    ``grid``: the pixel grid to write on (another date's, so both dates' tiles line up; a run's analysis grid);
    default the scene's finest band's. The values are the files' own (DN): uint16 where every band is an
    integer type of at most 16 bits, with 0 for pixels not observed (a real 0 becomes 1), else float32 with NaN.
    Memory is bounded by ``rows`` rows of the grid; the file appears whole or not at all. ``progress``:
    called with ``("rows", done, total)`` after each strip (an exception raised there stops the run, and
    nothing is written)."""
    import rasterio
    import rasterio.shutil

    from tuban.files import replacing

    sc = scene if isinstance(scene, Scene) else open_scene(scene)
    missing = [r for r in ROLES if r not in sc.bands]
    if missing:
        raise BandError(f"scene {sc.name!r} has no {', '.join(missing)} band for a true-colour image",
                        hint="name the bands with --bands, or give a scene with visible bands")
    g = grid or finest_grid(sc)
    dtypes = set()
    for ref in (sc.bands[r] for r in ROLES):
        with rasterio.open(ref.path) as src:
            dtypes.add(np.dtype(src.dtypes[ref.index - 1]))
    integer = all(d.kind in "ui" and d.itemsize <= 2 for d in dtypes)
    dtype = np.uint16 if integer else np.float32
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": g.width, "height": g.height, "count": 3, "dtype": np.dtype(dtype).name,
               "crs": g.crs, "transform": g.affine, "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "zlevel": 1, "nodata": 0 if integer else np.nan, "BIGTIFF": "IF_SAFER"}
    fd, raw_name = tempfile.mkstemp(prefix=f".{target.stem}.raw-", suffix=".tif", dir=target.parent)
    os.close(fd)
    raw = Path(raw_name)
    try:
        with rasterio.open(raw, "w", **profile) as dst:
            for i, role in enumerate(ROLES, start=1):
                dst.set_band_description(i, role)
            for r0 in range(0, g.height, rows):
                h = min(rows, g.height - r0)
                data, valid = read_block(sc, ROLES, g, Window(r0, 0, h, g.width), scaled=False, mask_saturated=False)
                if integer:
                    out = np.clip(np.rint(data), 1, 65535).astype(np.uint16)
                    out[:, ~valid] = 0
                else:
                    out = data.astype(np.float32)
                    out[:, ~valid] = np.nan
                dst.write(out, window=rasterio.windows.Window(0, r0, g.width, h))
                if progress is not None:
                    progress("rows", r0 + h, g.height)
        with replacing(target) as tmp:
            rasterio.shutil.copy(raw, tmp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="2" if integer else "3",
                                 BLOCKSIZE="512", OVERVIEW_RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER")
    finally:
        raw.unlink(missing_ok=True)
    return target
