"""True-colour quicklooks (raster.quicklook): bands 1–3 red, green, blue, the files' values, on a chosen grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from tuban.errors import BandError
from tuban.raster.grid import Grid
from tuban.raster.quicklook import true_colour


def _stack(path: Path, data: np.ndarray, roles: tuple[str, ...], nodata: float | None = None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, crs="EPSG:32650", transform=Affine(10, 0, 500000, 0, -10, 3800000),
                       nodata=nodata) as dst:
        dst.write(data)
        for i, r in enumerate(roles, start=1):
            dst.set_band_description(i, r)
    return path


def test_float_bands_in_red_green_blue_order_with_nan_where_unobserved(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = rng.random((4, 70, 90), dtype=np.float32) * 0.3 + 0.01
    data[:, :5, :7] = -9999  # nodata corner
    src = _stack(tmp_path / "s.tif", data, ("blue", "green", "red", "nir"), nodata=-9999)
    out = true_colour(src, tmp_path / "rgb.tif", rows=16)  # several row blocks
    with rasterio.open(out) as q:
        got = q.read()
        assert q.dtypes == ("float32",) * 3
        assert q.descriptions == ("red", "green", "blue")
        assert q.crs.to_epsg() == 32650
    want = data[[2, 1, 0]].copy()
    want[:, :5, :7] = np.nan
    np.testing.assert_array_equal(got, want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.tif", "s.tif"]  # no temporary file left


def test_another_grid_and_a_scene_without_visible_bands(tmp_path: Path) -> None:
    rows, cols = np.mgrid[0:40, 0:60]
    data = np.stack([100 + 3 * rows + cols + 500 * b for b in range(3)]).astype(np.uint16)  # smooth ramps
    src = _stack(tmp_path / "s.tif", data, ("red", "green", "blue"))
    grid = Grid("EPSG:32650", (20.0, 0.0, 500000.0, 0.0, -20.0, 3800000.0), 30, 20)  # twice as coarse
    with rasterio.open(true_colour(src, tmp_path / "coarse.tif", grid=grid)) as q:
        assert (q.width, q.height) == (30, 20)
        assert q.transform == Affine(20, 0, 500000, 0, -20, 3800000)
        got = q.read()
    assert got.dtype == np.uint16
    means = data.astype(np.float64).reshape(3, 20, 2, 30, 2).mean(axis=(2, 4))  # averaged down to the grid
    assert np.abs(got - means)[:, 1:-1, 1:-1].max() <= 1  # (the warper's edge pixels aside)
    nir_only = _stack(tmp_path / "n.tif", data[:2], ("nir", "swir1"))
    with pytest.raises(BandError, match="no red, green, blue band"):
        true_colour(nir_only, tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_the_quicklook_command_writes_a_scene_on_its_own_or_the_other_dates_grid(tmp_path: Path, tiny_scene,
                                                                               capsys: pytest.CaptureFixture) -> None:
    """``tuban quicklook``: the offline twin of the web app's imagery jobs; ``--like`` puts the image on the other
    date's grid; a scene without visible bands ends with one line and the error's exit code."""
    from tuban.cli import main
    from tuban.raster.grid import finest_grid
    from tuban.raster.scene import open_scene

    assert main(["quicklook", str(tiny_scene.after), "-o", str(tmp_path / "after.tif")]) == 0
    assert "after.tif: true colour (red, green, blue)" in capsys.readouterr().out
    own = finest_grid(open_scene(tiny_scene.after))
    with rasterio.open(tmp_path / "after.tif") as q:
        assert (q.count, q.width, q.height) == (3, own.width, own.height)
        assert q.descriptions == ("red", "green", "blue")
    # the other date on a coarser grid, shifted by half a pixel of the scene's
    with rasterio.open(tmp_path / "other.tif", "w", driver="GTiff", width=100, height=100, count=3, dtype="uint16",
                       crs=own.crs, transform=Affine(20, 0, own.affine[2] + 5, 0, -20, own.affine[5] - 5)) as dst:
        dst.write(np.full((3, 100, 100), 500, np.uint16))
    assert main(["quicklook", str(tiny_scene.after), "-o", str(tmp_path / "like.tif"), "--like",
                 str(tmp_path / "other.tif"), "--sensor", "sentinel2"]) == 0
    with rasterio.open(tmp_path / "like.tif") as q:
        assert tuple(q.transform)[:6] == (20, 0, own.affine[2] + 5, 0, -20, own.affine[5] - 5)
        assert (q.width, q.height) == (100, 100)
        assert q.read(1)[:50, :50].std() > 0  # the scene's pixels, resampled onto that grid
    nir = _stack(tmp_path / "nir.tif", np.ones((1, 8, 8), np.uint16), ("nir",))
    code = main(["quicklook", str(nir), "-o", str(tmp_path / "x.tif")])
    assert code == BandError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no red, green, blue band" in err
    assert not (tmp_path / "x.tif").exists()
