"""Out-of-order field records (reliability.md D #43) on both backends: held, released when the gap fills,
force-applied and flagged after N days; nothing dropped; hold and reprocessing audited."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select

from tuban.field.backlog import release_overdue
from tuban.field.sync import submit_record
from tuban.store.models import AuditEntry, Review

from .conftest import FieldWorld


def rec(world: FieldWorld, *, after: str | None = None, base: dict[str, Any] | None = None,
        **fields: str) -> dict[str, Any]:
    p = world.patch("A-1")
    base = base if base is not None else {"QDCS": p.qdcs, "PROBLEM": p.problem, "MEMO": p.memo}
    out: dict[str, Any] = {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": 1, "base": base,
                           "fields": {**base, **fields}, "outcome": "corrected"}
    if after:
        out["after_client_id"] = after
    return out


def audits(world: FieldWorld, action: str) -> int:
    with world.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)))


def kinds(world: FieldWorld) -> dict[str, str]:
    with world.store.session() as s:
        return {r.client_id: r.kind for r in s.scalars(select(Review))}


def test_update_before_create_is_held_then_applied(fworld: FieldWorld) -> None:
    actor = fworld.actor("a_field")
    create = rec(fworld, QDCS="停工")
    update = rec(fworld, after=create["client_id"], base=create["fields"], PROBLEM="弃土未苫盖")
    held = submit_record(fworld.store, actor, update)  # the update arrives first
    assert held.held
    assert held.to_dict()["status"] == "held"
    assert fworld.patch("A-1").version == 1  # nothing applied yet
    assert kinds(fworld) == {update["client_id"]: "field_held"}
    again = submit_record(fworld.store, actor, update)  # a retry of a held record: the same answer, nothing new
    assert (again.id, again.held, again.created) == (held.id, True, False)
    created = submit_record(fworld.store, actor, create)  # the gap fills: both applied, in order
    assert created.created
    assert not created.held
    p = fworld.patch("A-1")
    assert (p.qdcs, p.problem, p.version) == ("停工", "弃土未苫盖", 3)
    assert kinds(fworld) == {create["client_id"]: "field", update["client_id"]: "field"}
    with fworld.store.session() as s:
        released = s.get(Review, held.id)  # the same row, kept and released
        assert released.data["held"]["waiting_for"] == create["client_id"]
        assert released.data["held"]["forced"] is False
        assert released.data["conflict"] is None  # its own chain of edits: not a conflict
        assert not released.conflict
    assert audits(fworld, "field.record.hold") == 1
    assert audits(fworld, "field.record.release") == 1
    assert audits(fworld, "field.record.create") == 1
    assert audits(fworld, "patch.field_edit") == 2


def test_missing_middle_update_fills_the_gap(fworld: FieldWorld) -> None:
    actor = fworld.actor("a_field")
    first = rec(fworld, QDCS="停工")
    middle = rec(fworld, after=first["client_id"], base=first["fields"], PROBLEM="第二次")
    last = rec(fworld, after=middle["client_id"], base=middle["fields"], MEMO="第三次")
    submit_record(fworld.store, actor, first)
    assert submit_record(fworld.store, actor, last).held  # the middle one is missing
    assert fworld.patch("A-1").memo is None
    assert not submit_record(fworld.store, actor, middle).held
    p = fworld.patch("A-1")
    assert (p.qdcs, p.problem, p.memo, p.version) == ("停工", "第二次", "第三次", 4)
    assert set(kinds(fworld).values()) == {"field"}


def test_chain_arriving_in_reverse_releases_link_by_link(fworld: FieldWorld) -> None:
    actor = fworld.actor("a_field")
    a = rec(fworld, QDCS="停工")
    b = rec(fworld, after=a["client_id"], base=a["fields"], PROBLEM="b")
    c = rec(fworld, after=b["client_id"], base=b["fields"], MEMO="c")
    assert submit_record(fworld.store, actor, c).held
    assert submit_record(fworld.store, actor, b).held  # b waits for a; c still waits for b
    submit_record(fworld.store, actor, a)
    p = fworld.patch("A-1")
    assert (p.qdcs, p.problem, p.memo) == ("停工", "b", "c")
    assert audits(fworld, "field.record.release") == 2


def test_never_filled_gap_is_force_applied_and_flagged_after_n_days(fworld: FieldWorld) -> None:
    actor = fworld.actor("a_field")
    lost = str(uuid.uuid4())  # the create that never arrives
    update = rec(fworld, after=lost, PROBLEM="只有更新到达")
    held = submit_record(fworld.store, actor, update)
    assert held.held
    assert release_overdue(fworld.store, max_age_days=14) == []  # not yet due
    assert fworld.patch("A-1").problem is None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=15)
    assert release_overdue(fworld.store, max_age_days=14, now=later) == [held.id]
    assert fworld.patch("A-1").problem == "只有更新到达"
    with fworld.store.session() as s:
        r = s.get(Review, held.id)
        assert r.kind == "field"
        assert r.conflict  # flagged for the reviewer
        assert r.data["held"]["forced"] is True
        assert r.data["held"]["waiting_for"] == lost
    assert audits(fworld, "field.record.force_apply") == 1
    assert release_overdue(fworld.store, max_age_days=14, now=later) == []  # once only
    # the late original, if it ever comes, is still stored (applied over the newer version)
    late = {"client_id": lost, "patch_id": fworld.patches["A-1"], "based_on_version": 1,
            "base": {"QDCS": "施工"}, "fields": {"QDCS": "停工"}, "outcome": "corrected"}
    assert submit_record(fworld.store, actor, late).created
    assert len(kinds(fworld)) == 2


def test_held_record_over_http_is_202(fworld: FieldWorld, api: Any) -> None:
    inspector = api("a_field")
    update = rec(fworld, after=str(uuid.uuid4()), PROBLEM="先到")
    r = inspector.request("POST", "/api/field/records", json=update)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "held"
    listing = inspector.request("GET", f"/api/field/patches/{fworld.patches['A-1']}/records").json()["records"]
    assert [x["kind"] for x in listing] == ["field_held"]
    assert listing[0]["held"]["waiting_for"] == update["after_client_id"]
