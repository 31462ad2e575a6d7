"""A rolling upgrade runs old and new processes side by side; both directions must work.

- An older gateway's start (recorded by version 0.1.0) runs on today's worker.
- A newer gateway's start, with fields today's code does not know, runs on today's worker.
- What today's gateway and workflow send is accepted by the models 0.1.0's worker runs
  (tests/replay/models_0_1_0.py, kept verbatim).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.http_step import StepActivities
from core.devserver import DevServer
from core.outbound import OutboundPolicy
from core.temporal import connect
from definitions.contract import CONTRACT_VERSION
from definitions.models import ActionSpec, ExecutionOptions, PinnedDefinition, PinnedStep, StepCall
from harness.services import TestServices
from tests.replay import models_0_1_0 as seed
from worker.main import workflow_options

HISTORIES = Path(__file__).resolve().parent / "histories"


@pytest.fixture
async def client(temporal: DevServer) -> AsyncIterator[Client]:
    yield await connect(temporal.address, "default")


@pytest.fixture
async def task_queue(client: Client) -> AsyncIterator[str]:
    """A worker of today's code, with the real HTTP step, on a queue of its own."""
    queue = f"upgrade-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient() as http:
        steps = StepActivities(http, OutboundPolicy(allowed_hosts="127.0.0.1"))
        async with Worker(
            client, task_queue=queue, activities=[steps.call_service], **workflow_options()
        ):
            yield queue


def recorded_start(name: str) -> tuple[Any, Any]:
    """The two start arguments an execution was started with, as the JSON sent then."""
    events = json.loads((HISTORIES / name).read_text())["events"]
    payloads = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    return tuple(json.loads(base64.b64decode(p["data"])) for p in payloads)  # type: ignore[return-value]


def add_unknown_fields(value: Any) -> Any:
    """Every object gets a field no version of today's code knows."""
    if isinstance(value, dict):
        return {**{k: add_unknown_fields(v) for k, v in value.items()}, "added_later": {"x": 1}}
    if isinstance(value, list):
        return [add_unknown_fields(item) for item in value]
    return value


def example_definition(services: TestServices) -> PinnedDefinition:
    examples = f"{services.url}/examples"
    return PinnedDefinition(
        workflow_id="wf-upgrade",
        name="document-sentiment-upgrade",
        version=1,
        entry="extract-text",
        steps=[
            PinnedStep(
                id="extract-text",
                service="text-extraction",
                action="extract",
                next="analyze-sentiment",
                endpoint=f"{examples}/text-extraction",
                spec=ActionSpec(name="extract"),
            ),
            PinnedStep(
                id="analyze-sentiment",
                service="sentiment-analysis",
                action="analyze",
                next=None,
                endpoint=f"{examples}/sentiment-analysis",
                spec=ActionSpec(name="analyze"),
            ),
        ],
    )


async def test_start_by_an_older_gateway_runs_on_todays_worker(
    client: Client, task_queue: str, services: TestServices
) -> None:
    input_data, options = recorded_start("0.1.0/gateway-linear-context.json")
    assert "contract" not in options  # as 0.1.0 sent it
    for step in options["definition"]["steps"]:  # the recording's services are gone
        step["endpoint"] = f"{services.url}/examples/{step['endpoint'].rsplit('/', 1)[1]}"
    result = await client.execute_workflow(
        options["definition"]["name"],
        args=[input_data, options],
        id=f"upgrade-{uuid.uuid4().hex}",
        task_queue=task_queue,
    )
    assert result["sentiment"] == "positive"


async def test_start_by_a_newer_gateway_with_unknown_fields_runs_on_todays_worker(
    client: Client, task_queue: str, services: TestServices
) -> None:
    options = ExecutionOptions(
        contract=CONTRACT_VERSION + 1,
        definition=example_definition(services),
        context={"request_id": "req-new"},
    ).model_dump(mode="json")
    newer = add_unknown_fields(options)
    assert newer["definition"]["steps"][0]["spec"]["retry_policy"]["added_later"] == {"x": 1}
    result = await client.execute_workflow(
        "document-sentiment-upgrade",
        args=[{"document_url": "https://example.com/document.pdf"}, newer],
        id=f"upgrade-{uuid.uuid4().hex}",
        task_queue=task_queue,
    )
    assert result["sentiment"] == "positive"


def test_todays_start_options_are_accepted_by_the_0_1_0_worker(services: TestServices) -> None:
    sent = ExecutionOptions(
        contract=CONTRACT_VERSION,
        definition=example_definition(services),
        context={"request_id": "r"},
    ).model_dump_json()
    old = seed.ExecutionOptions.model_validate_json(sent)
    assert old.definition is not None
    assert old.definition.model_dump() == json.loads(sent)["definition"]


def test_todays_step_call_is_accepted_by_the_0_1_0_worker() -> None:
    sent = StepCall(
        contract=CONTRACT_VERSION,
        execution_id="exec-1",
        step_id="s",
        service="svc",
        endpoint="http://example.com",
        spec=ActionSpec(name="run"),
        input={"a": 1},
        request_id="r",
    ).model_dump_json()
    old = seed.StepCall.model_validate_json(sent)
    assert (old.step_id, old.input) == ("s", {"a": 1})


def test_a_newer_step_call_with_unknown_fields_is_accepted_today() -> None:
    call = StepCall(
        execution_id="exec-1",
        step_id="s",
        service="svc",
        endpoint="http://example.com",
        spec=ActionSpec(name="run"),
        input={"a": 1},
        request_id="r",
    ).model_dump(mode="json")
    newer = {**add_unknown_fields({k: v for k, v in call.items() if k != "input"}), "input": {}}
    assert StepCall.model_validate(newer).spec.name == "run"
