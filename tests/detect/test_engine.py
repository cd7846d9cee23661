from __future__ import annotations

import numpy as np
import pytest
import shapely

from tuban.detect.engine import detect
from tuban.detect.evaluate import evaluate_masks


def _raster(gdf, shape, transform) -> np.ndarray:
    from rasterio import features

    if len(gdf) == 0:
        return np.zeros(shape, bool)
    return features.rasterize(((g, 1) for g in gdf.geometry), out_shape=shape, transform=transform).astype(bool)


def test_detect_finds_the_changed_rectangles(pair) -> None:
    before, after, truth = pair
    res = detect(before, after, sensor="sentinel2", tile_size=512)
    assert res.method == "construction"
    assert res.patches.crs is not None
    from affine import Affine

    pred = _raster(res.patches, truth.shape, Affine(*res.grid.transform))
    m = evaluate_masks(pred, truth)
    assert m["pixel"]["f1"] > 0.85, m
    assert m["object"]["recall"] == 1.0
    row = res.patches.iloc[int(np.argmax(res.patches["QAREA"]))]
    # the 40×60 px rectangle at 10 m: 2400 px × 100 m² = 24 ha
    assert row["QAREA"] == pytest.approx(24.0, rel=0.05)
    assert row["index_before"] > row["index_after"]  # NDVI dropped
    assert 0 <= row["confidence"] <= 1
    assert set(res.patches.columns) >= {"QAREA", "centroid_lon", "centroid_lat", "score", "masked_fraction"}


def test_tile_size_does_not_change_the_result(pair) -> None:
    before, after, _ = pair
    small = detect(before, after, sensor="sentinel2", tile_size=128)
    big = detect(before, after, sensor="sentinel2", tile_size=4096)
    assert small.threshold == pytest.approx(big.threshold)
    a, b = shapely.union_all(small.patches.geometry.values), shapely.union_all(big.patches.geometry.values)
    union = shapely.union(a, b).area
    assert union > 0
    assert shapely.symmetric_difference(a, b).area <= 0.005 * union
    assert len(small.patches) == len(big.patches)


def test_manual_threshold_overrides(pair) -> None:
    before, after, _ = pair
    res = detect(before, after, sensor="sentinel2", threshold=1e6)
    assert res.threshold == 1e6
    assert len(res.patches) == 0


def test_mmu_drops_small_patches(pair) -> None:
    before, after, _ = pair
    res = detect(before, after, sensor="sentinel2", mmu_ha=0.1)
    assert len(res.patches) > 0
    assert (res.patches["QAREA"] >= 0.1 * 0.999).all()


def test_rgb_only_pair_works(tmp_path) -> None:
    from synth import scene_arrays, write_stack

    before, after, truth = scene_arrays(seed=3)
    b = write_stack(tmp_path / "b.tif", before[[2, 1, 0]], descriptions=("red", "green", "blue"))
    a = write_stack(tmp_path / "a.tif", after[[2, 1, 0]], descriptions=("red", "green", "blue"))
    res = detect(b, a)
    assert res.method == "rgb"
    from affine import Affine

    pred = _raster(res.patches, truth.shape, Affine(*res.grid.transform))
    assert evaluate_masks(pred, truth)["pixel"]["f1"] > 0.7


def test_baseline_date_suppresses_recurring_bare_soil(tmp_path) -> None:
    from synth import scene_arrays, write_stack

    before, after, _ = scene_arrays(seed=4)
    b = write_stack(tmp_path / "b.tif", before)
    a = write_stack(tmp_path / "a.tif", after)
    z = write_stack(tmp_path / "z.tif", after)  # the baseline was already bare: a farming cycle
    without = detect(b, a)
    with_base = detect(b, a, baseline=z)
    assert len(without.patches) > 0
    assert with_base.patches["QAREA"].sum() < 0.2 * without.patches["QAREA"].sum()


