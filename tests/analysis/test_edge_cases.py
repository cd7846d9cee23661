"""Edge cases of R1–R5 (issue 5), each run through the shapely and the PostGIS backend."""

from __future__ import annotations

import pytest
import shapely

from . import layouts as lay

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:psycopg.*")


def _only(result):
    (row,) = result["patches"]
    return row


def test_touching_but_not_overlapping_is_no_overlap(backend):
    # the patch shares an edge with an undisturbed approved scope: distance 0 → R3, never R1/R2
    row = _only(backend(lay.patches([lay.box(100, 0, 200, 100)]), lay.scopes([lay.box(0, 0, 100, 100)]), lay.divisions()))
    assert row["RULE_ID"] == "R3"
    assert row["EAREA"] == 0
    assert row["projects"] == []
    assert row["PRID"] == "P01"


def test_touching_scope_already_disturbed_gives_r4(backend):
    patches = lay.patches([lay.box(100, 0, 200, 100), lay.box(10, 10, 60, 60)])
    rows = backend(patches, lay.scopes([lay.box(0, 0, 100, 100)]), lay.divisions())["patches"]
    assert [r["RULE_ID"] for r in rows] == ["R4", "R1"]


@pytest.mark.parametrize(("outside_m", "rule"), [(5.0, "R1"), (5.01, "R2")])
def test_patch_exactly_on_the_tolerance(backend, outside_m, rule):
    # 100 m × 100 m patch (1 ha): tolerance max(0.01, 5 %) = 0.05 ha = a 5 m strip
    patch = lay.box(0, 0, 100, 100)
    scope = lay.box(outside_m, -50, 300, 150)
    row = _only(backend(lay.patches([patch]), lay.scopes([scope]), lay.divisions()))
    assert row["RULE_ID"] == rule
    assert row["EAREA"] == pytest.approx(outside_m * 100 / 10_000, abs=1e-6)


def test_small_patch_uses_the_absolute_tolerance(backend):
    # 30 m × 30 m = 0.09 ha: 5 % is 0.0045 ha < 0.01 ha, so 0.009 ha outside is still compliant
    row = _only(backend(lay.patches([lay.box(0, 0, 30, 30)]), lay.scopes([lay.box(0.3 * 10, -10, 100, 100)]),
                        lay.divisions()))
    assert row["EAREA"] == pytest.approx(0.009, abs=1e-6)
    assert row["RULE_ID"] == "R1"


def test_multipolygon_scope(backend):
    scope = shapely.MultiPolygon([lay.box(0, 0, 100, 100), lay.box(200, 0, 300, 100)])
    patches = lay.patches([lay.box(10, 10, 90, 90), lay.box(150, 10, 250, 90)])
    rows = backend(patches, lay.scopes([scope]), lay.divisions())["patches"]
    assert [r["RULE_ID"] for r in rows] == ["R1", "R2"]
    assert rows[1]["EAREA"] == pytest.approx(50 * 80 / 10_000, abs=1e-6)


def test_scope_with_a_hole(backend):
    scope = shapely.Polygon(lay.box(0, 0, 300, 300).exterior.coords, [lay.box(100, 100, 200, 200).exterior.coords])
    patches = lay.patches([lay.box(120, 120, 180, 180), lay.box(50, 50, 150, 150)])
    rows = backend(patches, lay.scopes([scope]), lay.divisions())["patches"]
    # inside the hole: no overlap, distance 20 m to the disturbed scope → R5 (0.36 ha < 0.5 ha)
    assert rows[0]["RULE_ID"] == "R5"
    assert rows[1]["RULE_ID"] == "R2"
    assert rows[1]["EAREA"] == pytest.approx(0.25, abs=1e-6)


def test_covered_only_by_the_union_of_two_scopes(backend):
    patch = lay.box(0, 0, 100, 100)
    scopes = lay.scopes([lay.box(-50, -50, 50, 150), lay.box(50, -50, 150, 150)])
    row = _only(backend(lay.patches([patch]), scopes, lay.divisions()))
    assert row["RULE_ID"] == "R1"
    assert row["EAREA"] == pytest.approx(0, abs=1e-6)
    assert row["projects"] == ["P01", "P02"]
    assert row["PRID"] == "P01"  # equal shares: the first scope


