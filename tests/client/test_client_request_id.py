"""Request ids: kept in a context variable, one per context, new when there is none."""

from __future__ import annotations

import asyncio
import contextvars
import uuid

from shared.utils.src.request_id import (
    current_request_id,
    get_request_id,
    request_id_scope,
    reset_request_id,
    set_request_id,
)


def test_get_request_id_makes_one_and_keeps_it() -> None:
    def body() -> None:
        assert current_request_id() is None
        first = get_request_id()
        uuid.UUID(first)
        assert get_request_id() == first
        assert current_request_id() == first

    contextvars.copy_context().run(body)


def test_set_and_reset() -> None:
    def body() -> None:
        token = set_request_id("req-123")
        assert get_request_id() == "req-123"
        reset_request_id(token)
        assert current_request_id() is None

    contextvars.copy_context().run(body)


def test_scope_restores_the_previous_id() -> None:
    with request_id_scope("outer"):
        with request_id_scope() as inner:
            assert get_request_id() == inner != "outer"
        assert get_request_id() == "outer"


async def test_tasks_see_their_own_ids() -> None:
    async def worker(name: str) -> str:
        with request_id_scope(name):
            await asyncio.sleep(0)
            return get_request_id()

    assert await asyncio.gather(worker("a"), worker("b")) == ["a", "b"]
