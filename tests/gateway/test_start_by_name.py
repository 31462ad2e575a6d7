"""Starts by name with the Temporal SDK, on the real worker, services and dev server.

Such a start begins with `si:start`, which pins the definition and makes the first
attempt of the entry step (activities/start.py); the step is retried as its own
activity after that. What the service sees and what the execution's record says must be
what a start through the gateway gives: the same calls, attempts and errors.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.support.builders import action, chain, create_workflow, register, service
from tests.support.polling import eventually

FAST = {
    "initial_interval": 0.1,
    "backoff_coefficient": 1.0,
    "maximum_interval": 0.1,
    "maximum_attempts": 3,
}


async def _workflow(api, services, unique, behaviour, token, name="run", **fields) -> str:
    svc = f"{behaviour}-{unique}"
    await register(api, service(svc, services.endpoint(behaviour, token), [action(name, **fields)]))
    workflow = await create_workflow(api, f"by-name-{unique}", chain(("only", svc, name)))
    _ids[str(workflow["name"])] = str(workflow["id"])
    return str(workflow["name"])


_ids: dict[str, str] = {}
"""Stored workflow ids by name, of the workflows the tests here created."""


async def _by_name(api: httpx.AsyncClient, stack: Any, name: str) -> dict[str, Any]:
    client = await Client.connect(stack.temporal_address)
    execution_id = f"sdk-{uuid.uuid4()}"
    handle = await client.start_workflow(name, {}, id=execution_id, task_queue=stack.task_queue)
    try:
        await handle.result()
    except Exception:  # noqa: BLE001 - the record says how it ended
        pass
    answer = await api.get(f"/executions/{execution_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_first_attempt_inside_si_start_completes_with_one_call(api, services, stack, unique):
    token = services.token()
    services.failures[token] = 0
    name = await _workflow(api, services, unique, "flaky", token)
    record = await _by_name(api, stack, name)
    assert record["status"] == "COMPLETED"
    assert [(s["id"], s["status"], s["attempts"]) for s in record["steps"]] == [
        ("only", "COMPLETED", 1)
    ]
    assert record["steps"][0]["worker"]
    assert len(services.calls[token]) == 1


async def test_a_step_failing_twice_is_retried_after_si_start_with_one_key(
    api, services, stack, unique
):
    token = services.token()
    services.failures[token] = 2
    name = await _workflow(api, services, unique, "flaky", token, retry_policy=FAST)
    record = await _by_name(api, stack, name)
    assert record["status"] == "COMPLETED"
    assert record["steps"][0]["attempts"] == 3
    keys = {call.headers["idempotency-key"] for call in services.calls[token]}
    assert len(services.calls[token]) == 3 and len(keys) == 1


async def test_a_400_fails_at_once_without_a_second_call(api, services, stack, unique):
    token = services.token()
    name = await _workflow(api, services, unique, "status", token, name="400")
    record = await _by_name(api, stack, name)
    assert record["status"] == "FAILED"
    assert (record["error"]["step_id"], record["error"]["error_type"]) == (
        "only",
        "ServiceRejected",
    )
    assert record["error"]["attempts"] == 1
    assert "HTTP 400" in record["error"]["message"]
    assert record["steps"][0]["status"] == "FAILED"
    assert len(services.calls[token]) == 1


@pytest.mark.parametrize("attempts", [1, 3])
async def test_a_service_down_gets_exactly_the_policys_attempts(
    api, services, stack, unique, attempts
):
    token = services.token()
    policy = {**FAST, "maximum_attempts": attempts}
    name = await _workflow(api, services, unique, "status", token, name="503", retry_policy=policy)
    record = await _by_name(api, stack, name)
    assert record["status"] == "FAILED"
    assert (record["error"]["attempts"], record["error"]["error_type"]) == (
        attempts,
        "ServiceUnavailable",
    )
    assert record["steps"][0]["attempts"] == attempts
    assert len(services.calls[token]) == attempts


async def test_a_429_first_attempt_waits_the_retry_after_it_asks(api, services, stack, unique):
    token = services.token()
    name = await _workflow(api, services, unique, "ratelimit", token)
    started = time.monotonic()
    record = await _by_name(api, stack, name)
    assert record["status"] == "COMPLETED"
    assert record["steps"][0]["attempts"] == 2
    assert time.monotonic() - started >= 0.9
    assert len(services.calls[token]) == 2


async def test_it_reads_back_while_its_first_step_runs_inside_si_start(
    api, services, stack, unique
):
    token = services.token()
    name = await _workflow(api, services, unique, "hang", token)
    workflow_id = _ids[name]
    client = await Client.connect(stack.temporal_address)
    execution_id = f"sdk-{uuid.uuid4()}"
    handle = await client.start_workflow(name, {}, id=execution_id, task_queue=stack.task_queue)
    try:
        await eventually(lambda: _called(services, token), what="the first step's call")
        running = await api.get(f"/executions/{execution_id}")
        assert running.status_code == 200, running.text  # ours, though nothing is upserted yet
        assert running.json()["status"] == "RUNNING"
        listed = await api.get(f"/workflows/{workflow_id}/executions", params={"status": "RUNNING"})
        assert listed.status_code == 200, listed.text
        (summary,) = listed.json()["items"]  # found by its type until it upserts
        assert (summary["execution_id"], summary["workflow_id"], summary["status"]) == (
            execution_id,
            workflow_id,
            "RUNNING",
        )
    finally:
        services.release(token)
    await handle.result()
    record = (await api.get(f"/executions/{execution_id}")).json()
    assert record["status"] == "COMPLETED"
    assert record["workflow_name"] == name
    assert record["workflow_id"] == workflow_id

    async def listed_with_its_version() -> bool:
        # Visibility takes in the upsert made with the last command after the close.
        listed = await api.get(f"/workflows/{workflow_id}/executions")
        assert listed.status_code == 200, listed.text
        (summary,) = listed.json()["items"]  # by SiWorkflowId once upserted, no memo
        assert (summary["execution_id"], summary["workflow_name"]) == (execution_id, name)
        return bool(summary["workflow_version"] == 1)

    await eventually(listed_with_its_version, what="the listing of the closed execution")


async def _called(services: Any, token: str) -> bool:
    return bool(services.calls.get(token))
