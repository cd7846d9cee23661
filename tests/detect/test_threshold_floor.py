"""The automatic threshold never splits the no-change mode (a change-free pair gives almost nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from tuban.detect.engine import detect
from tuban.raster.change import NULL_FLOOR_Z, auto_threshold, null_stats, otsu_threshold

COVERS = np.array([[400, 700, 400, 3500], [600, 900, 800, 2800], [900, 1100, 1200, 2500],
                   [1300, 1600, 1900, 2600], [500, 800, 600, 3000]], np.float32)


def write_pair(folder: Path, size: int, *, site: bool, seed: int = 0) -> tuple[Path, Path]:
    """Fields of five covers, the same on both dates, with independent 4 % sensor noise per date;
    with *site*, a 40×40 px field turned to bare soil on the second date."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cover = ((yy // 64) * 7 + (xx // 128) * 3) % 5
    paths = []
    for name in ("before", "after"):
        arr = COVERS[cover].transpose(2, 0, 1) * (1 + 0.04 * rng.standard_normal((4, size, size)))
        if site and name == "after":
            arr[:, 200:240, 300:340] = COVERS[3][:, None, None] * 1.3
        prof = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16",
                "crs": "EPSG:32650", "transform": Affine(10, 0, 500000, 0, -10, 4000000)}
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", **prof) as dst:
            for i, role in enumerate(("blue", "green", "red", "nir")):
                dst.set_band_description(i + 1, role)
            dst.write(np.clip(arr, 1, 65000).astype("uint16"))
        paths.append(path)
    return paths[0], paths[1]


def test_auto_threshold_separates_a_distinct_change_population() -> None:
    rng = np.random.default_rng(1)
    sample = np.concatenate([rng.normal(0, 1, 50_000), rng.normal(30, 3, 2_000)]).astype(np.float32)
    value, _rule = auto_threshold(sample)
    assert abs(float(np.mean(sample > value)) - 2_000 / 52_000) < 1e-3


def test_auto_threshold_keeps_otsu_above_the_floor_and_much_change_does_not_raise_the_floor() -> None:
    rng = np.random.default_rng(1)
    broad = np.concatenate([rng.normal(0, 1, 50_000), rng.normal(20, 6, 5_000)]).astype(np.float32)
    assert auto_threshold(broad) == (otsu_threshold(broad), "otsu")
    # a quarter of the sample changed: the no-change mode is still N(0, 1), the floor stays near 6
    much = np.concatenate([rng.normal(0, 1, 50_000), rng.normal(10, 4, 25_000)]).astype(np.float32)
    med, sigma = null_stats(much)
    assert abs(med) < 0.1
    assert 0.9 < sigma < 1.1
    value, _rule = auto_threshold(much)
    assert value < 6.5


def test_auto_threshold_floors_a_unimodal_sample() -> None:
    sample = np.random.default_rng(2).normal(0, 1, 100_000).astype(np.float32)
    value, rule = auto_threshold(sample)
    med, sigma = null_stats(sample)
    assert otsu_threshold(sample) < med + 2 * sigma  # Otsu alone cuts the mode
    assert rule == "no-change floor"
    assert value == med + NULL_FLOOR_Z * sigma


def test_change_free_pair_gives_almost_no_patches(tmp_path: Path) -> None:
    before, after = write_pair(tmp_path, 768, site=False)
    res = detect(str(before), str(after), tile_size=512)
    assert res.stats.threshold_rule == "no-change floor"
    scene_ha = 768 * 768 * 100 / 1e4
    assert float(res.patches["QAREA"].sum()) < 0.001 * scene_ha


def test_a_real_site_in_an_otherwise_unchanged_pair_is_found(tmp_path: Path) -> None:
    before, after = write_pair(tmp_path, 768, site=True)
    res = detect(str(before), str(after), tile_size=512)
    site = res.patches[res.patches["QAREA"] > 10]
    assert len(site) == 1
    assert 14 < float(site["QAREA"].iloc[0]) < 18  # 40×40 px of 100 m² = 16 ha
