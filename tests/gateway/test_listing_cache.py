"""List pages served from the cached order of a table and its rows' JSON, and pinned
definitions served from the read cache: the same bytes as a read page by page, cleared
by every write through the same gateway, and a write through another gateway on the
same database visible within REGISTRY_CACHE_SECONDS.

Three real apps in this process share one registry (SQLite and PostgreSQL): `a` with a
long TTL, `b` with a short one, and `plain` without cache (every page read with its own
queries, as before the cache).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.settings import Settings
from gateway.app import create_app
from gateway.read_cache import Listing, ReadCache
from tests.support.builders import action, chain, service

KEY = "listing-cache-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SHORT_TTL = 0.5


class Gateways:
    def __init__(self) -> None:
        self.apps: dict[str, FastAPI] = {}
        self.clients: dict[str, httpx.AsyncClient] = {}

    def cache(self, name: str) -> ReadCache:
        return self.apps[name].state.read_cache


@pytest.fixture
async def gateways(temporal, database_url: str, tmp_path: Path) -> AsyncIterator[Gateways]:
    found = Gateways()
    # A task queue no worker polls: executions started here stay pending and harmless.
    queue = f"listing-cache-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for name, ttl in (("a", 60.0), ("b", SHORT_TTL), ("plain", 0.0)):
            settings = Settings(
                temporal_address=temporal.address,
                database_url=database_url,
                data_dir=tmp_path,
                environment="test",
                api_keys=KEY,
                task_queue=queue,
                registry_cache_seconds=ttl,
            )
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://gateway/api",
                headers=AUTH,
            )
            await stack.enter_async_context(client)
            found.apps[name], found.clients[name] = app, client
        yield found


async def ok(answer: Any) -> httpx.Response:
    response = await answer
    assert response.status_code in (200, 201, 202), response.text
    return response


async def same_pages(gw: Gateways, names: tuple[str, ...], path: str) -> None:
    """Every page of `path` (each status, several page sizes, one past the end) is the
    same bytes through `names` as through the gateway without cache."""
    for status in (None, "ACTIVE", "INACTIVE"):
        for per_page in (1, 7, 100):
            params: dict[str, Any] = {"per_page": per_page}
            if status:
                params["status"] = status
            first = await ok(gw.clients["plain"].get(path, params=params))
            pages = first.json()["pages"]
            for page in sorted({1, 2, max(pages, 1), max(pages, 1) + 1}):
                params["page"] = page
                expected = (await ok(gw.clients["plain"].get(path, params=params))).content
                for name in names:
                    got = await ok(gw.clients[name].get(path, params=params))
                    assert got.content == expected, (name, path, params)
                    assert got.headers["content-type"] == "application/json"


async def some_services(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    made = []
    for index in range(count):
        body = service(f"lc-{tag}-{index}", f"http://127.0.0.1:9/{index}", [action("run")])
        made.append((await ok(client.post("/services", json=body))).json())
    return made


async def test_list_pages_are_the_bytes_of_a_page_read_on_its_own(gateways: Gateways):
    made = await some_services(gateways.clients["a"], 9)
    for row in made[:3]:
        await ok(gateways.clients["a"].patch(f"/services/{row['id']}", json={"status": "INACTIVE"}))
    await ok(
        gateways.clients["a"].post(
            "/workflows",
            json={
                "name": f"lc-{uuid.uuid4().hex[:8]}",
                "steps": chain(("s", made[4]["name"], "run")),
            },
        )
    )
    for _ in range(2):  # the second time from the cache
        await same_pages(gateways, ("a", "b"), "/services")
        await same_pages(gateways, ("a", "b"), "/workflows")


async def test_a_write_through_the_gateway_shows_in_its_next_list(gateways: Gateways):
    a = gateways.clients["a"]
    made = await some_services(a, 3)
    await same_pages(gateways, ("a",), "/services")
    await ok(a.patch(f"/services/{made[0]['id']}", json={"description": "changed here"}))
    await same_pages(gateways, ("a",), "/services")
    await ok(a.delete(f"/services/{made[1]['id']}"))
    await same_pages(gateways, ("a",), "/services")
    added = await some_services(a, 1)
    listed = (await ok(a.get("/services", params={"per_page": 100, "page": 1}))).json()
    total = listed["total"]
    last = (await ok(a.get("/services", params={"per_page": 1, "page": total}))).json()
    assert last["items"][0]["id"] == added[0]["id"]
    await same_pages(gateways, ("a",), "/services")


async def _eventually(check: Callable[[], Any], *, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await check()
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_a_write_through_another_gateway_shows_within_the_ttl(gateways: Gateways):
    a, b = gateways.clients["a"], gateways.clients["b"]
    made = await some_services(a, 2)
    await same_pages(gateways, ("b",), "/services")  # b holds the order and the rows
    await ok(a.patch(f"/services/{made[0]['id']}", json={"description": "changed elsewhere"}))
    await ok(a.delete(f"/services/{made[1]['id']}"))
    added = await some_services(a, 1)
    began = asyncio.get_running_loop().time()

    async def shown() -> None:
        got = await ok(b.get(f"/services/{made[0]['id']}"))
        assert got.json()["description"] == "changed elsewhere"
        await same_pages(gateways, ("b",), "/services")
        ids = set()
        page = 1
        while True:
            listed = (await ok(b.get("/services", params={"per_page": 100, "page": page}))).json()
            ids |= {item["id"] for item in listed["items"]}
            if page >= listed["pages"]:
                break
            page += 1
        assert added[0]["id"] in ids and made[1]["id"] not in ids

    await _eventually(shown, within=SHORT_TTL + 1.0)
    # Within the TTL, plus the time the checks themselves take.
    assert asyncio.get_running_loop().time() - began < SHORT_TTL + 1.0


async def test_pinned_definitions_follow_writes(gateways: Gateways):
    a, b = gateways.clients["a"], gateways.clients["b"]
    made = await some_services(a, 1)
    name = f"lc-{uuid.uuid4().hex[:8]}"
    workflow = (
        await ok(
            a.post("/workflows", json={"name": name, "steps": chain(("s", made[0]["name"], "run"))})
        )
    ).json()
    start = f"/workflows/{workflow['id']}/executions"
    for client in (a, b):
        await ok(client.post(start, json={"input_data": {}}))  # pinned and cached
    assert gateways.cache("a").get(("pin", workflow["id"])) is not None
    # Starting executions writes nothing to the registry: the cache stays.
    await ok(a.post(start, json={"input_data": {}}))
    assert gateways.cache("a").get(("pin", workflow["id"])) is not None

    await ok(a.patch(f"/workflows/{workflow['id']}", json={"status": "INACTIVE"}))
    # The same gateway: at once.
    refused = await a.post(start, json={"input_data": {}})
    assert refused.status_code == 409, refused.text

    # Another gateway: within the TTL.
    async def refused_by_b() -> None:
        answer = await b.post(start, json={"input_data": {}})
        assert answer.status_code == 409, answer.text

    await _eventually(refused_by_b, within=SHORT_TTL + 1.0)

    # A service taken INACTIVE through one gateway stops one-action executions too.
    run = f"/services/{made[0]['id']}/actions/run/executions"
    for client in (a, b):
        await ok(client.post(run, json={"input_data": {}}))
    await ok(a.patch(f"/services/{made[0]['id']}", json={"status": "INACTIVE"}))
    assert (await a.post(run, json={"input_data": {}})).status_code == 409

    async def action_refused_by_b() -> None:
        assert (await b.post(run, json={"input_data": {}})).status_code == 409

    await _eventually(action_refused_by_b, within=SHORT_TTL + 1.0)


async def test_validating_or_starting_does_not_clear_the_cache(gateways: Gateways):
    a = gateways.clients["a"]
    made = await some_services(a, 1)
    await ok(a.get("/services"))
    held = len(gateways.cache("a"))
    assert held >= 1
    body = {"name": "lc-validate", "steps": chain(("s", made[0]["name"], "run"))}
    assert (await a.post("/workflows/validate", json=body)).status_code == 200
    assert len(gateways.cache("a")) == held


async def test_only_a_committed_registry_write_clears_the_cache(gateways: Gateways):
    """Every write route clears what the gateway holds once its write has committed;
    starting an execution, checking a definition or a write that fails clears nothing."""
    a, cache = gateways.clients["a"], gateways.cache("a")
    made = await some_services(a, 2)
    name = f"lc-{uuid.uuid4().hex[:8]}"
    steps = chain(("s", made[0]["name"], "run"))
    workflow = (await ok(a.post("/workflows", json={"name": name, "steps": steps}))).json()
    run: dict[str, Any] = {"input_data": {}}
    mocked = {**run, "mocks": {"s": {"output": {}}}}
    start = f"/workflows/{workflow['id']}"
    action_start = f"/services/{made[0]['id']}/actions/run"
    clears_nothing: list[tuple[Callable[[], Any], int]] = [
        (lambda: a.post("/workflows/validate", json={"name": name, "steps": steps}), 200),
        (lambda: a.post(f"{start}/executions", json=run), 202),
        (lambda: a.post(f"{start}/execute?timeout=0.1", json=run), 202),
        (lambda: a.post(f"{start}/test?timeout=0.1", json=mocked), 202),
        (lambda: a.post(f"{action_start}/executions", json=run), 202),
        (lambda: a.post(f"{action_start}/execute?timeout=0.1", json=run), 202),
        (lambda: a.patch("/services/no-such-service", json={"description": "x"}), 404),
        (lambda: a.delete(f"/services/{made[0]['id']}"), 409),  # an ACTIVE workflow uses it
    ]
    for request, status in clears_nothing:
        await ok(a.get("/services"))
        await ok(a.get("/workflows"))
        held = len(cache)
        answer = await request()
        assert answer.status_code == status, answer.text
        assert len(cache) >= held, answer.request.url

    other = f"lc-{uuid.uuid4().hex[:8]}"
    clears: list[Callable[[], Any]] = [
        lambda: a.post("/services", json=service(other, "http://127.0.0.1:9/x", [action("run")])),
        lambda: a.patch(f"/services/{made[1]['id']}", json={"description": "changed"}),
        lambda: a.post("/workflows", json={"name": other, "steps": steps}),
        lambda: a.patch(start, json={"description": "changed"}),
        lambda: a.delete(start),
        lambda: a.delete(f"/services/{made[1]['id']}"),
    ]
    for request in clears:
        await ok(a.get("/services"))
        await ok(a.get("/workflows"))
        assert len(cache) >= 2
        answer = await ok(request())
        assert len(cache) == 0, answer.request.url


def _listing(rows: int) -> Listing:
    return Listing(ids=[str(i) for i in range(rows)], versions=[0] * rows, statuses=["A"] * rows)


async def test_a_listing_read_that_began_before_a_write_is_not_shared_after_it():
    cache = ReadCache(ttl=60)
    release = asyncio.Event()
    reads = []

    async def slow() -> Listing:
        reads.append("slow")
        await release.wait()
        return _listing(1)

    async def fresh() -> Listing:
        reads.append("fresh")
        return _listing(2)

    first = asyncio.create_task(cache.listing("k", slow))
    await asyncio.sleep(0)
    joined = asyncio.create_task(cache.listing("k", fresh))  # before the write: shares it
    await asyncio.sleep(0)
    cache.invalidate()
    after = await cache.listing("k", fresh)  # after the write: reads again
    release.set()
    assert len((await first).ids) == 1 and len((await joined).ids) == 1
    assert after is not None and len(after.ids) == 2
    assert reads == ["slow", "fresh"]
    # The read that began before the write is not kept; the one after it is.
    assert (await cache.listing("k", slow)) is after


async def test_listings_and_rows_are_bounded():
    cache = ReadCache(ttl=60, max_bytes=10_000)
    assert await cache.listing("big", lambda: _ready(_listing(1000))) is None
    cache.max_row_bytes = 1000
    for index in range(100):
        cache.put_row(("t", index, 0), b"x" * 50, generation=cache.generation)
        assert cache.row_bytes <= 1000
    assert cache.row(("t", 99, 0)) == b"x" * 50
    assert cache.row(("t", 0, 0)) is None
    cache.invalidate()
    assert cache.row_bytes == 0 and cache.row(("t", 99, 0)) is None


async def _ready(listing: Listing) -> Listing:
    return listing


async def test_a_held_page_is_answered_only_where_the_route_would(gateways: Gateways):
    a = gateways.clients["a"]
    await some_services(a, 2)
    first = await ok(a.get("/services", params={"page": 1, "per_page": 5}))
    again = await ok(a.get("/services?page=1&per_page=5"))  # from memory
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["content-length"] == first.headers["content-length"]
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        refused = await a.get("/services?page=1&per_page=5", headers=headers)
        assert refused.status_code == 401
    for query in ("page=0", "per_page=101", "status=GONE", "page=x"):
        assert (await a.get(f"/services?{query}")).status_code == 422, query
    # A repeated parameter is left to the route, which answers as without the cache.
    twice = "/services?page=1&page=2&per_page=5"
    expected = (await ok(gateways.clients["plain"].get(twice))).content
    assert (await ok(a.get(twice))).content == expected
    assert (await a.get("/services?page=1&per_page=5&junk=1")).content == first.content
