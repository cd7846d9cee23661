"""Initial schema: every table, the SQLite R*Tree mirrors or the PostGIS GiST indexes, and
the append-only audit triggers.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import UserDefinedType

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

SRID = 4490
SPATIAL_TABLES = ("divisions", "scopes", "patches")


class _PostGISGeometry(UserDefinedType[Any]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return f"geometry(GEOMETRY,{SRID})"


def _dialect() -> str:
    return op.get_bind().dialect.name


def _geometry() -> sa.types.TypeEngine[Any]:
    """PostGIS geometry in EPSG:4490, or WKB in a BLOB on SQLite (frozen here, not imported)."""
    return _PostGISGeometry() if _dialect() == "postgresql" else sa.LargeBinary()


def upgrade() -> None:
    if _dialect() == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.Column("division_code", sa.String(length=12), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_action"), "audit", ["action"], unique=False)
    op.create_index(op.f("ix_audit_division_code"), "audit", ["division_code"], unique=False)
    op.create_index(op.f("ix_audit_round_id"), "audit", ["round_id"], unique=False)
    op.create_table(
        "codelists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("zh", sa.String(length=200), nullable=False),
        sa.Column("en", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_codelists")),
        sa.UniqueConstraint("list", "code", "version", name=op.f("uq_codelists_list_code_version")),
    )
    op.create_index(op.f("ix_codelists_list"), "codelists", ["list"], unique=False)
    op.create_table(
        "divisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False, comment="XZQDM 行政区划代码"),
        sa.Column("name", sa.String(length=100), nullable=False, comment="XZQMC 行政区划名称"),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("geometry", _geometry(), nullable=True),
        sa.Column("minx", sa.Float(), nullable=True),
        sa.Column("miny", sa.Float(), nullable=True),
        sa.Column("maxx", sa.Float(), nullable=True),
        sa.Column("maxy", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_divisions")),
        sa.UniqueConstraint("code", name=op.f("uq_divisions_code")),
    )
    op.create_index(op.f("ix_divisions_parent_code"), "divisions", ["parent_code"], unique=False)
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("swc_p_id", sa.String(length=64), nullable=True, comment="SWC_P_ID 项目编号"),
        sa.Column("pro_name", sa.String(length=200), nullable=False, comment="PRO_NAME 项目名称"),
        sa.Column("cs_unit", sa.String(length=200), nullable=True, comment="CS_UNIT 建设单位"),
        sa.Column("rp_agnt", sa.String(length=200), nullable=True, comment="RP_AGNT 批复机构"),
        sa.Column("rp_num", sa.String(length=100), nullable=True, comment="RP_NUM 批复文号"),
        sa.Column("rp_time", sa.Date(), nullable=True, comment="RP_TIME 批复时间"),
        sa.Column("pro_type", sa.String(length=64), nullable=True, comment="PRO_TYPE 项目类型"),
        sa.Column("pro_cate", sa.String(length=64), nullable=True, comment="PRO_CATE 项目类别"),
        sa.Column("pro_nat", sa.String(length=64), nullable=True, comment="PRO_NAT 建设性质"),
        sa.Column("pro_level", sa.String(length=64), nullable=True, comment="PRO_LEVEL 立项级别"),
        sa.Column("cst_state", sa.String(length=64), nullable=True, comment="CST_STATE 建设状态"),
        sa.Column("ivv_cnty", sa.String(length=200), nullable=True, comment="IVV_CNTY 涉及县"),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("swc_p_id", name=op.f("uq_projects_swc_p_id")),
    )
    op.create_table(
        "roles",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("zh", sa.String(length=64), nullable=False),
        sa.Column("en", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=True),
        sa.Column("field_start", sa.Date(), nullable=True),
        sa.Column("field_end", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("imagery", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
        sa.UniqueConstraint("name", name=op.f("uq_rounds_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("auth_epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "patches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("qdnm", sa.String(length=64), nullable=False, comment="QDNM 图斑编号"),
        sa.Column("qtype", sa.String(length=64), nullable=True, comment="QTYPE 扰动类型"),
        sa.Column("qarea", sa.Float(), nullable=True, comment="QAREA 扰动面积 ha"),
        sa.Column("earea", sa.Float(), nullable=True, comment="EAREA 超出防治责任范围面积 ha"),
        sa.Column("qdcs", sa.String(length=64), nullable=True, comment="QDCS 建设状态"),
        sa.Column("qdtype", sa.String(length=64), nullable=True, comment="QDTYPE 扰动变化类型"),
        sa.Column("byd", sa.String(length=64), nullable=True, comment="BYD 扰动合规性"),
        sa.Column("isreview", sa.String(length=1), nullable=True, comment="ISREVIEW 是否现场复核"),
        sa.Column("isfocus", sa.String(length=1), nullable=True, comment="ISFOCUS 是否重点监管"),
        sa.Column("xzqdm", sa.String(length=200), nullable=True, comment="XZQDM 涉及县行政区划代码"),
        sa.Column("address", sa.String(length=100), nullable=True, comment="ADDRESS 详细地址"),
        sa.Column("problem", sa.String(length=1000), nullable=True, comment="PROBLEM 问题"),
        sa.Column("proposal", sa.String(length=1000), nullable=True, comment="PROPOSAL 建议"),
        sa.Column("memo", sa.String(length=1000), nullable=True, comment="MEMO 备注"),
        sa.Column("prid", sa.String(length=64), nullable=True, comment="PRID 关联项目编号"),
        sa.Column("prnm", sa.String(length=200), nullable=True, comment="PRNM 关联项目名称"),
        sa.Column("serosion", sa.String(length=64), nullable=True, comment="SEROSION 土壤侵蚀强度"),
        sa.Column("lead_division_code", sa.String(length=12), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("detection", sa.JSON(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("geometry", _geometry(), nullable=True),
        sa.Column("minx", sa.Float(), nullable=True),
        sa.Column("miny", sa.Float(), nullable=True),
        sa.Column("maxx", sa.Float(), nullable=True),
        sa.Column("maxy", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_patches_round_id_rounds"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patches")),
        sa.UniqueConstraint("round_id", "qdnm", name=op.f("uq_patches_round_id_qdnm")),
    )
    op.create_index(op.f("ix_patches_lead_division_code"), "patches", ["lead_division_code"], unique=False)
    op.create_index(op.f("ix_patches_round_id"), "patches", ["round_id"], unique=False)
    op.create_table(
        "role_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("division_code", sa.String(length=12), nullable=True),
        sa.ForeignKeyConstraint(
            ["role"], ["roles.name"], name=op.f("fk_role_assignments_role_roles"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_role_assignments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_assignments")),
        sa.UniqueConstraint(
            "user_id", "role", "division_code", name=op.f("uq_role_assignments_user_id_role_division_code")
        ),
    )
    op.create_index(op.f("ix_role_assignments_user_id"), "role_assignments", ["user_id"], unique=False)
    op.create_table(
        "role_permissions",
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("verb", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["role"], ["roles.name"], name=op.f("fk_role_permissions_role_roles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("role", "verb", name=op.f("pk_role_permissions")),
    )
    op.create_table(
        "scopes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("vec_type", sa.String(length=64), nullable=True, comment="VEC_TYPE 矢量类型"),
        sa.Column("geometry", _geometry(), nullable=True),
        sa.Column("minx", sa.Float(), nullable=True),
        sa.Column("miny", sa.Float(), nullable=True),
        sa.Column("maxx", sa.Float(), nullable=True),
        sa.Column("maxy", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_scopes_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scopes")),
    )
    op.create_index(op.f("ix_scopes_project_id"), "scopes", ["project_id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("division_code", sa.String(length=12), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_tasks_round_id_rounds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("round_id", "division_code", name=op.f("uq_tasks_round_id_division_code")),
    )
    op.create_index(op.f("ix_tasks_division_code"), "tasks", ["division_code"], unique=False)
    op.create_index(op.f("ix_tasks_round_id"), "tasks", ["round_id"], unique=False)
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["patch_id"], ["patches.id"], name=op.f("fk_cases_patch_id_patches"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index(op.f("ix_cases_patch_id"), "cases", ["patch_id"], unique=False)
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patch_id"], ["patches.id"], name=op.f("fk_comments_patch_id_patches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_comments_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index(op.f("ix_comments_patch_id"), "comments", ["patch_id"], unique=False)
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("byd", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.Column("explanation_zh", sa.Text(), nullable=True),
        sa.Column("explanation_en", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patch_id"], ["patches.id"], name=op.f("fk_decisions_patch_id_patches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(op.f("ix_decisions_patch_id"), "decisions", ["patch_id"], unique=False)
    op.create_table(
        "patch_lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"], ["patches.id"], name=op.f("fk_patch_lineage_child_id_patches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["patches.id"], name=op.f("fk_patch_lineage_parent_id_patches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patch_lineage")),
        sa.UniqueConstraint(
            "parent_id", "child_id", "kind", name=op.f("uq_patch_lineage_parent_id_child_id_kind")
        ),
    )
    op.create_index(op.f("ix_patch_lineage_child_id"), "patch_lineage", ["child_id"], unique=False)
    op.create_index(op.f("ix_patch_lineage_parent_id"), "patch_lineage", ["parent_id"], unique=False)
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("mime", sa.String(length=64), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("bearing", sa.Float(), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("exif", sa.JSON(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patch_id"], ["patches.id"], name=op.f("fk_photos_patch_id_patches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_photos_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
        sa.UniqueConstraint("client_id", name=op.f("uq_photos_client_id")),
    )
    op.create_index(op.f("ix_photos_patch_id"), "photos", ["patch_id"], unique=False)
    op.create_index(op.f("ix_photos_sha256"), "photos", ["sha256"], unique=False)
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("based_on_version", sa.Integer(), nullable=True),
        sa.Column("conflict", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patch_id"], ["patches.id"], name=op.f("fk_reviews_patch_id_patches"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_reviews_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("client_id", name=op.f("uq_reviews_client_id")),
    )
    op.create_index(op.f("ix_reviews_patch_id"), "reviews", ["patch_id"], unique=False)
    op.create_index(op.f("ix_reviews_user_id"), "reviews", ["user_id"], unique=False)
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_events_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index(op.f("ix_case_events_case_id"), "case_events", ["case_id"], unique=False)

    if _dialect() == "postgresql":
        _postgis_extras()
    else:
        _sqlite_extras()


def _postgis_extras() -> None:
    for table in SPATIAL_TABLES:
        op.execute(f"CREATE INDEX ix_{table}_geometry_gist ON {table} USING gist (geometry)")
    op.execute(
        """
        CREATE FUNCTION tuban_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit is append-only: % on audit refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION tuban_audit_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION tuban_audit_append_only()"
    )


