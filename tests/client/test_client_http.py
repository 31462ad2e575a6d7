"""Both clients against a real local HTTP server that answers what each test scripts.

Every test runs once with `ServiceIntegrationClient` and once with
`AsyncServiceIntegrationClient` (the `make_client` fixture). The sleep is the
fake clock's, which records each delay and moves the clock instead of waiting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.utils.src.circuit_breaker import CircuitBreaker, CircuitState
from shared.utils.src.clients import ExecutionResult
from shared.utils.src.exceptions import (
    CircuitOpenError,
    ConflictError,
    ExecutionFailedError,
    ExecutionStillRunningError,
    MaxRetriesExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnexpectedResponseError,
    ValidationError,
)
from shared.utils.src.request_id import request_id_scope

STEPS = [{"id": "extract-text", "service": "text-extraction", "action": "extract", "next": None}]
ACTIONS = [{"name": "extract", "description": "Extract text", "input_schema": {"type": "object"}}]

# One call per row of the guide's retry table, with that row's nominal delays.
OPERATIONS = {
    "create": (("create_workflow",), {"name": "wf", "steps": STEPS}, [0.5, 1.0, 2.0]),
    "register": (("register_service",), {"name": "s", "actions": ACTIONS}, [0.5, 1.0, 2.0]),
    "update": (("update_workflow", "wf-1"), {"status": "INACTIVE"}, [0.5, 1.0, 2.0]),
    "update_service": (("update_service", "s-1"), {"status": "ACTIVE"}, [0.5, 1.0, 2.0]),
    "delete": (("delete_workflow", "wf-1"), {}, [1.0, 2.0]),
    "deregister": (("deregister_service", "s-1"), {}, [1.0, 2.0]),
    "read": (("get_workflow", "wf-1"), {}, [0.5, 1.0]),
    "read_page": (("get_services",), {"status": "ACTIVE"}, [0.5, 1.0]),
}

UNAVAILABLE = {"detail": "the registry database is unavailable", "component": "database"}


def record(execution_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "run_id": "run-1",
        "kind": "workflow",
        "workflow_id": "wf-1",
        "workflow_name": "document-sentiment",
        "status": status,
        "result": None,
        "error": None,
        "steps": [],
        **fields,
    }


def within_jitter(delays: list[float], nominal: list[float]) -> bool:
    return len(delays) == len(nominal) and all(
        n / 2 <= d <= n for d, n in zip(delays, nominal, strict=True)
    )


# Retries


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_503_until_the_end_gives_max_retries_after_the_tables_attempts_and_delays(
    make_client, invoke, local_server, clock, operation
):
    (method, *args), kwargs, nominal = OPERATIONS[operation]
    local_server.answer(503, UNAVAILABLE, headers={"Retry-After": "2"}, times=10)
    client = make_client()

    with pytest.raises(MaxRetriesExceededError) as caught:
        await invoke(client, method, *args, **kwargs)

    assert caught.value.attempts == len(nominal) + 1
    assert len(local_server.requests) == len(nominal) + 1
    assert within_jitter(clock.sleeps, nominal), clock.sleeps
    last = caught.value.last_error
    assert isinstance(last, ServiceUnavailableError)
    assert (last.service_name, last.component, last.retry_after) == (
        "service-integration",
        "database",
        2.0,
    )
    assert caught.value.response is not None and caught.value.response.status_code == 503


@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_503_n_times_then_success_returns_the_answer(
    make_client, invoke, local_server, clock, operation
):
    (method, *args), kwargs, nominal = OPERATIONS[operation]
    failures = len(nominal)  # as many as the policy retries: the last attempt succeeds
    local_server.answer(503, UNAVAILABLE, times=failures)
    local_server.answer(200, {"id": "x-1", "name": "answer"})

    result = await invoke(make_client(), method, *args, **kwargs)

    assert result == {"id": "x-1", "name": "answer"}
    assert len(local_server.requests) == failures + 1
    assert within_jitter(clock.sleeps, nominal)


async def test_502_and_504_are_retried_like_503(make_client, invoke, local_server, clock):
    local_server.answer(502, text="Bad Gateway")
    local_server.answer(504, text="Gateway Timeout")
    local_server.answer(200, {"id": "wf-1"})
    assert await invoke(make_client(), "get_workflow", "wf-1") == {"id": "wf-1"}
    assert len(local_server.requests) == 3


async def test_idempotency_key_is_the_same_across_retries_and_new_per_call(
    make_client, local_server
):
    client = make_client()
    local_server.answer(503, UNAVAILABLE, times=2)
    local_server.answer(201, {"id": "wf-1"})
    await client.create_workflow(name="wf", steps=STEPS)
    local_server.answer(201, {"id": "wf-2"})
    await client.create_workflow(name="wf-other", steps=STEPS)

    keys = [r.headers.get("idempotency-key") for r in local_server.requests]
    assert keys[0] and keys[0] == keys[1] == keys[2]
    assert keys[3] and keys[3] != keys[0]


async def test_callers_idempotency_key_is_sent(make_client, local_server):
    local_server.answer(201, {"id": "s-1"})
    await make_client().register_service(name="s", actions=ACTIONS, idempotency_key="key-42")
    assert local_server.requests[0].headers["idempotency-key"] == "key-42"


async def test_reads_send_no_idempotency_key(make_client, invoke, local_server):
    await invoke(make_client(), "get_workflows")
    assert "idempotency-key" not in local_server.requests[0].headers


async def test_timeout_is_retried_with_the_same_key(make_client, local_server, clock):
    local_server.answer(201, {"id": "wf-1"}, delay=1.0)  # answered too late: the client gave up
    local_server.answer(201, {"id": "wf-1"})
    client = make_client(timeout=0.2)

    assert await client.create_workflow(name="wf", steps=STEPS) == {"id": "wf-1"}

    first, second = local_server.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert len(clock.sleeps) == 1


async def test_connection_refused_is_unavailability_with_the_request(make_client, invoke, clock):
    client = make_client(base_url="http://127.0.0.1:9/api")
    with pytest.raises(MaxRetriesExceededError) as caught:
        await invoke(client, "get_services")
    last = caught.value.last_error
    assert isinstance(last, ServiceUnavailableError)
    assert last.request is not None and last.request.url.path == "/api/services"
    assert last.response is None
    assert "could not be reached" in str(last)
    assert len(clock.sleeps) == 2


# Headers


async def test_request_id_comes_from_the_context_and_stays_across_retries(
    make_client, invoke, local_server
):
    client = make_client()
    local_server.answer(503, UNAVAILABLE)
    with request_id_scope("req-123"):
        await invoke(client, "get_workflow", "wf-1")
        await client.create_workflow(name="wf", steps=STEPS)
    assert [r.headers["x-request-id"] for r in local_server.requests] == ["req-123"] * 3


async def test_request_id_is_made_when_the_context_has_none(make_client, invoke, local_server):
    client = make_client()
    local_server.answer(503, UNAVAILABLE)
    await invoke(client, "get_workflow", "wf-1")
    await invoke(client, "get_workflow", "wf-1")
    ids = [r.headers["x-request-id"] for r in local_server.requests]
    assert ids[0] == ids[1] != ids[2]


async def test_api_key_is_sent_as_bearer(make_client, invoke, local_server):
    await invoke(make_client(api_key="k-1"), "get_workflows")
    assert local_server.requests[0].headers["authorization"] == "Bearer k-1"


async def test_no_authorization_header_without_api_key(make_client, invoke, local_server):
    await invoke(make_client(), "get_workflows")
    assert "authorization" not in local_server.requests[0].headers


# 4xx: never retried, never counted by the breaker


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            404,
            {"detail": "not found", "resource_type": "workflow", "resource_id": "wf-1"},
            ResourceNotFoundError,
        ),
        (422, {"detail": [{"loc": ["body", "name"], "msg": "bad", "type": "x"}]}, ValidationError),
        (409, {"detail": "name taken", "resource_type": "workflow"}, ConflictError),
        (401, {"detail": "missing or invalid API key"}, UnauthorizedError),
        (413, {"detail": "request body is over the limit"}, ValidationError),
    ],
)
async def test_4xx_is_raised_at_once_and_leaves_the_breaker_closed(
    make_client, invoke, local_server, clock, status, body, error
):
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    client = make_client(circuit_breaker=breaker)
    for _ in range(4):
        local_server.answer(status, body)
        with pytest.raises(error) as caught:
            await invoke(client, "get_workflow", "wf-1")
        assert caught.value.response is not None
        assert caught.value.response.status_code == status
    assert len(local_server.requests) == 4
    assert clock.sleeps == []
    assert breaker.state is CircuitState.CLOSED


async def test_not_found_carries_type_and_id(make_client, invoke, local_server):
    local_server.answer(
        404, {"detail": "not found", "resource_type": "execution", "resource_id": "e-9"}
    )
    with pytest.raises(ResourceNotFoundError) as caught:
        await invoke(make_client(), "get_workflow_execution_status", "e-9")
    assert (caught.value.resource_type, caught.value.resource_id) == ("execution", "e-9")


async def test_validation_errors_keep_the_servers_list(make_client, local_server):
    problems = [{"loc": ["body", "steps", 0, "service"], "msg": "unknown service", "type": "x"}]
    local_server.answer(422, {"detail": problems})
    with pytest.raises(ValidationError) as caught:
        await make_client().create_workflow(name="wf", steps=STEPS)
    assert caught.value.validation_errors == problems


async def test_500_is_not_retried(make_client, invoke, local_server, clock):
    local_server.answer(500, text="Internal Server Error")
    with pytest.raises(UnexpectedResponseError):
        await invoke(make_client(), "get_workflows")
    assert len(local_server.requests) == 1


@pytest.mark.parametrize("status", [500, 501, 507])
async def test_5xx_counts_as_a_breaker_failure_and_is_not_retried(
    make_client, invoke, local_server, clock, status
):
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, clock=clock)
    client = make_client(circuit_breaker=breaker)
    local_server.answer(status, text="Internal Server Error", times=2)

    with pytest.raises(UnexpectedResponseError) as caught:
        await invoke(client, "get_workflow", "wf-1")
    assert caught.value.response is not None and caught.value.response.status_code == status
    assert breaker.failure_count == 1
    assert breaker.state is CircuitState.CLOSED

    # The second 5xx reaches the threshold: raised as the opening, from the 5xx error.
    with pytest.raises(CircuitOpenError) as caught_open:
        await client.create_workflow(name="wf", steps=STEPS)
    assert isinstance(caught_open.value.__cause__, UnexpectedResponseError)
    assert caught_open.value.response is not None
    assert caught_open.value.response.status_code == status
    assert breaker.state is CircuitState.OPEN

    with pytest.raises(CircuitOpenError):
        await invoke(client, "get_workflow", "wf-1")
    assert len(local_server.requests) == 2, "no 5xx is retried; an open circuit sends nothing"
    assert clock.sleeps == []


async def test_4xx_between_5xx_resets_the_breakers_count(make_client, invoke, local_server, clock):
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    client = make_client(circuit_breaker=breaker)
    local_server.answer(500, text="Internal Server Error")
    local_server.answer(404, {"detail": "not found"})
    local_server.answer(500, text="Internal Server Error")

    with pytest.raises(UnexpectedResponseError):
        await invoke(client, "get_workflow", "wf-1")
    assert breaker.failure_count == 1
    with pytest.raises(ResourceNotFoundError):
        await invoke(client, "get_workflow", "wf-1")
    assert breaker.failure_count == 0, "a 4xx answer proves the service works"
    with pytest.raises(UnexpectedResponseError):
        await invoke(client, "get_workflow", "wf-1")
    assert breaker.failure_count == 1
    assert breaker.state is CircuitState.CLOSED
    assert len(local_server.requests) == 3
    assert clock.sleeps == []


async def test_body_that_is_not_json_is_refused_before_sending(make_client, local_server):
    with pytest.raises(ValidationError) as caught:
        await make_client().create_workflow(name="wf", description="d", steps=[...])
    assert caught.value.validation_errors[0]["loc"] == ["body", "steps", 0]
    assert local_server.requests == []


# Circuit breaker


async def test_breaker_opens_fails_fast_half_opens_and_closes(
    make_client, invoke, local_server, clock
):
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=30.0, clock=clock)
    client = make_client(circuit_breaker=breaker)
    local_server.answer(503, UNAVAILABLE, times=3)

    # The third failure opens the circuit, and is raised as the opening (not retried).
    with pytest.raises(CircuitOpenError) as caught:
        await invoke(client, "get_workflow", "wf-1")
    assert caught.value.response is not None and caught.value.response.status_code == 503
    assert isinstance(caught.value, ServiceUnavailableError)
    assert breaker.state is CircuitState.OPEN
    assert len(local_server.requests) == 3

    with pytest.raises(CircuitOpenError) as caught:
        await invoke(client, "get_workflow", "wf-1")
    assert caught.value.response is None
    assert len(local_server.requests) == 3, "an open circuit sends nothing"

    with pytest.raises(CircuitOpenError):
        await client.create_workflow(name="wf", steps=STEPS)
    assert len(local_server.requests) == 3

    clock.advance(30.001)  # the sleeps moved the clock by amounts with rounding
    assert breaker.state is CircuitState.HALF_OPEN
    local_server.answer(200, {"id": "wf-1"})
    assert await invoke(client, "get_workflow", "wf-1") == {"id": "wf-1"}
    assert breaker.state is CircuitState.CLOSED


async def test_breaker_opening_mid_call_stops_the_retries(make_client, invoke, local_server, clock):
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, clock=clock)
    local_server.answer(503, UNAVAILABLE, times=5)
    with pytest.raises(CircuitOpenError):
        await invoke(make_client(circuit_breaker=breaker), "get_workflow", "wf-1")
    assert len(local_server.requests) == 2
    assert len(clock.sleeps) == 1


async def test_failed_trial_opens_the_circuit_again(make_client, invoke, local_server, clock):
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10.0, clock=clock)
    client = make_client(circuit_breaker=breaker)
    local_server.answer(503, UNAVAILABLE, times=2)
    with pytest.raises(CircuitOpenError):
        await invoke(client, "get_services")
    clock.advance(10.001)
    with pytest.raises(CircuitOpenError):
        await invoke(client, "get_services")  # the trial fails and opens it again
    assert len(local_server.requests) == 2
    assert breaker.state is CircuitState.OPEN


async def test_default_breaker_belongs_to_the_client(make_client):
    first, second = make_client(circuit_breaker=None), make_client(circuit_breaker=None)
    assert first.circuit_breaker is not second.circuit_breaker
    assert first.circuit_breaker.failure_threshold == 5


# Executions


async def test_execute_workflow_polls_after_202_and_returns_the_result(
    make_client, local_server, clock
):
    local_server.answer(202, record("exec-1", "RUNNING"))
    local_server.answer(200, record("exec-1", "RUNNING"))
    local_server.answer(
        200, record("exec-1", "COMPLETED", result={"sentiment": "positive", "score": 0.8})
    )
    client = make_client()

    result = await client.execute_workflow(
        workflow_id="wf-1",
        input_data={"document_url": "https://example.com/document.pdf"},
        context={"request_id": "req-1"},
    )

    assert isinstance(result, ExecutionResult)
    assert result["sentiment"] == "positive" and result["score"] == 0.8
    assert result.execution_id == "exec-1"
    assert result.execution["status"] == "COMPLETED"
    start, *polls = local_server.requests
    assert (start.method, start.path) == ("POST", "/api/workflows/wf-1/execute")
    assert float(start.query["timeout"]) == 30.0
    assert start.json == {
        "input_data": {"document_url": "https://example.com/document.pdf"},
        "context": {"request_id": "req-1"},
    }
    assert [(p.method, p.path) for p in polls] == [("GET", "/api/executions/exec-1")] * 2
    assert all(float(p.query["wait"]) > 0 for p in polls), "polls are long polls"
    # This server answers at once (no long poll), so the client backs off between polls.
    assert clock.sleeps == [0.25]


async def test_execute_asks_the_server_to_wait_no_longer_than_the_wait_timeout(
    make_client, local_server
):
    local_server.answer(200, record("exec-1", "COMPLETED", result={}))
    await make_client().execute_workflow("wf-1", wait_timeout=5)
    assert float(local_server.requests[0].query["timeout"]) == 5.0


async def test_execute_retries_with_the_same_key(make_client, local_server):
    local_server.answer(503, {"detail": "Temporal is unavailable", "component": "temporal"})
    local_server.answer(200, record("exec-1", "COMPLETED", result={"ok": True}))
    result = await make_client().execute_workflow("wf-1", {"a": 1})
    assert result == {"ok": True}
    keys = {r.headers["idempotency-key"] for r in local_server.requests}
    assert len(keys) == 1


async def test_failed_execution_raises_with_id_step_and_cause(make_client, local_server):
    cause = {
        "step_id": "analyze-sentiment",
        "service": "sentiment-analysis",
        "action": "analyze",
        "error_type": "ServiceUnavailable",
        "message": "503 from http://127.0.0.1/analyze",
        "attempts": 5,
    }
    local_server.answer(200, record("exec-2", "FAILED", error=cause))

    with pytest.raises(ExecutionFailedError) as caught:
        await make_client().execute_workflow("wf-1", {})

    error = caught.value
    assert (error.execution_id, error.status, error.step_id) == (
        "exec-2",
        "FAILED",
        "analyze-sentiment",
    )
    assert error.cause == cause
    assert error.execution is not None and error.execution["status"] == "FAILED"
    assert error.response is not None and error.response.status_code == 200


async def test_execution_failing_while_polled_raises(make_client, local_server):
    local_server.answer(202, record("exec-3", "RUNNING"))
    local_server.answer(200, record("exec-3", "TIMED_OUT", error=None))
    with pytest.raises(ExecutionFailedError) as caught:
        await make_client().execute_workflow("wf-1")
    assert caught.value.status == "TIMED_OUT" and caught.value.step_id is None


async def test_execution_still_running_after_the_wait_timeout(make_client, local_server, clock):
    local_server.always(200, record("exec-4", "RUNNING"))
    local_server.answer(202, record("exec-4", "RUNNING"))

    with pytest.raises(ExecutionStillRunningError) as caught:
        await make_client().execute_workflow("wf-1", wait_timeout=3.0)

    assert caught.value.execution_id == "exec-4"
    assert caught.value.waited == pytest.approx(3.0)
    assert sum(clock.sleeps) == pytest.approx(3.0)
    assert "get_workflow_execution_status('exec-4')" in str(caught.value)


async def test_execute_service_action_waits_and_returns_the_output(make_client, local_server):
    local_server.answer(202, record("exec-5", "RUNNING", kind="action"))
    local_server.answer(200, record("exec-5", "COMPLETED", kind="action", result={"text": "hi"}))
    result = await make_client().execute_service_action(
        service_id="s-1", action="extract", input_data={"document_url": "u"}
    )
    assert result == {"text": "hi"} and result.execution_id == "exec-5"
    assert local_server.requests[0].path == "/api/services/s-1/actions/extract/execute"


async def test_start_without_waiting_then_wait(make_client, local_server):
    started = {
        "execution_id": "exec-6",
        "run_id": "r",
        "status": "RUNNING",
        "status_url": "/api/executions/exec-6",
    }
    local_server.answer(202, started)
    local_server.answer(200, record("exec-6", "COMPLETED", result={"done": True}))
    client = make_client()

    assert await client.start_workflow_execution("wf-1", {"x": 1}) == started
    result = await client.wait_for_execution("exec-6")

    assert result == {"done": True}
    assert [(r.method, r.path) for r in local_server.requests] == [
        ("POST", "/api/workflows/wf-1/executions"),
        ("GET", "/api/executions/exec-6"),
    ]


async def test_start_service_action_does_not_wait(make_client, local_server):
    local_server.answer(202, {"execution_id": "exec-7", "run_id": "r", "status": "RUNNING"})
    started = await make_client().start_service_action("s-1", "extract", {"document_url": "u"})
    assert started["execution_id"] == "exec-7"
    assert [(r.method, r.path) for r in local_server.requests] == [
        ("POST", "/api/services/s-1/actions/extract/executions")
    ]


# Health


async def test_unhealthy_gateway_report_is_returned_not_raised(make_client, invoke, local_server):
    report = {"status": "unhealthy", "components": {"database": {"status": "unhealthy"}}}
    local_server.answer(503, report)
    assert await invoke(make_client(), "get_integration_health") == report
    assert len(local_server.requests) == 1


# Every method sends the contract's request


def sends(method, *args, expect, query=None, body=None, **kwargs):
    """A row of the contract: this call sends `expect` ("METHOD /path") with query and body."""
    http_method, path = expect.split(" ", 1)
    return pytest.param(
        method, args, kwargs, http_method, path, query or {}, body, id=f"{method}:{expect}"
    )


WORKFLOW_BODY = {"name": "wf", "description": "d", "steps": STEPS, "metadata": {"v": 1}}
SERVICE_BODY = {
    "name": "s",
    "description": "d",
    "endpoint": "http://s:8000/api",
    "actions": ACTIONS,
    "metadata": {"v": 1},
}

CONTRACT = [
    sends(
        "get_workflows",
        status="ACTIVE",
        page=2,
        per_page=10,
        expect="GET /api/workflows",
        query={"status": "ACTIVE", "page": "2", "per_page": "10"},
    ),
    sends(
        "get_workflow",
        "wf 1",
        version=2,
        expect="GET /api/workflows/wf%201",
        query={"version": "2"},
    ),
    sends(
        "get_workflow_executions",
        "wf-1",
        status="COMPLETED",
        page=1,
        expect="GET /api/workflows/wf-1/executions",
        query={"status": "COMPLETED", "page": "1"},
    ),
    sends("get_workflow_execution_status", "e-1", expect="GET /api/executions/e-1"),
    sends("get_services", expect="GET /api/services"),
    sends("get_service", "s-1", expect="GET /api/services/s-1"),
    sends("get_service_health", "s-1", expect="GET /api/services/s-1/health"),
    sends("get_integration_health", expect="GET /api/health"),
    sends("create_workflow", **WORKFLOW_BODY, expect="POST /api/workflows", body=WORKFLOW_BODY),
    sends(
        "update_workflow",
        "wf-1",
        name="wf2",
        status="ACTIVE",
        expect="PATCH /api/workflows/wf-1",
        body={"name": "wf2", "status": "ACTIVE"},
    ),
    sends("delete_workflow", "wf-1", expect="DELETE /api/workflows/wf-1"),
    sends("register_service", **SERVICE_BODY, expect="POST /api/services", body=SERVICE_BODY),
    sends(
        "update_service",
        "s-1",
        endpoint="http://s2:8000/api",
        status="ACTIVE",
        expect="PATCH /api/services/s-1",
        body={"endpoint": "http://s2:8000/api", "status": "ACTIVE"},
    ),
    sends("deregister_service", "s-1", expect="DELETE /api/services/s-1"),
    sends(
        "deregister_service",
        "s-1",
        force=True,
        expect="DELETE /api/services/s-1",
        query={"force": "true"},
    ),
    sends(
        "start_workflow_execution",
        "wf-1",
        {"a": 1},
        {"project_id": "p"},
        expect="POST /api/workflows/wf-1/executions",
        body={"input_data": {"a": 1}, "context": {"project_id": "p"}},
    ),
]


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "http_method", "path", "query", "body"), CONTRACT
)
async def test_every_method_sends_the_contracts_request(
    make_client, invoke, local_server, method, args, kwargs, http_method, path, query, body
):
    local_server.answer(200, {"items": [], "id": "x"})
    await invoke(make_client(), method, *args, **kwargs)
    (sent,) = local_server.requests
    assert (sent.method, sent.path, sent.query) == (http_method, path, query)
    assert sent.json == body
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["x-request-id"]


# Lifecycle


async def test_context_managers_close_the_connections(make_client, local_server):
    client = make_client()
    if make_client.kind == "sync":
        with client:
            assert client.get_workflows() == {}
        with pytest.raises(RuntimeError):
            client.get_workflows()
    else:
        async with client:
            assert await client.get_workflows() == {}
        with pytest.raises(RuntimeError):
            await client.get_workflows()


async def test_sync_client_awaitable_half_closes_with_async_with(local_server, clock):
    from shared.utils.src.clients import ServiceIntegrationClient

    async with ServiceIntegrationClient(local_server.url, sleep=clock.sleep) as client:
        local_server.answer(201, {"id": "wf-1"})
        assert await client.create_workflow(name="wf", steps=STEPS) == {"id": "wf-1"}
        assert client.get_workflows() == {}


def test_sync_client_awaitables_work_under_successive_event_loops(local_server, clock):
    from shared.utils.src.clients import ServiceIntegrationClient

    client = ServiceIntegrationClient(local_server.url, sleep=clock.sleep)
    local_server.answer(201, {"id": "wf-1"})
    local_server.answer(201, {"id": "wf-2"})

    first = asyncio.run(client.create_workflow(name="a", steps=STEPS))
    second = asyncio.run(client.create_workflow(name="b", steps=STEPS))
    assert client.get_workflows() == {}
    client.close()  # the loop of the last AsyncClient is closed: nothing left to await

    assert (first["id"], second["id"]) == ("wf-1", "wf-2")
