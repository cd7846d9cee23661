"""``detect``: two dates → disturbance patches (扰动图斑), tiled, serial / local Dask / distributed.

Passes (each a set of independent window tasks):

1. sample windows spread over the scene (with the context their score needs) are read once; from them,
   one reduction computes the robust band statistics (median / MAD per date and band), the component
   statistics and the automatic threshold (Otsu on the score sample; ``threshold`` overrides);
2. every tile (core + halo ≥ the score's context and the morphology radius) → polygons clipped to the core.

A tile finishes its whole patches (holes and patches below the minimum mapping unit dropped, polygons
simplified, topology-preserving: :func:`kernel.finish_patches`); pieces cut by tile borders are merged at the
end (unary union of touching parts) and finished the same way; then the attributes are computed.
The sample windows depend only on the grid, so every tile size gives the same statistics and threshold.

One entry point for eager and lazy runs: ``detect(..., compute=False)`` builds a Dask graph
(:class:`dask.delayed.Delayed`) and reads no pixel; ``.compute()`` gives the :class:`DetectResult`.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tuban.detect import kernel
from tuban.detect.tiles import band_edges, band_width, sample_windows, tile_windows, visit_order
from tuban.errors import ClusterError, ConfigError, InputError, MissingCRSError, NoOverlapError, UsageError
from tuban.raster.grid import (
    GDAL_CACHE_BYTES,
    BufferPool,
    EdgeColumns,
    Grid,
    Window,
    analysis_grid,
    block_shape,
    cached_bytes,
    coverage,
    covering_window,
    small_pages,
)
from tuban.raster.scene import Scene, open_scene, with_dn_offset, with_reflectance_scale

__all__ = ["DetectResult", "Plan", "detect", "executor", "local_cluster", "plan", "serial_decode_threads", "warm"]

Progress = Callable[[str, int, int], None]


@dataclass
class DetectResult:
    """Patches (GeoDataFrame) and run facts (threshold, unobservable area, grid, method)."""

    patches: Any
    grid: Grid
    method: str
    threshold: float
    unobservable_fraction: float
    stats: kernel.Stats = field(repr=False, default_factory=kernel.Stats)
    #: how each date's clouds were found, by date key (``b``, ``a``, ``0``): see :func:`kernel.cloud_test`
    clouds: dict[str, str] = field(default_factory=dict)
    #: what the patches came from and how (:func:`provenance`): written beside them (``output.write_patches``)
    run: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, before any pixel is read: the job, sample windows, tiles, output options."""

    job: kernel.Job
    samples: tuple[Window, ...]
    tiles: tuple[Window, ...]
    threshold: float | None = None
    aoi: Any = None
    band: int = 0  # tile columns per band of the visiting order (tiles.visit_order); 0: whole rows

    def to_delayed(self):
        """The run as a Dask graph (``dask.delayed``); building it computes nothing."""
        from dask import delayed

        blocks = [delayed(kernel.sample_block, pure=True)(self.job, w) for w in self.samples]
        stats = delayed(kernel.scene_stats, pure=True)(self.job, blocks, threshold=self.threshold)
        pieces = [delayed(kernel.tile_pieces, pure=True)(self.job, t, stats) for t in self.tiles]
        return delayed(finish, pure=True)(self, pieces, stats)


_ARENAS_LIMITED = False


def _one_malloc_arena() -> None:
    """glibc only: threads created from now on allocate from the existing malloc arenas (``M_ARENA_MAX`` 1).

    By default every thread that allocates gets an arena of its own, which keeps what it freed: with a
    reader thread per date (tile-sized arrays, GDAL's cache blocks) the peak of a 32k² run rose ~40 MB
    above a one-arena run (758–777 vs 727 MB; 8k²: 703–723 vs 706–716 MB) and memory grew with the scene.
    Same speed (16k²: 11.27 s vs 11.47 s). Process-wide and once; elsewhere (not glibc) nothing happens.
    """
    global _ARENAS_LIMITED
    if _ARENAS_LIMITED:
        return
    _ARENAS_LIMITED = True
    _mallopt(-8, 1)  # M_ARENA_MAX


