"""Idempotent writes: the first answer to a key is stored with the write it made.

The stored answer is written in the same transaction as the resource, so a client
that timed out after the gateway committed gets that answer on retry, and nothing
is created twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import IdempotencyKeyReusedError
from registry.tables import IdempotencyRow


def _hash(scope: str, body: BaseModel) -> str:
    payload = json.dumps([scope, body.model_dump(mode="json")], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _row_key(scope: str, key: str) -> str:
    return f"{scope}|{key}"[:300]


async def replay(
    session: AsyncSession, key: str | None, *, scope: str, body: BaseModel
) -> tuple[int, Any] | None:
    """The stored (status, body) for this key, or None if the key is new or absent.

    Raises:
        IdempotencyKeyReusedError: the key was used for a different request.
    """
    if not key:
        return None
    row = await session.get(IdempotencyRow, _row_key(scope, key))
    if row is None:
        return None
    if row.request_hash != _hash(scope, body):
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key '{key}' was already used for a different request to {scope}; "
            "use a new key for a new request"
        )
    return row.status_code, row.response


def remember(
    session: AsyncSession,
    key: str | None,
    *,
    scope: str,
    body: BaseModel,
    status_code: int,
    response: Any,
) -> None:
    """Add the answer to the session; it commits with the write it describes."""
    if key:
        session.add(
            IdempotencyRow(
                key=_row_key(scope, key),
                request_hash=_hash(scope, body),
                status_code=status_code,
                response=jsonable_encoder(response),
            )
        )


async def write_once(
    session: AsyncSession,
    key: str | None,
    *,
    scope: str,
    body: BaseModel,
    write: Callable[[], Awaitable[tuple[int, Any]]],
) -> tuple[int, Any]:
    """Run `write` once per key and commit it with its answer; replay it after that.

    Args:
        write: makes the change in `session` and returns (status code, response body).

    Returns:
        The status code and body to answer with.
    """
    stored = await replay(session, key, scope=scope, body=body)
    if stored is not None:
        return stored
    status_code, response = await write()
    remember(session, key, scope=scope, body=body, status_code=status_code, response=response)
    try:
        await session.commit()
    except IntegrityError:
        # A concurrent request with the same key won: answer as it did.
        await session.rollback()
        stored = await replay(session, key, scope=scope, body=body)
        if stored is None:
            raise
        return stored
    return status_code, response
