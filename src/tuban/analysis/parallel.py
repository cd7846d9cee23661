"""Chunked, threaded application of vectorized shapely / pyproj functions.

shapely 2 releases the GIL inside its vectorized functions, so splitting an array into
chunks and running them on threads uses several cores without copying geometries.
With ``workers=1`` (the library default) the function runs once on the whole array.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["default_workers", "pmap"]

MIN_CHUNK = 20_000


def default_workers() -> int:
    """Cores available to this process (at most 16)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(16, n))


def pmap(func: Callable[..., np.ndarray], *arrays: np.ndarray, workers: int = 1) -> np.ndarray:
    """``func(*arrays)`` computed chunk by chunk on up to *workers* threads (same result)."""
    n = len(arrays[0])
    k = min(int(workers), n // MIN_CHUNK)
    if k <= 1:
        return func(*arrays)
    bounds = np.linspace(0, n, k + 1).astype(int)

    def run(i: int) -> np.ndarray:
        return func(*(a[bounds[i]:bounds[i + 1]] for a in arrays))

    with ThreadPoolExecutor(k) as ex:
        return np.concatenate(list(ex.map(run, range(k))))
