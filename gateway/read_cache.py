"""Serialized answers of registry reads, kept briefly in the gateway process.

A registry read costs milliseconds of ORM and validation work; the same page served
from memory costs a fraction of one. Every successful write this gateway answers clears
the cache when it ends, so its own clients always read their writes. Writes made
through another gateway show here within REGISTRY_CACHE_SECONDS (default 1 s); 0 turns
the cache off.

The cache is bounded in bytes (MAX_CACHE_BYTES; the oldest entries go first) and keyed
on the validated parameters of a read (the route's own key), never on the raw query
string, so junk query parameters cannot grow it. A write that fails (a 401 without a
key, a 422, a 404) changed nothing and clears nothing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_CACHE_BYTES = 8 * 1024 * 1024
"""What the cached bodies may take together; a single body over it is not cached."""


class ReadCache:
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
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self.generation = 0

    @property
    def size_bytes(self) -> int:
        """The bytes of the bodies held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            self._drop(key)
            return None
        return entry[1]

    def put(self, key: Hashable, body: bytes, *, generation: int) -> None:
        """Keep `body` unless a write ended since the read that made it began."""
        if self.ttl <= 0 or generation != self.generation or len(body) > self.max_bytes:
            return
        self._drop(key)
        while self._entries and self._bytes + len(body) > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[key] = (self._clock() + self.ttl, body)
        self._bytes += len(body)

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])


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


class InvalidateOnWrite:
    """Clears the read cache when a non-GET request to the registry ends with a 2xx.

    Only an authenticated request that the routes accepted can answer 2xx, so a caller
    without a key cannot empty the cache with writes that are refused.
    """

    def __init__(self, app: ASGIApp, *, cache: ReadCache, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.cache = cache
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        succeeded = False

        async def watch(message: Message) -> None:
            nonlocal succeeded
            if message["type"] == "http.response.start":
                succeeded = 200 <= message["status"] < 300
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if succeeded:
                self.cache.invalidate()
