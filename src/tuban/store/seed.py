"""Seed data loaded at every ``upgrade``: code lists and roles (idempotent).

Code list rows are keyed by (list, code, version): a new code-list version adds rows and
keeps the old ones, so labels of old rounds stay readable. Roles are synchronised with
``data/roles.json``: new roles and verbs are added, verbs dropped from the file are
removed (assignments stay). Each change is audited as ``system``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from tuban.codes import codelists
from tuban.store.models import CodeListItem, Role, RolePermission
from tuban.store.permissions import load_roles

if TYPE_CHECKING:
    from tuban.store.store import Transaction

__all__ = ["seed_all", "seed_codelists", "seed_roles"]


def seed_codelists(tx: Transaction) -> int:
    """Insert the packaged code lists' missing rows; return how many were added."""
    cl = codelists()
    s = tx.session
    have = {
        (r.list, r.code): r for r in s.scalars(select(CodeListItem).where(CodeListItem.version == cl.version))
    }
    added = 0
    for name, lst in cl.lists.items():
        for pos, item in enumerate(lst.items):
            row = have.get((name, item.code))
            if row is None:
                s.add(
                    CodeListItem(
                        list=name, code=item.code, zh=item.zh, en=item.en, version=cl.version, position=pos
                    )
                )
                added += 1
            elif (row.zh, row.en, row.position) != (item.zh, item.en, pos):
                row.zh, row.en, row.position = item.zh, item.en, pos
                added += 1
    if added:
        tx.audit("codelists.seed", "codelists", cl.version, after={"version": cl.version, "rows": added})
    return added


def seed_roles(tx: Transaction) -> int:
    """Synchronise roles and their verbs with ``roles.json``; return the number of changes."""
    data = load_roles()
    s = tx.session
    roles = {r.name: r for r in s.scalars(select(Role))}
    perms: dict[str, set[str]] = {}
    for rp in s.scalars(select(RolePermission)):
        perms.setdefault(rp.role, set()).add(rp.verb)
    changes = 0
    for spec in data["roles"]:
        name = spec["name"]
        role = roles.get(name)
        if role is None:
            s.add(Role(name=name, zh=spec["zh"], en=spec["en"]))
            s.flush()
            changes += 1
        elif (role.zh, role.en) != (spec["zh"], spec["en"]):
            role.zh, role.en = spec["zh"], spec["en"]
            changes += 1
        want, have = set(spec["verbs"]), perms.get(name, set())
        for verb in sorted(want - have):
            s.add(RolePermission(role=name, verb=verb))
            changes += 1
        for verb in sorted(have - want):
            s.delete(s.get(RolePermission, (name, verb)))
            changes += 1
    if changes:
        tx.audit(
            "roles.seed", "roles", data["version"], after={"version": data["version"], "changes": changes}
        )
    return changes


def seed_all(tx: Transaction) -> None:
    seed_codelists(tx)
    seed_roles(tx)
