"""Coarser bands on the grid's pixel edges (Sentinel-2's 20 m bands on the 10 m grid), and files shifted by a
fraction of a pixel, are interpolated by
``raster.grid._read_nested`` instead of GDAL's warper: the same values, bit for bit, at ~1/10 of the time."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from tuban.raster.grid import Grid, Window, _nesting, _read_nested

CRS = "EPSG:32650"
GRID = Grid(rasterio.crs.CRS.from_string(CRS).to_wkt(), (10.0, 0.0, 500000.0, 0.0, -10.0, 3800000.0), 230, 170)


def _write(path, arr: np.ndarray, res: float, *, nodata=None, origin=(500000.0, 3800000.0)):
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype, crs=CRS, transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
                       nodata=nodata) as dst:
        dst.write(arr)
    return path


def _warped(src, window: Window, resampling: Resampling, nodata=None) -> tuple[np.ndarray, np.ndarray]:
    from rasterio.windows import Window as RWindow

    rw = RWindow(window.col, window.row, window.width, window.height)
    with WarpedVRT(src, crs=GRID.crs, transform=GRID.affine, width=GRID.width, height=GRID.height,
                   resampling=resampling, src_nodata=nodata, nodata=nodata, add_alpha=nodata is None) as vrt:
        return vrt.read([1, 2] if src.count == 2 else [1], window=rw), np.all(vrt.read_masks(window=rw) > 0,
                                                                               axis=0)


WINDOWS = [Window(0, 0, GRID.height, GRID.width), Window(37, 51, 64, 77), Window(GRID.height - 20, GRID.width - 33, 20, 33),
           Window(1, 1, 3, 2)]


@pytest.mark.parametrize("window", WINDOWS)
def test_a_20_m_uint16_band_reads_as_gdal_warps_it_bit_for_bit(tmp_path, window) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(1, 65000, (2, 85, 115), dtype=np.uint16)  # 230 × 170 px at 10 m, two bands
    with rasterio.open(_write(tmp_path / "b11.tif", arr, 20.0)) as src:
        nest = _nesting(src, GRID)
        assert nest is not None
        assert (nest.k, nest.col, nest.row) == (2, 0, 0)
        ours, ok = _read_nested(src, [1, 2], window, nest, nodata=None, mask_max=False)
        gdal, gdal_ok = _warped(src, window, Resampling.bilinear)
        np.testing.assert_array_equal(ours, gdal)
        assert ok.all()
        assert gdal_ok.all()
        near, _ = _read_nested(src, [1, 2], window, nest, nodata=None, mask_max=False, nearest=True)
        np.testing.assert_array_equal(near, _warped(src, window, Resampling.nearest)[0])


def test_float_bands_interpolate_like_the_warper(tmp_path) -> None:
    arr = np.random.default_rng(1).random((1, 85, 115), dtype=np.float32)
    with rasterio.open(_write(tmp_path / "f.tif", arr, 20.0)) as src:
        ours, ok = _read_nested(src, [1], WINDOWS[0], _nesting(src, GRID), nodata=None, mask_max=False)
        np.testing.assert_allclose(ours, _warped(src, WINDOWS[0], Resampling.bilinear)[0], rtol=1e-6, atol=1e-7)
        assert ok.all()


def test_pixels_made_of_a_nodata_or_saturated_source_pixel_are_not_valid(tmp_path) -> None:
    arr = np.full((1, 85, 115), 1000, np.uint16)
    arr[0, 40, 60] = 0  # nodata: grid rows 79-82 / columns 119-122 use it
    arr[0, 10, 10] = 65535  # saturated
    with rasterio.open(_write(tmp_path / "n.tif", arr, 20.0, nodata=0)) as src:
        _, ok = _read_nested(src, [1], WINDOWS[0], _nesting(src, GRID), nodata=0, mask_max=True)
    bad = np.argwhere(~ok)
    assert {tuple(x) for x in bad} == {(r, c) for r in range(79, 83) for c in range(119, 123)} | \
        {(r, c) for r in range(19, 23) for c in range(19, 23)}


def test_a_source_smaller_than_the_grid_leaves_the_rest_invalid(tmp_path) -> None:
    arr = np.full((1, 40, 50), 7, np.uint16)  # covers grid rows 0-79, columns 0-99 only
    with rasterio.open(_write(tmp_path / "s.tif", arr, 20.0)) as src:
        data, ok = _read_nested(src, [1], Window(60, 90, 40, 30), _nesting(src, GRID), nodata=None, mask_max=True)
        assert ok[:20, :10].all()
        assert not ok[20:].any()
        assert not ok[:, 10:].any()
        assert (data[0][ok] == 7).all()
        _, none = _read_nested(src, [1], Window(120, 150, 10, 10), _nesting(src, GRID), nodata=None, mask_max=True)
        assert not none.any()


def test_a_crop_of_the_grid_at_the_same_resolution_is_read_directly(tmp_path) -> None:
    arr = np.arange(1, 1 + 200 * 260, dtype=np.uint16).reshape(1, 200, 260)
    # the file starts 3 px left of and 5 px above the grid
    with rasterio.open(_write(tmp_path / "c.tif", arr, 10.0, origin=(500000.0 - 30, 3800000.0 + 50))) as src:
        nest = _nesting(src, GRID)
        assert (nest.k, nest.col, nest.row) == (1, 3, 5)
        data, ok = _read_nested(src, [1], Window(10, 20, 30, 40), nest, nodata=None, mask_max=True)
        np.testing.assert_array_equal(data[0], arr[0, 15:45, 23:63])
        assert ok.all()


def test_grids_that_do_not_nest(tmp_path) -> None:
    arr = np.ones((1, 60, 80), np.uint16)
    for res, origin in ((15.0, (500000.0, 3800000.0)), (20.0, (500005.0, 3800000.0)), (10.0 * 540 / 538,
                                                                                        (500000.0, 3800000.0))):
        with rasterio.open(_write(tmp_path / f"x{res}{origin[0]}.tif", arr, res, origin=origin)) as src:
            assert _nesting(src, GRID) is None


def test_a_band_folder_reads_the_same_through_the_uint16_path(tmp_path) -> None:
    """The fused kernels' uint16 read of a band folder with 20 m SWIR equals the float read (reflectance)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "detect"))
    from synth import scene_arrays, write_band_folder

    from tuban.raster.grid import analysis_grid, read_block
    from tuban.raster.scene import open_scene

    before, _, _ = scene_arrays(shape=(96, 130))
    folder = write_band_folder(tmp_path / "s2", np.concatenate([before, before[:1]]))
    scene = open_scene(folder)
    g = analysis_grid(scene, scene)
    roles = ("blue", "green", "red", "nir", "swir1", "swir2")
    for win in (Window(0, 0, 96, 130), Window(11, 17, 40, 50)):
        u16, v16 = read_block(scene, roles, g, win, keep_u16=True)
        f32, v32 = read_block(scene, roles, g, win)
        if u16.dtype == np.uint16:  # with the fused kernels
            u16 = u16 * np.float32(scene.scale)
        np.testing.assert_array_equal(u16, f32)
        np.testing.assert_array_equal(v16, v32)


