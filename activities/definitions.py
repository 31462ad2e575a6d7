"""Loads the latest ACTIVE definition of a stored workflow by name (SDK-started runs).

The load is a local activity of the workflow, so its result is recorded in the
execution's history (a marker) however it was obtained. Pinning a definition reads the
workflow row and every service it uses, validates them into models and signs the steps;
a worker starting the same workflow by name over and over would do all of that for
every start. So the worker keeps what it pinned, per name (and version), together with
the *stamp* of the registry rows it was built from: the workflow row's id, version,
status and `updated_at`, and each used service's name, status and `updated_at`. Every
load reads that stamp again (one small query, no JSON columns) and pins anew when any
part of it changed: the workflow updated, renamed, deleted or re-created, a service's
endpoint, actions or status changed, a service deregistered. Every registry write
(registry/services.py, registry/workflows.py) sets `updated_at`, so a change made
through the gateway reaches the next start by name on every worker, with no message
between them and nothing to expire.

The stamp is read *before* the pin it will validate, so a change racing a pin can only
make the cached definition newer than its stamp (the next load pins again), never
older. The cached result is kept as the payload the SDK would have made of it
(`RawValue`), so a hit also skips serializing the definition.

On a SQLite registry even the stamp query is skipped while nothing at all was committed
to the database: SQLite's `PRAGMA data_version`, read on a connection of the loader's
own, changes whenever any other connection (of any process) commits. It is read before
the stamp query it stands for, so a commit racing that query makes the next load query
again. On PostgreSQL every load reads the stamp.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from dataclasses import dataclass, replace

from sqlalchemy import Executable, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from core.signing import definition_signatures
from definitions.contract import LOAD_DEFINITION_ACTIVITY
from definitions.models import PinnedDefinition
from registry.errors import NotFoundError, NotRunnableError
from registry.lookups import Stamp, pinned_by_name, registry_stamp, stamp_statement

CACHE_SIZE = 1024
"""Definitions kept per worker (least recently used first out)."""


@dataclass(frozen=True)
class _Cached:
    stamp: Stamp | None
    """None: only `services` is known (the names to stamp next time), nothing to reuse."""
    services: tuple[str, ...]
    result: RawValue | None = None
    definition: PinnedDefinition | None = None
    """The model `result` is the payload of (what `si:start` runs the first step of)."""
    statement: Executable | None = None
    """The stamp query for `services`, built once."""
    data_version: int | None = None
    """SQLite's data_version when `stamp` was last found current (None: not known)."""


class _SQLiteCommits:
    """Whether anything was committed to a SQLite database since a given moment.

    `PRAGMA data_version` on a connection of its own (opened once, only ever read):
    it changes when any other connection commits. Reading it touches no table, and is
    done on the event loop (microseconds, no thread hop)."""

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)

    def version(self) -> int | None:
        try:
            row = self._connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None  # then the stamp is read, as on PostgreSQL
        return int(row[0]) if row else None

    @classmethod
    def for_engine(cls, engine: object) -> _SQLiteCommits | None:
        if not isinstance(engine, AsyncEngine):
            return None
        url = make_url(str(engine.url))
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        try:
            return cls(str(url.database))
        except sqlite3.Error:
            return None


def _services_of(definition: PinnedDefinition) -> tuple[str, ...]:
    return tuple(sorted({step.service for step in definition.steps}))


class DefinitionActivities:
    """The by-name loader, with its cache of pinned definitions.

    Args:
        sessions: the registry's sessions.
        signing_key: DEFINITION_SIGNING_KEY; what is loaded is signed with it.
        cache_size: definitions kept; 0 turns the cache off (every load pins, as
            before the cache; bench/parity.py measures both).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        signing_key: str = "",
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._sessions = sessions
        self._signing_key = signing_key
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int | None], _Cached] = OrderedDict()
        self._commits = _SQLiteCommits.for_engine(sessions.kw.get("bind"))
        self.stamp_reads = 0
        """Stamp queries made (tests/gateway/test_definition_cache.py counts them)."""

    @activity.defn(name=LOAD_DEFINITION_ACTIVITY)
    async def load_definition(self, name: str, version: int | None = None) -> RawValue:
        """Pin the stored workflow `name` at its current version (or at `version`).

        Returns the PinnedDefinition as the payload the worker's converter makes of it.

        Raises:
            ApplicationError: non-retryable when no runnable workflow has that name;
                retryable when the database cannot be reached.
        """
        return (await self.pinned(name, version))[1]

    async def pinned(
        self, name: str, version: int | None = None
    ) -> tuple[PinnedDefinition, RawValue]:
        """The pinned definition and its payload; raises what `load_definition` raises."""
        try:
            return await self._load(name, version)
        except (NotFoundError, NotRunnableError) as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise ApplicationError(
                f"registry database unavailable: {exc}", type="DatabaseUnavailable"
            ) from exc

    async def _stamp(self, name: str, cached: _Cached) -> Stamp:
        self.stamp_reads += 1
        engine = self._sessions.kw.get("bind")
        if isinstance(engine, AsyncEngine):
            # A plain connection: the stamp needs no ORM session, and a hit is then all
            # the database work of a start.
            async with engine.connect() as connection:
                return await registry_stamp(connection, name, cached.services, cached.statement)
        async with self._sessions() as session:
            return await registry_stamp(session, name, cached.services, cached.statement)

    async def _load(self, name: str, version: int | None) -> tuple[PinnedDefinition, RawValue]:
        key = (name, version)
        cached = self._cache.get(key) if self._cache_size > 0 else None
        stamp: Stamp | None = None
        data_version = self._commits.version() if self._commits is not None else None
        if cached is not None and cached.result is not None and cached.definition is not None:
            if data_version is not None and data_version == cached.data_version:
                self._cache.move_to_end(key)  # nothing committed since its stamp was current
                return cached.definition, cached.result
        if cached is not None:
            # Read before the pin below, so a change racing it invalidates what it pins.
            stamp = await self._stamp(name, cached)
            if (
                stamp == cached.stamp
                and cached.result is not None
                and cached.definition is not None
            ):
                self._cache[key] = replace(cached, data_version=data_version)
                self._cache.move_to_end(key)
                return cached.definition, cached.result
        async with self._sessions() as session:
            definition = await pinned_by_name(session, name, version)
        # Loaded from the registry, so as trusted as the gateway's copy: signed here,
        # the steps pass the worker's signature check like a gateway start's.
        signatures = definition_signatures(self._signing_key, definition)
        definition = definition.model_copy(update={"signatures": signatures})
        result = RawValue(activity.payload_converter().to_payload(definition))
        if self._cache_size > 0:
            services = _services_of(definition)
            known = cached is not None and cached.services == services
            # The stamp covers the right services only when it was read for them; else
            # keep just the names, and the next load stamps and pins them together.
            self._cache[key] = _Cached(
                stamp=stamp if known else None,
                services=services,
                result=result if known else None,
                definition=definition if known else None,
                statement=cached.statement
                if cached is not None and known
                else stamp_statement(services),
                data_version=data_version if known else None,
            )
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return definition, result
