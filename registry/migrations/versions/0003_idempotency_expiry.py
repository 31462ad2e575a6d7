"""Idempotency keys expire: an index on created_at for the cleanup of expired rows.

Keys are now stored as a sha256 of (caller, scope, key); rows written under the old
`scope|key` form match no request any more and are deleted once older than
IDEMPOTENCY_TTL_SECONDS, like any other.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