@pytest.mark.parametrize("nodata", [None, 0])
def test_grids_that_do_not_nest_are_warped_once_with_their_mask(tmp_path, nodata) -> None:
    """The warper's data and mask come from one read: the alpha band, or the nodata value. (A second read of
    the masks took as long again, and without nodata it called every pixel valid, even off the source: the
    warper writes 0 there, which then looked like a change.)"""
    from tuban.raster.grid import read_block
    from tuban.raster.scene import open_scene

    arr = np.random.default_rng(4).integers(1, 9000, (4, 60, 80), dtype=np.uint16)
    arr[:, :5, :7] = 0
    odd = _write(tmp_path / "odd.tif", arr, 10.0 * 540 / 538, nodata=nodata, origin=(500003.0, 3800000.0))
    with rasterio.open(odd, "r+") as dst:
        for i, role in enumerate(("blue", "green", "red", "nir")):
            dst.set_band_description(i + 1, role)
    scene = open_scene(odd)
    window = Window(0, 0, 70, 100)  # beyond the source on the right and at the bottom
    data, valid = read_block(scene, ("blue", "green", "red", "nir"), GRID, window, scaled=False, mask_saturated=False)
    with rasterio.open(odd) as src:
        from rasterio.windows import Window as RWindow

        with WarpedVRT(src, crs=GRID.crs, transform=GRID.affine, width=GRID.width, height=GRID.height,
                       resampling=Resampling.bilinear, src_nodata=nodata, nodata=nodata,
                       add_alpha=nodata is None) as vrt:
            rw = RWindow(0, 0, 100, 70)
            expect = vrt.read([1, 2, 3, 4], window=rw)
            if nodata is None:
                expect_ok = vrt.read(5, window=rw) > 0  # the alpha band
            else:
                expect_ok = np.all(vrt.read_masks([1, 2, 3, 4], window=rw) > 0, axis=0)
    np.testing.assert_array_equal(data, expect.astype(np.float32))
    np.testing.assert_array_equal(valid, expect_ok)
    assert valid[:55, :75].any()
    assert not valid[62:].any()  # below the source (60 rows of 10.04 m)
    assert not valid[:, 82:].any()  # right of it (80 columns from 3 m in)
    assert valid[:5, :7].all() == (nodata is None)  # zeros: data without nodata, else nodata


