"""Services may carry an outbound credential, stored sealed (AES-256-GCM under the first
ENCRYPTION_KEYS key, the key id beside it); NULL for a service without one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("credential", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("credential")
