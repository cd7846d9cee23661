from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tuban.errors import UsageError
from tuban.sim import load_scene, make_scene
from tuban.testing import assert_scene_consistent


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("sensor", ["s2", "gf2"])
def test_same_seed_gives_identical_bytes(tmp_path, sensor):
    kw = {"seed": 3, "size": 128, "sensor": sensor}
    if sensor == "gf2":
        kw["resolution"] = 4.0
    a = make_scene(tmp_path / "a", **kw)
    b = make_scene(tmp_path / "b", **kw)
    da, db = _digests(a.root), _digests(b.root)
    assert len(da) >= 9
    assert da == db
    c = make_scene(tmp_path / "c", **{**kw, "seed": 4})
    assert _digests(c.root) != da


def test_s2_bands_resolutions_and_cog(tiny_scene):
    s = tiny_scene
    sizes = {}
    for band in ("B01", "B02", "B08", "B11", "B12", "B8A"):
        with rasterio.open(s.band_path("before", band)) as ds:
            sizes[band] = (ds.width, ds.res[0])
            assert ds.dtypes[0] == "uint16"
            assert ds.crs.to_epsg() == 4547
            assert ds.compression.name.lower() == "deflate"
            assert ds.profile["tiled"]
            assert ds.descriptions[0] == band
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert sizes["B02"] == (256, 10.0)
    assert sizes["B11"] == (128, 20.0)
    assert sizes["B01"] == (43, 60.0)


def test_cog_has_overviews(tmp_path):
    s = make_scene(tmp_path / "s", seed=0, size=1100, sensor="s2", landcover=False)
    with rasterio.open(s.band_path("after", "B04")) as ds:
        assert ds.overviews(1)[:1] == [2]


def test_gf2_stack(tmp_path):
    s = make_scene(tmp_path / "g", seed=0, size=200, sensor="gf2", resolution=4.0)
    with rasterio.open(s.after) as ds:
        assert ds.count == 4
        assert ds.descriptions == ("blue", "green", "red", "nir")
        assert ds.res == (4.0, 4.0)
        data = ds.read()
    assert data.min() >= 1
    # vegetation is brighter in NIR than red over most of the scene
    assert np.mean(data[3] > data[2]) > 0.4


def test_truth_consistent_with_registry(tiny_scene):
    s = tiny_scene
    assert_scene_consistent(s)
    assert set(s.truth["sim_scenario"]) >= {"inside", "exceeds", "moved", "none", "tiny", "unapproved"}
    exp = s.truth.set_index("sim_scenario")
    assert set(exp.loc[["inside"], "BYD"].dropna()) == {"合规"}
    assert set(exp.loc[["exceeds"], "BYD"]) == {"疑似超出防治责任范围"}
    assert (exp.loc[["exceeds"], "EAREA"] > 0.05).all()
    assert set(exp.loc[["moved"], "BYD"]) == {"疑似建设地点变更"}
    assert set(exp.loc[["tiny"], "rule"]) == {"R5"}
    assert (exp.loc[["tiny"], "QAREA"] < 0.5).all()
    # an unapproved project never explains its site; a nearby approved idle scope may suggest R3
    un = exp.loc[["unapproved"]]
    assert set(un["BYD"]) <= {"疑似未批先建", "疑似建设地点变更"}
    assert (un["PRID"].fillna("") != un["project_id"]).all()


def test_scopes_fields_and_approvals(tiny_scene):
    sc = tiny_scene.scopes
    for col in ("SWC_P_ID", "PRO_NAME", "CS_UNIT", "RP_NUM", "RP_TIME", "VEC_TYPE"):
        assert col in sc
    unapproved = tiny_scene.truth.loc[tiny_scene.truth["sim_scenario"] == "unapproved", "project_id"]
    assert sc.set_index("SWC_P_ID").loc[list(unapproved), "RP_NUM"].isna().all()
    assert set(sc["VEC_TYPE"]) <= {"防治责任范围", "示意性范围"}
    assert sc["CS_UNIT"].str.contains("某某").all()
    assert sc["CS_UNIT"].str.contains("模拟").all()