@pytest.mark.parametrize(("k", "shift"), [(2, 1), (2, 4), (1, 3)])
def test_a_source_starting_inside_the_grid_matches_the_warper_where_it_is_valid(tmp_path, k, shift) -> None:
    """The grid starts ``shift`` of its pixels left of and above the source: those pixels are off the source
    (invalid, as the warper's alpha says), the rest are its values."""
    rng = np.random.default_rng(5)
    arr = rng.integers(1, 65000, (1, 70, 90), dtype=np.uint16)
    origin = (500000.0 + 10.0 * shift, 3800000.0 - 10.0 * shift)
    with rasterio.open(_write(tmp_path / "s.tif", arr, 10.0 * k, origin=origin)) as src:
        nest = _nesting(src, GRID)
        assert (nest.k, nest.col, nest.row) == (k, -shift, -shift)
        window = Window(0, 0, 60, 80)
        ours, ok = _read_nested(src, [1], window, nest, nodata=None, mask_max=False)
        gdal, alpha = _warped(src, window, Resampling.bilinear)
    assert not ok[:shift].any()
    assert not ok[:, :shift].any()
    assert ok[shift:, shift:].all()
    np.testing.assert_array_equal(ok, alpha)
    np.testing.assert_array_equal(ours[:, ok], gdal[:, ok])


SHIFTS = [(0.37, 0.21), (0.5, 0.5), (-0.37, -0.81), (0.123, 0.0), (3.37, -2.6)]


@pytest.mark.parametrize(("sx", "sy"), SHIFTS)
def test_a_grid_shifted_by_a_fraction_of_a_pixel_reads_as_the_warper(tmp_path, sx, sy) -> None:
    """Two dates of an orthorectified product, each on its own pixel grid: the same pixel size, shifted by a
    fraction of a pixel. Bilinear between the four source pixels (in float64, rounded half up): the warper's
    validity, and its values within 1 DN (its per-pixel transformer rounds a tie now and then the other
    way); nearest: its values exactly."""
    from tuban.raster.grid import _offset_on

    arr = np.random.default_rng(5).integers(1, 65000, (1, 190, 250), dtype=np.uint16)
    p = _write(tmp_path / "s.tif", arr, 10.0, origin=(500000.0 - 10.0 * sx, 3800000.0 + 10.0 * sy))
    with rasterio.open(p) as src:
        nest = _nesting(src, GRID)
        assert nest is not None
        assert nest.k == 1
        assert (nest.dx, nest.dy) == pytest.approx((sx % 1, sy % 1), abs=1e-6)
        assert _offset_on(src, GRID) is None  # not read as it is
        window = Window(0, 0, GRID.height, GRID.width)
        for resampling in (Resampling.bilinear, Resampling.nearest):
            ours, ok = _read_nested(src, [1], window, nest, nodata=None, mask_max=False,
                                    nearest=resampling == Resampling.nearest)
            gdal, alpha = _warped(src, window, resampling)
            np.testing.assert_array_equal(ok, alpha)
            diff = np.abs(ours[0].astype(np.int64) - gdal[0])[ok]
            assert diff.max() <= (1 if resampling == Resampling.bilinear else 0)
            assert (diff == 0).mean() > 0.998


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize(("res", "shift"), [(10.0, (0.63, 0.29)), (20.0, (0.0, 0.0)), (20.0, (3.0, -2.0))])
def test_the_fused_interpolation_equals_the_numpy_one(tmp_path, monkeypatch, dtype, res, shift) -> None:
    """The fused pass (``fused.bilinear``) gives the numpy passes' numbers bit for bit, edges and nodata
    included: a grid shifted by a fraction of a pixel (float64), a coarser band on its pixel edges (float32)."""
    from tuban.raster import grid

    arr = np.random.default_rng(6).integers(1, 65000, (2, 60, 80)).astype(dtype)
    arr[:, 10:13, 20:24] = 0
    p = _write(tmp_path / "s.tif", arr, res, nodata=0, origin=(500000.0 - 10.0 * shift[0], 3800000.0 + 10.0 * shift[1]))
    with rasterio.open(p) as src:
        nest = _nesting(src, GRID)
        assert nest is not None
        for window in (Window(0, 0, 70, 90), Window(5, 7, 20, 30), Window(GRID.height - 9, GRID.width - 11, 9, 11)):
            fused_out, fused_ok = _read_nested(src, [1, 2], window, nest, nodata=0, mask_max=True)
            with monkeypatch.context() as m:
                m.setattr(grid, "_fused_ok", lambda: False)
                numpy_out, numpy_ok = _read_nested(src, [1, 2], window, nest, nodata=0, mask_max=True)
            np.testing.assert_array_equal(fused_ok, numpy_ok)
            assert fused_out.dtype == numpy_out.dtype
            np.testing.assert_array_equal(fused_out[:, fused_ok], numpy_out[:, numpy_ok])
        if res == 10.0:  # made of a nodata pixel (source rows 10–12, columns 20–23)
            ok = _read_nested(src, [1, 2], Window(0, 0, 70, 90), nest, nodata=0, mask_max=True)[1]
            assert not ok[10:13, 20:24].any()
