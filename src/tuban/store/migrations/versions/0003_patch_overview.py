"""The overview outline of patches (概览轮廓): simplified, for the map zoomed out.

A county view of the review map (zoom ≈ 12, ~30 m a pixel) draws thousands of patches a
few pixels wide; sending their full outlines (``display_geojson``: every vertex, 6
decimals) makes the patch layer mostly coordinates nobody can see. ``overview_geojson``
holds the outline simplified with a tolerance of 1e-4 degree (≈ 10 m, under a pixel below
zoom 13) keeping topology, written with 5 decimals (≈ 1 m). The map asks for it below
zoom 13 (:data:`tuban.store.models.OVERVIEW_MAX_ZOOM`).

It is kept exactly like ``display_geojson`` (migration 0002): PostgreSQL computes it in the
same ``BEFORE INSERT OR UPDATE OF geometry`` trigger (``ST_SimplifyPreserveTopology`` is
GEOS's topology-preserving simplifier, the one shapely calls); on SQLite the ORM fills it
(:func:`tuban.store.models.overview_geojson`), the stale trigger now clears both texts when
the geometry changes around the ORM, and readers compute NULL ones.

Revision ID: 0003_patch_overview
Revises: 0002_patch_divisions
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tuban.store.migrations.backfill import backfill_geojson_sqlite

revision = "0003_patch_overview"
down_revision = "0002_patch_divisions"
branch_labels = None
depends_on = None

TOLERANCE = 1e-4  # degrees; frozen copy of tuban.store.models.OVERVIEW_TOLERANCE
DECIMALS = 5
_COMMENT = "the outline simplified by 1e-4 degree, 5 decimals (map below zoom 13; NULL = compute)"

_PG_EXPR = (f"ST_AsGeoJSON(ST_SimplifyPreserveTopology(NEW.geometry, {TOLERANCE}), {DECIMALS})")

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION tuban_patch_display() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.geometry IS NULL OR ST_IsEmpty(NEW.geometry) THEN
        NEW.display_geojson := NULL;
        NEW.overview_geojson := NULL;
    ELSE
        NEW.display_geojson := ST_AsGeoJSON(NEW.geometry, 6);
        NEW.overview_geojson := {_PG_EXPR};
    END IF;
    RETURN NEW;
END
$$
"""

_PG_FUNCTION_0002 = """
CREATE OR REPLACE FUNCTION tuban_patch_display() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.display_geojson := CASE WHEN NEW.geometry IS NULL OR ST_IsEmpty(NEW.geometry) THEN NULL
                                ELSE ST_AsGeoJSON(NEW.geometry, 6) END;
    RETURN NEW;
END
$$
"""

_SQLITE_STALE = ("CREATE TRIGGER patch_display_stale AFTER UPDATE OF geometry ON patches "
                 "WHEN NEW.display_geojson IS OLD.display_geojson OR NEW.overview_geojson IS OLD.overview_geojson "
                 "BEGIN UPDATE patches SET display_geojson = NULL, overview_geojson = NULL WHERE id = NEW.id; END")
_SQLITE_STALE_0002 = ("CREATE TRIGGER patch_display_stale AFTER UPDATE OF geometry ON patches "
                      "WHEN NEW.display_geojson IS OLD.display_geojson BEGIN "
                      "UPDATE patches SET display_geojson = NULL WHERE id = NEW.id; END")


def _backfill_sqlite() -> None:
    """Overview outlines of existing patches (frozen copy of the model's helper)."""
    import shapely

    backfill_geojson_sqlite("overview_geojson", lambda g: shapely.to_geojson(shapely.set_precision(
        shapely.simplify(g, TOLERANCE, preserve_topology=True), 10.0**-DECIMALS, mode="pointwise")))


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("patches", sa.Column("overview_geojson", sa.Text(), nullable=True, comment=_COMMENT))
    if dialect == "postgresql":
        op.execute(f"UPDATE patches SET overview_geojson = {_PG_EXPR.replace('NEW.', '')} "
                   "WHERE geometry IS NOT NULL AND NOT ST_IsEmpty(geometry)")
        op.execute(_PG_FUNCTION)
    else:
        _backfill_sqlite()
        op.execute("DROP TRIGGER IF EXISTS patch_display_stale")
        op.execute(_SQLITE_STALE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION_0002)
    else:
        op.execute("DROP TRIGGER IF EXISTS patch_display_stale")
        op.execute(_SQLITE_STALE_0002)
    op.execute("ALTER TABLE patches DROP COLUMN overview_geojson")
