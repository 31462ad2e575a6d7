"""Serialized answers of registry reads, kept briefly in the gateway process, behind the
routes that make them.

A registry read costs milliseconds of ORM and validation work; the same page served
from memory costs a fraction of one. The read routes call the helpers here with what
routing has already settled: the caller passed `require_api_key` (the routers'
dependency) and the query parameters passed the route's validation. So this module
knows no path, parses no query string and checks no key. Its keys are the validated
parameters of a read, never the raw query string, so equivalent spellings share an
entry and junk parameters cannot grow it; every caller the routers let in reads the
same registry, so no key names the caller.

The routes that write the registry clear the cache once their write has committed
(`ReadCache.invalidate`), so this gateway's clients always read their writes. A write
refused before its route runs (a 401 without a key, a 422) or failing in it (a 404, a
409) clears nothing; starting an execution writes nothing to the registry and clears
nothing either. Writes made through another gateway show here within REGISTRY_CACHE_SECONDS
(default 1 s); 0 turns the cache off.

The cache is bounded in bytes (MAX_CACHE_BYTES; the oldest entries go first).

List pages (`list_page`) are not cached page by page alone: a page of 20 out of
thousands is rarely asked for twice within a second. The cache also holds the table's
order (id, updated_at and status of every row, one query at most once per
REGISTRY_CACHE_SECONDS) and the JSON of each row, keyed on its id and updated_at (its
version), so any page is a slice of the order and a join of row JSONs. A row whose
updated_at moved is read again; a row JSON is built once per version. The rows' JSON
is bounded in bytes too (MAX_ROW_BYTES), and a table of more rows than the order may
hold within MAX_CACHE_BYTES / 2 is listed page by page.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from fastapi import Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from registry.paging import Row, listing_of, public_page, rows_json
from registry.schemas import DefinitionStatus, Page

MAX_CACHE_BYTES = 8 * 1024 * 1024
"""What the cached bodies may take together; a single body over it is not cached."""

MAX_ROW_BYTES = 16 * 1024 * 1024
"""What the JSON of listed rows may take together (the least recently used go first)."""

LISTING_ROW_BYTES = 200
"""What one row of a table's order takes in memory (id, updated_at, status, pointers),
counted against MAX_CACHE_BYTES."""


@dataclass
class Listing:
    """A table's rows in list order: their ids, versions (updated_at) and statuses."""

    ids: list[str]
    versions: list[Any]
    statuses: list[str]
    _by_status: dict[str, list[int]] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return 64 + LISTING_ROW_BYTES * len(self.ids)

    def positions(self, status: str | None) -> Sequence[int]:
        """Where the rows of `status` (all rows for None) are, in list order."""
        if status is None:
            return range(len(self.ids))
        found = self._by_status.get(status)
        if found is None:
            found = self._by_status[status] = [
                i for i, s in enumerate(self.statuses) if s == status
            ]
        return found


