"""The numpy pair kernel, the star validity test and the column text against GEOS and the references."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from tuban.analysis.divisions import points_in_polygons, subdivide
from tuban.analysis.pairwise import edge_set, pair_overlaps


def _stars(rng: np.random.Generator, n: int, r: float, k: int, side: float) -> np.ndarray:
    cx, cy = rng.uniform(0, side, n) + 450_000.0, rng.uniform(0, side, n) + 3_850_000.0
    ang = (np.arange(k) + rng.uniform(-0.4, 0.4, (n, k))) * (2 * np.pi / k)
    rad = r * rng.uniform(0.5, 1.5, (n, k))
    xy = np.stack([cx[:, None] + rad * np.cos(ang), cy[:, None] + rad * np.sin(ang)], axis=-1)
    return shapely.polygons(np.concatenate([xy, xy[:, :1]], axis=1))


def _mixed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Stars (some clockwise), stars with a hole, multipolygons and grid-aligned boxes."""
    base = _stars(rng, n, 40.0, 9, 600.0)
    out = base.copy()
    kind = rng.integers(0, 5, n)
    for i in np.flatnonzero(kind == 1):  # clockwise shell
        out[i] = shapely.Polygon(shapely.get_coordinates(base[i])[::-1])
    for i in np.flatnonzero(kind == 2):  # a hole around the centre
        c = shapely.centroid(base[i])
        out[i] = shapely.difference(base[i], shapely.buffer(c, 8.0, quad_segs=2))
    for i in np.flatnonzero(kind == 3):  # two parts
        far = shapely.affinity.translate(base[i], 150.0, 20.0)
        out[i] = shapely.MultiPolygon([base[i], far]) if not base[i].intersects(far) else base[i]
    for i in np.flatnonzero(kind == 4):  # integer boxes: shared edges and touching corners
        x, y = np.round(shapely.get_coordinates(shapely.centroid(base[i]))[0] / 20) * 20
        out[i] = shapely.box(x, y, x + 40, y + 40)
    assert shapely.is_valid(out).all()
    return out


def test_kernel_matches_geos_on_mixed_pairs() -> None:
    rng = np.random.default_rng(3)
    a, b = _mixed(rng, 300), _mixed(rng, 300)
    ib, ia = shapely.STRtree(a).query(b)
    res = pair_overlaps(edge_set(a), edge_set(b), ia, ib)
    sure = ~res.fallback
    assert sure.sum() > 0.8 * len(ia)  # the boxes on a grid touch: those go to GEOS
    area = shapely.area(shapely.intersection(a[ia], b[ib]))
    np.testing.assert_allclose(res.area[sure], area[sure], atol=1e-6)
    interiors = shapely.intersects(a[ia], b[ib]) & ~shapely.touches(a[ia], b[ib])
    assert (res.interiors[sure] == interiors[sure]).all()
    within = shapely.contains_properly(b[ib], a[ia])
    assert (res.a_within[sure] == within[sure]).all()
    # every degenerate contact (a shared edge, a touching corner) is handed over, never guessed
    touch = shapely.touches(a[ia], b[ib])
    assert res.fallback[touch].all()
    # interiors only (the change type): the same answers, the vertex probe settles most pairs
    quick = pair_overlaps(edge_set(a), edge_set(b), ia, ib, areas=False)
    sure = ~quick.fallback
    assert (quick.interiors[sure] == interiors[sure]).all()
    assert quick.fallback[touch].all()