def _mallopt(param: int, value: int) -> None:
    """glibc's ``mallopt(param, value)`` for the whole process; elsewhere (not Linux, or not glibc: musl has
    no mallopt) nothing happens and the allocator keeps its defaults."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(param, value)
    except (OSError, AttributeError):
        pass


def _mmap_above(block_bytes: int) -> None:
    """glibc only: allocations larger than one of GDAL's cached blocks (``block_bytes``, at least 128 KiB,
    at most 32 MiB) get memory mappings of their own (``M_MMAP_THRESHOLD``).

    glibc's threshold otherwise rises to the largest mapped allocation freed (up to 32 MiB): after a run's
    first transient arrays of 0.5–2.3 MB (a tile's background cells, Gaussian parts) are freed, the next ones
    come from the heap, among GDAL's long-lived cache blocks, and leave holes there whose number depends on
    how the threads interleave. A serial run's peak varied by 10–70 MB from one run to the next, more than
    a 32k² run's differed from an 8k² run's. Fixed just above a block, the blocks (of one size) reuse each
    other's room in the heap, and larger arrays go back to the system whole when freed (a dozen a 2048
    tile). Process-wide, and it stays (glibc turns its moving threshold off); the last run's blocks set it.
    Elsewhere (not glibc, not Linux) nothing happens."""
    if block_bytes > 0:
        _mallopt(-3, int(min(max(block_bytes + 4096, 128 << 10), 32 << 20)))  # M_MMAP_THRESHOLD


#: tiles read ahead of the one being computed in a serial run. With one, the date readers idled whenever they
#: finished before the kernels (16k², 2 cores: 13.3–15.0 s wall); with two, 11.6–12.0 s (three: the same)
PREFETCH = 2


class _Serial:
    """Runs tasks in this process, in order; the reads on reader threads (see :meth:`run`)."""

    _reader = None
    _dates: dict[str, Any] | None = None

    def _read_on(self, job: kernel.Job):
        """The reader thread (it assembles the windows) and one thread per date of ``job`` under it: each
        date's open datasets, hence GDAL's decoded blocks, serve the sample windows and then every tile
        (datasets are per thread; a second thread reading the same file would decode its blocks again), and
        the dates of a window decode at once."""
        from concurrent.futures import ThreadPoolExecutor

        if self._reader is None:
            _one_malloc_arena()
            _mmap_above(job.block_bytes)
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="tuban-read")
            self._dates = {k: ThreadPoolExecutor(1, thread_name_prefix=f"tuban-read-{k}") for k in kernel.date_keys(job)}
        return self._reader

    def close(self) -> None:
        """End the reader threads, closing the files each opened (their datasets are per thread)."""
        from functools import partial

        from tuban.raster.grid import close_datasets

        for ex in [self._reader, *(self._dates or {}).values()]:
            if ex is not None:
                ex.submit(partial(close_datasets, this_thread=True)).result()
                ex.shutdown()
        self._reader = None
        self._dates = None

    def run(self, job: kernel.Job, samples: Sequence[Window], tiles: Sequence[Window], threshold: float | None,
            progress: Progress | None = None, *, band: int = 0) -> tuple[kernel.Stats, list[dict[str, Any]]]:
        """Statistics, then every tile's pieces (in the tiles' order, whatever the visiting order).

        The reads run on the reader threads, one per date (each keeps its files open, hence that date's
        decoded blocks, and the dates of a window decode at once): the sample windows first, then the first
        :data:`PREFETCH` tiles, queued before the statistics are computed so the date threads decode them
        meanwhile; then each tile is computed here while the next ones are read (the numba kernels, OpenCV
        and GDAL release the GIL), into buffers handed back after each tile
        (:class:`~tuban.raster.grid.BufferPool`: no fresh pages per tile). At the edges of the bands
        (:attr:`kernel.Job.edges`) each date's thread keeps the columns its windows need
        (:class:`~tuban.raster.grid.EdgeColumns`), so no block is decoded for two bands."""
        reader = self._read_on(job)
        dates = self._dates
        assert dates is not None
        with ExitStack() as stack:
            stack.enter_context(small_pages())  # the run's memory is touched once, then reused
            kept = {k: stack.enter_context(EdgeColumns(job.edges, 2 * job.halo, job.grid.height))
                    for k in dates} if job.edges else None
            halo = job.score_halo
            futures = [reader.submit(kernel.assemble_tile, job, w, kernel.submit_tile(job, w, dates, halo=halo),
                                     halo=halo) for w in samples]
            order = visit_order(tiles, band)
            pool = BufferPool()  # a tile's arrays come back together; the next tiles take them
            # blocks assembled and not yet released: the one computed and the next. The assembling thread
            # waits for a slot, so how many blocks hold their masks and background rows at once does not
            # depend on how far the reads ran ahead of the kernels (a 32k² run met three more often than an
            # 8k² one, and its pool kept the extra buffers); the date threads still read ahead
            slots = threading.Semaphore(PREFETCH)

            def assemble(*args: Any, **kw: Any) -> kernel.Block:
                slots.acquire()
                return kernel.assemble_tile(*args, **kw)

            def ahead_of(k: int, stats: kernel.Stats | None = None):
                # each date's thread has the next tiles queued, so it never waits for a tile to be assembled;
                # once the statistics are known the assembling thread also computes the tile's background
                # rows, which takes ~1/5 of the kernels' work off their thread (3 threads share 2 cores)
                return reader.submit(assemble, job, tiles[k],
                                     kernel.submit_tile(job, tiles[k], dates, pool, edges=kept), stats=stats,
                                     buffers=pool)

            ahead = deque(ahead_of(k) for k in order[:PREFETCH])
            blocks = []
            for i, f in enumerate(futures):
                blocks.append(f.result())
                if progress:
                    progress("statistics", i + 1, len(futures))
            stats = kernel.scene_stats(job, blocks, threshold=threshold)
            del blocks
            futures.clear()  # they hold the sample blocks (~50 MB) as their results
            spill = stack.enter_context(_Spill())
            # on the way out (an error included), no assembly waits for a slot that will never come back
            stack.callback(slots.release, PREFETCH + 1)
            for i, k in enumerate(order):
                blk = ahead.popleft().result()
                if i + PREFETCH < len(order):
                    ahead.append(ahead_of(order[i + PREFETCH], stats))
                spill.put(k, kernel.tile_pieces(job, tiles[k], stats, blk, pool))
                kernel.release(blk, pool)  # the pieces hold no pixel of the block
                slots.release()
                del blk
                if progress:
                    progress("tiles", i + 1, len(tiles))
            pool.clear()  # the tiles' buffers go before the pieces come back
            return stats, spill.take(len(tiles))


class _Spill:
    """Tile results parked in an unnamed temporary file (pickled) until the tile loop ends.

    The pieces of a scene grow with it (16 740 patches at 32k², 1 053 at 8k²); held in memory during the
    loop they add to its peak, which is otherwise set by the tile (and, scattered among the tiles'
    transient arrays, they keep the heap from being reused). Parked, the loop's memory does not depend on
    the scene; they are read back once the tiles' buffers are gone. Where the temporary directory cannot
    take them (full, read-only, missing), the results stay in memory: the run is the same, only its peak
    memory grows with the scene again."""

    def __enter__(self) -> _Spill:
        import tempfile

        self._at: dict[int, int] = {}
        self._held: dict[int, dict[str, Any]] = {}
        self._full = False
        try:
            self._file: Any = tempfile.TemporaryFile(prefix="tuban-pieces-")
        except OSError:
            self._file = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def put(self, k: int, result: dict[str, Any]) -> None:
        import pickle

        if self._file is not None and not self._full:
            at = self._file.tell()
            try:
                pickle.dump(result, self._file, protocol=pickle.HIGHEST_PROTOCOL)
                self._file.flush()  # a full disk says so now, not at the first read back
                self._at[k] = at
                return
            except OSError:  # e.g. the disk filled up: what is written stays readable, the rest stays here
                self._full = True
        self._held[k] = result

    def take(self, n: int) -> list[dict[str, Any]]:
        """The ``n`` results, by key ``0 … n - 1`` (each put once)."""
        import pickle

        out: list[dict[str, Any]] = [{}] * n
        for k, at in self._at.items():
            self._file.seek(at)
            out[k] = pickle.load(self._file)
        for k, r in self._held.items():
            out[k] = r
        return out


class _StatsThenTiles:
    """For executors that overlap nothing: :meth:`run` is their ``stats``, then their ``tiles``."""

    stats: Callable[..., kernel.Stats]
    tiles: Callable[..., list[dict[str, Any]]]

    def run(self, job: kernel.Job, samples: Sequence[Window], tiles: Sequence[Window], threshold: float | None,
            progress: Progress | None = None, *, band: int = 0) -> tuple[kernel.Stats, list[dict[str, Any]]]:
        stats = self.stats(job, samples, threshold, progress)
        return stats, self.tiles(job, tiles, stats, progress, band=band)


class _Threads(_StatsThenTiles, _Serial):
    """Runs tile tasks on a pool of threads in this process (OpenCV, numpy and GDAL release the GIL)."""

    def __init__(self, n: int):
        self.n = n

    def map(self, fn, items, label, progress=None):
        from concurrent.futures import ThreadPoolExecutor

        out = []
        with ThreadPoolExecutor(self.n, thread_name_prefix="tuban-detect") as pool:
            for i, r in enumerate(pool.map(lambda a: fn(*a), items)):
                out.append(r)
                if progress:
                    progress(label, i + 1, len(items))
        return out

    def stats(self, job: kernel.Job, samples: Sequence[Window], threshold: float | None,
              progress: Progress | None = None) -> kernel.Stats:
        blocks = self.map(kernel.sample_block, [(job, w) for w in samples], "statistics", progress)
        return kernel.scene_stats(job, blocks, threshold=threshold)

    def tiles(self, job: kernel.Job, tiles: Sequence[Window], stats: kernel.Stats,
              progress: Progress | None = None, *, band: int = 0) -> list[dict[str, Any]]:
        """Tiles taken in the visiting order (so the tiles running at once, and those after them, share
        halo blocks and the columns kept at band edges), results in the tiles' order."""
        order = visit_order(tiles, band)
        out: list[dict[str, Any]] = [{}] * len(tiles)
        try:
            for k, r in zip(order, self.map(kernel.tile_pieces, [(job, tiles[k], stats) for k in order], "tiles",
                                            progress), strict=True):
                out[k] = r
            return out
        finally:
            kernel.release_process_state()


