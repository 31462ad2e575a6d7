"""Per-service load shaping: services may carry `max_concurrency` and
`rate_limit_per_second` (NULL: no limit); the leases of calls in flight and the token
buckets, shared by all workers (activities/shaping.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("max_concurrency", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rate_limit_per_second", sa.Float(), nullable=True))
    op.create_table(
        "service_leases",
        sa.Column("service_name", sa.String(64), primary_key=True),
        sa.Column("lease_id", sa.String(36), primary_key=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "service_buckets",
        sa.Column("service_name", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_buckets")
    op.drop_table("service_leases")
    with op.batch_alter_table("services") as batch:
        batch.drop_column("rate_limit_per_second")
        batch.drop_column("max_concurrency")
