"""Cross-county isolation (reliability.md §A): 404 for another county's items, no leaks in lists."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from sqlalchemy import func, select

from tuban.web.deps import ITEM_PARAMS
from tuban.workflow import reporting, rounds
from tuban.workflow.service import perform

PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")


def path_params(path: str) -> list[str]:
    return PARAM.findall(path)



@pytest.fixture
def b_items(world):
    """Ids only county B may see: a B patch, a B-only round, B's task, a case on a B patch."""
    import geopandas as gpd
    import shapely

    from tuban.store.models import Case, Round, Task

    store = world.store
    gdf = gpd.GeoDataFrame({"QDNM": ["BB-1"], "XZQDM": ["410822"]},
                           geometry=[shapely.box(113.3, 35.3, 113.301, 35.301)], crs="EPSG:4490")
    store.import_patches(gdf, round_name="2024-B", actor="p_admin")
    p_admin = world.actor("p_admin")
    with store.session() as s:
        b_round = s.scalar(select(Round.id).where(Round.name == "2024-B"))
    perform(store, p_admin, rounds.issue_round, b_round, due_date=dt.date(2024, 10, 31))
    pid = world.patches["B-1"]
    perform(store, p_admin, reporting.determine, pid, byd="未批先建", note="",
            based_on_version=world.version("B-1"))
    with store.session() as s:
        case_id = s.scalar(select(Case.id).where(Case.patch_id == pid))
        task_id = s.scalar(select(Task.id).where(Task.round_id == world.round_id, Task.division_code == "410822"))
    return {"patch_id": pid, "round_id": b_round, "task_id": task_id, "case_id": case_id, "user_id":
            world.users["b_staff"]}


def _fill(path: str, ids: dict[str, int]) -> str:
    for name in path_params(path):
        value = ids.get(name, {"which": "after", "z": 14, "x": 13346, "y": 6506}.get(name, 1))
        path = path.replace("{" + name + "}", str(value))
    return path


def _snapshot(store):
    from tuban.store.models import AuditEntry, Case, Patch

    with store.session() as s:
        patches = s.execute(select(Patch.id, Patch.version, Patch.state, Patch.byd)
                            .where(Patch.lead_division_code == "410822").order_by(Patch.id)).all()
        cases = s.execute(select(Case.id, Case.state).order_by(Case.id)).all()
        audits = s.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action != "patch.conflict"))
    return patches, cases, audits


def test_route_walker_county_a_gets_404_on_every_b_item(routes, client_for, world, b_items, caplog) -> None:
    a = client_for("a_staff")
    before = _snapshot(world.store)
    checked = []
    with caplog.at_level(logging.WARNING, logger="tuban.web"):
        for method, path, _ in routes:
            params = [p for p in path_params(path) if p in ITEM_PARAMS]
            if not params:
                continue
            url = _fill(path, b_items)
            r = a.request(method, url, json={}, headers={"Accept": "application/json"})
            assert r.status_code == 404, f"{method} {url} answered {r.status_code}: {r.text[:200]}"
            assert r.json()["title"] == "not found"
            checked.append((method, path))
    assert len(checked) >= 15, checked  # a walker that checks nothing proves nothing
    assert _snapshot(world.store) == before  # B's rows unchanged, nothing audited
    assert sum("refused" in rec.message for rec in caplog.records) >= len(checked)  # every denial logged


