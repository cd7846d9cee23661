"""The store's tables (SQLAlchemy 2 declarative models).

Official fields of domain.md §3 are columns named after :mod:`tuban.fields` in lower
case (``QDNM`` → ``qdnm``); geometries are shapely objects in CGCS2000 (EPSG:4490).
The schema itself is created by the Alembic migrations in ``tuban/store/migrations``,
never by ``metadata.create_all``; a test checks the two agree.

Tables::

    divisions ─┐            rounds ─┬─ patches ─┬─ patch_lineage (split / merge / previous_round)
    projects ── scopes             │           ├─ decisions (suspected / confirmed BYD)
                                   └─ tasks    ├─ reviews (office / field), comments, photos
                                               └─ cases ── case_events
    users ── role_assignments ── roles ── role_permissions
    codelists        audit (append-only: triggers refuse UPDATE/DELETE)
    detection_jobs   (detections run by ``tuban worker`` under a lease)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tuban.store.geometry import BBoxMixin, UTCDateTime

__all__ = [
    "AuditEntry",
    "Base",
    "Case",
    "CaseEvent",
    "CodeListItem",
    "Comment",
    "Decision",
    "DetectionJob",
    "Division",
    "Patch",
    "PatchDivision",
    "PatchLineage",
    "Photo",
    "Project",
    "Review",
    "Role",
    "RoleAssignment",
    "RolePermission",
    "Round",
    "Scope",
    "Task",
    "User",
    "display_geojson",
    "field_column",
    "overview_geojson",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Server time in UTC (timezone-aware)."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


def field_column(name: str) -> str:
    """The column name of an official field code (``QDNM`` → ``qdnm``)."""
    return name.lower()


TZ = UTCDateTime()


class Division(BBoxMixin, Base):
    """An administrative division (行政区划): province, city or county."""

    __tablename__ = "divisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True, comment="XZQDM 行政区划代码")
    name: Mapped[str] = mapped_column(String(100), comment="XZQMC 行政区划名称")
    level: Mapped[str | None] = mapped_column(String(16))  # province | city | county
    parent_code: Mapped[str | None] = mapped_column(String(12), index=True)
    source: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow, onupdate=utcnow)


class Project(Base):
    """A production/construction project (生产建设项目) with its official fields (domain.md §3).

    ``approved`` is true when an approval number (RP_NUM 批复文号) is present. A project has
    zero (无红线), one or several scopes.
    """

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    swc_p_id: Mapped[str | None] = mapped_column(String(64), unique=True, comment="SWC_P_ID 项目编号")
    pro_name: Mapped[str] = mapped_column(String(200), comment="PRO_NAME 项目名称")
    cs_unit: Mapped[str | None] = mapped_column(String(200), comment="CS_UNIT 建设单位")
    rp_agnt: Mapped[str | None] = mapped_column(String(200), comment="RP_AGNT 批复机构")
    rp_num: Mapped[str | None] = mapped_column(String(100), comment="RP_NUM 批复文号")
    rp_time: Mapped[dt.date | None] = mapped_column(Date, comment="RP_TIME 批复时间")
    pro_type: Mapped[str | None] = mapped_column(String(64), comment="PRO_TYPE 项目类型")
    pro_cate: Mapped[str | None] = mapped_column(String(64), comment="PRO_CATE 项目类别")
    pro_nat: Mapped[str | None] = mapped_column(String(64), comment="PRO_NAT 建设性质")
    pro_level: Mapped[str | None] = mapped_column(String(64), comment="PRO_LEVEL 立项级别")
    cst_state: Mapped[str | None] = mapped_column(String(64), comment="CST_STATE 建设状态")
    ivv_cnty: Mapped[str | None] = mapped_column(String(200), comment="IVV_CNTY 涉及县")
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow, onupdate=utcnow)
    scopes: Mapped[list[Scope]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="Scope.id"
    )


class Scope(BBoxMixin, Base):
    """A project's prevention-responsibility scope (防治责任范围) or schematic scope."""

    __tablename__ = "scopes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    vec_type: Mapped[str | None] = mapped_column(String(64), comment="VEC_TYPE 矢量类型")
    project: Mapped[Project] = relationship(back_populates="scopes")


