"""Office review, determination, reporting and cases through the API."""

from __future__ import annotations

import datetime as dt
import threading

import shapely
from sqlalchemy import func, select

from tuban.store.models import AuditEntry, Case, Patch, PatchLineage


def _v(c, pid: int) -> int:
    return c.get(f"/api/patches/{pid}").json()["fields"]["version"]


def test_edit_fields_validates_code_lists(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-1"]
    r = a.patch(f"/api/patches/{pid}", json={"based_on_version": _v(a, pid), "fields": {"QTYPE": "不存在的类型"}})
    assert r.status_code == 422
    assert "QTYPE" in r.json()["title"]
    r = a.patch(f"/api/patches/{pid}", json={"based_on_version": _v(a, pid),
                                             "fields": {"QTYPE": "弃土（渣）场", "MEMO": "东侧堆土", "ADDRESS": "x" * 101}})
    assert r.status_code == 422  # ADDRESS ≤ 100 characters
    r = a.patch(f"/api/patches/{pid}", json={"based_on_version": _v(a, pid),
                                             "fields": {"QTYPE": "弃土（渣）场", "MEMO": "东侧堆土"}})
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["qtype"] == "弃土（渣）场"
    last = a.get(f"/api/patches/{pid}/history").json()[-1]
    assert last["action"] == "patch.edit"
    assert last["before"]["qtype"] is None
    assert last["after"]["qtype"] == "弃土（渣）场"


def test_stale_save_gets_409_with_both_versions(client_for, world) -> None:
    a, admin = client_for("a_staff"), client_for("a_admin")
    pid = world.patches["A-2"]
    v = _v(a, pid)
    assert admin.patch(f"/api/patches/{pid}", json={"based_on_version": v, "fields": {"MEMO": "管理员的备注"}}).status_code == 200
    r = a.patch(f"/api/patches/{pid}", json={"based_on_version": v, "fields": {"MEMO": "复核员的备注"}})
    assert r.status_code == 409
    body = r.json()
    assert body["current"]["memo"] == "管理员的备注"
    assert body["current"]["version"] == v + 1
    assert body["submitted"] == {"MEMO": "复核员的备注"}  # nothing lost: the client can show both
    actions = [h["action"] for h in a.get(f"/api/patches/{pid}/history").json()]
    assert actions[-2:] == ["patch.edit", "patch.conflict"]  # both attempts audited


def test_concurrent_saves_exactly_one_wins(client_for, world) -> None:
    pid = world.patches["A-3"]
    clients = [client_for("a_staff") for _ in range(4)]
    v = _v(clients[0], pid)
    results: list[int] = []

    def save(i: int) -> None:
        r = clients[i].patch(f"/api/patches/{pid}", json={"based_on_version": v, "fields": {"MEMO": f"m{i}"}})
        results.append(r.status_code)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409, 409, 409]
    assert _v(clients[0], pid) == v + 1


