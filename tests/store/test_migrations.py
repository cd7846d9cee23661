"""Migrations from empty, revision checks, schema vs models, SQLite pragmas."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from tuban.errors import MigrationError
from tuban.store import open_store
from tuban.store.models import Base


def test_upgrade_from_empty_creates_every_table(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.current_revision() is None
        with pytest.raises(MigrationError, match="tuban db upgrade"):
            store.check_revision()
        store.upgrade()
        assert store.current_revision() == store.head_revision()
        store.check_revision()
        tables = set(inspect(store.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        if store.dialect == "sqlite":
            assert {"patches_rtree", "scopes_rtree", "divisions_rtree"} <= tables


def test_upgrade_is_idempotent_and_seeds_once(store_url: str) -> None:
    with open_store(store_url) as store:
        store.upgrade()
        with store.engine.connect() as conn:
            counts = [
                conn.execute(text(f"select count(*) from {t}")).scalar()
                for t in ("codelists", "role_permissions", "audit")
            ]
        store.upgrade()
        with store.engine.connect() as conn:
            again = [
                conn.execute(text(f"select count(*) from {t}")).scalar()
                for t in ("codelists", "role_permissions", "audit")
            ]
    assert counts == again
    assert counts[0] > 50
    assert counts[1] > 20
    assert counts[2] == 2  # one audit row for the code lists, one for the roles


@pytest.mark.filterwarnings("ignore:Did not recognize type 'geometry':sqlalchemy.exc.SAWarning")
def test_migration_matches_models(store) -> None:
    """The hand-written migration and the models describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)

    def relevant(d: object) -> bool:
        op = d[0] if isinstance(d, tuple) else d[0][0]
        name = str(d)
        # the R*Tree tables, spatial indexes and PostGIS's own tables are ours on purpose
        return not (
            (op == "remove_table" and ("_rtree" in name or "spatial_ref_sys" in name))
            or (op == "remove_index" and "_geometry_gist" in name)
        )

    assert [d for d in diff if relevant(d)] == []


def test_sqlite_pragmas_on_every_connection(sqlite_store) -> None:
    for _ in range(2):
        with sqlite_store.engine.connect() as conn:
            values = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        assert values == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": 2}


def test_server_versions(store) -> None:
    versions = store.server_versions()
    if store.dialect == "sqlite":
        assert versions["SQLite"].startswith("3.")
    else:
        assert versions["PostGIS"][0].isdigit()
        assert versions["PostgreSQL"][0].isdigit()


def test_unsupported_url_is_a_config_error() -> None:
    from tuban.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported database backend"):
        open_store("mysql://x@localhost/db")
    with pytest.raises(ConfigError, match="needs a file path"):
        open_store("sqlite://")


def test_jobs_queued_before_0005_keep_their_order_at_priority_0(store_url: str) -> None:
    """A store at 0004 with queued jobs, upgraded: they get priority 0 and are claimed as before (oldest first),
    after a job queued later at a higher priority."""
    from tuban.workflow import jobs

    with open_store(store_url) as store:
        store.upgrade("0004_detection_jobs")
        with store.engine.begin() as conn:
            for name in ("first.gpkg", "second.gpkg"):
                conn.execute(text("INSERT INTO detection_jobs (state, output, params, attempts, max_attempts, "
                                  "cancel_requested, created_by, created_at) VALUES ('queued', :o, '{}', 0, 3, "
                                  ":f, 'p_admin', CURRENT_TIMESTAMP)"), {"o": name, "f": False})
        store.upgrade()
        assert [j["priority"] for j in jobs.list_jobs(store)] == [0, 0]
        with store.transaction(actor="test") as tx:
            from tuban.store.models import DetectionJob

            tx.session.add(DetectionJob(state="queued", output="late.gpkg", params={}, attempts=0, max_attempts=3,
                                        priority=5, cancel_requested=False, created_by="p_admin"))
        order = []
        while (claim := jobs.claim_job(store, "w", lease_s=30)) is not None:
            order.append(claim.output)
        assert order == ["late.gpkg", "first.gpkg", "second.gpkg"]