class Round(Base):
    """A supervision round (监管期次), e.g. ``2024-1``."""

    __tablename__ = "rounds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    period: Mapped[str | None] = mapped_column(String(16))  # interpretation period YYYYMM
    field_start: Mapped[dt.date | None] = mapped_column(Date)
    field_end: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(32), default="open")
    imagery: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"before": cog, "after": cog}
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class Patch(BBoxMixin, Base):
    """A disturbance patch (扰动图斑) of one round, with its official fields (domain.md §3).

    ``state`` is a PATCH_STATE code (domain.md §6); ``version`` is bumped by every edit and
    checked against a client's ``based_on_version`` (optimistic locking).
    """

    __tablename__ = "patches"
    __table_args__ = (UniqueConstraint("round_id", "qdnm"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="RESTRICT"), index=True)
    qdnm: Mapped[str] = mapped_column(String(64), comment="QDNM 图斑编号")
    qtype: Mapped[str | None] = mapped_column(String(64), comment="QTYPE 扰动类型")
    qarea: Mapped[float | None] = mapped_column(Float, comment="QAREA 扰动面积 ha")
    earea: Mapped[float | None] = mapped_column(Float, comment="EAREA 超出防治责任范围面积 ha")
    qdcs: Mapped[str | None] = mapped_column(String(64), comment="QDCS 建设状态")
    qdtype: Mapped[str | None] = mapped_column(String(64), comment="QDTYPE 扰动变化类型")
    byd: Mapped[str | None] = mapped_column(String(64), comment="BYD 扰动合规性")
    isreview: Mapped[str | None] = mapped_column(String(1), comment="ISREVIEW 是否现场复核")
    isfocus: Mapped[str | None] = mapped_column(String(1), comment="ISFOCUS 是否重点监管")
    xzqdm: Mapped[str | None] = mapped_column(String(200), comment="XZQDM 涉及县行政区划代码")
    address: Mapped[str | None] = mapped_column(String(100), comment="ADDRESS 详细地址")
    problem: Mapped[str | None] = mapped_column(String(1000), comment="PROBLEM 问题")
    proposal: Mapped[str | None] = mapped_column(String(1000), comment="PROPOSAL 建议")
    memo: Mapped[str | None] = mapped_column(String(1000), comment="MEMO 备注")
    prid: Mapped[str | None] = mapped_column(String(64), comment="PRID 关联项目编号")
    prnm: Mapped[str | None] = mapped_column(String(200), comment="PRNM 关联项目名称")
    serosion: Mapped[str | None] = mapped_column(String(64), comment="SEROSION 土壤侵蚀强度")
    lead_division_code: Mapped[str | None] = mapped_column(String(12), index=True)
    state: Mapped[str] = mapped_column(String(32), default="issued")
    version: Mapped[int] = mapped_column(Integer, default=1)
    detection: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(Text)
    display_geojson: Mapped[str | None] = mapped_column(
        Text, comment="the outline as GeoJSON, 6 decimals (map display; NULL = compute from geometry)")
    overview_geojson: Mapped[str | None] = mapped_column(
        Text, comment="the outline simplified by 1e-4 degree, 5 decimals (map below zoom 13; NULL = compute)")
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow, onupdate=utcnow)
    round: Mapped[Round] = relationship()


#: decimal places of :attr:`Patch.display_geojson` (1e-6 degree ≈ 0.1 m)
DISPLAY_DECIMALS = 6
#: simplification tolerance (degrees, ≈ 10 m) and decimals of :attr:`Patch.overview_geojson`
OVERVIEW_TOLERANCE = 1e-4
OVERVIEW_DECIMALS = 5
#: the map asks for overview outlines below this zoom (a pixel is ≥ 1.7e-4 degree there)
OVERVIEW_MAX_ZOOM = 13.0


