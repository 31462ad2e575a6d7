"""Serialized answers of registry reads, kept briefly in the gateway process.

A registry read costs milliseconds of ORM and validation work; the same page served
from memory costs a fraction of one. Every write this gateway handles clears the cache
when it ends, so its own clients always read their writes. Writes made through another
gateway show here within REGISTRY_CACHE_SECONDS (default 1 s); 0 turns the cache off.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_ENTRIES = 10_000


class ReadCache:
    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, bytes]] = {}
        self.generation = 0

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def put(self, key: str, body: bytes, *, generation: int) -> None:
        """Keep `body` unless a write ended since the read that made it began."""
        if self.ttl <= 0 or generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (self._clock() + self.ttl, body)

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()


async def cached_read(request: Request, read: Callable[[], Awaitable[BaseModel]]) -> Response:
    """The JSON of `read()`, from the cache when a fresh copy is there."""
    cache: ReadCache = request.app.state.read_cache
    key = f"{request.url.path}?{request.url.query}"
    body = cache.get(key)
    if body is None:
        generation = cache.generation
        body = (await read()).model_dump_json().encode()
        cache.put(key, body, generation=generation)
    return Response(body, media_type="application/json")


class InvalidateOnWrite:
    """Clears the read cache when any non-GET request to the registry has ended."""

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
        try:
            await self.app(scope, receive, send)
        finally:
            self.cache.invalidate()
