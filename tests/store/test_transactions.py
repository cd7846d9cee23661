"""Timestamps, concurrent writers and the read session."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select

from tuban.store.models import AuditEntry, Round


def test_timestamps_come_back_aware_utc(store) -> None:
    beijing = dt.timezone(dt.timedelta(hours=8))
    taken = dt.datetime(2024, 9, 1, 10, 30, tzinfo=beijing)
    with store.transaction(actor="t") as tx:
        rnd = Round(name="2024-1", created_at=taken)
        tx.session.add(rnd)
        tx.audit("round.create", "round", None)
    with store.session() as s:
        back = s.scalar(select(Round.created_at))
        at = s.scalar(select(AuditEntry.at).order_by(AuditEntry.id.desc()))
    assert back == taken
    assert back.utcoffset() == dt.timedelta(0)
    assert at.tzinfo is not None
    assert abs(dt.datetime.now(dt.UTC) - at) < dt.timedelta(minutes=5)


def test_concurrent_writers_all_commit(store) -> None:
    """Four threads write at once: every transaction commits (busy_timeout / row locks), none is lost."""
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(10):
                with store.transaction(actor=f"w{k}") as tx:
                    tx.session.add(Round(name=f"r{k}-{i}"))
                    tx.audit("round.create", "round", f"r{k}-{i}")
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Round)) == 40
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.actor.like("w%"))) == 40


def test_read_session_does_not_write(store) -> None:
    with store.session() as s:
        s.add(Round(name="ghost"))
        s.flush()
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Round)) == 0
