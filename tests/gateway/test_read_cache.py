"""The registry read cache: bounded in bytes, keyed on validated parameters, cleared only
by a write that succeeded.

The app is the real one (lifespan, routes, middleware) in this process, with API_KEYS
set, so the cache can be looked at between requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from core.settings import Settings
from gateway.app import create_app
from gateway.read_cache import ReadCache
from tests.support.builders import action, service

KEY = "cache-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def app(temporal, tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        temporal_address=temporal.address,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        data_dir=tmp_path,
        environment="test",
        api_keys=KEY,
        registry_cache_seconds=60,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway/api") as c:
        yield c


def test_cache_never_holds_more_than_its_bound_in_bytes():
    cache = ReadCache(ttl=60, max_bytes=1000)
    for index in range(500):
        cache.put(("page", index), b"x" * 90, generation=cache.generation)
        assert cache.size_bytes <= 1000
    assert len(cache) == 11
    assert cache.get(("page", 499)) == b"x" * 90  # the newest stay, the oldest went
    assert cache.get(("page", 0)) is None
    cache.put("too-big", b"x" * 1001, generation=cache.generation)
    assert cache.get("too-big") is None


def test_cache_refuses_a_read_that_began_before_a_write_ended():
    cache = ReadCache(ttl=60)
    began = cache.generation
    cache.invalidate()
    cache.put("key", b"stale", generation=began)
    assert cache.get("key") is None


def test_cache_entries_expire_after_the_ttl():
    now = [0.0]
    cache = ReadCache(ttl=1, clock=lambda: now[0])
    cache.put("key", b"body", generation=cache.generation)
    assert cache.get("key") == b"body"
    now[0] = 2.0
    assert cache.get("key") is None
    assert cache.size_bytes == 0


async def test_junk_query_parameters_do_not_grow_the_cache(app, client):
    cache: ReadCache = app.state.read_cache
    for index in range(300):
        answer = await client.get(
            "/services", params={f"junk{index}": "x" * 200, "page": 1}, headers=AUTH
        )
        assert answer.status_code == 200, answer.text
    assert len(cache) == 1
    # Equivalent spellings of the same validated parameters share one entry.
    await client.get("/services?per_page=20&page=1", headers=AUTH)
    await client.get("/services?page=01", headers=AUTH)
    assert len(cache) == 1
    await client.get("/services?page=2", headers=AUTH)
    assert len(cache) == 2


async def test_a_refused_write_does_not_clear_the_cache(app, client):
    cache: ReadCache = app.state.read_cache
    assert (await client.get("/workflows", headers=AUTH)).status_code == 200
    assert len(cache) == 1
    body = service("cached", "http://127.0.0.1:9/x", [action("run")])
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = await client.post("/services", json=body, headers=headers)
        assert refused.status_code == 401
        assert (await client.delete("/services/some-id", headers=headers)).status_code == 401
    invalid = await client.post("/services", json={"name": ""}, headers=AUTH)
    assert invalid.status_code == 422
    assert len(cache) == 1
    created = await client.post("/services", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert len(cache) == 0
