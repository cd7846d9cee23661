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


def test_evaluate_refuses_what_it_cannot_read(pair, tmp_path, capsys) -> None:
    """``tuban evaluate``: a file that is not a GeoPackage, a truth that is not an image (tuban's errors, not
    pyogrio's or GDAL's tracebacks), and a run without patches (an empty layer) scores 0."""
    import numpy as np
    import rasterio

    before, after, truth = pair
    with rasterio.open(before) as src:
        profile = {**src.profile, "count": 1, "dtype": "uint8"}
    tpath = tmp_path / "truth.tif"
    with rasterio.open(tpath, "w", **profile) as dst:
        dst.write(np.where(truth, 2, 1).astype("uint8")[None])
    fake = tmp_path / "fake.gpkg"
    fake.write_bytes(b"not a geopackage")
    assert main(["evaluate", str(fake), str(tpath)]) == 4
    assert "does not look like a GPKG file" in capsys.readouterr().err
    text = tmp_path / "truth.txt"
    text.write_text("1 2 1")
    none = tmp_path / "none.gpkg"
    assert main(["detect", str(before), str(after), "-o", str(none), "-q", "--threshold", "1e9"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(none), str(text)]) == 4
    err = capsys.readouterr().err
    assert "not an image GDAL can read" in err
    assert "Traceback" not in err
    assert main(["evaluate", str(none), str(tpath), "--change-value", "2"]) == 0
    assert '"patches": 0' in capsys.readouterr().out


def test_the_output_keeps_what_the_patches_came_from(tmp_path) -> None:
    """The GeoPackage holds, beside ``patches``, a ``detect_run`` table: each date's files, calibration and
    cloud test, the grid, the method, the threshold and its rule; a second run into the file replaces both."""
    import pyogrio
    from synth import scene_arrays, write_stack

    before, after, _ = scene_arrays(shape=(128, 128), seed=8)
    b = write_stack(tmp_path / "b.tif", before, scale=2.75e-5, add=-0.2)
    a = write_stack(tmp_path / "a.tif", after, scale=2.75e-5, add=-0.2)
    out = tmp_path / "p.gpkg"
    for _ in range(2):
        assert main(["detect", str(b), str(a), "-o", str(out), "-q", "--sensor", "landsat8"]) == 0
    layers = {name for name, _ in pyogrio.list_layers(out)}
    assert layers == {"patches", "detect_run"}
    run = dict(pyogrio.read_dataframe(out, layer="detect_run")[["key", "value"]].itertuples(index=False))
    assert run["before_files"] == str(b)
    assert (run["after_sensor"], run["after_reflectance_scale"], run["after_dn_offset"]) == ("landsat8", "2.75e-05",
                                                                                          "7273")
    assert run["after_clouds"] == "spectral"
    assert run["grid_crs"] == "EPSG:32650"
    assert run["threshold_rule"] in ("otsu", "no-change floor")
    assert int(run["patches"]) == len(pyogrio.read_dataframe(out, layer="patches"))
    # the next steps (tuban analyse / import patches) read the file without naming the layer: the table is no
    # layer of patches
    from tuban.io.reader import read_vector

    assert len(read_vector(out)) == int(run["patches"])
