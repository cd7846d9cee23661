"""One analysis grid (分析格网) for both dates, and reading a window of a scene onto it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuban.errors import NoOverlapError, UsageError
from tuban.raster.scene import BandRef, Scene

__all__ = ["EdgeColumns", "Grid", "Window", "analysis_grid", "block_shape", "bytes_per_pixel", "close_datasets",
           "read_block"]


@dataclass(frozen=True)
class Window:
    """A pixel window ``[row, row + height) × [col, col + width)`` of a grid."""

    row: int
    col: int
    height: int
    width: int


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: ``crs`` (WKT or EPSG text), affine ``transform`` (6 numbers), shape."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def affine(self):
        from affine import Affine

        return Affine(*self.transform)

    @property
    def res(self) -> tuple[float, float]:
        return abs(self.transform[0]), abs(self.transform[4])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.transform
        x2, y2 = c + a * self.width, f + e * self.height
        return min(c, x2), min(f, y2), max(c, x2), max(f, y2)

    def window_transform(self, w: Window) -> tuple[float, float, float, float, float, float]:
        a, b, c, d, e, f = self.transform
        return (a, b, c + a * w.col + b * w.row, d, e, f + d * w.col + e * w.row)


def _band_grid(ref: BandRef) -> Grid:
    import rasterio

    with rasterio.open(ref.path) as src:
        if src.crs is None:
            from tuban.errors import MissingCRSError

            raise MissingCRSError(f"{ref.path} has no CRS", hint="add a georeference (gdal_edit.py -a_srs) first")
        return Grid(src.crs.to_wkt(), tuple(src.transform)[:6], src.width, src.height)


def _bounds_in(grid: Grid, crs: str) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    return transform_bounds(grid.crs, crs, *grid.bounds, densify_pts=21)


def analysis_grid(
    before: Scene,
    after: Scene,
    *,
    resolution: float | None = None,
    crs: str | None = None,
    min_overlap: float = 0.25,
) -> Grid:
    """The grid both dates are resampled onto.

    Default: the before-date's finest band grid, cropped to the part the after-date covers.
    ``resolution`` / ``crs`` override. Dates whose overlap is below ``min_overlap`` of the
    before-date's footprint raise :class:`NoOverlapError`.
    """
    from rasterio.crs import CRS

    grids = [_band_grid(r) for r in before.bands.values()]
    ref = min(grids, key=lambda g: g.res[0] * g.res[1])
    dst_crs = CRS.from_user_input(crs).to_wkt() if crs else ref.crs
    b0 = _bounds_in(ref, dst_crs)
    after_grids = [_band_grid(r) for r in after.bands.values()]
    a0 = _bounds_in(min(after_grids, key=lambda g: g.res[0] * g.res[1]), dst_crs)
    ix0, iy0, ix1, iy1 = max(b0[0], a0[0]), max(b0[1], a0[1]), min(b0[2], a0[2]), min(b0[3], a0[3])
    area_b = (b0[2] - b0[0]) * (b0[3] - b0[1])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    if inter <= 0:
        raise NoOverlapError(f"the dates do not overlap: before {tuple(round(v, 6) for v in b0)}, "
                             f"after {tuple(round(v, 6) for v in a0)}", hint="check that both scenes cover the AOI")
    if inter / area_b < min_overlap:
        raise NoOverlapError(f"the dates overlap on {inter / area_b:.1%} of the before scene, below {min_overlap:.0%}",
                             hint="pick scenes of the same footprint")
    if crs is None and resolution is None:
        a, _, c, _, e, f = ref.transform
        c0 = max(0, math.floor((ix0 - c) / a + 1e-6))
        c1 = min(ref.width, math.ceil((ix1 - c) / a - 1e-6))
        r0 = max(0, math.floor((iy1 - f) / e + 1e-6))
        r1 = min(ref.height, math.ceil((iy0 - f) / e - 1e-6))
        return Grid(ref.crs, (a, 0.0, c + a * c0, 0.0, e, f + e * r0), c1 - c0, r1 - r0)
    res = resolution or ref.res[0]
    if res <= 0:
        raise UsageError(f"--resolution must be positive, got {res}")
    w, h = max(1, round((ix1 - ix0) / res)), max(1, round((iy1 - iy0) / res))
    return Grid(dst_crs, (res, 0.0, ix0, 0.0, -res, iy1), w, h)


def _same_grid(src, grid: Grid) -> bool:
    if src.width < 1 or src.crs is None:
        return False
    t = tuple(src.transform)[:6]
    if not all(math.isclose(x, y, rel_tol=0, abs_tol=1e-9 * max(1.0, abs(y))) for x, y in zip(t, grid.transform,
                                                                                            strict=True)):
        return False
    return src.width == grid.width and src.height == grid.height and src.crs.to_wkt() == grid.crs


class BufferPool:
    """Window-sized arrays handed back after use and given out again (thread-safe).

    A serial detection reads every tile into the same few shapes; a fresh 10 MB array per date and tile
    costs its pages again (the kernel zeroes each new page: ~1 s of CPU at 16k²). At most ``per_shape``
    arrays of each shape and dtype are kept, so memory stays bounded by the window, not the scene.
    """

    def __init__(self, per_shape: int = 4) -> None:
        import threading

        self.per_shape = per_shape
        self._free: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` with undefined contents (as ``np.empty``)."""
        key = (tuple(shape), np.dtype(dtype).str)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return np.empty(shape, dtype)

    def clear(self) -> None:
        """Let go of every array held."""
        with self._lock:
            self._free.clear()

    def give(self, *arrays: np.ndarray) -> None:
        """Hand back arrays from :meth:`take` that nothing uses any more (others are ignored)."""
        with self._lock:
            for a in arrays:
                if a.base is not None or not a.flags.c_contiguous:
                    continue  # a view: not ours to keep
                free = self._free.setdefault((a.shape, a.dtype.str), [])
                if len(free) < self.per_shape:
                    free.append(a)