class ReadCache:
    """What the read routes have answered lately, in bytes (or models), for the rules of
    this module; one per app, at `app.state.read_cache`."""

    def __init__(
        self,
        *,
        ttl: float,
        max_bytes: int = MAX_CACHE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any, int]] = OrderedDict()
        self._bytes = 0
        self._rows: OrderedDict[Hashable, bytes] = OrderedDict()
        self._row_bytes = 0
        self.max_row_bytes = MAX_ROW_BYTES
        self._listings: dict[Hashable, tuple[float, Listing | None]] = {}
        self._loading: dict[Hashable, tuple[int, asyncio.Future[Listing | None]]] = {}
        self.generation = 0

    @property
    def size_bytes(self) -> int:
        """The bytes of the bodies held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            self._drop(key)
            return None
        return entry[1]

    def put(self, key: Hashable, body: bytes, *, generation: int) -> None:
        """Keep `body` unless a write ended since the read that made it began."""
        self.put_value(key, body, size=len(body), generation=generation)

    def put_value(self, key: Hashable, value: Any, *, size: int, generation: int) -> None:
        """Keep `value`, which takes `size` bytes, under the rules of `put`."""
        if self.ttl <= 0 or generation != self.generation or size > self.max_bytes:
            return
        self._drop(key)
        while self._entries and self._bytes + size > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[key] = (self._clock() + self.ttl, value, size)
        self._bytes += size

    def row(self, key: Hashable) -> bytes | None:
        """The JSON of one row version (key: table, id, updated_at), if held."""
        body = self._rows.get(key)
        if body is not None:
            self._rows.move_to_end(key)
        return body

    def put_row(self, key: Hashable, body: bytes, *, generation: int) -> None:
        """Keep the JSON of one row version, under the rules of `put`."""
        size = len(body) + 100
        if self.ttl <= 0 or generation != self.generation or size > self.max_row_bytes:
            return
        old = self._rows.pop(key, None)
        if old is not None:
            self._row_bytes -= len(old) + 100
        while self._rows and self._row_bytes + size > self.max_row_bytes:
            _, dropped = self._rows.popitem(last=False)
            self._row_bytes -= len(dropped) + 100
        self._rows[key] = body
        self._row_bytes += size

    @property
    def row_bytes(self) -> int:
        """The bytes the rows' JSON takes now (100 bytes of overhead counted per row)."""
        return self._row_bytes

    async def listing(
        self, key: Hashable, read: Callable[[], Awaitable[Listing | None]]
    ) -> Listing | None:
        """The order of a table, read by `read` when no fresh copy is held; concurrent
        callers share one read. None: too many rows to hold (or the shared read failed)."""
        held = self._listings.get(key)
        if held is not None:
            if held[0] >= self._clock():
                return held[1]
            del self._listings[key]
        generation = self.generation
        joined = self._loading.get(key)
        if joined is not None and joined[0] == generation:
            # Only a read that began after the last write ended may be shared.
            return await asyncio.shield(joined[1])
        loading: asyncio.Future[Listing | None] = asyncio.get_running_loop().create_future()
        entry = (generation, loading)
        self._loading[key] = entry
        try:
            found = await read()
        except BaseException:
            loading.set_result(None)
            raise
        finally:
            if self._loading.get(key) is entry:
                del self._loading[key]
        if found is not None and found.size_bytes > self.max_bytes // 2:
            found = None
        # None (too big to hold) is kept too, so that each page is then read as one.
        if self.ttl > 0 and generation == self.generation:
            self._listings[key] = (self._clock() + self.ttl, found)
        loading.set_result(found)
        return found

    def held_listing(self, key: Hashable) -> Listing | None:
        """The order of a table if a fresh copy is held (None otherwise, or too big)."""
        held = self._listings.get(key)
        if held is None or held[0] < self._clock():
            return None
        return held[1]

    def drop_listing(self, key: Hashable) -> None:
        self._listings.pop(key, None)

    def invalidate(self) -> None:
        """Forget everything held. The routes that write the registry call it once their
        write has committed; a read that began before is not kept when it ends."""
        self.generation += 1
        self._entries.clear()
        self._bytes = 0
        self._rows.clear()
        self._row_bytes = 0
        self._listings.clear()

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]


async def cached_read(
    request: Request, key: tuple[Any, ...], read: Callable[[], Awaitable[BaseModel]]
) -> Response:
    """The JSON of `read()`, from the cache when a fresh copy is there.

    Args:
        key: what identifies the answer: the route and its validated parameters.
    """
    cache: ReadCache = request.app.state.read_cache
    body = cache.get(key)
    if body is None:
        generation = cache.generation
        body = (await read()).model_dump_json().encode()
        cache.put(key, body, generation=generation)
    return Response(body, media_type="application/json")


ModelT = TypeVar("ModelT", bound=BaseModel)


async def cached_model(
    request: Request, key: tuple[Any, ...], read: Callable[[], Awaitable[ModelT]]
) -> ModelT:
    """`read()`, from the cache when a fresh copy is there; under the rules of
    `cached_read` (a read that fails is not kept). The model is shared by the requests
    that get it from the cache: they must not change it."""
    cache: ReadCache = request.app.state.read_cache
    held = cache.get(key)
    if held is not None:
        return cast(ModelT, held)
    generation = cache.generation
    value = await read()
    if cache.ttl > 0:
        size = len(value.model_dump_json()) + 200
        cache.put_value(key, value, size=size, generation=generation)
    return value


def page_json(items: Sequence[bytes], *, total: int, page: int, per_page: int) -> bytes:
    """The JSON of a registry page (registry.schemas.Page) around its items' JSON, as
    `Page.model_dump_json()` writes it."""
    pages = (total + per_page - 1) // per_page
    return b"".join(
        (
            b'{"items":[',
            b",".join(items),
            f'],"total":{total},"page":{page},"per_page":{per_page},"pages":{pages}}}'.encode(),
        )
    )


def _page_in_memory(
    cache: ReadCache, table: str, *, status: str | None, page: int, per_page: int
) -> bytes | None:
    """A list page from memory alone: its cached bytes, or built from the held order of
    the table and the held JSON of its rows; None if anything must be read."""
    page_key = (table, status, page, per_page)
    held = cache.get(page_key)
    if held is not None:
        return cast(bytes, held)
    listing = cache.held_listing(("listing", table))
    if listing is None:
        return None
    positions = listing.positions(status)
    bodies = []
    for i in positions[(page - 1) * per_page : page * per_page]:
        body = cache.row((table, listing.ids[i], listing.versions[i]))
        if body is None:
            return None
        bodies.append(body)
    body = page_json(bodies, total=len(positions), page=page, per_page=per_page)
    cache.put(page_key, body, generation=cache.generation)
    return body


