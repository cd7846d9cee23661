"""Patch divisions (图斑涉及行政区) and the display outline of patches, both kept by triggers.

A patch is visible to every county in its lead division and its XZQDM list (domain.md §6).
Finding a county's patches used to scan ``patches.xzqdm`` with ``LIKE`` for the ones
spanning counties (a full table scan: ~30 ms at 100 k patches). ``patch_divisions`` holds
the split list, indexed by ``(round_id, division_code, patch_id)``, so a county's patches
are one index range on both backends.

Triggers on ``patches`` keep it in step with ``xzqdm`` and ``lead_division_code`` whoever
writes them (ORM, bulk ``UPDATE``, raw SQL): after an insert, and after an update of those
columns, the patch's rows are replaced. The list is split on ``,``, ``，``, ``;`` and
``；``; parts are trimmed, empty parts and parts longer than 12 characters are dropped.
Rows go with their patch (``ON DELETE CASCADE``; an explicit trigger on SQLite too).

``patches.display_geojson`` holds the outline as GeoJSON text with 6 decimals (≈ 0.1 m),
what the map's patch layer sends without decoding a geometry. PostgreSQL computes it with
``ST_AsGeoJSON(geometry, 6)`` in a ``BEFORE INSERT OR UPDATE OF geometry`` trigger. SQLite
has no such function: the ORM fills it (``tuban.store.models.display_geojson``), a trigger
sets it to NULL when the geometry changes without it, and readers compute NULL ones.

Revision ID: 0002_patch_divisions
Revises: 0001_initial
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tuban.store.migrations.backfill import backfill_geojson_sqlite

revision = "0002_patch_divisions"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# SQLite: the XZQDM list becomes a JSON array (json_quote escapes everything; commas are
# never part of an escape, so replacing them by '","' keeps the text valid JSON)
_SQLITE_CODES = (
    "SELECT trim(NEW.lead_division_code) AS c "
    "UNION SELECT trim(value) FROM json_each('[' || replace(json_quote(replace(replace(replace("
    "coalesce(NEW.xzqdm, ''), '，', ','), '；', ','), ';', ',')), ',', '\",\"') || ']')"
)
_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO patch_divisions (patch_id, round_id, division_code) "
    f"SELECT NEW.id, NEW.round_id, c FROM ({_SQLITE_CODES}) "
    "WHERE c IS NOT NULL AND c != '' AND length(c) <= 12;"
)

_PG_FUNCTION = """
CREATE FUNCTION tuban_patch_divisions_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM patch_divisions WHERE patch_id = OLD.id;
    END IF;
    INSERT INTO patch_divisions (patch_id, round_id, division_code)
    SELECT DISTINCT NEW.id, NEW.round_id, c FROM (
        SELECT btrim(NEW.lead_division_code) AS c
        UNION ALL
        SELECT btrim(part) FROM regexp_split_to_table(coalesce(NEW.xzqdm, ''), '[,，;；]') AS part
    ) AS codes
    WHERE c IS NOT NULL AND c <> '' AND length(c) <= 12;
    RETURN NULL;
END
$$
"""

_BACKFILL = {
    "sqlite": (
        "INSERT OR IGNORE INTO patch_divisions (patch_id, round_id, division_code) "
        "SELECT p.id, p.round_id, trim(p.lead_division_code) FROM patches p "
        "WHERE trim(coalesce(p.lead_division_code, '')) != '' AND length(trim(p.lead_division_code)) <= 12",
        "INSERT OR IGNORE INTO patch_divisions (patch_id, round_id, division_code) "
        "SELECT p.id, p.round_id, trim(j.value) FROM patches p, json_each('[' || replace(json_quote("
        "replace(replace(replace(coalesce(p.xzqdm, ''), '，', ','), '；', ','), ';', ',')), ',', '\",\"') "
        "|| ']') AS j WHERE trim(j.value) != '' AND length(trim(j.value)) <= 12",
    ),
    "postgresql": (
        "INSERT INTO patch_divisions (patch_id, round_id, division_code) "
        "SELECT DISTINCT id, round_id, c FROM ("
        "  SELECT id, round_id, btrim(lead_division_code) AS c FROM patches "
        "  UNION ALL "
        "  SELECT id, round_id, btrim(part) FROM patches, "
        "         regexp_split_to_table(coalesce(xzqdm, ''), '[,，;；]') AS part"
        ") AS codes WHERE c IS NOT NULL AND c <> '' AND length(c) <= 12",
    ),
}


_DISPLAY_COMMENT = "the outline as GeoJSON, 6 decimals (map display; NULL = compute from geometry)"

_PG_DISPLAY_FUNCTION = """
CREATE FUNCTION tuban_patch_display() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.display_geojson := CASE WHEN NEW.geometry IS NULL OR ST_IsEmpty(NEW.geometry) THEN NULL
                                ELSE ST_AsGeoJSON(NEW.geometry, 6) END;
    RETURN NEW;
