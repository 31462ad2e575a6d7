"""Idempotent writes and starts: an Idempotency-Key is bound to its caller and request.

A key is remembered per caller (the id of the API key, "anonymous" without API_KEYS):
the same key sent by another caller is another key. It is bound to a hash of the
request (its scope, e.g. "DELETE /api/services/{id}", and its body or parameters): sent
again with another request it is a 422. It lives IDEMPOTENCY_TTL_SECONDS: expired rows
are deleted by every keyed write, and a key found expired counts as new.

Registry writes (`write_once`) store their first answer in the same transaction as the
write, so a client that timed out after the gateway committed gets that answer on retry,
and nothing is created, changed or deleted twice. Executions (`execution_id_for`) store
the execution id a key maps to before the start; a retried start finds the execution
Temporal already has under that id (see ExecutionService.start), as long as Temporal
still retains it: keep IDEMPOTENCY_TTL_SECONDS at or under the namespace's retention.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from executions.models import new_execution_id
from gateway.deps import CallerDep, IdempotencyKey
from gateway.errors import IdempotencyKeyReusedError
from registry.tables import IdempotencyRow, utcnow


@dataclass(frozen=True)
class Idempotency:
    """The Idempotency-Key of a request, who sent it, and how long keys live."""

    key: str | None
    caller: str
    ttl_seconds: float
    clock: Callable[[], datetime] = utcnow

    def row_key(self, scope: str) -> str:
        assert self.key is not None
        return hashlib.sha256(f"{self.caller}\0{scope}\0{self.key}".encode()).hexdigest()

    def expired_before(self) -> datetime:
        return self.clock() - timedelta(seconds=self.ttl_seconds)


def get_idempotency(
    request: Request, caller: CallerDep, idempotency_key: IdempotencyKey = None
) -> Idempotency:
    return Idempotency(
        key=idempotency_key or None,
        caller=caller,
        ttl_seconds=request.app.state.settings.idempotency_ttl_seconds,
    )


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]


def request_hash(scope: str, request: Any) -> str:
    """The hash a key is bound to: the scope and the request's body or parameters."""
    payload = json.dumps([scope, jsonable_encoder(request)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


async def purge_expired(session: AsyncSession, idempotency: Idempotency) -> None:
    """Delete the rows of keys older than the TTL (in the session's transaction)."""
    await session.execute(
        delete(IdempotencyRow).where(IdempotencyRow.created_at < idempotency.expired_before())
    )


async def replay(
    session: AsyncSession, idempotency: Idempotency, *, scope: str, request: Any
) -> tuple[int, Any] | None:
    """The stored (status, body) for this key, or None if the key is new, expired or absent.

    Raises:
        IdempotencyKeyReusedError: the caller used the key for a different request.
    """
    if not idempotency.key:
        return None
    row = await session.get(IdempotencyRow, idempotency.row_key(scope))
    if row is None:
        return None
    if row.created_at < idempotency.expired_before():
        await session.delete(row)
        await session.flush()
        return None
    if row.request_hash != request_hash(scope, request):
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key '{idempotency.key}' was already used for a different request "
            f"to {scope}; use a new key for a new request"
        )
    return row.status_code, row.response


async def _remember_and_commit(
    session: AsyncSession,
    idempotency: Idempotency,
    *,
    scope: str,
    request: Any,
    status_code: int,
    response: Any,
) -> tuple[int, Any]:
    """Commit the session with the answer to the key; a concurrent winner's answer wins."""
    if idempotency.key:
        await purge_expired(session, idempotency)
        session.add(
            IdempotencyRow(
                key=idempotency.row_key(scope),
                request_hash=request_hash(scope, request),
                status_code=status_code,
                response=jsonable_encoder(response),
                created_at=idempotency.clock(),
            )
        )
    try:
        await session.commit()
    except IntegrityError:
        # A concurrent request with the same key won: answer as it did.
        await session.rollback()
        stored = await replay(session, idempotency, scope=scope, request=request)
        if stored is None:
            raise
        return stored
    return status_code, response


async def write_once(
    session: AsyncSession,
    idempotency: Idempotency,
    *,
    scope: str,
    request: Any,
    write: Callable[[], Awaitable[tuple[int, Any]]],
) -> tuple[int, Any]:
    """Run `write` once per key and commit it with its answer; replay it after that.

    Args:
        scope: the method and path of the write, e.g. "PATCH /api/services/{id}".
        request: the body or parameters the key is bound to.
        write: makes the change in `session` without committing, and returns
            (status code, response body).

    Returns:
        The status code and body to answer with.
    """
    stored = await replay(session, idempotency, scope=scope, request=request)
    if stored is not None:
        return stored
    status_code, response = await write()
    return await _remember_and_commit(
        session,
        idempotency,
        scope=scope,
        request=request,
        status_code=status_code,
        response=response,
    )


async def execution_id_for(
    session: AsyncSession, idempotency: Idempotency, *, scope: str, request: Any
) -> str:
    """The id of the execution to start: new without a key, else the one the key maps to.

    The first use of a key stores a new id for it; the same key with the same request
    gets that id again (so the start finds the first execution), with another request
    a 422, and from another caller an id of its own.

    Raises:
        IdempotencyKeyReusedError: the caller used the key for a different request.
    """
    if not idempotency.key:
        return new_execution_id()
    stored = await replay(session, idempotency, scope=scope, request=request)
    if stored is None:
        stored = await _remember_and_commit(
            session,
            idempotency,
            scope=scope,
            request=request,
            status_code=202,
            response={"execution_id": new_execution_id()},
        )
    return str(stored[1]["execution_id"])