def _sqlite_extras() -> None:
    for table in SPATIAL_TABLES:
        rt = f"{table}_rtree"
        op.execute(f"CREATE VIRTUAL TABLE {rt} USING rtree(id, minx, maxx, miny, maxy)")
        op.execute(
            f"CREATE TRIGGER {rt}_insert AFTER INSERT ON {table} WHEN new.minx IS NOT NULL BEGIN "
            f"INSERT INTO {rt} (id, minx, maxx, miny, maxy) "
            f"VALUES (new.id, new.minx, new.maxx, new.miny, new.maxy); END"
        )
        op.execute(
            f"CREATE TRIGGER {rt}_update AFTER UPDATE OF id, minx, miny, maxx, maxy ON {table} BEGIN "
            f"DELETE FROM {rt} WHERE id = old.id; "
            f"INSERT INTO {rt} (id, minx, maxx, miny, maxy) "
            f"SELECT new.id, new.minx, new.maxx, new.miny, new.maxy WHERE new.minx IS NOT NULL; END"
        )
        op.execute(
            f"CREATE TRIGGER {rt}_delete AFTER DELETE ON {table} BEGIN "
            f"DELETE FROM {rt} WHERE id = old.id; END"
        )
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_no_{verb.lower()} BEFORE {verb} ON audit BEGIN "
            f"SELECT RAISE(ABORT, 'audit is append-only: {verb} on audit refused'); END"
        )


def downgrade() -> None:
    if _dialect() == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
        op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit")
        op.execute("DROP FUNCTION IF EXISTS tuban_audit_append_only()")
    else:
        for table in SPATIAL_TABLES:
            op.execute(f"DROP TABLE IF EXISTS {table}_rtree")
    for table in (
        "case_events",
        "cases",
        "photos",
        "comments",
        "reviews",
        "decisions",
        "patch_lineage",
        "role_assignments",
        "role_permissions",
        "tasks",
        "patches",
        "scopes",
        "users",
        "rounds",
        "roles",
        "projects",
        "divisions",
        "codelists",
        "audit",
    ):
        op.drop_table(table)
