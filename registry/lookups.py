"""What the worker reads from the registry: read-only lookups by name, made at call time.

- `credential_for_call`: a service's credential, opened (activities/credentials.py).
- `limits_for_call`: a service's load shaping (activities/shaping.py).
- `pinned_by_name` and `registry_stamp`: a stored workflow pinned for a start by name,
  and the stamp of the rows that pin was built from (activities/definitions.py). Every
  registry write (registry/services.py, registry/workflows.py) sets `updated_at`, so a
  changed stamp is a changed definition.

A name no service has gets nothing (no credential, no limits): the step's own call
then says what is wrong. Nothing here writes or commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, bindparam, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.codec import EncryptionCodec
from definitions.models import PinnedDefinition
from registry import workflows
from registry.credentials import OpenedCredential, open_credential
from registry.tables import ServiceRow, WorkflowRow

# --- a service's credential and limits -------------------------------------------------


@dataclass(frozen=True)
class ServiceLimits:
    """A service's load shaping; None: no limit of that kind."""

    max_concurrency: int | None = None
    rate_limit_per_second: float | None = None

    @property
    def any(self) -> bool:
        return self.max_concurrency is not None or self.rate_limit_per_second is not None


async def limits_for_call(session: AsyncSession, service_name: str) -> ServiceLimits:
    """The limits of the service named `service_name` (none if no service has that name:
    the step's own call then says what is wrong)."""
    found = (
        await session.execute(
            select(ServiceRow.max_concurrency, ServiceRow.rate_limit_per_second).where(
                ServiceRow.name == service_name
            )
        )
    ).first()
    if found is None:
        return ServiceLimits()
    return ServiceLimits(found.max_concurrency, found.rate_limit_per_second)


async def credential_for_call(
    session: AsyncSession, service_name: str, codec: EncryptionCodec | None
) -> OpenedCredential | None:
    """The opened credential of the service named `service_name`, or None if it has none
    (or no service has that name: the step's own call then says what is wrong).

    Raises:
        CredentialUnreadableError: it has one, and it cannot be opened here.
    """
    found = (
        await session.execute(
            select(ServiceRow.id, ServiceRow.credential).where(ServiceRow.name == service_name)
        )
    ).first()
    if found is None or found.credential is None:
        return None
    return open_credential(codec, service_id=found.id, stored=found.credential)


# --- a stored workflow, pinned by name, and its stamp ----------------------------------


async def pinned_by_name(
    session: AsyncSession, name: str, version: int | None = None
) -> PinnedDefinition:
    """The stored workflow `name` pinned at its current version (or at `version`).

    Raises:
        NotFoundError: no workflow has that name, or it has no such version.
        NotRunnableError: the workflow is INACTIVE, or a step's service is INACTIVE or gone.
    """
    if version is None:
        return await workflows.pin_by_name(session, name)
    return await workflows.pin_version(session, name, version)


Stamp = tuple[tuple[Any, ...], ...]
"""What a pinned definition depends on: see `registry_stamp`."""


def stamp_statement(services: tuple[str, ...]) -> Executable:
    """The stamp query of a workflow (its name bound at execution) using `services`."""
    workflow_part = select(
        literal("w").label("kind"),
        WorkflowRow.id.label("key"),
        WorkflowRow.version.label("version"),
        WorkflowRow.status.label("status"),
        WorkflowRow.updated_at.label("updated_at"),
    ).where(WorkflowRow.name == bindparam("name"))
    if not services:
        return workflow_part
    service_part = select(
        literal("s").label("kind"),
        ServiceRow.name.label("key"),
        literal(0).label("version"),
        ServiceRow.status.label("status"),
        ServiceRow.updated_at.label("updated_at"),
    ).where(ServiceRow.name.in_(services))
    return union_all(workflow_part, service_part)


async def registry_stamp(
    connection: AsyncConnection | AsyncSession,
    name: str,
    services: tuple[str, ...],
    statement: Executable | None = None,
) -> Stamp:
    """What a pinned definition of `name` depends on, read in one query.

    The workflow row (id, version, status, updated_at) and each of `services` that
    exists (name, status, updated_at), in a stable order; a missing row is missing.

    Args:
        statement: `stamp_statement(services)`, if the caller keeps it built.
    """
    if statement is None:
        statement = stamp_statement(services)
    rows = (await connection.execute(statement, {"name": name})).all()
    return tuple(sorted((tuple(row) for row in rows), key=lambda r: (r[0], str(r[1]))))