def test_reject_with_structured_reason(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-3"]
    r = a.post(f"/api/patches/{pid}/reject", json={"based_on_version": _v(a, pid), "reason": "because"})
    assert r.status_code == 422
    r = a.post(f"/api/patches/{pid}/reject", json={"based_on_version": _v(a, pid), "reason": "farming",
                                                    "note": "耕地翻耕"})
    assert r.status_code == 200
    assert r.json()["fields"]["state"] == "rejected"
    assert r.json()["reviews"][-1]["data"]["reason"] == "farming"


def test_link_and_unlink_project(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-2"]
    r = a.put(f"/api/patches/{pid}/project", json={"based_on_version": _v(a, pid), "project_id": world.project_id})
    assert r.json()["fields"]["prnm"] == "焦作市新城安置房项目"
    r = a.put(f"/api/patches/{pid}/project", json={"based_on_version": _v(a, pid), "project_id": None})
    assert r.json()["fields"]["prnm"] is None
    actions = [h["action"] for h in a.get(f"/api/patches/{pid}/history").json()]
    assert actions[-2:] == ["patch.link_project", "patch.unlink_project"]


def test_spanning_patch_visible_but_only_lead_county_edits(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["X-BA"]  # lead county B
    assert a.get(f"/api/patches/{pid}").status_code == 200
    r = a.post(f"/api/patches/{pid}/review", json={"based_on_version": _v(a, pid)})
    assert r.status_code == 403


def test_determination_opens_case_and_case_runs_to_closed(client_for, world) -> None:
    admin, staff = client_for("a_admin"), client_for("a_staff")
    pid = world.patches["A-1"]
    staff.post(f"/api/patches/{pid}/review", json={"based_on_version": _v(staff, pid), "byd": "疑似未批先建"})
    r = admin.post(f"/api/patches/{pid}/determine", json={"based_on_version": _v(admin, pid), "byd": "疑似未批先建"})
    assert r.status_code == 422  # a determination uses the confirmed form
    r = admin.post(f"/api/patches/{pid}/determine", json={"based_on_version": _v(admin, pid), "byd": "未批先建",
                                                         "note": "现场核实无批复"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["fields"]["state"] == "determined"
    assert d["confirmed"]["byd"] == "未批先建"
    assert d["suspected"]["byd"] == "疑似未批先建"  # kept beside the confirmed one
    case_id = d["case"]["id"]
    assert staff.post(f"/api/cases/{case_id}/advance", json={"to": "rectifying", "deadline": "2024-12-31"}).status_code == 403
    assert admin.post(f"/api/cases/{case_id}/advance", json={"to": "rectifying"}).status_code == 422  # no deadline
    r = admin.post(f"/api/cases/{case_id}/advance", json={"to": "rectifying", "deadline": "2024-12-31", "note": "限期整改"})
    assert r.status_code == 200
    assert r.json()["deadline"] == "2024-12-31"
    assert admin.post(f"/api/cases/{case_id}/advance", json={"to": "rectifying", "deadline": "2025-01-31"}).status_code == 409
    r = admin.post(f"/api/cases/{case_id}/advance", json={"to": "closed", "note": "已销号"})
    assert [e["state"] for e in r.json()["events"]] == ["investigating", "rectifying", "closed"]
    hist = [h["action"] for h in admin.get(f"/api/patches/{pid}/history").json()]
    assert {"patch.determine", "case.open", "case.rectifying", "case.closed"} <= set(hist)


def test_submit_accept_return(client_for, world) -> None:
    admin, p_admin = client_for("a_admin"), client_for("p_admin")
    dash = admin.get(f"/api/rounds/{world.round_id}/dashboard").json()
    task_id = dash["tasks"][0]["id"]
    r = admin.post(f"/api/tasks/{task_id}/submit")
    assert r.status_code == 409  # patches still open
    assert "not determined" in r.json()["title"]
    for q in ("A-1", "A-2", "X-AB"):
        pid = world.patches[q]
        assert admin.post(f"/api/patches/{pid}/determine",
                          json={"based_on_version": _v(admin, pid), "byd": "合规"}).status_code == 200
    pid = world.patches["A-3"]
    admin.post(f"/api/patches/{pid}/reject", json={"based_on_version": _v(admin, pid), "reason": "seasonal"})
    assert admin.post(f"/api/tasks/{task_id}/submit").status_code == 200
    a1 = world.patches["A-1"]
    assert admin.get(f"/api/patches/{a1}").json()["fields"]["state"] == "reported"
    assert admin.post(f"/api/patches/{a1}/accept", json={}).status_code == 403
    assert p_admin.post(f"/api/patches/{a1}/accept", json={"comment": "同意"}).status_code == 200
    a2 = world.patches["A-2"]
    assert p_admin.post(f"/api/patches/{a2}/return", json={}).status_code == 422  # a return needs a comment
    r = p_admin.post(f"/api/patches/{a2}/return", json={"comment": "请补充项目信息"})
    assert r.json()["fields"]["state"] == "returned"
    dash = admin.get(f"/api/rounds/{world.round_id}/dashboard").json()
    assert dash["tasks"][0]["status"] == "returned"
    assert dash["tasks"][0]["on_time"] is False  # submitted after the 2024-10-31 due date


def test_split_and_merge_keep_lineage(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-2"]
    with world.store.session() as s:
        geom = s.get(Patch, pid).geometry
    minx, miny, maxx, maxy = geom.bounds
    mid = (minx + maxx) / 2
    parts = [shapely.geometry.mapping(shapely.box(minx, miny, mid, maxy)),
             shapely.geometry.mapping(shapely.box(mid, miny, maxx, maxy))]
    r = a.post(f"/api/patches/{pid}/split", json={"based_on_version": _v(a, pid), "parts": parts})
    assert r.status_code == 201, r.text
    kids = r.json()["children"]
    assert [k["qdnm"] for k in kids] == ["A-2-1", "A-2-2"]
    assert a.get(f"/api/patches/{pid}").json()["fields"]["state"] == "superseded"
    versions = {k["id"]: _v(a, k["id"]) for k in kids}
    r = a.post("/api/patches/merge", json={"patches": {str(k): v for k, v in versions.items()}})
    assert r.status_code == 201, r.text
    merged = r.json()["id"]
    with world.store.session() as s:
        links = s.execute(select(PatchLineage.parent_id, PatchLineage.child_id, PatchLineage.kind)).all()
        area = s.get(Patch, merged).geometry.area
    assert {(pid, k["id"], "split") for k in kids} <= set(links)
    assert {(k["id"], merged, "merge") for k in kids} <= set(links)
    assert abs(area - geom.area) < 1e-12
    bad = [shapely.geometry.mapping(shapely.box(minx, miny, mid, maxy + 1)), parts[1]]
    other = world.patches["A-1"]
    assert a.post(f"/api/patches/{other}/split", json={"based_on_version": _v(a, other), "parts": bad}).status_code == 422
    b_pid = world.patches["B-2"]
    assert a.post("/api/patches/merge", json={"patches": {str(other): _v(a, other), str(b_pid): 1}}).status_code == 404


def test_comment_and_dashboard_progress(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-1"]
    assert a.post(f"/api/patches/{pid}/comments", json={"body": "需外业核查"}).status_code == 201
    assert a.get(f"/api/patches/{pid}").json()["comments"][0]["body"] == "需外业核查"
    a.post(f"/api/patches/{pid}/review", json={"based_on_version": _v(a, pid)})
    dash = a.get(f"/api/rounds/{world.round_id}/dashboard").json()
    assert dash["by_state"]["office_reviewed"] == 1
    assert sum(n for _, n in dash["progress"]) == 1
    today = dt.datetime.now(dt.UTC).date()
    assert dash["tasks"][0]["overdue"] is (today > dt.date(2024, 10, 31))


def test_every_write_has_its_audit_row(client_for, world) -> None:
    a = client_for("a_staff")
    pid = world.patches["A-1"]
    with world.store.session() as s:
        n0 = s.scalar(select(func.count(AuditEntry.id)))
    a.post(f"/api/patches/{pid}/review", json={"based_on_version": _v(a, pid), "note": "1"})
    a.patch(f"/api/patches/{pid}", json={"based_on_version": _v(a, pid), "fields": {"MEMO": "2"}})
    a.post(f"/api/patches/{pid}/comments", json={"body": "3"})
    with world.store.session() as s:
        assert s.scalar(select(func.count(AuditEntry.id))) == n0 + 3
        assert s.scalar(select(func.count(Case.id))) == 0


def test_round_log_for_admins_only(client_for, world) -> None:
    assert client_for("a_staff").get(f"/api/rounds/{world.round_id}/log").status_code == 403
    log = client_for("a_admin").get(f"/api/rounds/{world.round_id}/log").json()
    assert log["total"] >= 1
    assert {e["division_code"] for e in log["items"]} <= {"410811"}


def test_audit_cannot_be_edited_through_the_app(routes) -> None:
    for method, path, _ in routes:
        if "audit" in path or path.endswith(("/history", "/log")):
            assert method == "GET", (method, path)


def test_fast_geojson_matches_the_reference_encoder(client_for, world) -> None:
    import json

    from tuban.workflow import queries

    actor = world.actor("a_staff")
    bbox = (113.0, 35.0, 113.5, 35.5)
    with world.store.session() as s:
        fast = json.loads(queries.features_in_bbox_json(s, actor, world.round_id, bbox))
        ref = queries.features_in_bbox(s, actor, world.round_id, bbox)
    assert fast["truncated"] is ref["truncated"] is False
    assert len(fast["features"]) == len(ref["features"]) == 5
    for f, r in zip(fast["features"], ref["features"], strict=True):
        assert f["id"] == r["id"]
        assert f["properties"] == r["properties"]
        # the app sends the stored display outline: 6 decimals (≈ 0.1 m)
        assert shapely.equals_exact(shapely.geometry.shape(f["geometry"]), shapely.geometry.shape(r["geometry"]),
                                    tolerance=1e-6)
    r = client_for("a_staff").get(f"/api/rounds/{world.round_id}/features?bbox=113,35,113.5,35.5")
    assert r.headers["content-type"] == "application/geo+json"
    assert r.json()["features"][0]["properties"]["qdnm"] == "A-1"


def test_map_layer_quotes_any_text_as_json(client_for, world) -> None:
    """Quotes, backslashes, control characters and CJK in the properties survive the SQL-built JSON."""
    from sqlalchemy import update

    from tuban.store.models import Patch

    nasty = 'A-1 "引号" \\ back\nline\ttab\x01\x7f \u2028 \'s'
    with world.store.transaction(actor="t") as tx:
        tx.session.execute(update(Patch).where(Patch.id == world.patches["A-1"]).values(qdnm=nasty, byd='x"y'))
    r = client_for("a_staff").get(f"/api/rounds/{world.round_id}/features?bbox=113,35,113.5,35.5&zoom=12")
    props = {f["id"]: f["properties"] for f in r.json()["features"]}
    assert props[world.patches["A-1"]]["qdnm"] == nasty
    assert props[world.patches["A-1"]]["byd"] == 'x"y'


def test_map_layer_zoomed_out_sends_the_overview_outlines(client_for, world) -> None:
    from tuban.store.models import OVERVIEW_MAX_ZOOM, OVERVIEW_TOLERANCE

    staff = client_for("a_staff")
    url = f"/api/rounds/{world.round_id}/features?bbox=113,35,113.5,35.5"
    near = staff.get(f"{url}&zoom={OVERVIEW_MAX_ZOOM}").json()
    far = staff.get(f"{url}&zoom={OVERVIEW_MAX_ZOOM - 0.5}").json()
    assert staff.get(url).json() == near  # no zoom: full outlines
    assert [f["properties"] for f in far["features"]] == [f["properties"] for f in near["features"]]
    for f, g in zip(far["features"], near["features"], strict=True):
        coarse, fine = shapely.geometry.shape(f["geometry"]), shapely.geometry.shape(g["geometry"])
        assert shapely.get_num_coordinates(coarse) <= shapely.get_num_coordinates(fine)
        assert shapely.hausdorff_distance(coarse, fine) <= OVERVIEW_TOLERANCE + 1e-5
        assert all(len(repr(float(v)).split(".")[-1]) <= 5 for v in shapely.get_coordinates(coarse).ravel())
    assert staff.get(f"{url}&zoom=99").status_code == 422


def test_create_round_from_geojson_and_issue(client_for, world) -> None:
    p_admin, staff = client_for("p_admin"), client_for("a_staff")
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"QDNM": f"N-{i}", "XZQDM": "410811", "BYD": "疑似未批先建", "QAREA": 0.6},
         "geometry": shapely.geometry.mapping(shapely.box(113.3 + i * 0.01, 35.3, 113.305 + i * 0.01, 35.305))}
        for i in range(3)]}
    r = p_admin.post("/api/rounds", json={"name": "2024-2", "period": "202409", "features": fc})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["patches"] == 3
    assert staff.get(f"/api/rounds/{rid}/dashboard").status_code == 404  # not issued to A yet
    r = p_admin.post(f"/api/rounds/{rid}/issue", json={"due_date": "2024-11-30"})
    assert [t["division_code"] for t in r.json()["tasks"]] == ["410811"]
    dash = staff.get(f"/api/rounds/{rid}/dashboard").json()
    assert dash["total"] == 3
    assert p_admin.post("/api/rounds", json={"name": "2024-2"}).status_code == 409
    bad = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"QDNM": "x"},
                                                      "geometry": {"type": "Polygon", "coordinates": "nope"}}]}
    assert p_admin.post("/api/rounds", json={"name": "2024-3", "features": bad}).status_code == 422
    assert "2024-3" not in {x["name"] for x in p_admin.get("/api/rounds").json()}  # nothing half-created


def test_list_total_with_pages_filters_and_an_offset_past_the_end(client_for, world) -> None:
    staff = client_for("a_staff")
    url = f"/api/rounds/{world.round_id}/patches"
    full = staff.get(url).json()
    assert full["total"] == len(full["items"]) == 5
    page = staff.get(f"{url}?limit=2&offset=2&sort=qarea&order=desc").json()
    assert page["total"] == 5
    assert len(page["items"]) == 2
    beyond = staff.get(f"{url}?limit=2&offset=10").json()
    assert beyond["total"] == 5
    assert beyond["items"] == []
    none = staff.get(f"{url}?q=no-such-patch").json()
    assert none["total"] == 0
    assert none["items"] == []
    assert staff.get(f"{url}?state=issued&limit=1").json()["total"] == sum(
        1 for i in full["items"] if i["state"] == "issued")
