"""Tiles are visited in serpentine order (GDAL block-cache reuse) but results come back in tile order."""

from __future__ import annotations

from tuban.detect.engine import _Deal, _strips
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


def test_deal_gives_each_worker_its_strip_then_the_far_end_of_the_others() -> None:
    deal = _Deal(list(range(10)), 2)  # strips 0…4 and 5…9
    got = {0: [deal.next(0), deal.next(0)], 1: [deal.next(1)]}
    assert got == {0: [0, 1], 1: [5]}
    got[0] += [deal.next(0) for _ in range(3)]  # worker 0 ends its strip (2, 3, 4), then takes 9, 8 from the far end
    got[0] += [deal.next(0), deal.next(0)]
    assert got[0] == [0, 1, 2, 3, 4, 9, 8]
    got[1] += [deal.next(1), deal.next(1)]  # worker 1 goes on forwards until the walks meet
    assert got[1] == [5, 6, 7]
    assert deal.next(1) is None
    assert deal.next(0) is None


def test_deal_covers_every_tile_once_whatever_the_pace() -> None:
    import random

    for n_items, n in ((0, 2), (1, 3), (7, 3), (64, 2), (33, 5)):
        rng = random.Random(n_items * 10 + n)
        deal, seen, live = _Deal(list(range(n_items)), n), [], set(range(n))
        while live:  # workers ask in a random order, as their tiles happen to finish
            i = rng.choice(sorted(live))
            k = deal.next(i)
            if k is None:
                live.discard(i)
            else:
                seen.append(k)
        assert sorted(seen) == list(range(n_items))


def test_deal_keeps_robbing_the_same_strip() -> None:
    deal = _Deal(list(range(9)), 3)  # strips 0…2, 3…5, 6…8
    assert [deal.next(0) for _ in range(3)] == [0, 1, 2]
    deal.next(2)  # 6: strip 3 keeps 7, 8; strip 2 keeps 3, 4, 5
    assert [deal.next(0), deal.next(0)] == [5, 4]  # the strip with most left, then the same one again
    deal.next(2), deal.next(2)  # 7, 8: strip 3 is done
    assert deal.next(0) == 3
    assert deal.next(1) is None


def test_a_worker_added_to_the_deal_starts_on_the_far_end() -> None:
    deal = _Deal(list(range(8)), 2)  # strips 0…3 and 4…7
    assert deal.next(0) == 0
    late = deal.add()
    assert [deal.next(late), deal.next(late)] == [7, 6]  # the far end of the strip with most left
    assert [deal.next(1), deal.next(1), deal.next(late)] == [4, 5, 3]  # that strip is done: on to the other's end


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