def display_geojson(geoms: Any) -> list[str | None]:
    """GeoJSON geometry texts rounded to :data:`DISPLAY_DECIMALS` (``None`` for missing ones).

    The map's patch layer sends these as they are. PostGIS computes the same column with
    ``ST_AsGeoJSON(geometry, 6)`` in a trigger (migration 0002); on SQLite the ORM fills
    it on every write of the geometry and readers compute it where it is ``NULL``.
    """
    return _geojson_texts(geoms, decimals=DISPLAY_DECIMALS, tolerance=None)


def overview_geojson(geoms: Any) -> list[str | None]:
    """Overview outlines: simplified by :data:`OVERVIEW_TOLERANCE` keeping topology, rounded
    to :data:`OVERVIEW_DECIMALS` (``None`` for missing ones).

    PostGIS computes the same column with ``ST_AsGeoJSON(ST_SimplifyPreserveTopology(geometry,
    1e-4), 5)`` in the display trigger (migration 0003); SQLite as for :func:`display_geojson`.
    """
    return _geojson_texts(geoms, decimals=OVERVIEW_DECIMALS, tolerance=OVERVIEW_TOLERANCE)


def _geojson_texts(geoms: Any, *, decimals: int, tolerance: float | None) -> list[str | None]:
    import numpy as np
    import shapely

    arr = np.asarray(geoms, dtype=object)
    out: list[str | None] = [None] * len(arr)
    ok: np.ndarray = np.flatnonzero(~shapely.is_missing(arr) & ~shapely.is_empty(arr)) if len(arr) else np.zeros(0, int)
    if len(ok):
        picked = arr[ok]
        if tolerance:
            picked = shapely.simplify(picked, tolerance, preserve_topology=True)
        rounded = shapely.set_precision(picked, 10.0**-decimals, mode="pointwise")
        for i, text in zip(ok, shapely.to_geojson(rounded), strict=True):
            out[int(i)] = str(text)
    return out


@event.listens_for(Patch, "before_insert")
@event.listens_for(Patch, "before_update")
def _patch_display_before_write(mapper: Any, connection: Any, target: Patch) -> None:
    if connection.dialect.name == "postgresql":
        return  # the trigger computes it in the database
    from sqlalchemy import inspect as sa_inspect

    state = sa_inspect(target)
    if state.persistent and not state.attrs.geometry.history.has_changes():
        return
    target.display_geojson = display_geojson([target.geometry])[0]
    target.overview_geojson = overview_geojson([target.geometry])[0]


class PatchDivision(Base):
    """One division of a patch (lead county or an XZQDM code): who may see it (图斑涉及行政区).

    Written only by database triggers on ``patches`` (migration 0002) from
    ``lead_division_code`` and ``xzqdm``; read by the visibility clause
    (:func:`tuban.workflow.access.patch_scope_clause`).
    """

    __tablename__ = "patch_divisions"
    __table_args__ = (Index(None, "round_id", "division_code", "patch_id"),)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), primary_key=True)
    round_id: Mapped[int] = mapped_column(Integer)
    division_code: Mapped[str] = mapped_column(String(12), primary_key=True)


