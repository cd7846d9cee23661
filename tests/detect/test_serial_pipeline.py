"""A serial run's pipeline: reads ahead on the date threads, at most two blocks assembled at once, and a
failing tile ends the run (no thread left waiting)."""

from __future__ import annotations

import threading
import time

from tuban.detect import engine, kernel
from tuban.detect.engine import detect


def test_at_most_two_blocks_are_assembled_at_once_however_far_the_reads_run_ahead(pair, monkeypatch) -> None:
    """The kernels are slowed down, so the date threads are always ahead: the assembling thread still waits
    until the block before last is released (its masks and background rows would otherwise be a third
    block's, and a longer run met that more often, its pool keeping the extra buffers)."""
    before, after, _ = pair
    held = {"now": 0, "most": 0}
    lock = threading.Lock()
    assemble, release, pieces = kernel.assemble_tile, kernel.release, kernel.tile_pieces

    def counted_assemble(*a, **kw):
        blk = assemble(*a, **kw)
        if kw.get("buffers") is not None:  # a tile's block (the sample windows' are not pooled)
            with lock:
                held["now"] += 1
                held["most"] = max(held["most"], held["now"])
        return blk

    def counted_release(blk, buffers):
        with lock:
            held["now"] -= 1
        release(blk, buffers)

    def slow_pieces(*a, **kw):
        time.sleep(0.02)
        return pieces(*a, **kw)

    monkeypatch.setattr(kernel, "assemble_tile", counted_assemble)
    monkeypatch.setattr(kernel, "release", counted_release)
    monkeypatch.setattr(kernel, "tile_pieces", slow_pieces)
    res = detect(before, after, sensor="sentinel2", tile_size=64)
    monkeypatch.undo()
    assert held["most"] == engine.PREFETCH
    assert held["now"] == 0
    reference = detect(before, after, sensor="sentinel2", tile_size=64)
    assert len(res.patches) == len(reference.patches) > 0
    assert res.patches.geometry.union_all().symmetric_difference(reference.patches.geometry.union_all()).area == 0


def test_a_tile_failing_in_a_serial_run_raises_its_error_and_leaves_no_thread_waiting(pair, monkeypatch) -> None:
    """The third tile raises while the next ones are read and assembled: the error reaches the caller, and
    the reader threads (one of them waiting for a block to be released) end."""
    from tuban.errors import RasterError

    before, after, _ = pair
    calls = []
    pieces = kernel.tile_pieces

    def third_fails(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RasterError("block 7 of after.tif is corrupt")
        return pieces(*a, **kw)

    monkeypatch.setattr(kernel, "tile_pieces", third_fails)
    threads_before = set(threading.enumerate())
    out: dict[str, BaseException] = {}

    def run() -> None:
        try:
            detect(before, after, sensor="sentinel2", tile_size=64)
        except BaseException as e:  # handed to the test thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the run hung"
    assert isinstance(out.get("error"), RasterError)
    assert "block 7" in str(out["error"])
    deadline = time.monotonic() + 10
    while (left := [x for x in set(threading.enumerate()) - threads_before if x.name.startswith("tuban-read")]) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left


def test_a_plan_records_the_largest_block_of_its_files(tmp_path) -> None:
    """A serial run keeps allocations above one of GDAL's cached blocks out of the heap (``engine._mmap_above``):
    the plan knows the largest block of one band among the dates' files, tiled or in strips."""
    import numpy as np
    import rasterio
    from synth import scene_arrays, write_stack

    b, a, _ = scene_arrays(shape=(256, 288))
    tiled = write_stack(tmp_path / "b.tif", b, block=128)
    striped = write_stack(tmp_path / "a.tif", a)
    with rasterio.open(striped) as src:
        rows, cols = src.block_shapes[0]
    assert engine.plan(tiled, tiled, sensor="sentinel2").job.block_bytes == 128 * 128 * np.dtype(np.uint16).itemsize
    assert engine.plan(tiled, striped, sensor="sentinel2").job.block_bytes == max(128 * 128, rows * cols) * 2
