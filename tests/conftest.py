"""Shared fixtures for the whole suite.

Backends
    ``store_url``   an EMPTY database (no schema), parametrized ``sqlite`` / ``postgis``
    ``store``       an upgraded, seeded, otherwise empty :class:`tuban.store.Store`, same params
    ``postgis_url`` a fresh empty PostGIS database (extension installed, no schema)
    ``sqlite_store`` an upgraded store on SQLite only

PostGIS comes from ``$TUBAN_TEST_POSTGRES_URL`` (``scripts/run-tests`` / ``make test`` start a
throwaway server; for development: ``export TUBAN_TEST_POSTGRES_URL=$(scripts/pg-test-cluster
start /tmp/pg-dev)``). Without it PostGIS tests are skipped with a reason, unless
``$TUBAN_REQUIRE_POSTGIS`` is set: then they fail. Each xdist worker builds one template
database (PostGIS + migrations + seeds) and every test gets ``CREATE DATABASE … TEMPLATE``,
dropped afterwards.

Other helpers: ``personas`` (users p_admin, a_admin, a_staff, b_staff, viewer in province 41,
counties A=410811 and B=410822), ``blob_store``, ``shared_data_dir``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

COUNTY_A = "410811"
COUNTY_B = "410822"
PROVINCE = "410000"

BACKENDS = ["sqlite", "postgis"]


# -- fast password hashing in tests --------------------------------------------------


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """Argon2id with tiny costs: the same code paths, milliseconds instead of ~100 ms a hash."""
    from argon2 import PasswordHasher

    import tuban.security as security

    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    original = security._hasher
    security._hasher = lambda: fast  # type: ignore[assignment]
    security._dummy_hash.cache_clear()
    yield
    security._hasher = original  # type: ignore[assignment]
    security._dummy_hash.cache_clear()


# -- PostGIS server ------------------------------------------------------------------------


def _postgres_admin_url() -> str | None:
    url = os.environ.get("TUBAN_TEST_POSTGRES_URL", "").strip()
    if url:
        return url
    message = "PostGIS tests need TUBAN_TEST_POSTGRES_URL (scripts/run-tests or make test start a server)"
    if os.environ.get("TUBAN_REQUIRE_POSTGIS"):
        pytest.fail(f"TUBAN_REQUIRE_POSTGIS is set but {message}", pytrace=False)
    pytest.skip(message)
    return None  # pragma: no cover


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


class _PostgresServer:
    """Creates and drops test databases on the server of ``$TUBAN_TEST_POSTGRES_URL``."""

    def __init__(self, admin_url: str, worker: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.admin_url = admin_url
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        tag = f"{worker}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.empty_template = f"tuban_tpl_empty_{tag}"
        self.store_template = f"tuban_tpl_store_{tag}"
        self._built: set[str] = set()

    def _exec(self, sql: str) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text(sql))

    def _template(self, kind: str) -> str:
        name = self.empty_template if kind == "empty" else self.store_template
        if name in self._built:
            return name
        if kind == "store":
            base = self._template("empty")
            self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{base}"')
            from tuban.store import open_store

            with open_store(_with_database(self.admin_url, name)) as store:
                store.upgrade()
        else:
            self._exec(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
            from sqlalchemy import create_engine, text
            from sqlalchemy.pool import NullPool

            eng = create_engine(_with_database(self.admin_url, name), poolclass=NullPool)
            with eng.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            eng.dispose()
        self._built.add(name)
        return name

    def create(self, kind: str) -> str:
        """A new database copied from the ``empty`` or ``store`` template; returns its URL."""
        name = f"tuban_t_{uuid.uuid4().hex[:16]}"
        self._exec(f'CREATE DATABASE "{name}" TEMPLATE "{self._template(kind)}"')
        return _with_database(self.admin_url, name)

    def drop(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self._exec(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def close(self) -> None:
        for name in (self.store_template, self.empty_template):
            if name in self._built:
                self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.engine.dispose()


@pytest.fixture(scope="session")
def _postgres_server(worker_id: str) -> Iterator[_PostgresServer | None]:
    url = os.environ.get("TUBAN_TEST_POSTGRES_URL", "").strip()
    if not url:
        yield None
        return
    server = _PostgresServer(url, worker_id)
    yield server
    server.close()


@pytest.fixture
def postgis_url(_postgres_server: _PostgresServer | None) -> Iterator[str]:
    """A fresh, empty PostGIS database (the extension installed, no tuban schema)."""
    _postgres_admin_url()  # skips or fails when no server is configured
    assert _postgres_server is not None
    url = _postgres_server.create("empty")
    yield url
    _postgres_server.drop(url)


# -- SQLite --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tuban.store import open_store

    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    with open_store(f"sqlite:///{path}") as store:
        store.upgrade()
    for suffix in ("-wal", "-shm"):  # the last connection closed: the WAL is checkpointed
        assert not Path(f"{path}{suffix}").exists() or Path(f"{path}{suffix}").stat().st_size == 0
    return path


@pytest.fixture
def sqlite_store(_sqlite_template: Path, tmp_path: Path) -> Iterator[object]:
    """An upgraded store on SQLite (a copy of the session's migrated template)."""
    from tuban.store import open_store

    path = tmp_path / "tuban.sqlite"
    shutil.copyfile(_sqlite_template, path)
    with open_store(f"sqlite:///{path}") as store:
        yield store


# -- both backends ----------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgis"``: tests using it run on both backends."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, _postgres_server: _PostgresServer | None) -> Iterator[str]:
    """The URL of an EMPTY database (no schema) on the current backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    _postgres_admin_url()
    assert _postgres_server is not None
    url = _postgres_server.create("empty")
    yield url
    _postgres_server.drop(url)


@pytest.fixture
def store(
    backend: str, _sqlite_template: Path, tmp_path: Path, _postgres_server: _PostgresServer | None
) -> Iterator[object]:
    """An upgraded, seeded, otherwise empty :class:`tuban.store.Store` on the current backend."""
    from tuban.store import open_store

    if backend == "sqlite":
        path = tmp_path / "tuban.sqlite"
        shutil.copyfile(_sqlite_template, path)
        with open_store(f"sqlite:///{path}") as st:
            yield st
        return
    _postgres_admin_url()
    assert _postgres_server is not None
    url = _postgres_server.create("store")
    try:
        with open_store(url) as st:
            yield st
    finally:
        _postgres_server.drop(url)


@pytest.fixture
def personas(store: object) -> dict[str, int]:
    """Users of reliability.md's fixture: ``{username: user_id}``.

    p_admin (province_admin, whole province), a_admin (county_admin, A), a_staff
    (county_reviewer, A), b_staff (county_reviewer, B), viewer (viewer, A); password
    ``password-<username>``.
    """
    people = {
        "p_admin": [("province_admin", None)],
        "a_admin": [("county_admin", COUNTY_A)],
        "a_staff": [("county_reviewer", COUNTY_A)],
        "b_staff": [("county_reviewer", COUNTY_B)],
        "viewer": [("viewer", COUNTY_A)],
    }
    return {
        name: store.add_user(name, f"password-{name}", roles=roles, actor="test")  # type: ignore[attr-defined]
        for name, roles in people.items()
    }


# -- other shared helpers --------------------------------------------------------------------


@pytest.fixture
def blob_store(tmp_path: Path) -> object:
    from tuban.blobs import BlobStore

    return BlobStore(tmp_path / "blobs")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``$TUBAN_SHARED_DATA`` (default ``../shared/data``); missing → fail under CI=true, else skip."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("TUBAN_SHARED_DATA", "") or default)
    if not path.is_dir():
        message = f"shared data folder {path} not found (set TUBAN_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


# -- markers -------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that touches PostGIS with ``postgis`` (select with ``-m postgis``)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        uses_pg = "postgis_url" in getattr(item, "fixturenames", ())
        if callspec is not None and callspec.params.get("backend") == "postgis":
            uses_pg = True
        if uses_pg:
            item.add_marker(pytest.mark.postgis)


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Seed 0 tiny S2 scene (tests/sim, tests/demo): every registry scenario appears in it."""
    from tuban.sim import make_scene

    return make_scene(tmp_path_factory.mktemp("scene") / "s", seed=0, size="tiny")
