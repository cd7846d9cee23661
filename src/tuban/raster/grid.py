"""One analysis grid (分析格网) for both dates, and reading a window of a scene onto it."""

from __future__ import annotations

import math
import mmap
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuban.errors import InputError, NoOverlapError, UsageError
from tuban.raster.scene import BandRef, Scene

__all__ = ["EdgeColumns", "Grid", "Window", "analysis_grid", "block_shape", "cached_bytes", "close_datasets",
           "coverage", "covering_window", "finest_grid",
           "give_back", "pooled_empty",
           "read_block", "small_pages"]


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
    from tuban.raster.scene import quiet_open

    with quiet_open(ref.path) as src:
        if src.crs is None:
            from tuban.errors import MissingCRSError

            what = "no CRS: patches need map coordinates (QAREA in ha, overlays)"
            hint = ("georeference it first: gdal_translate -a_srs EPSG:32650 -a_ullr ULX ULY LRX LRY in.png "
                    "out.tif, or gdal_edit.py -a_srs for a GeoTIFF")
            if src.rpcs is not None:  # a Level-1A scene (GF-1/2/6 PMS …): sensor geometry, not map geometry
                what = "RPCs but no map grid: it is not orthorectified, and dates must be compared on the ground"
                hint = ("orthorectify it first, with a DEM: gdalwarp -rpc -to RPC_DEM=dem.tif -t_srs EPSG:32650 "
                        "-r bilinear in.tiff out.tif (both dates the same way)")
            elif src.gcps[0]:
                what = "ground control points but no map grid"
                hint = "warp it onto a map grid first: gdalwarp -t_srs EPSG:32650 -r bilinear in.tif out.tif"
            raise MissingCRSError(f"{ref.path} has {what}", hint=hint)
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
    from rasterio.errors import CRSError

    ref = finest_grid(before)
    try:
        dst_crs = CRS.from_user_input(crs).to_wkt() if crs else ref.crs
    except CRSError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:
        raise UsageError(f"--crs {crs!r} is not a CRS PROJ knows: {failure}",
                         hint="an EPSG code such as EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E) or EPSG:32650")
    b0 = _bounds_in(ref, dst_crs)
    a0 = _bounds_in(finest_grid(after), dst_crs)
    both = _intersection(b0, a0)
    area_b, inter = _area(b0), _area(both)
    if inter <= 0:
        raise NoOverlapError(f"the dates do not overlap: before {tuple(round(v, 6) for v in b0)}, "
                             f"after {tuple(round(v, 6) for v in a0)}", hint="check that both scenes cover the AOI")
    if inter / area_b < min_overlap:
        raise NoOverlapError(f"the dates overlap on {inter / area_b:.1%} of the before scene, below {min_overlap:.0%}",
                             hint="pick scenes of the same footprint")
    if crs is None and resolution is None:
        a, _, c, _, e, f = ref.transform
        win = covering_window(ref, both)  # the before grid's pixels over the overlap
        return Grid(ref.crs, (a, 0.0, c + a * win.col, 0.0, e, f + e * win.row), win.width, win.height)
    ix0, iy0, ix1, iy1 = both
    res = ref.res[0] if resolution is None else resolution
    if res <= 0:
        raise UsageError(f"--resolution must be positive, got {res}")
    w, h = max(1, round((ix1 - ix0) / res)), max(1, round((iy1 - iy0) / res))
    return Grid(dst_crs, (res, 0.0, ix0, 0.0, -res, iy1), w, h)


def finest_grid(scene: Scene) -> Grid:
    """The grid of ``scene``'s finest band."""
    return min((_band_grid(r) for r in scene.bands.values()), key=lambda g: g.res[0] * g.res[1])


Bounds = tuple[float, float, float, float]


def _intersection(a: Bounds, b: Bounds) -> Bounds:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def _area(b: Bounds) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def coverage(scene: Scene, grid: Grid) -> float:
    """The share of ``grid``'s extent that ``scene``'s finest band covers (footprints as bounding boxes)."""
    return _area(_intersection(_bounds_in(finest_grid(scene), grid.crs), grid.bounds)) / max(_area(grid.bounds), 1e-300)


def _same_grid(src, grid: Grid) -> bool:
    if src.width < 1 or src.crs is None:
        return False
    t = tuple(src.transform)[:6]
    if not all(math.isclose(x, y, rel_tol=0, abs_tol=1e-9 * max(1.0, abs(y))) for x, y in zip(t, grid.transform,
                                                                                            strict=True)):
        return False
    return src.width == grid.width and src.height == grid.height and src.crs.to_wkt() == grid.crs


def _offset_on(src, grid: Grid) -> tuple[int, int] | None:
    """``(row, col)`` of the grid's pixel (0, 0) among ``src``'s pixels when the grid is the file's own pixel
    grid or a window inside it (the before-date's grid cropped to the after-date's footprint), so that a grid
    window is a file window read as it is; None otherwise."""
    if _same_grid(src, grid):
        return 0, 0
    nest = _nesting(src, grid)
    if nest is None or nest.k != 1 or nest.dx or nest.dy or nest.row < 0 or nest.col < 0:
        return None
    if nest.row + grid.height > src.height or nest.col + grid.width > src.width:
        return None
    return nest.row, nest.col


