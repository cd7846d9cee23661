"""Permissions as data (权限): roles are rows of verbs, assignments are scoped to divisions.

A user's :class:`Permissions` is built from their role assignments in one query. A
division scope is a set of codes; an assignment to a city (``410800``) also covers its
counties (``4108xx``), an assignment to the whole province (``NULL`` division or a
province code ``xx0000``) covers everything.

>>> p = Permissions(user_id=1, username="a", grants={"patch.read": frozenset({"410800"})})
>>> p.allows("patch.read", "410811"), p.allows("patch.read", "410900"), p.allows("patch.edit", "410811")
(True, False, False)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["EVERYWHERE", "Permissions", "division_prefix", "load_roles", "scope_covers"]

#: marker in a grant set: the verb holds for every division
EVERYWHERE = "*"


def division_prefix(code: str) -> str:
    """The prefix a division code stands for: ``410000`` → ``41``, ``410800`` → ``4108``.

    A county code (last two digits not ``00``) stands for itself.
    """
    code = code.strip()
    if len(code) == 6 and code.isdigit():
        if code.endswith("0000"):
            return code[:2]
        if code.endswith("00"):
            return code[:4]
    return code


def is_province_code(code: str | None) -> bool:
    return code is None or code.strip() == "" or (len(code) == 6 and code.endswith("0000"))


def scope_covers(scope_code: str, division_code: str) -> bool:
    """Whether an assignment to *scope_code* covers *division_code* (same or a child)."""
    return division_code.strip().startswith(division_prefix(scope_code))


@dataclass(frozen=True)
class Permissions:
    """What one user may do where. Build with :meth:`tuban.store.Store.permissions`."""

    user_id: int
    username: str
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    active: bool = True
    auth_epoch: int = 0

    @property
    def verbs(self) -> frozenset[str]:
        return frozenset(self.grants) if self.active else frozenset()

    def division_scope(self, verb: str) -> frozenset[str] | None:
        """``None`` when *verb* holds everywhere, else the set of division codes (maybe empty).

        A code in the set also covers its children (see :func:`scope_covers`).
        """
        if not self.active:
            return frozenset()
        codes = self.grants.get(verb, frozenset())
        if EVERYWHERE in codes:
            return None
        return codes

    def allows(self, verb: str, division_code: str | Iterable[str] | None = None) -> bool:
        """Whether the user may do *verb* in *division_code*.

        *division_code* may be one code, several codes (allowed if any is covered; a
        patch spanning counties is visible to each) or ``None`` (allowed only with a
        province-wide grant).
        """
        scope = self.division_scope(verb)
        if scope is None:
            return True
        if not scope or division_code is None:
            return False
        codes = [division_code] if isinstance(division_code, str) else list(division_code)
        codes = [c for part in codes for c in str(part).split(",") if c.strip()]
        return any(scope_covers(s, c) for s in scope for c in codes)


def build_permissions(
    user_id: int, username: str, rows: Iterable[tuple[str, str | None]], *, active: bool, auth_epoch: int
) -> Permissions:
    """Fold ``(verb, division_code)`` rows into :class:`Permissions`."""
    grants: dict[str, set[str]] = {}
    for verb, code in rows:
        grants.setdefault(verb, set()).add(EVERYWHERE if is_province_code(code) else str(code).strip())
    return Permissions(
        user_id=user_id,
        username=username,
        grants={verb: frozenset(codes) for verb, codes in grants.items()},
        active=active,
        auth_epoch=auth_epoch,
    )


@cache
def load_roles() -> dict[str, Any]:
    """The packaged role definitions (``tuban/store/data/roles.json``)."""
    text = resources.files("tuban.store").joinpath("data/roles.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    known = set(data["verbs"])
    for role in data["roles"]:
        unknown = set(role["verbs"]) - known
        if unknown:
            raise ValueError(f"roles.json: role {role['name']} uses undeclared verbs {sorted(unknown)}")
    return data
