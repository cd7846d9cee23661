"""Job priority (任务优先级): a worker claims the queued job of highest priority first, the oldest among equals.

A province's worker may have long detections queued when a review image is wanted today; the priority (0
ordinary, up to 9 urgent) lets it go first without cancelling anything. Existing jobs get 0.

Revision ID: 0005_job_priority
Revises: 0004_detection_jobs
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_job_priority"
down_revision = "0004_detection_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("detection_jobs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("detection_jobs") as batch:
        batch.drop_column("priority")
