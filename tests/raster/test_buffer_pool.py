"""grid.BufferPool: window-sized arrays handed back and given out again."""

from __future__ import annotations

import numpy as np

from tuban.raster.grid import BufferPool


def test_arrays_come_back_by_shape_and_dtype() -> None:
    pool = BufferPool(per_shape=2)
    a = pool.take((2, 3, 4), np.uint16)
    assert a.shape == (2, 3, 4)
    assert a.dtype == np.uint16
    pool.give(a)
    assert pool.take((2, 3, 4), np.uint16) is a  # the same memory again
    assert pool.take((2, 3, 4), np.uint16) is not a  # only one was handed back
    b = pool.take((3, 4), np.uint16)
    pool.give(b)
    assert pool.take((3, 4), bool) is not b  # another dtype: not interchangeable
    assert pool.take((4, 3), np.uint16) is not b  # another shape either


def test_views_are_not_kept_and_the_pool_is_bounded() -> None:
    pool = BufferPool(per_shape=2)
    base = np.zeros((4, 4), np.uint16)
    pool.give(base[:2])  # a view of someone else's array
    assert pool.take((2, 4), np.uint16).base is None
    arrays = [np.zeros((5, 5), np.uint16) for _ in range(4)]
    pool.give(*arrays)
    kept = [pool.take((5, 5), np.uint16) for _ in range(4)]
    assert sum(any(k is a for a in arrays) for k in kept) == 2
