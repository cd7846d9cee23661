"""Imagery tiles (影像切片) from a round's before/after COGs, rendered with rio-tiler.

Only paths stored on the round (``Round.imagery``) are ever opened: a client names a
round and ``before``/``after``, never a file. Non-8-bit imagery is stretched with the
2–98 % range of the COG's overview, computed once per file.
"""

from __future__ import annotations

import io
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from tuban.errors import InputNotFoundError, RasterError

__all__ = ["EMPTY_PNG", "TileRenderer"]


def _empty_png(size: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (size, size), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


EMPTY_PNG = _empty_png(1)


class TileRenderer:
    """Renders XYZ (WebMercator) PNG tiles of a COG; one instance per app."""

    def __init__(self, *, tile_size: int = 256, max_zoom: int = 22) -> None:
        # import rio-tiler now, in one thread: a first import racing in several request
        # threads fails with a partially initialised module
        import rio_tiler.errors
        import rio_tiler.io  # noqa: F401

        self.tile_size = tile_size
        self.max_zoom = max_zoom
        self._empty = _empty_png(tile_size)
        self._lock = threading.Lock()
        self._ranges = lru_cache(maxsize=64)(self._range_of)
        self._sources = lru_cache(maxsize=64)(self._source_of)

    @staticmethod
    def _source_of(path: str) -> str:
        """What to open for *path*: geographic CGCS2000 is relabelled WGS84 (see below).

        CGCS2000 and WGS84 agree at the metre level (domain.md §7) but PROJ knows no
        transformation between them, so GDAL's warper runs a slow "ballpark" pipeline for
        every pixel: 3–5 tiles/s. Relabelling the source EPSG:4326 through GDAL's ``vrt://``
        connection string (overviews kept) renders the same tile at 100+ tiles/s. The path
        comes from the round's record, never from a client.
        """
        import rasterio

        with rasterio.open(path) as src:
            epsg = src.crs.to_epsg() if src.crs else None
        if epsg == 4490 and "?" not in path and "&" not in path:
            return f"vrt://{path}?a_srs=EPSG:4326"
        return path

    def _range_of(self, path: str) -> tuple[tuple[float, float], ...] | None:
        from rio_tiler.io import Reader

        with Reader(path) as src:
            if src.dataset.dtypes[0] == "uint8":
                return None
            img = src.preview(max_size=512)
            out = []
            for band in img.array:
                vals = np.asarray(band.compressed() if np.ma.isMaskedArray(band) else band, dtype="float64")
                vals = vals[np.isfinite(vals)]
                lo, hi = (np.percentile(vals, [2, 98]) if vals.size else (0.0, 1.0))
                out.append((float(lo), float(hi if hi > lo else lo + 1)))
            return tuple(out)

    def render(self, path: str | None, z: int, x: int, y: int) -> bytes:
        """A PNG tile, or a transparent tile outside the image."""
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader

        if not path:
            raise InputNotFoundError("this round has no imagery of that date",
                                     hint="set the round's before/after COGs")
        if not (0 <= z <= self.max_zoom and 0 <= x < 2**z and 0 <= y < 2**z):
            raise RasterError(f"tile {z}/{x}/{y} is outside the tile grid")
        if not Path(path).is_file():
            raise InputNotFoundError(f"the round's imagery file is missing: {Path(path).name}")
        ranges = self._ranges(path)
        try:
            with Reader(self._sources(path)) as src:
                count = src.dataset.count
                indexes = (1, 2, 3) if count >= 3 else (1,)
                img = src.tile(x, y, z, tilesize=self.tile_size, indexes=indexes)
        except TileOutsideBounds:
            return self._empty
        if ranges is not None:
            img = img.rescale(in_range=[ranges[i - 1] for i in indexes])
        return img.render(img_format="PNG")
