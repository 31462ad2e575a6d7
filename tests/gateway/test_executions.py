"""Executions on the real worker and Temporal dev server, read back through the gateway."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client

from definitions.contract import INVALID_START
from tests.support.builders import (
    ANALYZE_INPUT,
    ANALYZE_OUTPUT,
    EXTRACT_INPUT,
    FAST_RETRY,
    action,
    chain,
    create_workflow,
    document_sentiment,
    register,
    service,
)
from tests.support.polling import eventually


async def _execute(api: httpx.AsyncClient, workflow_id: str, input_data: dict, **body: Any) -> dict:
    answer = await api.post(
        f"/workflows/{workflow_id}/execute", json={"input_data": input_data, **body}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _one_step(api, services, unique, behaviour, token, name="run", **action_fields) -> dict:
    svc = f"{behaviour}-{unique}"
    await register(
        api, service(svc, services.endpoint(behaviour, token), [action(name, **action_fields)])
    )
    return await create_workflow(api, f"wf-{unique}", chain(("only", svc, name)))


async def test_document_sentiment_completes_with_result_and_step_states(api, services, unique):
    workflow = await document_sentiment(api, f"{services.url}/examples", unique)
    record = await _execute(
        api,
        workflow["id"],
        {"document_url": "https://example.com/document.pdf"},
        context={"project_id": "456", "request_id": "req-123"},
    )
    assert record["status"] == "COMPLETED"
    assert record["result"]["sentiment"] == "positive"
    assert record["result"]["score"] > 0
    assert (record["workflow_id"], record["workflow_version"]) == (workflow["id"], 1)
    assert record["workflow_name"] == f"document-sentiment-{unique}"
    assert record["context"] == {"project_id": "456", "request_id": "req-123"}
    assert record["input"] == {"document_url": "https://example.com/document.pdf"}
    assert [(s["id"], s["status"], s["attempts"]) for s in record["steps"]] == [
        ("extract-text", "COMPLETED", 1),
        ("analyze-sentiment", "COMPLETED", 1),
    ]
    assert all(s["started_at"] <= s["completed_at"] for s in record["steps"])
    assert record["started_at"] <= record["closed_at"]
    again = (await api.get(f"/executions/{record['execution_id']}")).json()
    assert again == record


async def test_step_gets_contract_headers_and_declared_input(api, services, unique):
    token = services.token()
    workflow = await _one_step(
        api,
        services,
        unique,
        "echo",
        token,
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
        forward_context=["project_id"],
    )
    record = await _execute(
        api,
        workflow["id"],
        {"text": "hi", "ignored": 1},
        context={"request_id": "req-9", "project_id": "p1", "secret": "s"},
    )
    call = services.calls[token][0]
    assert call.body == {"text": "hi"}
    assert call.headers["x-request-id"] == "req-9"
    assert call.headers["idempotency-key"] == f"{record['execution_id']}:only"
    assert call.headers["x-context-project_id"] == "p1"
    assert "x-context-secret" not in call.headers  # only the keys the action forwards
    assert record["result"] == {"echo": {"text": "hi"}, "action": "run"}


async def test_request_id_is_generated_when_context_has_none(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "echo", token)
    await _execute(api, workflow["id"], {})
    assert len(services.calls[token][0].headers["x-request-id"]) >= 32


async def test_step_failing_twice_then_succeeding_completes_with_three_attempts(
    api, services, unique
):
    token = services.token()
    services.failures[token] = 2
    workflow = await _one_step(api, services, unique, "flaky", token)
    record = await _execute(api, workflow["id"], {})
    assert record["status"] == "COMPLETED"
    assert record["steps"][0]["attempts"] == 3
    keys = {call.headers["idempotency-key"] for call in services.calls[token]}
    assert len(services.calls[token]) == 3 and len(keys) == 1


async def test_service_answering_400_fails_at_once_with_one_attempt(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "status", token, name="400")
    record = await _execute(api, workflow["id"], {})
    assert record["status"] == "FAILED"
    assert record["error"]["step_id"] == "only"
    assert record["error"]["service"] == f"status-{unique}"
    assert record["error"]["action"] == "400"
    assert record["error"]["error_type"] == "ServiceRejected"
    assert record["error"]["attempts"] == 1
    assert "HTTP 400" in record["error"]["message"]
    assert len(services.calls[token]) == 1
    assert record["steps"][0]["status"] == "FAILED"


async def test_service_down_longer_than_retry_policy_fails_with_attempts_and_last_error(
    api, services, unique
):
    token = services.token()
    policy = {
        "initial_interval": 0.1,
        "backoff_coefficient": 1.0,
        "maximum_interval": 0.1,
        "maximum_attempts": 3,
    }
    workflow = await _one_step(
        api, services, unique, "status", token, name="503", retry_policy=policy
    )
    record = await _execute(api, workflow["id"], {})
    assert record["status"] == "FAILED"
    assert (record["error"]["attempts"], record["error"]["error_type"]) == (3, "ServiceUnavailable")
    assert "HTTP 503" in record["error"]["message"]
    assert len(services.calls[token]) == 3


async def test_429_with_retry_after_is_retried_after_the_delay_it_asks(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "ratelimit", token)
    started = time.monotonic()
    record = await _execute(api, workflow["id"], {})
    assert record["status"] == "COMPLETED"
    assert record["steps"][0]["attempts"] == 2
    assert time.monotonic() - started >= 0.9


async def test_input_violating_the_schema_fails_the_step_without_calling(api, services, unique):
    # A later step: the gateway refuses an input the first step's schema refuses (422,
    # tests/gateway/test_first_hour.py); the worker checks every step's input.
    first, token = services.token(), services.token()
    await register(
        api, service(f"first-{unique}", services.endpoint("echo", first), [action("run")])
    )
    await register(
        api,
        service(
            f"echo-{unique}",
            services.endpoint("echo", token),
            [action("run", input_schema=EXTRACT_INPUT)],
        ),
    )
    workflow = await create_workflow(
        api,
        f"wf-{unique}",
        chain(("first", f"first-{unique}", "run"), ("only", f"echo-{unique}", "run")),
    )
    record = await _execute(api, workflow["id"], {"language": "en"})
    assert record["status"] == "FAILED"
    assert record["error"]["step_id"] == "only"
    assert record["error"]["error_type"] == "InputSchemaViolation"
    assert "'document_url' is a required property" in record["error"]["message"]
    assert record["error"]["attempts"] == 1
    assert services.calls[token] == []


async def test_output_violating_the_schema_fails_the_step(api, services, unique):
    token = services.token()
    workflow = await _one_step(
        api,
        services,
        unique,
        "badoutput",
        token,
        input_schema=ANALYZE_INPUT,
        output_schema=ANALYZE_OUTPUT,
    )
    record = await _execute(api, workflow["id"], {"text": "x"})
    assert record["status"] == "FAILED"
    assert record["error"]["error_type"] == "OutputSchemaViolation"
    assert "sentiment: 5 is not of type 'string'" in record["error"]["message"]


async def test_running_execution_keeps_its_pinned_definition_across_updates(api, services, unique):
    token = services.token()
    hang = f"hang-{unique}"
    svc = await register(api, service(hang, services.endpoint("hang", token), [action("run")]))
    echo_token = services.token()
    echo = await register(
        api, service(f"echo-{unique}", services.endpoint("echo", echo_token), [action("run")])
    )
    workflow = await create_workflow(api, f"wf-{unique}", chain(("first", hang, "run")))
    started = await api.post(
        f"/workflows/{workflow['id']}/executions", json={"input_data": {"n": 1}}
    )
    assert started.status_code == 202
    execution_id = started.json()["execution_id"]

    async def called() -> bool:
        return bool(services.calls[token])

    await eventually(called, what="the hanging step to be called")
    updated = await api.patch(
        f"/workflows/{workflow['id']}",
        json={"steps": chain(("first", hang, "run"), ("second", echo["name"], "run"))},
    )
    assert updated.json()["version"] == 2
    await api.patch(f"/services/{svc['id']}", json={"endpoint": "http://127.0.0.1:9/nowhere"})
    services.release(token)

    async def closed() -> bool:
        return (await api.get(f"/executions/{execution_id}")).json()["status"] != "RUNNING"

    await eventually(closed, what="the execution to close")
    record = (await api.get(f"/executions/{execution_id}")).json()
    assert record["status"] == "COMPLETED"
    assert record["workflow_version"] == 1
    assert [s["id"] for s in record["steps"]] == ["first"]
    assert services.calls[echo_token] == []


async def test_start_by_name_with_the_temporal_sdk_runs_the_stored_workflow(
    api, services, stack, unique
):
    workflow = await document_sentiment(api, f"{services.url}/examples", unique)
    client = await Client.connect(stack.temporal_address)
    execution_id = f"sdk-{uuid.uuid4()}"
    result = await client.execute_workflow(
        f"document-sentiment-{unique}",
        {"document_url": "https://example.com/complaint.pdf"},
        id=execution_id,
        task_queue=stack.task_queue,
    )
    assert result["sentiment"] == "negative"
    record = (await api.get(f"/executions/{execution_id}")).json()
    assert (record["workflow_id"], record["workflow_version"]) == (workflow["id"], 1)
    assert [s["status"] for s in record["steps"]] == ["COMPLETED", "COMPLETED"]


async def test_start_by_name_of_unknown_workflow_fails_clearly(stack, unique):
    client = await Client.connect(stack.temporal_address)
    handle = await client.start_workflow(
        f"no-such-{unique}", {}, id=f"sdk-{uuid.uuid4()}", task_queue=stack.task_queue
    )
    try:
        await handle.result()
    except Exception as exc:  # noqa: BLE001
        assert f"workflow 'no-such-{unique}' not found" in str(exc.__cause__)
    else:
        raise AssertionError("an unknown workflow name must fail")


async def test_sdk_start_with_an_input_that_is_no_object_is_not_an_execution_of_the_service(
    api, services, stack, unique
):
    """It fails at once (InvalidStart) before loading a definition, so it never becomes an
    execution of a stored workflow: the gateway answers 404, never a 500."""
    await document_sentiment(api, f"{services.url}/examples", unique)
    client = await Client.connect(stack.temporal_address)
    execution_id = f"sdk-{uuid.uuid4()}"
    handle = await client.start_workflow(
        f"document-sentiment-{unique}", "not-a-dict", id=execution_id, task_queue=stack.task_queue
    )
    try:
        await handle.result()
    except Exception as exc:  # noqa: BLE001 - how it failed is checked below
        assert INVALID_START in repr(exc.__cause__) or INVALID_START in str(exc.__cause__)
    answer = await api.get(f"/executions/{execution_id}")
    assert answer.status_code == 404, answer.text
    assert answer.json()["resource_type"] == "execution"


async def test_executions_list_filters_by_status_and_paginates(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "echo", token)
    for _ in range(3):
        await _execute(api, workflow["id"], {})

    async def listed() -> bool:
        page = (await api.get(f"/workflows/{workflow['id']}/executions")).json()
        return page["total"] == 3

    await eventually(listed, what="visibility to list 3 executions")
    first = (
        await api.get(f"/workflows/{workflow['id']}/executions", params={"per_page": 2})
    ).json()
    second = (
        await api.get(f"/workflows/{workflow['id']}/executions", params={"per_page": 2, "page": 2})
    ).json()
    assert (len(first["items"]), len(second["items"]), first["pages"]) == (2, 1, 2)
    assert all(item["status"] == "COMPLETED" for item in first["items"] + second["items"])
    failed = (
        await api.get(f"/workflows/{workflow['id']}/executions", params={"status": "FAILED"})
    ).json()
    assert failed["total"] == 0 and failed["items"] == []


async def test_executing_an_inactive_workflow_is_refused_and_starts_nothing(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "echo", token)
    await api.patch(f"/workflows/{workflow['id']}", json={"status": "INACTIVE"})
    answer = await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})
    assert answer.status_code == 409
    assert "INACTIVE" in answer.json()["detail"]
    await asyncio.sleep(1)
    listed = (await api.get(f"/workflows/{workflow['id']}/executions")).json()
    assert listed["total"] == 0


async def test_executing_with_an_inactive_service_is_refused(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "echo", token)
    svc = (await api.get("/services", params={"per_page": 100})).json()["items"]
    target = next(s for s in svc if s["name"] == f"echo-{unique}")
    await api.patch(f"/services/{target['id']}", json={"status": "INACTIVE"})
    answer = await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})
    assert answer.status_code == 409
    assert f"service 'echo-{unique}', which is INACTIVE" in answer.json()["detail"]
    action_answer = await api.post(f"/services/{target['id']}/actions/run/execute", json={})
    assert action_answer.status_code == 409
    assert services.calls[token] == []


async def test_execute_service_action_runs_one_step_execution(api, services, unique):
    token = services.token()
    svc = await register(
        api, service(f"echo-{unique}", services.endpoint("echo", token), [action("run")])
    )
    answer = await api.post(
        f"/services/{svc['id']}/actions/run/execute",
        json={"input_data": {"x": 1}, "context": {"request_id": "req-a"}},
    )
    assert answer.status_code == 200
    record = answer.json()
    assert (record["kind"], record["status"]) == ("action", "COMPLETED")
    assert record["workflow_name"] == f"echo-{unique}.run"
    assert record["result"]["echo"] == {"x": 1}
    assert record["steps"][0]["attempts"] == 1
    unknown = await api.post(f"/services/{svc['id']}/actions/nope/execute", json={})
    assert unknown.status_code == 404
    assert unknown.json()["resource_type"] == "action"


async def test_start_without_waiting_then_follow_status(api, services, unique):
    workflow = await document_sentiment(api, f"{services.url}/examples", unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/executions",
        json={"input_data": {"document_url": "https://example.com/document.pdf"}},
    )
    assert answer.status_code == 202
    assert answer.headers["location"] == answer.json()["status_url"]
    execution_id = answer.json()["execution_id"]

    async def completed() -> bool:
        return (await api.get(f"/executions/{execution_id}")).json()["status"] == "COMPLETED"

    await eventually(completed, what="completion")


async def test_execute_with_same_idempotency_key_starts_one_execution(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "echo", token)
    headers = {"Idempotency-Key": f"key-{unique}"}
    first = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {}}, headers=headers
    )
    second = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {}}, headers=headers
    )
    assert first.json()["execution_id"] == second.json()["execution_id"]
    assert len(services.calls[token]) == 1
    started = await api.post(
        f"/workflows/{workflow['id']}/executions", json={"input_data": {}}, headers=headers
    )
    assert started.json()["execution_id"] == first.json()["execution_id"]


async def test_execute_answers_202_while_still_running_after_timeout(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "hang", token)
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute", params={"timeout": 0.5}, json={"input_data": {}}
    )
    assert answer.status_code == 202
    assert answer.json()["status"] == "RUNNING"
    assert answer.json()["steps"][0]["status"] in ("PENDING", "SCHEDULED", "RUNNING")
    services.release(token)


async def test_get_execution_not_found(api):
    answer = await api.get("/executions/exec-missing")
    assert answer.status_code == 404
    assert (answer.json()["resource_type"], answer.json()["resource_id"]) == (
        "execution",
        "exec-missing",
    )


async def test_x_request_id_header_becomes_the_request_id_when_context_has_none(
    api, services, unique
):
    token = services.token()
    workflow = await _one_step(api, services, unique, "echo", token)
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute",
        json={"input_data": {}},
        headers={"X-Request-ID": "from-header"},
    )
    assert answer.json()["context"] == {"request_id": "from-header"}
    assert services.calls[token][0].headers["x-request-id"] == "from-header"


async def test_start_service_action_without_waiting(api, services, unique):
    token = services.token()
    svc = await register(
        api, service(f"echo-{unique}", services.endpoint("echo", token), [action("run")])
    )
    answer = await api.post(
        f"/services/{svc['id']}/actions/run/executions", json={"input_data": {"y": 2}}
    )
    assert answer.status_code == 202
    execution_id = answer.json()["execution_id"]

    async def completed() -> bool:
        record = (await api.get(f"/executions/{execution_id}")).json()
        return record["status"] == "COMPLETED" and record["result"]["echo"] == {"y": 2}

    await eventually(completed, what="the action execution to complete")


async def test_context_values_a_header_cannot_carry_are_percent_encoded(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "echo", token, forward_context=["city"])
    record = await _execute(
        api, workflow["id"], {}, context={"request_id": "req\nnext", "city": "Zürich"}
    )
    assert record["status"] == "COMPLETED"
    headers = services.calls[token][0].headers
    assert headers["x-request-id"] == "req%0Anext"
    assert headers["x-context-city"] == "Z%C3%BCrich"


async def test_get_execution_with_wait_long_polls_until_it_closes(api, services, unique):
    token = services.token()
    workflow = await _one_step(api, services, unique, "hang", token)
    started = await api.post(f"/workflows/{workflow['id']}/executions", json={"input_data": {}})
    execution_id = started.json()["execution_id"]
    running = await api.get(f"/executions/{execution_id}", params={"wait": 0.3})
    assert running.json()["status"] == "RUNNING"
    services.release(token)
    closed = await api.get(f"/executions/{execution_id}", params={"wait": 20})
    assert closed.json()["status"] == "COMPLETED"
    missing = await api.get("/executions/exec-nowhere", params={"wait": 1})
    assert missing.status_code == 404


def _counting_loop(iterations: int) -> list[dict[str, Any]]:
    """A loop of `iterations` rounds that calls no service and leaves no event: a parallel
    whose one branch waits 0 s counts in its `assign`, a choice loops back. Three steps a
    round, so it continues as new every 500 steps (workflows/interpreter.py)."""
    return [
        {
            "id": "count",
            "type": "parallel",
            "branches": [{"steps": [{"id": "tick", "type": "wait", "seconds": 0}]}],
            "assign": {"n": "{% ($exists($vars.n) ? $vars.n : 0) + 1 %}"},
            "next": "more",
        },
        {
            "id": "more",
            "type": "choice",
            "choices": [{"when": f"{{% $vars.n < {iterations} %}}", "next": "count"}],
            "default": "done",
        },
        {
            "id": "done",
            "type": "succeed",
            "output": {"n": "{% $vars.n %}", "input": "{% $input %}"},
        },
    ]


async def _runs_of(client: Client, execution_id: str) -> int:
    """How many runs the execution went through: its latest run's chain back to the first."""
    runs, run_id = 1, None
    while True:
        history = await client.get_workflow_handle(execution_id, run_id=run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return runs
        runs, run_id = runs + 1, started.continued_execution_run_id


async def test_execute_follows_a_loop_through_continue_as_new_to_its_result(api, stack, unique):
    workflow = await create_workflow(api, f"loop-{unique}", _counting_loop(1000), max_steps=3100)
    answer = await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {"k": "v"}})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["status"] == "COMPLETED"
    assert record["result"] == {"n": 1000, "input": {"k": "v"}}
    assert record["input"] == {"k": "v"}
    assert record["steps"][-1]["id"] == "done"
    client = await Client.connect(stack.temporal_address)
    assert await _runs_of(client, record["execution_id"]) >= 6, "3,001 steps: six runs"
    latest = await client.get_workflow_handle(record["execution_id"]).describe()
    assert record["run_id"] == latest.run_id
    again = await api.get(f"/executions/{record['execution_id']}")
    assert again.json() == record


