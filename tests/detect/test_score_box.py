"""The fused score computed on a tile's core plus its margin equals the crop of the whole block's."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from tuban.raster import fused


def _assert_same_pieces(x: dict, y: dict) -> None:
    """Two results of ``kernel.tile_pieces`` are the same, byte for byte."""
    assert list(shapely.to_wkb(x["geoms"])) == list(shapely.to_wkb(y["geoms"]))
    np.testing.assert_array_equal(x["sums"], y["sums"])
    np.testing.assert_array_equal(x["seam"], y["seam"])
    assert x["unobservable_px"] == y["unobservable_px"]


def _planned(tmp_path, *, shape: tuple[int, int], seed: int, baseline: bool, tile_size: int):
    """A synthetic pair (and a baseline date, when asked) written to ``tmp_path``, its plan and statistics."""
    from synth import scene_arrays, write_stack

    from tuban.detect import engine, kernel

    before, after, _ = scene_arrays(shape=shape, seed=seed)
    z = write_stack(tmp_path / "z.tif", before * 1.02) if baseline else None
    p = engine.plan(write_stack(tmp_path / "b.tif", before), write_stack(tmp_path / "a.tif", after), baseline=z,
                    sensor="sentinel2", tile_size=tile_size)
    return p, kernel.scene_stats(p.job, [kernel.sample_block(p.job, w) for w in p.samples])


def _stack(rng: np.random.Generator, shape: tuple[int, int, int], u16: bool) -> np.ndarray:
    v = rng.random(shape, dtype=np.float32) * 0.4 + 0.02
    return np.rint(v * 10000).astype(np.uint16) if u16 else v


@pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")
@pytest.mark.parametrize("u16", [False, True])
@pytest.mark.parametrize("swir", [False, True])
@pytest.mark.parametrize("box", [(0, 53, 0, 61), (7, 40, 9, 50), (0, 1, 5, 6), (52, 53, 60, 61), (3, 53, 0, 17)])
def test_components_and_score_on_a_box_equal_the_crop_of_the_whole(u16: bool, swir: bool,
                                                                    box: tuple[int, int, int, int]) -> None:
    rng = np.random.default_rng(3)
    nb = 5 if swir else 4
    b, a = _stack(rng, (nb, 53, 61), u16), _stack(rng, (nb, 53, 61), u16)
    use = rng.random((53, 61)) > 0.1
    st = (np.full(nb, 0.1, np.float32), np.full(nb, 8.0, np.float32))
    lay = fused.FusedLayout(0, (0, 1, 2), nir=3, red=2, green=1, blue=0, swir1=4 if swir else -1)
    cs = (np.full(lay.n_components, 0.2, np.float32), np.full(lay.n_components, 2.0, np.float32))
    kw = {"cell": 4, "row": 6, "col": 3, "scale_b": 1e-4 if u16 else 1.0, "scale_a": 1e-4 if u16 else 1.0}
    y0, y1, x0, x1 = box
    for extra in ({}, {"comp_stats": cs}):
        whole = fused.components(b, a, st, st, use, lay, **kw, **extra)
        part = fused.components(b, a, st, st, use, lay, **kw, **extra, box=box)
        np.testing.assert_array_equal(part, whole[..., y0:y1, x0:x1])
    with pytest.raises(ValueError, match="box"):
        fused.components(b, a, st, st, use, lay, **kw, box=(0, 0, 0, 61))


@pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")
def test_tile_pieces_on_the_score_box_equal_the_whole_block(pair, monkeypatch) -> None:
    from tuban.detect import kernel
    from tuban.detect.engine import plan

    before, after, _ = pair
    p = plan(str(before), str(after), sensor="sentinel2", tile_size=96)
    job = p.job
    stats = kernel.scene_stats(job, [kernel.sample_block(job, w) for w in p.samples])
    fast = [kernel.tile_pieces(job, t, stats) for t in p.tiles]
    monkeypatch.setattr(kernel, "score_margin", lambda method: 10**6)  # the box is the whole block
    whole = [kernel.tile_pieces(job, t, stats) for t in p.tiles]
    assert sum(len(r["geoms"]) for r in fast) > 0
    for f, w in zip(fast, whole, strict=True):
        _assert_same_pieces(f, w)


@pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")
@pytest.mark.parametrize("baseline", [False, True])
def test_a_tile_whose_background_was_computed_where_it_was_assembled_gives_the_same_pieces(tmp_path,
                                                                                         baseline) -> None:
    """A serial run's assembling thread computes the tiles' background rows (``kernel.with_background``) to
    take work off the kernels' thread: the pieces are the same, byte for byte."""
    from tuban.detect import kernel

    p, stats = _planned(tmp_path, shape=(200, 220), seed=8, baseline=baseline, tile_size=128)
    method = p.job.change_method()
    for core in p.tiles:
        plain = kernel._read(p.job, core, method, p.job.halo)
        ready = kernel.with_background(p.job, kernel._read(p.job, core, method, p.job.halo), stats)
        assert set(ready.background) == ({"b", "0"} if baseline else {"b"})
        _assert_same_pieces(kernel.tile_pieces(p.job, core, stats, plain),
                            kernel.tile_pieces(p.job, core, stats, ready))


@pytest.mark.skipif(not fused.available(), reason="numba (the detect extra) is not installed")
@pytest.mark.parametrize("baseline", [False, True])
def test_tiles_computed_with_a_buffer_pool_give_the_same_pieces_and_the_pool_stops_growing(tmp_path,
                                                                                          baseline) -> None:
    """A serial run reads, assembles and computes every tile with arrays from one ``BufferPool`` (bands,
    masks, background rows, score, labels, the vectoriser's work arrays), handed back after each tile: the
    pieces are those of fresh arrays, byte for byte, and once every tile shape has been seen the pool makes
    no new buffer (nothing is kept, nothing is given out twice)."""
    from concurrent.futures import ThreadPoolExecutor

    from tuban.detect import kernel
    from tuban.raster.grid import BufferPool

    p, stats = _planned(tmp_path, shape=(300, 260), seed=11, baseline=baseline, tile_size=96)
    job = p.job
    pool = BufferPool()
    readers = {k: ThreadPoolExecutor(1) for k in kernel.date_keys(job)}
    sizes = []
    try:
        for _ in range(2):  # the second pass sees only shapes the pool has served
            for core in p.tiles:
                # what the pool hands out again holds a byte pattern, not the last tile's values: an array read
                # where it was not written this tile (e.g. labels outside the runs) changes the pieces
                for free in pool._free.values():
                    for buf in free:
                        buf.fill(0x5A)
                blk = kernel.assemble_tile(job, core, kernel.submit_tile(job, core, readers, pool), stats=stats,
                                           buffers=pool)
                pooled = kernel.tile_pieces(job, core, stats, blk, pool)
                kernel.release(blk, pool)
                _assert_same_pieces(pooled, kernel.tile_pieces(job, core, stats))
            sizes.append(pool.nbytes)
    finally:
        for ex in readers.values():
            ex.shutdown()
    assert sum(len(kernel.tile_pieces(job, t, stats)["geoms"]) for t in p.tiles) > 0
    assert sizes[1] == sizes[0]
