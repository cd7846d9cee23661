"""Band edges: tiles shifted by the halo, and the columns a serial run keeps at the edges of its bands of tiles
(:class:`tuban.raster.grid.EdgeColumns`) so that no block is decoded for two bands."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from tuban.detect.tiles import band_edges, expand, tile_windows, visit_order
from tuban.raster.grid import EdgeColumns, Grid, Window

GRID = Grid("EPSG:32650", (10.0, 0.0, 0.0, 0.0, -10.0, 0.0), 500, 300)


def _covers_once(tiles: list[Window], grid: Grid) -> bool:
    seen = np.zeros((grid.height, grid.width), np.int32)
    for t in tiles:
        seen[t.row : t.row + t.height, t.col : t.col + t.width] += 1
    return bool((seen == 1).all())


def test_shifted_tiles_cover_the_grid_once_with_the_same_columns() -> None:
    plain, shifted = tile_windows(GRID, 100), tile_windows(GRID, 100, shift=30)
    assert _covers_once(shifted, GRID)
    assert len(shifted) == len(plain)
    assert sorted({t.col for t in shifted}) == [0, 70, 170, 270, 370]
    assert [t.width for t in shifted if t.row == 0] == [70, 100, 100, 100, 130]
    with pytest.raises(ValueError, match="shift"):
        tile_windows(GRID, 100, shift=100)


def test_windows_of_a_band_end_at_its_edge_and_reach_twice_the_halo_back() -> None:
    halo = 30
    tiles = tile_windows(GRID, 100, shift=halo)
    edges = band_edges(GRID, 100, 2)
    assert edges == (200, 400)
    for left, right in zip((0, *edges), (*edges, GRID.width), strict=True):
        band = [t for t in tiles if left <= t.col + halo < right]  # cores [left - halo, right - halo)
        assert band
        for t in band:
            w = expand(t, GRID, halo)
            assert w.col + w.width <= right
            assert w.col >= left - 2 * halo
    assert band_edges(GRID, 100, 0) == band_edges(GRID, 100, 5) == ()


def _stack(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 65535, (4, h, w), dtype=np.uint16)


def _visit(kept: EdgeColumns, scene: np.ndarray, windows: list[Window]) -> list[int]:
    """Read every window as a reader does (kept columns, then the rest from ``scene``); check each against
    ``scene`` and return how many columns came from the kept ones."""
    took = []
    for w in windows:
        out = np.full((scene.shape[0], w.height, w.width), 7, np.uint16)
        k = kept.take(w, out)
        out[:, :, k:] = scene[:, w.row : w.row + w.height, w.col + k : w.col + w.width]
        np.testing.assert_array_equal(out, scene[:, w.row : w.row + w.height, w.col : w.col + w.width])
        kept.keep(w, out)
        took.append(k)
    return took


def _windows(halo: int = 30) -> list[Window]:
    tiles = tile_windows(GRID, 100, shift=halo)
    return [expand(tiles[i], GRID, halo) for i in visit_order(tiles, 2)]


def test_kept_columns_give_back_the_same_pixels(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    scene = _stack(np.random.default_rng(0), GRID.height, GRID.width)
    windows = _windows()
    with EdgeColumns(band_edges(GRID, 100, 2), 60, GRID.height) as kept:
        took = _visit(kept, scene, windows)
    # every window of the second and third bands' first tile column starts left of its edge: 60 columns
    # (40 at the grid's top and bottom rows, the same) come from what the band on the left kept
    starts_left = [w for w in windows if any(w.col < e < w.col + w.width for e in (200, 400))]
    assert len(starts_left) == 6
    assert sum(k > 0 for k in took) == 6
    assert all(k == 60 for k in took if k)


@pytest.mark.parametrize("in_memory", [False, True])
def test_kept_columns_copied_in_chunks_of_rows_give_back_the_same_pixels(monkeypatch, in_memory: bool) -> None:
    """A window's rows go in and out through a scratch array of ``CHUNK`` rows (256 in a run): with 7, every
    window here takes several, ending mid-chunk, and the pixels are still the files' (checked in _visit)."""
    import tempfile

    monkeypatch.setattr(EdgeColumns, "CHUNK", 7)
    if in_memory:
        def no_temp(*a, **k):
            raise OSError("read-only file system")

        monkeypatch.setattr(tempfile, "TemporaryFile", no_temp)
    scene = _stack(np.random.default_rng(5), GRID.height, GRID.width)
    with EdgeColumns(band_edges(GRID, 100, 2), 60, GRID.height) as kept:
        took = _visit(kept, scene, _windows())
        chunk = 7 * 60 * scene.shape[0] * scene.itemsize  # 7 rows of the kept columns, not a window's
        assert kept._scratch.nbytes == 1 << (chunk - 1).bit_length()  # one buffer, of 7 rows' size class
    assert sum(k > 0 for k in took) == 6


