"""Per-service load shaping end to end: a worker and a gateway of their own plus a second
worker on the same task queue, a loopback service that counts the requests it holds at
once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from harness.services import LoadSeen, load_seen
from harness.stack import Stack, wait_for_workers
from tests.support.builders import action, chain, create_workflow, register, service


@pytest.fixture(scope="module")
def shaped_url(stack: Stack) -> Iterator[str]:
    """A gateway and two workers on a task queue of their own."""
    task_queue = f"shape-{uuid.uuid4().hex[:8]}"
    with stack.pair(TASK_QUEUE=task_queue, ALLOWED_HOSTS="127.0.0.1") as url:
        second = stack.start_worker(TASK_QUEUE=task_queue, ALLOWED_HOSTS="127.0.0.1")
        try:
            wait_for_workers(url, count=2, timeout=60)
            yield url
        finally:
            second.terminate()
            second.wait(30)


@pytest.fixture
async def shaped(shaped_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shaped_url, timeout=60) as client:
        yield client


async def one_step_workflow(
    api: httpx.AsyncClient, services: Any, unique: str, behaviour: str, **limits: Any
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A service of `behaviour` with `limits`, and a workflow of one step calling it."""
    token = services.token()
    svc = await register(
        api,
        service(
            f"{behaviour}-{unique}", services.endpoint(behaviour, token), [action("run")], **limits
        ),
    )
    workflow = await create_workflow(api, f"shaped-{unique}", chain(("only", svc["name"], "run")))
    return svc, workflow, token


async def run_batch(api: httpx.AsyncClient, workflow_id: str, count: int) -> list[dict[str, Any]]:
    """Start `count` executions at once and wait until all have closed."""

    async def start() -> str:
        answer = await api.post(f"/workflows/{workflow_id}/executions", json={"input_data": {}})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["execution_id"])

    ids = await asyncio.gather(*(start() for _ in range(count)))
    deadline = time.monotonic() + 90
    records: dict[str, dict[str, Any]] = {}
    while len(records) < count:
        assert time.monotonic() < deadline, f"{count - len(records)} executions still running"
        for execution_id in ids:
            if execution_id not in records:
                record = (await api.get(f"/executions/{execution_id}")).json()
                if record["status"] != "RUNNING":
                    records[execution_id] = record
        await asyncio.sleep(0.2)
    return [records[i] for i in ids]


def assert_completed(records: list[dict[str, Any]]) -> None:
    assert [r["status"] for r in records] == ["COMPLETED"] * len(records), [
        r.get("error") for r in records if r["status"] != "COMPLETED"
    ]


async def test_answers_leave_out_unset_limits_and_patch_changes_them(shaped, services, unique):
    plain = await register(
        shaped, service(f"plain-{unique}", services.endpoint("echo", "t"), [action("run")])
    )
    assert "max_concurrency" not in plain and "rate_limit_per_second" not in plain
    limited = await register(
        shaped,
        service(
            f"limited-{unique}",
            services.endpoint("echo", "t"),
            [action("run")],
            max_concurrency=2,
            rate_limit_per_second=0.5,
        ),
    )
    assert (limited["max_concurrency"], limited["rate_limit_per_second"]) == (2, 0.5)
    changed = (await shaped.patch(f"/services/{limited['id']}", json={"max_concurrency": 5})).json()
    assert (changed["max_concurrency"], changed["rate_limit_per_second"]) == (5, 0.5)
    removed = await shaped.patch(
        f"/services/{limited['id']}", json={"max_concurrency": None, "rate_limit_per_second": None}
    )
    assert removed.status_code == 200, removed.text
    assert "max_concurrency" not in removed.json()
    assert "rate_limit_per_second" not in removed.json()
    stored = (await shaped.get(f"/services/{limited['id']}")).json()
    assert "max_concurrency" not in stored and "rate_limit_per_second" not in stored


@pytest.mark.parametrize(
    "limits", [{"max_concurrency": 0}, {"rate_limit_per_second": 0}, {"rate_limit_per_second": -1}]
)
async def test_limit_out_of_range_is_422(shaped, services, unique, limits):
    answer = await shaped.post(
        "/services",
        json=service(f"bad-{unique}", services.endpoint("echo", "t"), [action("run")], **limits),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] in limits


async def test_max_concurrency_holds_across_two_workers(shaped, services, unique):
    _, workflow, token = await one_step_workflow(
        shaped, services, unique, "inflight", max_concurrency=2
    )
    records = await run_batch(shaped, workflow["id"], 12)
    assert_completed(records)
    seen = load_seen[token]
    assert len(seen.arrived) == 12
    assert seen.max_in_flight == 2
    workers = {r["steps"][0]["worker"] for r in records}
    assert len(workers) >= 2, f"every step ran on {workers}"


async def test_rate_limit_holds_across_two_workers(shaped, services, unique):
    rate = 5
    _, workflow, token = await one_step_workflow(
        shaped, services, unique, "inflight", rate_limit_per_second=rate
    )
    records = await run_batch(shaped, workflow["id"], 15)
    assert_completed(records)
    arrived = sorted(load_seen[token].arrived)
    assert len(arrived) == 15
    for start in arrived:
        in_window = sum(1 for t in arrived if start <= t < start + 1.0)
        # A full bucket (capacity `rate`) and a second of refill.
        assert in_window <= 2 * rate, f"{in_window} requests within a second"
    # The first `rate` calls take the bucket's tokens; the other 10 wait for refills of
    # 1/rate s each (less a little: the service sees each arrival a few ms late or early).
    assert arrived[-1] - arrived[0] >= (15 - rate) / rate - 0.15


async def test_max_concurrency_changed_at_runtime(shaped, services, unique):
    svc, workflow, token = await one_step_workflow(
        shaped, services, unique, "inflight", max_concurrency=1
    )
    assert_completed(await run_batch(shaped, workflow["id"], 4))
    assert load_seen[token].max_in_flight == 1

    answer = await shaped.patch(f"/services/{svc['id']}", json={"max_concurrency": 3})
    assert answer.json()["max_concurrency"] == 3
    await asyncio.sleep(1.5)  # the workers keep a service's limits for a second
    load_seen[token] = LoadSeen()
    assert_completed(await run_batch(shaped, workflow["id"], 9))
    assert 1 < load_seen[token].max_in_flight <= 3


async def test_shaped_service_429_is_retried_after_its_retry_after(shaped, services, unique):
    _, workflow, token = await one_step_workflow(
        shaped, services, unique, "ratelimit", max_concurrency=1, rate_limit_per_second=5
    )
    started = time.monotonic()
    (record,) = await run_batch(shaped, workflow["id"], 1)
    assert_completed([record])
    assert record["steps"][0]["attempts"] == 2
    assert len(services.calls[token]) == 2
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