def covering_window(grid: Grid, bounds: tuple[float, float, float, float], *, margin: int = 0) -> Window:
    """The window of ``grid`` covering ``bounds`` (x0, y0, x1, y1 in the grid's CRS) and ``margin`` pixels
    more on each side, clipped to the grid. Raises :class:`NoOverlapError` when ``bounds`` miss the grid."""
    a, _, c, _, e, f = grid.transform
    x0, y0, x1, y1 = bounds
    c0, c1 = math.floor((x0 - c) / a + 1e-6) - margin, math.ceil((x1 - c) / a - 1e-6) + margin
    r0, r1 = math.floor((y1 - f) / e + 1e-6) - margin, math.ceil((y0 - f) / e - 1e-6) + margin
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, grid.width), min(r1, grid.height)
    if c1 <= c0 or r1 <= r0:
        raise NoOverlapError(f"the area {tuple(round(v, 6) for v in bounds)} lies outside the dates' common "
                             f"area {tuple(round(v, 6) for v in grid.bounds)}",
                             hint="check the AOI and its CRS (--aoi-crs gcj02 for GCJ-02 boundaries)")
    return Window(r0, c0, r1 - r0, c1 - c0)


@dataclass(frozen=True)
class _Nest:
    """A source whose pixels are ``k`` × ``k`` pixels of the grid, in the same CRS, north-up, with the grid's
    pixel (0, 0) ``col`` and ``row`` grid pixels from the source's top-left corner (Sentinel-2's 20 m bands
    on a 10 m grid: k = 2; a file on the grid itself, or a crop of it: k = 1). With k = 1 the grid may also
    be shifted by a fraction of a pixel, ``dx`` and ``dy`` (0 ≤ d < 1) more (two dates of an orthorectified
    product, each on its own pixel grid)."""

    k: int
    col: int
    row: int
    dx: float = 0.0
    dy: float = 0.0


def _nesting(src, grid: Grid) -> _Nest | None:
    """How ``src``'s pixel grid nests the analysis grid (:class:`_Nest`), or ``None`` (another CRS, a rotation,
    a resolution that is not an integer multiple of the grid's, a coarser one with pixel edges off the grid's).
    At the grid's own pixel size the edges may be off by a fraction of a pixel (``dx``, ``dy``)."""
    if src.width < 1 or src.crs is None or src.crs.to_wkt() != grid.crs:
        return None
    a_s, b_s, c_s, d_s, e_s, f_s = tuple(src.transform)[:6]
    a, b, c, d, e, f = grid.transform
    if b_s or d_s or b or d or a <= 0 or e >= 0 or a_s <= 0 or e_s >= 0:
        return None
    k = round(a_s / a)
    if k < 1 or not math.isclose(a_s, k * a, rel_tol=1e-9) or not math.isclose(e_s, k * e, rel_tol=1e-9):
        return None
    ox, oy = (c - c_s) / a, (f - f_s) / e
    if abs(ox - round(ox)) <= 1e-6 and abs(oy - round(oy)) <= 1e-6:
        return _Nest(k, round(ox), round(oy))
    if k != 1:
        return None
    # the same pixel size, shifted by a fraction of a pixel: bilinear between the four source pixels around
    # each grid pixel's centre (a whole-pixel part within 1e-6 of a pixel counts as whole)
    col, row = math.floor(ox + 1e-6), math.floor(oy + 1e-6)
    dx, dy = max(ox - col, 0.0), max(oy - row, 0.0)
    return _Nest(1, col, row, dx if dx > 1e-6 else 0.0, dy if dy > 1e-6 else 0.0)


