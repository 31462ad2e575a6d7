"""The registry's one way to commit a write: together with its Idempotency-Key's answer.

A key is remembered per caller (the id of the API key, "anonymous" without API_KEYS):
the same key sent by another caller is another key. It is bound to a hash of the
request (its scope, e.g. "DELETE /api/services/{id}", and its body or parameters): sent
again with another request it is refused (IdempotencyKeyReusedError). It lives
IDEMPOTENCY_TTL_SECONDS: expired rows are deleted by every keyed write, and a key found
expired counts as new.

`write_once` runs a write and commits it in one transaction with the answer it gives,
so a client that timed out after the commit gets that answer on retry, and nothing is
created, changed or deleted twice. The registry's writes (registry/services.py,
registry/workflows.py) commit through it and nowhere else; a request without a key
commits the same way, with no answer stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic_core import to_jsonable_python
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from registry.errors import IdempotencyKeyReusedError
from registry.tables import IdempotencyRow, utcnow


@dataclass(frozen=True)
class Idempotency:
    """The Idempotency-Key of a request (None: it has none), who sent it, and how long
    keys live."""

    key: str | None
    caller: str
    ttl_seconds: float
    clock: Callable[[], datetime] = utcnow

    def row_key(self, scope: str) -> str:
        assert self.key is not None
        return hashlib.sha256(f"{self.caller}\0{scope}\0{self.key}".encode()).hexdigest()

    def expired_before(self) -> datetime:
        return self.clock() - timedelta(seconds=self.ttl_seconds)

    def bound(self, scope: str, request: Any) -> KeyedRequest:
        """This key bound to the request it came with, for a registry write.

        Args:
            scope: what the request does, e.g. "PATCH /api/services/{id}".
            request: its body or parameters (anything JSON-encodable).
        """
        return KeyedRequest(self, scope=scope, request=request)


@dataclass(frozen=True)
class KeyedRequest:
    """A write's Idempotency-Key, bound to the request it came with.

    Attributes:
        scope: what the request does, e.g. "PATCH /api/services/{id}".
        request: its body or parameters (anything JSON-encodable); the key is bound to
            a hash of them and the scope.
    """

    idempotency: Idempotency
    scope: str
    request: Any


_NO_KEY = Idempotency(key=None, caller="", ttl_seconds=0)


class Answer(NamedTuple):
    """What a write answers, as a repeated key gets it again: the status (201 created,
    200 otherwise) and the body as JSON."""

    status_code: int
    body: Any


def request_hash(scope: str, request: Any) -> str:
    """The hash a key is bound to: the scope and the request's body or parameters."""
    payload = json.dumps([scope, to_jsonable_python(request)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


async def purge_expired(session: AsyncSession, idempotency: Idempotency) -> None:
    """Delete the rows of keys older than the TTL (in the session's transaction)."""
    await session.execute(
        delete(IdempotencyRow).where(IdempotencyRow.created_at < idempotency.expired_before())
    )


async def replay(
    session: AsyncSession, idempotency: Idempotency, *, scope: str, request: Any
) -> Answer | None:
    """The stored answer for this key, or None if the key is new, expired or absent.

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
    return Answer(row.status_code, row.response)


async def _commit_with_answer(
    session: AsyncSession,
    idempotency: Idempotency,
    *,
    scope: str,
    request: Any,
    answer: Answer,
) -> Answer:
    """Commit the session with the answer to the key; a concurrent winner's answer wins."""
    if idempotency.key:
        await purge_expired(session, idempotency)
        session.add(
            IdempotencyRow(
                key=idempotency.row_key(scope),
                request_hash=request_hash(scope, request),
                status_code=answer.status_code,
                response=to_jsonable_python(answer.body),
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
    return answer


async def write_once(
    session: AsyncSession,
    idempotency: Idempotency,
    *,
    scope: str,
    request: Any,
    write: Callable[[], Awaitable[tuple[int, Any]]],
) -> Answer:
    """Run `write` once per key and commit it with its answer; replay it after that.

    Without a key, `write` runs and is committed every time. A write that raises is
    rolled back, and nothing is stored for its key (the same request may be sent again).

    Args:
        scope: what the request does, e.g. "PATCH /api/services/{id}".
        request: the body or parameters the key is bound to.
        write: makes the change in `session` without committing, and returns
            (status code, body as JSON).

    Returns:
        The answer: the first one given to this key, or `write`'s.

    Raises:
        IdempotencyKeyReusedError: the caller used the key for a different request.
    """
    try:
        stored = await replay(session, idempotency, scope=scope, request=request)
        if stored is not None:
            return stored
        status_code, body = await write()
        return await _commit_with_answer(
            session,
            idempotency,
            scope=scope,
            request=request,
            answer=Answer(status_code, body),
        )
    except Exception:
        await session.rollback()
        raise


async def commit_write(
    session: AsyncSession,
    keyed: KeyedRequest | None,
    write: Callable[[], Awaitable[tuple[int, Any]]],
) -> Answer:
    """`write_once` for the registry's writes: `keyed` None commits with no key."""
    if keyed is None:
        keyed = KeyedRequest(_NO_KEY, scope="", request=None)
    return await write_once(
        session, keyed.idempotency, scope=keyed.scope, request=keyed.request, write=write
    )
