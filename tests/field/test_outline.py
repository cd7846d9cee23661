"""A corrected or redrawn outline sent with a field record: validated on the server, kept for the reviewer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from tuban.errors import GeometryError
from tuban.field.policy import load_policy
from tuban.field.sync import submit_record
from tuban.store.models import Review

from .conftest import LAT, LON, SIZE, FieldWorld


def ring(*pts: tuple[float, float]) -> dict[str, Any]:
    coords = [list(p) for p in pts]
    return {"type": "Polygon", "coordinates": [[*coords, coords[0]]]}


MOVED = ring((LON + 0.0001, LAT), (LON + SIZE, LAT + 0.0001), (LON + SIZE, LAT + SIZE * 0.8),
             (LON, LAT + SIZE * 0.7))


def payload(world: FieldWorld, outline: Any) -> dict[str, Any]:
    p = world.patch("A-1")
    return {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": p.version, "base": {},
            "fields": {}, "outcome": "corrected", "outline": outline}


def reviews(world: FieldWorld) -> int:
    with world.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Review)))


def test_redrawn_outline_kept_with_its_check(fworld: FieldWorld) -> None:
    res = submit_record(fworld.store, fworld.actor("a_field"), payload(fworld, MOVED))
    with fworld.store.session() as s:
        data = s.get(Review, res.id).data
    assert data["record"]["outline"]["type"] == "Polygon"
    check = data["outline_check"]
    assert check["vertices"] == 4
    assert 0 < check["hausdorff_m"] < 20
    assert check["area_ha"] == pytest.approx(check["patch_area_ha"], rel=0.2)
    assert fworld.patch("A-1").geometry.equals_exact(fworld.patch("A-1").geometry, 0)  # the patch is unchanged


@pytest.mark.parametrize(("outline", "match"), [
    (ring((LON, LAT), (LON + SIZE, LAT + SIZE), (LON + SIZE, LAT), (LON, LAT + SIZE)), "not a valid polygon"),
    (ring((LON, LAT), (LON + SIZE, LAT)), "valid polygon|GeoJSON"),
    (ring((LON + 0.01, LAT), (LON + 0.011, LAT), (LON + 0.011, LAT + 0.001)), "m from the patch outline"),
    ({"type": "Point", "coordinates": [LON, LAT]}, "Polygon or MultiPolygon"),
    (ring((LON, LAT), (LON, float("nan")), (LON + SIZE, LAT + SIZE)), "NaN|valid"),
    (ring((LAT, LON), (LAT + SIZE, LON), (LAT + SIZE, LON + SIZE)), "lat/lon swapped"),
])
def test_bad_outlines_refused_with_the_reason(fworld: FieldWorld, outline: Any, match: str) -> None:
    with pytest.raises(GeometryError, match=match):
        submit_record(fworld.store, fworld.actor("a_field"), payload(fworld, outline))
    assert reviews(fworld) == 0


def test_vertex_limit_from_the_policy(fworld: FieldWorld) -> None:
    import math

    n = 40
    circle = ring(*[(LON + SIZE / 2 + SIZE / 2 * math.cos(2 * math.pi * k / n),
                     LAT + SIZE * 0.4 + SIZE * 0.4 * math.sin(2 * math.pi * k / n)) for k in range(n)])
    strict = load_policy({"outline_max_vertices": 30})
    with pytest.raises(GeometryError, match="40 vertices, the limit is 30"):
        submit_record(fworld.store, fworld.actor("a_field"), payload(fworld, circle), policy=strict)
    assert submit_record(fworld.store, fworld.actor("a_field"), payload(fworld, circle)).created


def test_z_dropped_and_http_422(fworld: FieldWorld, api: Any) -> None:
    three_d = {"type": "Polygon", "coordinates": [[[x, y, 100.0] for x, y in MOVED["coordinates"][0]]]}
    inspector = api("a_field")
    r = inspector.request("POST", "/api/field/records", json=payload(fworld, three_d))
    assert r.status_code == 201, r.text
    records = inspector.request("GET", f"/api/field/patches/{fworld.patches['A-1']}/records").json()["records"]
    assert all(len(c) == 2 for c in records[0]["record"]["outline"]["coordinates"][0])
    assert records[0]["outline_check"]["vertices"] == 4
    bad = inspector.request("POST", "/api/field/records", json=payload(
        fworld, ring((LON, LAT), (LON + SIZE, LAT + SIZE), (LON + SIZE, LAT), (LON, LAT + SIZE))))
    assert bad.status_code == 422
    assert "Self-intersection" in bad.json()["title"]
