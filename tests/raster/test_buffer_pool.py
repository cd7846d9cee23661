"""grid.BufferPool: arrays handed back and given out again, whatever their shape."""

from __future__ import annotations

import mmap
import threading
import weakref

import numpy as np

from tuban.raster.grid import OWN_MAPPING_BYTES, BufferPool


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def test_a_buffer_given_back_serves_other_shapes_and_dtypes_of_its_class() -> None:
    pool = BufferPool()
    a = pool.take((2, 3, 4), np.uint16)
    assert a.shape == (2, 3, 4)
    assert a.dtype == np.uint16
    assert a.flags.c_contiguous
    a[:] = 7
    pool.give(a)
    b = pool.take((4, 3), np.float32)  # 48 bytes: the same class (64) as a's 48
    assert _same_memory(a, b)
    assert b.shape == (4, 3)
    assert b.dtype == np.float32
    c = pool.take((4, 3), np.float32)  # only one was handed back: a new buffer
    assert not _same_memory(b, c)
    pool.give(b, c)
    d = pool.take((100,), np.uint8)  # another class (128): not one of those
    assert not _same_memory(d, b)
    assert not _same_memory(d, c)
    assert pool.nbytes == 128  # the free buffers of the smaller class went: they serve nothing it cannot


def test_a_larger_array_replaces_the_smaller_free_buffers_and_serves_smaller_ones_after() -> None:
    """A scene's last tile column is wider: its arrays cross into the next size class. The pool then keeps
    the larger buffer only (it holding both grew a 16k² run's peak by ~55 MB), and later narrower tiles take it."""
    pool = BufferPool()
    narrow = pool.take((2048, 2048), np.int32, "labels")  # exactly 16 MiB: class 2**24
    pool.give(narrow)
    wide = pool.take((2048, 2107), np.int32, "labels")  # 17 MB: class 2**25, the narrow one let go
    assert pool.nbytes == 1 << 25
    pool.give(wide)
    again = pool.take((2048, 2048), np.int32, "labels")  # no free buffer of its class: the larger one
    assert _same_memory(again, wide)
    assert again.shape == (2048, 2048)
    other = pool.take((2048, 1989), np.int32, "labels")  # the larger one is in use: a buffer of its own class
    assert not _same_memory(other, wide)
    assert pool.nbytes == (1 << 25) + (1 << 24)  # two in use at once
    pool.give(again, other)
    masks = pool.take((10, 10), np.uint8, "masks")  # another role: its own buffers, none of these
    assert not _same_memory(masks, other)
    assert pool.nbytes == (1 << 25) + (1 << 24) + 128


def _heap() -> tuple[int, int] | None:
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:  # not Linux
        return None
    for line in lines:
        if line.endswith("[heap]"):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            return lo, hi
    return None


