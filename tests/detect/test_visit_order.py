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
