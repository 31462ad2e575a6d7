"""low_latency workflows: every step a local activity, started eagerly by a gateway that
runs its own worker (GATEWAY_EMBEDDED_WORKER)."""

from __future__ import annotations

import uuid

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.support.builders import FAST_RETRY, action, chain, create_workflow, register, service


async def test_low_latency_workflow_runs_local_activities_with_retries(stack, services, unique):
    queue = f"{stack.task_queue}-eager-{uuid.uuid4().hex[:6]}"
    url = stack.start_gateway(TASK_QUEUE=queue, GATEWAY_EMBEDDED_WORKER="true")
    echo, flaky = services.token(), services.token()
    services.failures[flaky] = 2
    async with httpx.AsyncClient(base_url=url, timeout=60) as api:
        await register(
            api, service(f"echo-{unique}", services.endpoint("echo", echo), [action("run")])
        )
        await register(
            api,
            service(
                f"flaky-{unique}",
                services.endpoint("flaky", flaky),
                [action("run", retry_policy=FAST_RETRY)],
            ),
        )
        workflow = await create_workflow(
            api,
            f"fast-{unique}",
            chain(("first", f"echo-{unique}", "run"), ("second", f"flaky-{unique}", "run")),
            mode="low_latency",
        )
        assert workflow["mode"] == "low_latency"
        answer = await api.post(
            f"/workflows/{workflow['id']}/execute", json={"input_data": {"x": 1}}
        )
        record = answer.json()
    assert answer.status_code == 200, record
    assert record["status"] == "COMPLETED"
    assert [(s["id"], s["status"], s["attempts"]) for s in record["steps"]] == [
        ("first", "COMPLETED", 1),
        ("second", "COMPLETED", 3),
    ]
    client = await Client.connect(stack.temporal_address)
    history = await client.get_workflow_handle(record["execution_id"]).fetch_history()
    kinds = {event.event_type for event in history.events}
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds
    assert EventType.EVENT_TYPE_MARKER_RECORDED in kinds


async def test_workflow_mode_defaults_to_standard_and_can_be_changed(api, services, unique):
    token = services.token()
    await register(
        api, service(f"echo-{unique}", services.endpoint("echo", token), [action("run")])
    )
    workflow = await create_workflow(api, f"wf-{unique}", chain(("only", f"echo-{unique}", "run")))
    assert workflow["mode"] == "standard"
    updated = await api.patch(f"/workflows/{workflow['id']}", json={"mode": "low_latency"})
    assert (updated.json()["mode"], updated.json()["version"]) == ("low_latency", 1)
    bad = await api.patch(f"/workflows/{workflow['id']}", json={"mode": "turbo"})
    assert bad.status_code == 422