def test_large_buffers_live_outside_the_heap_and_go_back_to_the_system_when_let_go() -> None:
    """A role moving to a larger class lets its smaller buffer go: as a mapping of its own, its memory is
    returned whole (in the heap it left a hole that grew a 32k² run's peak above an 8k² run's)."""
    pool = BufferPool()
    small = pool.take((100,), np.uint8, "x")  # below OWN_MAPPING_BYTES: an ordinary array
    assert small.base is not None
    assert small.base.base is None
    narrow = pool.take((OWN_MAPPING_BYTES // 4,), np.float32, "labels")  # exactly 1 MiB
    holder = narrow.base.base  # the memoryview over the mapping
    assert isinstance(holder, memoryview)
    assert isinstance(holder.obj, mmap.mmap)
    mapping = weakref.ref(holder.obj)
    heap = _heap()
    if heap is not None:  # the buffer's address is not in the malloc heap
        assert not heap[0] <= narrow.__array_interface__["data"][0] < heap[1]
    narrow[:] = 1.5
    pool.give(narrow[10:20])  # a view: the whole buffer goes back
    again = pool.take((1000,), np.float32, "labels")  # no free buffer of its class: the role's larger one
    assert _same_memory(again, narrow)
    assert pool.nbytes == OWN_MAPPING_BYTES + 128
    pool.give(again)
    del narrow, holder, again
    wide = pool.take((OWN_MAPPING_BYTES // 2,), np.float32, "labels")  # 2 MiB: the 1 MiB buffer is let go
    assert mapping() is None  # unmapped: nothing of the pool or the caller holds it
    assert pool.nbytes == 2 * OWN_MAPPING_BYTES + 128
    wide[:] = 2.0
    pool.give(wide)
    assert float(pool.take((4,), np.float32, "labels")[0]) == 2.0  # the larger one serves smaller requests


def test_a_sparse_buffer_gives_its_written_pages_back_and_keeps_its_mapping() -> None:
    """Written in a different part by each use (a tile's labels, around its changes), a buffer would keep
    the union of those parts written: a longer run, more pages. Taken ``sparse``, its pages go back to the
    system when it is given back (read again, they are zeros), and the mapping itself is reused."""
    pool = BufferPool()
    n = 4 * OWN_MAPPING_BYTES
    a = pool.take((n,), np.uint8, "labels", sparse=True)
    a[: n // 2] = 7
    assert _resident_pages(a) >= n // 2 // mmap.PAGESIZE
    pool.give(a)
    assert _resident_pages(a) == 0
    b = pool.take((n,), np.uint8, "labels")  # the same buffer, now dense
    assert _same_memory(a, b)
    assert not b.any()
    b[:] = 3
    pool.give(b)  # dense: it keeps what it holds
    assert _resident_pages(b) == n // mmap.PAGESIZE
    assert (pool.take((n,), np.uint8, "labels") == 3).all()
    small = pool.take((100,), np.uint8, "small", sparse=True)  # in the heap: nothing to give back, kept
    small[:] = 5
    pool.give(small)
    assert (pool.take((100,), np.uint8, "small") == 5).all()


def _resident_pages(a: np.ndarray) -> int:
    """How many pages of ``a`` (page-aligned, as the pool's mappings are) are in memory (``mincore``)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    addr = a.__array_interface__["data"][0]
    assert addr % mmap.PAGESIZE == 0
    pages = -(-a.nbytes // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(a.nbytes), vec) == 0
    return sum(v & 1 for v in vec)


def test_views_come_back_whole_and_foreign_arrays_are_ignored() -> None:
    pool = BufferPool()
    a = pool.take((8, 8), np.int32)
    pool.give(a[2:4, 1:3])  # a crop of a pooled array: its buffer goes back
    assert _same_memory(pool.take((8, 8), np.int32), a)
    foreign = np.zeros((8, 8), np.int32)
    pool.give(foreign, foreign[:2], None)
    assert not _same_memory(pool.take((8, 8), np.int32), foreign)


def test_giving_twice_does_not_hand_a_buffer_out_twice() -> None:
    pool = BufferPool()
    a = pool.take((1000,), np.uint8)
    pool.give(a)
    pool.give(a)
    x, y = pool.take((1000,), np.uint8), pool.take((1000,), np.uint8)
    assert not _same_memory(x, y)


def test_zeros_and_clear() -> None:
    pool = BufferPool()
    a = pool.take((50,), np.int64)
    a[:] = 5
    pool.give(a)
    z = pool.zeros((50,), np.int64)
    assert _same_memory(z, a)
    assert not z.any()
    pool.clear()
    assert pool.nbytes == 0
    assert not _same_memory(pool.take((50,), np.int64), a)
    assert z.sum() == 0  # arrays in use stay valid after clear


def test_the_pool_holds_only_what_was_in_use_at_once_across_threads() -> None:
    pool = BufferPool()
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for i in range(200):
            a = pool.take((1000 + i % 7, 3), np.float32)  # ~12 KB: one class whatever the shape
            a[:] = 1
            pool.give(a)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool.nbytes <= 4 * 16384  # at most one buffer per thread in use at once


def test_roles_keep_their_own_buffers() -> None:
    """A buffer serves one role: one use that writes it in full and another that writes little of it would
    otherwise take turns on every buffer of the class, leaving each written in full."""
    pool = BufferPool()
    bands = pool.take((1000,), np.uint8, "bands")
    pool.give(bands)
    other = pool.take((1000,), np.uint8, "labels")
    assert not _same_memory(other, bands)  # the same class, another role: a new buffer
    assert _same_memory(pool.take((900,), np.uint8, "bands"), bands)
    pool.give(other)
    assert _same_memory(pool.zeros((250,), np.int32, "labels"), other)


def test_small_pages_turns_numpy_huge_page_advice_off_and_restores_it():
    """Nested and concurrent uses are counted: the advice is off while any is inside, then as it was."""
    import threading

    from numpy._core import multiarray

    from tuban.raster.grid import small_pages

    switch = multiarray._set_madvise_hugepage
    before = switch(True)  # the switch returns the previous setting
    try:
        with small_pages():
            assert switch(False) is False  # off inside (setting it again changes nothing)
            with small_pages():
                assert switch(False) is False
            assert switch(False) is False  # the inner exit did not restore it
            inside = threading.Event()
            leave = threading.Event()

            def other() -> None:
                with small_pages():
                    inside.set()
                    leave.wait(10)

            t = threading.Thread(target=other)
            t.start()
            inside.wait(10)
        assert switch(False) is False  # the other thread is still inside
        leave.set()
        t.join()
        assert switch(True) is True  # restored by the last to leave
        switch(False)
        with small_pages():
            pass
        assert switch(False) is False  # restores what was there, also when it was off
    finally:
        switch(before)


def test_a_detection_restores_numpy_huge_page_advice(tmp_path):
    from numpy._core import multiarray

    from tuban.detect.engine import detect
    from tuban.sim.fields import field_pair

    switch = multiarray._set_madvise_hugepage
    before = switch(True)
    try:
        before_tif, after_tif = field_pair(tmp_path, 512, site=True)
        res = detect(before_tif, after_tif, tile_size=256)
        assert len(res.patches) > 0  # the site
        assert switch(True) is True
    finally:
        switch(before)
