"""Registry operations on services: register, read, update and deregister.

Every write commits itself, in one transaction with the answer its Idempotency-Key
gets (registry/transactions.py). A credential sent with a service is stored sealed
(registry/credentials.py); the worker's reads are in registry/lookups.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.codec import EncryptionCodec
from definitions.language import raw_tasks
from definitions.models import ActionSpec
from registry.credentials import needs_keys, origin_of, public_credential, seal_credential
from registry.errors import ConflictError, InvalidDefinitionError, NotFoundError
from registry.schemas import (
    DefinitionStatus,
    ServiceCreate,
    ServicePublic,
    ServiceUpdate,
    endpoint_text,
)
from registry.tables import ServiceRow, WorkflowRow, utcnow
from registry.transactions import Answer, KeyedRequest, commit_write
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
        credential=public_credential(row.credential),
        max_concurrency=row.max_concurrency,
        rate_limit_per_second=row.rate_limit_per_second,
    )


def _dump_actions(actions: Sequence[ActionSpec]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in actions]


def _same_definition(row: ServiceRow, body: ServiceCreate) -> bool:
    """Whether registering `body` again is the stored service. Never when either carries a
    credential: comparing a sent secret with the stored one would tell a caller whether
    a guess is right, one request per guess."""
    return (
        body.credential is None
        and row.credential is None
        and row.description == body.description
        and row.endpoint == endpoint_text(body.endpoint)
        and row.actions == _dump_actions(body.actions)
        and row.metadata_ == body.metadata
        and row.status == body.status.value
        and row.health_path == body.health_path
        and row.max_concurrency == body.max_concurrency
        and row.rate_limit_per_second == body.rate_limit_per_second
    )


def is_id(reference: str) -> bool:
    """Whether `reference` has the shape of an id (a UUID, as the registry makes them)."""
    try:
        return str(uuid.UUID(reference)) == reference.lower()
    except ValueError:
        return False


async def get_row(session: AsyncSession, service_id: str) -> ServiceRow:
    """The service `service_id` names: its id, else its name (names are unique).

    Raises:
        NotFoundError: no service has that id or name.
    """
    # No id or name holds a NUL, and PostgreSQL would refuse the query (a 503, not a 404).
    row = None
    if "\x00" not in service_id:
        if is_id(service_id):
            row = await session.get(ServiceRow, service_id)
        if row is None:
            row = await get_by_name(session, service_id)
    if row is None:
        raise NotFoundError(
            RESOURCE,
            service_id,
            hint="no service has this id or name; list them with GET /api/services",
        )
    return row


async def get_by_name(session: AsyncSession, name: str) -> ServiceRow | None:
    return (await session.execute(select(ServiceRow).where(ServiceRow.name == name))).scalar()


async def register(
    session: AsyncSession,
    body: ServiceCreate,
    *,
    codec: EncryptionCodec | None = None,
    keyed: KeyedRequest | None = None,
) -> Answer:
    """Store a new service, or answer the stored one if it is identical; commits.

    A registration that carries a credential, or of a name whose stored service has one,
    is never identical: it conflicts (409, change the service with PATCH) whether the
    secret matches the stored one or not, so the answer cannot confirm a guessed secret.
    Sending the same request again with its Idempotency-Key still replays the first
    answer.

    Args:
        codec: ENCRYPTION_KEYS' codec; a credential cannot be stored without it.
        keyed: the request's Idempotency-Key: the answer is committed with the service,
            and a repeat of the request gets it again.

    Returns:
        201 and the service if it was created now, 200 and the stored one if identical.

    Raises:
        InvalidDefinitionError: an action schema is no valid JSON Schema, or a credential
            is sent and no ENCRYPTION_KEYS is set.
        ConflictError: the name belongs to a different definition, or a credential
            is involved (see above).
        IdempotencyKeyReusedError: the key came with another request before.
    """

    async def write() -> tuple[int, Any]:
        row, created = await _register(session, body, codec=codec)
        return (201 if created else 200), to_public(row).model_dump(mode="json")

    return await commit_write(session, keyed, write)


async def _register(
    session: AsyncSession, body: ServiceCreate, *, codec: EncryptionCodec | None
) -> tuple[ServiceRow, bool]:
    """`register`, flushed: the row, and whether it was created now."""
    problems = validate_actions(body.actions)
    if problems:
        raise InvalidDefinitionError(problems)
    if body.credential is not None:
        codec = needs_keys(codec)
    existing = await get_by_name(session, body.name)
    if existing is not None:
        if _same_definition(existing, body):
            return existing, False
        raise _name_taken(existing, body)
    now = utcnow()
    service_id = str(uuid.uuid4())
    endpoint = endpoint_text(body.endpoint)
    assert endpoint is not None
    row = ServiceRow(
        id=service_id,
        credential=None
        if body.credential is None or codec is None
        else seal_credential(
            codec, service_id=service_id, endpoint=endpoint, credential=body.credential
        ),
        name=body.name,
        description=body.description,
        endpoint=endpoint,
        actions=_dump_actions(body.actions),
        metadata_=body.metadata,
        status=body.status.value,
        health_path=body.health_path,
        max_concurrency=body.max_concurrency,
        rate_limit_per_second=body.rate_limit_per_second,
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
        raise _name_taken(existing, body) from None
    return row, True


def _name_taken(existing: ServiceRow | None, body: ServiceCreate) -> ConflictError:
    where = f" with id '{existing.id}'" if existing else ""
    name = existing.name if existing else "this name"
    # With a credential the answer is the same whatever the stored service holds, its
    # secret above all: nothing in it may tell a right guess from a wrong one.
    why = (
        " (a registration with a credential never matches a stored service)"
        if body.credential is not None
        else " with a different definition"
    )
    return ConflictError(
        f"service name '{name}' is already registered{where}{why}; "
        f"to change it, send PATCH /api/services/{existing.id if existing else '{id}'}",
        resource_type=RESOURCE,
        resource_id=existing.id if existing else None,
    )


async def _workflows_using(session: AsyncSession, service_name: str) -> list[WorkflowRow]:
    rows = (
        await session.execute(select(WorkflowRow).where(WorkflowRow.status == "ACTIVE"))
    ).scalars()
    return [w for w in rows if any(s["service"] == service_name for s in raw_tasks(w.steps))]


async def update(
    session: AsyncSession,
    service_id: str,
    body: ServiceUpdate,
    *,
    codec: EncryptionCodec | None = None,
    keyed: KeyedRequest | None = None,
) -> Answer:
    """Apply the fields that are set and commit; running executions keep their pinned copy.

    `credential` replaces the stored credential, and `credential: null` removes it. The
    credential is bound to the origin of the endpoint it was set with: moving the
    endpoint to another origin needs the credential sent again (or null), so that an
    update cannot send a stored secret somewhere new without knowing it.

    Args:
        codec: ENCRYPTION_KEYS' codec; a credential cannot be stored without it.
        keyed: the request's Idempotency-Key: the answer is committed with the change,
            and a repeat of the request gets it again.

    Returns:
        200 and the service as stored now.

    Raises:
        NotFoundError, InvalidDefinitionError, ConflictError, IdempotencyKeyReusedError.
    """

    async def write() -> tuple[int, Any]:
        updated = await _update(session, service_id, body, codec=codec)
        return 200, updated.model_dump(mode="json")

    return await commit_write(session, keyed, write)


async def _update(
    session: AsyncSession, service_id: str, body: ServiceUpdate, *, codec: EncryptionCodec | None
) -> ServicePublic:
    """`update`, flushed."""
    row = await get_row(session, service_id)
    changes = body.model_dump(exclude_unset=True)
    if body.actions is not None:
        problems = validate_actions(body.actions)
        if problems:
            raise InvalidDefinitionError(problems)
    credential_sent = "credential" in body.model_fields_set
    if body.credential is not None:
        codec = needs_keys(codec)
    new_endpoint = endpoint_text(body.endpoint) if body.endpoint is not None else row.endpoint
    assert new_endpoint is not None
    if (
        row.credential is not None
        and not credential_sent
        and origin_of(new_endpoint) != origin_of(row.endpoint)
    ):
        raise InvalidDefinitionError(
            [
                {
                    "loc": ["credential"],
                    "msg": f"the service's credential may be sent only to "
                    f"{origin_of(row.endpoint)}; to move the endpoint to "
                    f"{origin_of(new_endpoint)}, send the credential again in the same "
                    "update (or credential: null to remove it)",
                    "type": "value_error",
                }
            ]
        )
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
                {s["action"] for s in raw_tasks(workflow.steps) if s["service"] == row.name} - kept
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
    if credential_sent:
        row.credential = (
            None
            if body.credential is None or codec is None
            else seal_credential(
                codec, service_id=row.id, endpoint=row.endpoint, credential=body.credential
            )
        )
    # Sent as null, a limit is removed; the workers see the change within a second.
    if "max_concurrency" in body.model_fields_set:
        row.max_concurrency = body.max_concurrency
    if "rate_limit_per_second" in body.model_fields_set:
        row.rate_limit_per_second = body.rate_limit_per_second
    row.updated_at = utcnow()
    await session.flush()
    return to_public(row)


async def deregister(
    session: AsyncSession, service_id: str, *, force: bool, keyed: KeyedRequest | None = None
) -> Answer:
    """Delete a service and commit. Refused while an ACTIVE workflow uses it, unless `force`.

    Args:
        keyed: the request's Idempotency-Key: a repeat of the request gets the first
            answer (not a 404).

    Returns:
        200 and the service as it was stored.

    Raises:
        NotFoundError, ConflictError, IdempotencyKeyReusedError.
    """

    async def write() -> tuple[int, Any]:
        return 200, (await _deregister(session, service_id, force=force)).model_dump(mode="json")

    return await commit_write(session, keyed, write)


async def _deregister(session: AsyncSession, service_id: str, *, force: bool) -> ServicePublic:
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
    await session.flush()
    return public


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(ServiceRow.status, func.count()).group_by(ServiceRow.status)
    )
    return {status: count for status, count in rows.all()}
