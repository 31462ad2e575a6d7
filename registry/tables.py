"""SQLAlchemy tables of the registry. The schema itself comes from registry/migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ServiceRow(Base):
    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    endpoint: Mapped[str] = mapped_column(String(2048))
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType)
    status: Mapped[str] = mapped_column(String(16), index=True)
    health_path: Mapped[str] = mapped_column(String(500), default="/health")
    credential: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
        nullable=True,
        default=None,
    )
    """The outbound credential, sealed (registry/credentials.py `seal_credential`): the key
    id, the AES-256-GCM ciphertext and the non-secret fields the API shows; NULL if none."""
    max_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    """Calls of the service in flight at once, across all workers; NULL: no limit."""
    rate_limit_per_second: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    """Calls of the service started per second, across all workers; NULL: no limit."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowRow(Base):
    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType)
    status: Mapped[str] = mapped_column(String(16), index=True)
    mode: Mapped[str] = mapped_column(String(16), default="standard")
    flow: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowVersionRow(Base):
    """Every version of a workflow's definition, so earlier versions stay readable."""

    __tablename__ = "workflow_versions"

    workflow_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType)
    mode: Mapped[str] = mapped_column(String(16), default="standard")
    flow: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRow(Base):
    """The first response to a write that carried an `Idempotency-Key`.

    `key` is a sha256 of the caller, the scope and the key (registry/transactions.py);
    rows older than IDEMPOTENCY_TTL_SECONDS are deleted by the next keyed write.
    """

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceLeaseRow(Base):
    """A call of a service with `max_concurrency` in flight (activities/shaping.py).

    `expires_at` (seconds since the epoch) is the call's timeout and a margin after it
    started: a lease a crashed worker never released frees itself then.
    """

    __tablename__ = "service_leases"

    service_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    lease_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)


class ServiceBucketRow(Base):
    """The token bucket of a service with `rate_limit_per_second` (activities/shaping.py):
    the tokens left at `updated_at` (seconds since the epoch)."""

    __tablename__ = "service_buckets"

    service_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


Index("ix_services_created", ServiceRow.created_at, ServiceRow.id)
Index("ix_workflows_created", WorkflowRow.created_at, WorkflowRow.id)
Index("ix_idempotency_keys_created", IdempotencyRow.created_at)
