from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "detect"))

from synth import scene_arrays, write_band_folder, write_damaged_pair, write_jp2, write_stack

from tuban.errors import BandError, InputNotFoundError, NoOverlapError, UnsafeInputError
from tuban.raster.grid import Window, analysis_grid, read_block
from tuban.raster.scene import open_scene

SIX = ("blue", "green", "red", "nir", "swir1", "swir2")


def test_band_folders_on_slightly_different_grids_share_the_before_grid(tmp_path) -> None:
    # the OSCD Hong Kong case: 540×695 (10 m) before, 538×693 with slightly larger pixels after, same origin
    rng = np.random.default_rng(0)
    b = rng.uniform(0.05, 0.3, (6, 695, 540)).astype(np.float32)
    a = rng.uniform(0.05, 0.3, (6, 693, 538)).astype(np.float32)
    fb = write_band_folder(tmp_path / "imgs_1", b, res=10.0)
    fa = write_band_folder(tmp_path / "imgs_2", a, res=10.0 * 540 / 538, prefix="S2A_OPER_X")
    before, after = open_scene(fb), open_scene(fa)
    assert before.sensor == "sentinel2"
    assert before.scale == 1e-4
    assert set(SIX) <= set(before.roles)
    g = analysis_grid(before, after)
    assert (g.height, g.width) == (695, 540)
    data_a, valid_a = read_block(after, SIX, g, Window(0, 0, g.height, g.width))
    data_b, valid_b = read_block(before, SIX, g, Window(0, 0, g.height, g.width))
    assert data_a.shape == data_b.shape == (6, 695, 540)
    assert valid_b.all()
    assert valid_a.mean() > 0.99
    # the 20 m SWIR band is resampled onto the 10 m grid
    assert 0.05 < float(np.median(data_b[4])) < 0.3
    # a window read equals the same part of a full read (tile independence of the grid reader)
    part, _ = read_block(after, SIX, g, Window(100, 200, 64, 64))
    np.testing.assert_allclose(part, data_a[:, 100:164, 200:264], rtol=1e-5, atol=1e-6)


def test_nodata_pixels_are_not_valid(tmp_path) -> None:
    before, _, _ = scene_arrays(shape=(64, 64))
    before[:, :10, :] = 0
    p = write_stack(tmp_path / "b.tif", before, nodata=0)
    s = open_scene(p)
    g = analysis_grid(s, s)
    _, valid = read_block(s, SIX, g, Window(0, 0, 64, 64))
    assert not valid[:10].any()
    assert valid[10:].all()


def test_dates_that_do_not_overlap_raise_a_named_error(tmp_path) -> None:
    arr, _, _ = scene_arrays(shape=(64, 64))
    b = open_scene(write_stack(tmp_path / "b.tif", arr))
    far = open_scene(write_stack(tmp_path / "a.tif", arr, origin=(600000.0, 3900000.0)))
    with pytest.raises(NoOverlapError, match="do not overlap"):
        analysis_grid(b, far)
    little = open_scene(write_stack(tmp_path / "c.tif", arr, origin=(500000.0 + 600, 3800000.0 - 600)))
    with pytest.raises(NoOverlapError, match="overlap on"):
        analysis_grid(b, little)


def test_missing_vrt_and_roles(tmp_path) -> None:
    with pytest.raises(InputNotFoundError):
        open_scene(tmp_path / "missing.tif")
    (tmp_path / "x.vrt").write_text('<VRTDataset rasterXSize="8" rasterYSize="8"><VRTRasterBand dataType="Byte" '
                                    'band="1" subClass="VRTRawRasterBand"><SourceFilename>/etc/passwd'
                                    '</SourceFilename></VRTRasterBand></VRTDataset>')
    with pytest.raises(UnsafeInputError, match="VRTRawRasterBand"):
        open_scene(tmp_path / "x.vrt")
    arr, _, _ = scene_arrays(shape=(32, 32))
    with pytest.raises(BandError, match="cannot tell"):
        open_scene(write_stack(tmp_path / "five.tif", arr[:5], descriptions=None))
    named = open_scene(write_stack(tmp_path / "named.tif", arr[:5], descriptions=None),
                       bands=("blue", "green", "red", "nir", "swir1"))
    assert named.bands["nir"].index == 4


