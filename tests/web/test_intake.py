"""Creating a round from a province's patch file or a detection run, analysed in the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

COUNTY_A, COUNTY_B = "410811", "410822"  # as tests/web/conftest.py
LON, LAT = 113.20, 35.20


def _divisions(world) -> None:
    """Two counties side by side: A west of LON + 0.011, B east of it."""
    gdf = gpd.GeoDataFrame({"XZQDM": [COUNTY_A, COUNTY_B], "XZQMC": ["山阳区", "博爱县"]},
                           geometry=[shapely.box(LON - 0.05, LAT - 0.05, LON + 0.011, LAT + 0.05),
                                     shapely.box(LON + 0.011, LAT - 0.05, LON + 0.08, LAT + 0.05)],
                           crs="EPSG:4490")
    world.store.import_divisions(gdf, actor="p_admin")


def _patches(n: int, *, qdnm: bool = True) -> gpd.GeoDataFrame:
    geoms = [shapely.box(LON + 0.001 + 0.006 * i, LAT + 0.01, LON + 0.003 + 0.006 * i, LAT + 0.012) for i in range(n)]
    data = {"QDNM": [f"F-{i + 1}" for i in range(n)]} if qdnm else {"score": [0.5 + i / 10 for i in range(n)]}
    return gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4490")


def test_province_patch_file_makes_an_analysed_round(client_for, world, tmp_path: Path) -> None:
    _divisions(world)
    src = tmp_path / "patches.geojson"
    src.write_text(_patches(3).to_json(), encoding="utf-8")
    p_admin = client_for("p_admin")
    with src.open("rb") as f:
        r = p_admin.post("/api/rounds/import", data={"name": "2025-1", "period": "202505"},
                         files={"file": ("2025 省级图斑.geojson", f, "application/geo+json")})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["patches"] == 3
    assert out["analysis_error"] is None
    assert out["analysis"]["patches"] == 3
    assert sum(out["analysis"]["rules"].values()) == 3
    rid = out["id"]
    items = p_admin.get(f"/api/rounds/{rid}/patches").json()["items"]
    assert [it["qdnm"] for it in items] == ["F-1", "F-2", "F-3"]
    assert all(it["byd"] for it in items)  # the analysis wrote BYD
    assert [it["lead_division_code"] for it in items] == [COUNTY_A, COUNTY_A, COUNTY_B]
    assert {it["state"] for it in items} == {"issued"}
    detail = p_admin.get(f"/api/patches/{items[0]['id']}").json()
    assert detail["suspected"]["rule_id"]  # a suspected decision with its rule
    # analysed again on demand (idempotent for unreviewed patches)
    again = p_admin.post(f"/api/rounds/{rid}/analyse", json={})
    assert again.status_code == 200
    assert again.json()["patches"] == 3


def test_detection_run_makes_detected_patches(client_for, world, detection_dir: Path) -> None:
    _divisions(world)
    _patches(2, qdnm=False).to_file(detection_dir / "jiaozuo-2025-05.gpkg", layer="patches", driver="GPKG")
    (detection_dir / "notes.txt").write_text("not a run")
    # a run still being written (tuban detect's temporary name, renamed when whole) is neither offered nor taken
    shutil.copyfile(detection_dir / "jiaozuo-2025-05.gpkg", detection_dir / ".jiaozuo-2025-06.tmp-0f3a.gpkg")
    p_admin = client_for("p_admin")
    runs = p_admin.get("/api/detection-runs").json()
    assert [x["name"] for x in runs] == ["jiaozuo-2025-05.gpkg"]
    partial = p_admin.post("/api/rounds/import", data={"name": "2025-P", "run": ".jiaozuo-2025-06.tmp-0f3a.gpkg"})
    assert partial.status_code == 422
    assert "not the name of a detection output" in partial.json()["title"]
    r = p_admin.post("/api/rounds/import", data={"name": "2025-D", "run": "jiaozuo-2025-05.gpkg"})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    items = p_admin.get(f"/api/rounds/{rid}/patches?state=detected").json()["items"]
    assert [it["qdnm"] for it in items] == ["2025-D-00001", "2025-D-00002"]
    issued = p_admin.post(f"/api/rounds/{rid}/issue", json={"due_date": "2025-10-31"})
    assert [t["division_code"] for t in issued.json()["tasks"]] == [COUNTY_A]


def test_analysis_failure_keeps_the_round(client_for, world, tmp_path: Path) -> None:
    src = tmp_path / "p.geojson"  # no divisions in the store: the analysis cannot run
    src.write_text(_patches(1).to_json(), encoding="utf-8")
    with src.open("rb") as f:
        r = client_for("p_admin").post("/api/rounds/import", data={"name": "2025-X"},
                                       files={"file": ("p.geojson", f, "application/json")})
    assert r.status_code == 201, r.text
    assert r.json()["analysis"] is None
    assert "division" in r.json()["analysis_error"]


@pytest.mark.parametrize(("data", "files", "status"), [
    ({"name": "bad-1"}, None, 422),  # neither file nor run
    ({"name": "bad-2", "run": "../../etc/passwd.gpkg"}, None, 422),
    ({"name": "bad-3", "run": "missing.gpkg"}, None, 404),
    ({"name": "bad-4"}, {"file": ("evil.exe", b"MZ", "application/octet-stream")}, 422),
    ({"name": "bad-5"}, {"file": ("broken.geojson", b"{not json", "application/json")}, None),
    ({"name": "bad-6"}, {"file": ("bomb.zip", b"PK\x03\x04garbage", "application/zip")}, None),
])
def test_bad_inputs_create_nothing(client_for, world, data, files, status) -> None:
    p_admin = client_for("p_admin")
    r = p_admin.post("/api/rounds/import", data=data, files=files)
    assert r.status_code == status if status else 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert data["name"] not in {x["name"] for x in p_admin.get("/api/rounds").json()}


def test_county_staff_cannot_create_rounds(client_for, world, tmp_path: Path) -> None:
    src = tmp_path / "p.geojson"
    src.write_text(json.dumps({"type": "FeatureCollection", "features": []}), encoding="utf-8")
    for who in ("a_admin", "a_staff"):
        c = client_for(who)
        with src.open("rb") as f:
            assert c.post("/api/rounds/import", data={"name": "x"}, files={"file": ("p.geojson", f)}).status_code == 403
        assert c.get("/api/detection-runs").status_code == 403
        assert c.post(f"/api/rounds/{world.round_id}/analyse", json={}).status_code in (403, 404)


def test_rounds_page_offers_the_form_to_province_staff_only(client_for, world) -> None:
    assert 'id="round-import"' in client_for("p_admin").get("/rounds").text
    assert 'id="round-import"' not in client_for("a_staff").get("/rounds").text
