"""Workflows get a mode: standard, or low_latency (local activities, eager start).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("workflows", "workflow_versions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("mode", sa.String(16), nullable=False, server_default="standard")
            )


def downgrade() -> None:
    for table in ("workflows", "workflow_versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("mode")
