"""A device syncs edits queued before its user was moved to another county (reliability A #8).

The edits are refused for application but stored as ``field_unperm`` for an administrator, the phone is told
(404, ``code: unpermitted``, ``kept: true``), and the answer for another county's patch is the same as for a
patch that does not exist."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from tuban.store.models import AuditEntry, Review
from tuban.workflow.accounts import set_roles

from .conftest import COUNTY_B, FieldWorld


def test_reassigned_user_edits_kept_as_unpermitted(fworld: FieldWorld, api: Any) -> None:
    phone = api("a_field")
    p = fworld.patch("A-1")
    queued = {"client_id": str(uuid.uuid4()), "patch_id": p.id, "based_on_version": p.version,
              "base": {"QDCS": p.qdcs}, "fields": {"QDCS": "停工", "PROBLEM": "离线时记录"}, "outcome": "corrected"}
    with fworld.store.transaction(actor="p_admin") as tx:  # p_admin moves a_field to county B
        set_roles(tx, fworld.actor("p_admin"), fworld.users["a_field"], [("field_inspector", COUNTY_B)])
    r = phone.request("POST", "/api/field/records", json=queued)
    assert r.status_code == 404
    body = r.json()
    assert (body["code"], body["kept"], body["client_id"]) == ("unpermitted", True, queued["client_id"])
    after = fworld.patch("A-1")
    assert (after.qdcs, after.version) == (p.qdcs, p.version)  # not applied
    with fworld.store.session() as s:
        kept = s.scalar(select(Review).where(Review.client_id == queued["client_id"]))
        assert kept.kind == "field_unperm"
        assert kept.data["record"]["fields"]["PROBLEM"] == "离线时记录"  # nothing dropped
        assert kept.user_id == fworld.users["a_field"]
    # the phone retries (lost answer): the same reply, nothing stored twice
    again = phone.request("POST", "/api/field/records", json=queued)
    assert (again.status_code, again.json()["code"]) == (404, "unpermitted")
    # a patch that does not exist answers the same (nothing reveals that A-1 exists)
    ghost = phone.request("POST", "/api/field/records", json={**queued, "client_id": str(uuid.uuid4()),
                                                              "patch_id": 999999})
    assert ghost.status_code == 404
    assert {k: v for k, v in ghost.json().items() if k != "client_id"} == \
        {k: v for k, v in body.items() if k != "client_id"}
    with fworld.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Review).where(Review.kind == "field_unperm")) == 1
        audits = s.scalars(select(AuditEntry).where(AuditEntry.action == "field.record.unpermitted")
                           .order_by(AuditEntry.id)).all()
        assert len(audits) == 2  # A-1's record and the ghost's (its payload in the audit row)
        assert audits[1].after["record"]["patch_id"] == 999999
    # county A's administrator sees the kept record on the patch, flagged, for review
    recs = api("a_admin").request("GET", f"/api/field/patches/{p.id}/records").json()["records"]
    assert [(r["kind"], r["flagged"], r["user"]) for r in recs] == [("field_unperm", True, "a_field")]
