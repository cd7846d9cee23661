"""Tiles with a halo (带缓冲区的分块) and scene-wide sample windows."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from tuban.raster.grid import Grid, Window

__all__ = ["band_edges", "band_width", "expand", "sample_windows", "tile_windows", "visit_order"]


def tile_windows(grid: Grid, tile_size: int, *, shift: int = 0) -> list[Window]:
    """Core windows of ``tile_size`` covering ``grid``, row-major (the last row/column may be smaller).

    ``shift`` (0 ≤ shift < ``tile_size``): every column cut moves ``shift`` px to the left, so the first
    tile column is ``shift`` narrower and the last up to ``shift`` wider (same number of columns). With the
    halo as shift, a tile's window ends where an unshifted tile's core would: the windows of a band of
    tile columns (:func:`visit_order`) stop at the band's edge and reach ``2 × halo`` into the band on
    its left, whose pixels a serial run keeps (:func:`band_edges`) instead of decoding them again."""
    if tile_size < 16:
        from tuban.errors import UsageError

        raise UsageError(f"--tile-size must be at least 16 pixels, got {tile_size}")
    if not 0 <= shift < tile_size:
        raise ValueError(f"shift must be in [0, {tile_size}), got {shift}")
    cuts = [0, *(c - shift for c in range(tile_size, grid.width, tile_size)), grid.width]
    out = []
    for r in range(0, grid.height, tile_size):
        for c0, c1 in itertools.pairwise(cuts):
            out.append(Window(r, c0, min(tile_size, grid.height - r), c1 - c0))
    return out


def band_edges(grid: Grid, tile_size: int, band: int) -> tuple[int, ...]:
    """The columns where the bands of ``band`` tile columns (:func:`visit_order`) meet, left to right
    (none for whole rows or a single band)."""
    if band < 1:
        return ()
    return tuple(range(band * tile_size, grid.width, band * tile_size))


def visit_order(tiles: Sequence[Window], band: int = 0) -> list[int]:
    """Indices of ``tiles`` (row-major, as :func:`tile_windows` gives them) in the order that reuses GDAL's
    decoded blocks best; callers put results back in the tiles' order.

    Serpentine: tile rows alternately left → right and right → left. GDAL's block cache is least-recently-
    used: the blocks a tile row shares with the next (its bottom halo) that are still cached are those read
    last, at the row's end, so the next row starts there. ``band`` ≥ 1 (see :func:`band_width`): the same
    inside vertical bands of ``band`` tile columns, bands taken left to right, alternately top → bottom
    and bottom → top, so the blocks one band row shares with the next fit in the cache whatever the
    scene's width (at 16k² and more one block row of both dates no longer does: reading every tile cost
    1.7× decoding the files in serpentine rows, 1.2× in bands of four 1024 tiles).
    """
    rows: dict[int, list[int]] = {}
    for i, t in enumerate(tiles):
        rows.setdefault(t.row, []).append(i)
    ordered = [sorted(rows[r], key=lambda i: tiles[i].col) for r in sorted(rows)]
    n_cols = max((len(r) for r in ordered), default=0)
    if band < 1 or band >= n_cols:
        out: list[int] = []
        for k, idx in enumerate(ordered):
            out += idx[::-1] if k % 2 else idx
        return out
    out = []
    for b, c0 in enumerate(range(0, n_cols, band)):
        seq = ordered if b % 2 == 0 else ordered[::-1]
        for k, idx in enumerate(seq):
            part = idx[c0 : c0 + band]
            out += part[::-1] if k % 2 else part
    return out


def band_width(tile_size: int, halo: int, block: tuple[int, int] | None, bytes_per_pixel: int,
               cache_bytes: int, *, fill: float = 0.7) -> int:
    """Tile columns per band of :func:`visit_order` (0: whole rows) such that the blocks one tile row of a
    band touches (``block`` rows × columns, the halo on each side) take at most ``fill`` of GDAL's block
    cache. ``bytes_per_pixel``: of every file the tiles read, all dates (cached blocks hold every band of a
    pixel-interleaved file). Depends on the tile size: the tiles' results never do."""
    if block is None or bytes_per_pixel <= 0 or cache_bytes <= 0:
        return 0
    bh, bw = block
    rows_px = (-(-(tile_size + 2 * halo) // bh) + 1) * bh
    width_px = fill * cache_bytes / (rows_px * bytes_per_pixel) - 2 * bw
    return max(1, int(width_px // tile_size))


def expand(core: Window, grid: Grid, halo: int) -> Window:
    """``core`` grown by ``halo`` pixels on each side, clipped to the grid."""
    r0, c0 = max(0, core.row - halo), max(0, core.col - halo)
    r1 = min(grid.height, core.row + core.height + halo)
    c1 = min(grid.width, core.col + core.width + halo)
    return Window(r0, c0, r1 - r0, c1 - c0)


def sample_windows(grid: Grid, *, max_pixels: int = 2_000_000, size: int = 256,
                   block: tuple[int, int] | None = None) -> list[Window]:
    """Windows for the scene statistics: the whole grid when small, else evenly spread ``size``² windows.

    They depend only on the grid (and the files' internal block shape), never on the tile size, so every
    tiling uses the same statistics; their total size is bounded by ``max_pixels`` whatever the scene's
    size.

    ``block``: the internal block (tile) shape ``(rows, cols)`` of the files on the grid (see
    :func:`tuban.raster.grid.block_shape`). When blocks are at least ``size`` on each side and the grid
    holds enough of them, each window is centred in one block of an evenly spread set, so a window and
    the context around it decode one block per file instead of the 2×2 a window placed at fixed fractions
    of the scene straddles (the statistics pass then costs a small fraction of decoding the scene).
    """
    if grid.width * grid.height <= max_pixels:
        return tile_windows(grid, 512)
    n = max(1, max_pixels // (size * size))
    k = max(1, math.isqrt(n))
    sz_r, sz_c = min(size, grid.height), min(size, grid.width)
    if block is not None and min(block) >= size:
        bh, bw = block
        nby, nbx = -(-grid.height // bh), -(-grid.width // bw)
        if nby >= k and nbx >= k:
            out = []
            for i in range(k):
                by = int((i + 0.5) * nby / k)
                for j in range(k):
                    bx = int((j + 0.5) * nbx / k)
                    # the block's centre (its part inside the grid: the last block may be cut)
                    cy = (by * bh + min((by + 1) * bh, grid.height)) // 2
                    cx = (bx * bw + min((bx + 1) * bw, grid.width)) // 2
                    r = max(0, min(cy - sz_r // 2, grid.height - sz_r))
                    c = max(0, min(cx - sz_c // 2, grid.width - sz_c))
                    out.append(Window(r, c, sz_r, sz_c))
            return out
    out = []
    for i in range(k):
        for j in range(k):
            r = int((i + 0.5) * grid.height / k - size / 2)
            c = int((j + 0.5) * grid.width / k - size / 2)
            r, c = max(0, min(r, grid.height - size)), max(0, min(c, grid.width - size))
            out.append(Window(r, c, sz_r, sz_c))
    return out
