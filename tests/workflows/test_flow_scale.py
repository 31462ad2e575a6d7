"""The workflow language at the sizes the issue names: a loop of 1,000 iterations
(continuing as new on the way) and a map over 5,000 items (in child-workflow batches),
on the dev server with a stand-in service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from core.devserver import DevServer
from core.temporal import connect
from definitions.models import ExecutionOptions, StepCall
from tests.support.signing import signed_for
from tests.workflows.test_flow import flow_definition
from worker.main import workflow_options


@activity.defn(name="svc.count")
async def count(call: StepCall) -> dict[str, Any]:
    return {"n": int(call.input.get("n", 0)) + 1}


@pytest.fixture
async def client(temporal: DevServer) -> AsyncIterator[Client]:
    yield await connect(temporal.address, "default")


@pytest.fixture(params=["unsigned", "signed"])
def signing(request: pytest.FixtureRequest) -> bool:
    """Each size runs twice, the second time with DEFINITION_SIGNING_KEY on."""
    return request.param == "signed"


async def _run(
    client: Client, flow: dict[str, Any], data: dict[str, Any], *, signing: bool = False
) -> tuple[Any, Any]:
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    definition = flow_definition(flow, name="scale")
    options = ExecutionOptions(definition=definition)
    if signing:
        options = signed_for(queue, options)
    async with Worker(
        client,
        task_queue=queue,
        activities=[count],
        max_concurrent_activities=200,
        **workflow_options(),
    ):
        handle = await client.start_workflow(
            definition.name,
            args=[data, options],
            id=f"scale-{uuid.uuid4().hex}",
            task_queue=queue,
            execution_timeout=timedelta(minutes=5),
        )
        return await handle.result(), handle


async def test_a_loop_of_1000_iterations_continues_as_new_and_finishes(client, signing) -> None:
    result, handle = await _run(
        client,
        {
            "max_steps": 2100,
            "steps": [
                {
                    "id": "inc",
                    "service": "svc",
                    "action": "count",
                    "input": {"n": "{% $exists($vars.n) ? $vars.n : 0 %}"},
                    "assign": {"n": "{% $result.n %}"},
                    "next": "more",
                },
                {
                    "id": "more",
                    "type": "choice",
                    "choices": [{"when": "{% $vars.n < 1000 %}", "next": "inc"}],
                    "default": "end",
                },
                {"id": "end", "type": "succeed", "output": {"n": "{% $vars.n %}"}},
            ],
        },
        {},
        signing=signing,
    )
    assert result == {"n": 1000}
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id, "a loop this long continues as new"
    assert len(history.events) < 5000, "each run's history stays bounded"


async def test_a_map_over_5000_items_runs_in_batches_and_keeps_item_order(client, signing) -> None:
    result, handle = await _run(
        client,
        {
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "items": "{% $input.items %}",
                    "max_concurrency": 100,
                    "steps": [
                        {
                            "id": "t",
                            "service": "svc",
                            "action": "count",
                            "input": {"n": "{% $item %}"},
                        }
                    ],
                    "output": "{% $result.n %}",
                }
            ]
        },
        {"items": list(range(5000))},
        signing=signing,
    )
    assert result == [i + 1 for i in range(5000)]
    history = await handle.fetch_history()
    assert len(history.events) < 200, "the parent holds batches, not 5,000 activities"