class EdgeColumns:
    """The pixel columns just left of band edges, kept by one date's reader for the next band of tiles.

    A serial run visits tiles in vertical bands (:func:`tuban.detect.tiles.visit_order`) whose windows,
    with cores shifted left by the halo (:func:`tuban.detect.tiles.tile_windows`), stop at the band's right
    edge and reach ``width`` (twice the halo) columns into the band on their left. Those columns were
    decoded with that band, and GDAL's cache no longer holds their blocks when the next band needs them
    (decoding them again cost ~18 % more decoding at 16k²); so the windows ending at an edge keep its
    ``width`` columns here, and the windows starting left of an edge take them from here.

    Kept in an unnamed temporary file (the columns of an edge grow with the scene's height: 31 MB per
    date at 32k²; on disk the run's memory stays bounded by the tile); where the temporary directory
    cannot take them, in memory. Not thread-safe: one instance per reader thread, which reads its tiles
    in the visiting order (every window of a band before any of the next)."""

    def __init__(self, edges: tuple[int, ...], width: int, height: int) -> None:
        self.edges, self.width, self.height = tuple(edges), int(width), int(height)
        self._held: dict[int, _Kept] = {}

    def close(self) -> None:
        for h in self._held.values():
            h.close()
        self._held.clear()

    def __enter__(self) -> EdgeColumns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def left_part(self, window: Window) -> tuple[int, int]:
        """``(edge, k)``: the first ``k`` columns of ``window`` lie left of ``edge``, the edge of the band
        the window belongs to (the last edge before its right end), and can come from here (``k`` 0:
        nothing to take)."""
        end = window.col + window.width
        left = [e for e in self.edges if e < end]
        if not left:
            return 0, 0
        k = left[-1] - window.col
        return left[-1], k if 0 < k <= self.width else 0

    def take(self, window: Window, out: np.ndarray) -> int:
        """Fill the columns of ``out`` (bands, window rows, window columns) left of the window's band
        edge from what was kept; returns how many (0: nothing kept for these rows: read them)."""
        e, k = self.left_part(window)
        held = self._held.get(e) if k else None
        r0, r1 = window.row, window.row + window.height
        if held is None or held.row_shape != (out.shape[0], self.width) or held.dtype != out.dtype \
                or not held.kept[r0:r1].all():
            return 0
        for old in [x for x in self._held if x < e]:  # an earlier band's edge: never needed again
            self._held.pop(old).close()
        out[:, :, :k] = held.rows(r0, r1)[:, :, self.width - k :].transpose(1, 0, 2)
        return k

    def keep(self, window: Window, data: np.ndarray) -> None:
        """Keep the ``width`` columns left of an edge the window ends at (every row of ``data``)."""
        end = window.col + window.width
        if end not in self.edges or window.col > end - self.width:
            return
        rows = np.ascontiguousarray(data[:, :, data.shape[2] - self.width :].transpose(1, 0, 2))
        held = self._held.get(end)
        if held is None or held.row_shape != rows.shape[1:] or held.dtype != rows.dtype:
            if held is not None:
                held.close()
            held = self._held[end] = _Kept(self.height, rows.shape[1:], rows.dtype)
        held.put(window.row, rows)


