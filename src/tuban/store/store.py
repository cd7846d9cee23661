"""The :class:`Store`: one interface over SQLite and PostgreSQL/PostGIS.

Every change runs in :meth:`Store.transaction`, which hands out a SQLAlchemy session
and an :meth:`Transaction.audit` call writing the audit row in the same transaction:
the change and its audit row commit together or not at all. Database errors leave as
errors of the :mod:`tuban.errors` tree.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import shapely
from sqlalchemy import Engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from tuban.errors import (
    ConflictError,
    IntegrityError,
    MigrationError,
    NotFoundError,
    StoreError,
    TubanError,
    UsageError,
)
from tuban.store import importing, seed
from tuban.store.engine import make_engine
from tuban.store.migrate import alembic_config, current_revision, head_revision
from tuban.store.models import AuditEntry, Role, RoleAssignment, RolePermission, User
from tuban.store.permissions import Permissions, build_permissions

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["Store", "Transaction", "jsonable", "open_store", "snapshot"]


def jsonable(value: Any) -> Any:
    """*value* made JSON-safe for audit rows (dates → ISO text, geometries → WKT)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, shapely.Geometry):
        return shapely.to_wkt(value, rounding_precision=9)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


_SNAPSHOT_SKIP = frozenset({"minx", "miny", "maxx", "maxy", "password_hash"})


def snapshot(obj: Any, *, geometry: bool = True) -> dict[str, Any]:
    """A JSON-safe dict of a model instance's columns, for ``before``/``after`` in audit."""
    out: dict[str, Any] = {}
    for col in obj.__table__.columns:
        if col.key in _SNAPSHOT_SKIP or (col.key == "geometry" and not geometry):
            continue
        out[col.key] = jsonable(getattr(obj, col.key))
    return out


@dataclass
class Transaction:
    """One unit of work: :attr:`session` plus :meth:`audit` in the same transaction."""

    session: Session
    actor: str

    def audit(
        self,
        action: str,
        entity: str,
        entity_id: Any = None,
        *,
        before: Any = None,
        after: Any = None,
        round_id: int | None = None,
        division_code: str | None = None,
    ) -> AuditEntry:
        """Add an audit row (server UTC time, this transaction's actor)."""
        entry = AuditEntry(
            at=dt.datetime.now(dt.UTC),
            actor=self.actor,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            round_id=round_id,
            division_code=division_code,
            before=jsonable(before),
            after=jsonable(after),
        )
        self.session.add(entry)
        return entry


def translate_db_error(exc: sa_exc.DBAPIError) -> TubanError:
    """A SQLAlchemy/driver error as an error of the tuban tree."""
    orig = getattr(exc, "orig", None)
    detail = str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
    if isinstance(exc, sa_exc.IntegrityError):
        return IntegrityError(f"the change breaks a database constraint: {detail}")
    if "append-only" in detail:
        return IntegrityError(f"refused: {detail}", hint="audit rows are never changed or deleted")
    if isinstance(orig, sqlite3.OperationalError) and "locked" in detail:
        return ConflictError(
            f"the SQLite store stayed locked by another writer: {detail}",
            hint="retry; for many concurrent users switch to PostgreSQL (TUBAN_DATABASE_URL)",
        )
    return StoreError(f"database error: {detail}")