def test_stac_item_with_local_assets(tmp_path) -> None:
    arr, _, _ = scene_arrays(shape=(32, 32))
    assets = {}
    for i, (token, cn) in enumerate(zip(("B02", "B03", "B04", "B08"), ("blue", "green", "red", "nir"), strict=True)):
        write_stack(tmp_path / f"{token}.tif", arr[i : i + 1], descriptions=None)
        assets[token] = {"href": f"./{token}.tif", "eo:bands": [{"name": token, "common_name": cn}]}
    item = {"type": "Feature", "id": "S2_test", "properties": {"platform": "sentinel-2a"}, "assets": assets}
    p = tmp_path / "item.json"
    p.write_text(json.dumps(item))
    s = open_scene(p)
    assert s.roles == ("blue", "green", "red", "nir")
    assert s.scale == 1e-4
    item["assets"]["B02"]["href"] = "https://example.invalid/B02.tif"
    p.write_text(json.dumps(item))
    with pytest.raises(UnsafeInputError, match="remote"):
        open_scene(p)


def test_stac_raster_bands_give_the_dn_offset(tmp_path) -> None:
    """Sentinel-2 L2A items from processing baseline 04.00 say reflectance = DN × 0.0001 − 0.1."""
    from tuban.errors import InputError

    arr, _, _ = scene_arrays(shape=(32, 32))
    assets = {}
    for i, (token, cn) in enumerate(zip(("B02", "B03", "B04", "B08"), ("blue", "green", "red", "nir"), strict=True)):
        write_stack(tmp_path / f"{token}.tif", arr[i : i + 1], descriptions=None)
        assets[token] = {"href": f"./{token}.tif", "eo:bands": [{"name": token, "common_name": cn}],
                         "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]}
    assets["SCL"] = {"href": "./B02.tif", "raster:bands": [{"nodata": 0}]}  # no scale or offset: says nothing
    item = {"type": "Feature", "id": "S2_pb0509", "properties": {"platform": "sentinel-2b"}, "assets": assets}
    p = tmp_path / "item.json"
    p.write_text(json.dumps(item))
    s = open_scene(p)
    assert (s.scale, s.dn_offset) == (1e-4, 1000)
    assert s.roles == ("blue", "green", "red", "nir", "scl")  # the SCL asset: the scene classification
    assert open_scene(p, dn_offset=0).dn_offset == 0  # the caller's word is last
    item["assets"]["B08"]["raster:bands"] = [{"scale": 0.0001, "offset": 0.0}]
    p.write_text(json.dumps(item))
    with pytest.raises(InputError, match="different raster:bands"):
        open_scene(p)


def test_safe_metadata_gives_the_dn_offset(tmp_path) -> None:
    from tuban.errors import InputError
    from tuban.raster.scene import _Files
    from tuban.raster.scene import _safe_dn_offset as offset_of

    def _safe_dn_offset(folder: Path) -> int:
        return offset_of(_Files.folder(folder))

    def mtd(folder, name, body):
        folder.mkdir()
        (folder / name).write_text(f'<?xml version="1.0"?><n1:Level-2A_User_Product xmlns:n1="x">{body}'
                                   "</n1:Level-2A_User_Product>")
        return folder

    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{b}">-1000</BOA_ADD_OFFSET>' for b in range(13))
    l2a = mtd(tmp_path / "S2A_MSIL2A_20230601T030551_N0509_R075_T50SKE_20230601T070000.SAFE", "MTD_MSIL2A.xml",
              f"<General_Info><BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST></General_Info>")
    assert _safe_dn_offset(l2a) == 1000
    old = mtd(tmp_path / "S2A_MSIL1C_20180601T030551_N0206_R075_T50SKE_20180601T070000.SAFE", "MTD_MSIL1C.xml",
              "<General_Info><QUANTIFICATION_VALUE>10000</QUANTIFICATION_VALUE></General_Info>")
    assert _safe_dn_offset(old) == 0  # before 04.00: no offset in the metadata, none in the DN
    named = tmp_path / "S2B_MSIL1C_20240601T030551_N0510_R075_T50SKE_20240601T070000.SAFE"
    named.mkdir()
    assert _safe_dn_offset(named) == 1000  # no MTD file: the baseline in the name
    bad = mtd(tmp_path / "bad.SAFE", "MTD_MSIL1C.xml", '<R><RADIO_ADD_OFFSET band_id="0">-1000</RADIO_ADD_OFFSET>'
              '<RADIO_ADD_OFFSET band_id="1">-900</RADIO_ADD_OFFSET></R>')
    with pytest.raises(InputError, match="not one number of DN"):
        _safe_dn_offset(bad)
    broken = tmp_path / "broken.SAFE"
    broken.mkdir()
    (broken / "MTD_MSIL2A.xml").write_text("<unclosed>")
    with pytest.raises(InputError, match="not readable XML"):
        _safe_dn_offset(broken)


def test_stac_landsat_item(tmp_path) -> None:
    """A Landsat Collection 2 Level-2 item as the USGS and Planetary Computer catalogues write it: STAC common
    names nir08 / swir16 / swir22, a qa_pixel asset, reflectance = DN × 0.0000275 − 0.2; and in STAC 1.1's
    ``bands`` form."""
    arr, _, _ = scene_arrays(shape=(32, 32))
    names = ("blue", "green", "red", "nir08", "swir16", "swir22")
    assets: dict[str, dict] = {}
    for i, cn in enumerate(names):
        write_stack(tmp_path / f"SR_B{i + 2}.TIF", arr[i : i + 1], descriptions=None, scale=2.75e-5, add=-0.2)
        assets[cn] = {"href": f"./SR_B{i + 2}.TIF", "eo:bands": [{"name": f"SR_B{i + 2}", "common_name": cn}],
                      "raster:bands": [{"scale": 2.75e-05, "offset": -0.2, "nodata": 0}]}
    write_stack(tmp_path / "QA_PIXEL.TIF", np.full((1, 32, 32), 21824, np.float32), descriptions=None, scale=1)
    assets["qa_pixel"] = {"href": "./QA_PIXEL.TIF", "raster:bands": [{"nodata": 1}]}
    item = {"type": "Feature", "id": "LC08_L2SP_123032_20230601", "properties": {"platform": "landsat-8"},
            "assets": assets}
    p = tmp_path / "item.json"
    p.write_text(json.dumps(item))
    s = open_scene(p)
    assert s.sensor == "landsat8"
    assert s.roles == ("blue", "green", "red", "nir", "swir1", "swir2", "qa")
    assert Path(s.bands["nir"].path).name == "SR_B5.TIF"
    assert (s.scale, s.dn_offset) == (2.75e-5, 7273)
    grid = analysis_grid(s, s)
    data, valid = read_block(s, ("red", "nir"), grid, Window(0, 0, 32, 32))
    np.testing.assert_allclose(data[:, valid], arr[[2, 3]][:, valid], atol=4e-5)  # reflectance, to a DN
    v11 = {k: {"href": a["href"], "bands": [{"eo:common_name": a["eo:bands"][0]["common_name"],
                                             "raster:scale": 2.75e-05, "raster:offset": -0.2}]}
           for k, a in assets.items() if "eo:bands" in a}
    p.write_text(json.dumps({**item, "properties": {"platform": "LANDSAT_9"}, "assets": v11}))
    s11 = open_scene(p)
    assert (s11.sensor, s11.roles, s11.scale, s11.dn_offset) == ("landsat9", SIX, 2.75e-5, 7273)


def _landsat_folder(folder: Path, level: str, *, sensor: str = "LC08", mtl: str | None = None) -> Path:
    folder.mkdir()
    arr, _, _ = scene_arrays(shape=(16, 16))
    prefix = f"{sensor}_{level}_123032_20230601_20230610_02_T1"
    sr = "SR_" if level.startswith("L2") else ""
    for i, n in enumerate((2, 3, 4, 5, 6, 7)):
        write_stack(folder / f"{prefix}_{sr}B{n}.TIF", arr[i : i + 1], descriptions=None)
    if mtl is not None:
        (folder / f"{prefix}_MTL.{'xml' if mtl.startswith('<') else 'txt'}").write_text(mtl)
    return folder


def _mtl(l1: tuple[float, float] | dict[int, tuple[float, float]], sun: float = 40.0) -> str:
    """An MTL text file (Level-2 layout: both the Level-2 and the Level-1 coefficients)."""
    per = l1 if isinstance(l1, dict) else {n: l1 for n in range(1, 10)}
    lines = ["GROUP = LANDSAT_METADATA_FILE", "  GROUP = IMAGE_ATTRIBUTES", f"    SUN_ELEVATION = {sun}",
             "  END_GROUP = IMAGE_ATTRIBUTES", "  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"]
    lines += [f"    REFLECTANCE_{k}_BAND_{n} = {v}" for n in range(1, 8) for k, v in (("MULT", "2.75E-05"),
                                                                                    ("ADD", "-0.200000"))]
    lines += ["  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", "  GROUP = LEVEL1_RADIOMETRIC_RESCALING"]
    lines += [f"    REFLECTANCE_{k}_BAND_{n} = {v:.4E}" for n, (m, a) in per.items() for k, v in (("MULT", m),
                                                                                                 ("ADD", a))]
    lines += ["  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING", "END_GROUP = LANDSAT_METADATA_FILE", "END"]
    return "\n".join(lines) + "\n"


def test_landsat_folders_get_their_level_s_calibration(tmp_path) -> None:
    """Level-2 surface reflectance: DN × 0.0000275 − 0.2 (the profile's, or the MTL's Level-2 group); Level-1:
    top-of-atmosphere (DN × M + A) ÷ sin(sun elevation) from the MTL, in text or XML form; Level-1 without
    its MTL, or with per-band coefficients (TM/ETM+), stays DN."""
    import math

    from tuban.errors import InputError

    def cal(folder: Path) -> tuple[str, float | None, int]:
        s = open_scene(folder)
        return s.sensor, s.scale, s.dn_offset

    assert cal(_landsat_folder(tmp_path / "l2", "L2SP")) == ("landsat8", 2.75e-5, 7273)
    assert cal(_landsat_folder(tmp_path / "l2mtl", "L2SP", mtl=_mtl((2e-5, -0.1)))) == ("landsat8", 2.75e-5, 7273)
    sensor, scale, dn = cal(_landsat_folder(tmp_path / "l1", "L1TP", sensor="LC09", mtl=_mtl((2e-5, -0.1), 40.0)))
    assert (sensor, dn) == ("landsat9", 5000)
    assert scale == pytest.approx(2e-5 / math.sin(math.radians(40.0)))
    xml = ("<LANDSAT_METADATA_FILE><IMAGE_ATTRIBUTES><SUN_ELEVATION>55.0</SUN_ELEVATION></IMAGE_ATTRIBUTES>"
           "<LEVEL1_RADIOMETRIC_RESCALING>"
           + "".join(f"<REFLECTANCE_MULT_BAND_{n}>2.0000E-05</REFLECTANCE_MULT_BAND_{n}>"
                     f"<REFLECTANCE_ADD_BAND_{n}>-0.100000</REFLECTANCE_ADD_BAND_{n}>" for n in range(1, 10))
           + "</LEVEL1_RADIOMETRIC_RESCALING></LANDSAT_METADATA_FILE>")
    _, scale, dn = cal(_landsat_folder(tmp_path / "l1xml", "L1TP", mtl=xml))
    assert (scale, dn) == (pytest.approx(2e-5 / math.sin(math.radians(55.0))), 5000)
    assert cal(_landsat_folder(tmp_path / "l1bare", "L1TP")) == ("landsat8", None, 0)
    tm = {n: (7.6e-4 + n * 1e-5, -0.002) for n in (1, 2, 3, 4, 5, 7)}
    assert cal(_landsat_folder(tmp_path / "tm", "L1TP", sensor="LT05", mtl=_mtl(tm))) == ("landsat5", None, 0)
    broken = _landsat_folder(tmp_path / "broken", "L1TP", mtl=_mtl((2e-5, -0.1)).replace("= 40.0", "= high"))
    with pytest.raises(InputError, match="not a readable Landsat MTL"):
        open_scene(broken)
    huge = _landsat_folder(tmp_path / "huge", "L2SP", mtl="GROUP = X\n" + " " * (1 << 20))
    with pytest.raises(UnsafeInputError, match="more than a metadata file holds"):
        open_scene(huge)


def test_safe_folder_bands_and_scene_classification(tmp_path) -> None:
    """A Sentinel-2 L2A .SAFE: each band at its finest resolution, the SCL at 20 m (not 60 m) as the QA role,
    the DN offset from the MTD XML; the SCL's classes are read as they are (nearest, no offset)."""
    safe = tmp_path / "S2B_MSIL2A_20240601T030551_N0510_R075_T50SKE_20240601T070000.SAFE"
    img = safe / "GRANULE" / "L2A_T50SKE_A037000_20240601T031000" / "IMG_DATA"
    (safe / "MTD_MSIL2A.xml").parent.mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text('<?xml version="1.0"?><n1:Level-2A_User_Product xmlns:n1="x">'
                                          '<BOA_ADD_OFFSET band_id="1">-1000</BOA_ADD_OFFSET>'
                                          "</n1:Level-2A_User_Product>")

    def jp2(name: str, res: int, value: int, dtype: str = "uint16") -> None:
        n = 60 // res * 4
        write_jp2(img / f"R{res}m" / f"T50SKE_20240601T030551_{name}_{res}m.jp2", np.full((1, n, n), value, dtype),
                  res)

    for res in (10, 20, 60):
        jp2("B02", res, 1500 + res)
    jp2("B11", 20, 3000)
    jp2("SCL", 20, 8, "uint8")
    jp2("SCL", 60, 3, "uint8")
    qi = img.parent / "QI_DATA"
    qi.mkdir()
    (img / "R60m" / "T50SKE_20240601T030551_SCL_60m.jp2").rename(qi / "MSK_CLASSI_B00.jp2")
    s = open_scene(safe)
    assert s.roles == ("blue", "swir1", "scl")  # an L2A's MSK_CLASSI is not read: the SCL flags shadows too
    assert Path(s.bands["blue"].path).name.endswith("_B02_10m.jp2")
    assert Path(s.bands["scl"].path).name.endswith("_SCL_20m.jp2")
    assert s.dn_offset == 1000
    grid = analysis_grid(s, s)
    assert grid.res == (10.0, 10.0)
    scl, _ = read_block(s, ("scl",), grid, Window(0, 0, 24, 24), resampling="nearest", scaled=False)
    assert set(np.unique(scl)) == {8.0}
    blue, _ = read_block(s, ("blue",), grid, Window(0, 0, 24, 24))
    np.testing.assert_allclose(blue, (1510 - 1000) * 1e-4, rtol=1e-6)


def test_an_image_without_georeference_is_refused_with_the_fix(tmp_path) -> None:
    """A PNG pair (DSIFN-style RGB samples): a MissingCRSError naming gdal_translate, not GDAL's warning."""
    import warnings

    from PIL import Image

    from tuban.errors import MissingCRSError

    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # GDAL's NotGeoreferencedWarning would fail here
        s = open_scene(paths[0])
        assert s.roles == ("blue", "green", "red")
        with pytest.raises(MissingCRSError, match="has no CRS") as err:
            analysis_grid(s, open_scene(paths[1]))
    assert "gdal_translate -a_srs" in str(err.value.hint)


def test_sensor_geometry_images_are_refused_with_the_warp_to_run(tmp_path) -> None:
    """A Level-1A scene (RPCs, no geotransform: GF-1/2/6 PMS as delivered) and a GCP-only image: each error
    says what the file has and which gdalwarp puts it on a map grid."""
    import warnings

    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.rpc import RPC

    from tuban.errors import MissingCRSError

    arr = np.full((4, 32, 32), 500, np.uint16)
    rpc = RPC(height_off=100.0, height_scale=500.0, lat_off=34.8, lat_scale=0.05, line_den_coeff=[1.0] + [0.0] * 19,
              line_num_coeff=[0.0, 0.0, -1.0] + [0.0] * 17, line_off=16.0, line_scale=16.0, long_off=113.5,
              long_scale=0.05, samp_den_coeff=[1.0] + [0.0] * 19, samp_num_coeff=[0.0, 1.0] + [0.0] * 18,
              samp_off=16.0, samp_scale=16.0)
    l1a = tmp_path / "GF2_PMS1_E113.5_N34.8_20240601_L1A0001-MSS1.tiff"
    gcp = tmp_path / "gcp.tif"
    points = [GroundControlPoint(row=r, col=c, x=113.5 + c * 1e-4, y=34.8 - r * 1e-4) for r in (0, 31) for c in (0, 31)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # written without a geotransform, on purpose
        with rasterio.open(l1a, "w", driver="GTiff", width=32, height=32, count=4, dtype="uint16", rpcs=rpc) as dst:
            dst.write(arr)
        with rasterio.open(gcp, "w", driver="GTiff", width=32, height=32, count=4, dtype="uint16") as dst:
            dst.write(arr)
            dst.gcps = (points, CRS.from_epsg(4326))
    s = open_scene(l1a, sensor="gf")
    with pytest.raises(MissingCRSError, match="not orthorectified") as err:
        analysis_grid(s, s)
    assert "gdalwarp -rpc" in str(err.value.hint)
    s = open_scene(gcp, sensor="gf")
    with pytest.raises(MissingCRSError, match="ground control points") as err:
        analysis_grid(s, s)
    assert "gdalwarp -t_srs" in str(err.value.hint)


def test_a_cropped_grid_reads_the_same_pixels(tmp_path) -> None:
    """A grid that is a window of the files' own (the before-date's grid cropped to the after-date's footprint)
    is read straight from the files at its offset: the same values and validity as the full grid's window, on
    every path."""
    from tuban.raster.grid import Grid

    arr, _, _ = scene_arrays(shape=(96, 128))
    s = open_scene(write_stack(tmp_path / "s.tif", arr, block=32), sensor="sentinel2")
    full = analysis_grid(s, s)
    a, b, c, d, e, f = full.transform
    part = Grid(full.crs, (a, b, c + 37 * a, d, e, f + 21 * e), 53, 59)
    for keep in (True, False):
        got, ok = read_block(s, SIX[:4], part, Window(5, 7, 40, 30), keep_u16=keep)
        want, ok_full = read_block(s, SIX[:4], full, Window(21 + 5, 37 + 7, 40, 30), keep_u16=keep)
        np.testing.assert_array_equal(ok, ok_full)
        np.testing.assert_array_equal(got, want)


def test_damaged_and_crafted_files_get_tubans_errors(tmp_path) -> None:
    """A file GDAL cannot open, a damaged GeoTIFF (opens, fails while decoding) and a 182 kB GeoTIFF claiming
    10⁶ × 10⁶ pixels (reliability #18): each raises tuban's error naming the file, nothing GDAL's."""
    import rasterio
    from affine import Affine

    from tuban.detect.engine import detect
    from tuban.errors import InputError

    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00 not a tiff at all")
    with pytest.raises(InputError, match=r"junk\.tif: not an image GDAL can read"):
        open_scene(junk)
    whole, damaged = write_damaged_pair(tmp_path)
    with pytest.raises(InputError, match=r"reading rows .* failed") as err:
        detect(whole, damaged)
    assert "damaged.tif" in str(err.value)
    assert "download it again" in str(err.value.hint)
    big = tmp_path / "big.tif"
    with rasterio.open(big, "w", driver="GTiff", width=10**6, height=10**6, count=1, dtype="uint16", tiled=True,
                       blockxsize=8192, blockysize=8192, sparse_ok=True, crs="EPSG:32650",
                       transform=Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4000000.0)):
        pass
    with pytest.raises(UnsafeInputError, match="claims 1000000 × 1000000 × 1 pixels"):
        open_scene(big, bands=("red",))


def _zip(folder: Path, out: Path, *, under: str = "") -> Path:
    """``folder``'s files zipped (as a product is downloaded: under its own name when ``under``)."""
    import zipfile

    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{under}{p.relative_to(folder).as_posix()}")
    return out


def test_products_are_read_inside_their_archives(tmp_path) -> None:
    """A Sentinel-2 .SAFE.zip, a Landsat .tar with its MTL and a zip of band files give the scenes their
    folders give, read in place through GDAL (nothing extracted), with the same pixels."""
    import tarfile

    arr, _, _ = scene_arrays(shape=(48, 48))
    folder = write_band_folder(tmp_path / "bands", arr)
    zipped = open_scene(_zip(folder, tmp_path / "bands.zip"))
    plain = open_scene(folder)
    assert (zipped.roles, zipped.scale, zipped.sensor) == (plain.roles, plain.scale, plain.sensor)
    assert zipped.bands["blue"].path.startswith(f"/vsizip/{tmp_path.resolve()}/bands.zip/")
    grid = analysis_grid(plain, plain)
    assert analysis_grid(zipped, zipped) == grid
    for keep in (True, False):
        np.testing.assert_array_equal(read_block(zipped, SIX, grid, Window(3, 5, 30, 40), keep_u16=keep)[0],
                                      read_block(plain, SIX, grid, Window(3, 5, 30, 40), keep_u16=keep)[0])
    landsat = _landsat_folder(tmp_path / "LC09_L1TP_123032_20230601_20230610_02_T1", "L1TP", sensor="LC09",
                              mtl=_mtl((2e-5, -0.1), 40.0))
    tar = tmp_path / "LC09_L1TP_123032_20230601_20230610_02_T1.tar"
    with tarfile.open(tar, "w") as tf:  # USGS delivers Landsat as an uncompressed tar of the files
        for p in sorted(landsat.iterdir()):
            tf.add(p, p.name)
    a, b = open_scene(tar), open_scene(landsat)
    assert (a.sensor, a.scale, a.dn_offset, a.roles) == (b.sensor, b.scale, b.dn_offset, b.roles)
    assert a.name == "LC09_L1TP_123032_20230601_20230610_02_T1"


def test_a_safe_zip_as_downloaded(tmp_path) -> None:
    """The .SAFE folder of the scene-classification test, zipped under its own name as the Copernicus data
    space delivers it: the same bands, SCL and DN offset."""
    test_safe_folder_bands_and_scene_classification(tmp_path)
    safe = next(tmp_path.glob("*.SAFE"))
    z = open_scene(_zip(safe, tmp_path / f"{safe.name}.zip", under=f"{safe.name}/"))
    s = open_scene(safe)
    assert (z.roles, z.dn_offset, z.name) == (s.roles, s.dn_offset, s.name)
    grid = analysis_grid(s, s)
    np.testing.assert_array_equal(read_block(z, ("scl",), grid, Window(0, 0, 24, 24), resampling="nearest",
                                             scaled=False)[0],
                                  read_block(s, ("scl",), grid, Window(0, 0, 24, 24), resampling="nearest",
                                             scaled=False)[0])


def test_bad_archives_are_refused(tmp_path) -> None:
    """Not an archive, a zip bomb member, members outside the archive's tree, an archive of unnamed images."""
    import zipfile

    from tuban.errors import InputError

    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK not really")
    with pytest.raises(InputError, match="not a readable archive"):
        open_scene(fake)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("T50QKK_B02.tif", b"\0" * (64 << 20))
    with pytest.raises(UnsafeInputError, match="expands"):
        open_scene(bomb)
    arr, _, _ = scene_arrays(shape=(16, 16))
    one = write_stack(tmp_path / "one.tif", arr[:4], descriptions=None)
    sneaky = tmp_path / "sneaky.zip"
    with zipfile.ZipFile(sneaky, "w") as zf:
        zf.write(one, "../../T50QKK_B02.tif")
        zf.write(one, "a.tif")
        zf.write(one, "b.tif")
    with pytest.raises(InputError, match="2 raster files, none named by band"):
        open_scene(sneaky)
    single = tmp_path / "single.zip"
    with zipfile.ZipFile(single, "w") as zf:
        zf.write(one, "scene.tif")
    assert open_scene(single, sensor="gf").roles == ("blue", "green", "red", "nir")


def _mosaic_vrt(path: Path, parts: list[tuple[Path, int]], width: int, height: int, crs_wkt: str,
                transform: tuple[float, ...], roles: tuple[str, ...], *, extra: str = "") -> Path:
    """A gdalbuildvrt-like mosaic: ``parts`` (file, its first column in the mosaic), side by side."""
    import rasterio

    bands = []
    for b, role in enumerate(roles, 1):
        sources = []
        for part, col in parts:
            with rasterio.open(part) as src:
                w = src.width
            sources.append(f'<SimpleSource><SourceFilename relativeToVRT="1">{part.name}</SourceFilename>'
                           f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{height}"/>'
                           f'<DstRect xOff="{col}" yOff="0" xSize="{w}" ySize="{height}"/></SimpleSource>')
        bands.append(f'<VRTRasterBand dataType="UInt16" band="{b}"><Description>{role}</Description>'
                     f'{"".join(sources)}{extra if b == 1 else ""}</VRTRasterBand>')
    a, _, c, _, e, f = transform
    path.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{crs_wkt}</SRS>'
                    f"<GeoTransform>{c}, {a}, 0, {f}, 0, {e}</GeoTransform>{''.join(bands)}</VRTDataset>")
    return path


