"""Workflows may be flows of the workflow language: their top-level fields (start_at,
output, input_schema, max_steps) are kept beside the steps; NULL for the seed's chains.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    for table in ("workflows", "workflow_versions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("flow", json_type, nullable=True))


def downgrade() -> None:
    for table in ("workflows", "workflow_versions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("flow")