@pytest.mark.slow
def test_serial_equals_local_dask_cluster(pair) -> None:
    pytest.importorskip("distributed")
    before, after, _ = pair
    serial = detect(before, after, sensor="sentinel2", tile_size=128)
    par = detect(before, after, sensor="sentinel2", tile_size=128, workers=2)
    assert par.threshold == serial.threshold
    assert shapely.equals(shapely.union_all(serial.patches.geometry.values),
                          shapely.union_all(par.patches.geometry.values))


@pytest.mark.slow
def test_a_worker_lost_mid_run_changes_nothing(pair) -> None:
    """Tiles are dealt to named workers a few at a time: when one dies after the first tiles (its nanny starts
    a new one at another address), its tiles and those still dealt to its old address run elsewhere."""
    pytest.importorskip("distributed")
    import os
    import signal

    from distributed import get_client

    before, after, _ = pair
    killed: list[str] = []

    def progress(label: str, done: int, total: int) -> None:
        if label == "tiles" and done == 2 and not killed:
            client = get_client()  # the run's own (the executor's client is this thread's default)
            killed.append(sorted(client.scheduler_info()["workers"])[0])
            pid = client.run(os.getpid, workers=killed)[killed[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(str(total - done))  # tiles not finished then

    serial = detect(before, after, sensor="sentinel2", tile_size=128)
    par = detect(before, after, sensor="sentinel2", tile_size=128, workers=2, progress=progress)
    assert killed
    assert int(killed[1]) >= 4  # lost with tiles dealt to it and tiles left to deal
    assert par.threshold == serial.threshold
    assert len(par.patches) == len(serial.patches) > 0
    assert shapely.equals(shapely.union_all(serial.patches.geometry.values),
                          shapely.union_all(par.patches.geometry.values))


_CALLS: list[object] = []


def _third_tile_fails(job, core, stats, *a, **kw):
    """``kernel.tile_pieces``, but the third call raises (a corrupt block, say)."""
    from tuban.detect.kernel import _tile_pieces_unpatched
    from tuban.errors import RasterError

    _CALLS.append(core)
    if len(_CALLS) == 3:
        raise RasterError("block 7 of after.tif is corrupt")
    return _tile_pieces_unpatched(job, core, stats, *a, **kw)


@pytest.mark.slow
def test_a_failing_tile_raises_its_error(pair, monkeypatch) -> None:
    """A tile task's error reaches the caller as itself, through the dealing loop, and no task of the run is
    left on the cluster (workers in this process, so the patched kernel is the one they run)."""
    pytest.importorskip("distributed")
    import time

    from distributed import Client, LocalCluster

    from tuban.detect import kernel
    from tuban.errors import RasterError

    before, after, _ = pair
    monkeypatch.setattr(kernel, "_tile_pieces_unpatched", kernel.tile_pieces, raising=False)
    monkeypatch.setattr(kernel, "tile_pieces", _third_tile_fails)
    _CALLS.clear()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0",
                      scheduler_kwargs={"dashboard": False}) as cluster, \
            Client(cluster) as client:
        with pytest.raises(RasterError, match="block 7"):
            detect(before, after, sensor="sentinel2", tile_size=64, scheduler=cluster.scheduler_address)
        assert len(_CALLS) >= 3
        deadline = time.monotonic() + 10  # the run's client cancels what it dealt and goes
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(client.processing().values())


_RUNNING = {"now": 0, "most": 0}
_WHERE: set[str] = set()


def _slow_tile(job, core, stats, *a, **kw):
    """``kernel.tile_pieces``, counting how many run at once (and slow enough for them to overlap)."""
    import time

    from distributed import get_worker

    from tuban.detect.kernel import _tile_pieces_unpatched

    _RUNNING["now"] += 1  # the GIL makes += atomic enough for a count of overlaps
    _RUNNING["most"] = max(_RUNNING["most"], _RUNNING["now"])
    _WHERE.add(get_worker().address)
    try:
        time.sleep(0.1)
        return _tile_pieces_unpatched(job, core, stats, *a, **kw)
    finally:
        _RUNNING["now"] -= 1


@pytest.mark.slow
def test_a_worker_with_several_threads_gets_a_tile_for_each(pair, monkeypatch) -> None:
    """Tiles are dealt per worker thread: a worker of 3 threads runs 3 at once, with the same result."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    from tuban.detect import kernel

    before, after, _ = pair
    serial = detect(before, after, sensor="sentinel2", tile_size=64)
    monkeypatch.setattr(kernel, "_tile_pieces_unpatched", kernel.tile_pieces, raising=False)
    monkeypatch.setattr(kernel, "tile_pieces", _slow_tile)
    _RUNNING.update(now=0, most=0)
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address="127.0.0.1:0",
                      scheduler_kwargs={"dashboard": False}) as cluster, \
            Client(cluster):
        par = detect(before, after, sensor="sentinel2", tile_size=64, scheduler=cluster.scheduler_address)
    assert _RUNNING["most"] == 3
    assert len(par.patches) == len(serial.patches) > 0
    assert shapely.equals(shapely.union_all(serial.patches.geometry.values),
                          shapely.union_all(par.patches.geometry.values))


@pytest.mark.slow
def test_workers_joining_mid_run_are_dealt_tiles(pair, monkeypatch) -> None:
    """A cluster that scales up during the run (adaptive, or a batch system's workers still starting): the
    workers that join get tiles too, and the result is the same."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    from tuban.detect import engine, kernel

    before, after, _ = pair
    serial = detect(before, after, sensor="sentinel2", tile_size=64)
    monkeypatch.setattr(kernel, "_tile_pieces_unpatched", kernel.tile_pieces, raising=False)
    monkeypatch.setattr(kernel, "tile_pieces", _slow_tile)
    monkeypatch.setattr(engine._Dask, "JOINED_EVERY", 0.0)
    _WHERE.clear()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0",
                      scheduler_kwargs={"dashboard": False}) as cluster, \
            Client(cluster) as client:

        def progress(label: str, done: int, total: int) -> None:
            if label == "tiles" and done == 1:
                cluster.scale(3)
                client.wait_for_workers(3, timeout=30)

        par = detect(before, after, sensor="sentinel2", tile_size=64, scheduler=cluster.scheduler_address,
                     progress=progress)
    assert len(_WHERE) == 3
    assert len(par.patches) == len(serial.patches) > 0
    assert shapely.equals(shapely.union_all(serial.patches.geometry.values),
                          shapely.union_all(par.patches.geometry.values))


@pytest.mark.slow
def test_serial_equals_distributed_scheduler_in_separate_processes(pair, tmp_path) -> None:
    from daskprocs import DaskProcesses

    before, after, _ = pair
    with DaskProcesses(tmp_path / "dask.log") as cluster:
        cluster.start_scheduler()
        cluster.start_workers(2)
        dist = detect(before, after, sensor="sentinel2", tile_size=128, scheduler=cluster.address)
    serial = detect(before, after, sensor="sentinel2", tile_size=128)
    assert dist.threshold == serial.threshold
    assert len(dist.patches) == len(serial.patches) > 0
    assert shapely.equals(shapely.union_all(serial.patches.geometry.values),
                          shapely.union_all(dist.patches.geometry.values))


def test_a_serial_run_closes_the_files_its_reader_threads_opened(pair) -> None:
    """Each date is read on its own thread, whose datasets are its own: when the run ends its threads close
    them, and a dataset of a thread that has ended is closed at the next opening (only a thread's own are
    evicted, so no dataset is closed under a live reader)."""
    import threading

    from tuban.raster import grid

    before, after, _ = pair
    for _ in range(2):
        res = detect(before, after, tile_size=128)
        assert len(res.patches) > 0
        alive = {t.ident for t in threading.enumerate()}
        assert not [k for k in grid._OPEN if k[1] not in alive]
    # a dataset of a thread that has ended is closed when this thread opens its own
    grid.close_datasets(this_thread=True)
    held = {}
    t = threading.Thread(target=lambda: held.setdefault("src", grid._dataset(str(before))))
    t.start()
    t.join()
    mine = grid._dataset(str(before))
    assert mine is not held["src"]
    assert held["src"].closed  # its thread has ended: closed when this thread opened its own
    assert not mine.closed
    grid.close_datasets(this_thread=True)
    assert mine.closed


def test_building_the_job_reads_no_pixels(pair, monkeypatch) -> None:
    from tuban.detect import kernel
    from tuban.raster import grid as grid_mod
    from tuban.raster.scene import open_scene

    calls = []
    monkeypatch.setattr(grid_mod, "read_block", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(kernel, "read_block", lambda *a, **k: calls.append(a))
    before, after, _ = pair
    b, a = open_scene(before), open_scene(after)
    job = kernel.Job(b, a, grid_mod.analysis_grid(b, a))
    assert job.change_method().name == "construction"
    assert job.halo > job.score_halo > 0
    assert calls == []


def test_cli_writes_a_geopackage_layer_with_crs(pair, tmp_path) -> None:
    import geopandas as gpd
    import pyogrio

    from tuban.cli import main

    before, after, truth = pair
    out = tmp_path / "patches.gpkg"
    assert main(["detect", str(before), str(after), "-o", str(out), "--tile-size", "128", "-q"]) == 0
    assert "patches" in [row[0] for row in pyogrio.list_layers(out)]
    gdf = gpd.read_file(out, layer="patches")
    assert gdf.crs is not None
    assert gdf.crs.to_epsg() == 32650
    assert len(gdf) >= 4
    # evaluate against a truth raster written on the same grid
    import rasterio

    with rasterio.open(before) as src:
        profile = {**src.profile, "count": 1, "dtype": "uint8", "nodata": None}
    tpath = tmp_path / "truth.tif"
    with rasterio.open(tpath, "w", **profile) as dst:
        dst.write(truth.astype("uint8")[None] + 1)
    assert main(["evaluate", str(out), str(tpath), "--change-value", "2"]) == 0


def test_cli_reports_a_missing_scene_in_one_line(tmp_path, capsys) -> None:
    from tuban.cli import main

    code = main(["detect", str(tmp_path / "nope.tif"), str(tmp_path / "nope2.tif"), "-o", str(tmp_path / "o.gpkg")])
    assert code != 0
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_local_cluster_workers_keep_glibc_s_dynamic_mmap_threshold(monkeypatch) -> None:
    """Dask's nannies set MALLOC_TRIM_THRESHOLD_ in the workers' environment, which turns off glibc's dynamic
    mmap threshold: every temporary above 128 KB then costs fresh pages (16 % more CPU for the same tiles).
    ``--workers`` starts its workers without it."""
    pytest.importorskip("distributed")
    import os

    from distributed import Client

    from tuban.detect.engine import local_cluster

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with local_cluster(1) as cluster, Client(cluster) as client:
        env = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        assert list(env.values()) == [None]
        assert list(client.run(os.environ.get, "OMP_NUM_THREADS").values()) == ["1"]  # the rest stays


def test_a_damaged_file_raises_tubans_error_through_dask(tmp_path) -> None:
    """A file that fails while decoding, read on a Dask worker: the client gets tuban's InputError (GDAL's
    exceptions in its cause chain would not pickle, and Dask would send a bare Exception instead)."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster
    from synth import write_damaged_pair

    from tuban.errors import InputError

    whole, damaged = write_damaged_pair(tmp_path)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0",
                      scheduler_kwargs={"dashboard": False}) as cluster, Client(cluster), \
            pytest.raises(InputError, match=r"damaged\.tif, band 1") as err:
        detect(whole, damaged, tile_size=128, scheduler=cluster.scheduler_address)
    assert type(err.value) is InputError
