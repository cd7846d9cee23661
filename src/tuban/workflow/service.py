"""Running a service function in its own audited transaction (执行写操作).

``perform(store, actor, fn, *args)`` opens ``store.transaction(actor=…)`` and calls
``fn(tx, actor, *args)``. A stale save (:class:`VersionConflictError`) rolls the change
back, then records the refused attempt in a transaction of its own, so both attempts of
a race are in the audit and the second payload is kept for the reviewer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tuban.store.store import Store, Transaction, jsonable
from tuban.workflow.access import Actor
from tuban.workflow.review import VersionConflictError

__all__ = ["perform"]

T = TypeVar("T")


def perform(store: Store, actor: Actor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(tx, actor, *args, **kwargs)`` in one audited transaction."""
    try:
        with store.transaction(actor=actor.username) as tx:
            return fn(tx, actor, *args, **kwargs)
    except VersionConflictError as exc:
        _record_conflict(store, actor, exc)
        raise


def _record_conflict(store: Store, actor: Actor, exc: VersionConflictError) -> None:
    with store.transaction(actor=actor.username) as tx:
        _audit_conflict(tx, exc)


def _audit_conflict(tx: Transaction, exc: VersionConflictError) -> None:
    tx.audit("patch.conflict", "patch", exc.patch_id,
             before={"based_on_version": exc.based_on, "current_version": exc.current.get("version")},
             after={"submitted": jsonable(exc.submitted)},
             division_code=None)
