"""Polygons of a labelled raster in one compiled pass (numba): the polygons ``rasterio.features.shapes``
(GDAL's polygonize, 4-connectivity) gives for a label image whose labels are 4-connected components.

Algorithm (crack following):

1. Every pixel side between a pixel of label ``L > 0`` and one that is not ``L`` (another label, the
   background or outside the window) is a boundary edge of ``L``, directed so that its ring runs as GDAL's do
   (pixel space, x = column, y = row: down the left side of a pixel, right along its bottom, up its right
   side, left along its top; the pixel is on the walker's left in a y-down view). A bit per pixel side
   marks the edges already traced.
2. The pixels of the windows are scanned in row-major order (blocks of 32 empty pixels skipped after one
   vectorised OR). A trace starts where a ring's smallest (y, x) vertex can be: the top-left corner of a
   pixel whose upper and left neighbours are not ``L`` (a shell), or the bottom-left corner of a pixel whose
   lower neighbour is not ``L`` but whose left and lower-left ones are (a hole); it follows edges until it
   comes back to its first one. At each vertex the next edge is decided by the two pixels ahead: if the
   one ahead of the current ``L`` pixel is not ``L``, turn around that pixel; else go straight if the other
   one is not ``L``, else turn the other way. Turning around the current pixel first keeps two ``L``
   pixels touching only at a corner apart (4-connectivity). Only vertices where the direction changes are
   written (no collinear vertices).
3. Such a corner-only contact (a *saddle*) makes a trace pass the same vertex twice. The loop closed at
   the second pass is cut out as a ring of its own: the outer boundary and an enclosed part touching it at
   one point become a shell and a hole (valid OGC, as GDAL gives them) instead of one self-touching ring.
4. Every ring is rotated to start at its smallest (row, column) vertex and closed; its signed area tells
   shell (GDAL's orientation: negative shoelace sum in pixel space) from hole. Rings are grouped by label
   (shell first, then holes in row-major order of their first vertex, as GDAL orders them), the affine
   transform is applied with numpy and the polygons are built at once by ``shapely.from_ragged_array``.

The kernels are plain Python functions compiled by :mod:`tuban.jit` when numba is available; with
``TUBAN_FUSED=0`` (or without numba) the same functions run as Python: slow, same polygons.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tuban import jit

__all__ = ["label_polygons", "warm"]

# --------------------------------------------------------------------------------------------- kernels
# Plain Python functions; compiled lazily by jit.Kernel. Directions d: 0 down (+y), 1 right (+x), 2 up (-y),
# 3 left (-x), in pixel space (x = column, y = row); d + 1 turns around the pixel on the walker's left. The
# step arithmetic is branch-free: the turns of a ragged boundary are unpredictable.


def _dx(d):
    """x step of direction ``d``: 0, 1, 0, -1."""
    return (d & 1) * (2 - d)


def _dy(d):
    """y step of direction ``d``: 1, 0, -1, 0."""
    return (1 - (d & 1)) * (1 - d)


def _pix_col(x, d):
    """Column of the pixel on the labelled side of the edge leaving vertex column ``x`` in direction ``d``."""
    return x - (d >> 1)


def _pix_row(y, d):
    """Row of the pixel on the labelled side of the edge leaving vertex row ``y`` in direction ``d``."""
    return y - ((d ^ (d >> 1)) & 1)


def _value(lab, r, c, r0, r1, c0, c1):
    """``lab[r, c]``; -1 outside the window rows r0:r1, columns c0:c1 (inside the array)."""
    if r < r0 or r >= r1 or c < c0 or c >= c1:
        return -1
    return lab[r, c]


def _emit(cx, cy, i, j, ox, oy, n):
    """Ring ``cx/cy[i:j]`` written to ``ox/oy`` from ``n``, rotated to start at its smallest (y, x) vertex
    and closed; returns twice its signed area (shoelace sum, pixel space)."""
    m = j - i
    k0 = i
    for k in range(i + 1, j):
        if cy[k] < cy[k0] or (cy[k] == cy[k0] and cx[k] < cx[k0]):
            k0 = k
    s = 0
    for t in range(m + 1):
        k = k0 + t
        if k >= j:
            k -= m
        ox[n + t] = cx[k]
        oy[n + t] = cy[k]
        if t > 0:
            s += ox[n + t - 1] * oy[n + t] - ox[n + t] * oy[n + t - 1]
    return s


def _ring(lab, r0, r1, c0, c1, seen, v, x0, y0, d0, ox, oy, n_out, r_start, r_label, r_area, n_ring, cx, cy, sx, sy,
          sp):
    """Traces the boundary of label ``v`` in the window (rows r0:r1, columns c0:c1) from vertex (x0, y0) in
    direction ``d0`` back to that edge, marking its edges in ``seen``; writes its ring(s) (a loop closed at a
    saddle passed twice is cut out as a ring of its own) and returns the new numbers of vertices and rings
    written (see :func:`_trace_py`)."""
    cx[0] = x0
    cy[0] = y0
    nc = 1
    ns = 0
    # the start is a saddle when v is on exactly one diagonal of its 2×2 pixels
    tl = _value(lab, y0 - 1, x0 - 1, r0, r1, c0, c1) == v
    tr = _value(lab, y0 - 1, x0, r0, r1, c0, c1) == v
    bl = _value(lab, y0, x0 - 1, r0, r1, c0, c1) == v
    br = _value(lab, y0, x0, r0, r1, c0, c1) == v
    if (tl and br and not tr and not bl) or (tr and bl and not tl and not br):
        sx[0] = x0
        sy[0] = y0
        sp[0] = 0
        ns = 1
    x, y, d = x0, y0, d0
    while True:
        seen[_pix_row(y, d), _pix_col(x, d)] |= np.uint8(1 << d)
        x += _dx(d)
        y += _dy(d)
        right = (d + 3) & 3
        ahead = _value(lab, _pix_row(y, d), _pix_col(x, d), r0, r1, c0, c1) == v  # ahead of the current pixel of v
        beside = _value(lab, _pix_row(y, right), _pix_col(x, right), r0, r1, c0, c1) == v  # diagonal to it
        # around the current pixel when the one ahead is not v (also at a saddle: 4-connectivity), else
        # straight on when the diagonal one is not v, else around that one
        nd = (d + 1 - ahead + 3 * (ahead & beside)) & 3
        if x == x0 and y == y0 and nd == d0:
            if d == d0:  # the start vertex is no corner: the last one takes its place
                nc -= 1
                cx[0] = cx[nc]
                cy[0] = cy[nc]
            break
        cx[nc] = x  # kept when the direction changes
        cy[nc] = y
        nc += nd != d
        if beside and not ahead:  # a saddle
            q = ns - 1
            while q >= 0 and not (sx[q] == x and sy[q] == y):
                q -= 1
            if q >= 0:  # passed a second time: the loop since the first is a ring of its own
                i = sp[q]
                r_start[n_ring] = n_out
                r_label[n_ring] = v
                r_area[n_ring] = _emit(cx, cy, i, nc - 1, ox, oy, n_out)
                n_out += nc - i
                n_ring += 1
                nc = i + 1
                ns = q  # saddles passed inside the loop cut out are done with it
            else:
                sx[ns] = x
                sy[ns] = y
                sp[ns] = nc - 1
                ns += 1
        d = nd
    r_start[n_ring] = n_out
    r_label[n_ring] = v
    r_area[n_ring] = _emit(cx, cy, 0, nc, ox, oy, n_out)
    return n_out + nc + 1, n_ring + 1


def _trace_py(lab, wins, seen, ox, oy, r_start, r_label, r_area, cx, cy, sx, sy, sp):
    """Boundary rings of every label of ``lab`` inside the windows ``wins`` (n, 4: r0, r1, c0, c1, inside the
    array; the pixels outside a window are taken for background while tracing in it).

    Writes the ring vertices to ``ox``/``oy`` (every ring closed, from its smallest (y, x) vertex) and per
    ring its first vertex, label and twice its signed area (< 0: shell) to ``r_start``/``r_label``/``r_area``;
    returns the numbers of vertices and rings written. ``seen``: zeros of lab's shape (bit d: the pixel's
    edge of direction d traced); ``cx``/``cy``: room for the ring being traced, ``sx``/``sy``/``sp``: for
    the saddle vertices it passed once and their position in it. The caller sizes the buffers from the
    labelled pixels in the windows (≤ 4 edges, ≤ 1 ring, ≤ 2 saddles per pixel)."""
    n_out = 0
    n_ring = 0
    for k in range(wins.shape[0]):
        r0, r1, c0, c1 = wins[k, 0], wins[k, 1], wins[k, 2], wins[k, 3]
        for r in range(r0, r1):
            row = lab[r]
            for b0 in range(c0, c1, 32):
                blk = row[b0:min(b0 + 32, c1)]
                acc = blk[0] & 0  # blocks of 32 pixels, most of them empty: skipped after one vectorised OR
                for t in range(blk.shape[0]):
                    acc |= blk[t]
                if acc == 0:
                    continue
                for t in range(blk.shape[0]):
                    v = blk[t]
                    if v <= 0:
                        continue
                    c = b0 + t
                    # a trace starts at its smallest (y, x) vertex, the top-left corner of a pixel of v with
                    # neither the one above nor the one left of it v (going down), or the bottom-left corner
                    # of a pixel of v with the one below not v, and the ones left and below-left v (going
                    # right); other such corners are on traces already done (seen)
                    if _value(lab, r, c - 1, r0, r1, c0, c1) != v:
                        if _value(lab, r - 1, c, r0, r1, c0, c1) != v and not seen[r, c] & 1:
                            n_out, n_ring = _ring(lab, r0, r1, c0, c1, seen, v, c, r, 0, ox, oy, n_out, r_start,
                                                  r_label, r_area, n_ring, cx, cy, sx, sy, sp)
                    elif (_value(lab, r + 1, c, r0, r1, c0, c1) != v and _value(lab, r + 1, c - 1, r0, r1, c0, c1) == v
                          and not seen[r, c] & 2):
                        n_out, n_ring = _ring(lab, r0, r1, c0, c1, seen, v, c, r + 1, 1, ox, oy, n_out, r_start,
                                              r_label, r_area, n_ring, cx, cy, sx, sy, sp)
    r_start[n_ring] = n_out
    return n_out, n_ring


# helpers called from the kernel: compiled into it (and cached with it)
_HELPERS = jit.Helpers(globals(), inline=("_dx", "_dy", "_pix_col", "_pix_row", "_value", "_emit", "_ring"))
_trace_k = jit.Kernel(_trace_py, _HELPERS)


# --------------------------------------------------------------------------------------------- wrapper


def label_polygons(lab: np.ndarray, windows: Sequence[tuple[int, int, int, int]],
                   transform: Sequence[float], buffers=None) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of every label > 0 of ``lab``: the polygons of ``rasterio.features.shapes(lab, mask=lab > 0,
    connectivity=4, transform=transform)``, one per label.

    ``lab``: int32 2-D, each label one 4-connected component, all its pixels inside one of ``windows``
    ``(r0, r1, c0, c1)`` (lab's pixel coordinates, not overlapping; only their pixels are read, those
    outside count as background, as for ``shapes`` of each window's sub-array); ``transform``: the affine
    ``(a, b, c, d, e, f)`` of lab's pixel (0, 0) corner as in ``affine.Affine`` (an ``Affine`` itself will
    do): x = c + a·col + b·row, y = f + d·col + e·row, computed in GDAL's order (the same floats).

    Returns ``(geoms, labels)``: an object array of shapely Polygons (pixel-edge boundaries, holes as
    interior rings, no collinear vertices, valid; rings oriented as GDAL's: shells clockwise in pixel space
    (x = column, y = row), holes counter-clockwise, so a north-up transform turns shells counter-clockwise)
    and an int64 array of their labels, in increasing label order. Rings start at their smallest (row,
    column) vertex and holes follow in row-major order of it, as GDAL's: each polygon has the WKB of
    ``shapely.geometry.shape`` of GDAL's polygon of its label.

    The kernel runs without the GIL and with buffers of its own: calls in several threads at once are safe.
    ``buffers`` (a :class:`tuban.raster.grid.BufferPool`): where its working arrays come from (and go back).
    """
    from tuban.raster.grid import give_back, pooled_empty

    lab = np.ascontiguousarray(lab, np.int32)
    if lab.ndim != 2:
        raise ValueError(f"lab must be 2-D, not {lab.ndim}-D")
    wins = np.array(windows, np.int64).reshape(-1, 4)  # a copy: clipped below
    h, w = lab.shape
    wins[:, :2] = np.clip(wins[:, :2], 0, h)
    wins[:, 2:] = np.clip(wins[:, 2:], 0, w)
    n_px = sum(int(np.count_nonzero(lab[r0:r1, c0:c1])) for r0, r1, c0, c1 in wins) if len(wins) else 0
    seen = pooled_empty((h, w), np.uint8, buffers, "vectorise", sparse=True)
    for r0, r1, c0, c1 in wins:  # only the windows' pixels are read (the tile's rest: a memset saved)
        seen[r0:r1, c0:c1] = 0
    # empty: only what the trace writes is touched; ≤ 4 edges and ≤ 1 ring per labelled pixel. From a pool,
    # sized for a tile of labels: each array then keeps one size class, whatever the tile holds
    cap = h * w if buffers is not None else n_px
    work = [seen, *(pooled_empty((k * cap + extra,), np.int64, buffers, "vectorise", sparse=True) for k, extra in
                    ((5, 0), (5, 0), (1, 1), (1, 0), (1, 0), (4, 2), (4, 2), (2, 1), (2, 1), (2, 1)))]
    # xs, ys; r_start, r_label, r_area; cx, cy; sx, sy, sp (≤ 2 saddle corners per pixel)
    trace = _trace_k if jit.available() else _trace_py
    try:
        counts = trace(lab, wins, *work)
        xs, ys, r_start, r_label, r_area = work[1:6]
        return _polygons_of((h, w), xs, ys, r_start, r_label, r_area, counts, transform)
    finally:
        give_back(buffers, *work)


