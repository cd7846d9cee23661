"""Split along a line drawn across a patch (the map's split tool)."""

from __future__ import annotations

import shapely
from sqlalchemy import select

from tuban.store.models import Patch, PatchLineage


def test_split_along_a_line(client_for, world) -> None:
    pid = world.patches["A-1"]
    with world.store.session() as s:
        geom = s.get(Patch, pid).geometry
    minx, miny, maxx, maxy = geom.bounds
    mid = (miny + maxy) / 2
    a = client_for("a_staff")
    short = {"type": "LineString", "coordinates": [[minx - 0.001, mid], [(minx + maxx) / 2, mid]]}
    r = a.post(f"/api/patches/{pid}/split", json={"based_on_version": world.version("A-1"), "line": short})
    assert r.status_code == 422, r.text  # does not cut the patch
    both = a.post(f"/api/patches/{pid}/split", json={"based_on_version": world.version("A-1"), "line": short,
                                                      "parts": [short, short]})
    assert both.status_code == 422
    line = {"type": "LineString", "coordinates": [[minx - 0.001, mid], [maxx + 0.001, mid]]}
    r = a.post(f"/api/patches/{pid}/split", json={"based_on_version": world.version("A-1"), "line": line})
    assert r.status_code == 201, r.text
    kids = [c["id"] for c in r.json()["children"]]
    assert len(kids) == 2
    with world.store.session() as s:
        parts = [s.get(Patch, k).geometry for k in kids]
        assert sorted(s.scalars(select(PatchLineage.child_id).where(PatchLineage.parent_id == pid))) == sorted(kids)
    assert shapely.union_all(parts).symmetric_difference(geom).area < 1e-12
    assert all(abs(p.area - geom.area / 2) < 1e-12 for p in parts)