@pytest.mark.parametrize("areas", [True, False])
def test_numba_kernel_gives_the_numpy_answers_bit_for_bit(monkeypatch, areas: bool) -> None:
    """Mixed pairs (holes, multipolygons, clockwise shells, shared edges) and bigger stars: the compiled
    kernel and the numpy reference agree exactly: same fallback pairs, same floats elsewhere."""
    from tuban import jit

    if not jit.available():
        pytest.fail("numba is part of the test environment (the detect extra)")
    rng = np.random.default_rng(11)
    a = np.r_[_mixed(rng, 300), _stars(rng, 200, 60.0, 40, 600.0)]
    b = np.r_[_mixed(rng, 300), _stars(rng, 200, 90.0, 25, 600.0)]
    ib, ia = shapely.STRtree(a).query(b)
    ea, eb = edge_set(a), edge_set(b)
    monkeypatch.setenv("TUBAN_FUSED", "0")
    ref = pair_overlaps(ea, eb, ia, ib, areas=areas)
    monkeypatch.setenv("TUBAN_FUSED", "1")
    got = pair_overlaps(ea, eb, ia, ib, areas=areas, workers=2)
    assert ref.fallback.sum() > 0
    assert (~ref.fallback).sum() > 0.8 * len(ia)
    np.testing.assert_array_equal(got.fallback, ref.fallback)
    sure = ~ref.fallback
    np.testing.assert_array_equal(got.interiors[sure], ref.interiors[sure])
    np.testing.assert_array_equal(got.a_within[sure], ref.a_within[sure])
    np.testing.assert_array_equal(got.area[sure], ref.area[sure])  # NaN where areas=False, on both


def test_numba_edge_sets_and_discs_equal_the_numpy_ones(monkeypatch) -> None:
    from tuban import jit

    if not jit.available():
        pytest.fail("numba is part of the test environment (the detect extra)")
    rng = np.random.default_rng(5)
    geoms = np.r_[_mixed(rng, 300), _stars(rng, 100, 60.0, 200, 600.0)]  # rings of 200 edges: pairwise sums
    monkeypatch.setenv("TUBAN_FUSED", "0")
    ref = edge_set(geoms)
    monkeypatch.setenv("TUBAN_FUSED", "1")
    got = edge_set(geoms)
    np.testing.assert_array_equal(got.rec, ref.rec)
    np.testing.assert_array_equal(got.area, ref.area)
    np.testing.assert_array_equal(got.count, ref.count)
    d_got = got.discs()
    monkeypatch.setenv("TUBAN_FUSED", "0")
    d_ref = ref.discs()
    for f in ("x", "y", "inner", "outer"):
        np.testing.assert_array_equal(getattr(d_got, f), getattr(d_ref, f))


def test_discs_lie_inside_and_around_their_geometry() -> None:
    """The inner disc lies in the interior (centre inside, boundary at least that far), the
    outer disc holds every vertex; pairs the discs settle agree with GEOS."""
    rng = np.random.default_rng(11)
    g = _mixed(rng, 400)
    d = edge_set(g).discs()
    centre = shapely.points(d.x, d.y)
    has = d.inner > 0
    assert has.mean() > 0.5
    assert shapely.contains_properly(g[has], centre[has]).all()
    assert (shapely.distance(centre[has], shapely.boundary(g[has])) >= d.inner[has]).all()
    assert (shapely.hausdorff_distance(centre, shapely.boundary(g)) <= d.outer).all()
    # a patch deep inside a big square: settled as within by the discs, area = the patch area
    big = np.array([shapely.box(0, 0, 1000, 1000)], dtype=object)
    small = _stars(rng, 50, 20.0, 9, 400.0)
    small = shapely.transform(small, lambda c: c - [450_000.0 - 300.0, 3_850_000.0 - 300.0])
    res = pair_overlaps(edge_set(small), edge_set(big), np.arange(50), np.zeros(50, dtype=np.int64))
    assert res.a_within.all()
    assert not res.fallback.any()
    np.testing.assert_allclose(res.area, shapely.area(small), rtol=1e-12)


def test_edge_set_areas_and_orientation() -> None:
    rng = np.random.default_rng(4)
    g = _mixed(rng, 200)
    es = edge_set(g)
    np.testing.assert_allclose(es.area, shapely.area(g), rtol=1e-12)