def _strips(items: Sequence[Any], n: int) -> list[list[Any]]:
    """``items`` cut into ``n`` contiguous, nearly equal runs (order kept)."""
    n = max(1, min(n, len(items)))
    q, r = divmod(len(items), n)
    out, i = [], 0
    for k in range(n):
        j = i + q + (k < r)
        out.append(list(items[i:j]))
        i = j
    return out


class _Deal:
    """Which tile each of ``n`` workers takes next, from contiguous strips of ``order`` (one per worker).

    A worker goes forward through its own strip, so its GDAL block cache serves the halo rows each tile
    shares with the one before. Once its strip is done it takes from the far end of the strip with the most
    tiles left, walking it backwards (the tile before the last one it took is that one's neighbour: its cache
    serves that walk too), and keeps to that strip while it has tiles; the two walks meet somewhere inside
    it. So the workers end within about a tile of each other whatever the tiles cost, and every tile but
    those where walks meet finds its neighbour's blocks (Dask's own stealing, tried with the strips' last
    eighth unpinned, moves arbitrary tiles and lost both)."""

    def __init__(self, order: Sequence[int], n: int):
        self.strips = [deque(s) for s in _strips(order, n)]
        self.strips += [deque() for _ in range(n - len(self.strips))]  # fewer tiles than workers
        self._robbing: dict[int, int] = {}

    def add(self) -> int:
        """A worker more (one that joined the cluster): it has no strip, so it starts on the others' ends."""
        self.strips.append(deque())
        return len(self.strips) - 1

    def next(self, i: int) -> int | None:
        """The next tile for worker ``i``, or None when every tile has been dealt."""
        if self.strips[i]:
            return self.strips[i].popleft()
        j = self._robbing.get(i)
        if j is None or not self.strips[j]:
            j = max(range(len(self.strips)), key=lambda k: len(self.strips[k]))
            if not self.strips[j]:
                return None
            self._robbing[i] = j
        return self.strips[j].pop()


def _pin(worker: str) -> dict[str, Any]:
    """``submit`` arguments that name ``worker`` for a task, which may still run elsewhere (a worker lost);
    none for ``""`` (no worker known)."""
    return {"workers": [worker], "allow_other_workers": True} if worker else {}