async def test_get_with_wait_follows_a_loop_through_continue_as_new(api, unique):
    workflow = await create_workflow(api, f"loop-{unique}", _counting_loop(1000), max_steps=3100)
    started = await api.post(
        f"/workflows/{workflow['id']}/executions", json={"input_data": {"k": 2}}
    )
    assert started.status_code == 202, started.text
    answer = await api.get(started.json()["status_url"].removeprefix("/api"), params={"wait": 30})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "COMPLETED"
    assert answer.json()["result"] == {"n": 1000, "input": {"k": 2}}


async def test_get_answers_the_run_a_reset_made(api, services, stack, unique):
    token = services.token()
    services.failures[token] = 1  # the first call fails; the one after the reset succeeds
    once = {**FAST_RETRY, "maximum_attempts": 1}
    workflow = await _one_step(api, services, unique, "flaky", token, retry_policy=once)
    failed = await _execute(api, workflow["id"], {"x": 1})
    assert failed["status"] == "FAILED"
    execution_id = failed["execution_id"]
    client = await Client.connect(stack.temporal_address)
    history = await client.get_workflow_handle(execution_id).fetch_history()
    first_task = next(
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    reset = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=execution_id),
            reason="the service is back",
            workflow_task_finish_event_id=first_task.event_id,
            request_id=str(uuid.uuid4()),
        )
    )
    answer = await api.get(f"/executions/{execution_id}", params={"wait": 20})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert (record["status"], record["run_id"]) == ("COMPLETED", reset.run_id)
    assert record["run_id"] != failed["run_id"]
    assert record["result"] == {"text": "ok after 2 calls"}
    assert record["input"] == {"x": 1}
    assert [(s["id"], s["status"]) for s in record["steps"]] == [("only", "COMPLETED")]