def test_subdivide_partitions_and_points_in_polygons() -> None:
    rng = np.random.default_rng(5)
    big = shapely.segmentize(_stars(rng, 5, 3000.0, 40, 20_000.0), 50.0)
    big = big[shapely.is_valid(big)]
    pieces, owner = subdivide(big, max_vertices=32)
    assert len(pieces) > 4 * len(big)
    np.testing.assert_allclose(np.bincount(owner, weights=shapely.area(pieces)), shapely.area(big), rtol=1e-9)
    x, y = rng.uniform(440_000, 480_000, 2000), rng.uniform(3_840_000, 3_880_000, 2000)
    k, d = points_in_polygons(big, x, y)
    ref_d, ref_k = shapely.STRtree(shapely.points(x, y)).query(big, predicate="contains")
    assert sorted(zip(k.tolist(), d.tolist(), strict=True)) == sorted(zip(ref_k.tolist(), ref_d.tolist(),
                                                                          strict=True))


def test_star_test_never_passes_an_invalid_ring() -> None:
    from tuban.analysis.geometry import star_simple

    rings = [
        [(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)],  # bowtie
        [(0, 0), (2, 0), (2, 2), (1, 2), (1, 3), (1, 2), (0, 2), (0, 0)],  # spike
        [(0, 0), (4, 0), (4, 4), (2, 0), (0, 4), (0, 0)],  # touches itself
        [(0, 0), (2, 0), (2, 2), (0, 2), (0, 0), (2, 0), (2, 2), (0, 2), (0, 0)],  # twice round
        [(0, 0), (1, 0), (0, 0), (0, 0)],  # collapsed
    ]
    rng = np.random.default_rng(8)
    g = np.array([shapely.Polygon(r) for r in rings] + list(_stars(rng, 500, 30.0, 8, 100.0)), dtype=object)
    # random polygons: star-shaped ones pass, self-crossing ones must not
    rand = shapely.polygons(np.concatenate([c := rng.uniform(0, 10, (300, 6, 2)), c[:, :1]], axis=1))
    g = np.r_[g, rand]
    sure = star_simple(shapely.get_coordinates(g), shapely.get_num_coordinates(g))
    valid = shapely.is_valid(g)
    assert not (sure & ~valid).any()
    assert sure[5:505].mean() > 0.9  # the test does spare GEOS most of the time
    assert not sure[:5].any()


def test_analyse_same_result_on_one_or_two_threads() -> None:
    import geopandas as gpd

    from tuban.analysis import analyse
    from tuban.crs import transform_geometries

    rng = np.random.default_rng(9)
    scopes = _stars(rng, 60, 150.0, 12, 3000.0)
    centers = shapely.get_coordinates(shapely.centroid(scopes))[rng.integers(0, 60, 1500)]
    cx = centers[:, 0] + rng.normal(0, 150, 1500) - 450_000.0
    cy = centers[:, 1] + rng.normal(0, 150, 1500) - 3_850_000.0
    ang = (np.arange(8) + rng.uniform(-0.4, 0.4, (1500, 8))) * (np.pi / 4)
    rad = rng.uniform(10, 40, (1500, 1)) * rng.uniform(0.7, 1.3, (1500, 8))
    xy = np.stack([cx[:, None] + 450_000.0 + rad * np.cos(ang), cy[:, None] + 3_850_000.0 + rad * np.sin(ang)], -1)
    patches = shapely.polygons(np.concatenate([xy, xy[:, :1]], axis=1))
    previous = shapely.buffer(patches[:1000], 2.0)
    divisions = np.array([shapely.box(440_000, 3_840_000, 451_700, 3_860_000),
                          shapely.box(451_700, 3_840_000, 470_000, 3_860_000)], dtype=object)

    def frame(g: np.ndarray, **cols: object) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(cols, geometry=transform_geometries(g, "EPSG:4547", "EPSG:4490"), crs="EPSG:4490")

    p = frame(patches, QDNM=[f"T{i}" for i in range(len(patches))])
    s = frame(scopes, SWC_P_ID=[f"P{i}" for i in range(60)], PRO_NAME="x", CS_UNIT="y",
              RP_NUM=["豫水保〔2024〕1号" if i % 5 else None for i in range(60)], RP_TIME="2024-01-01",
              VEC_TYPE="防治责任范围")
    d = frame(divisions, XZQDM=["410821", "410822"], XZQMC=["a", "b"])
    q = frame(previous, QDNM=[f"Q{i}" for i in range(len(previous))])
    one = analyse(p, s, d, q, workers=1).to_geodataframe()
    two = analyse(p, s, d, q, workers=2).to_geodataframe()
    cols = ["RULE_ID", "BYD", "QDTYPE", "XZQDM", "PRID", "PREV_QDNM", "NUMBERS", "EXPLAIN_ZH"]
    assert (one[cols].fillna("-") == two[cols].fillna("-")).all().all()
    assert set(one["RULE_ID"]) >= {"R1", "R2", "R4"}
    assert one["XZQDM"].str.contains(",").any()  # some patches span both counties


