"""Detection jobs (检测任务): detections asked for through the server, run by ``tuban worker`` under a lease.

Revision ID: 0004_detection_jobs
Revises: 0003_patch_overview
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_detection_jobs"
down_revision = "0003_patch_overview"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("output", sa.String(length=140), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.String(length=200), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_jobs")),
    )
    op.create_index(op.f("ix_detection_jobs_state"), "detection_jobs", ["state"], unique=False)
    active = sa.text("state IN ('queued', 'running')")
    op.create_index("uq_detection_jobs_active_output", "detection_jobs", ["output"], unique=True,
                    postgresql_where=active, sqlite_where=active)


def downgrade() -> None:
    op.drop_index("uq_detection_jobs_active_output", table_name="detection_jobs")
    op.drop_index(op.f("ix_detection_jobs_state"), table_name="detection_jobs")
    op.drop_table("detection_jobs")
