"""DEFINITION_SIGNING_KEY on a gateway and a worker: the gateway signs what it starts, and
the worker runs no step whose definition was altered or left unsigned on the way.

The worker's side is activities/http_step.py (`_verify`); here it is checked end to end:
a start made directly with the Temporal SDK, carrying a definition with another
endpoint, fails its step without calling anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from definitions.contract import CONTRACT_VERSION, ExecutionMemo
from definitions.language import Flow
from definitions.models import ExecutionOptions, PinnedDefinition
from harness.stack import Stack
from tests.support.builders import action, chain, create_workflow, register, service

SIGNING_KEY = "a-long-random-secret-shared-by-gateways-and-workers"

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def signed(stack: Stack) -> Iterator[tuple[str, str]]:
    """A gateway and a worker with DEFINITION_SIGNING_KEY, on a task queue of their own."""
    task_queue = f"signed-{uuid.uuid4().hex[:8]}"
    with stack.pair(DEFINITION_SIGNING_KEY=SIGNING_KEY, TASK_QUEUE=task_queue) as url:
        yield url, task_queue


async def _signed_execution(api: httpx.AsyncClient, services, unique):  # type: ignore[no-untyped-def]
    token = services.token()
    name = f"signed-{unique}"
    await register(api, service(name, services.endpoint("echo", token), [action("run")]))
    workflow = await create_workflow(api, f"wf-signed-{unique}", chain(("only", name, "run")))
    answer = await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {"a": 1}})
    assert answer.status_code == 200, answer.text
    return answer.json(), token


@sqlite_only
async def test_an_execution_signed_by_the_gateway_completes(signed, services, unique):
    url, _ = signed
    async with httpx.AsyncClient(base_url=url, timeout=60) as api:
        record, token = await _signed_execution(api, services, unique)
    assert record["status"] == "COMPLETED", record
    assert len(services.calls[token]) == 1


@sqlite_only
@pytest.mark.parametrize(
    ("signatures", "error_type"),
    [("none", "DefinitionNotSigned"), ("original", "DefinitionSignatureMismatch")],
)
async def test_a_definition_altered_on_the_way_fails_its_step_without_a_call(
    signed, services, stack, unique, signatures, error_type
):
    url, task_queue = signed
    async with httpx.AsyncClient(base_url=url, timeout=60) as api:
        record, _ = await _signed_execution(api, services, unique)
        client = await Client.connect(stack.temporal_address)
        history = await client.get_workflow_handle(record["execution_id"]).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        payloads = list(started.input.payloads)
        options = ExecutionOptions.model_validate(
            (await client.data_converter.decode(payloads[1:2]))[0]
        )
        assert options.signatures, "the gateway signs every step it starts"
        assert options.definition is not None

        elsewhere = services.token()
        step = options.definition.steps[0]
        moved = step.model_copy(update={"endpoint": services.endpoint("echo", elsewhere)})
        altered = options.definition.model_copy(update={"steps": [moved]})
        forged = ExecutionOptions(
            contract=CONTRACT_VERSION,
            definition=altered,
            signatures=options.signatures if signatures == "original" else {},
        )
        execution_id = f"forged-{uuid.uuid4()}"
        handle = await client.start_workflow(
            altered.name,
            args=[{"a": 1}, forged.model_dump(mode="json")],
            id=execution_id,
            task_queue=task_queue,
            memo=ExecutionMemo(
                kind="workflow", workflow_id=altered.workflow_id, workflow_name=altered.name
            ).to_memo(),
        )
        try:
            await handle.result()
        except Exception:  # noqa: BLE001 - the record says how it failed
            pass
        else:
            raise AssertionError("an altered definition must not run")
        forged_record = (await api.get(f"/executions/{execution_id}")).json()
    assert forged_record["status"] == "FAILED", forged_record
    assert forged_record["error"]["error_type"] == error_type, forged_record["error"]
    # Unsigned: refused by the workflow before any step; step-signed only (a chain from
    # an older gateway): refused by the step's own check, in its one attempt.
    assert forged_record["error"]["attempts"] == (None if signatures == "none" else 1)
    assert services.calls[elsewhere] == []


async def _start_forged(client: Client, task_queue: str, options: ExecutionOptions) -> Any:
    assert options.definition is not None
    execution_id = f"forged-{uuid.uuid4()}"
    handle = await client.start_workflow(
        options.definition.name,
        args=[{"a": 1}, options.model_dump(mode="json")],
        id=execution_id,
        task_queue=task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    return failed.value.cause


@sqlite_only
async def test_an_unsigned_flow_without_task_steps_is_refused(signed, stack):
    """A flow of one `succeed` step has no step to sign: the whole definition is signed,
    and the worker refuses it unsigned before evaluating anything."""
    _, task_queue = signed
    client = await Client.connect(stack.temporal_address)
    flow = Flow.model_validate(
        {"steps": [{"id": "s", "type": "succeed", "output": "{% $pad('', 10, 'a') %}"}]}
    )
    definition = PinnedDefinition(name="x", entry="s", steps=[], flow=flow)
    cause = await _start_forged(
        client, task_queue, ExecutionOptions(contract=CONTRACT_VERSION, definition=definition)
    )
    assert isinstance(cause, ApplicationError)
    assert cause.type == "DefinitionNotSigned", cause


@sqlite_only
async def test_a_flow_altered_after_signing_is_refused(signed, stack, services, unique):
    """The gateway's signature covers the expressions: one changed on the way fails the
    execution with DefinitionSignatureMismatch, before any command."""
    url, task_queue = signed
    async with httpx.AsyncClient(base_url=url, timeout=60) as api:
        token = services.token()
        name = f"signed-flow-{unique}"
        await register(api, service(name, services.endpoint("echo", token), [action("run")]))
        created = await api.post(
            "/workflows",
            json={
                "name": f"wf-flow-{unique}",
                "steps": [{"id": "only", "service": name, "action": "run", "input": {"a": 1}}],
                "output": "{% $steps.only.output %}",
            },
        )
        assert created.status_code == 201, created.text
        answer = await api.post(f"/workflows/{created.json()['id']}/execute", json={})
        assert answer.json()["status"] == "COMPLETED", answer.text
        client = await Client.connect(stack.temporal_address)
        history = await client.get_workflow_handle(answer.json()["execution_id"]).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        options = ExecutionOptions.model_validate(
            (await client.data_converter.decode(list(started.input.payloads)[1:2]))[0]
        )
    assert options.definition_signature, "the gateway signs the whole definition"
    assert options.definition is not None and options.definition.flow is not None
    altered_flow = options.definition.flow.model_copy(update={"output": "{% 'altered' %}"})
    altered = options.model_copy(
        update={"definition": options.definition.model_copy(update={"flow": altered_flow})}
    )
    calls_before = len(services.calls[token])
    cause = await _start_forged(client, task_queue, altered)
    assert isinstance(cause, ApplicationError)
    assert cause.type == "DefinitionSignatureMismatch", cause
    assert len(services.calls[token]) == calls_before