class Store:
    """The store behind one database URL. Use :func:`open_store`."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine if engine is not None else make_engine(url)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    # -- schema ---------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Alembic upgrade to *revision*, then seed code lists and roles (idempotent)."""
        from alembic import command

        try:
            conn_cm = self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
            with conn_cm as conn, conn.begin():
                command.upgrade(alembic_config(conn), revision)
        except sa_exc.DBAPIError as exc:
            raise MigrationError(
                f"database upgrade to {revision} failed: {translate_db_error(exc)}",
                hint="the database was left at its previous revision",
            ) from exc
        if revision == "head":
            with self.transaction(actor="system") as tx:
                seed.seed_all(tx)

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return current_revision(conn)

    def head_revision(self) -> str:
        return head_revision()

    def check_revision(self) -> None:
        """Raise :class:`MigrationError` unless the schema is at the packaged head."""
        current, head = self.current_revision(), head_revision()
        if current != head:
            raise MigrationError(
                f"database schema is at revision {current or 'empty'}, this tuban needs {head}",
                hint="run `tuban db upgrade`",
            )

    def server_versions(self) -> dict[str, str]:
        """Backend versions, e.g. ``{"PostgreSQL": "15.8", "PostGIS": "3.3.2"}`` or ``{"SQLite": "3.40.1"}``."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                return {"SQLite": str(conn.exec_driver_sql("select sqlite_version()").scalar())}
            out = {"PostgreSQL": str(conn.exec_driver_sql("show server_version").scalar()).split()[0]}
            try:
                out["PostGIS"] = str(conn.exec_driver_sql("select postgis_lib_version()").scalar())
            except sa_exc.DBAPIError:
                out["PostGIS"] = "not installed"
            return out

    def grant_app_role(self, role: str) -> dict[str, list[str]]:
        """Give an existing PostgreSQL login role what the web app and workers need, and no more: read and
        write every table but the audit log, which it may only read and append to (``UPDATE``, ``DELETE`` and
        ``TRUNCATE`` of it refused by the server's privileges, beneath the append-only triggers that an owner
        could drop); sequences; temporary tables (the analyses'); tables a later ``tuban db upgrade`` makes
        (default privileges of the schema's owner, who must be this store's user). Idempotent. Returns the
        privileges by table. The role must not own the tables nor be a superuser: privileges do not restrict
        those. SQLite: :class:`UsageError` (one file: its file permissions are the only access control)."""
        import re

        from sqlalchemy import text

        if self.dialect != "postgresql":
            raise UsageError("database roles are a PostgreSQL feature; this store is a SQLite file",
                             hint="protect the SQLite file with file permissions, or move to PostgreSQL")
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
            raise UsageError(f"{role!r} is not a role name tuban grants to",
                             hint="use lower-case letters, digits and _ (at most 63), starting with a letter or _")
        q = self.engine.dialect.identifier_preparer.quote
        with self.engine.connect() as conn, conn.begin():
            tables: dict[str, str] = {str(t): str(o) for t, o in conn.execute(text(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'spatial_ref_sys' ORDER BY tablename"))}
            if "audit" not in tables:
                raise UsageError("the store has no schema yet", hint="run `tuban db upgrade` first")
            row = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
            if row is None:
                raise UsageError(f"PostgreSQL has no role {role!r}",
                                 hint=f"create it first: CREATE ROLE {role} LOGIN PASSWORD '…'")
            me = str(conn.execute(text("SELECT current_user")).scalar())
            if row[0] or role == me or role in tables.values():
                raise UsageError(f"role {role!r} owns the tables or is a superuser: privileges cannot restrict it",
                                 hint="grant to a separate login role for the web app and workers")
            r, db = q(role), q(str(conn.execute(text("SELECT current_database()")).scalar()))
            granted: dict[str, list[str]] = {}
            conn.exec_driver_sql(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {r}")
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {r}")
            for table in tables:
                if table == "audit":
                    privs = ["SELECT", "INSERT"]
                elif table == "alembic_version":
                    privs = ["SELECT"]
                else:
                    privs = ["SELECT", "INSERT", "UPDATE", "DELETE"]
                conn.exec_driver_sql(f"REVOKE ALL ON TABLE {q(table)} FROM {r}")
                conn.exec_driver_sql(f"GRANT {', '.join(privs)} ON TABLE {q(table)} TO {r}")
                granted[table] = privs
            conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}")
            conn.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE "
                                 f"ON TABLES TO {r}")
            conn.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {r}")
        return granted

    # -- transactions ---------------------------------------------------------------

    @contextmanager
    def transaction(self, *, actor: str) -> Iterator[Transaction]:
        """A write transaction with its audit: commit on success, roll back on any error."""
        if not actor:
            raise UsageError("a transaction needs an actor (username or 'system')")
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            session = Session(bind=conn, expire_on_commit=False, autoflush=True)
            try:
                with conn.begin():
                    yield Transaction(session=session, actor=actor)
                    session.flush()
            except sa_exc.DBAPIError as exc:
                raise translate_db_error(exc) from exc
            finally:
                session.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session (rolled back at the end; write through :meth:`transaction`)."""
        with self.engine.connect() as conn:
            session = Session(bind=conn, expire_on_commit=False)
            try:
                with conn.begin() as trans:
                    yield session
                    trans.rollback()
            except sa_exc.DBAPIError as exc:
                raise translate_db_error(exc) from exc
            finally:
                session.close()

    # -- imports and frames (see tuban.store.importing) -----------------------------

    def import_divisions(self, gdf: gpd.GeoDataFrame, *, actor: str, source: str | None = None) -> int:
        """Upsert divisions by XZQDM (columns XZQDM, XZQMC, geometry in EPSG:4490)."""
        with self.transaction(actor=actor) as tx:
            return importing.import_divisions(tx, gdf, source=source)

    def import_projects(self, gdf: gpd.GeoDataFrame, *, actor: str, source: str | None = None) -> int:
        """Upsert projects by SWC_P_ID; rows sharing an id are one project with several scopes."""
        with self.transaction(actor=actor) as tx:
            return importing.import_projects(tx, gdf, source=source)

    def import_patches(
        self,
        gdf: gpd.GeoDataFrame,
        *,
        round_name: str,
        actor: str,
        source: str | None = None,
        state: str = "issued",
    ) -> int:
        """Add a round's patches (creating the round if missing); QDNM must be unique per round.

        *state* is the PATCH_STATE of the new patches: ``issued`` for a province's file,
        ``detected`` for tuban's own candidates.
        """
        with self.transaction(actor=actor) as tx:
            n = importing.import_patches(tx, gdf, round_name=round_name, source=source, state=state)
        self.refresh_statistics()
        return n

    def refresh_statistics(self) -> None:
        """Let PostgreSQL's planner see a bulk load now (``ANALYZE`` of the patch tables).

        Until autovacuum's next visit, a just-loaded round has no statistics, and the planner
        may answer a county's map view with a bitmap scan that tests each row against the
        county's id array (~110 ms at 5,000 visible patches instead of ~15 ms by primary key).
        SQLite: nothing (its queries are planned without statistics).
        """
        if self.dialect != "postgresql":
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE patches, patch_divisions")

    def divisions_frame(self) -> gpd.GeoDataFrame:
        with self.session() as s:
            return importing.divisions_frame(s)

    def projects_frame(self) -> gpd.GeoDataFrame:
        with self.session() as s:
            return importing.projects_frame(s)

    def patches_frame(self, round_name: str | None = None, *, extra: bool = False) -> gpd.GeoDataFrame:
        """Patches with official UPPERCASE columns; ``extra=True`` adds ``id, round, state, version``."""
        with self.session() as s:
            return importing.patches_frame(s, round_name=round_name, extra=extra)

    def patch_ids_in_bbox(self, round_id: int, bbox: Sequence[float]) -> list[int]:
        """Ids of the round's patches whose envelope meets *bbox* ``(minx, miny, maxx, maxy)``."""
        with self.session() as s:
            return importing.patch_ids_in_bbox(s, round_id, bbox)

    # -- compliance analysis (see tuban.store.analysis) --------------------------------

    def analyse_round(
        self, round_name: str, *, previous_round: str | None = None, actor: str, **options: Any
    ) -> Any:
        """Classify a round's patches and write fields, decisions, lineage and audit (one transaction).

        See :func:`tuban.store.analysis.analyse_round` for *options* (engine, rules, workers,
        overwrite_reviewed) and the returned :class:`~tuban.store.analysis.RoundAnalysis`.
        """
        from tuban.store.analysis import analyse_round

        return analyse_round(self, round_name, previous_round=previous_round, actor=actor, **options)

    # -- users and permissions --------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str,
        *,
        display_name: str | None = None,
        roles: Sequence[tuple[str, str | None]] = (),
        actor: str,
    ) -> int:
        """Create a user with role assignments ``[(role, division_code or None), …]``."""
        from tuban.security import hash_password

        username = username.strip()
        if not username or len(username) > 64:
            raise UsageError(f"username {username!r} must be 1–64 characters")
        pw_hash = hash_password(password)
        with self.transaction(actor=actor) as tx:
            s = tx.session
            if s.scalar(select(User.id).where(User.username == username)) is not None:
                raise ConflictError(f"user {username!r} already exists", hint="choose another username")
            known = set(s.scalars(select(Role.name)))
            for role, _ in roles:
                if role not in known:
                    raise UsageError(f"unknown role {role!r}", hint=f"use one of: {', '.join(sorted(known))}")
            user = User(username=username, display_name=display_name, password_hash=pw_hash, active=True)
            user.assignments = [RoleAssignment(role=r, division_code=(d or None)) for r, d in roles]
            s.add(user)
            s.flush()
            tx.audit(
                "user.create",
                "user",
                user.id,
                after={"username": username, "display_name": display_name, "roles": [list(r) for r in roles]},
            )
            return user.id

    def verify_user(self, username: str, password: str) -> int | None:
        """The user's id if *password* is right and the user active, else ``None``."""
        from tuban.security import dummy_verify, verify_password

        with self.session() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                dummy_verify(password)  # same work for unknown users: no timing oracle
                return None
            if not verify_password(user.password_hash, password) or not user.active:
                return None
            return user.id

    def permissions(self, user_id: int) -> Permissions:
        """What *user_id* may do where (one query)."""
        with self.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFoundError(f"no user with id {user_id}")
            rows = s.execute(
                select(RolePermission.verb, RoleAssignment.division_code)
                .join(RoleAssignment, RoleAssignment.role == RolePermission.role)
                .where(RoleAssignment.user_id == user_id)
            ).all()
            return build_permissions(
                user.id, user.username, rows, active=user.active, auth_epoch=user.auth_epoch
            )


def open_store(url: str) -> Store:
    """Open the store at *url* (``sqlite:///path`` or ``postgresql+psycopg://…``)."""
    return Store(url)