class _Kept:
    """Rows (row, bands, columns) of one edge of :class:`EdgeColumns`: in an unnamed temporary file, or in
    memory where the temporary directory cannot take them (missing, read-only, full)."""

    def __init__(self, height: int, row_shape: tuple[int, ...], dtype: np.dtype) -> None:
        import tempfile

        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        self.kept = np.zeros(height, bool)
        self.array: np.ndarray | None = None
        try:
            self.file: Any = tempfile.TemporaryFile(prefix="tuban-edge-")  # noqa: SIM115 (closed by close())
        except OSError:
            self.file, self.array = None, np.empty((height, *self.row_shape), self.dtype)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.array = None

    def put(self, r0: int, rows: np.ndarray) -> None:
        if self.file is not None:
            try:
                n = os.pwrite(self.file.fileno(), rows.data, r0 * self.row_bytes)
                if n != rows.nbytes:
                    raise OSError(f"short write of edge columns ({n} of {rows.nbytes} bytes)")
            except OSError:  # e.g. the disk filled up: from now on in memory, with what the file holds
                self._to_memory()
        if self.array is not None:
            self.array[r0 : r0 + len(rows)] = rows
        self.kept[r0 : r0 + len(rows)] = True

    def rows(self, r0: int, r1: int) -> np.ndarray:
        if self.array is not None:
            return self.array[r0:r1]
        out = np.empty((r1 - r0, *self.row_shape), self.dtype)
        n = os.preadv(self.file.fileno(), [out.data], r0 * self.row_bytes)
        if n != out.nbytes:
            raise OSError(f"short read of kept edge columns ({n} of {out.nbytes} bytes)")
        return out

    def _to_memory(self) -> None:
        arr = np.zeros((len(self.kept), *self.row_shape), self.dtype)
        try:
            os.preadv(self.file.fileno(), [arr.data], 0)  # rows written so far (a short file leaves zeros: not kept)
        except OSError:
            self.kept[:] = False  # unreadable: what was kept is read from the files again
        self.file.close()
        self.file, self.array = None, arr


_OPEN: dict[tuple[int, int, str, int, int, str], object] = {}
_OPEN_MAX = 32
GDAL_CACHE_BYTES = 256 * 1024 * 1024  # GDAL's decoded-block cache while reading