def test_column_text_equals_the_per_patch_reference() -> None:
    """NUMBERS and sentences built column by column equal numbers() and explain_rule()."""
    import json

    from tuban.analysis import analyse
    from tuban.analysis.explanations import explain_rule

    from . import layouts as lay

    p = lay.patches([lay.box(0, 0, 100, 100), lay.box(90, 0, 160, 50), lay.box(900, 900, 950, 950),
                     lay.box(2000, 2000, 2100, 2100), lay.box(5000, 5000, 5010, 5010), lay.box(-50, 300, 50, 400),
                     lay.box(-20, 600, 20, 640)])
    s = lay.scopes([lay.box(-10, -10, 120, 120), lay.box(100, -10, 200, 60), lay.box(1000, 1000, 1100, 1100),
                    lay.box(2050, 2050, 2200, 2200), lay.box(-60, 290, 0, 410), lay.box(-30, 590, 30, 650)],
                   ids=["P01", "P02", "P03", "P04", "P01", "P06"],
                   rp_num=["a", "b", "c", None, "a", "f"],
                   vec_type=["防治责任范围"] * 3 + ["防治责任范围", "防治责任范围", "示意性范围"])
    q = lay.patches([lay.box(0, 0, 90, 90), lay.box(3000, 3000, 3010, 3010)], qdnm=["Q1", "Q2"])
    res = analyse(p, s, lay.divisions(), q)
    frame = res.to_geodataframe()
    ref = res.numbers()
    assert set(frame["RULE_ID"]) >= {"R1", "R2", "R3", "R4", "R5"}
    for row, num in zip(frame.itertuples(), ref, strict=True):
        assert json.loads(row.NUMBERS) == num
        assert explain_rule(row.RULE_ID, num, row.QDNM, "zh") == row.EXPLAIN_ZH
        assert explain_rule(row.RULE_ID, num, row.QDNM, "en") == row.EXPLAIN_EN


def test_lazy_polygons_build_the_rows_asked_for() -> None:
    from tuban.analysis.geometry import LazyPolygons

    rng = np.random.default_rng(12)
    g = _stars(rng, 40, 30.0, int(rng.integers(5, 12)), 500.0)
    lazy = LazyPolygons(shapely.get_coordinates(g), shapely.get_num_coordinates(g))
    rows = np.array([3, 0, 39, 3])
    assert len(lazy) == 40
    assert shapely.equals_exact(lazy[rows], g[rows], tolerance=0.0).all()
    assert shapely.equals_exact(lazy[7], g[7], tolerance=0.0)
    assert shapely.equals_exact(np.asarray(lazy), g, tolerance=0.0).all()
    np.testing.assert_array_equal(shapely.bounds(lazy.boxes()), shapely.bounds(g))