class PatchLineage(Base):
    """Split / merge / previous-round links between patches (图斑谱系)."""

    __tablename__ = "patch_lineage"
    __table_args__ = (UniqueConstraint("parent_id", "child_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # split | merge | previous_round
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class Decision(Base):
    """A compliance decision (合规性判定): suspected (office/remote sensing) or confirmed (认定)."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # suspected | confirmed
    byd: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str | None] = mapped_column(String(32))
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    explanation_zh: Mapped[str | None] = mapped_column(Text)
    explanation_en: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class Task(Base):
    """Issuing a round's patches to a county (下发任务)."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("round_id", "division_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    division_code: Mapped[str] = mapped_column(String(12), index=True)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(32), default="issued")
    issued_by: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class Review(Base):
    """An office (内业) or field (外业) review of a patch; ``client_id`` makes retries idempotent."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # office | field
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    based_on_version: Mapped[int | None] = mapped_column(Integer)
    conflict: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)


class Photo(Base):
    """A field photo (现场照片): the blob by sha256 plus where, which way and when."""

    __tablename__ = "photos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(String(64))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    bearing: Mapped[float | None] = mapped_column(Float)  # 方位角, degrees from north
    taken_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    received_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    exif: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Case(Base):
    """Enforcement case (查处) after a confirmed violation: investigating → rectifying → closed."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="RESTRICT"), index=True)
    state: Mapped[str] = mapped_column(String(32), default="investigating")
    deadline: Mapped[dt.date | None] = mapped_column(Date)
    opened_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseEvent.id"
    )


class CaseEvent(Base):
    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    documents: Mapped[list[Any]] = mapped_column(JSON, default=list)  # blob sha256s
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    case: Mapped[Case] = relationship(back_populates="events")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)  # bump to invalidate sessions
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    assignments: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class Role(Base):
    __tablename__ = "roles"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    zh: Mapped[str] = mapped_column(String(64))
    en: Mapped[str] = mapped_column(String(64))
    permissions: Mapped[list[RolePermission]] = relationship(cascade="all, delete-orphan")


class RolePermission(Base):
    __tablename__ = "role_permissions"
    role: Mapped[str] = mapped_column(ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True)
    verb: Mapped[str] = mapped_column(String(64), primary_key=True)


class RoleAssignment(Base):
    """A user holds a role over a division (NULL or a province code = the whole province)."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("user_id", "role", "division_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(ForeignKey("roles.name", ondelete="RESTRICT"))
    division_code: Mapped[str | None] = mapped_column(String(12))
    user: Mapped[User] = relationship(back_populates="assignments")


class CodeListItem(Base):
    __tablename__ = "codelists"
    __table_args__ = (UniqueConstraint("list", "code", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list: Mapped[str] = mapped_column(String(32), index=True)
    code: Mapped[str] = mapped_column(String(64))
    zh: Mapped[str] = mapped_column(String(200))
    en: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntry(Base):
    """One row of the append-only audit log (审计日志), written in the changing transaction."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow, server_default=func.current_timestamp())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    round_id: Mapped[int | None] = mapped_column(Integer, index=True)
    division_code: Mapped[str | None] = mapped_column(String(12), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DetectionJob(Base):
    """A detection run asked for through the server (检测任务), carried out by a ``tuban worker``.

    ``state``: ``queued`` → ``running`` (held by ``lease_owner`` until ``lease_until``; a worker that stops
    renewing it loses the job to the next claim) → ``done`` (``output`` written into the detection folder),
    ``failed`` (``error``) or ``cancelled``. ``attempts`` counts claims; at ``max_attempts`` a lost lease
    fails the job instead of queueing it again (:mod:`tuban.workflow.jobs`). Workers claim the queued job of
    highest ``priority`` first (0 ordinary … 9 urgent), the oldest among equals.
    """

    __tablename__ = "detection_jobs"
    __table_args__ = (  # one active job per output name (two submissions racing on PostgreSQL: one fails)
        Index("uq_detection_jobs_active_output", "output", unique=True,
              postgresql_where=text("state IN ('queued', 'running')"),
              sqlite_where=text("state IN ('queued', 'running')")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    output: Mapped[str] = mapped_column(String(140))  # NAME.gpkg in the detection folder
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # before, after, method, mmu_ha …
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # higher first (0–9)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None] = mapped_column(TZ)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # patches, threshold, unobservable …
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(TZ, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(TZ)
    finished_at: Mapped[dt.datetime | None] = mapped_column(TZ)
