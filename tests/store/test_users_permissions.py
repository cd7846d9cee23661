"""Users, passwords and permissions as data."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from sqlalchemy import select

from tuban.errors import ConflictError, NotFoundError, UsageError
from tuban.security import hash_password, needs_rehash, verify_password
from tuban.store.models import Role, RolePermission, User


def test_roles_seeded_from_data_file(store) -> None:
    spec = json.loads(resources.files("tuban.store").joinpath("data/roles.json").read_text("utf-8"))
    with store.session() as s:
        roles = set(s.scalars(select(Role.name)))
        perms = {(p.role, p.verb) for p in s.scalars(select(RolePermission))}
    assert roles == {r["name"] for r in spec["roles"]}
    assert perms == {(r["name"], v) for r in spec["roles"] for v in r["verbs"]}


def test_add_user_and_verify_password(store) -> None:
    uid = store.add_user(
        "张三",
        "密码-correct-horse",
        display_name="张三（县）",
        roles=[("county_reviewer", "410811")],
        actor="admin",
    )
    assert store.verify_user("张三", "密码-correct-horse") == uid
    assert store.verify_user("张三", "wrong-password") is None
    assert store.verify_user("nobody", "密码-correct-horse") is None
    with store.session() as s:
        user = s.get(User, uid)
        assert user.password_hash.startswith("$argon2id$")
        assert "密码" not in user.password_hash
    with pytest.raises(ConflictError, match="already exists"):
        store.add_user("张三", "another-password", actor="admin")
    with pytest.raises(UsageError, match="unknown role"):
        store.add_user("李四", "another-password", roles=[("superuser", None)], actor="admin")
    with pytest.raises(UsageError, match="password"):
        store.add_user("王五", "short", actor="admin")


def test_inactive_user_cannot_log_in_or_act(store) -> None:
    uid = store.add_user("a", "password-a-long", roles=[("viewer", "410811")], actor="t")
    with store.transaction(actor="t") as tx:
        tx.session.get(User, uid).active = False
    assert store.verify_user("a", "password-a-long") is None
    assert not store.permissions(uid).allows("patch.read", "410811")


def test_permissions_scoped_by_division(store, personas) -> None:
    a, b, p = (store.permissions(personas[n]) for n in ("a_staff", "b_staff", "p_admin"))
    assert a.allows("patch.review", "410811")
    assert not a.allows("patch.review", "410822")
    assert not a.allows("patch.determine", "410811")  # county_reviewer cannot determine
    assert not a.allows("user.manage", "410811")
    assert a.allows("patch.read", ["410822", "410811"])  # a patch spanning counties is visible to each
    assert a.allows("patch.read", "410822,410811")
    assert not a.allows("patch.read", None)
    assert a.division_scope("patch.read") == {"410811"}
    assert a.division_scope("audit.read") == frozenset()
    assert b.allows("patch.review", "410822")
    assert not b.allows("patch.review", "410811")
    assert p.division_scope("patch.read") is None
    assert p.allows("user.manage", "410822")
    assert p.allows("round.create", None)
    viewer = store.permissions(personas["viewer"])
    assert viewer.allows("patch.read", "410811")
    assert not viewer.allows("patch.edit", "410811")


def test_city_and_province_assignments(store) -> None:
    city = store.add_user("city", "password-city", roles=[("county_admin", "410800")], actor="t")
    prov = store.add_user("prov", "password-prov", roles=[("viewer", "410000")], actor="t")
    pc = store.permissions(city)
    assert pc.allows("patch.edit", "410811")
    assert pc.allows("patch.edit", "410822")
    assert not pc.allows("patch.edit", "410911")
    assert store.permissions(prov).division_scope("patch.read") is None
    with pytest.raises(NotFoundError):
        store.permissions(99999)


def test_password_hash_helpers() -> None:
    h = hash_password("correct horse battery")
    assert verify_password(h, "correct horse battery")
    assert not verify_password(h, "correct horse battery ")
    assert not verify_password("not-a-hash", "x" * 10)
    assert needs_rehash("not-a-hash")
