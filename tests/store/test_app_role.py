"""``tuban db grant-app``: a PostgreSQL login role for the web app and workers, with the audit log append-only by
the server's privileges (beneath the append-only triggers, which the tables' owner could drop)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tuban.errors import UsageError
from tuban.store import open_store


def test_sqlite_has_no_roles(sqlite_store: Any) -> None:
    with pytest.raises(UsageError, match="PostgreSQL feature") as err:
        sqlite_store.grant_app_role("tuban_app")
    assert "file permissions" in (err.value.hint or "")


def test_the_app_role_works_the_store_and_only_appends_to_the_audit(postgis_url: str) -> None:
    with open_store(postgis_url) as store:
        with pytest.raises(UsageError, match="no schema yet"):
            store.grant_app_role("tuban_app")
        store.upgrade()
        _app_role(store)


def _app_role(store: Any) -> None:
    role, password = f"tuban_app_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with pytest.raises(UsageError, match=f"PostgreSQL has no role '{role}'"):
        store.grant_app_role(role)
    with pytest.raises(UsageError, match="not a role name"):
        store.grant_app_role("app; DROP TABLE audit")
    with store.engine.connect() as conn, conn.begin():
        owner = str(conn.execute(text("SELECT current_user")).scalar())
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        with pytest.raises(UsageError, match="owns the tables or is a superuser"):
            store.grant_app_role(owner)
        granted = store.grant_app_role(role)
        assert granted["audit"] == ["SELECT", "INSERT"]
        assert granted["alembic_version"] == ["SELECT"]
        assert granted["patches"] == ["SELECT", "INSERT", "UPDATE", "DELETE"]
        assert store.grant_app_role(role) == granted  # again: the same
        url = make_url(store.engine.url).set(username=role, password=password).render_as_string(hide_password=False)
        with open_store(url) as app:
            app.check_revision()  # reads the schema's revision
            app.upgrade()  # what `tuban serve` does at start: at head, nothing the role may not do
            uid = app.add_user("role-test", "password-role-test", roles=[("province_analyst", None)], actor="test")
            assert app.verify_user("role-test", "password-role-test") == uid
            with app.engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM audit WHERE actor = 'test'")).scalar() or 0
                assert n >= 1  # the change and its audit row, written as the role
                conn.rollback()
                for refused in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit", "TRUNCATE audit",
                                "DROP TABLE patches", "ALTER TABLE audit DISABLE TRIGGER USER"):
                    with pytest.raises(sa_exc.ProgrammingError) as denied:
                        conn.exec_driver_sql(refused)
                    assert getattr(denied.value.orig, "sqlstate", None) == "42501", refused  # insufficient privilege
                    conn.rollback()
                conn.exec_driver_sql("CREATE TEMP TABLE scratch AS SELECT id FROM patches")  # the analyses' temp tables
                conn.rollback()
    finally:
        with store.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")


def test_grant_app_on_a_sqlite_workspace_says_why_not(tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tuban.cli import main

    monkeypatch.delenv("TUBAN_DATABASE_URL", raising=False)
    root = tmp_path / "ws"
    assert main(["init", str(root)]) == 0
    assert main(["db", "upgrade", "-w", str(root)]) == 0
    capsys.readouterr()
    assert main(["db", "grant-app", "tuban_app", "-w", str(root)]) == UsageError.exit_code
    err = capsys.readouterr().err
    assert "database roles are a PostgreSQL feature" in err
    assert "file permissions" in err