def _dataset(path: str, threads: str | int = 1):
    """An open dataset for ``path``, cached per process, thread and ``threads``.

    Keeping the dataset open keeps GDAL's block cache warm: tiles read with a halo share compressed
    blocks with their neighbours, which are then decoded once instead of up to four times.
    ``threads`` (``GDAL_NUM_THREADS``) is in effect when the file is opened: GeoTIFF takes its decoding
    threads at open time, not at each read (a dataset opened outside that setting decodes on the calling
    thread alone, whatever the setting around its reads).
    """
    import os
    import threading

    import rasterio

    st = os.stat(path)
    me = threading.get_ident()
    key = (os.getpid(), me, path, st.st_mtime_ns, st.st_size, str(threads))
    src = _OPEN.get(key)
    if src is None or src.closed:  # type: ignore[attr-defined]
        alive = {t.ident for t in threading.enumerate()}
        _close([k for k in list(_OPEN) if k[1] not in alive])  # opened by threads that have ended
        mine = [k for k in list(_OPEN) if k[1] == me]
        if len(mine) >= _OPEN_MAX:  # only this thread's own: another thread may be reading from its datasets
            _close(mine[: _OPEN_MAX // 2])
        with rasterio.Env(GDAL_NUM_THREADS=str(threads)):
            src = rasterio.open(path)
        _OPEN[key] = src
    return src


def close_datasets(*, this_thread: bool = False) -> None:
    """Close the datasets :func:`read_block` keeps open in this process (``this_thread``: only those this
    thread opened, e.g. when a reader thread is about to end)."""
    import threading

    me = threading.get_ident()
    _close([k for k in list(_OPEN) if not this_thread or k[1] == me])


def _close(keys: list[tuple[int, int, str, int, int, str]]) -> None:
    """Close and forget these open datasets (one another thread already closed is skipped)."""
    for k in keys:
        src = _OPEN.pop(k, None)
        if src is not None:
            src.close()  # type: ignore[attr-defined]


def block_shape(scene: Scene, grid: Grid) -> tuple[int, int] | None:
    """The internal block shape ``(rows, cols)`` shared by every band file of ``scene`` lying on ``grid``
    itself (no resampling), or ``None`` (files off the grid, or blocks of different shapes)."""
    import rasterio

    shapes: set[tuple[int, int]] = set()
    for path in {b.path for b in scene.bands.values()}:
        with rasterio.open(path) as src:
            if not _same_grid(src, grid):
                return None
            shapes.update((int(s[0]), int(s[1])) for s in src.block_shapes)
    return shapes.pop() if len(shapes) == 1 else None


def bytes_per_pixel(scene: Scene) -> int:
    """Bytes per pixel of every file of ``scene`` together (all bands: GDAL caches every band of a
    pixel-interleaved block it decodes)."""
    import rasterio

    total = 0
    for path in {b.path for b in scene.bands.values()}:
        with rasterio.open(path) as src:
            total += sum(np.dtype(d).itemsize for d in src.dtypes)
    return total


def read_block(scene: Scene, roles: tuple[str, ...], grid: Grid, window: Window, *, threads: str | int = 1,
               resampling: str | None = None, scaled: bool = True, mask_saturated: bool = True,
               keep_u16: bool = False, buffers: BufferPool | None = None, edges: EdgeColumns | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Read ``roles`` of ``scene`` on ``window`` of ``grid``.

    Parameters
    ----------
    threads
        ``GDAL_NUM_THREADS`` while decoding (``"ALL_CPUS"`` or a number).
    resampling
        ``None``: bilinear, or average when the source is much coarser… finer than the grid; ``"nearest"``
        for flags (QA bands).
    scaled
        multiply by the scene's reflectance scale (off for QA bands).
    mask_saturated
        integer pixels at the top of their data type (saturated) are not valid.
    keep_u16
        when every file is uint16 on the grid itself (no resampling) and the fused kernels are available,
        return the DN as uint16 unscaled (the caller multiplies by the scene's scale, in float32, as here):
        no float32 copy is written. Otherwise float32 as usual; check ``data.dtype``.
    buffers, edges
        with ``keep_u16``: where the DN are read into (:class:`BufferPool`), and the columns kept at band
        edges (:class:`EdgeColumns`, one reader's).

    Returns
    -------
    data : float32 array (len(roles), h, w)
        reflectance when the scene's scale is known (and ``scaled``), else DN.
    valid : bool array (h, w)
        observed in every band (not nodata, not saturated, inside the footprint).
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window as RWindow

    h, w = window.height, window.width
    if keep_u16:
        u16 = _read_u16(scene, roles, grid, window, threads=threads, mask_saturated=mask_saturated,
                        buffers=buffers, edges=edges)
        if u16 is not None:
            return u16
    out = np.empty((len(roles), h, w), np.float32)
    valid = np.ones((h, w), bool)
    rw = RWindow(window.col, window.row, w, h)
    by_path: dict[str, list[int]] = {}
    for i, role in enumerate(roles):
        by_path.setdefault(scene.bands[role].path, []).append(i)
    # a fixed block cache: neighbouring tiles reuse decoded blocks, and memory does not grow with the scene
    scale = float(scene.scale) if scaled and scene.scale is not None else 1.0
    opts: dict[str, str | int] = {"GDAL_NUM_THREADS": str(threads)}
    if GDAL_CACHE_BYTES:
        opts["GDAL_CACHEMAX"] = GDAL_CACHE_BYTES
    with rasterio.Env(**opts):
        for path, slots in by_path.items():
            # one read per file: pixel-interleaved files decode every band of a block at once
            indexes = [scene.bands[roles[i]].index for i in slots]
            src = _dataset(path, threads)
            nodata = src.nodata
            if nodata is None and scene.zero_is_nodata:
                nodata = 0
            if _same_grid(src, grid):
                arr = src.read(indexes, window=rw, boundless=False)
                if arr.dtype == np.uint16 and _fused_ok():  # one pass: convert, scale, nodata, saturation
                    from tuban.raster import fused

                    fused.convert_u16(arr, out, slots, valid, nodata=nodata, mask_max=mask_saturated and (
                        nodata is None or nodata != 65535), scale=scale)
                    continue
                ok = np.ones((h, w), bool) if nodata is None else np.all(arr != nodata, axis=0)
            else:
                coarser = src.res[0] > 0 and grid.res[0] / max(src.res[0], 1e-12) > 1.5
                if src.crs is not None and src.crs.to_wkt() != grid.crs:
                    coarser = False
                rs = Resampling.average if coarser else Resampling.bilinear
                if resampling is not None:
                    rs = Resampling[resampling]
                with WarpedVRT(src, crs=grid.crs, transform=grid.affine, width=grid.width, height=grid.height,
                               resampling=rs, src_nodata=nodata, nodata=nodata,
                               add_alpha=nodata is None) as vrt:
                    arr = vrt.read(indexes, window=rw)
                    ok = np.all(vrt.read_masks(indexes, window=rw) > 0, axis=0)
            if np.issubdtype(arr.dtype, np.integer):
                if mask_saturated and arr.dtype.itemsize >= 2 and (nodata is None
                                                                   or nodata != np.iinfo(arr.dtype).max):
                    from tuban.raster.masks import saturation_mask

                    ok &= ~saturation_mask(arr, max_value=np.iinfo(arr.dtype).max)
            else:
                ok &= np.all(np.isfinite(arr), axis=0)
            out[slots] = arr
            if scale != 1.0:
                out[slots] *= np.float32(scale)
            valid &= ok
    return out, valid


def _read_u16(scene: Scene, roles: tuple[str, ...], grid: Grid, window: Window, *, threads: str | int,
              mask_saturated: bool, buffers: BufferPool | None = None, edges: EdgeColumns | None = None
              ) -> tuple[np.ndarray, np.ndarray] | None:
    """uint16 DN and validity, or ``None`` when some file is not uint16 on the grid (or no fused kernels).

    ``edges``: columns left of the window's band edge come from there when it holds them (the rest is
    decoded), and the columns left of an edge the window ends at are kept there (:class:`EdgeColumns`)."""
    import rasterio
    from rasterio.windows import Window as RWindow

    if not _fused_ok():
        return None
    paths = {scene.bands[r].path for r in roles}
    srcs = {p: _dataset(p, threads) for p in paths}
    if not all(s.dtypes[0] == "uint16" and set(s.dtypes) == {"uint16"} and _same_grid(s, grid)
               for s in srcs.values()):
        return None
    from tuban.raster import fused

    h, w = window.height, window.width
    out = buffers.take((len(roles), h, w), np.uint16) if buffers is not None else np.empty((len(roles), h, w),
                                                                                           np.uint16)
    k = edges.take(window, out) if edges is not None else 0  # columns kept from the band on the left
    valid = np.ones((h, w), bool)
    rw = RWindow(window.col + k, window.row, w - k, h)
    by_path: dict[str, list[int]] = {}
    for i, role in enumerate(roles):
        by_path.setdefault(scene.bands[role].path, []).append(i)
    opts: dict[str, object] = {"GDAL_NUM_THREADS": str(threads)}
    if GDAL_CACHE_BYTES:
        opts["GDAL_CACHEMAX"] = GDAL_CACHE_BYTES
    with rasterio.Env(**opts):
        for path, slots in by_path.items():
            src = srcs[path]
            nodata = src.nodata
            if nodata is None and scene.zero_is_nodata:
                nodata = 0
            indexes = [scene.bands[roles[i]].index for i in slots]
            if slots == list(range(slots[0], slots[0] + len(slots))):  # read straight into place
                part = out[slots[0] : slots[0] + len(slots)]  # a view (out[slots] would copy the bands)
                src.read(indexes, window=rw, out=part[:, :, k:])
            else:
                out[slots, :, k:] = src.read(indexes, window=rw)
                part = out[slots]
            fused.valid_u16(part, valid, nodata=nodata,
                            mask_max=mask_saturated and (nodata is None or nodata != 65535))
    if edges is not None:
        edges.keep(window, out)
    return out, valid


def _fused_ok() -> bool:
    from tuban.raster import fused

    return fused.available()