def test_kept_columns_without_a_temporary_directory_stay_in_memory(monkeypatch) -> None:
    import tempfile

    def no_temp(*a, **k):
        raise OSError("read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_temp)
    scene = _stack(np.random.default_rng(1), GRID.height, GRID.width)
    with EdgeColumns(band_edges(GRID, 100, 2), 60, GRID.height) as kept:
        assert sum(k > 0 for k in _visit(kept, scene, _windows())) == 6


def test_a_disk_that_fills_up_midway_keeps_the_rest_in_memory(monkeypatch) -> None:
    import os

    calls = {"n": 0}
    real = os.pwrite

    def pwrite(fd, data, offset):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    scene = _stack(np.random.default_rng(2), GRID.height, GRID.width)
    with EdgeColumns(band_edges(GRID, 100, 2), 60, GRID.height) as kept:
        assert sum(k > 0 for k in _visit(kept, scene, _windows())) == 6
    assert calls["n"] > 2


def test_rows_never_kept_are_read_from_the_files() -> None:
    scene = _stack(np.random.default_rng(3), GRID.height, GRID.width)
    with EdgeColumns((200,), 60, GRID.height) as kept:
        kept.keep(Window(0, 100, 120, 100), scene[:, 0:120, 100:200])  # rows 0-119 of the edge at 200
        out = np.zeros((4, 100, 130), np.uint16)
        assert kept.take(Window(100, 140, 100, 130), out) == 0  # rows 100-199: not all kept
        out = np.zeros((4, 120, 130), np.uint16)
        assert kept.take(Window(0, 140, 120, 130), out) == 60
        np.testing.assert_array_equal(out[:, :, :60], scene[:, 0:120, 140:200])


@pytest.mark.parametrize("layout", ["stack", "band folder"])
def test_a_serial_run_takes_the_edge_columns_and_gives_the_same_patches(tmp_path, monkeypatch, layout) -> None:
    """At 16k² in bands of four 1024 tiles, reading the windows across band edges again decoded 18 % more
    (the edge blocks were no longer in GDAL's cache); here: the same patches, byte for byte, whether the
    columns at the edges come from what the reader kept or are decoded again (a band folder: 20 m SWIR
    interpolated onto the 10 m grid, its invalid pixels kept as nodata)."""
    from synth import scene_arrays, write_band_folder, write_stack

    from tuban.detect import engine

    before, after, _ = scene_arrays(shape=(256, 512), seed=5)
    if layout == "stack":
        b = write_stack(tmp_path / "b.tif", before)
        a = write_stack(tmp_path / "a.tif", after)
    else:
        before[:, :3, 300:] = 0  # nodata along the top edge of part of the scene (a swath edge)
        b = write_band_folder(tmp_path / "b", before)
        a = write_band_folder(tmp_path / "a", after)
    monkeypatch.setattr(engine, "band_width", lambda *args, **kw: 2)  # bands of 2 tiles: an edge at 256
    p = engine.plan(b, a, sensor="sentinel2", tile_size=128)
    assert p.job.edges == (256,)
    assert min(t.col for t in p.tiles if t.col > 0) == 128 - p.job.halo  # cores shifted by the halo

    taken: list[int] = []
    real_take = EdgeColumns.take

    def take(self, window, out):
        k = real_take(self, window, out)
        taken.append(k)
        return k

    monkeypatch.setattr(EdgeColumns, "take", take)
    kept = engine.detect(b, a, sensor="sentinel2", tile_size=128)
    assert sum(k > 0 for k in taken) == 2 * 2  # two tile rows start left of the edge, two dates each
    taken.clear()
    monkeypatch.setattr(EdgeColumns, "take", lambda self, window, out: 0)
    decoded = engine.detect(b, a, sensor="sentinel2", tile_size=128)
    assert len(kept.patches) == len(decoded.patches) > 0
    assert list(shapely.to_wkb(kept.patches.geometry.values)) == list(shapely.to_wkb(decoded.patches.geometry.values))
    assert kept.patches.drop(columns="geometry").equals(decoded.patches.drop(columns="geometry"))


@pytest.mark.slow
def test_shifted_tiles_give_the_same_patches_on_threads_and_workers(tmp_path, monkeypatch) -> None:
    """Tiles on threads or Dask workers read their own windows, on the same shifted tiles, through the edge
    columns of their process (``kernel._process_edges``: kept when their tiles come in the visiting order)."""
    pytest.importorskip("distributed")
    from synth import scene_arrays, write_stack

    from tuban.detect import engine, kernel

    before, after, _ = scene_arrays(shape=(256, 512), seed=6)
    b = write_stack(tmp_path / "b.tif", before)
    a = write_stack(tmp_path / "a.tif", after)
    monkeypatch.setattr(engine, "band_width", lambda *args, **kw: 2)
    serial = engine.detect(b, a, sensor="sentinel2", tile_size=128)
    wkb = list(shapely.to_wkb(serial.patches.geometry.values))
    assert wkb
    taken: list[int] = []
    real_take = EdgeColumns.take

    def take(self, window, out):
        taken.append(real_take(self, window, out))
        return taken[-1]

    monkeypatch.setattr(EdgeColumns, "take", take)
    threads = engine.detect(b, a, sensor="sentinel2", tile_size=128, threads=2)
    assert list(shapely.to_wkb(threads.patches.geometry.values)) == wkb
    assert taken  # tile tasks reading their own windows go through the process's edge columns
    assert not kernel._EDGES  # and let go of them at the end
    workers = engine.detect(b, a, sensor="sentinel2", tile_size=128, workers=2)
    assert workers.threshold == serial.threshold
    assert shapely.equals(shapely.union_all(serial.patches.geometry.values),
                          shapely.union_all(workers.patches.geometry.values))


def test_nothing_is_kept_once_closed() -> None:
    scene = _stack(np.random.default_rng(7), GRID.height, GRID.width)
    kept = EdgeColumns((200,), 60, GRID.height)
    kept.keep(Window(0, 80, 100, 120), scene[:, 0:100, 80:200])
    out = np.zeros((4, 100, 130), np.uint16)
    assert kept.take(Window(0, 140, 100, 130), out) == 60
    kept.close()
    kept.keep(Window(0, 80, 100, 120), scene[:, 0:100, 80:200])  # a read still queued when the run stopped
    assert kept.take(Window(0, 140, 100, 130), out) == 0