def _phases(start: int, n: int, off: int, k: int, nearest: bool, frac: float = 0.0
            ) -> list[tuple[int, int, int, float]]:
    """Along one axis of a window of ``n`` grid pixels from ``start``: for each residue of the grid pixel
    modulo ``k``, ``(first output, count, source pixel, weight)``: its outputs ``first, first + k, …`` lie
    between source pixels ``i, i + 1, …`` and the next ones, the next one weighing ``weight`` (bilinear:
    the centres at ``(x + 0.5) / k - 0.5`` source pixels; ``nearest`` or k = 1: the source pixel alone).
    ``frac`` (k = 1): the grid is shifted that fraction of a pixel more: its centres lie ``frac`` past the
    source's (bilinear: weight ``frac``; ``nearest``: the pixel holding the centre)."""
    x0 = start + off  # grid pixels from the source's edge
    if k == 1 and frac:
        if nearest:
            return [(0, n, x0 + (frac >= 0.5), 0.0)]
        return [(0, n, x0, frac)]
    out = []
    for r in range(k):
        j0 = (r - x0) % k
        if j0 >= n:
            continue
        x = x0 + j0
        if nearest or k == 1:
            i0, wgt = x // k, 0.0
        else:
            u = (x + 0.5) / k - 0.5
            i0 = math.floor(u)
            wgt = u - i0
        out.append((j0, (n - j0 + k - 1) // k, i0, wgt))
    return out


def _along(src: np.ndarray, phases: list[tuple[int, int, int, float]], n: int, k: int, lo: int, axis: int
           ) -> np.ndarray:
    """``src`` interpolated along ``axis`` (-1 or -2) to the ``n`` outputs of ``phases`` (:func:`_phases`),
    its index 0 along that axis being source pixel ``lo``. float32 in, float32 out; booleans: true where
    every source pixel with a weight is."""
    shape = list(src.shape)
    shape[axis] = n
    out = np.empty(shape, src.dtype)

    def part(arr: np.ndarray, start: int, stop: int | None, step: int = 1) -> np.ndarray:
        return arr[..., start:stop:step] if axis == -1 else arr[..., start:stop:step, :]

    for j0, cnt, i0, wgt in phases:
        a = i0 - lo
        dst, first = part(out, j0, None, k), part(src, a, a + cnt)
        if wgt == 0:
            dst[...] = first
        elif src.dtype == np.bool_:
            np.logical_and(first, part(src, a + 1, a + 1 + cnt), out=dst)
        else:  # in float32: exact for k = 2 (weights ¼ and ¾ of integers below 2¹⁶); float64 for other weights
            t = src.dtype.type
            np.multiply(first, t(1 - wgt), out=dst)
            dst += part(src, a + 1, a + 1 + cnt) * t(wgt)
    return out


def _taps(phases: list[tuple[int, int, int, float]], n: int, k: int, lo: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel along one axis, the first source pixel (from ``lo``) and the next one's weight, as
    :func:`_along` takes them from ``phases``."""
    idx, wts = np.empty(n, np.int64), np.empty(n, np.float64)
    for j0, cnt, i0, wgt in phases:
        idx[j0::k] = np.arange(i0 - lo, i0 - lo + cnt)
        wts[j0::k] = wgt
    return idx, wts


def _read_nested(src, indexes: list[int], window: Window, nest: _Nest, *, nodata: float | None, mask_max: bool,
                 nearest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Bands ``indexes`` of ``src`` on ``window`` of the grid it nests (:func:`_nesting`), and their validity.

    Bilinear between the source pixels around each grid pixel's centre (``nearest``: the source pixel holding
    it), source edges repeated, integers rounded half up: what GDAL's warper gives (the same values, bit for
    bit, for a uint16 20 m band on a 10 m grid: ``tests/raster/test_nested_read.py``), without its per-pixel
    transformer (the warper took 55 ms for a 1142² window of a 20 m band and its mask). A grid shifted by a
    fraction of a pixel (k = 1, ``dx``, ``dy``) is interpolated in float64: the warper's values within 1 DN
    (it rounds a tie the other way now and then), in one fused pass when numba is there. A grid pixel is valid
    when every source pixel it is made of is (not nodata, not saturated when ``mask_max``) and its centre lies
    in the source. Returns ``(data, valid)``: data in the source's dtype, (bands, h, w); values at invalid
    pixels are undefined."""
    from rasterio.windows import Window as RWindow

    k, h, w = nest.k, window.height, window.width
    rows = _phases(window.row, h, nest.row, k, nearest, nest.dy)
    cols = _phases(window.col, w, nest.col, k, nearest, nest.dx)
    # the source pixels the window needs (before clamping): [lo, hi] along each axis
    lo_r = min(i for _, _, i, _ in rows)
    hi_r = max(i + c - 1 + (wt > 0) for _, c, i, wt in rows)
    lo_c = min(i for _, _, i, _ in cols)
    hi_c = max(i + c - 1 + (wt > 0) for _, c, i, wt in cols)
    r_a, r_b = max(lo_r, 0), min(hi_r, src.height - 1)
    c_a, c_b = max(lo_c, 0), min(hi_c, src.width - 1)
    dtype = np.dtype(src.dtypes[indexes[0] - 1])
    if r_a > r_b or c_a > c_b:  # the window lies outside the source
        return np.zeros((len(indexes), h, w), dtype), np.zeros((h, w), bool)
    s = src.read(indexes, window=RWindow(c_a, r_a, c_b - c_a + 1, r_b - r_a + 1))
    pad = ((0, 0), (r_a - lo_r, hi_r - r_b), (c_a - lo_c, hi_c - c_b))
    src_ok = np.ones(s.shape[1:], bool)
    if nodata is not None:
        src_ok &= np.all(s != nodata, axis=0)
    integer = np.issubdtype(s.dtype, np.integer)
    if mask_max and integer:
        src_ok &= np.all(s != np.iinfo(s.dtype).max, axis=0)
    elif not integer:
        src_ok &= np.all(np.isfinite(s), axis=0)
    if any(p for pair in pad for p in pair):  # source edges repeated
        s = np.pad(s, pad, mode="edge")
        src_ok = np.pad(src_ok, pad[1:], mode="edge")
    # a grid pixel whose centre lies in the source (centres in grid pixels from the source's edge)
    x_r = np.arange(window.row, window.row + h) + (nest.row + nest.dy + 0.5)
    x_c = np.arange(window.col, window.col + w) + (nest.col + nest.dx + 0.5)
    ok = ((x_r >= 0) & (x_r < src.height * k))[:, None] & ((x_c >= 0) & (x_c < src.width * k))[None, :]
    if not src_ok.all():
        ok &= _along(_along(src_ok, cols, w, k, lo_c, -1), rows, h, k, lo_r, -2)
    if nearest or (k == 1 and not (nest.dx or nest.dy)):
        return _along(_along(s, cols, w, k, lo_c, -1), rows, h, k, lo_r, -2), ok
    # float32 is exact for k = 2; a fraction of a pixel takes float64 (GDAL's warper computes in double)
    calc = np.float32 if k > 1 else np.float64
    if _fused_ok():  # one fused pass, the same numbers as the two below
        from tuban.raster import fused

        return fused.bilinear(s, _taps(rows, h, k, lo_r), _taps(cols, w, k, lo_c), wide=calc is np.float64), ok
    out = _along(_along(s.astype(calc), cols, w, k, lo_c, -1), rows, h, k, lo_r, -2)
    if integer:
        out += out.dtype.type(0.5)
        np.floor(out, out=out)
        return out.astype(s.dtype), ok
    return out.astype(np.float32, copy=False), ok


class BufferPool:
    """Arrays handed back after use and given out again, whatever their shape (thread-safe).

    A serial detection computes every tile with the same few arrays: its bands, masks, score, labels. Fresh
    arrays per tile cost their pages again (the kernel zeroes each new page: ~1 s of CPU at 16k² for the
    bands alone), and, freed among GDAL's long-lived cached blocks, they fragment the heap, whose peak then
    grows with the number of tiles, i.e. with the scene. Pooled, they are allocated once.

    Buffers are flat bytes in classes of powers of two, kept per role (what the caller uses them for):
    :meth:`take` gives a view of a free buffer of the role and of the class of the bytes asked (else a new
    one), so arrays of other shapes (the scene's last row and column, the bands' edges) reuse the same buffers.
    A buffer's pages count only once written, so the class's spare bytes cost no memory; roles keep a buffer
    that one use writes in full from serving, in turn, another that writes a little, which would leave every
    buffer of the class written in full. A request no free buffer of its class can serve takes the role's
    free buffer of the next larger class; one that must allocate lets go of the role's free buffers of smaller
    classes. The pool holds at most what was in use at once per role; :meth:`clear` lets go of it all.
    Buffers of :data:`OWN_MAPPING_BYTES` or more are memory mappings of their own (:func:`_anonymous`): one
    let go returns its memory to the system whole, never a hole in the malloc heap.
    """

    def __init__(self) -> None:
        import threading

        # id → buffer, its (role, class), whether its last use was sparse
        self._owned: dict[int, tuple[np.ndarray, tuple[str, int], bool]] = {}
        self._free: dict[tuple[str, int], list[np.ndarray]] = {}  # by role and class (log2 of the size)
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: type[np.generic] | np.dtype, role: str = "", *,
             sparse: bool = False) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` with undefined contents (as ``np.empty``), C-contiguous, from
        the buffers of ``role``.

        ``sparse``: the caller writes only a part of the array, which differs from use to use (a tile's
        labels, around its changes). Its pages then go back to the system when it is given back (a buffer
        of its own mapping: :data:`OWN_MAPPING_BYTES`), so what stays written is one use's part, not what
        every use wrote in turn: kept, that union grew with the number of tiles, i.e. with the scene."""
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        key = (role, max(n - 1, 1).bit_length())  # 2**class ≥ n
        with self._lock:
            free = self._free.get(key)
            if not free:  # a free buffer of the role's next larger class holds it as well
                larger = sorted(k for k, v in self._free.items() if v and k[0] == role and k[1] > key[1])
                free = self._free[larger[0]] if larger else None
            if free:
                buf = free.pop()
                held = self._owned[id(buf)][1]
            else:
                # a larger array than the role had (the scene's wider last tile column): the role's free
                # buffers of smaller classes go, or the pool would hold both sizes, its peak growing with
                # the order tiles come in rather than with what is in use at once
                for k in [k for k in self._free if k[0] == role and k[1] < key[1]]:
                    for b in self._free.pop(k):
                        self._owned.pop(id(b), None)
                buf, held = _anonymous(1 << key[1]), key
            self._owned[id(buf)] = (buf, held, sparse)
        return buf[:n].view(dt).reshape(shape)

    def zeros(self, shape: tuple[int, ...], dtype: type[np.generic] | np.dtype, role: str = "") -> np.ndarray:
        """As :meth:`take`, filled with zeros."""
        out = self.take(shape, dtype, role)
        out.fill(0)
        return out

    def give(self, *arrays: np.ndarray | None) -> None:
        """Hand back arrays from :meth:`take` that nothing uses any more; others (and ``None``) are ignored.

        An array from :meth:`take`, or a view of one: its buffer goes back whole."""
        with self._lock:
            for a in arrays:
                if a is None:
                    continue
                buf = _owner(a)  # a view of one of ours: its buffer goes back whole
                owned = self._owned.get(id(buf))
                if owned is None or owned[0] is not buf:
                    continue
                free = self._free.setdefault(owned[1], [])
                if not any(f is buf for f in free):
                    if owned[2] and (m := _mapping(buf)) is not None:  # sparse: its written pages go
                        m.madvise(mmap.MADV_DONTNEED)
                    free.append(buf)

    def clear(self) -> None:
        """Let go of every buffer (those still in use stay valid: they are ordinary arrays)."""
        with self._lock:
            self._free.clear()
            self._owned.clear()

    @property
    def nbytes(self) -> int:
        """Bytes of every buffer this pool made (in use or free)."""
        with self._lock:
            return sum(b.nbytes for b, _, _ in self._owned.values())


def _owner(a: np.ndarray) -> np.ndarray:
    """The array ``a`` is a view of (``a`` itself if none): numpy points a view's ``base`` at the first array
    of its chain that owns its data or holds a buffer (``np.frombuffer``, whose ``base`` is that buffer)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _mapping(buf: np.ndarray) -> mmap.mmap | None:
    """The memory mapping a buffer of :func:`_anonymous` lies in (``None``: a buffer in the heap)."""
    view = buf.base
    return view.obj if isinstance(view, memoryview) and isinstance(view.obj, mmap.mmap) else None


#: pool buffers of this many bytes or more are mappings of their own (:func:`_anonymous`)
OWN_MAPPING_BYTES = 1 << 20


def _anonymous(nbytes: int) -> np.ndarray:
    """``nbytes`` of uint8 for :class:`BufferPool`: from large classes on, an anonymous memory mapping of
    their own, outside the malloc heap.

    In the heap, a buffer the pool lets go of (a role moving to a larger class: the tiles after a band's
    edge, the scene's last row) left a hole among GDAL's long-lived cached blocks, which later and smaller
    allocations only partly reused: a 32k² run's heap grew ~12 MB at its second band of tiles and kept it.
    A mapping goes back to the system whole when its last view goes, and its pages count only once written
    (as the heap's did). Small classes stay in the heap."""
    if nbytes < OWN_MAPPING_BYTES:
        return np.empty(nbytes, np.uint8)
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE), np.uint8)  # private, as malloc's


_SMALL_PAGES_LOCK = threading.Lock()
_SMALL_PAGES_USERS = 0
_SMALL_PAGES_BEFORE: bool | None = None


@contextmanager
def small_pages() -> Iterator[None]:
    """Within it, numpy does not ask the kernel for transparent huge pages for the arrays it allocates.

    NumPy advises huge pages (``madvise(MADV_HUGEPAGE)``) for every array of 4 MB or more, and where the
    system's THP mode is ``madvise`` (Debian's default) each first touch of such memory then zeroes a whole
    2 MB page. A detection touches most of its memory once (the tile buffers, GDAL's block cache, which
    share the heap with those arrays) and then reuses it, so it gains nothing from huge pages and pays their
    zeroing: a 16k² serial run spent 1.1–1.4 s of system time with them and 0.7–0.85 s without, 2–3 % of
    its wall clock (``docs/decisions/0002``). Process-wide (numpy's switch is global) and nested or
    concurrent uses are counted: the first turns the advice off, the last restores what was there. Only a
    hint: nothing computed depends on it, and without numpy's switch it does nothing.
    """
    global _SMALL_PAGES_USERS, _SMALL_PAGES_BEFORE
    switch = _huge_page_switch()
    with _SMALL_PAGES_LOCK:
        if _SMALL_PAGES_USERS == 0 and switch is not None:
            _SMALL_PAGES_BEFORE = bool(switch(False))
        _SMALL_PAGES_USERS += 1
    try:
        yield
    finally:
        with _SMALL_PAGES_LOCK:
            _SMALL_PAGES_USERS -= 1
            if _SMALL_PAGES_USERS == 0 and switch is not None and _SMALL_PAGES_BEFORE is not None:
                switch(_SMALL_PAGES_BEFORE)
                _SMALL_PAGES_BEFORE = None


def _huge_page_switch():
    """numpy's ``_set_madvise_hugepage`` (it returns the previous setting), or ``None``."""
    from numpy._core import multiarray

    return getattr(multiarray, "_set_madvise_hugepage", None)


def pooled_empty(shape: tuple[int, ...], dtype: type[np.generic] | np.dtype, buffers: BufferPool | None = None,
                 role: str = "", *, sparse: bool = False) -> np.ndarray:
    """``np.empty(shape, dtype)``, from ``buffers`` (their ``role``'s buffers, :meth:`BufferPool.take`) when
    given."""
    return buffers.take(shape, dtype, role, sparse=sparse) if buffers is not None else np.empty(shape, dtype)


def give_back(buffers: BufferPool | None, *arrays: np.ndarray | None) -> None:
    """Hand ``arrays`` back to ``buffers`` (:meth:`BufferPool.give`); nothing to do without a pool."""
    if buffers is not None:
        buffers.give(*arrays)


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
    cannot take them, in memory. Thread-safe, but it pays only when one reader reads its tiles in the
    visiting order (every window of a band before any of the next): a window whose columns are not kept
    decodes them."""

    def __init__(self, edges: tuple[int, ...], width: int, height: int) -> None:
        self.edges, self.width, self.height = tuple(edges), int(width), int(height)
        self._held: dict[int, _Kept] = {}
        self._scratch = BufferPool()  # the rows copied in and out, CHUNK at a time
        self._closed = False
        self._lock = threading.Lock()  # tile tasks on threads of one process may share it

    def close(self) -> None:
        """Let go of what is kept; from now on nothing is kept or given (reads still queued when a run
        stops early decode their columns)."""
        with self._lock:
            self._closed = True
            for h in self._held.values():
                h.close()
            self._held.clear()
            self._scratch.clear()

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
        with self._lock:
            return self._take(window, out)

    def _take(self, window: Window, out: np.ndarray) -> int:
        e, k = self.left_part(window)
        held = self._held.get(e) if k else None
        r0, r1 = window.row, window.row + window.height
        if held is None or held.row_shape != (out.shape[0], self.width) or held.dtype != out.dtype \
                or not held.kept[r0:r1].all():
            return 0
        for old in [x for x in self._held if x < e]:  # an earlier band's edge: never needed again
            self._held.pop(old).close()
        for a in range(r0, r1, self.CHUNK):
            b = min(a + self.CHUNK, r1)
            buf = self._scratch.take((b - a, *held.row_shape), held.dtype)
            rows = held.rows(a, b, buf)  # buf itself, or (kept in memory) a view of the kept rows
            out[:, a - r0 : b - r0, :k] = rows[:, :, self.width - k :].transpose(1, 0, 2)
            self._scratch.give(buf)
        return k

    #: rows copied in and out at a time, through one scratch array (under the lock): a fresh array of a
    #: window's rows (2 MB) per window, freed among longer-lived ones, grew a 32k² run's heap by ~9 MB; one
    #: kept for the run held the tallest window's rows (2 MB a date), a chunk's are 0.2 MB
    CHUNK = 256

    def keep(self, window: Window, data: np.ndarray) -> None:
        """Keep the ``width`` columns left of an edge the window ends at (every row of ``data``)."""
        with self._lock:
            self._keep(window, data)

    def _keep(self, window: Window, data: np.ndarray) -> None:
        end = window.col + window.width
        if self._closed or end not in self.edges or window.col > end - self.width:
            return
        part = data[:, :, data.shape[2] - self.width :].transpose(1, 0, 2)
        held = self._held.get(end)
        if held is None or held.row_shape != part.shape[1:] or held.dtype != part.dtype:
            if held is not None:
                held.close()
            held = self._held[end] = _Kept(self.height, part.shape[1:], part.dtype)
        for a in range(0, part.shape[0], self.CHUNK):
            rows = self._scratch.take(part[a : a + self.CHUNK].shape, part.dtype)
            np.copyto(rows, part[a : a + len(rows)])
            held.put(window.row + a, rows)
            self._scratch.give(rows)


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

    def rows(self, r0: int, r1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``r0`` … ``r1`` (into ``out`` when read from the file)."""
        if self.array is not None:
            return self.array[r0:r1]
        out = np.empty((r1 - r0, *self.row_shape), self.dtype) if out is None else out
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

    # a member of an archive read in place (/vsizip/…/x.zip/member) changes with the archive
    inside = re.match(r"/vsi(?:zip|tar)/(.+?\.(?:zip|tar))(?:/|$)", path, re.IGNORECASE)
    # a raster the scene embeds (/vsimem/, named by its content's hash: raster.scene.embed) never changes
    mtime, size = 0, 0
    if not path.startswith("/vsimem/"):
        st = os.stat(inside.group(1) if inside else path)
        mtime, size = st.st_mtime_ns, st.st_size
    me = threading.get_ident()
    key = (os.getpid(), me, path, mtime, size, str(threads))
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
    itself (no resampling), or ``None`` (files off the grid, or blocks of different shapes). Coarser files on
    the grid's pixel edges (:func:`_nesting`: Sentinel-2's 20 m bands) count when each of their blocks covers
    whole blocks of the others."""
    import rasterio

    shapes: set[tuple[int, int]] = set()
    coarse: set[tuple[int, int]] = set()
    for path in {b.path for b in scene.bands.values()}:
        with rasterio.open(path) as src:
            blocks = {(int(s[0]), int(s[1])) for s in src.block_shapes}
            off = _offset_on(src, grid)
            if off is not None and all(off[0] % r == 0 and off[1] % c == 0 for r, c in blocks):
                shapes.update(blocks)
                continue
            nest = _nesting(src, grid)
            if nest is None or nest.k < 2 or nest.row or nest.col:
                return None
            coarse.update((r * nest.k, c * nest.k) for r, c in blocks)
    if len(shapes) != 1:
        return None
    bh, bw = shapes.pop()
    return (bh, bw) if all(r % bh == 0 and c % bw == 0 for r, c in coarse) else None


def cached_bytes(scene: Scene) -> tuple[int, int]:
    """What ``scene``'s files put in GDAL's block cache, from one opening of each: bytes per pixel of every
    file together (all bands: GDAL caches every band of a pixel-interleaved block it decodes), and bytes of
    the largest block of one band (what one cached block holds)."""
    import rasterio

    per_pixel = largest = 0
    for path in {b.path for b in scene.bands.values()}:
        with rasterio.open(path) as src:
            sizes = [np.dtype(d).itemsize for d in src.dtypes]
            per_pixel += sum(sizes)
            largest = max(largest, *(int(r) * int(c) * n for (r, c), n in zip(src.block_shapes, sizes, strict=True)))
    return per_pixel, largest


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
        when the fused kernels are available and every file is uint16 (on the grid, or coarser on its pixel
        edges) or uint8 on the grid, return the DN as uint16 unscaled (the caller multiplies by the scene's
        scale, in float32, as here): no float32 copy is written. When every file is float32 or int16 on the
        grid, they are read into place as float32 (then offset and scaled as here). Otherwise float32 as usual; check
        ``data.dtype``.
    buffers, edges
        with ``keep_u16``, read into place: where the bands are read into (:class:`BufferPool`), and the
        columns kept at band edges (:class:`EdgeColumns`, one reader's).

    Returns
    -------
    data : float32 array (len(roles), h, w)
        reflectance when the scene's scale is known (and ``scaled``), else DN.
    valid : bool array (h, w)
        observed in every band (not nodata, not saturated, inside the footprint).
    """
    from rasterio.errors import RasterioError

    try:
        return _read_block(scene, roles, grid, window, threads=threads, resampling=resampling, scaled=scaled,
                           mask_saturated=mask_saturated, keep_u16=keep_u16, buffers=buffers, edges=edges)
    except RasterioError as exc:  # a file that opened but cannot be decoded here: truncated, damaged
        failure = str(exc.__cause__ or exc)
    # raised outside the except clause: GDAL's exceptions do not pickle, and Dask sends an error's causes along
    # (one in the chain turned tuban's error into a bare Exception on the client)
    raise InputError(f"scene {scene.name!r}: reading rows {window.row}–{window.row + window.height}, columns "
                     f"{window.col}–{window.col + window.width} failed: {failure}",
                     hint="the file is damaged or incomplete: download it again")


def _read_block(scene: Scene, roles: tuple[str, ...], grid: Grid, window: Window, *, threads: str | int,
                resampling: str | None, scaled: bool, mask_saturated: bool, keep_u16: bool,
                buffers: BufferPool | None, edges: EdgeColumns | None) -> tuple[np.ndarray, np.ndarray]:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window as RWindow

    h, w = window.height, window.width
    if keep_u16:
        placed = _read_in_place(scene, roles, grid, window, threads=threads, mask_saturated=mask_saturated,
                                buffers=buffers, edges=edges)
        if placed is not None:
            data = placed[0]
            if data.dtype == np.float32:  # values as in the files: the scene's offset and scale, as below
                if scaled and scene.dn_offset:
                    data -= np.float32(scene.dn_offset)
                if scaled and scene.scale is not None and float(scene.scale) != 1.0:
                    data *= np.float32(scene.scale)
            elif scaled and scene.dn_offset:
                _shift_dn(data, scene.dn_offset)
            return placed
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
            nodata, mask_max = _invalid_values(src, scene, mask_saturated)
            if (off := _offset_on(src, grid)) is not None:
                arr = src.read(indexes, window=RWindow(window.col + off[1], window.row + off[0], w, h),
                               boundless=False)
                if arr.dtype == np.uint16 and _fused_ok():  # one pass: convert, scale, nodata, saturation
                    from tuban.raster import fused

                    fused.convert_u16(arr, out, slots, valid, nodata=nodata, mask_max=mask_max, scale=scale)
                    if scaled and scene.dn_offset:
                        out[slots] -= np.float32(scene.dn_offset * scale)
                    continue
                ok = np.ones((h, w), bool) if nodata is None else np.all(arr != nodata, axis=0)
            elif resampling in (None, "bilinear", "nearest") and (nest := _nesting(src, grid)) is not None:
                # a coarser band on the grid's pixel edges (Sentinel-2 20 m): no warper
                arr, ok = _read_nested(src, indexes, window, nest, nodata=nodata, nearest=resampling == "nearest",
                                       mask_max=mask_max)
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
                    # one warp: the data with its alpha band (no nodata), or the data whose nodata is the mask
                    # (a second read for the masks warped the window again: 25 of 55 ms a 1142² window)
                    if nodata is None:
                        both = vrt.read([*indexes, vrt.count], window=rw)
                        arr, ok = both[:-1], both[-1] > 0
                    else:
                        arr = vrt.read(indexes, window=rw)
                        ok = np.all(arr != nodata, axis=0) if not np.isnan(nodata) else np.ones((h, w), bool)
            if np.issubdtype(arr.dtype, np.integer):
                if (top := _saturated_at(arr.dtype, nodata, mask_saturated)) is not None:
                    from tuban.raster.masks import saturation_mask

                    ok &= ~saturation_mask(arr, max_value=top)
            else:
                ok &= np.all(np.isfinite(arr), axis=0)
            out[slots] = arr
            if scaled and scene.dn_offset:
                out[slots] -= np.float32(scene.dn_offset)
            if scale != 1.0:
                out[slots] *= np.float32(scale)
            valid &= ok
    return out, valid


def _shift_dn(data: np.ndarray, offset: int) -> None:
    """uint16 DN with a product's additive offset (Sentinel-2 from processing baseline 04.00: +1000) brought
    back to DN × scale = reflectance, in place: DN at or below the offset (dark noise, and the nodata whose
    validity is already known) become 1, not 0 or a wrapped-around value."""
    np.maximum(data, np.uint16(offset + 1), out=data)
    data -= np.uint16(offset)


def _read_in_place(scene: Scene, roles: tuple[str, ...], grid: Grid, window: Window, *, threads: str | int,
                   mask_saturated: bool, buffers: BufferPool | None = None, edges: EdgeColumns | None = None
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """uint16 DN and validity, or ``None`` when some file is neither uint16 nor, on the grid, uint8 (or no fused
    kernels); float32 and int16 files on the grid give float32 values as they are in the files (the caller
    applies the scene's offset and scale).

    ``edges``: columns left of the window's band edge come from there when it holds them (the rest is
    decoded), and the columns left of an edge the window ends at are kept there (:class:`EdgeColumns`)."""
    import rasterio
    from rasterio.windows import Window as RWindow

    if not _fused_ok():
        return None
    paths = {scene.bands[r].path for r in roles}
    srcs = {p: _dataset(p, threads) for p in paths}
    # uint8 files on the grid too (8-bit GF and RGB products): GDAL widens them as it copies a window out
    # of its cache, and the kernels see the same DN they would as float32 (an 8k² RGB pair: 2.0 CPU-s
    # against 3.1 read as float32, whose conversion and validity passes were numpy's)
    # float32 files on the grid likewise (reflectance products), and int16 ones widened to float32: read into
    # place, validity in one pass (a 4-band 8k² pair: float32 8.8–9.3 CPU-s through fresh arrays, copies and
    # numpy passes; int16 6.0)
    if all(len(set(s.dtypes)) == 1 and s.dtypes[0] in _DN_TYPES for s in srcs.values()):
        dtype: type[np.generic] = np.uint16
    elif all(len(set(s.dtypes)) == 1 and s.dtypes[0] in _FLOAT_READ_TYPES and _offset_on(s, grid) is not None
             for s in srcs.values()):
        dtype = np.float32
    else:
        return None
    # files on the grid are read as they are; coarser ones on its pixel edges are interpolated
    # (:func:`_read_nested`), their invalid pixels written as nodata (or 65535, saturated) so that validity
    # follows from the values alone, as it does for the others (and for the columns kept at band edges)
    nests: dict[str, tuple[_Nest, int] | None] = {}
    offsets: dict[str, tuple[int, int]] = {}
    for p, s in srcs.items():
        if (off := _offset_on(s, grid)) is not None:
            nests[p], offsets[p] = None, off
            continue
        nest = _nesting(s, grid)
        if nest is None or s.dtypes[0] != "uint16":
            return None
        nd, _ = _invalid_values(s, scene, mask_saturated)
        if nd is not None and float(nd).is_integer() and 0 <= nd <= 65535:
            marker = int(nd)
        elif mask_saturated:
            marker = 65535
        else:
            return None  # invalid pixels could not be told from their values
        nests[p] = (nest, marker)
    from tuban.raster import fused

    h, w = window.height, window.width
    out = pooled_empty((len(roles), h, w), dtype, buffers, "bands")
    k = edges.take(window, out) if edges is not None else 0  # columns kept from the band on the left
    valid = pooled_empty((h, w), np.bool_, buffers, "masks")
    valid.fill(True)
    by_path: dict[str, list[int]] = {}
    for i, role in enumerate(roles):
        by_path.setdefault(scene.bands[role].path, []).append(i)
    opts: dict[str, object] = {"GDAL_NUM_THREADS": str(threads)}
    if GDAL_CACHE_BYTES:
        opts["GDAL_CACHEMAX"] = GDAL_CACHE_BYTES
    with rasterio.Env(**opts):
        for path, slots in by_path.items():
            src = srcs[path]
            nodata, _ = _invalid_values(src, scene, mask_saturated)
            top = _saturated_at(src.dtypes[0], nodata, mask_saturated)
            indexes = [scene.bands[roles[i]].index for i in slots]
            contiguous = slots == list(range(slots[0], slots[0] + len(slots)))
            nested = nests[path]
            if nested is not None:
                arr, ok = _read_nested(src, indexes, Window(window.row, window.col + k, h, w - k), nested[0],
                                       nodata=nodata, mask_max=top is not None)
                arr[:, ~ok] = nested[1]
                out[slots, :, k:] = arr
                part = out[slots[0] : slots[0] + len(slots)] if contiguous else out[slots]
            else:
                ro, co = offsets[path]
                rw = RWindow(window.col + k + co, window.row + ro, w - k, h)
                if contiguous:  # read straight into place
                    part = out[slots[0] : slots[0] + len(slots)]  # a view (out[slots] would copy the bands)
                    src.read(indexes, window=rw, out=part[:, :, k:])
                else:
                    out[slots, :, k:] = src.read(indexes, window=rw)
                    part = out[slots]
            # not nodata, not saturated, and (float32) finite, as the float32 reads test them
            if dtype is np.float32:
                fused.valid_f32(part, valid, nodata=nodata, max_value=None if top is None else float(top))
            else:
                fused.valid_u16(part, valid, nodata=nodata, mask_max=top is not None)
    if edges is not None:
        edges.keep(window, out)
    return out, valid


#: integer types read as DN into uint16 (:func:`_read_in_place`)
_DN_TYPES = ("uint8", "uint16")
#: types read into float32 in place when on the grid (int16 widened by GDAL as it copies out of its cache)
_FLOAT_READ_TYPES = ("float32", "int16")


def _saturated_at(dtype, nodata: float | None, mask_saturated: bool) -> int | None:
    """The value from which a file's pixels count as saturated (its integer type's top), or ``None``: not
    asked for, not an integer type of 2 bytes or more (8-bit products keep their 255s: a white roof is not a
    saturated sensor), or the top is the file's nodata."""
    dt = np.dtype(dtype)
    if not mask_saturated or not np.issubdtype(dt, np.integer) or dt.itemsize < 2:
        return None
    top = int(np.iinfo(dt).max)
    return None if nodata is not None and nodata == top else top


def _invalid_values(src, scene: Scene, mask_saturated: bool) -> tuple[float | None, bool]:
    """``(nodata, mask_max)`` of a file: its nodata value (0 when it has none and the scene's zeros are
    nodata), and whether its type's top value marks saturated pixels (asked for, and not the nodata)."""
    nodata = src.nodata
    if nodata is None and scene.zero_is_nodata:
        nodata = 0
    return nodata, mask_saturated and (nodata is None or nodata != 65535)


def _fused_ok() -> bool:
    from tuban.raster import fused

    return fused.available()
