"""The automatic threshold never splits the no-change mode (a change-free pair gives almost nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuban.detect.engine import detect
from tuban.raster.change import NULL_FLOOR_Z, auto_threshold, null_stats, otsu_threshold
from tuban.sim.fields import field_pair


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
    before, after = field_pair(tmp_path, 768, site=False)
    res = detect(str(before), str(after), tile_size=512)
    assert res.stats.threshold_rule == "no-change floor"
    scene_ha = 768 * 768 * 100 / 1e4
    assert float(res.patches["QAREA"].sum()) < 0.001 * scene_ha


def test_a_real_site_in_an_otherwise_unchanged_pair_is_found(tmp_path: Path) -> None:
    before, after = field_pair(tmp_path, 768, site=True)
    res = detect(str(before), str(after), tile_size=512)
    site = res.patches[res.patches["QAREA"] > 10]
    assert len(site) == 1
    assert 14 < float(site["QAREA"].iloc[0]) < 18  # 40×40 px of 100 m² = 16 ha
