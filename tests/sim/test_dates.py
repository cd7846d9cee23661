"""The baseline date, the atmosphere (clouds and shadows the masks can catch) and parallel rendering."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio import features

from tuban.sim import make_scene
from tuban.sim.layout import build_layout
from tuban.sim.render import DateRenderer, _axes
from tuban.sim.spectra import SENSORS, Surface

CROPS = [int(s) for s in (Surface.CROP_GREEN, Surface.CROP_YOUNG, Surface.CROP_STUBBLE, Surface.CROP_PLOUGHED)]


def _lc(scene, date):
    with rasterio.open(scene.root / f"landcover_{date}.tif") as ds:
        return ds.read(1)


def test_dates_are_one_season_of_three_years(tiny_scene):
    """Yearly rounds compare the same season: the three dates fall within three weeks of the year, in
    three different years; fields then differ between years only by how far the wheat harvest had got."""
    import datetime as dt

    s = tiny_scene
    assert s.baseline is not None
    assert s.band_path("baseline", "B04").is_file()
    dates = {k: dt.date.fromisoformat(v) for k, v in s.metadata["dates"].items()}
    assert dates["baseline"].year < dates["before"].year < dates["after"].year
    days = [d.timetuple().tm_yday for d in dates.values()]
    assert max(days) - min(days) <= 21
    before, after, base = _lc(s, "before"), _lc(s, "after"), _lc(s, "baseline")
    crop = np.isin(after, CROPS) & np.isin(base, CROPS) & np.isin(before, CROPS)
    # real but moderate year-to-year differences of crop stage
    same_before = np.mean(before[crop] == after[crop])
    same_base = np.mean(base[crop] == after[crop])
    assert 0.5 < same_before < 0.95
    assert 0.5 < same_base < 0.95
    # a second earlier year helps a little: fewer fields differ from both years than from the previous one
    # (not many fewer: a field's harvest day is mostly its farmer's habit, the same every year)
    differs_both = np.mean((before[crop] != after[crop]) & (base[crop] != after[crop]))
    assert differs_both < 0.95 * (1 - same_before)
    # the harvest trap is there: fields cut this year that stood green in both earlier years
    green, stubble = int(Surface.CROP_GREEN), int(Surface.CROP_STUBBLE)
    assert np.mean((after[crop] == stubble) & (before[crop] == green) & (base[crop] == green)) > 0.01


def test_baseline_shows_previous_sites_not_new_ones(tiny_scene):
    s = tiny_scene
    base = _lc(s, "baseline")
    bare = [int(v) for v in (Surface.SITE_SOIL, Surface.SITE_BUILDING, Surface.SITE_BLUE_ROOF, Surface.SITE_NET,
                             Surface.SPOIL, Surface.PIT, Surface.MUD)]
    t = s.truth
    new = t[t["sim_change"] == "new"].geometry
    old = s.previous.geometry
    m_new = features.rasterize(((g, 1) for g in new), out_shape=base.shape, transform=s.transform) == 1
    m_old = features.rasterize(((g, 1) for g in old), out_shape=base.shape, transform=s.transform) == 1
    assert m_new.any()
    assert m_old.any()
    assert np.isin(base[m_old], bare).mean() > 0.8
    assert np.isin(base[m_new & ~m_old], bare).mean() < 0.2


def _cloudy_window(seed: int = 1):
    lay = build_layout(seed, (0.0, 0.0, 12000.0, 12000.0), resolution=10.0)
    assert lay.clouds
    x, y, r = lay.clouds[0]
    half = 1.8 * r + 600
    n = int(2 * half / 10)
    t = Affine(10, 0, x - half, 0, -10, y + half)
    return lay, t, (n, n)


def test_clouds_and_shadows_are_caught_by_the_masks():
    """L1C-like reflectance: bright white clouds, shadows keeping only diffuse light (dark NIR/SWIR)."""
    from tuban.raster import masks

    lay, t, shape = _cloudy_window()
    s2 = SENSORS["s2"]
    idx = {b.name: i for i, b in enumerate(s2.bands)}
    after = DateRenderer(lay, s2, date="after", date_index=1)
    before = DateRenderer(lay, s2, date="before", date_index=0)
    ra, _ = after.render(t, shape, (0, 0))
    rb, _ = before.render(t, shape, (0, 0))
    xs, ys = _axes(Affine.translation(*lay.misregistration) @ t, shape)
    alpha, shadow = after._clouds(xs, ys, lay.clouds)
    cm = masks.cloud_mask(ra[idx["B02"]], ra[idx["B03"]], ra[idx["B04"]])
    sm = masks.shadow_mask(rb[idx["B08"]], ra[idx["B08"]], rb[idx["B11"]], ra[idx["B11"]])
    opaque = alpha > 0.3
    visible_shadow = (shadow > 0.5) & (alpha < 0.05)
    assert opaque.sum() > 1000
    assert visible_shadow.sum() > 500
    assert cm[opaque].mean() > 0.9
    assert sm[visible_shadow].mean() > 0.8
    clear = (alpha == 0) & (shadow == 0)
    assert (cm | sm)[clear].mean() < 0.05


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_workers_give_identical_bytes(tmp_path):
    kw = {"seed": 2, "size": 1700, "sensor": "gf2", "resolution": 4.0, "landcover": False, "baseline": False}
    a = make_scene(tmp_path / "a", workers=1, **kw)
    b = make_scene(tmp_path / "b", workers=2, **kw)
    assert _digests(a.root) == _digests(b.root)


def test_false_alarm_sources(tiny_scene):
    import geopandas as gpd
    import shapely

    from tuban.testing import false_alarm_sources

    s = tiny_scene
    after = _lc(s, "after")
    before = _lc(s, "before")
    farm = np.isin(after, CROPS) & np.isin(before, CROPS)
    r, c = np.argwhere(farm[20:-20, 20:-20])[0] + 20
    x, y = s.transform @ (c + 0.5, r + 0.5)
    fake = shapely.box(x - 15, y - 15, x + 15, y + 15)
    pred = gpd.GeoDataFrame(geometry=[*s.active_truth().geometry, fake], crs=s.crs)
    out = false_alarm_sources(pred, s).set_index("source")
    assert "farming" in out.index
    assert out.loc["farming", "patches"] == 1
    assert out["pixels"].sum() >= out.loc["farming", "pixels"] > 0
