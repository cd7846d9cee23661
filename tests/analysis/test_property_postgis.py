"""Property test: the shapely kernel and the independent PostGIS SQL agree on random layouts.

Layouts are drawn on an integer metre grid, so exact touches, shared edges, equal shares
and values exactly on a threshold come up often: the two backends must still agree on
every class (RULE_ID, QDTYPE, XZQDM, the overlapped projects, 完工) and on the areas
within 1e-6 ha.
"""

from __future__ import annotations

import math

import pytest
import shapely
import shapely.affinity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import layouts as lay
from .backends import run_postgis, run_shapely

pytestmark = [pytest.mark.postgis, pytest.mark.slow]

EXTENT = 2000


@st.composite
def rect(draw, *, size=(5, 400)):
    x = draw(st.integers(0, EXTENT))
    y = draw(st.integers(0, EXTENT))
    w = draw(st.integers(*size))
    h = draw(st.integers(*size))
    return lay.box(x, y, x + w, y + h)


@st.composite
def scope_geom(draw):
    kind = draw(st.sampled_from(["rect", "rect", "multi", "hole"]))
    a = draw(rect(size=(20, 600)))
    if kind == "multi":
        b = draw(rect(size=(20, 300)))
        return shapely.MultiPolygon([a, b]) if not a.intersects(b) else a.union(b)
    if kind == "hole":
        x0, y0, x1, y1 = a.bounds
        if x1 - x0 > 40 and y1 - y0 > 40:
            return shapely.Polygon(a.exterior.coords, [lay.box(x0 + 10, y0 + 10, x1 - 10, y1 - 10).exterior.coords])
    return a


@st.composite
def patch_geom(draw, scopes):
    if scopes and draw(st.booleans()):
        # near a scope: inside, across its edge or just outside
        x0, y0, x1, y1 = draw(st.sampled_from(scopes)).bounds
        x = draw(st.integers(int(x0) - 150, int(x1)))
        y = draw(st.integers(int(y0) - 150, int(y1)))
        return lay.box(x, y, x + draw(st.integers(5, 200)), y + draw(st.integers(5, 200)))
    if draw(st.integers(0, 9)) == 0:
        x, y, s = draw(st.integers(0, EXTENT)), draw(st.integers(0, EXTENT)), draw(st.integers(10, 200))
        return shapely.Polygon([(x, y), (x + s, y + s), (x + s, y), (x, y + s), (x, y)])  # bowtie
    return draw(rect(size=(5, 250)))


@st.composite
def layouts(draw):
    scopes = draw(st.lists(scope_geom(), min_size=1, max_size=12))
    patches = draw(st.lists(patch_geom(scopes), min_size=1, max_size=25))
    n = len(scopes)
    rp = draw(st.lists(st.sampled_from(["豫水保〔2024〕1号", None]), min_size=n, max_size=n))
    vt = draw(st.lists(st.sampled_from(["防治责任范围", "防治责任范围", "示意性范围"]), min_size=n, max_size=n))
    ids = [f"P{k % max(1, n - 1):02d}" for k in range(n)]  # some projects have two scopes
    split = draw(st.integers(-100, EXTENT + 100))
    divisions = lay.divisions([lay.box(-1000, -1000, split, EXTENT + 1000), lay.box(split, -1000, EXTENT + 1000,
                                                                                    EXTENT + 1000)],
                            ["410821", "410822"])
    previous = None
    if draw(st.booleans()):
        prev = [shapely.affinity.scale(g, xfact=draw(st.sampled_from([0.8, 0.9, 1.0, 1.1, 1.25])), yfact=1.0)
                for g in draw(st.lists(st.sampled_from(patches), max_size=10, unique_by=id))]
        prev += draw(st.lists(rect(size=(5, 200)), max_size=4))
        if prev:
            previous = lay.patches(prev, [f"Q{k}" for k in range(len(prev))])
    return (lay.patches(patches), lay.scopes(scopes, ids=ids, rp_num=rp, vec_type=vt), divisions, previous)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(layout=layouts())
def test_shapely_and_postgis_agree(pg_conn, layout):
    py = run_shapely(*layout)
    sql = run_postgis(pg_conn, *layout)
    assert py["completed"] == sql["completed"]
    for a, b in zip(py["patches"], sql["patches"], strict=True):
        where = f"patch {a['QDNM']}: shapely {a} vs PostGIS {b}"
        assert a["QDNM"] == b["QDNM"]
        assert a["RULE_ID"] == b["RULE_ID"], where
        assert math.isclose(a["QAREA"], b["QAREA"], abs_tol=1e-6), where
        assert math.isclose(a["EAREA"], b["EAREA"], abs_tol=1e-6), where
        assert a["XZQDM"] == b["XZQDM"], where
        assert a["QDTYPE"] == b["QDTYPE"], where
        assert a["PRID"] == b["PRID"], where
        assert a["projects"] == sorted(b["projects"]), where
