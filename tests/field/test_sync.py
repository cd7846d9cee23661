"""Field records on both backends: idempotent create, duplicate client ids kept, soft / hard conflicts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from tuban.errors import FieldError, NotFoundError, UsageError
from tuban.field.sync import DuplicateClientIdError, resolve_conflict, submit_record
from tuban.store.models import AuditEntry, Review

from .conftest import FieldWorld


def record(world: FieldWorld, qdnm: str = "A-1", **over: Any) -> dict[str, Any]:
    p = world.patch(qdnm)
    base = {"QTYPE": p.qtype, "QDCS": p.qdcs, "ADDRESS": p.address, "PROBLEM": p.problem}
    payload = {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": p.version, "base": base,
               "fields": {**base, "QDCS": "停工", "PROBLEM": "未采取苫盖措施"}, "responsible_party": "焦作市某建设公司",
               "outcome": "corrected", "points": [{"lon": 113.2403, "lat": 35.2203, "label": "弃土堆"}],
               "recorded_at": "2024-09-01T10:00:00+08:00"}
    payload.update(over)
    return payload


def count(world: FieldWorld, model: Any, *where: Any) -> int:
    with world.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)))


def test_create_applies_and_retry_is_idempotent(fworld: FieldWorld) -> None:
    actor = fworld.actor("a_field")
    payload = record(fworld)
    first = submit_record(fworld.store, actor, payload)
    assert first.created
    assert first.conflict is None
    patch = fworld.patch("A-1")
    assert (patch.qdcs, patch.problem, patch.version) == ("停工", "未采取苫盖措施", 2)
    # the response was lost: the device sends the very same record again
    again = submit_record(fworld.store, actor, payload)
    assert (again.id, again.created) == (first.id, False)
    assert fworld.patch("A-1").version == 2
    assert count(fworld, Review, Review.client_id == payload["client_id"]) == 1
    assert count(fworld, AuditEntry, AuditEntry.action == "field.record.create") == 1
    assert count(fworld, AuditEntry, AuditEntry.action == "patch.field_edit") == 1


def test_same_client_id_other_content_is_409_and_kept(fworld: FieldWorld) -> None:
    actor = fworld.actor("a_field")
    payload = record(fworld)
    first = submit_record(fworld.store, actor, payload)
    changed = {**payload, "fields": {**payload["fields"], "MEMO": "第二次提交"}}
    with pytest.raises(DuplicateClientIdError) as err:
        submit_record(fworld.store, actor, changed)
    assert err.value.existing_id == first.id
    with fworld.store.session() as s:
        kept = s.get(Review, err.value.kept_id)
        assert kept.kind == "field_dup"
        assert kept.conflict
        assert kept.data["record"]["fields"]["MEMO"] == "第二次提交"
    assert count(fworld, AuditEntry, AuditEntry.action == "field.record.duplicate_client_id") == 1
    assert fworld.patch("A-1").memo is None  # not applied


def test_soft_conflict_other_fields_applied_and_flagged(fworld: FieldWorld) -> None:
    a_staff, inspector = fworld.actor("a_staff"), fworld.actor("a_field")
    device = record(fworld)  # downloaded at version 1; edits QDCS and PROBLEM
    from tuban.workflow.review import edit_fields
    from tuban.workflow.service import perform

    perform(fworld.store, a_staff, edit_fields, fworld.patches["A-1"], {"MEMO": "内业备注"}, based_on_version=1)
    res = submit_record(fworld.store, inspector, device)
    assert res.conflict is not None
    assert res.conflict["kind"] == "soft"
    assert res.conflict["applied"] == ["PROBLEM", "QDCS"]
    p = fworld.patch("A-1")
    assert (p.qdcs, p.problem, p.memo, p.version) == ("停工", "未采取苫盖措施", "内业备注", 3)
    with fworld.store.session() as s:
        assert s.get(Review, res.id).conflict is True


def test_hard_conflict_keeps_both_values_and_resolution_is_audited(fworld: FieldWorld) -> None:
    inspector = fworld.actor("a_field")
    dev1 = record(fworld)
    dev2 = record(fworld, fields={**dev1["base"], "QDCS": "完工", "ADDRESS": "山阳区新地址"})
    r1 = submit_record(fworld.store, inspector, dev1)
    assert r1.conflict is None
    r2 = submit_record(fworld.store, inspector, dev2)  # both devices were at version 1
    assert r2.conflict["kind"] == "hard"
    assert r2.conflict["fields"]["QDCS"] == {"base": "施工", "server": "停工", "device": "完工"}
    assert r2.conflict["applied"] == ["ADDRESS"]
    p = fworld.patch("A-1")
    assert (p.qdcs, p.address) == ("停工", "山阳区新地址")  # the first value stays; nothing overwritten
    with fworld.store.session() as s:
        rec = s.get(Review, r2.id)
        assert rec.data["record"]["fields"]["QDCS"] == "完工"  # the losing value is kept
    # the county admin resolves in favour of the second device
    admin = fworld.actor("a_admin")
    out = resolve_conflict(fworld.store, admin, r2.id, {"QDCS": "device"}, based_on_version=p.version)
    assert out["resolution"]["choices"] == {"QDCS": "device"}
    assert fworld.patch("A-1").qdcs == "完工"
    assert count(fworld, AuditEntry, AuditEntry.action == "field.conflict.resolve") == 1
    with pytest.raises(Exception, match="no open hard conflict"):
        resolve_conflict(fworld.store, admin, r2.id, {"QDCS": "server"}, based_on_version=fworld.patch("A-1").version)


def test_other_county_patch_is_not_found(fworld: FieldWorld) -> None:
    payload = record(fworld, "B-1")
    before = fworld.patch("B-1").version
    with pytest.raises(NotFoundError) as info:  # 404 like a missing patch; kept, never applied (A #8)
        submit_record(fworld.store, fworld.actor("a_field"), payload)
    assert info.value.code == "unpermitted"
    assert count(fworld, Review) == 1
    assert fworld.patch("B-1").version == before


@pytest.mark.parametrize(("over", "exc"), [
    ({"client_id": "not-a-uuid"}, UsageError),
    ({"fields": {"QDCS": "不存在的状态"}}, FieldError),
    ({"fields": {"QDNM": "X"}}, FieldError),
    ({"outcome": "not_disturbance"}, FieldError),
    ({"points": [{"lon": "nan", "lat": 35}]}, FieldError),
    ({"outline": {"type": "Point", "coordinates": [113.2, 35.2]}}, Exception),
    ({"is_admin": True}, UsageError),
])
def test_invalid_records_refused(fworld: FieldWorld, over: dict[str, Any], exc: type[Exception]) -> None:
    payload = record(fworld)
    payload.update(over)
    with pytest.raises(exc):
        submit_record(fworld.store, fworld.actor("a_field"), payload)
    assert count(fworld, Review) == 0


def test_not_disturbance_with_outline(fworld: FieldWorld) -> None:
    outline = {"type": "Polygon", "coordinates": [[[113.2400, 35.2200], [113.2405, 35.2200], [113.2405, 35.2205],
                                                   [113.2400, 35.2200]]]}
    payload = record(fworld, outcome="not_disturbance", not_disturbance_reason="farming", outline=outline)
    res = submit_record(fworld.store, fworld.actor("a_field"), payload)
    with fworld.store.session() as s:
        data = s.get(Review, res.id).data["record"]
    assert data["outcome"] == "not_disturbance"
    assert data["outline"]["type"] == "Polygon"
