"""The construction method's parts: tolerant magnitude, local normalisation, lazy graph, masks, progress."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from tuban.raster.change import local_offset, neighbourhood_distance, tolerant_magnitude


def test_tolerant_magnitude_is_a_lower_bound_of_the_exact_one_and_ignores_a_one_pixel_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 40, 50)).astype(np.float32)
    b = rng.normal(size=(4, 40, 50)).astype(np.float32)
    fast, exact = tolerant_magnitude(a, b), neighbourhood_distance(a, b)
    assert fast.dtype == np.float32
    assert (fast <= exact + 1e-4).all()
    assert fast.mean() > 0.2 * exact.mean()  # still measures change
    shifted = np.roll(a, 1, axis=2)  # misregistration by one pixel: no change inside the scene
    assert tolerant_magnitude(a, shifted)[:, 2:-2].max() == pytest.approx(0, abs=1e-6)
    assert tolerant_magnitude(a, b, radius=0) == pytest.approx(np.sqrt(((a - b) ** 2).sum(0)))


def test_local_offset_removes_a_smooth_gradient_but_keeps_a_site_and_is_window_independent() -> None:
    h, w = 240, 256
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = 0.01 * xx + 0.005 * yy  # haze/illumination: smooth over the scene
    d[100:112, 120:132] += 5.0  # a construction site
    bg = local_offset(d, None, cell=8)
    resid = d - bg
    assert np.abs(resid[:, :][np.abs(resid) < 2.5]).mean() < 0.1
    assert resid[100:112, 120:132].mean() > 4.0
    # a window read with the documented halo gives the same values as the whole image
    halo = (9 // 2 + 2) * 8
    r0, c0 = 100 - halo, 120 - halo
    win = d[r0 : 100 + 20 + halo, c0 : 120 + 20 + halo]
    part = local_offset(win, None, cell=8, row=r0, col=c0)
    np.testing.assert_allclose(part[halo : halo + 20, halo : halo + 20], bg[100:120, 120:140], atol=1e-5)


def test_building_the_graph_reads_no_pixel_and_computing_it_gives_the_eager_result(pair, monkeypatch) -> None:
    from tuban.detect import kernel
    from tuban.detect.engine import detect

    before, after, _ = pair
    eager = detect(before, after, sensor="sentinel2", tile_size=128)
    calls: list[object] = []
    real = kernel.read_block

    def spy(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(kernel, "read_block", spy)
    graph = detect(before, after, sensor="sentinel2", tile_size=128, compute=False)
    assert calls == []
    from dask.delayed import Delayed

    assert isinstance(graph, Delayed)
    lazy = graph.compute(scheduler="synchronous")
    assert calls  # computing reads
    assert lazy.threshold == eager.threshold
    assert shapely.equals(shapely.union_all(lazy.patches.geometry.values),
                          shapely.union_all(eager.patches.geometry.values))


def test_saturated_pixels_are_not_observable(tmp_path) -> None:
    from synth import scene_arrays, write_stack

    from tuban.raster.grid import Window, analysis_grid, read_block
    from tuban.raster.scene import open_scene

    before, _, _ = scene_arrays(shape=(64, 64))
    before[3, 10:20, 10:20] = 7.0  # 70000 → clipped to 65535 by the writer: saturated NIR
    s = open_scene(write_stack(tmp_path / "b.tif", before))
    g = analysis_grid(s, s)
    _, valid = read_block(s, ("blue", "green", "red", "nir"), g, Window(0, 0, 64, 64))
    assert not valid[10:20, 10:20].any()
    assert valid.sum() == 64 * 64 - 100
    _, valid_all = read_block(s, ("nir",), g, Window(0, 0, 64, 64), mask_saturated=False)
    assert valid_all.all()


def test_masked_fraction_is_per_patch(tmp_path) -> None:
    from synth import RECTS, scene_arrays, write_stack

    from tuban.detect.engine import detect

    before, after, _ = scene_arrays(seed=2)
    r0, r1, c0, c1 = RECTS[1]
    after[:, r0 - 2 : r1 + 2, (c0 + c1) // 2 : c1 + 2] = 0  # nodata over half of one changed site
    b = write_stack(tmp_path / "b.tif", before, nodata=0)
    a = write_stack(tmp_path / "a.tif", after, nodata=0)
    res = detect(b, a, sensor="sentinel2")
    p = res.patches
    hit = p[p.intersects(shapely.box(*_bounds(res.grid, r0, r1, c0, c1)))]
    assert len(hit) >= 1
    assert hit["masked_fraction"].max() > 0.02  # its one-pixel ring touches the nodata side
    far = p[~p.index.isin(hit.index)]
    assert len(far) >= 1
    assert (far["masked_fraction"] == 0).all()
    assert res.unobservable_fraction > 0


def _bounds(grid, r0, r1, c0, c1):
    a, _, c, _, e, f = grid.transform
    return c + a * c0, f + e * r1, c + a * c1, f + e * r0


def test_cli_progress_on_a_pipe_is_plain_lines(pair, tmp_path, capsys) -> None:
    from tuban.cli import main

    before, after, _ = pair
    assert main(["detect", str(before), str(after), "-o", str(tmp_path / "p.gpkg"), "--tile-size", "128"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "tiles: 6/6 (100%)" in err
    assert "statistics:" in err


#: Landsat Collection 2 Level-2 surface reflectance: reflectance = DN × 0.0000275 − 0.2
LANDSAT_L2 = {"scale": 2.75e-5, "add": -0.2}


def test_landsat_qa_pixel_clouds_are_unobservable(tmp_path) -> None:
    from synth import RECTS, scene_arrays, write_stack

    from tuban.detect.engine import detect

    before, after, _ = scene_arrays(seed=5)
    r0, r1, c0, c1 = RECTS[1]
    folders = []
    for name, arr in (("b", before), ("a", after)):
        d = tmp_path / name
        d.mkdir()
        for i, token in enumerate(("B2", "B3", "B4", "B5", "B6", "B7")):
            write_stack(d / f"LC08_L2SP_123032_2023010{len(folders) + 1}_SR_{token}.TIF", arr[i : i + 1],
                        descriptions=None, **LANDSAT_L2)
        qa = np.full((1, *arr.shape[1:]), 21824, np.float32)  # clear land
        if name == "a":
            qa[:, r0 - 5 : r1 + 5, c0 - 5 : c1 + 5] = 1 << 3 | 1 << 1  # cloud + dilated cloud
        write_stack(d / f"LC08_L2SP_123032_2023010{len(folders) + 1}_QA_PIXEL.TIF", qa, descriptions=None,
                    scale=1)
        folders.append(d)
    res = detect(folders[0], folders[1])
    assert res.unobservable_fraction > 0.02
    site = shapely.box(*_bounds(res.grid, r0, r1, c0, c1))
    assert not res.patches.intersects(site).any()  # the changed site under the cloud is not reported
    assert len(res.patches) >= 2  # the clear sites are


def test_sentinel2_scene_classification_masks_clouds_and_snow(tmp_path) -> None:
    """Sentinel-2 L2A's SCL band (20 m, beside the 10 m bands): its cloud, shadow, cirrus and snow classes are
    unobservable; a changed site under a cloud class is not reported, one under a clear class is."""
    import rasterio
    from affine import Affine
    from synth import RECTS, scene_arrays, write_band_folder

    from tuban.detect.engine import detect

    before, after, _ = scene_arrays(seed=5)
    h, w = before.shape[1:]
    folders = []
    for name, arr, hidden in (("b", before, 4), ("a", after, 9)):  # vegetation (4); cloud, high probability (9)
        d = write_band_folder(tmp_path / name, arr, prefix=f"T50QKK_2023060{len(folders) + 1}")
        scl = np.full((h // 2, w // 2), 4, np.uint8)
        r0, r1, c0, c1 = RECTS[1]
        scl[(r0 - 6) // 2 : (r1 + 6) // 2, (c0 - 6) // 2 : (c1 + 6) // 2] = hidden
        r0, r1, c0, c1 = RECTS[0]
        scl[(r0 - 6) // 2 : (r1 + 6) // 2, (c0 - 6) // 2 : (c1 + 6) // 2] = 11 if name == "b" else 4  # snow
        with rasterio.open(d / f"T50QKK_2023060{len(folders) + 1}_SCL_20m.tif", "w", driver="GTiff", width=w // 2,
                           height=h // 2, count=1, dtype="uint8", crs="EPSG:32650", nodata=0,
                           transform=Affine(20.0, 0.0, 500000.0, 0.0, -20.0, 3800000.0)) as dst:
            dst.write(scl[None])
        folders.append(d)
    res = detect(folders[0], folders[1])
    assert res.clouds == {"b": "qa", "a": "qa"}
    for k in (0, 1):
        site = shapely.box(*_bounds(res.grid, *RECTS[k]))
        assert not res.patches.intersects(site).any()  # under snow (before) or a cloud (after)
    clear = shapely.box(*_bounds(res.grid, *RECTS[2]))
    assert res.patches.intersects(clear).any()
    assert res.unobservable_fraction > 0.05
    for d in folders:  # without the classification: the spectral test, which sees no cloud in these pixels
        next(d.glob("*_SCL_20m.tif")).unlink()
    plain = detect(folders[0], folders[1])
    assert plain.clouds == {"b": "spectral", "a": "spectral"}
    assert plain.patches.intersects(shapely.box(*_bounds(res.grid, *RECTS[1]))).any()


def _spectral_without(safes, pattern: str, grid) -> None:
    """With the cloud mask files ``pattern`` of both SAFEs removed, the spectral test runs, which sees no cloud
    in these pixels: every changed site is reported."""
    from synth import RECTS

    from tuban.detect.engine import detect

    for safe in safes:
        next(safe.rglob(pattern)).unlink()
    plain = detect(safes[0], safes[1])
    assert plain.clouds == {"b": "spectral", "a": "spectral"}
    for k in (0, 1, 2, 3):
        assert plain.patches.intersects(shapely.box(*_bounds(grid, *RECTS[k]))).any(), k


def test_sentinel2_l1c_cloud_classification_masks_clouds_and_snow(tmp_path) -> None:
    """A Sentinel-2 L1C .SAFE from processing baseline 04.00 carries QI_DATA/MSK_CLASSI_B00.jp2 (60 m: opaque
    clouds, cirrus, snow and ice): the dates' clouds come from it, not from the spectral test. Sites under
    snow (before), an opaque cloud or cirrus (after) are not reported; a clear one is; without the file the
    spectral test runs, which sees no cloud in these pixels."""
    import zipfile

    from synth import RECTS, scene_arrays, write_safe

    from tuban.detect.engine import detect
    from tuban.raster.scene import open_scene

    h, w = 264, 288
    before, after, _ = scene_arrays(shape=(h, w), seed=5)

    def cover(classi: np.ndarray, layer: int, k: int) -> None:  # the site and 6 px around it, in 60 m cells
        r0, r1, c0, c1 = RECTS[k]
        classi[layer, (r0 - 6) // 6 : -(-(r1 + 6) // 6), (c0 - 6) // 6 : -(-(c1 + 6) // 6)] = 1

    classi = {d: np.zeros((3, h // 6, w // 6), np.uint8) for d in "ba"}
    cover(classi["b"], 2, 0)  # snow before
    cover(classi["a"], 0, 1)  # an opaque cloud after
    cover(classi["a"], 1, 3)  # cirrus after
    safes = [write_safe(tmp_path / d, arr, stamp=stamp, classi=classi[d])
             for d, arr, stamp in (("b", before, "20230601T030551"), ("a", after, "20240601T030551"))]
    s = open_scene(safes[0])
    assert s.roles == ("blue", "green", "red", "nir", "swir1", "swir2", "msk_opaque", "msk_cirrus", "msk_snow")
    assert s.dn_offset == 1000
    res = detect(safes[0], safes[1])
    assert res.clouds == {"b": "qa", "a": "qa"}
    assert res.run["after_clouds"] == "qa: msk_opaque, msk_cirrus, msk_snow"  # what the output records
    for k in (0, 1, 3):
        assert not res.patches.intersects(shapely.box(*_bounds(res.grid, *RECTS[k]))).any(), k
    assert res.patches.intersects(shapely.box(*_bounds(res.grid, *RECTS[2]))).any()
    assert res.unobservable_fraction > 0.03
    zipped = tmp_path / f"{safes[0].name}.zip"  # as downloaded: the mask is read inside the archive too
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(safes[0].rglob("*")):
            zf.write(f, f.relative_to(safes[0].parent).as_posix())
    from_zip = detect(zipped, safes[1])
    assert from_zip.clouds == res.clouds
    assert from_zip.unobservable_fraction == res.unobservable_fraction
    assert len(from_zip.patches) == len(res.patches)
    _spectral_without(safes, "MSK_CLASSI_B00.jp2", res.grid)


def test_sentinel2_l1c_vector_cloud_mask_of_older_products(tmp_path) -> None:
    """An L1C .SAFE from before processing baseline 04.00 has no MSK_CLASSI: its clouds are polygons in
    QI_DATA/MSK_CLOUDS_B00.gml (before 2016 S2A_OPER_MSK_CLOUDS_…_B00_MSIL1C.gml), rasterised at 60 m when the
    scene opens (holes kept) and read as its cloud flags, also by Dask workers the scene is sent to. Sites
    under an opaque cloud or cirrus are not reported; a mask without clouds hides nothing; without the file
    the spectral test runs; a damaged file is a named error. A product of several granules (before December
    2016) is refused with the way out: one granule's folder."""
    import zipfile

    from synth import RECTS, scene_arrays, write_safe

    from tuban.detect.engine import detect
    from tuban.errors import InputError
    from tuban.raster.grid import Window, analysis_grid, read_block
    from tuban.raster.scene import open_scene

    h, w = 264, 288
    before, after, _ = scene_arrays(shape=(h, w), seed=5)
    holed = (37, 43, 2, 10, 39, 40, 5, 6)  # cirrus over no site, with a one-cell hole
    gml = {"b": {}, "a": {"OPAQUE": [(17, 26, 15, 28)], "CIRRUS": [(9, 12, 32, 36), holed]}}
    names = {"b": "S2A_OPER_MSK_CLOUDS_SGS__20160601T030551_A005000_T50QKK_B00_MSIL1C.gml", "a": "MSK_CLOUDS_B00.gml"}
    safes = [write_safe(tmp_path / d, arr, stamp=stamp, baseline="02.04", clouds_gml=gml[d], gml_name=names[d])
             for d, arr, stamp in (("b", before, "20160601T030551"), ("a", after, "20170601T030551"))]
    s = open_scene(safes[1])
    assert s.roles == ("blue", "green", "red", "nir", "swir1", "swir2", "msk_opaque", "msk_cirrus")
    assert s.dn_offset == 0
    assert s.source(s.bands["msk_cirrus"].path).endswith("QI_DATA/MSK_CLOUDS_B00.gml")
    grid = analysis_grid(s, s)
    flags, _ = read_block(s, ("msk_opaque", "msk_cirrus"), grid, Window(0, 0, h, w), resampling="nearest",
                          scaled=False)
    want = np.zeros((2, h // 6, w // 6), np.uint8)
    want[0, 17:26, 15:28] = 1
    want[1, 9:12, 32:36] = 1
    want[1, 37:43, 2:10] = 1
    want[1, 39, 5] = 0  # the hole
    assert np.array_equal(flags[:, ::6, ::6], want)
    assert np.array_equal(flags, np.repeat(np.repeat(want, 6, axis=1), 6, axis=2))
    res = detect(safes[0], safes[1])
    assert res.clouds == {"b": "qa", "a": "qa"}
    assert res.run["after_clouds"] == "qa: msk_opaque, msk_cirrus"
    assert "QI_DATA/MSK_CLOUDS_B00.gml" in res.run["after_files"]
    for k in (1, 3):
        assert not res.patches.intersects(shapely.box(*_bounds(res.grid, *RECTS[k]))).any(), k
    for k in (0, 2):  # the before date's mask has no clouds
        assert res.patches.intersects(shapely.box(*_bounds(res.grid, *RECTS[k]))).any(), k
    par = detect(safes[0], safes[1], workers=2)  # the scene, with its mask, sent to worker processes
    assert par.unobservable_fraction == res.unobservable_fraction
    assert shapely.equals(shapely.union_all(par.patches.geometry.values), shapely.union_all(res.patches.geometry.values))
    zipped = tmp_path / f"{safes[1].name}.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(safes[1].rglob("*")):
            zf.write(f, f.relative_to(safes[1].parent).as_posix())
    assert detect(safes[0], zipped).unobservable_fraction == res.unobservable_fraction
    import shutil

    granule = next((safes[0] / "GRANULE").iterdir())
    two = tmp_path / "two" / safes[0].name  # a product of two granules, as before December 2016
    shutil.copytree(safes[0], two)
    shutil.copytree(granule, two / "GRANULE" / "L1C_T50QKL_A005000_20160601T030551")
    with pytest.raises(InputError, match=r"a \.SAFE product of 2 granules") as err:
        open_scene(two)
    assert "GRANULE/<granule>" in str(err.value)
    assert open_scene(two / "GRANULE" / granule.name).roles[:4] == ("blue", "green", "red", "nir")  # one granule
    mask = next(safes[1].rglob("MSK_CLOUDS_B00.gml"))
    mask.write_text(mask.read_text()[:300])  # cut short
    with pytest.raises(InputError, match=r"MSK_CLOUDS_B00\.gml: not a readable Sentinel-2 cloud mask"):
        open_scene(safes[1])
    _spectral_without(safes, "*MSK_CLOUDS*.gml", res.grid)


def test_landsat_level2_reflectance_offset(tmp_path) -> None:
    """Landsat Collection 2 Level-2 DN are reflectance + 0.2 over 0.0000275: read with the profile's offset,
    a Landsat pair gives the index means and the patches of the same reflectance stored as × 10000; without
    it, the NDVI of reflectance 0.2 too high."""
    from synth import scene_arrays, write_stack

    from tuban.detect.engine import detect

    before, after, _ = scene_arrays(seed=3)
    paths: dict[str, list] = {"l8": [], "s2": []}
    for n, arr in (("b", before), ("a", after)):
        paths["l8"].append(write_stack(tmp_path / f"l8{n}.tif", arr, **LANDSAT_L2))
        paths["s2"].append(write_stack(tmp_path / f"s2{n}.tif", arr))
    landsat = detect(*paths["l8"], sensor="landsat8")
    plain = detect(*paths["s2"], sensor="sentinel2")
    assert len(plain.patches) > 0
    union = [shapely.union_all(r.patches.geometry.values) for r in (landsat, plain)]
    assert union[0].symmetric_difference(union[1]).area <= 0.01 * union[1].area  # DN steps differ: 2.75e-5, 1e-4
    means = [float((r.patches["index_before"] * r.patches["QAREA"]).sum() / r.patches["QAREA"].sum())
             for r in (landsat, plain)]
    assert means[0] == pytest.approx(means[1], abs=2e-3)
    ignored = detect(*paths["l8"], sensor="landsat8", dn_offset=0)
    assert float(ignored.patches["index_before"].mean()) < means[1] - 0.05  # NDVI pulled towards 0


def test_threads_give_the_serial_result(pair) -> None:
    from tuban.detect.engine import detect

    before, after, _ = pair
    serial = detect(before, after, sensor="sentinel2", tile_size=128)
    threaded = detect(before, after, sensor="sentinel2", tile_size=128, threads=3)
    assert threaded.threshold == serial.threshold
    assert len(threaded.patches) == len(serial.patches) > 0
    assert shapely.equals(shapely.union_all(serial.patches.geometry.values),
                          shapely.union_all(threaded.patches.geometry.values))


def _gf_pair(tmp_path, *, declare: float | None = None):
    """A GF-like 4-band DN pair (reflectance × 10000: blue, green, red, nir), a white cloud over changed site 1
    of the after date; ``declare``: the band scale the files state (GDAL metadata)."""
    import rasterio
    from synth import RECTS, scene_arrays, write_stack

    before, after, _ = scene_arrays(seed=5)
    before, after = before[:4], after[:4].copy()
    r0, r1, c0, c1 = RECTS[1]
    after[:, r0 - 6 : r1 + 6, c0 - 6 : c1 + 6] = np.array([0.62, 0.60, 0.61, 0.58], np.float32)[:, None, None]
    paths = [write_stack(tmp_path / f"{n}.tif", arr) for n, arr in (("b", before), ("a", after))]
    if declare is not None:
        for p in paths:
            with rasterio.open(p, "r+") as dst:
                dst.scales = (declare,) * 4
                dst.offsets = (0.0,) * 4
    return paths, (r0, r1, c0, c1)


def test_gf_dn_clouds_need_a_reflectance_scale(tmp_path) -> None:
    """GF-1/2/6 DN: no QA band and no known scale, so no spectral cloud test (the run says so); given the
    scale, or when the files declare it, the cloud is unobservable and the site under it is not reported."""
    from tuban.detect.engine import detect

    (b, a), rect = _gf_pair(tmp_path)
    plain = detect(b, a, sensor="gf")
    assert plain.clouds == {"b": "none", "a": "none"}
    assert plain.unobservable_fraction == 0
    site = shapely.box(*_bounds(plain.grid, *rect))
    assert plain.patches.intersects(site).any()  # the cloud itself reads as change
    scaled = detect(b, a, sensor="gf", reflectance_scale=1e-4)
    assert scaled.clouds == {"b": "spectral", "a": "spectral"}
    assert scaled.unobservable_fraction > 0.02
    assert not scaled.patches.intersects(site).any()
    assert len(scaled.patches) >= 2  # the clear sites are still found
    (tmp_path / "declared").mkdir()
    (b2, a2), _ = _gf_pair(tmp_path / "declared", declare=1e-4)
    declared = detect(b2, a2, sensor="gf")
    assert declared.clouds == {"b": "spectral", "a": "spectral"}
    assert declared.unobservable_fraction == pytest.approx(scaled.unobservable_fraction)


def test_declared_scales_and_offsets(tmp_path) -> None:
    """GDAL's band scale and offset: a reflectance scale with a DN offset is taken (Sentinel-2 of processing
    baseline 04.00 exported with its metadata), to the nearest DN; radiance, or an added offset, is not."""
    import rasterio

    from tuban.errors import UsageError
    from tuban.raster.scene import declared_calibration, open_scene

    (b, _), _ = _gf_pair(tmp_path, declare=1e-4)
    assert open_scene(b, sensor="gf").scale == 1e-4
    with rasterio.open(b, "r+") as dst:
        dst.offsets = (-0.1,) * 4  # reflectance = DN × 0.0001 − 0.1: 1000 DN added
    assert declared_calibration(open_scene(b, sensor="gf")) == (1e-4, 1000)
    assert (open_scene(b, sensor="sentinel2").scale, open_scene(b, sensor="sentinel2").dn_offset) == (1e-4, 1000)
    assert open_scene(b, sensor="gf", dn_offset=0).dn_offset == 0  # the caller's word is last
    with rasterio.open(b, "r+") as dst:
        dst.offsets = (-0.12346,) * 4  # between DN: kept to the nearest
    assert declared_calibration(open_scene(b, sensor="gf")) == (1e-4, 1235)
    with rasterio.open(b, "r+") as dst:
        dst.offsets = (0.05,) * 4  # added reflectance: not an offset tuban subtracts
    assert declared_calibration(open_scene(b, sensor="gf")) is None
    assert open_scene(b, sensor="gf").scale is None
    with rasterio.open(b, "r+") as dst:
        dst.offsets = (0.0,) * 4
        dst.units = ("W m-2 sr-1 um-1",) * 4  # radiance
    assert open_scene(b, sensor="gf").scale is None
    assert open_scene(b, sensor="sentinel2").scale == 1e-4  # the profile's own scale comes first
    with pytest.raises(UsageError, match="outside"):
        open_scene(b, sensor="gf", reflectance_scale=10000)


def test_cli_warns_when_clouds_cannot_be_masked(tmp_path, capsys) -> None:
    from tuban.cli import main

    (b, a), _ = _gf_pair(tmp_path)
    assert main(["detect", str(b), str(a), "-o", str(tmp_path / "p.gpkg"), "--sensor", "gf", "-q"]) == 0
    assert "clouds not masked on the before and after date" in capsys.readouterr().err
    assert main(["detect", str(b), str(a), "-o", str(tmp_path / "q.gpkg"), "--sensor", "gf", "-q",
                 "--reflectance-scale", "0.0001"]) == 0
    assert "clouds not masked" not in capsys.readouterr().err


def _offset_pair(tmp_path, offset: int):
    """The synthetic 6-band Sentinel-2-like pair, as DN = reflectance × 10000 + ``offset`` (what products of
    processing baseline 04.00 and later hold, with 1000)."""
    import rasterio
    from synth import scene_arrays, write_stack

    before, after, _ = scene_arrays(seed=3)
    out = []
    for n, arr in (("b", before), ("a", after)):
        p = write_stack(tmp_path / f"{n}{offset}.tif", arr)
        if offset:
            with rasterio.open(p, "r+") as dst:
                dn = dst.read()
                dst.write((dn.astype(np.uint32) + offset).clip(0, 65535).astype(np.uint16))
        out.append(p)
    return out


def test_a_dn_offset_is_subtracted_where_bands_are_read(tmp_path) -> None:
    """Sentinel-2 from processing baseline 04.00 adds 1000 to every DN: given the offset, the pair gives the
    same patches as the same reflectance without it; not given, the NDVI terms and masks see 0.1 more."""
    from tuban.detect.engine import detect

    b0, a0 = _offset_pair(tmp_path, 0)
    b1, a1 = _offset_pair(tmp_path, 1000)
    plain = detect(b0, a0, sensor="sentinel2")
    shifted = detect(b1, a1, sensor="sentinel2", dn_offset=1000)
    assert len(plain.patches) > 0
    assert shifted.threshold == plain.threshold
    assert shifted.unobservable_fraction == plain.unobservable_fraction
    assert shapely.equals(shapely.union_all(plain.patches.geometry.values),
                          shapely.union_all(shifted.patches.geometry.values))
    np.testing.assert_allclose(shifted.patches["index_before"], plain.patches["index_before"], rtol=1e-5)
    small = detect(b1, a1, sensor="sentinel2", dn_offset=1000, tile_size=64)  # halos, band edges, kept columns
    assert shapely.equals(shapely.union_all(plain.patches.geometry.values),
                          shapely.union_all(small.patches.geometry.values))
    ignored = detect(b1, a1, sensor="sentinel2")
    assert not np.allclose(ignored.patches["index_before"].mean(), plain.patches["index_before"].mean(),
                           rtol=0.02)  # NDVI of reflectance 0.1 too high


def test_the_dn_offset_on_every_read_path(tmp_path) -> None:
    """uint16 kept as DN, converted to float32, and interpolated: the same reflectance once shifted."""
    from tuban.raster.grid import Window, analysis_grid, read_block
    from tuban.raster.scene import open_scene

    b0, _ = _offset_pair(tmp_path, 0)
    b1, _ = _offset_pair(tmp_path, 1000)
    s0 = open_scene(b0, sensor="sentinel2")
    s1 = open_scene(b1, sensor="sentinel2", dn_offset=1000)
    grid = analysis_grid(s0, s0)
    win = Window(10, 20, 100, 120)
    roles = ("blue", "red", "nir")
    for keep in (True, False):
        d0, v0 = read_block(s0, roles, grid, win, keep_u16=keep)
        d1, v1 = read_block(s1, roles, grid, win, keep_u16=keep)
        assert d1.dtype == d0.dtype
        np.testing.assert_array_equal(v1, v0)
        np.testing.assert_allclose(d1[:, v0], d0[:, v0], rtol=1e-6, atol=1e-6)
    coarse = analysis_grid(s0, s0, resolution=15.0)  # resampled: the float path
    d0, v0 = read_block(s0, roles, coarse, Window(0, 0, 60, 60))
    d1, v1 = read_block(s1, roles, coarse, Window(0, 0, 60, 60))
    # GDAL's warper averages into uint16, so a shifted input may round to the next DN (3 of 10 800 here)
    np.testing.assert_allclose(d1[:, v0 & v1], d0[:, v0 & v1], rtol=0, atol=1.01e-4)
    assert open_scene(b1, sensor="sentinel2").dn_offset == 0  # a file that does not say: not guessed


def test_the_cva_baseline_runs_on_any_bands() -> None:
    """``--method cva`` (the classical baseline) on what the pair has: six bands, or RGB only."""
    from tuban.errors import BandError
    from tuban.raster.change import get_method

    assert get_method("cva", ("blue", "green", "red")).roles == ("blue", "green", "red")
    assert get_method("cva", ("blue", "green", "nir", "red", "swir1", "swir2", "qa")).roles == (
        "blue", "green", "red", "nir", "swir1", "swir2")
    with pytest.raises(BandError, match="needs band role"):
        get_method("cva", ("pan",))


def test_water_on_both_dates_is_not_reported_when_asked(tmp_path) -> None:
    """``water=True`` (``--mask-water``): a lake whose water turns turbid is water on both dates and gives no
    patch; without it, it does (the change-vector method: the default one looks for vegetation turned bare,
    which turbid water is not). The land sites are reported either way, and the water counts as observable
    (it is excluded, not unseen)."""
    from synth import RECTS, scene_arrays, write_stack

    from tuban.detect.engine import detect

    before, after, _ = scene_arrays(seed=7)
    r0, r1, c0, c1 = RECTS[1]
    lake = (slice(None), slice(r0 - 12, r1 + 12), slice(c0 - 12, c1 + 12))
    clear = np.array([0.06, 0.05, 0.03, 0.02, 0.01, 0.01], np.float32)[:, None, None]
    turbid = np.array([0.14, 0.20, 0.17, 0.035, 0.015, 0.012], np.float32)[:, None, None]  # not a shadow
    # (a before NIR under half the after one would pass for a cloud shadow on the before date)[:, None, None]
    before[lake] = clear
    after[lake] = clear
    after[:, r0:r1, c0:c1] = turbid
    b = write_stack(tmp_path / "b.tif", before)
    a = write_stack(tmp_path / "a.tif", after)
    site = shapely.box(*_bounds_of(b, r0, r1, c0, c1))
    land = [shapely.box(*_bounds_of(b, *r)) for i, r in enumerate(RECTS) if i != 1 and (r[1] - r[0]) * (r[3] - r[2]) > 100]
    plain = detect(b, a, sensor="generic", reflectance_scale=1e-4, tile_size=128, method="cva")
    masked = detect(b, a, sensor="generic", reflectance_scale=1e-4, tile_size=128, method="cva", water=True)
    assert plain.patches.intersects(site).any()  # the turbid water is a change
    assert not masked.patches.intersects(site).any()  # but water on both dates, so not a disturbance
    for box in land:
        assert plain.patches.intersects(box).any()
        assert masked.patches.intersects(box).any()
    assert masked.unobservable_fraction == plain.unobservable_fraction


def _bounds_of(path, r0, r1, c0, c1):
    import rasterio

    with rasterio.open(path) as src:
        a, _, c, _, e, f = tuple(src.transform)[:6]
    return c + a * c0, f + e * r1, c + a * c1, f + e * r0


def _write_tiled(path, arr: np.ndarray, *, nodata, roles=("blue", "green", "red", "nir", "swir1", "swir2"),
                 res: float = 10.0):
    """``arr`` (bands, h, w) as a tiled GeoTIFF of its dtype, bands described by ``roles``."""
    import rasterio
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype.name, crs="EPSG:32650", transform=Affine(res, 0, 500000.0, 0, -res, 3800000.0),
                       nodata=nodata, tiled=True, blockxsize=64, blockysize=64) as dst:
        dst.write(arr)
        for i, d in enumerate(roles):
            dst.set_band_description(i + 1, d)
    return path


def _assert_same_run(direct, general) -> None:
    """Two runs of one pair through two read paths: the same threshold, unobservable fraction and patches."""
    assert direct.unobservable_fraction == general.unobservable_fraction
    assert direct.threshold == general.threshold
    assert direct.patches.drop(columns="geometry").equals(general.patches.drop(columns="geometry"))
    assert direct.patches.geometry.geom_equals_exact(general.patches.geometry, 0).all()


@pytest.mark.parametrize("nodata", [None, 0])
def test_8_bit_files_read_as_dn_give_the_float_reads_patches(tmp_path, monkeypatch, nodata) -> None:
    """uint8 files on the grid (8-bit GF and RGB products) are read straight into the fused kernels' uint16
    DN: the same patches and unobservable fraction as reading them as float32, 255 kept as a bright pixel
    (not saturated, as the float32 reads have it) and the nodata 0 (when declared) masked."""
    from synth import scene_arrays

    from tuban.detect.engine import detect
    from tuban.raster import grid

    before, after, _ = scene_arrays(seed=11)
    paths = []
    for name, arr in (("b", before), ("a", after)):
        rgb = np.clip(arr[[2, 1, 0]] * 900, 1, 255).astype(np.uint8)  # red, green, blue; bright soil at 255
        rgb[:, :6, :] = 255  # a white roof along the top
        if nodata is not None:
            rgb[:, -5:, -40:] = nodata  # a corner outside the footprint
        paths.append(_write_tiled(tmp_path / f"{name}.tif", rgb, nodata=nodata, roles=("red", "green", "blue"),
                                  res=2.0))
    from tuban.raster import fused

    calls = []
    kernel_valid = fused.valid_u16
    monkeypatch.setattr(fused, "valid_u16", lambda *a, **k: (calls.append(a[0].dtype), kernel_valid(*a, **k)))
    direct = detect(*paths, tile_size=128)
    assert calls  # read as DN
    monkeypatch.setattr(grid, "_DN_TYPES", ("uint16",))  # uint8 read as float32, as before
    calls.clear()
    as_float = detect(*paths, tile_size=128)
    assert not calls
    assert direct.method == "rgb"
    assert len(direct.patches) > 0
    assert (direct.unobservable_fraction > 0) == (nodata is not None)
    _assert_same_run(direct, as_float)


@pytest.mark.parametrize(("nodata", "scaling"), [(None, {}), (-9999.0, {}),
                                                 (-9999.0, {"reflectance_scale": 0.5, "dn_offset": 1})])
def test_float32_files_read_into_place_give_the_float_reads_patches(tmp_path, monkeypatch, nodata, scaling) -> None:
    """float32 files on the grid (reflectance products) are read straight into a pooled array, their validity
    in one pass: the same patches and unobservable fraction as the general float32 reads; NaN, infinities
    and the nodata (when declared) are unobservable, the scene's offset and scale applied once."""
    from synth import scene_arrays

    from tuban.detect.engine import detect
    from tuban.raster import fused, grid

    before, after, _ = scene_arrays(seed=13)
    paths = []
    for name, arr in (("b", before), ("a", after)):
        arr = arr.copy()
        arr[0, :4, :30] = np.nan
        arr[3, 250:, :20] = np.inf
        if scaling:
            arr = arr * 2 + 1  # stored as reflectance / scale + offset
        if nodata is not None:
            arr[:, 100:104, 280:] = nodata
        paths.append(_write_tiled(tmp_path / f"{name}.tif", arr.astype(np.float32), nodata=nodata))
    calls = []
    kernel_valid = fused.valid_f32
    monkeypatch.setattr(fused, "valid_f32", lambda *a, **k: (calls.append(1), kernel_valid(*a, **k)))
    from tuban.detect import engine

    monkeypatch.setattr(engine, "band_width", lambda *a, **k: 1)  # bands of one tile column: kept edge columns
    taken = []
    take = grid.EdgeColumns.take
    monkeypatch.setattr(grid.EdgeColumns, "take", lambda self, *a: taken.append(take(self, *a)) or taken[-1])
    direct = detect(*paths, tile_size=128, **scaling)
    assert calls  # read into place
    assert any(taken)  # columns kept at band edges came back raw, and were offset and scaled once
    monkeypatch.setattr(grid, "_read_in_place", lambda *a, **k: None)  # the general float32 reads
    calls.clear()
    general = detect(*paths, tile_size=128, **scaling)
    assert not calls
    assert len(direct.patches) >= 2
    assert direct.unobservable_fraction > 0
    _assert_same_run(direct, general)


@pytest.mark.parametrize("nodata", [None, -9999])
def test_int16_files_read_into_place_give_the_float_reads_patches(tmp_path, monkeypatch, nodata) -> None:
    """int16 files on the grid are widened to float32 as they are read into place: the same patches and
    unobservable fraction as the general float32 reads, 32767 masked as saturated (unless it is the nodata)
    and the nodata (when declared) too."""
    from synth import scene_arrays

    from tuban.detect.engine import detect
    from tuban.raster import fused, grid

    before, after, _ = scene_arrays(seed=17)
    paths = []
    for name, arr in (("b", before), ("a", after)):
        dn = np.clip(arr * 10000, -5000, 32766).astype(np.int16)
        dn[:, :3, :50] = 32767  # saturated
        if nodata is not None:
            dn[:, 200:204, 250:] = nodata
        paths.append(_write_tiled(tmp_path / f"{name}.tif", dn, nodata=nodata))
    calls = []
    kernel_valid = fused.valid_f32
    monkeypatch.setattr(fused, "valid_f32", lambda *a, **k: (calls.append(k.get("max_value")), kernel_valid(*a, **k)))
    direct = detect(*paths, tile_size=128, reflectance_scale=1e-4)
    assert calls
    assert set(calls) == {32767.0}  # saturation tested
    monkeypatch.setattr(grid, "_read_in_place", lambda *a, **k: None)  # the general float32 reads
    general = detect(*paths, tile_size=128, reflectance_scale=1e-4)
    assert len(direct.patches) >= 2
    assert direct.unobservable_fraction > 0
    _assert_same_run(direct, general)
