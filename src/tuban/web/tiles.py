"""Imagery tiles (影像切片) from a round's before/after COGs, rendered with rio-tiler.

Only paths stored on the round (``Round.imagery``) are ever opened: a client names a
round and ``before``/``after``, never a file. Non-8-bit imagery is stretched with the
2–98 % range of the COG's overview, computed once per file.

Speed (bench/bench_web.py): opened datasets are kept in a small pool keyed by path, size
and modification time (a replaced COG is reopened), each used by one thread at a time;
a tile that is all image is sent as JPEG (Pillow, ~0.5 ms for 256 px, where a PNG of
photographic content takes 7–30 ms), a tile at the image's edge as PNG with alpha at
zlib level 1. The ``.png`` route (kept for GIS clients and the field app's offline
packs) always answers PNG.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tuban.errors import InputNotFoundError, RasterError

__all__ = ["EMPTY_PNG", "TileFormat", "TileRenderer"]

#: ``auto``: JPEG when the tile is all image, else PNG with alpha; ``png``: always PNG
TileFormat = Literal["auto", "png"]

#: GDAL settings for tile reads: no directory listing on open (a COG has no sidecars we
#: need; GDAL_CACHEMAX is left alone: setting it in an Env flushes the block cache)
GDAL_TILE_OPTIONS: dict[str, Any] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}

JPEG_QUALITY = 85
PNG_COMPRESS_LEVEL = 1


def _empty_png(size: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (size, size), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


EMPTY_PNG = _empty_png(1)


def encode_tile(data: np.ndarray, mask: np.ndarray, *, fmt: TileFormat = "auto") -> tuple[bytes, str]:
    """``(bytes, media type)`` of a tile: *data* ``(bands, h, w)`` uint8 (1 or 3 bands),
    *mask* ``(h, w)`` with 0 where there is no image.

    JPEG (quality 85) when *fmt* is ``auto`` and the mask is all set; otherwise PNG, with
    an alpha band only where some pixel is masked.
    """
    from PIL import Image

    if data.dtype != np.uint8 or data.ndim != 3 or data.shape[0] not in (1, 3):
        raise RasterError(f"a tile must be 1 or 3 bands of uint8, got {data.dtype} {data.shape}")
    opaque = bool(mask.all())
    bands = [data[0]] if data.shape[0] == 1 else [data[0], data[1], data[2]]
    buf = io.BytesIO()
    if opaque and fmt == "auto":
        pixels = np.ascontiguousarray(bands[0] if len(bands) == 1 else np.stack(bands, axis=-1))
        Image.fromarray(pixels, "L" if len(bands) == 1 else "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
        return buf.getvalue(), "image/jpeg"
    if not opaque:
        bands.append(np.where(mask > 0, 255, 0).astype(np.uint8))
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[len(bands)]
    pixels = np.stack(bands, axis=-1)
    if mode == "L":
        pixels = pixels[..., 0]
    Image.fromarray(np.ascontiguousarray(pixels), mode).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue(), "image/png"


class TileRenderer:
    """Renders XYZ (WebMercator) tiles of a COG; one instance per app, used by many threads.

    Parameters
    ----------
    tile_size
        Tile width and height in pixels.
    max_zoom
        Tiles above this zoom are refused.
    open_sources
        How many files (COGs) keep open datasets.
    open_per_source
        How many open datasets of one file are kept for reuse (a rasterio dataset serves one
        thread at a time; concurrent requests borrow different ones).
    """

    def __init__(self, *, tile_size: int = 256, max_zoom: int = 22, open_sources: int = 8,
                 open_per_source: int = 4) -> None:
        # import rio-tiler now, in one thread: a first import racing in several request
        # threads fails with a partially initialised module
        import rio_tiler.errors
        import rio_tiler.io  # noqa: F401

        self.tile_size = tile_size
        self.max_zoom = max_zoom
        self.open_sources = open_sources
        self.open_per_source = open_per_source
        self._empty = _empty_png(tile_size)
        self._lock = threading.Lock()
        self._idle: OrderedDict[tuple[str, tuple[int, int]], list[Any]] = OrderedDict()
        self._ranges = lru_cache(maxsize=64)(self._range_of)
        self._sources = lru_cache(maxsize=64)(self._source_of)

    @staticmethod
    def _source_of(path: str, signature: tuple[int, int] | None = None) -> str:
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

    def _range_of(self, path: str, signature: tuple[int, int] | None = None) -> tuple[tuple[float, float], ...] | None:
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

    @contextmanager
    def _reader(self, source: str, signature: tuple[int, int]) -> Iterator[Any]:
        """An open reader of *source* for this request: borrowed from the pool (or opened), then
        put back, so a dataset is opened once and used by one thread at a time."""
        from rio_tiler.io import Reader

        key = (source, signature)
        with self._lock:
            idle = self._idle.get(key)
            reader = idle.pop() if idle else None
        if reader is None:
            reader = Reader(source)
        try:
            yield reader
        except BaseException:
            reader.close()  # a reader that failed mid-read is not reused
            raise
        with self._lock:
            self._idle.setdefault(key, []).append(reader)
            self._idle.move_to_end(key)
            extra = self._idle[key][self.open_per_source:]
            del self._idle[key][self.open_per_source:]
            while len(self._idle) > self.open_sources:
                extra.extend(self._idle.popitem(last=False)[1])
        for old in extra:
            old.close()

    def close(self) -> None:
        """Close every idle dataset (the app's shutdown)."""
        with self._lock:
            readers = [r for rs in self._idle.values() for r in rs]
            self._idle.clear()
        for reader in readers:
            reader.close()

    def render(self, path: str | None, z: int, x: int, y: int) -> bytes:
        """A PNG tile, or a transparent tile outside the image."""
        return self.render_tile(path, z, x, y, fmt="png")[0]

    def render_tile(self, path: str | None, z: int, x: int, y: int, *,
                    fmt: TileFormat = "auto") -> tuple[bytes, str]:
        """``(bytes, media type)`` of tile *z/x/y*: see :func:`encode_tile` for *fmt*.

        Raises
        ------
        InputNotFoundError
            No imagery on the round, or its file is missing.
        RasterError
            The tile is outside the tile grid.
        """
        import rasterio
        from rio_tiler.errors import TileOutsideBounds

        if not path:
            raise InputNotFoundError("this round has no imagery of that date",
                                     hint="set the round's before/after COGs")
        if not (0 <= z <= self.max_zoom and 0 <= x < 2**z and 0 <= y < 2**z):
            raise RasterError(f"tile {z}/{x}/{y} is outside the tile grid")
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or not Path(path).is_file():
            raise InputNotFoundError(f"the round's imagery file is missing: {Path(path).name}")
        signature = (st.st_size, st.st_mtime_ns)
        ranges = self._ranges(path, signature)
        with rasterio.Env(**GDAL_TILE_OPTIONS), self._reader(self._sources(path, signature), signature) as src:
            count = src.dataset.count
            indexes = (1, 2, 3) if count >= 3 else (1,)
            try:
                img = src.tile(x, y, z, tilesize=self.tile_size, indexes=indexes)
            except TileOutsideBounds:
                return self._empty, "image/png"
        if ranges is not None:
            img = img.rescale(in_range=[ranges[i - 1] for i in indexes])
        data = np.asarray(img.data)
        if data.dtype != np.uint8:
            data = np.clip(data, 0, 255).astype(np.uint8)
        return encode_tile(data, np.asarray(img.mask), fmt=fmt)
