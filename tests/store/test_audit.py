"""The audit log: written in the same transaction as the change, and append-only."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text

from tuban.errors import IntegrityError
from tuban.store.models import AuditEntry, Round


def _audit_rows(store) -> list[AuditEntry]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_audit_row_commits_with_the_change(store) -> None:
    before = len(_audit_rows(store))
    with store.transaction(actor="alice") as tx:
        rnd = Round(name="2024-1", imagery={"before": "a.tif", "after": "b.tif"})
        tx.session.add(rnd)
        tx.session.flush()
        tx.audit(
            "round.create", "round", rnd.id, after={"name": "2024-1"}, round_id=rnd.id, division_code="410800"
        )
    rows = _audit_rows(store)
    assert len(rows) == before + 1
    last = rows[-1]
    assert (last.actor, last.action, last.entity, last.entity_id) == (
        "alice",
        "round.create",
        "round",
        str(rnd.id),
    )
    assert last.after == {"name": "2024-1"}
    assert last.round_id == rnd.id
    assert last.at is not None


def test_failed_transaction_leaves_no_audit_row(store) -> None:
    before = len(_audit_rows(store))

    def failing_change() -> None:
        with store.transaction(actor="alice") as tx:
            tx.session.add(Round(name="2024-1"))
            tx.audit("round.create", "round", None)
            tx.session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_change()
    assert len(_audit_rows(store)) == before
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Round)) == 0


def test_constraint_failure_rolls_back_audit_too(store) -> None:
    with store.transaction(actor="a") as tx:
        tx.session.add(Round(name="2024-1"))
    before = len(_audit_rows(store))

    def duplicate_round() -> None:
        with store.transaction(actor="alice") as tx:
            tx.audit("round.create", "round", None)
            tx.session.add(Round(name="2024-1"))  # unique name

    with pytest.raises(IntegrityError, match="constraint"):
        duplicate_round()
    assert len(_audit_rows(store)) == before


@pytest.mark.parametrize("statement", ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"])
def test_database_refuses_update_and_delete(store, statement: str) -> None:
    with store.transaction(actor="alice") as tx:
        tx.audit("x.test", "x", 1)
    rows = _audit_rows(store)
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text(statement))
    assert [(r.id, r.actor) for r in _audit_rows(store)] == [(r.id, r.actor) for r in rows]
    # through the store the refusal is an IntegrityError of the tuban tree
    with pytest.raises(IntegrityError, match="append-only"), store.transaction(actor="mallory") as tx:
        tx.session.execute(text(statement))


def test_audit_json_values_are_made_safe(store) -> None:
    import datetime as dt

    import shapely

    with store.transaction(actor="alice") as tx:
        tx.audit(
            "patch.edit",
            "patch",
            7,
            before={"geometry": shapely.box(0, 0, 1, 1), "when": dt.date(2024, 8, 1)},
            after={"名称": "山阳区", "n": 1.5},
        )
    last = _audit_rows(store)[-1]
    assert last.before["geometry"].startswith("POLYGON")
    assert last.before["when"] == "2024-08-01"
    assert last.after == {"名称": "山阳区", "n": 1.5}