def test_union_of_overlapping_scopes_is_not_double_counted(backend):
    patch = lay.box(0, 0, 100, 100)
    scopes = lay.scopes([lay.box(-10, -10, 60, 110), lay.box(40, -10, 80, 110), lay.box(50, -10, 90, 110)])
    row = _only(backend(lay.patches([patch]), scopes, lay.divisions()))
    assert row["RULE_ID"] == "R2"
    assert row["EAREA"] == pytest.approx(0.1, abs=1e-6)


def test_patch_spanning_two_counties(backend):
    row = _only(backend(lay.patches([lay.box(-30, 0, 70, 100)]), lay.scopes([lay.box(5000, 5000, 5100, 5100)]),
                        lay.divisions()))
    assert row["XZQDM"] == "410822,410821"  # 70 % east (lead) first


def test_bowtie_is_repaired_not_dropped(backend):
    bowtie = shapely.Polygon([(0, 0), (100, 100), (100, 0), (0, 100), (0, 0)])
    assert not bowtie.is_valid
    row = _only(backend(lay.patches([bowtie]), lay.scopes([lay.box(0, 0, 100, 50)]), lay.divisions()))
    # repaired to two triangles of 0.25 ha each; the lower half of each lies in the scope (the repair
    # happens in EPSG:4490, where the crossing point sits a few mm off the metric one)
    assert row["QAREA"] == pytest.approx(0.5, abs=1e-4)
    assert row["EAREA"] == pytest.approx(0.25, abs=1e-4)
    assert row["RULE_ID"] == "R2"


def test_schematic_and_unapproved_scopes_do_not_count(backend):
    scopes = lay.scopes([lay.box(0, 0, 100, 100), lay.box(0, 0, 100, 100)], rp_num=["豫水保〔2024〕1号", None],
                      vec_type=["示意性范围", "防治责任范围"])
    row = _only(backend(lay.patches([lay.box(10, 10, 90, 90)]), scopes, lay.divisions()))
    assert row["RULE_ID"] == "R4"
    assert row["projects"] == []


def test_site_change_radius_is_inclusive(backend):
    patches = lay.patches([lay.box(0, 0, 100, 100), lay.box(0, 2000, 100, 2100)])
    scopes = lay.scopes([lay.box(600, 0, 700, 100), lay.box(600.5, 2000, 700, 2100)])
    rows = backend(patches, scopes, lay.divisions())["patches"]
    assert [r["RULE_ID"] for r in rows] == ["R3", "R4"]
    assert rows[0]["PRID"] == "P01"
    assert rows[1]["PRID"] is None


def test_change_types_and_completed(backend):
    current = lay.patches([lay.box(0, 0, 100, 100), lay.box(500, 0, 600, 100), lay.box(1000, 0, 1100, 100),
                         lay.box(2000, 0, 2100, 100), lay.box(3000, 0, 3100, 100)])
    previous = lay.patches([lay.box(500, 0, 590, 100), lay.box(1000, 0, 1100, 111.2), lay.box(2000, 0, 2110, 100),
                          lay.box(4000, 0, 4100, 100)], ["Q1", "Q2", "Q3", "Q4"])
    out = backend(current, lay.scopes([lay.box(9000, 9000, 9100, 9100)]), lay.divisions(), previous)
    assert [r["QDTYPE"] for r in out["patches"]] == ["新增", "续建（范围扩大）", "续建（范围缩小）",
                                                    "续建（范围不变）", "新增"]
    assert out["completed"] == ["Q4"]


def test_multipolygon_patch_with_parts_in_two_counties(backend):
    # neither part meets the county boundary at x = 0, so no boundary test can see the split
    patch = shapely.MultiPolygon([lay.box(-300, 0, -200, 100), lay.box(200, 0, 250, 100)])
    row = _only(backend(lay.patches([patch]), lay.scopes([lay.box(5000, 5000, 5100, 5100)]), lay.divisions()))
    assert row["XZQDM"] == "410821,410822"


def test_patch_touching_a_county_boundary_from_inside(backend):
    row = _only(backend(lay.patches([lay.box(0, 0, 100, 100)]), lay.scopes([lay.box(5000, 5000, 5100, 5100)]),
                        lay.divisions()))
    assert row["XZQDM"] == "410822"
