"""Idempotency-Key at the edge: who sent it, with which request; the registry commits.

The key of a request and its caller (the id of the API key, "anonymous" without
API_KEYS) come in as `IdempotencyDep`; `Idempotency.bound` ties it to the request it came
with (its scope, e.g. "DELETE /api/services/{id}", and its body or parameters). Registry
writes take that and commit the write with its answer in one transaction
(registry/transactions.py, where the rules of keys are), so a client that timed out
after the commit gets the first answer on retry, and nothing is created, changed or
deleted twice.

Executions (`execution_id_for`) store the execution id a key maps to before the start;
a retried start finds the execution Temporal already has under that id (see
ExecutionService.start), as long as Temporal still retains it: keep
IDEMPOTENCY_TTL_SECONDS at or under the namespace's retention.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from executions.models import new_execution_id
from gateway.deps import CallerDep, IdempotencyKey
from registry.transactions import Idempotency, write_once


def get_idempotency(
    request: Request, caller: CallerDep, idempotency_key: IdempotencyKey = None
) -> Idempotency:
    return Idempotency(
        key=idempotency_key or None,
        caller=caller,
        ttl_seconds=request.app.state.settings.idempotency_ttl_seconds,
    )


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]


async def execution_id_for(
    session: AsyncSession, idempotency: Idempotency, *, scope: str, request: Any
) -> str:
    """The id of the execution to start: new without a key, else the one the key maps to.

    The first use of a key commits a new id for it; the same key with the same request
    gets that id again (so the start finds the first execution), with another request
    a 422, and from another caller an id of its own.

    Raises:
        IdempotencyKeyReusedError: the caller used the key for a different request.
    """
    if not idempotency.key:
        return new_execution_id()

    async def new_id() -> tuple[int, Any]:
        return 202, {"execution_id": new_execution_id()}

    answer = await write_once(session, idempotency, scope=scope, request=request, write=new_id)
    return str(answer.body["execution_id"])
