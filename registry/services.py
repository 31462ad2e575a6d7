"""Registry operations on services."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from definitions.models import ActionSpec
from registry.errors import ConflictError, InvalidDefinitionError, NotFoundError
from registry.schemas import (
    DefinitionStatus,
    ServiceCreate,
    ServicePublic,
    ServiceUpdate,
    endpoint_text,
)
from registry.tables import ServiceRow, WorkflowRow, utcnow
from registry.validation import validate_actions

RESOURCE = "service"


def to_public(row: ServiceRow) -> ServicePublic:
    return ServicePublic(
        id=row.id,
        name=row.name,
        description=row.description,
        endpoint=row.endpoint,
        actions=[ActionSpec.model_validate(a) for a in row.actions],
        metadata=row.metadata_,
        status=DefinitionStatus(row.status),
        health_path=row.health_path,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _dump_actions(actions: Sequence[ActionSpec]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in actions]


def _same_definition(row: ServiceRow, body: ServiceCreate) -> bool:
    return (
        row.description == body.description
        and row.endpoint == endpoint_text(body.endpoint)
        and row.actions == _dump_actions(body.actions)
        and row.metadata_ == body.metadata
        and row.status == body.status.value
        and row.health_path == body.health_path
    )


async def get_row(session: AsyncSession, service_id: str) -> ServiceRow:
    # No id holds a NUL, and PostgreSQL would refuse the query (a 503, not a 404).
    row = None if "\x00" in service_id else await session.get(ServiceRow, service_id)
    if row is None:
        raise NotFoundError(RESOURCE, service_id, hint="list services with GET /api/services")
    return row


async def get_by_name(session: AsyncSession, name: str) -> ServiceRow | None:
    return (await session.execute(select(ServiceRow).where(ServiceRow.name == name))).scalar()


async def register(session: AsyncSession, body: ServiceCreate) -> tuple[ServiceRow, bool]:
    """Store a new service, or return the stored one if it is identical.

    Flushed, not committed: the caller commits it in one transaction with the answer it
    stores for the request's Idempotency-Key (gateway/idempotency.py `write_once`).

    Returns:
        The row, and whether it was created now.

    Raises:
        InvalidDefinitionError: an action schema is no valid JSON Schema.
        ConflictError: the name belongs to a different definition.
    """
    problems = validate_actions(body.actions)
    if problems:
        raise InvalidDefinitionError(problems)
    existing = await get_by_name(session, body.name)
    if existing is not None:
        if _same_definition(existing, body):
            return existing, False
        raise _name_taken(existing)
    now = utcnow()
    row = ServiceRow(
        id=str(uuid.uuid4()),
        name=body.name,
        description=body.description,
        endpoint=endpoint_text(body.endpoint),
        actions=_dump_actions(body.actions),
        metadata_=body.metadata,
        status=body.status.value,
        health_path=body.health_path,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name.
        await session.rollback()
        existing = await get_by_name(session, body.name)
        if existing is not None and _same_definition(existing, body):
            return existing, False
        raise _name_taken(existing) from None
    return row, True


def _name_taken(existing: ServiceRow | None) -> ConflictError:
    where = f" with id '{existing.id}'" if existing else ""
    name = existing.name if existing else "this name"
    return ConflictError(
        f"service name '{name}' is already registered{where} with a different definition; "
        f"to change it, send PATCH /api/services/{existing.id if existing else '{id}'}",
        resource_type=RESOURCE,
        resource_id=existing.id if existing else None,
    )


async def _workflows_using(session: AsyncSession, service_name: str) -> list[WorkflowRow]:
    rows = (
        await session.execute(select(WorkflowRow).where(WorkflowRow.status == "ACTIVE"))
    ).scalars()
    return [w for w in rows if any(step["service"] == service_name for step in w.steps)]


async def update(
    session: AsyncSession, service_id: str, body: ServiceUpdate, *, commit: bool = True
) -> ServicePublic:
    """Apply the fields that are set and commit; running executions keep their pinned copy.

    Args:
        commit: False leaves the commit to the caller (which adds the Idempotency-Key's
            answer to the same transaction).

    Returns:
        The service as stored now.

    Raises:
        NotFoundError, InvalidDefinitionError, ConflictError.
    """
    row = await get_row(session, service_id)
    changes = body.model_dump(exclude_unset=True)
    if body.actions is not None:
        problems = validate_actions(body.actions)
        if problems:
            raise InvalidDefinitionError(problems)
    if body.name is not None and body.name != row.name:
        other = await get_by_name(session, body.name)
        if other is not None:
            raise ConflictError(
                f"service name '{body.name}' is taken by service '{other.id}'; pick another name",
                resource_type=RESOURCE,
                resource_id=other.id,
            )
        users = await _workflows_using(session, row.name)
        if users:
            raise ConflictError(
                f"service '{row.name}' is used by active workflows "
                f"{[w.name for w in users]}; renaming it would break them. Update those "
                "workflows to another service first, or set them INACTIVE",
                resource_type=RESOURCE,
                resource_id=row.id,
            )
        row.name = body.name
    if body.actions is not None:
        kept = {a.name for a in body.actions}
        for workflow in await _workflows_using(session, row.name):
            missing = sorted(
                {s["action"] for s in workflow.steps if s["service"] == row.name} - kept
            )
            if missing:
                raise ConflictError(
                    f"active workflow '{workflow.name}' uses actions {missing} of service "
                    f"'{row.name}', which this update removes; keep them, or update the "
                    "workflow first",
                    resource_type=RESOURCE,
                    resource_id=row.id,
                )
        row.actions = _dump_actions(body.actions)
    if "description" in changes and body.description is not None:
        row.description = body.description
    if body.endpoint is not None:
        row.endpoint = endpoint_text(body.endpoint)  # type: ignore[assignment]
    if body.metadata is not None:
        row.metadata_ = body.metadata
    if body.status is not None:
        row.status = body.status.value
    if body.health_path is not None:
        row.health_path = body.health_path
    row.updated_at = utcnow()
    await session.flush()
    public = to_public(row)
    if commit:
        await session.commit()
    return public


async def deregister(
    session: AsyncSession, service_id: str, *, force: bool, commit: bool = True
) -> ServicePublic:
    """Delete a service and commit. Refused while an ACTIVE workflow uses it, unless `force`.

    Args:
        commit: False leaves the commit to the caller.

    Returns:
        The service as it was stored.

    Raises:
        NotFoundError, ConflictError.
    """
    row = await get_row(session, service_id)
    if not force:
        users = await _workflows_using(session, row.name)
        if users:
            raise ConflictError(
                f"service '{row.name}' is used by active workflows {[w.name for w in users]}; "
                "set them INACTIVE or change their steps first, or deregister with ?force=true",
                resource_type=RESOURCE,
                resource_id=row.id,
            )
    public = to_public(row)
    await session.delete(row)
    if commit:
        await session.commit()
    else:
        await session.flush()
    return public


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(ServiceRow.status, func.count()).group_by(ServiceRow.status)
    )
    return {status: count for status, count in rows.all()}