def test_change_types_against_previous(tiny_scene):
    t = tiny_scene.truth
    assert "完工" in set(t["QDTYPE"])
    assert not t.loc[t["QDTYPE"] == "完工", "active"].any()
    assert "新增" in set(t["QDTYPE"])
    prev_ids = set(tiny_scene.previous["QDNM"])
    assert prev_ids
    assert not prev_ids & set(t["QDNM"])


def test_disturbed_pixels_are_bare_after(tiny_scene):
    """The truth polygons sit on bare soil / buildings in the after land cover."""
    from rasterio import features

    from tuban.sim.spectra import Surface

    s = tiny_scene
    with rasterio.open(s.root / "landcover_after.tif") as ds:
        lc = ds.read(1)
    act = s.active_truth()
    mask = features.rasterize(((g, 1) for g in act.geometry), out_shape=lc.shape, transform=s.transform) == 1
    site_classes = [int(v) for v in (Surface.SITE_SOIL, Surface.SITE_BUILDING, Surface.SITE_BLUE_ROOF,
                                     Surface.SITE_NET, Surface.SPOIL, Surface.PIT, Surface.MUD)]
    assert np.isin(lc[mask], site_classes).mean() > 0.9


def test_load_scene_round_trip(tiny_scene):
    s = load_scene(tiny_scene.root)
    assert s.truth["QDNM"].tolist() == tiny_scene.truth["QDNM"].tolist()
    assert s.metadata["misregistration_m"] == tiny_scene.metadata["misregistration_m"]
    assert s.bounds[2] - s.bounds[0] == 2560


def test_bad_options_name_the_fix(tmp_path):
    with pytest.raises(UsageError, match="unknown size"):
        make_scene(tmp_path, size="enormous")
    with pytest.raises(UsageError, match="sensor"):
        make_scene(tmp_path, sensor="landsat")
    with pytest.raises(UsageError, match=r"0\.5"):
        make_scene(tmp_path, sensor="gf2", resolution=10)


def test_tiles_independent_of_order():
    """A tile rendered alone equals the same window cut from a larger render."""
    from affine import Affine

    from tuban.sim.layout import build_layout
    from tuban.sim.render import render_surface

    lay = build_layout(5, (0.0, 0.0, 2560.0, 2560.0), resolution=10.0)
    t = Affine(10, 0, 0, 0, -10, 2560)
    whole, *_ = render_surface(lay, t, (256, 256), date="after")
    part, *_ = render_surface(lay, t @ Affine.translation(100, 60), (80, 90), date="after")
    assert np.array_equal(whole[60:140, 100:190], part)


def test_simulated_band_roles_speak_the_detector_s_vocabulary() -> None:
    """The S2-like bands carry the same role names as tuban.raster's Sentinel-2 profile."""
    from tuban.raster.profiles import get_profile
    from tuban.sim.spectra import S2_BANDS

    profile = get_profile("sentinel2")
    for name, _nm, _res, role in S2_BANDS:
        if name in profile.tokens:
            assert profile.tokens[name] == role, name


def test_tile_pixels_do_not_depend_on_what_was_rendered_before():
    """Reflectance of a tile (sensor noise included) is the same from a fresh renderer and from one that
    rendered other windows of other sizes first (workers meet tiles in any order)."""
    from affine import Affine

    from tuban.sim.layout import build_layout
    from tuban.sim.render import DateRenderer
    from tuban.sim.spectra import SENSORS

    lay = build_layout(5, (0.0, 0.0, 2560.0, 2560.0), resolution=10.0)
    t = Affine(10, 0, 0, 0, -10, 2560)
    fresh = DateRenderer(lay, SENSORS["s2"], date="after", date_index=1)
    used = DateRenderer(lay, SENSORS["s2"], date="after", date_index=1)
    used.render(t @ Affine.translation(200, 0), (56, 40), (0, 1))
    a, _ = fresh.render(t, (128, 200), (0, 0))
    b, _ = used.render(t, (128, 200), (0, 0))
    assert np.array_equal(a, b)
    c, _ = fresh.render(t, (128, 200), (1, 0))  # another tile key: other noise
    assert not np.array_equal(a, c)