def test_a_mosaic_vrt_of_local_tiles_is_one_scene(tmp_path) -> None:
    """One date as two GeoTIFF tiles and a VRT mosaic of them (gdalbuildvrt): the same patches as the whole
    image; VRTs that read anything else are refused (reliability.md #19)."""
    import rasterio
    import shapely

    from tuban.detect.engine import detect

    before, after, _ = scene_arrays(shape=(256, 256), seed=6)
    out = {}
    for name, arr in (("b", before), ("a", after)):
        whole = write_stack(tmp_path / f"{name}_whole.tif", arr, block=128)
        left = write_stack(tmp_path / f"{name}_left.tif", arr[:, :, :128], block=128)
        right = write_stack(tmp_path / f"{name}_right.tif", arr[:, :, 128:], block=128, origin=(501280.0, 3800000.0))
        with rasterio.open(whole) as src:
            wkt, transform = src.crs.to_wkt(), tuple(src.transform)[:6]
        out[name] = (whole, _mosaic_vrt(tmp_path / f"{name}.vrt", [(left, 0), (right, 128)], 256, 256, wkt,
                                        transform, SIX))
    plain = detect(out["b"][0], out["a"][0])
    mosaic = detect(out["b"][1], out["a"][1])
    assert len(plain.patches) > 0
    assert mosaic.threshold == plain.threshold
    assert shapely.equals(shapely.union_all(plain.patches.geometry.values),
                          shapely.union_all(mosaic.patches.geometry.values))
    left = tmp_path / "b_left.tif"
    hostile = {
        "a URL": "/vsicurl/http://169.254.169.254/latest/meta-data",
        "another VRT": str(tmp_path / "a.vrt"),
        "a missing file": str(tmp_path / "gone.tif"),
    }
    for why, source in hostile.items():
        bad = (tmp_path / f"{why}.vrt")
        bad.write_text(out["b"][1].read_text().replace(f'<SourceFilename relativeToVRT="1">{left.name}',
                                                         f'<SourceFilename relativeToVRT="0">{source}'))
        with pytest.raises(UnsafeInputError, match="VRT that reads"):
            open_scene(bad)
    code = tmp_path / "code.vrt"
    code.write_text(out["b"][1].read_text().replace('band="1">', 'band="1" subClass="VRTDerivedRasterBand">'
                                                    '<PixelFunctionType>sum</PixelFunctionType>', 1))
    with pytest.raises(UnsafeInputError, match="VRTDerivedRasterBand"):
        open_scene(code)
    disguised = tmp_path / "folder"
    disguised.mkdir()
    (disguised / "T50QKK_20180323_B02.tif").write_text(code.read_text())  # a VRT named like a band file
    with pytest.raises(UnsafeInputError, match="VRTDerivedRasterBand"):
        open_scene(disguised)
