"""Detection speed: ratios measured in one run on a generated 4-band uint16 DEFLATE COG pair.

Prints: end-to-end throughput / decode-only throughput (target ≥ 0.7) and the ceiling of that ratio at the
run's CPU seconds (every core busy throughout), the same ratio with the score computed on every pixel (the
bound that spares most of this flat pair's score gives up on textured real scenes), 2 workers / 1 worker (≥ 1.7; both runs on a local cluster of
worker processes, so the ratio measures scaling, not start-up), OpenCV / scipy 3×3 opening, our vectorisation /
``gdal_polygonize.py`` on the same mask (≤ 1.3× its time) and, with ``--memory A,B``, the peak resident memory
of a detection run (own process) on A² and B² scenes.

Usage: ``python bench/bench_detect_speed.py [--size 4096] [--tile-size 2048] [--dir DIR] [--memory 2048,8192]
[--skip-workers] [--worker-tile-size 2048] [--worker-repeat 3] [--memory-only] [--memory-repeat 3] [--s2]``
(``--size 16384`` for the full-size check; ``--dir`` keeps the generated files; ``--memory 8192,32768
--memory-only`` for the memory check, whose pairs are generated block by block, in bounded memory, as tiled
DEFLATE GeoTIFFs; ``--s2``: a Sentinel-2-like band-folder pair instead, 10 m and 20 m bands in one file each).
The files are read into the page cache before the clocks. Decode-only decodes with ``GDAL_NUM_THREADS=ALL_CPUS``
(GDAL's own pool on every core, file after file) and, on a second line, every file at once on a thread of its
own; the serial detection decodes each date on its own thread. The numba kernels are warmed (timed
separately) before the clocks, in this process and in every worker.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def make_pair(d: Path, size: int, *, cog: bool = True) -> tuple[Path, Path]:
    """A 4-band uint16 DEFLATE pair of ``size``², written block by block (memory bounded by one block row
    of 1024 pixels, whatever the size): a textured vegetated scene, and the same with bare-soil sites.

    Sites (61 × 53 px, every 305 × 212 px, 5 % of the scene) are dense enough that every statistics sample
    window holds some change, as a real scene with construction does (a sample of pure noise would give
    Otsu a threshold inside the noise and 10⁵ noise patches: a different workload at every size).
    ``cog``: converted to a COG (with overviews, as delivered imagery); ``False``: a tiled GeoTIFF of the
    same 512² DEFLATE blocks (what the detection reads; faster to write, for the memory check).
    """
    import rasterio
    from affine import Affine
    from rasterio.shutil import copy as rio_copy

    rng = np.random.default_rng(0)
    paths = []
    block = 1024
    veg = np.array([400, 700, 400, 3500], np.float32)[:, None, None]
    soil = np.array([1300, 1600, 1900, 2600], np.float32)[:, None, None]
    for name, changed in (("before", False), ("after", True)):
        tmp = d / (f"{name}_tmp.tif" if cog else f"{name}.tif")
        prof = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16",
                "crs": "EPSG:32650", "transform": Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0),
                "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        with rasterio.open(tmp, "w", **prof) as dst:
            for i, role in enumerate(("blue", "green", "red", "nir")):
                dst.set_band_description(i + 1, role)
            for r in range(0, size, block):
                h = min(block, size - r)
                yy = np.arange(r, r + h)
                sy = (0.1 * np.sin(yy / 37.0)).astype(np.float32)
                site_y = (yy // 61) % 5 == 2
                for c in range(0, size, block):
                    w = min(block, size - c)
                    xx = np.arange(c, c + w)
                    tex = 1 + sy[:, None] * np.cos(xx / 23.0).astype(np.float32)[None, :]
                    arr = veg * tex * (1 + np.float32(0.03) * rng.standard_normal((4, h, w), dtype=np.float32))
                    if changed:
                        site = site_y[:, None] & ((xx // 53) % 4 == 1)[None, :]
                        arr = np.where(site[None], soil * tex, arr)
                    dst.write(arr.astype(np.uint16), window=rasterio.windows.Window(c, r, w, h))
        out = d / f"{name}.tif"
        if cog:
            rio_copy(tmp, out, driver="COG", compress="DEFLATE", blocksize=512, BIGTIFF="IF_SAFER")
            tmp.unlink()
        paths.append(out)
    return paths[0], paths[1]


S2_BANDS = (("B02", 0), ("B03", 1), ("B04", 2), ("B08", 3))


def make_s2_pair(d: Path, size: int) -> tuple[Path, Path]:
    """A Sentinel-2-like band-folder pair from the 4-band pair of :func:`make_pair` (made first, in ``d``):
    ``*_B02/B03/B04/B08.tif`` at ``size``² (10 m) and ``*_B11/B12.tif`` at (``size`` / 2)² (20 m, 2×2 means
    of NIR and red), single-band tiled DEFLATE GeoTIFFs with 512² blocks, one folder per date."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    four = make_pair(d, size) if not (d / "after.tif").exists() else (d / "before.tif", d / "after.tif")
    out = []
    for name, path in zip(("before", "after"), four, strict=True):
        folder = d / f"s2_{name}"
        folder.mkdir(exist_ok=True)
        with rasterio.open(path) as src:
            prof = {"driver": "GTiff", "dtype": "uint16", "count": 1, "crs": src.crs, "tiled": True,
                    "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
            t = src.transform
            t20 = Affine(t.a * 2, 0, t.c, 0, t.e * 2, t.f)
            dst = {b: rasterio.open(folder / f"T50_20200101_{b}.tif", "w", width=size, height=size, transform=t,
                                    **prof) for b, _ in S2_BANDS}
            dst |= {b: rasterio.open(folder / f"T50_20200101_{b}.tif", "w", width=size // 2, height=size // 2,
                                     transform=t20, **prof) for b in ("B11", "B12")}
            try:
                for r in range(0, size, 1024):
                    for c in range(0, size, 1024):
                        w = Window(c, r, min(1024, size - c), min(1024, size - r))
                        a = src.read(window=w).astype(np.float32)
                        for b, i in S2_BANDS:
                            dst[b].write(a[i].astype(np.uint16), 1, window=w)
                        h2, w2 = a.shape[1] // 2, a.shape[2] // 2
                        half = a[:, : 2 * h2, : 2 * w2].reshape(4, h2, 2, w2, 2).mean(axis=(2, 4))
                        w20 = Window(c // 2, r // 2, w2, h2)
                        dst["B11"].write((0.6 * half[3] + 0.5 * half[2]).astype(np.uint16), 1, window=w20)
                        dst["B12"].write((0.4 * half[3] + 0.6 * half[2]).astype(np.uint16), 1, window=w20)
            finally:
                for f in dst.values():
                    f.close()
        out.append(folder)
    return out[0], out[1]


def page_in(paths: tuple[Path, ...]) -> float:
    """Read the files once (into the OS page cache) and return the seconds it took: the first timed run
    otherwise pays for the disk (a cold 16k² pair made decode-only 8.4 s instead of 5.3 s, a ratio of 0.84
    that measured the disk, not the pipeline)."""
    t0 = time.perf_counter()
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(64 << 20):
                pass
    return time.perf_counter() - t0


def decode_only(paths: tuple[Path, ...], tile: int, threads: str) -> float:
    """Seconds to decode both files tile by tile, with the GDAL settings the detection's reads use."""
    import rasterio
    from rasterio.windows import Window

    from tuban.raster.grid import GDAL_CACHE_BYTES

    t0 = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS=threads, GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        for p in paths:
            with rasterio.open(p) as src:
                for r in range(0, src.height, tile):
                    for c in range(0, src.width, tile):
                        src.read(window=Window(c, r, min(tile, src.width - c), min(tile, src.height - r)))
    return time.perf_counter() - t0


def decode_threads(paths: tuple[Path, ...], tile: int) -> float:
    """Seconds to decode the files at once, one thread per file (``GDAL_NUM_THREADS=1`` each), tile by tile.

    The other plain decoding: on 2 cores it measured faster than GDAL's own pool file after file (4.6 s
    against 6.1 s for the 16k² pair), so the end-to-end run is compared with both."""
    import threading

    errors: list[BaseException] = []

    def one(p: Path) -> None:
        try:
            decode_only((p,), tile, "1")
        except BaseException as e:
            errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def _peak_rss_child(d: Path, size: int, tile: int) -> float:
    """Peak RSS (MiB) of a detection run on a ``size``² pair (tiled DEFLATE GeoTIFF, generated block by
    block when missing), in its own process."""
    import sys

    d.mkdir(parents=True, exist_ok=True)
    if not (d / "after.tif").exists():
        make_pair(d, size, cog=False)
    code = ("import resource, sys; from tuban.detect.engine import detect; "
            f"r = detect({str(d / 'before.tif')!r}, {str(d / 'after.tif')!r}, tile_size={tile}); "
            "print(len(r.patches)); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    print(f"  {size}×{size}: {lines[-2]} patches, peak RSS {float(lines[-1]):.0f} MiB", flush=True)
    return float(lines[-1])


def _memory(work: Path, sizes: str, tile: int, repeat: int = 1) -> None:
    """Peak RSS of runs on A² and B² pairs (own processes), generated under ``work``; with ``repeat`` R the two
    sizes take turns R times and the medians are compared (one run's peak varies by ±50 MiB here)."""
    import statistics

    a_size, b_size = (int(v) for v in sizes.split(","))
    runs: dict[int, list[float]] = {a_size: [], b_size: []}
    for _ in range(max(1, repeat)):
        for n in (a_size, b_size):
            runs[n].append(_peak_rss_child(work / f"mem{n}", n, tile))
    peaks = {n: statistics.median(v) for n, v in runs.items()}
    for n, mb in peaks.items():
        print(f"peak memory of a run on {n}×{n}: {mb:.0f} MiB (median of {len(runs[n])})")
    print(f"RATIO peak memory {b_size}² / {a_size}² = {peaks[b_size] / peaks[a_size]:.2f} "
          "(target ≤ 1.0: memory bounded by the tile, not the scene)")


def _warm() -> None:
    """Once-per-process costs kept out of the clocks, here and in every worker: the numba kernels, the
    modules a run imports lazily (geopandas, pyproj, … ~0.4 s CPU) and, where the engine has it, its
    process set-up (:func:`tuban.detect.engine.warm`)."""
    import cv2  # noqa: F401
    import geopandas  # noqa: F401
    import pyproj  # noqa: F401
    import shapely  # noqa: F401
    from rasterio import features  # noqa: F401

    from tuban.detect import engine
    from tuban.raster import fused

    fused.warm()
    if hasattr(engine, "warm"):
        engine.warm()


def _local_cluster(n: int):
    """A local cluster of ``n`` single-threaded worker processes, as ``--workers n`` starts it (the engine's own
    settings when it has :func:`tuban.detect.engine.local_cluster`)."""
    from distributed import LocalCluster

    from tuban.detect import engine

    if hasattr(engine, "local_cluster"):
        return engine.local_cluster(n)
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                        host="127.0.0.1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tile-size", type=int, default=2048, help="tile size of the serial run (the default of detect)")
    ap.add_argument("--dir")
    ap.add_argument("--memory", help="two sizes A,B: peak memory of a run on A² and on B² (own processes)")
    ap.add_argument("--memory-only", action="store_true", help="only the --memory check (no speed pair)")
    ap.add_argument("--memory-repeat", type=int, default=1,
                    help="runs of each size for --memory, taking turns (medians compared)")
    ap.add_argument("--skip-workers", action="store_true", help="skip the 1 vs 2 worker comparison")
    ap.add_argument("--s2", action="store_true",
                    help="a Sentinel-2-like band-folder pair instead (10 m and 20 m bands, one file each): the "
                         "end-to-end and decode-only lines on it")
    ap.add_argument("--ratios-only", action="store_true",
                    help="only the end-to-end / decode and worker ratios (skip morphology and vectorisation)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="decode-only and end-to-end runs taking turns this many times (medians compared)")
    ap.add_argument("--worker-repeat", type=int, default=1,
                    help="1- and 2-worker runs taking turns this many times (medians printed)")
    ap.add_argument("--worker-tile-size", type=int, default=2048,
                    help="tile size of the 1 vs 2 worker runs (tasks well above Dask's ~1.6 ms per task)")
    args = ap.parse_args()
    if args.repeat < 1 or args.worker_repeat < 1:
        ap.error("--repeat and --worker-repeat take 1 or more")
    import cv2
    from scipy import ndimage as ndi

    from tuban.detect.engine import detect

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tuban-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.memory_only:
            _memory(work, args.memory or "8192,32768", args.tile_size, args.memory_repeat)
            return 0
        t0 = time.perf_counter()
        sensor = None
        if args.s2:
            if (work / "s2_after" / "T50_20200101_B12.tif").exists():
                before, after = work / "s2_before", work / "s2_after"
            else:
                before, after = make_s2_pair(work, args.size)
            files = tuple(sorted(before.glob("*.tif")) + sorted(after.glob("*.tif")))
            sensor = "sentinel2"
            print(f"{args.size}×{args.size} Sentinel-2-like band-folder pair (10 m B02-B08, 20 m B11/B12) ready "
                  f"in {time.perf_counter() - t0:.1f} s")
        elif (work / "after.tif").exists():
            before, after = work / "before.tif", work / "after.tif"
        else:
            before, after = make_pair(work, args.size)
        if not args.s2:
            files = (before, after)
            print(f"{args.size}×{args.size} 4-band uint16 DEFLATE COG pair ready in {time.perf_counter() - t0:.1f} s")
        mpx = args.size * args.size / 1e6
        from tuban.raster import fused

        t0 = time.perf_counter()
        _warm()
        print(f"fused kernels {'warm' if fused.available() else 'NOT available (numpy reference)'}, lazy imports done "
              f"in {time.perf_counter() - t0:.2f} s (once per process, not in the timings below)")
        # decode-only uses every core (GDAL_NUM_THREADS=ALL_CPUS), as the serial run does (a thread per date
        # beside the kernels' thread). CPU
        # seconds (all threads of this process) are printed too: on a shared, loaded machine wall time
        # swings 2-5x between runs, CPU time much less (it is what the ratio would be on an idle machine
        # whose cores were all busy in both runs)
        print(f"files read once into the page cache in {page_in(files):.2f} s (not timed below)")
        import statistics

        # with --repeat R the decode-only and end-to-end runs take turns R times (load changes hit both alike)
        # and the ratio is of their medians, each pair's printed too
        pairs: list[tuple[float, float, float, float]] = []
        res = None
        for _rep in range(args.repeat):
            c0 = time.process_time()
            t_d = decode_only(files, args.tile_size, "ALL_CPUS")
            c_d = time.process_time() - c0
            print(f"decode only (the files of both dates, GDAL_NUM_THREADS=ALL_CPUS): {t_d:.2f} s = "
                  f"{mpx / t_d:.1f} Mpx/s, CPU {c_d:.2f} s")
            c0, t0 = time.process_time(), time.perf_counter()
            res = detect(before, after, tile_size=args.tile_size, sensor=sensor)
            t_e = time.perf_counter() - t0
            c_e = time.process_time() - c0
            print(f"end to end, 1 process: {t_e:.2f} s = {mpx / t_e:.1f} Mpx/s, CPU {c_e:.2f} s, "
                  f"{len(res.patches)} patches")
            pairs.append((t_d, c_d, t_e, c_e))
        assert res is not None
        t_dec, c_dec, t_e2e, c_e2e = (statistics.median(p[i] for p in pairs) for i in range(4))
        c0 = time.process_time()
        t_thr = decode_threads(files, args.tile_size)
        c_thr = time.process_time() - c0
        print(f"decode only (every file at once, one thread each): {t_thr:.2f} s = {mpx / t_thr:.1f} Mpx/s, "
              f"CPU {c_thr:.2f} s")
        print(f"RATIO end-to-end / decode-only throughput = {t_dec / t_e2e:.2f} (target ≥ 0.7"
              + (f"; medians of {len(pairs)}; each pair: "
                 + ", ".join(f"{p[0] / p[2]:.2f}" for p in sorted(pairs, key=lambda p: p[0] / p[2])) + ")"
                 if len(pairs) > 1 else ")"))
        if len(pairs) > 2:
            # a process's first decode-only run maps its fresh 32 MB arrays page by page (~1 s of system time,
            # 0002's fourteenth addendum) and so runs slower than later ones: the pairs after it compare warm runs
            warm = pairs[1:]
            print(f"RATIO end-to-end / decode-only throughput, warm pairs only (the 2nd to {len(pairs)}th) = "
                  f"{statistics.median(p[0] for p in warm) / statistics.median(p[2] for p in warm):.2f}")
        print(f"RATIO CPU: decode-only / end-to-end CPU seconds = {c_dec / c_e2e:.2f}")
        print(f"RATIO end-to-end / decode-only (one thread per file) throughput = {t_thr / t_e2e:.2f}, "
              f"CPU {c_thr / c_e2e:.2f}")
        # the most the first ratio could be with this much work: every core busy for the whole run
        import os

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        print(f"ceiling of the first ratio at this CPU on {cores} cores (all busy throughout) = "
              f"{t_dec / (c_e2e / cores):.2f}; the end-to-end run kept {c_e2e / t_e2e:.2f} cores busy")
        # the same run with the score computed on every pixel: the bound that spares most of this pair's
        # score (flat, untextured, 5 % change) gives up on textured real scenes (OSCD: it would have spared
        # 2-6 %), so this is the ratio to expect there
        from unittest import mock

        with mock.patch.object(fused, "prune_bound", return_value=-1.0):
            c0, t0 = time.process_time(), time.perf_counter()
            full = detect(before, after, tile_size=args.tile_size, sensor=sensor)
            t_full = time.perf_counter() - t0
            c_full = time.process_time() - c0
        assert len(full.patches) == len(res.patches)
        print(f"end to end, score on every pixel (no bound): {t_full:.2f} s, CPU {c_full:.2f} s")
        print(f"RATIO end-to-end without the score bound / decode-only throughput = {t_dec / t_full:.2f} "
              f"(what textured scenes, where the bound gives up, would see)")
        if not args.skip_workers:
            # both runs on a warm local cluster of single-threaded worker processes: the ratio measures
            # scaling, not start-up (the clusters are started before the clock). With --worker-repeat R the
            # 1- and 2-worker runs take turns R times (load changes hit both alike; every worker closes its
            # datasets first, so no run finds blocks decoded by the one before) and medians are printed
            from contextlib import ExitStack

            from distributed import Client

            from tuban.raster.grid import close_datasets

            t_w: dict[int, list[float]] = {1: [], 2: []}
            crit: dict[int, list[float]] = {1: [], 2: []}
            work: dict[int, list[float]] = {1: [], 2: []}  # all workers' CPU seconds
            with ExitStack() as stack:
                clients = {}
                for n in (1, 2):
                    cluster = stack.enter_context(_local_cluster(n))
                    clients[n] = (stack.enter_context(Client(cluster)), cluster.scheduler_address)
                    clients[n][0].run(_warm)  # the JIT and the lazy imports in every worker, before the clock
                for _rep in range(args.worker_repeat):
                    for n in (1, 2):
                        client, address = clients[n]
                        client.run(close_datasets)
                        w0 = client.run(time.process_time)
                        c0, t0 = time.process_time(), time.perf_counter()
                        rn = detect(before, after, tile_size=args.worker_tile_size, scheduler=address, sensor=sensor)
                        t_w[n].append(time.perf_counter() - t0)
                        c_cl = time.process_time() - c0
                        w1 = client.run(time.process_time)
                        cpu = sorted(w1[k] - w0[k] for k in w0)
                        # critical path: the busiest worker plus this process (plan, merge), as if each had a core
                        crit[n].append(cpu[-1] + c_cl)
                        work[n].append(sum(cpu))
                        print(f"end to end, warm local cluster of {n} worker process(es), tiles of "
                              f"{args.worker_tile_size}: {t_w[n][-1]:.2f} s, worker CPU "
                              f"{', '.join(f'{c:.2f}' for c in cpu)} s, client CPU {c_cl:.2f} s, {len(rn.patches)} "
                              "patches", flush=True)
            med = {n: (statistics.median(t_w[n]), statistics.median(crit[n])) for n in (1, 2)}
            print(f"RATIO 2 workers / 1 worker speed = {med[1][0] / med[2][0]:.2f} (target ≥ 1.7; median of "
                  f"{args.worker_repeat}; this machine has {__import__('os').cpu_count()} cores)")
            print(f"RATIO CPU critical path: 1 worker / 2 workers = {med[1][1] / med[2][1]:.2f} (busiest worker + "
                  "client CPU seconds, medians: the speed-up on idle cores)")
            added = statistics.median(work[2]) / statistics.median(work[1])
            print(f"  all workers' CPU seconds, 2 workers ÷ 1 worker = {added:.3f} (medians: the CPU a second worker "
                  "adds by sharing the memory bandwidth and caches)")
            pairs = sorted(a / b for a, b in zip(t_w[1], t_w[2], strict=True))
            print("  each pair of runs (1 worker ÷ the 2-worker run after it): "
                  + ", ".join(f"{r:.2f}" for r in pairs))
        if args.ratios_only:
            return 0
        # morphology on a realistic mask
        m = np.zeros((min(args.size, 4096),) * 2, np.uint8)
        rng = np.random.default_rng(1)
        m[rng.random(m.shape) < 0.02] = 1
        m = cv2.dilate(m, np.ones((5, 5), np.uint8))
        n = 3
        t0 = time.perf_counter()
        for _ in range(n):
            ndi.binary_opening(m.astype(bool), np.ones((3, 3), bool))
        t_sp = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for _ in range(n):
            cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        t_cv = (time.perf_counter() - t0) / n
        print(f"3×3 opening: scipy {m.size / 1e6 / t_sp:.0f} Mpx/s, OpenCV {m.size / 1e6 / t_cv:.0f} Mpx/s, "
              f"RATIO {t_sp / t_cv:.1f}")
        # vectorisation vs gdal_polygonize.py on the same mask
        import rasterio
        from affine import Affine

        from tuban.detect.kernel import _label, _polygons, _runs

        tr = Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0)
        t0 = time.perf_counter()
        runs = _runs(m)  # what a tile does with its mask: runs of rows, labels, polygons
        geoms, _labels = _polygons(_label(m, runs)[1], runs, tuple(tr)[:6])
        t_ours = time.perf_counter() - t0
        poly = shutil.which("gdal_polygonize.py")
        if poly:
            mp = work / "mask.tif"
            with rasterio.open(mp, "w", driver="GTiff", width=m.shape[1], height=m.shape[0], count=1,
                               dtype="uint8", crs="EPSG:32650", transform=tr, nodata=0) as dst:
                dst.write(m[None])
            out = "/vsimem/poly.gpkg"  # in memory, like ours: the comparison is vectorisation, not disk writes
            t0 = time.perf_counter()
            subprocess.run([poly, "-q", str(mp), "-f", "GPKG", out], check=True)
            t_gdal = time.perf_counter() - t0
            print(f"vectorisation: ours {t_ours:.2f} s ({len(geoms)} polygons), gdal_polygonize.py {t_gdal:.2f} s, "
                  f"RATIO ours / gdal time = {t_ours / t_gdal:.2f} (target ≤ 1.3)")
        else:
            print(f"vectorisation: ours {t_ours:.2f} s ({len(geoms)} polygons); gdal_polygonize.py not found")
        if args.memory:
            _memory(work, args.memory, args.tile_size, args.memory_repeat)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