END
$$
"""


def _backfill_display_sqlite() -> None:
    """Display outlines of existing patches (frozen copy of the model's helper)."""
    import shapely

    backfill_geojson_sqlite("display_geojson",
                            lambda g: shapely.to_geojson(shapely.set_precision(g, 1e-6, mode="pointwise")))


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("patches", sa.Column("display_geojson", sa.Text(), nullable=True, comment=_DISPLAY_COMMENT))
    if dialect == "postgresql":
        op.execute("UPDATE patches SET display_geojson = ST_AsGeoJSON(geometry, 6) "
                   "WHERE geometry IS NOT NULL AND NOT ST_IsEmpty(geometry)")
        op.execute(_PG_DISPLAY_FUNCTION)
        op.execute("CREATE TRIGGER patch_display BEFORE INSERT OR UPDATE OF geometry ON patches "
                   "FOR EACH ROW EXECUTE FUNCTION tuban_patch_display()")
    else:
        _backfill_display_sqlite()
        op.execute("CREATE TRIGGER patch_display_stale AFTER UPDATE OF geometry ON patches "
                   "WHEN NEW.display_geojson IS OLD.display_geojson BEGIN "
                   "UPDATE patches SET display_geojson = NULL WHERE id = NEW.id; END")
    op.create_table(
        "patch_divisions",
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("division_code", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(["patch_id"], ["patches.id"], name=op.f("fk_patch_divisions_patch_id_patches"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("patch_id", "division_code", name=op.f("pk_patch_divisions")),
    )
    op.create_index(op.f("ix_patch_divisions_round_id_division_code_patch_id"), "patch_divisions",
                    ["round_id", "division_code", "patch_id"], unique=False)
    for statement in _BACKFILL[dialect]:
        op.execute(statement)
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute("CREATE TRIGGER patch_divisions_insert AFTER INSERT ON patches "
                   "FOR EACH ROW EXECUTE FUNCTION tuban_patch_divisions_sync()")
        op.execute("CREATE TRIGGER patch_divisions_update AFTER UPDATE OF xzqdm, lead_division_code, round_id "
                   "ON patches FOR EACH ROW EXECUTE FUNCTION tuban_patch_divisions_sync()")
        op.execute("ANALYZE patch_divisions")
    else:
        op.execute(f"CREATE TRIGGER patch_divisions_insert AFTER INSERT ON patches BEGIN {_SQLITE_INSERT} END")
        op.execute("CREATE TRIGGER patch_divisions_update AFTER UPDATE OF xzqdm, lead_division_code, round_id "
                   "ON patches BEGIN DELETE FROM patch_divisions WHERE patch_id = OLD.id; "
                   f"{_SQLITE_INSERT} END")
        op.execute("CREATE TRIGGER patch_divisions_delete AFTER DELETE ON patches BEGIN "
                   "DELETE FROM patch_divisions WHERE patch_id = OLD.id; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS patch_display ON patches")
        op.execute("DROP FUNCTION IF EXISTS tuban_patch_display()")
        op.execute("DROP TRIGGER IF EXISTS patch_divisions_update ON patches")
        op.execute("DROP TRIGGER IF EXISTS patch_divisions_insert ON patches")
        op.execute("DROP FUNCTION IF EXISTS tuban_patch_divisions_sync()")
    else:
        for name in ("divisions_insert", "divisions_update", "divisions_delete", "display_stale"):
            op.execute(f"DROP TRIGGER IF EXISTS patch_{name}")
    op.drop_index(op.f("ix_patch_divisions_round_id_division_code_patch_id"), table_name="patch_divisions")
    op.drop_table("patch_divisions")
    op.execute("ALTER TABLE patches DROP COLUMN display_geojson")
