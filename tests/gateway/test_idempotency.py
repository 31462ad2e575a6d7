"""Idempotency-Key: bound to the caller and the request, replayed on every write (DELETE
and PATCH too), forgotten after IDEMPOTENCY_TTL_SECONDS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import func, select

from gateway.errors import IdempotencyKeyReusedError
from gateway.idempotency import execution_id_for
from harness.stack import Stack
from registry.db import open_database, session_factory
from registry.tables import IdempotencyRow
from registry.transactions import Idempotency, write_once
from tests.support.builders import action, chain, create_workflow, register, service

CALLER_KEYS = ("caller-one", "caller-two")


class Body(BaseModel):
    value: int


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[object]:
    async with open_database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}") as engine:
        yield session_factory(engine)


async def _rows(sessions) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return int((await session.execute(select(func.count(IdempotencyRow.key)))).scalar_one())


async def test_a_key_is_forgotten_after_its_ttl_and_its_row_deleted(sessions):
    clock = Clock()
    idempotency = Idempotency(key="k", caller="anonymous", ttl_seconds=2, clock=clock)
    writes: list[int] = []

    def write_of(value: int):  # type: ignore[no-untyped-def]
        async def write() -> tuple[int, object]:
            writes.append(value)
            return 201, {"value": value}

        return write

    async with sessions() as session:
        first = await write_once(
            session, idempotency, scope="POST /x", request=Body(value=1), write=write_of(1)
        )
    clock.now += timedelta(seconds=1)
    async with sessions() as session:
        with pytest.raises(IdempotencyKeyReusedError):
            await write_once(
                session, idempotency, scope="POST /x", request=Body(value=2), write=write_of(2)
            )
    clock.now += timedelta(seconds=2)  # past the TTL: the key is new again
    async with sessions() as session:
        second = await write_once(
            session, idempotency, scope="POST /x", request=Body(value=2), write=write_of(2)
        )
    assert (first, second, writes) == ((201, {"value": 1}), (201, {"value": 2}), [1, 2])
    assert await _rows(sessions) == 1

    # Any keyed write deletes the expired rows of every key.
    other = Idempotency(key="other", caller="anonymous", ttl_seconds=2, clock=clock)
    clock.now += timedelta(seconds=3)
    async with sessions() as session:
        await write_once(session, other, scope="POST /y", request=Body(value=3), write=write_of(3))
    assert await _rows(sessions) == 1


async def test_an_execution_key_maps_per_caller_and_per_request(sessions):
    clock = Clock()

    def of(caller: str) -> Idempotency:
        return Idempotency(key="k", caller=caller, ttl_seconds=60, clock=clock)

    async with sessions() as session:
        first = await execution_id_for(session, of("a"), scope="s", request=Body(value=1))
    async with sessions() as session:
        again = await execution_id_for(session, of("a"), scope="s", request=Body(value=1))
        other_caller = await execution_id_for(session, of("b"), scope="s", request=Body(value=1))
        with pytest.raises(IdempotencyKeyReusedError):
            await execution_id_for(session, of("a"), scope="s", request=Body(value=2))
    clock.now += timedelta(seconds=61)
    async with sessions() as session:
        after_ttl = await execution_id_for(session, of("a"), scope="s", request=Body(value=2))
    assert first == again
    assert len({first, other_caller, after_ttl}) == 3


# ------------------------------------------------------------------------ over HTTP


async def _one_step(api, services, unique):  # type: ignore[no-untyped-def]
    name = f"idem-{unique}"
    await register(api, service(name, services.endpoint("echo", services.token()), [action("run")]))
    return await create_workflow(api, f"wf-idem-{unique}", chain(("only", name, "run")))


@pytest.mark.parametrize(
    "path", ["/workflows/{id}/execute", "/workflows/{id}/executions"], ids=["execute", "start"]
)
async def test_execute_key_with_another_body_is_422(api, services, unique, path):
    workflow = await _one_step(api, services, unique)
    url = path.format(id=workflow["id"])
    headers = {"Idempotency-Key": f"body-{unique}"}
    first = await api.post(url, json={"input_data": {"n": 1}}, headers=headers)
    assert first.status_code in (200, 202), first.text
    again = await api.post(url, json={"input_data": {"n": 1}}, headers=headers)
    assert again.json()["execution_id"] == first.json()["execution_id"]
    other = await api.post(url, json={"input_data": {"n": 2}}, headers=headers)
    assert other.status_code == 422, other.text
    problem = other.json()["detail"][0]
    assert problem["loc"] == ["header", "Idempotency-Key"]
    assert "different request" in problem["msg"]


async def test_action_execute_key_with_another_body_is_422(api, services, unique):
    svc = await register(
        api, service(f"idem-act-{unique}", services.endpoint("echo", "t"), [action("run")])
    )
    url = f"/services/{svc['id']}/actions/run/executions"
    headers = {"Idempotency-Key": f"act-{unique}"}
    first = await api.post(url, json={"input_data": {"n": 1}}, headers=headers)
    again = await api.post(url, json={"input_data": {"n": 1}}, headers=headers)
    other = await api.post(url, json={"input_data": {"n": 2}}, headers=headers)
    assert first.json()["execution_id"] == again.json()["execution_id"]
    assert other.status_code == 422, other.text


@pytest.fixture(scope="module")
def two_callers(stack: Stack) -> Iterator[str]:
    url = stack.start_gateway(API_KEYS=",".join(CALLER_KEYS))
    gateway = stack.gateways[-1][0]
    yield url
    gateway.terminate()
    gateway.wait(30)


async def test_the_same_key_from_another_caller_is_another_execution(two_callers, services, unique):
    clients = [
        httpx.AsyncClient(
            base_url=two_callers, timeout=60, headers={"Authorization": f"Bearer {key}"}
        )
        for key in CALLER_KEYS
    ]
    try:
        workflow = await _one_step(clients[0], services, unique)
        headers = {"Idempotency-Key": f"shared-{unique}"}
        url = f"/workflows/{workflow['id']}/executions"
        first, second = [
            await client.post(url, json={"input_data": {}}, headers=headers) for client in clients
        ]
        repeat = await clients[0].post(url, json={"input_data": {}}, headers=headers)
    finally:
        for client in clients:
            await client.aclose()
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["execution_id"] != second.json()["execution_id"]
    assert repeat.json()["execution_id"] == first.json()["execution_id"]


@pytest.mark.parametrize("resource", ["services", "workflows"])
async def test_a_retried_delete_gets_the_first_answer(api, services, unique, resource):
    if resource == "workflows":
        target = (await _one_step(api, services, unique))["id"]
    else:
        body = service(f"del-{unique}", services.endpoint("echo", "t"), [action("run")])
        target = (await register(api, body))["id"]
    headers = {"Idempotency-Key": f"delete-{unique}"}
    first = await api.delete(f"/{resource}/{target}", headers=headers)
    retried = await api.delete(f"/{resource}/{target}", headers=headers)
    unkeyed = await api.delete(f"/{resource}/{target}")
    assert first.status_code == 200, first.text
    assert (retried.status_code, retried.json()) == (200, first.json())
    assert unkeyed.status_code == 404


async def test_a_retried_patch_gets_the_first_answer_and_another_body_is_422(api, services, unique):
    svc = await register(
        api, service(f"patch-{unique}", services.endpoint("echo", "t"), [action("run")])
    )
    headers = {"Idempotency-Key": f"patch-{unique}"}
    url = f"/services/{svc['id']}"
    first = await api.patch(url, json={"description": "one"}, headers=headers)
    await api.patch(url, json={"description": "changed in between"})
    retried = await api.patch(url, json={"description": "one"}, headers=headers)
    other = await api.patch(url, json={"description": "two"}, headers=headers)
    assert first.status_code == 200, first.text
    assert retried.json() == first.json()
    assert other.status_code == 422, other.text
    assert (await api.get(url)).json()["description"] == "changed in between"
