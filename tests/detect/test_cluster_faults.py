"""A ``--scheduler`` cluster failing under a run (reliability case 45): its scheduler killed and restarted, killed
for good, or every worker gone. The run starts again and gives the same output, or ends with a ClusterError that
names what happened; it never writes a partial output and never waits for ever. Every cluster here is real
processes on 127.0.0.1 (``dask scheduler``, ``dask worker``)."""

from __future__ import annotations

import threading

import pytest
import shapely
from daskprocs import DaskProcesses

from tuban.detect import engine
from tuban.detect.engine import detect
from tuban.errors import ClusterError

pytestmark = pytest.mark.slow


def _same(a, b) -> None:
    assert a.threshold == b.threshold
    assert len(a.patches) == len(b.patches) > 0
    assert shapely.equals(shapely.union_all(a.patches.geometry.values), shapely.union_all(b.patches.geometry.values))


def test_a_run_whose_scheduler_is_restarted_starts_again_with_the_same_output(pair, tmp_path, monkeypatch) -> None:
    """The scheduler is killed after the second tile (its workers close with it); a supervisor starts a new
    scheduler on the same port and two new workers: the run reconnects, starts again from the statistics and
    gives the serial run's patches; its progress and its provenance say it restarted."""
    monkeypatch.setattr(engine, "SCHEDULER_TIMEOUT", 60)
    before, after, _ = pair
    serial = detect(before, after, sensor="sentinel2", tile_size=128)
    events: list[tuple[str, int, int]] = []
    killed: list[bool] = []
    with DaskProcesses(tmp_path / "dask.log") as cluster:
        cluster.start_scheduler()
        cluster.start_workers(2)

        def supervisor() -> None:  # what systemd or Kubernetes does for a cluster's processes
            cluster.start_scheduler()
            cluster.start_workers(2, wait=False)

        def progress(label: str, done: int, total: int) -> None:
            events.append((label, done, total))
            if label == "tiles" and done == 2 and not killed:
                killed.append(True)
                cluster.kill_scheduler()
                threading.Thread(target=supervisor, daemon=True).start()

        dist = detect(before, after, sensor="sentinel2", tile_size=128, scheduler=cluster.address, progress=progress)
    restarts = [e for e in events if e[0].startswith("restart")]
    assert restarts == [("restart (the Dask scheduler was lost; it answers again)", 1, engine._Dask.RESTARTS)]
    last = [e for e in events if e[0] == "tiles"][-1]
    assert last[1] == last[2]  # every tile of the run that started again
    assert dist.run["scheduler_restarts"] == "1"  # the output's provenance says so
    assert "scheduler_restarts" not in serial.run
    _same(dist, serial)


def test_a_run_whose_scheduler_does_not_come_back_ends_with_a_cluster_error(pair, tmp_path, monkeypatch,
                                                                            capsys) -> None:
    """The scheduler is killed mid-run and nobody restarts it: after SCHEDULER_TIMEOUT the CLI prints one line
    naming the scheduler and what to do, exits with the cluster error's code, and writes nothing."""
    from tuban.cli import main

    monkeypatch.setattr(engine, "SCHEDULER_TIMEOUT", 3)
    before, after, _ = pair
    out = tmp_path / "patches.gpkg"
    with DaskProcesses(tmp_path / "dask.log") as cluster:
        cluster.start_scheduler()
        cluster.start_workers(2)
        real = engine._Dask.tiles

        def tiles(self, *a, **kw):  # the scheduler goes as the tiles start
            cluster.kill_scheduler()
            return real(self, *a, **kw)

        monkeypatch.setattr(engine._Dask, "tiles", tiles)
        code = main(["detect", str(before), str(after), "-o", str(out), "--sensor", "sentinel2", "--tile-size", "128",
                     "--scheduler", cluster.address, "--quiet"])
    err = capsys.readouterr().err
    assert code == ClusterError.exit_code == 8
    assert f"the Dask scheduler at {cluster.address} was lost during the run" in err
    assert "restart the scheduler and its workers" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert not list(tmp_path.glob("*.gpkg*"))


def test_a_scheduler_without_workers_ends_the_run_instead_of_waiting_for_ever(pair, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(engine, "NO_WORKERS_TIMEOUT", 2.0)
    before, after, _ = pair
    with DaskProcesses(tmp_path / "dask.log") as cluster:
        cluster.start_scheduler()
        with pytest.raises(ClusterError, match=r"no Dask worker joined the scheduler at tcp://127\.0\.0\.1:\d+ within 2 s"):
            detect(before, after, sensor="sentinel2", tile_size=128, scheduler=cluster.address)


def test_a_run_that_loses_every_worker_ends_with_a_cluster_error(pair, tmp_path, monkeypatch) -> None:
    """Every worker process (and its nanny) is killed after the first tile and none joins again: the watch
    cancels the run's tasks after NO_WORKERS_TIMEOUT, and the run ends with that reason."""
    monkeypatch.setattr(engine, "NO_WORKERS_TIMEOUT", 3.0)
    before, after, _ = pair
    with DaskProcesses(tmp_path / "dask.log") as cluster:
        cluster.start_scheduler()
        cluster.start_workers(2)

        def progress(label: str, done: int, total: int) -> None:
            if label == "tiles" and done == 1:
                cluster.kill_workers()

        with pytest.raises(ClusterError, match=r"every Dask worker of the scheduler at \S+ was lost during the run"):
            detect(before, after, sensor="sentinel2", tile_size=128, scheduler=cluster.address, progress=progress)