def test_missing_and_foreign_ids_answer_identically(client_for, world, b_items) -> None:
    a = client_for("a_staff")
    foreign = a.get(f"/api/patches/{b_items['patch_id']}")
    missing = a.get("/api/patches/999999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert a.get("/api/patches/not-a-number").status_code == 404


def test_anonymous_gets_401_on_every_item_route(routes, client_for, b_items) -> None:
    anon = client_for(None)
    for method, path, _ in routes:
        if not [p for p in path_params(path) if p in ITEM_PARAMS]:
            continue
        r = anon.request(method, _fill(path, b_items), json={}, headers={"Accept": "application/json"})
        assert r.status_code == 401, f"{method} {path}: {r.status_code}"


def test_lists_leak_nothing_about_b(client_for, world, b_items) -> None:
    a = client_for("a_staff")
    rid = world.round_id
    visible = {"A-1", "A-2", "A-3", "X-AB", "X-BA"}
    for query in ("county=410822", "q=博爱", "bbox=113.0,35.0,113.5,35.5", "sort=county&order=desc",
                  "state=issued", "byd=疑似建设地点变更", "offset=0&limit=500"):
        body = a.get(f"/api/rounds/{rid}/patches?{query}").json()
        names = {i["qdnm"] for i in body["items"]}
        assert names <= visible, (query, names)
        assert body["total"] == len(names), query  # the total counts only what A may see
    q = a.get(f"/api/rounds/{rid}/patches?q=博爱").json()
    assert {i["qdnm"] for i in q["items"]} == {"X-BA"}  # the spanning patch is visible to each county
    feats = a.get(f"/api/rounds/{rid}/features?bbox=113.0,35.0,113.5,35.5").json()
    assert {f["properties"]["qdnm"] for f in feats["features"]} == visible
    rounds_seen = {r["name"] for r in a.get("/api/rounds").json()}
    assert rounds_seen == {"2024-1"}  # the B-only round is invisible
    dash = a.get(f"/api/rounds/{rid}/dashboard").json()
    assert set(dash["by_county"]) <= {"410811", "410822"}
    assert dash["total"] == len(visible)
    assert {t["division_code"] for t in dash["tasks"]} == {"410811"}
    cases = a.get("/api/cases").json()
    assert cases == []  # the case on B-1 does not exist for A


def test_extra_fields_are_refused(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-1"]
    v = world.version("A-1")
    r = a.patch(f"/api/patches/{pid}", json={"based_on_version": v, "fields": {"MEMO": "x"},
                                             "lead_division_code": "410822", "state": "reported"})
    assert r.status_code == 422
    for field in ("XZQDM", "STATE", "lead_division_code", "QDNM"):
        r = a.patch(f"/api/patches/{pid}", json={"based_on_version": v, "fields": {field: "410822"}})
        assert r.status_code == 422, field
    detail = a.get(f"/api/patches/{pid}").json()
    assert detail["lead_division_code"] == "410811"
    assert detail["fields"]["state"] == "issued"


def test_rights_change_at_the_next_request(client_for, world) -> None:
    from tuban.workflow.accounts import set_roles

    a = client_for("a_staff")
    pid_a, pid_b = world.patches["A-1"], world.patches["B-1"]
    assert a.get(f"/api/patches/{pid_a}").status_code == 200
    perform(world.store, world.actor("p_admin"), set_roles, world.users["a_staff"],
            [("county_reviewer", "410822")])
    assert a.get(f"/api/patches/{pid_a}").status_code == 404
    assert a.get(f"/api/patches/{pid_b}").status_code == 200


def test_admin_manages_only_users_of_their_county(client_for, world) -> None:
    a_admin = client_for("a_admin")
    names = {u["username"] for u in a_admin.get("/api/users").json()}
    assert names == {"a_admin", "a_staff", "viewer"}
    r = a_admin.put(f"/api/users/{world.users['b_staff']}/roles", json={"roles": [["county_reviewer", "410811"]]})
    assert r.status_code == 404
    r = a_admin.put(f"/api/users/{world.users['a_staff']}/roles", json={"roles": [["county_reviewer", "410822"]]})
    assert r.status_code == 403  # cannot hand out rights outside the county
    staff = client_for("a_staff")
    r = a_admin.put(f"/api/users/{world.users['a_staff']}/roles", json={"roles": [["viewer", "410811"]]})
    assert r.status_code == 200
    pid = world.patches["A-1"]
    r = staff.post(f"/api/patches/{pid}/review", json={"based_on_version": world.version("A-1")})
    assert r.status_code == 403  # the open session sees the new, smaller rights at once
