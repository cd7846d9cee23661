"""Tiles are visited in serpentine order (GDAL block-cache reuse) but results come back in tile order."""

from __future__ import annotations

from tuban.detect.engine import _strips
from tuban.detect.tiles import tile_windows, visit_order
from tuban.raster.grid import Grid


def test_visit_order_is_a_serpentine_permutation_of_the_tiles() -> None:
    grid = Grid("EPSG:32650", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 300, 250)
    tiles = tile_windows(grid, 100)  # 3 rows of 3 tiles (the last row shorter)
    order = visit_order(tiles)
    assert sorted(order) == list(range(len(tiles)))
    assert [tiles[i].col for i in order] == [0, 100, 200, 200, 100, 0, 0, 100, 200]
    assert [tiles[i].row for i in order] == [0, 0, 0, 100, 100, 100, 200, 200, 200]


def test_strips_are_contiguous_and_cover_everything_once() -> None:
    for n_items, n in ((9, 2), (2, 4), (16, 3), (0, 2)):
        st = _strips(list(range(n_items)), n)
        assert [i for s in st for i in s] == list(range(n_items))
        assert max(map(len, st), default=0) - min(map(len, st), default=0) <= 1


def test_visit_order_in_column_bands() -> None:
    grid = Grid("EPSG:32650", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 500, 300)
    tiles = tile_windows(grid, 100)  # 3 rows of 5 tiles
    order = visit_order(tiles, 2)  # bands of 2, 2 and 1 tile columns
    assert sorted(order) == list(range(len(tiles)))
    got = [(tiles[i].row, tiles[i].col) for i in order]
    assert got == [(0, 0), (0, 100), (100, 100), (100, 0), (200, 0), (200, 100),  # band 1, downwards
                   (200, 200), (200, 300), (100, 300), (100, 200), (0, 200), (0, 300),  # band 2, upwards
                   (0, 400), (100, 400), (200, 400)]  # band 3
    assert visit_order(tiles, 5) == visit_order(tiles) == visit_order(tiles, 0)


def test_band_width_fits_the_cache() -> None:
    from tuban.detect.tiles import band_width

    mib = 1024 * 1024
    # 1024 tiles + 59 px halo over 512² blocks of two 4-band uint16 files: 4 block rows × (4 + 1) × 1024 px
    # × 16 bytes = 160 MiB ≤ 70 % of 256 MiB (measured best at 16k²: 4)
    assert band_width(1024, 59, (512, 512), 16, 256 * mib) == 4
    assert band_width(1024, 59, None, 16, 256 * mib) == 0  # unknown block layout: whole rows
    assert band_width(1024, 59, (512, 512), 16, 1 * mib) == 1  # at least one tile column
    assert band_width(2048, 59, (512, 512), 16, 256 * mib) == 1
