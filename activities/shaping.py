"""Per-service load shaping, shared by all workers through the registry database.

A service may carry `max_concurrency` (calls in flight at once) and
`rate_limit_per_second` (calls started per second). Before a step calls such a service,
the worker takes a slot and a token in one transaction, serialized per service
(PostgreSQL: a transaction-scoped advisory lock on a hash of the service's name; SQLite:
`BEGIN IMMEDIATE`, which serializes every writer):

- concurrency: expired leases of the service are deleted, the live ones counted, and
  one is inserted if they are under the limit. A lease expires after the action's
  timeout and `LEASE_MARGIN` seconds, so one a crashed worker never released frees
  itself; the worker deletes its lease when the call is over.
- rate: a token bucket per service, capacity max(1, rate), refilled at `rate` tokens
  per second; a call takes one token.

Every time in the leases and the buckets is the database's clock, read once per
transaction once the service's lock is held (PostgreSQL `clock_timestamp()`, SQLite
`julianday('now')`), never a worker's: a worker whose clock runs ahead would otherwise
stamp the bucket in the future and starve the service on every other worker. A stamp
already ahead of the database's clock (an older worker's) refills from the database's
now, and is moved back to it.

No slot or no token: the step heartbeats, sleeps and asks again, inside the same
attempt (waiting is no failure, so it consumes no retry; an attempt still ends at the
action's timeout). Without a token it sleeps until the bucket's next token is due (at
most MAX_WAIT); without a slot, whose release it cannot foresee, it backs off
exponentially with jitter from MIN_WAIT to MAX_WAIT. The limits are looked up by
service name, cached for `CACHE_SECONDS`, so a change reaches the workers within that
time. A service's own 429 and Retry-After are handled by the step as before.

Errors::

    ShapingUnavailable   the registry database could not be asked; nothing was sent
                         to the service (a later attempt may succeed).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from registry.lookups import ServiceLimits, limits_for_call
from registry.tables import ServiceBucketRow, ServiceLeaseRow

log = logging.getLogger("activities.shaping")

CACHE_SECONDS = 1.0
"""How long a worker keeps a service's limits (or the lack of them) in memory."""
LEASE_MARGIN = 10.0
"""Seconds a lease outlives the action's timeout before it frees itself."""
MIN_WAIT = 0.05
MAX_WAIT = 1.0
"""A waiting step asks again after MIN_WAIT to MAX_WAIT seconds (see `pause`)."""
MIN_TOKEN_WAIT = 0.001
"""The least a step waits for a token that is due (a wait rounded to nothing)."""

_DB_NOW = {
    # After pg_advisory_xact_lock: the time the lock is held, so each holder's is at or
    # after the one before it (`now()` is the transaction's start, before the wait for
    # the lock, and could run backwards from one holder to the next).
    "postgresql": "SELECT extract(epoch FROM clock_timestamp())::float8",
    # `unixepoch('subsec')` needs SQLite 3.42; this is the same milliseconds on any.
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
}


class ShapingUnavailable(Exception):
    """The registry database could not grant or refuse a slot; nothing was sent."""


@dataclass(frozen=True)
class _Outcome:
    granted: bool
    lease_id: str | None = None
    due_in: float | None = None
    """Seconds until the bucket's next token; None: not known (no free slot)."""


@dataclass
class _Entry:
    limits: ServiceLimits
    until: float


def pause(refusals: int, due_in: float | None) -> float:
    """How long a step waits before it asks again, after `refusals` refusals in a row
    (the first is 0).

    Args:
        due_in: seconds until the bucket's next token, when that was the refusal: the
            step waits exactly that (up to MAX_WAIT, so it still heartbeats), neither
            asking before the token is due nor sleeping past it.
    """
    if due_in is not None:
        return min(max(due_in, MIN_TOKEN_WAIT), MAX_WAIT)
    ceiling = min(MAX_WAIT, MIN_WAIT * 2 ** min(refusals + 1, 16))
    return random.uniform(ceiling / 2, ceiling)


async def database_now(db: AsyncConnection) -> float:
    """The database's clock, in seconds since the epoch."""
    return float((await db.execute(text(_DB_NOW[db.dialect.name]))).scalar_one())