def _polygons_of(shape: tuple[int, int], xs: np.ndarray, ys: np.ndarray, r_start: np.ndarray, r_label: np.ndarray,
                 r_area: np.ndarray, counts: tuple[int, int], transform: Sequence[float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The polygons of the rings traced by :func:`label_polygons`; every array returned is a new one."""
    import shapely

    h, w = shape
    n_out, n_ring = counts
    xs, ys, r_start, r_label, r_area = xs[:n_out], ys[:n_out], r_start[: n_ring + 1], r_label[:n_ring], r_area[:n_ring]
    if n_ring == 0:
        return np.empty(0, object), np.empty(0, np.int64)
    # rings by label, the shell first, then the holes in row-major order of their first vertex
    hole = r_area > 0
    first = r_start[:-1]
    if ((int(r_label.max()) * 2 + 2) * (h + 1) + 1) * (w + 1) < 2**63:  # one int64 key: one fast sort
        order = np.argsort(((r_label * 2 + hole) * (h + 1) + ys[first]) * (w + 1) + xs[first], kind="stable")
    else:
        order = np.lexsort((xs[first], ys[first], hole, r_label))
    length = np.diff(r_start)[order]
    ring_off = np.zeros(n_ring + 1, np.int64)
    np.cumsum(length, out=ring_off[1:])
    src = np.arange(ring_off[-1], dtype=np.int64) + np.repeat(r_start[:-1][order] - ring_off[:-1], length)
    x, y = xs[src].astype(np.float64), ys[src].astype(np.float64)
    a, b, c, d, e, f = (float(t) for t in transform[:6])
    coords = np.empty((len(src), 2), np.float64)
    coords[:, 0] = c + x * a + y * b  # GDAL's order of operations
    coords[:, 1] = f + x * d + y * e
    shells = np.flatnonzero(~hole[order])
    poly_off = np.append(shells, n_ring).astype(np.int64)
    geoms = shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (ring_off, poly_off))
    return geoms, r_label[order][shells].astype(np.int64)


def warm() -> None:
    """Compile (or load from the cache) the kernel once in this process, on a tiny input."""
    if jit.available():
        label_polygons(np.ones((2, 2), np.int32), [(0, 2, 0, 2)], (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
