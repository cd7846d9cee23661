"""Who acts, and what they may see (访问控制).

Verbs are the rows of ``tuban/store/data/roles.json``. A patch is *visible* for a verb
when any of its divisions (lead county or XZQDM list) is in the user's scope; it is
*writable* only through its lead county (domain.md §6). Anything not visible is
reported as :class:`~tuban.errors.NotFoundError`, exactly as a missing id, so nothing
reveals that another county's item exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, false, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from tuban.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tuban.store.models import Case, Patch, Task
    from tuban.store.permissions import Permissions

__all__ = [
    "Actor",
    "load_case",
    "load_patch",
    "load_round",
    "load_task",
    "patch_divisions",
    "patch_scope_clause",
    "task_scope_clause",
]


@dataclass(frozen=True, slots=True)
class Actor:
    """The acting user: id, username and the rights read from the database this request."""

    user_id: int
    username: str
    perms: Permissions

    def allows(self, verb: str, divisions: Any = None) -> bool:
        return self.perms.allows(verb, divisions)


def patch_divisions(patch: Patch) -> list[str]:
    """Lead county first, then the other XZQDM codes."""
    codes: list[str] = []
    if patch.lead_division_code:
        codes.append(patch.lead_division_code.strip())
    for part in (patch.xzqdm or "").replace("，", ",").replace(";", ",").split(","):
        part = part.strip()
        if part and part not in codes:
            codes.append(part)
    return codes


def _prefixes(scope: frozenset[str]) -> list[str]:
    from tuban.store.permissions import division_prefix

    return sorted({division_prefix(c) for c in scope})


class _IdIn(ColumnElement[bool]):
    """``column IN (subquery)``; on PostgreSQL ``column = ANY(ARRAY(subquery))``.

    PostgreSQL estimates an ``IN`` semi-join over a county's few thousand ids as a large
    fraction of ``patches`` and answers it with a full scan (~90 ms at 100 k patches);
    the array form is evaluated once and probes the primary key (~6 ms).
    """

    inherit_cache = True
    type = Boolean()
    # a predicate, not a boolean value: without this SQLite gets ``id IN (…) = 1``, which
    # its planner cannot answer by rowid probes (a full scan of the round: 40 ms at 100 k)
    _is_implicitly_boolean = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's traversal protocol)
        ("column", InternalTraversal.dp_clauseelement), ("subquery", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any, subquery: Any) -> None:
        self.column = column
        self.subquery = subquery


@compiles(_IdIn)
def _id_in_default(element: _IdIn, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.in_(element.subquery), **kw))


@compiles(_IdIn, "postgresql")
def _id_in_postgresql(element: _IdIn, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    sub = compiler.process(element.subquery.scalar_subquery(), **kw)
    return f"{column} = ANY(ARRAY{sub})"


def patch_scope_clause(actor: Actor, verb: str, *, lead_only: bool = False, round_id: int | None = None) -> Any:
    """A SQL condition on :class:`Patch` rows the actor may *verb* (read: any division).

    Reads go through ``patch_divisions`` (one row per patch and division, kept by triggers):
    county codes compare exactly, city/province prefixes as a range, all on one index
    ``(round_id, division_code, patch_id)`` when *round_id* is given. ``lead_only`` uses
    the lead-county index of ``patches`` instead.
    """
    from sqlalchemy import select
    from sqlalchemy.orm import aliased

    from tuban.store.models import Patch, PatchDivision

    scope = actor.perms.division_scope(verb)
    if scope is None:
        return true()
    if not scope:
        return false()
    prefixes = _prefixes(scope)
    exact = [p for p in prefixes if len(p) == 6]
    if lead_only:
        lead = aliased(Patch)
        column, table_cond = lead.lead_division_code, []
        if round_id is not None:
            table_cond.append(lead.round_id == round_id)
        id_column = lead.id
    else:
        column, id_column = PatchDivision.division_code, PatchDivision.patch_id
        table_cond = [PatchDivision.round_id == round_id] if round_id is not None else []
    conds: list[Any] = []
    if exact:
        conds.append(column.in_(exact))
    for p in prefixes:
        if len(p) != 6:
            conds.append(column.between(p, p + "\uffff"))
    return _IdIn(Patch.id, select(id_column).where(*table_cond, or_(*conds)))


def task_scope_clause(actor: Actor, verb: str) -> Any:
    from tuban.store.models import Task

    scope = actor.perms.division_scope(verb)
    if scope is None:
        return true()
    if not scope:
        return false()
    return or_(*[Task.division_code.like(f"{p}%") for p in _prefixes(scope)])


def _not_found(kind: str, ident: Any) -> NotFoundError:
    return NotFoundError(f"no {kind} with id {ident}")


def load_patch(session: Session, actor: Actor, patch_id: int, verb: str, *, for_update: bool = False) -> Patch:
    """The patch if *actor* may *verb* it; reads need any division, writes the lead county."""
    from tuban.store.models import Patch

    patch = session.get(Patch, patch_id)
    if patch is None:
        raise _not_found("patch", patch_id)
    divisions = patch_divisions(patch)
    if not actor.allows("patch.read", divisions):
        raise _not_found("patch", patch_id)
    if verb != "patch.read":
        lead = divisions[:1] if divisions else None
        if not actor.allows(verb, lead):
            # visible but not writable: the user knows it exists, so a plain refusal
            from tuban.errors import PermissionDeniedError

            raise PermissionDeniedError(
                f"{actor.username} may not {verb} patch {patch.qdnm}",
                hint="only the lead county's staff with this right may change it",
            )
    return patch


def load_round(session: Session, actor: Actor, round_id: int, verb: str = "round.read") -> Any:
    """The round if the actor holds *verb* province-wide or has a task of it in scope."""
    from sqlalchemy import select

    from tuban.store.models import Round, Task

    rnd = session.get(Round, round_id)
    if rnd is None:
        raise _not_found("round", round_id)
    scope = actor.perms.division_scope(verb)
    if scope is None:
        return rnd
    if not scope:
        raise _not_found("round", round_id)
    has_task = session.scalar(
        select(Task.id).where(Task.round_id == round_id, task_scope_clause(actor, verb)).limit(1)
    )
    if has_task is None:
        raise _not_found("round", round_id)
    return rnd


def load_task(session: Session, actor: Actor, task_id: int, verb: str) -> Task:
    from tuban.store.models import Task

    task = session.get(Task, task_id)
    if task is None or not actor.allows("round.read", task.division_code):
        raise _not_found("task", task_id)
    if not actor.allows(verb, task.division_code):
        from tuban.errors import PermissionDeniedError

        raise PermissionDeniedError(f"{actor.username} may not {verb} task {task_id}")
    return task


def load_case(session: Session, actor: Actor, case_id: int, verb: str) -> Case:
    from tuban.store.models import Case

    case = session.get(Case, case_id)
    if case is None:
        raise _not_found("case", case_id)
    load_patch(session, actor, case.patch_id, "patch.read")
    try:
        load_patch(session, actor, case.patch_id, verb)
    except NotFoundError:
        raise _not_found("case", case_id) from None
    return case