class _Dask(_StatsThenTiles):
    """Runs tasks on a dask.distributed client (local cluster, or the scheduler at ``address``).

    A run that loses its ``--scheduler`` (killed, restarted, the network gone) starts again from the
    statistics on a new client once the scheduler answers again (:data:`SCHEDULER_TIMEOUT`), at most
    :attr:`RESTARTS` times: the tiles' results lived on the workers, which leave with their scheduler, and a
    run's output does not depend on where or how often its tiles ran, so the output is the same. A cluster
    with no worker for :data:`NO_WORKERS_TIMEOUT` (at the start, or every one lost meanwhile) ends the run
    with :class:`~tuban.errors.ClusterError` instead of waiting for ever."""

    #: runs started again after the scheduler was lost (each from the start)
    RESTARTS = 2

    def __init__(self, client, address: str | None = None):
        self.client = client
        self.address = address  # a --scheduler: reconnected to when lost; None: a local cluster's
        self._live: list[Any] = []  # the futures of the pass running: what :meth:`_watch` cancels
        self._stalled: str | None = None
        self.restarts = 0  # of the last run (its provenance says so)

    def run(self, job: kernel.Job, samples: Sequence[Window], tiles: Sequence[Window], threshold: float | None,
            progress: Progress | None = None, *, band: int = 0) -> tuple[kernel.Stats, list[dict[str, Any]]]:
        self.restarts = 0
        while True:
            try:
                with self._watch():
                    self._wait_for_workers()
                    return super().run(job, samples, tiles, threshold, progress, band=band)
            except ClusterError:
                raise
            except Exception as exc:
                if self._stalled is not None:
                    raise ClusterError(self._stalled, hint="start workers (dask worker tcp://HOST:PORT), or check "
                                       "why they died (memory, a batch system's time limit), then run again "
                                       "(nothing was written)") from None
                if not self._lost(exc):
                    raise
                if self.address is None or self.restarts >= self.RESTARTS:
                    again = f" (after {self.restarts} restarts)" if self.restarts else ""
                    raise ClusterError(f"the Dask scheduler{self._where} was lost during the run{again}: nothing was "
                                       "written", hint="restart the scheduler and its workers, then run again"
                                       ) from None
                self.restarts += 1
                self._reconnect()
                if progress:
                    progress("restart (the Dask scheduler was lost; it answers again)", self.restarts, self.RESTARTS)

    @property
    def _where(self) -> str:
        """`` at tcp://…`` for messages about a ``--scheduler``; empty for a local cluster."""
        return f" at {self.address}" if self.address else ""

    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` comes from losing the scheduler (the run's own errors come through as themselves)."""
        from distributed.comm import CommClosedError

        return (self.client.status != "running" or isinstance(exc, CommClosedError)
                or "scheduler-connection-lost" in str(exc))

    def _reconnect(self) -> None:
        """A new client to :attr:`address`, which answers within :data:`SCHEDULER_TIMEOUT` or the run ends."""
        from distributed import Client

        with suppress(Exception):
            self.client.close(timeout=5)
        try:
            self.client = Client(self.address, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError):
            raise ClusterError(f"the Dask scheduler at {self.address} was lost during the run and did not answer "
                               f"again within {SCHEDULER_TIMEOUT} s: nothing was written",
                               hint="restart the scheduler and its workers, then run again") from None

    def _wait_for_workers(self) -> None:
        """Wait until a worker has joined (a cluster still starting), at most :data:`NO_WORKERS_TIMEOUT`."""
        if self._threads():
            return
        try:
            self.client.wait_for_workers(1, timeout=NO_WORKERS_TIMEOUT)
        except TimeoutError:
            raise ClusterError(f"no Dask worker joined the scheduler{self._where} within {NO_WORKERS_TIMEOUT:g} s",
                               hint="start workers on the machines that should compute: dask worker "
                                    "tcp://HOST:PORT") from None

    @contextmanager
    def _watch(self):
        """While a run is in progress, a thread that looks at the cluster every :data:`WATCH_EVERY` seconds:
        with no worker for :data:`NO_WORKERS_TIMEOUT` it cancels the pass's tasks, so the run ends with that
        reason instead of waiting for ever for tasks no worker will run (Dask keeps them until a worker joins)."""
        import threading
        import time

        self._stalled = None
        stop = threading.Event()

        def watch() -> None:
            since: float | None = None
            while not stop.wait(WATCH_EVERY):
                try:
                    n = len(self._threads())
                except Exception:  # the scheduler is away: the run's own calls say so
                    continue
                if n:
                    since = None
                    continue
                since = time.monotonic() if since is None else since
                if time.monotonic() - since >= NO_WORKERS_TIMEOUT:
                    self._stalled = (f"every Dask worker of the scheduler{self._where} was lost during the run and none "
                                     f"joined again within {NO_WORKERS_TIMEOUT:g} s")
                    with suppress(Exception):
                        self.client.cancel(list(self._live))
                    return

        t = threading.Thread(target=watch, name="tuban-dask-watch", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=WATCH_EVERY + 1)
            self._live = []

    def _workers(self, threads: dict[str, int] | None = None) -> list[str]:
        """The workers' addresses in order (``[""]`` when none has joined yet), of ``threads`` when given."""
        return sorted(self._threads() if threads is None else threads) or [""]

    def _threads(self) -> dict[str, int]:
        """Each worker's threads (tasks it runs at once)."""
        return {w: int(info.get("nthreads", 1) or 1)
                for w, info in self.client.scheduler_info().get("workers", {}).items()}

    def stats(self, job: kernel.Job, samples: Sequence[Window], threshold: float | None,
              progress: Progress | None = None) -> kernel.Stats:
        """Statistics computed where the sample windows were read: one chunk of windows per worker, which
        keeps its blocks and sends back only the sampled values (band values, then components, then
        scores), never the blocks themselves. Same numbers as :func:`kernel.scene_stats` (chunks are
        concatenated in order)."""
        c = self.client
        workers = self._workers()
        chunks = [ch for ch in _strips(samples, len(workers)) if ch]
        blocks = [c.submit(kernel.sample_blocks, job, ch, pure=False, **_pin(workers[i % len(workers)]))
                  for i, ch in enumerate(chunks)]
        self._live = list(blocks)
        st = kernel.stats_from_values(self._over(blocks, kernel.sample_band_values, job))
        if progress:
            progress("statistics", 1, 3)
        comps = self._over(blocks, kernel.sample_component_values, job, st)
        st = kernel.stats_from_values([], comps, threshold=threshold, stats=st)
        if progress:
            progress("statistics", 2, 3)
        if threshold is None:
            scores = self._over(blocks, kernel.sample_score_values, job, st)
            st = kernel.stats_from_values([], None, scores, stats=st)
        if progress:
            progress("statistics", 3, 3)
        del blocks
        self._live = []  # the workers let go of the sample blocks
        return st

    def _over(self, blocks: list[Any], fn: Callable[..., Any], job: kernel.Job, *args: Any) -> list[Any]:
        """``fn(job, block, *args)`` where each of the kept sample ``blocks`` is, gathered in order."""
        fs = [self.client.submit(fn, job, b, *args, pure=False) for b in blocks]
        self._live += fs
        return self.client.gather(fs)

    #: tile tasks each worker has queued beyond the ones its threads run: its next tile is there before it
    #: finishes the current one (a round trip through the scheduler takes milliseconds), and the tiles not yet
    #: dealt stay here for :class:`_Deal` to hand to whichever worker is free. Each queued tile is one a worker
    #: done early cannot take: with 2, the workers of a 16k² run ended up to 0.25 s apart
    AHEAD = 1
    #: seconds between looks for workers that joined the cluster during the run (an adaptive cluster scaling
    #: up, workers of a batch system still starting): they are dealt tiles too
    JOINED_EVERY = 1.0

    def tiles(self, job: kernel.Job, tiles: Sequence[Window], stats: kernel.Stats,
              progress: Progress | None = None, *, band: int = 0) -> list[dict[str, Any]]:
        """Tiles dealt a few at a time by :class:`_Deal`: each worker its own contiguous strip of the
        visiting order (rows, or column bands), then the far ends of the others'; a worker has one tile per
        thread plus :attr:`AHEAD` at any time. Each task names its worker but may run elsewhere (a worker
        lost meanwhile: Dask moves its tasks)."""
        import time

        from distributed import as_completed

        c = self.client
        threads = self._threads()
        workers = self._workers(threads)
        deal = _Deal(visit_order(tiles, band), len(workers))
        futures: list[Any] = []
        self._live = futures
        dealt: dict[str, tuple[int, int]] = {}  # task key → (tile, worker)

        def submit(i: int) -> Any:
            k = deal.next(i)
            if k is None:
                return None
            futures.append(c.submit(kernel.tile_pieces, job, tiles[k], stats, pure=False, **_pin(workers[i])))
            dealt[futures[-1].key] = (k, i)
            return futures[-1]

        def deal_to(i: int, n: int) -> list[Any]:
            return [f for _ in range(n + self.AHEAD) if (f := submit(i)) is not None]

        try:
            running = as_completed([f for i, w in enumerate(workers) for f in deal_to(i, threads.get(w, 1))])
            looked = time.monotonic()
            for done, f in enumerate(running, 1):
                if time.monotonic() - looked > self.JOINED_EVERY:
                    looked = time.monotonic()
                    for w, n in self._threads().items():
                        if w not in workers:
                            workers.append(w)
                            running.update(deal_to(deal.add(), n))
                if f.status != "finished":
                    # raises the task's error (or that it was cancelled); nothing more is dealt. Dask reports
                    # the error of a task with named workers late (after the others on that worker, seen in
                    # tests), so the run may finish the tiles it had dealt before it stops
                    f.result()
                if (g := submit(dealt[f.key][1])) is not None:
                    running.add(g)
                if progress:
                    progress("tiles", done, len(tiles))
            out: list[dict[str, Any]] = [{}] * len(tiles)
            for f, result in zip(futures, c.gather(futures), strict=True):
                out[dealt[f.key][0]] = result  # in the tiles' order
            return out
        finally:
            c.cancel([f for f in futures if not f.done()])
            # the columns each worker kept at band edges; best effort: a worker lost meanwhile must not hide
            # the run's own result or error (its files go with its process)
            with suppress(Exception):
                c.run(kernel.release_process_state)


#: seconds to wait for a ``--scheduler`` to answer (a cluster's scheduler on a slow network included), at the
#: start and again after losing it during a run
SCHEDULER_TIMEOUT = 30
#: seconds a run waits for a worker when its cluster has none (still starting, e.g. a batch system's; or every
#: one lost) before it ends with a :class:`~tuban.errors.ClusterError`
NO_WORKERS_TIMEOUT = 300.0
#: seconds between the looks of a run's watch on its cluster (:meth:`_Dask._watch`)
WATCH_EVERY = 1.0


@contextmanager
def executor(*, workers: int | None = None, scheduler: str | None = None, threads: int = 1):
    """Yield an executor whose ``run(job, samples, tiles, threshold, progress, band=)`` gives the statistics
    and every tile's pieces (in the tiles' order).

    ``workers=None`` and no scheduler: in this process, on ``threads`` threads (1: serial). ``workers=N``
    (N ≥ 1): a local cluster of N single-threaded worker processes (so 1 and 2 workers compare like with
    like). ``scheduler``: an existing dask.distributed scheduler.
    """
    if scheduler and workers:
        raise UsageError("give either --workers or --scheduler, not both")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if not scheduler and not workers:
        ex = _Threads(threads) if threads > 1 else _Serial()
        try:
            yield ex
        finally:
            ex.close()
        return
    from distributed import Client

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"no Dask scheduler answers at {scheduler}: {exc}",
                              hint="start one (dask scheduler; dask worker tcp://HOST:8786 on each machine) or "
                                   "check --scheduler tcp://HOST:PORT") from exc
    else:
        cluster = local_cluster(int(workers or 1))
        client = Client(cluster)
    dask_ex = _Dask(client, scheduler)
    try:
        yield dask_ex
    finally:
        dask_ex.client.close()  # the run's last client (a new one after a restart)
        if cluster is not None:
            cluster.close()


#: dask settings of the local clusters :func:`local_cluster` starts (what ``--workers`` changes in dask's
#: defaults):
#: - the event loops' blocked-loop tick every second instead of every 20 ms, the system monitor (CPU / memory
#:   figures for dashboards) every 5 s instead of 0.5 s: on 2 cores the client's threads (scheduler, client)
#:   then took 0.6–0.9 instead of 1.0–1.2 CPU-s of a 12–14 s run of 2 workers at 16k², CPU the workers gave up;
#: - no ``MALLOC_TRIM_THRESHOLD_`` for the worker processes. Dask's nannies set it (65536) so that workers give
#:   memory back to the OS, but setting it turns off glibc's dynamic mmap threshold, so every temporary array
#:   above 128 KB comes from fresh mmap'd pages: the same 64 tiles of 2048 at 16k² took 18.0 CPU-s in such a
#:   worker, 15.1–15.2 without it, and 16.0 in this process. Left as it is when the environment already has it
#:   (a user's setting, or a nanny of a cluster started earlier in this process);
#: - no statistical profiler in the workers. Each samples its task thread's stack every 10 ms on its event loop,
#:   for the dashboard's profile page, and these clusters serve no dashboard: ~0.5 CPU-s a worker in a 15 s run.
#:   With one worker that CPU ran on the idle core; with two it is taken from the tiles (16k², 2 workers: 8.99,
#:   8.12 s with it, 8.08, 7.38 s without);
#: - no work stealing: :class:`_Deal` balances the tiles itself (a stolen tile loses its worker's cached halo
#:   blocks and edge columns), and the scheduler's stealing bookkeeping ran on every task's transitions;
#: - the memory monitors (each worker's, and its nanny's in this process) every 0.5 s instead of 0.1 s: a tile's
#:   memory is bounded, and the polls woke the event loops ten times a second.
#:   Together the scheduler's loop took 0.22–0.24 instead of 0.30–0.37 CPU-s of a 2-worker 16k² run and each
#:   worker's 0.10–0.12 instead of 0.13–0.19; the 2 ÷ 1 worker ratio, 6 interleaved pairs each way:
#:   1.77–1.87 (median 1.80) against 1.69–1.80 (1.74).
LOCAL_CLUSTER_CONFIG = {"distributed.admin.tick.interval": "1s", "distributed.admin.system-monitor.interval": "5s",
                        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                        "distributed.worker.profile.enabled": False,
                        "distributed.scheduler.work-stealing": False,
                        "distributed.worker.memory.monitor-interval": "500ms"}


def local_cluster(workers: int):
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes on 127.0.0.1, as
    ``--workers`` starts it: no dashboard (at a random port nobody is told of it served no one, and its updates
    cost the scheduler ~0.2 CPU-s in a 13 s run), the scheduler's HTTP server on a random local port, and
    :data:`LOCAL_CLUSTER_CONFIG`."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read when the scheduler and the workers start
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                            host="127.0.0.1")


def warm() -> None:
    """Once per process, before timing a run (benchmarks; Dask workers via ``client.run(warm)``): import
    the modules a run imports lazily (OpenCV, GDAL's vectoriser, shapely, pyproj, geopandas: ~0.4 s CPU)
    and load or compile the numba kernels. A run works the same without it."""
    import cv2  # noqa: F401
    import geopandas  # noqa: F401
    import pyproj  # noqa: F401
    import shapely  # noqa: F401
    from rasterio import features  # noqa: F401

    from tuban.detect import attributes  # noqa: F401
    from tuban.raster import fused, vectorize

    fused.warm()
    vectorize.warm()


def _ha_factor(grid: Grid) -> float:
    """Hectares per square CRS unit near the grid's centre."""
    import shapely

    from tuban.detect.attributes import area_ha

    x0, y0, x1, y1 = grid.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = grid.res
    box = shapely.box(cx, cy, cx + rx, cy + ry)
    return float(area_ha(np.asarray([box]), grid.crs)[0]) / (rx * ry)


def merge_pieces(results: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union pieces that touch across tile seams; sum their per-piece sums.

    Returns the patches, their sums and a mask of those that are new unions (the others, whole patches of
    one tile, were finished by their tile: :func:`kernel.finish_patches`)."""
    import shapely

    held = [r for r in results if len(r["geoms"])]
    if not held:
        return np.zeros(0, dtype=object), np.zeros((0, len(kernel.SUMS))), np.zeros(0, bool)
    geoms = np.concatenate([r["geoms"] for r in held])
    sums = np.concatenate([r["sums"] for r in held])
    seam = np.concatenate([r["seam"] for r in held])
    inner_g, inner_s = geoms[~seam], sums[~seam]
    merged_g, merged_s = np.zeros(0, dtype=object), np.zeros((0, sums.shape[1]))
    seam_g, seam_s = geoms[seam], sums[seam]
    if seam_g.size:
        merged_g = shapely.get_parts(shapely.unary_union(seam_g))
        tree = shapely.STRtree(merged_g)
        pts = shapely.point_on_surface(seam_g)
        pi, mi = tree.query(pts, predicate="intersects")
        merged_s = np.zeros((len(merged_g), sums.shape[1]))
        _, first = np.unique(pi, return_index=True)
        np.add.at(merged_s, mi[first], seam_s[pi[first]])
    fresh = np.concatenate([np.zeros(len(inner_g), bool), np.ones(len(merged_g), bool)])
    return np.concatenate([inner_g, merged_g]), np.concatenate([inner_s, merged_s]), fresh


def plan(
    before: str | Scene,
    after: str | Scene,
    *,
    baseline: str | Scene | None = None,
    sensor: str | None = None,
    bands: tuple[str, ...] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    mmu_ha: float = 0.04,
    tile_size: int = 2048,
    resolution: float | None = None,
    crs: str | None = None,
    aoi: Any = None,
    masks: bool = True,
    water: bool = False,
    simplify_px: float = 0.5,
    sample_pixels: int = 1_500_000,
    gdal_threads: str | int = 1,
    reflectance_scale: float | None = None,
    dn_offset: float | None = None,
) -> Plan:
    """Open the scenes (metadata only), fix the grid, tiles and sample windows; reads no pixel."""
    _check_options(mmu_ha=mmu_ha, tile_size=tile_size, threshold=threshold, resolution=resolution,
                   simplify_px=simplify_px, sample_pixels=sample_pixels)

    def _open(s: str | Scene | None) -> Scene | None:
        if s is None:
            return s
        if isinstance(s, Scene):
            s = s if dn_offset is None else with_dn_offset(s, dn_offset)
            return s if reflectance_scale is None else with_reflectance_scale(s, reflectance_scale)
        return open_scene(s, sensor=sensor, bands=bands, reflectance_scale=reflectance_scale, dn_offset=dn_offset)

    b, a, z = _open(before), _open(after), _open(baseline)
    assert b is not None
    assert a is not None
    grid = analysis_grid(b, a, resolution=resolution, crs=crs)
    if z is not None and (share := coverage(z, grid)) < 0.25:
        raise NoOverlapError(f"the baseline date covers {share:.0%} of the dates' common area, below 25 %",
                             hint="pick a baseline scene of the same footprint (the same season, an earlier year)")
    metres = float(np.sqrt(_ha_factor(grid) * 1e4)) * grid.res[0]
    job = kernel.Job(b, a, grid, method, z, masks, water, kernel.background_cell(metres), str(gdal_threads),
                     min_area=mmu_ha / _ha_factor(grid), simplify=max(0.0, simplify_px) * grid.res[0])
    job.change_method()  # validates roles early
    # sample windows inside the files' own blocks (one decoded block per window and file), when both
    # dates share one block layout on the grid
    blk = block_shape(b, grid)
    if blk is not None and block_shape(a, grid) != blk:
        blk = None
    samples = sample_windows(grid, max_pixels=sample_pixels, block=blk)
    dates = [s for s in (b, a, z) if s is not None]
    cached = [cached_bytes(s) for s in dates]  # (bytes per pixel, largest block) of each date's files
    band = band_width(tile_size, job.halo, blk, sum(c[0] for c in cached), GDAL_CACHE_BYTES)
    edges = band_edges(grid, tile_size, band) if job.halo < tile_size else ()
    tiles = tile_windows(grid, tile_size, shift=job.halo if edges else 0)
    if aoi is not None:
        # only the tiles within a halo of the AOI's bounds: its pixels get the context they get in a whole
        # run, a patch that reaches the AOI and leaves these tiles is far above any MMU, and the statistics
        # stay the scene's (the sample costs little), so the patches are the whole run's inside the AOI
        aoi = aoi_geometry(aoi, grid.crs)
        near = covering_window(grid, aoi.bounds, margin=job.halo)
        tiles = [t for t in tiles if t.row < near.row + near.height and near.row < t.row + t.height
                 and t.col < near.col + near.width and near.col < t.col + t.width]
    job = replace(job, edges=edges, block_bytes=max(c[1] for c in cached))
    return Plan(job, tuple(samples), tuple(tiles), threshold, aoi, band)


#: the smallest tile: its core must outweigh the halo every tile reads around it (~65 px at 10 m)
MIN_TILE_SIZE = 64


def _check_options(*, mmu_ha: float, tile_size: int, threshold: float | None, resolution: float | None,
                   simplify_px: float, sample_pixels: int) -> None:
    """:class:`UsageError` naming the option whose value cannot work (before anything is opened)."""
    bad = []
    if not (math.isfinite(mmu_ha) and mmu_ha >= 0):
        bad.append(f"--mmu-ha must be 0 or more hectares, got {mmu_ha}")
    if tile_size < MIN_TILE_SIZE:
        bad.append(f"--tile-size must be at least {MIN_TILE_SIZE} pixels, got {tile_size}")
    if threshold is not None and not math.isfinite(threshold):
        bad.append(f"--threshold must be a number, got {threshold}")
    if resolution is not None and not (math.isfinite(resolution) and resolution > 0):
        bad.append(f"--resolution must be a positive number of CRS units, got {resolution}")
    if not (math.isfinite(simplify_px) and simplify_px >= 0):
        bad.append(f"simplify_px must be 0 or more, got {simplify_px}")
    if sample_pixels < 1000:
        bad.append(f"sample_pixels must be at least 1000, got {sample_pixels}")
    if bad:
        raise UsageError("; ".join(bad), hint="tuban detect --help lists the options and their defaults")


def aoi_geometry(aoi: Any, crs: str) -> Any:
    """An area of interest as one shapely geometry in ``crs``: a GeoSeries or GeoDataFrame (any CRS, e.g.
    :func:`tuban.detect.output.read_aoi`'s CGCS2000) is transformed and unioned; a shapely geometry is taken
    to be in ``crs`` already."""
    if hasattr(aoi, "to_crs"):
        if aoi.crs is None:
            raise MissingCRSError("the AOI has no CRS", hint="set one (GeoSeries.set_crs) or pass a shapely "
                                                             "geometry in the grid's CRS")
        aoi = aoi.to_crs(crs).union_all()
    if aoi is None or aoi.is_empty:
        raise InputError("the AOI is empty", hint="pass polygons that cover the area to look at")
    return aoi


def finish(p: Plan, results: Sequence[dict[str, Any]], stats: kernel.Stats) -> DetectResult:
    """Merge the tiles' pieces into patches: seams, MMU, holes, simplification, AOI, attributes."""
    import shapely

    from tuban.detect.attributes import patch_table

    grid = p.job.grid
    geoms, sums, fresh = merge_pieces(results)
    unobs = sum(int(r["unobservable_px"]) for r in results) / max(1, sum(int(r["pixels"]) for r in results))
    if geoms.size:
        # the unions across seams get the steps the tiles gave their whole patches: holes below the MMU
        # filled, patches below it dropped, topology-preserving simplification
        geoms, kept = kernel.finish_patches(geoms, p.job.min_area, p.job.simplify, which=fresh)
        sums = sums[kept]
        if p.aoi is not None:
            hit = shapely.intersects(geoms, p.aoi)
            geoms, sums = shapely.intersection(geoms[hit], p.aoi), sums[hit]
        order: np.ndarray = (np.lexsort((shapely.bounds(geoms)[:, 0], -shapely.bounds(geoms)[:, 3]))
                             if geoms.size else np.zeros(0, dtype=np.intp))
        geoms, sums = geoms[order], sums[order]
    table = patch_table(geoms, sums, grid.crs, stats.threshold)
    clouds = kernel.cloud_tests(p.job)
    return DetectResult(table, grid, p.job.change_method().name, stats.threshold, unobs, stats, clouds,
                        provenance(p, stats, clouds, unobs, len(table)))


def _crs_name(wkt: str) -> str:
    """``EPSG:n`` for a CRS that has a code, else its WKT."""
    from pyproj import CRS

    code = CRS.from_user_input(wkt).to_epsg()
    return f"EPSG:{code}" if code else wkt


def provenance(p: Plan, stats: kernel.Stats, clouds: dict[str, str], unobservable: float, patches: int
               ) -> dict[str, str]:
    """The facts behind a run's patches, as text: each date's scene (name, sensor, files, reflectance scale, DN
    offset, cloud test), the grid, the method, the threshold and the rule that set it, the MMU, the tiles, the
    unobservable share; what a reviewer asks when a patch is questioned."""
    import datetime

    import tuban
    from tuban.raster import masks

    job = p.job
    out = {"tuban": tuban.__version__, "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "method": job.change_method().name, "threshold": f"{stats.threshold:.6g}",
           "threshold_rule": stats.threshold_rule, "mmu_px": f"{job.min_area / (job.grid.res[0] * job.grid.res[1]):.6g}",
           "grid_crs": _crs_name(job.grid.crs), "grid_transform": ", ".join(f"{v:.10g}" for v in job.grid.transform),
           "grid_size": f"{job.grid.width} x {job.grid.height}", "tiles": str(len(p.tiles)),
           "unobservable_fraction": f"{unobservable:.6g}", "patches": str(patches), "aoi": "yes" if p.aoi is not None
           else "no"}
    for key, scene in kernel._dates(job).items():
        date = {"b": "before", "a": "after", "0": "baseline"}[key]
        out[f"{date}_scene"] = scene.name
        out[f"{date}_sensor"] = scene.sensor
        out[f"{date}_files"] = "; ".join(sorted({scene.source(b.path) for b in scene.bands.values()}))
        out[f"{date}_bands"] = ", ".join(f"{r}={b.index}" for r, b in scene.bands.items())  # role=band of its file
        out[f"{date}_reflectance_scale"] = "none" if scene.scale is None else f"{scene.scale:.6g}"
        out[f"{date}_dn_offset"] = str(scene.dn_offset)
        test = clouds.get(key, "")
        # which flags, where the sensor's own: QA_PIXEL, the L2A classification or the MSK_CLASSI layers
        out[f"{date}_clouds"] = f"{test}: {', '.join(masks.cloud_flags(scene.bands))}" if test == "qa" else test
    return out


def serial_decode_threads(dates: int = 2) -> int:
    """GDAL decoding threads per date in a serial run: the cores besides the kernels' thread, shared by the
    dates' reader threads, at least 1. On 2 cores that is 1: measured at 16k² (two date threads and the
    kernels), ``ALL_CPUS`` per date took 14.8 s and 25.8 CPU-s against 13.6 s and 22.6 CPU-s: GDAL's pool
    only added its overhead to cores that were already busy."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, (cores - 1) // max(1, dates))


def detect(
    before: str | Scene,
    after: str | Scene,
    *,
    baseline: str | Scene | None = None,
    sensor: str | None = None,
    bands: tuple[str, ...] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    mmu_ha: float = 0.04,
    tile_size: int = 2048,
    workers: int | None = None,
    scheduler: str | None = None,
    resolution: float | None = None,
    crs: str | None = None,
    aoi: Any = None,
    masks: bool = True,
    water: bool = False,
    simplify_px: float = 0.5,
    sample_pixels: int = 1_500_000,
    gdal_threads: str | int | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    compute: bool = True,
    reflectance_scale: float | None = None,
    dn_offset: float | None = None,
) -> Any:
    """Detect disturbance patches between two dates.

    Parameters
    ----------
    before, after, baseline
        scenes (paths accepted by :func:`tuban.raster.scene.open_scene`, or :class:`Scene`).
    method
        a change method (``construction`` default, ``rgb``, ``cva``, ``expr:<index>``).
    threshold
        manual score threshold (robust-z units); ``None``: Otsu on the scene-wide sample.
    mmu_ha
        minimum mapping unit in hectares (patches and holes smaller than this are dropped).
    tile_size, workers, scheduler
        tiling and parallelism; results do not depend on them. ``workers=N`` starts a local cluster of N
        processes; ``None`` runs serially in this process. Tiles of 2048 (the default) carry half the halo
        overhead of 1024 ones (+12 % pixels instead of +24 %) and ran ~10 % faster on the 16k² bench pair,
        for ~950 MB peak memory at any scene size instead of ~650 (``bench/bench_detect_speed.py``).
    aoi
        area of interest: a GeoSeries / GeoDataFrame in any CRS (:func:`tuban.detect.output.read_aoi`), or a
        shapely geometry in the grid's CRS. Only the tiles near it are read (besides the statistics' scene-wide
        sample), and the patches are the whole run's, clipped to it.
    gdal_threads
        ``GDAL_NUM_THREADS`` for decoding, per date (default: 1 per worker; in a serial run, where each date
        decodes on its own thread beside the kernels' thread, the cores left over shared by the dates:
        :func:`serial_decode_threads`).
    threads
        without workers or scheduler: tiles run on this many threads of this process (default 1: serial;
        OpenCV and GDAL already use every core inside one tile, and more Python threads measured slower
        on 2 cores). Results do not depend on it.
    compute
        ``False``: return the run as a Dask graph (``dask.delayed``) without reading any pixel.
    reflectance_scale
        DN × this = reflectance 0–1 (1: float reflectance), for scenes whose sensor profile and files do not
        say (GF-1/2/6 delivered as reflectance × 10000: 0.0001): the spectral cloud and shadow tests need it.
        ``DetectResult.clouds`` tells how each date's clouds were found.
    dn_offset
        what the products added to every DN (Sentinel-2 from processing baseline 04.00, 25 January 2022:
        1000; Landsat Collection 2 Level-2: 7272.7, the Landsat profiles' own), subtracted where bands are
        read (to the nearest DN), for files that do not say it themselves. Without it such a product's
        reflectance reads 0.1 high: its NDVI, cloud and shadow tests are off.

    Returns
    -------
    DetectResult, or a ``dask.delayed.Delayed`` computing to one when ``compute=False``.
    """
    if gdal_threads is None:
        gdal_threads = serial_decode_threads(2 if baseline is None else 3) if not workers and not scheduler else 1
    p = plan(before, after, baseline=baseline, sensor=sensor, bands=bands, method=method, threshold=threshold,
             mmu_ha=mmu_ha, tile_size=tile_size, resolution=resolution, crs=crs, aoi=aoi, masks=masks,
             water=water, simplify_px=simplify_px, sample_pixels=sample_pixels, gdal_threads=gdal_threads,
             reflectance_scale=reflectance_scale, dn_offset=dn_offset)
    if not compute:
        return p.to_delayed()
    with executor(workers=workers, scheduler=scheduler, threads=threads or 1) as ex:
        stats, results = ex.run(p.job, p.samples, p.tiles, threshold, progress, band=p.band)
        restarts = getattr(ex, "restarts", 0)
    res = finish(p, results, stats)
    if restarts:  # the scheduler was lost and the run started again (the output is the same)
        res.run["scheduler_restarts"] = str(restarts)
    return res