async def cached_listing(
    request: Request,
    table: str,
    *,
    status: str | None,
    page: int,
    per_page: int,
    read_listing: Callable[[int], Awaitable[Listing | None]],
    read_rows: Callable[[list[str]], Awaitable[dict[str, tuple[Any, bytes]]]],
    read_page: Callable[[], Awaitable[BaseModel]],
) -> Response:
    """A list page served from the table's cached order and its rows' cached JSON.

    Args:
        table: names the table in the cache's keys.
        read_listing: reads the order of the table, or None if it has more rows than
            the number it is given.
        read_rows: reads rows by id: their version and JSON.
        read_page: reads the page as before (a table too big to hold, no cache).
    """
    cache: ReadCache = request.app.state.read_cache
    page_key = (table, status, page, per_page)
    if cache.ttl <= 0:
        return await cached_read(request, page_key, read_page)
    held = _page_in_memory(cache, table, status=status, page=page, per_page=per_page)
    if held is not None:
        return Response(held, media_type="application/json")
    generation = cache.generation
    max_rows = cache.max_bytes // 2 // LISTING_ROW_BYTES
    listing = await cache.listing(("listing", table), lambda: read_listing(max_rows))
    if listing is None:
        return await cached_read(request, page_key, read_page)
    positions = listing.positions(status)
    chosen = positions[(page - 1) * per_page : page * per_page]
    keys = [(table, listing.ids[i], listing.versions[i]) for i in chosen]
    bodies = [cache.row(key) for key in keys]
    missing = [key for key, body in zip(keys, bodies, strict=True) if body is None]
    if missing:
        found = await read_rows([key[1] for key in missing])
        for key in missing:
            row = found.get(key[1])
            if row is None or row[0] != key[2]:
                # Changed or deleted since the order was read (through another gateway):
                # read the order again next time, and this page as one now.
                cache.drop_listing(("listing", table))
                return await cached_read(request, page_key, read_page)
            cache.put_row(key, row[1], generation=generation)
        bodies = [
            found[key[1]][1] if body is None else body
            for key, body in zip(keys, bodies, strict=True)
        ]
    body = page_json(
        [b for b in bodies if b is not None], total=len(positions), page=page, per_page=per_page
    )
    cache.put(page_key, body, generation=generation)
    return Response(body, media_type="application/json")


NamedRow = Callable[[AsyncSession, str], Awaitable[Row | None]]
"""The registry's lookup of a row by its (unique) name."""


async def list_page(
    request: Request,
    table: type[Row],
    page_model: type[Page[Any]],
    to_public: Callable[[Row], BaseModel],
    *,
    status: DefinitionStatus | None,
    page: int,
    per_page: int,
    name: str | None = None,
    named: NamedRow[Row] | None = None,
) -> Response:
    """A list route's answer from its validated query parameters: `cached_listing` of a
    registry table; a database session is opened only when something must be read.

    Args:
        name: list only the row of that name (read with `named`; names are unique, so
            the page holds one row or none), cached under its own key.
    """
    sessions = request.app.state.sessions
    if name is not None:
        assert named is not None
        status_value = status.value if status is not None else None

        async def read_named() -> BaseModel:
            # No name holds a NUL, and PostgreSQL would refuse the query (a 503).
            found = []
            if "\x00" not in name:
                async with sessions() as session:
                    row = await named(session, name)
                    if row is not None and status_value in (None, row.status):
                        found = [to_public(row)]
            return page_model.of(
                found[(page - 1) * per_page : page * per_page],
                total=len(found),
                page=page,
                per_page=per_page,
            )

        key = (table.__tablename__, "name", name, status_value, page, per_page)
        return await cached_read(request, key, read_named)

    async def read_page() -> BaseModel:
        async with sessions() as session:
            return await public_page(
                session, table, page_model, to_public, status=status, page=page, per_page=per_page
            )

    async def read_listing(max_rows: int) -> Listing | None:
        async with sessions() as session:
            found = await listing_of(session, table, max_rows=max_rows)
        return Listing(*found) if found is not None else None

    async def read_rows(ids: list[str]) -> dict[str, tuple[Any, bytes]]:
        async with sessions() as session:
            return await rows_json(session, table, to_public, ids)

    return await cached_listing(
        request,
        table.__tablename__,
        status=status.value if status is not None else None,
        page=page,
        per_page=per_page,
        read_listing=read_listing,
        read_rows=read_rows,
        read_page=read_page,
    )
