"""Faults survived: killed workers, a restarted Temporal server and gateway, a stopped
registry database, a service down for longer than its retry policy. Each test counts
what it started and what finished, and asserts nothing was lost."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import httpx
import pytest
from temporalio.client import Client

from harness.stack import Stack, wait_for_workers
from tests.support.builders import action, chain, create_workflow, register, service
from tests.support.polling import eventually
from tests.support.postgres import PrivatePostgres

TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"}


async def _statuses(api: httpx.AsyncClient, execution_ids: list[str]) -> dict[str, str]:
    out = {}
    for execution_id in execution_ids:
        answer = await api.get(f"/executions/{execution_id}")
        out[execution_id] = (
            answer.json()["status"] if answer.status_code == 200 else f"HTTP {answer.status_code}"
        )
    return out


async def _three_slow_steps(
    api: httpx.AsyncClient, services, unique: str, *, timeout: float = 2.0
) -> tuple[dict, str]:
    token = services.token()
    svc = f"slow-{unique}"
    await register(
        api,
        service(
            svc,
            services.endpoint("slow", token),
            [action(n, timeout=timeout) for n in ("one", "two", "three")],
        ),
    )
    workflow = await create_workflow(
        api, f"slow-wf-{unique}", chain(("a", svc, "one"), ("b", svc, "two"), ("c", svc, "three"))
    )
    return workflow, token


async def _start_many(api: httpx.AsyncClient, workflow_id: str, count: int) -> list[str]:
    ids = []
    for index in range(count):
        answer = await api.post(
            f"/workflows/{workflow_id}/executions", json={"input_data": {"n": index}}
        )
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["execution_id"])
    return ids


async def _all_closed(api: httpx.AsyncClient, ids: list[str], *, timeout: float) -> dict[str, str]:
    statuses: dict[str, str] = {}

    async def closed() -> bool:
        nonlocal statuses
        statuses = await _statuses(api, ids)
        return all(s in TERMINAL for s in statuses.values())

    await eventually(closed, timeout=timeout, what=f"all {len(ids)} executions to close")
    return statuses


@pytest.mark.parametrize("start", ["gateway", "by-name"])
async def test_worker_killed_mid_step_is_redelivered_with_the_same_idempotency_key(
    fault_stack: Stack, services, unique, start
):
    """Started by name, the step killed is the first attempt inside `si:start`: the
    activity is retried as a whole, and the step gets its second call all the same."""
    async with httpx.AsyncClient(base_url=fault_stack.url, timeout=30) as api:
        token = services.token()
        svc = f"hang-{unique}"
        await register(
            api, service(svc, services.endpoint("hang", token), [action("run", timeout=60)])
        )
        workflow = await create_workflow(api, f"wf-{unique}", chain(("only", svc, "run")))
        if start == "gateway":
            started = await api.post(
                f"/workflows/{workflow['id']}/executions", json={"input_data": {}}
            )
            execution_id = started.json()["execution_id"]
        else:
            client = await Client.connect(fault_stack.temporal_address)
            execution_id = f"sdk-{unique}"
            await client.start_workflow(
                workflow["name"], {}, id=execution_id, task_queue=fault_stack.task_queue
            )

        async def calls(n: int):
            async def check() -> bool:
                return len(services.calls[token]) >= n

            return check

        await eventually(await calls(1), timeout=20, what="the first call")
        victim = fault_stack.workers[-1]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        fault_stack.start_worker()
        killed_at = time.monotonic()
        # The heartbeat timeout (5 s) notices the lost worker; the retry reaches the new one.
        await eventually(await calls(2), timeout=30, what="the redelivered call")
        recovery = time.monotonic() - killed_at
        services.release(token)
        await _all_closed(api, [execution_id], timeout=30)
        record = (await api.get(f"/executions/{execution_id}")).json()
        assert record["status"] == "COMPLETED"
        keys = [c.headers["idempotency-key"] for c in services.calls[token]]
        assert keys == [f"{execution_id}:only"] * 2
        assert record["steps"][0]["attempts"] == 2
        assert recovery < 20, f"recovery took {recovery:.1f}s"


async def test_fifty_executions_complete_through_random_worker_kills(
    fault_stack: Stack, services, unique
):
    async with httpx.AsyncClient(base_url=fault_stack.url, timeout=30) as api:
        workflow, token = await _three_slow_steps(api, services, unique)
        fault_stack.start_worker()
        ids = await _start_many(api, workflow["id"], 50)
        chooser = random.Random(20261126)
        kills = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await asyncio.sleep(chooser.uniform(0.5, 2.0))
            alive = [w for w in fault_stack.workers if w.poll() is None]
            victim = chooser.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            fault_stack.start_worker()
        statuses = await _all_closed(api, ids, timeout=180)
        assert kills >= 5
        assert len(statuses) == 50
        assert set(statuses.values()) == {"COMPLETED"}, statuses
        for index, execution_id in enumerate(ids[:5]):
            record = (await api.get(f"/executions/{execution_id}")).json()
            assert record["result"]["three"]["n"] == index


async def test_temporal_server_restart_mid_flight_loses_nothing(
    fault_stack: Stack, fault_temporal, services, unique
):
    async with httpx.AsyncClient(base_url=fault_stack.url, timeout=30) as api:
        workflow, _ = await _three_slow_steps(api, services, unique)
        wait_for_workers(fault_stack.url)
        ids = await _start_many(api, workflow["id"], 10)
        fault_temporal.kill()
        started_while_down = fault_stack.start_worker()
        down = await api.get("/health")
        assert down.status_code == 503
        assert down.json()["components"]["temporal"]["status"] == "unhealthy"
        await asyncio.sleep(2)
        fault_temporal.start()

        async def healthy() -> bool:
            return (await api.get("/health")).status_code == 200

        await eventually(healthy, timeout=60, what="the gateway to report healthy again")
        statuses = await _all_closed(api, ids, timeout=120)
        assert set(statuses.values()) == {"COMPLETED"}, statuses
        assert started_while_down.poll() is None, "a worker started while Temporal is down waits"


async def test_gateway_restart_mid_flight_loses_nothing(fault_stack: Stack, services, unique):
    async with httpx.AsyncClient(base_url=fault_stack.url, timeout=30) as api:
        workflow, _ = await _three_slow_steps(api, services, unique)
        ids = await _start_many(api, workflow["id"], 10)
    process, _ = fault_stack.gateways[0]
    process.send_signal(signal.SIGKILL)
    process.wait()
    fault_stack.gateways.pop(0)
    url = fault_stack.start_gateway()
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        statuses = await _all_closed(api, ids, timeout=120)
        assert set(statuses.values()) == {"COMPLETED"}, statuses


async def test_worker_sigterm_finishes_its_in_flight_step(fault_stack: Stack, services, unique):
    async with httpx.AsyncClient(base_url=fault_stack.url, timeout=30) as api:
        token = services.token()
        svc = f"hang-{unique}"
        await register(
            api, service(svc, services.endpoint("hang", token), [action("run", timeout=60)])
        )
        workflow = await create_workflow(api, f"wf-{unique}", chain(("only", svc, "run")))
        # One worker only, so the in-flight call is known to be on the one we stop.
        for worker in fault_stack.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
        fault_stack.start_worker()
        started = await api.post(f"/workflows/{workflow['id']}/executions", json={"input_data": {}})
        execution_id = started.json()["execution_id"]

        async def called() -> bool:
            return len(services.calls[token]) >= 1

        await eventually(called, timeout=20, what="the call")
        worker = fault_stack.workers[-1]
        worker.send_signal(signal.SIGTERM)
        await asyncio.sleep(1)
        assert worker.poll() is None, "the worker must wait for its in-flight activity"
        services.release(token)
        assert await asyncio.to_thread(worker.wait, 20) == 0
        fault_stack.start_worker()
        await _all_closed(api, [execution_id], timeout=30)
        record = (await api.get(f"/executions/{execution_id}")).json()
        assert record["status"] == "COMPLETED"
        assert record["steps"][0]["attempts"] == 1
        assert len(services.calls[token]) == 1


async def test_gateway_sigterm_drains_a_waiting_request(fault_stack: Stack, services, unique):
    url = fault_stack.start_gateway()
    process = fault_stack.gateways[-1][0]
    async with httpx.AsyncClient(base_url=url, timeout=60) as api:
        token = services.token()
        svc = f"hang-{unique}"
        await register(
            api, service(svc, services.endpoint("hang", token), [action("run", timeout=60)])
        )
        workflow = await create_workflow(api, f"wf-{unique}", chain(("only", svc, "run")))
        waiting = asyncio.create_task(
            api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})
        )

        async def called() -> bool:
            return len(services.calls[token]) >= 1

        await eventually(called, timeout=20, what="the call")
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        services.release(token)
        answer = await waiting
        assert answer.status_code == 200
        assert answer.json()["status"] == "COMPLETED"
        # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status says so.
        assert await asyncio.to_thread(process.wait, 20) in (0, -signal.SIGTERM)


async def test_registry_database_down_answers_503_and_running_executions_finish(
    fault_temporal, services, unique, tmp_path
):
    postgres = PrivatePostgres.create()
    postgres.start()
    stack = Stack(
        temporal_address=fault_temporal.address, database_url=postgres.url, log_dir=tmp_path
    )
    try:
        stack.start_worker()
        stack.start_gateway()
        wait_for_workers(stack.url)
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
            workflow, _ = await _three_slow_steps(api, services, unique)
            ids = await _start_many(api, workflow["id"], 5)
            postgres.stop()
            refused = await api.get("/services")
            assert refused.status_code == 503
            assert refused.json()["component"] == "database"
            assert "unavailable" in refused.json()["detail"]
            created = await api.post(
                "/services", json=service(f"late-{unique}", "http://127.0.0.1:9", [action("a")])
            )
            assert created.status_code == 503
            health = await api.get("/health")
            assert health.status_code == 503
            assert health.json()["components"]["database"]["status"] == "unhealthy"
            statuses = await _all_closed(api, ids, timeout=60)
            assert set(statuses.values()) == {"COMPLETED"}, statuses
            postgres.start()

            async def back() -> bool:
                return (await api.get("/services")).status_code == 200

            await eventually(back, timeout=30, what="the registry to answer again")
            again = await api.post(
                "/services", json=service(f"late-{unique}", "http://127.0.0.1:9", [action("a")])
            )
            assert again.status_code == 201
    finally:
        stack.stop()
        postgres.remove()