def lock_key(service_name: str) -> int:
    """The PostgreSQL advisory lock of a service: a signed 64-bit hash of its name."""
    digest = hashlib.sha256(b"si-shaping\0" + service_name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Shaping:
    """The worker's side of load shaping (see the module's docstring).

    Args:
        sessions: the registry database.
        cache_seconds: how long a service's limits are kept.
        clock: monotonic seconds, for the cache (leases and buckets use the database's).
        sleep: how a waiting step waits (the test seam).
    """

    sessions: async_sessionmaker[AsyncSession]
    cache_seconds: float = CACHE_SECONDS
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _entries: dict[str, _Entry] = field(default_factory=dict)

    async def limits(self, service_name: str) -> ServiceLimits:
        """The service's limits, cached for `cache_seconds`.

        Raises:
            ShapingUnavailable: the registry database is unreachable.
        """
        now = self.clock()
        entry = self._entries.get(service_name)
        if entry is not None and entry.until > now:
            return entry.limits
        try:
            async with self.sessions() as session:
                limits = await limits_for_call(session, service_name)
        except (SQLAlchemyError, OSError) as exc:
            if entry is not None:
                # A registry outage must not stop running executions: the limits this
                # worker last knew stand until it is back (a service without limits runs).
                return entry.limits
            # Nothing known and no way to ask: run unshaped rather than stop every step
            # of every service during the outage (the service's 429s still apply).
            log.warning(
                "load limits of service %r unknown, registry database unavailable (%s); "
                "calling it without them",
                service_name,
                type(exc).__name__,
            )
            return ServiceLimits()
        self._entries[service_name] = _Entry(limits, now + self.cache_seconds)
        return limits

    @asynccontextmanager
    async def slot(
        self, service_name: str, *, hold_seconds: float, heartbeat: Callable[[], None]
    ) -> AsyncIterator[None]:
        """Hold a slot (and a token) of the service for the body; at once for a service
        without limits. Waits, calling `heartbeat`, while none is free.

        Args:
            hold_seconds: the call's timeout; the lease frees itself LEASE_MARGIN later.

        Raises:
            ShapingUnavailable: the registry database could not be asked.
        """
        lease_id = await self._acquire(service_name, hold_seconds, heartbeat)
        try:
            yield
        finally:
            if lease_id is not None:
                await self._release(service_name, lease_id)

    async def _acquire(
        self, service_name: str, hold_seconds: float, heartbeat: Callable[[], None]
    ) -> str | None:
        refusals = 0
        while True:
            limits = await self.limits(service_name)
            if not limits.any:
                return None
            try:
                outcome = await self._try(service_name, limits, hold_seconds + LEASE_MARGIN)
            except (SQLAlchemyError, OSError) as exc:
                raise ShapingUnavailable(
                    f"could not take a slot under its load limits: registry database "
                    f"unavailable ({type(exc).__name__})"
                ) from None
            if outcome.granted:
                return outcome.lease_id
            heartbeat()
            await self.sleep(pause(refusals, outcome.due_in))
            refusals += 1

    async def _try(self, service_name: str, limits: ServiceLimits, hold: float) -> _Outcome:
        """One locked transaction: a slot and a token, both or neither."""
        async with self.sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                async with session.begin():
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": lock_key(service_name)},
                    )
                    return await self._take(await session.connection(), service_name, limits, hold)
            # SQLite: the driver's own BEGIN is deferred, so the count and the insert
            # could interleave with another worker's; BEGIN IMMEDIATE takes the write
            # lock first (waiting up to the engine's busy timeout).
            connection = await session.connection(
                execution_options={"isolation_level": "AUTOCOMMIT"}
            )
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                outcome = await self._take(connection, service_name, limits, hold)
            except BaseException:
                await connection.exec_driver_sql("ROLLBACK")
                raise
            await connection.exec_driver_sql("COMMIT")
            return outcome

    async def _take(
        self, db: AsyncConnection, service_name: str, limits: ServiceLimits, hold: float
    ) -> _Outcome:
        now = await database_now(db)
        if limits.max_concurrency is not None:
            await db.execute(
                delete(ServiceLeaseRow).where(
                    ServiceLeaseRow.service_name == service_name,
                    ServiceLeaseRow.expires_at <= now,
                )
            )
            live = (
                await db.execute(
                    select(func.count())
                    .select_from(ServiceLeaseRow)
                    .where(ServiceLeaseRow.service_name == service_name)
                )
            ).scalar_one()
            if live >= limits.max_concurrency:
                return _Outcome(granted=False)
        rate = limits.rate_limit_per_second
        if rate is not None:
            capacity = max(1.0, rate)
            row = (
                await db.execute(
                    select(ServiceBucketRow.tokens, ServiceBucketRow.updated_at).where(
                        ServiceBucketRow.service_name == service_name
                    )
                )
            ).first()
            ahead = row is not None and row.updated_at > now
            tokens = (
                capacity
                if row is None
                else min(capacity, row.tokens + max(0.0, now - row.updated_at) * rate)
            )
            if tokens < 1.0:
                if ahead:
                    # Refill from the database's now on: else nothing refills until its
                    # clock reaches the stamp.
                    await db.execute(
                        update(ServiceBucketRow)
                        .where(ServiceBucketRow.service_name == service_name)
                        .values(updated_at=now)
                    )
                return _Outcome(granted=False, due_in=(1.0 - tokens) / rate)
            values = {"tokens": tokens - 1.0, "updated_at": now}
            if row is None:
                await db.execute(
                    insert(ServiceBucketRow).values(service_name=service_name, **values)
                )
            else:
                await db.execute(
                    update(ServiceBucketRow)
                    .where(ServiceBucketRow.service_name == service_name)
                    .values(**values)
                )
        lease_id = None
        if limits.max_concurrency is not None:
            lease_id = str(uuid.uuid4())
            await db.execute(
                insert(ServiceLeaseRow).values(
                    service_name=service_name, lease_id=lease_id, expires_at=now + hold
                )
            )
        return _Outcome(granted=True, lease_id=lease_id)

    async def _release(self, service_name: str, lease_id: str) -> None:
        """Delete the lease; if the database cannot be reached, it expires by itself."""
        try:
            async with self.sessions() as session:
                await session.execute(
                    delete(ServiceLeaseRow).where(
                        ServiceLeaseRow.service_name == service_name,
                        ServiceLeaseRow.lease_id == lease_id,
                    )
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            log.warning(
                "could not release a lease of service %r (%s); it expires by itself",
                service_name,
                type(exc).__name__,
            )
