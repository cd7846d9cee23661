"""Options that cannot work are refused before anything is read, each naming itself (reliability: bad input
gets a clear error, never a traceback)."""

from __future__ import annotations

import pytest

from tuban.cli import main


@pytest.mark.parametrize(("extra", "message"), [
    (["--tile-size", "0"], "--tile-size must be at least 64"),
    (["--mmu-ha", "-1"], "--mmu-ha must be 0 or more"),
    (["--threshold", "nan"], "--threshold must be a number"),
    (["--resolution", "0"], "--resolution must be a positive number"),
    (["--crs", "EPSG:999999"], "--crs 'EPSG:999999' is not a CRS PROJ knows"),
])
def test_options_that_cannot_work(pair, tmp_path, capsys, extra, message) -> None:
    before, after, _ = pair
    out = tmp_path / "p.gpkg"
    assert main(["detect", str(before), str(after), "-o", str(out), "-q", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_baseline_elsewhere_and_a_scheduler_nobody_runs(pair, tmp_path, monkeypatch, capsys) -> None:
    from synth import scene_arrays, write_stack

    from tuban.detect import engine

    before, after, _ = pair
    _, far, _ = scene_arrays(seed=2)
    elsewhere = write_stack(tmp_path / "elsewhere.tif", far, origin=(900000.0, 3800000.0))
    assert main(["detect", str(before), str(after), "-o", str(tmp_path / "p.gpkg"), "-q",
                 "--baseline", str(elsewhere)]) == 5
    assert "the baseline date covers 0% of the dates' common area" in capsys.readouterr().err
    monkeypatch.setattr(engine, "SCHEDULER_TIMEOUT", 1)
    assert main(["detect", str(before), str(after), "-o", str(tmp_path / "q.gpkg"), "-q",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 3
    err = capsys.readouterr().err
    assert "no Dask scheduler answers at tcp://127.0.0.1:9" in err
    assert "Traceback" not in err
