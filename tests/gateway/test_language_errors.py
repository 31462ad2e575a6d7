"""Each error route of the workflow language against real HTTP services on the real
engine: a task's failure caught by name, an optional task, no matching choice, a step
budget exhausted."""

from __future__ import annotations

from typing import Any

import pytest

from core.devserver import free_port
from tests.support.builders import FAST_RETRY, action, register, service

ONE_TRY = {**FAST_RETRY, "maximum_attempts": 1}
CLOSED_PORT = free_port()


def _endpoint(services: Any, kind: str, token: str) -> str:
    if kind == "unreachable":
        return f"http://127.0.0.1:{CLOSED_PORT}"
    if kind == "refused":
        return "http://10.255.255.1:8080"  # private: refused before any connection
    return services.endpoint(kind, token)


CASES = {
    # catch name: (service behaviour, action name, action fields, error type seen)
    "HTTP.404": ("status", "404", {}, "ServiceRejected"),
    "HTTP.4xx": ("status", "409", {}, "ServiceRejected"),
    "HTTP.5xx": (
        "status",
        "503",
        {"retry_policy": {**FAST_RETRY, "maximum_attempts": 2}},
        "ServiceUnavailable",
    ),
    "Timeout": ("hang", "run", {"timeout": 0.5, "retry_policy": ONE_TRY}, "ServiceTimeout"),
    "Unreachable": ("unreachable", "run", {"retry_policy": ONE_TRY}, "ServiceUnreachable"),
    "OutboundRefused": ("refused", "run", {}, "OutboundRefused"),
    "SchemaMismatch": (
        "badoutput",
        "run",
        {"output_schema": {"type": "object", "properties": {"sentiment": {"type": "string"}}}},
        "OutputSchemaViolation",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_failed_task_is_caught_by_its_error_name(api, services, unique, name) -> None:
    kind, action_name, fields, error_type = CASES[name]
    token = services.token()
    failing, fallback = f"{kind}-{unique}", f"echo-{unique}"
    await register(
        api, service(failing, _endpoint(services, kind, token), [action(action_name, **fields)])
    )
    await register(
        api, service(fallback, services.endpoint("echo", services.token()), [action("run")])
    )
    other = "HTTP.5xx" if name != "HTTP.5xx" else "HTTP.4xx"
    created = await api.post(
        "/workflows",
        json={
            "name": f"caught-{unique}",
            "steps": [
                {
                    "id": "call",
                    "service": failing,
                    "action": action_name,
                    "input": {},
                    "catch": [
                        {"errors": [other], "next": "wrong"},
                        {
                            "errors": [name],
                            "next": "caught",
                            "assign": {"type": "{% $error.type %}"},
                        },
                    ],
                    "next": "wrong",
                },
                {"id": "wrong", "type": "fail", "error": "WrongRoute"},
                {
                    "id": "caught",
                    "service": fallback,
                    "action": "run",
                    "input": {
                        "type": "{% $vars.type %}",
                        "code": "{% $steps.call.error.status_code %}",
                    },
                },
            ],
        },
    )
    assert created.status_code == 201, created.text
    try:
        record = (
            await api.post(f"/workflows/{created.json()['id']}/execute", json={"input_data": {}})
        ).json()
    finally:
        services.release(token)
    assert record["status"] == "COMPLETED", record["error"]
    assert record["result"]["echo"]["type"] == error_type
    call = next(s for s in record["steps"] if s["id"] == "call")
    assert call["route"] == "caught"


async def test_an_optional_task_failure_is_its_output(api, services, unique) -> None:
    await register(
        api,
        service(f"status-{unique}", services.endpoint("status", services.token()), [action("404")]),
    )
    created = await api.post(
        "/workflows",
        json={
            "name": f"optional-{unique}",
            "steps": [
                {"id": "maybe", "service": f"status-{unique}", "action": "404", "optional": True}
            ],
        },
    )
    record = (
        await api.post(f"/workflows/{created.json()['id']}/execute", json={"input_data": {}})
    ).json()
    assert record["status"] == "COMPLETED"
    assert record["result"]["error"]["status_code"] == 404


async def test_no_matching_choice_and_an_exhausted_budget_fail_the_execution(
    api, services, unique
) -> None:
    await register(
        api, service(f"echo-{unique}", services.endpoint("echo", services.token()), [action("run")])
    )
    choice = await api.post(
        "/workflows",
        json={
            "name": f"nochoice-{unique}",
            "steps": [
                {
                    "id": "pick",
                    "type": "choice",
                    "choices": [{"when": "{% $input.go %}", "next": "go"}],
                },
                {"id": "go", "service": f"echo-{unique}", "action": "run"},
            ],
        },
    )
    record = (
        await api.post(
            f"/workflows/{choice.json()['id']}/execute", json={"input_data": {"go": False}}
        )
    ).json()
    assert (record["status"], record["error"]["error_type"]) == ("FAILED", "NoChoiceMatched")
    loop = await api.post(
        "/workflows",
        json={
            "name": f"budget-{unique}",
            "max_steps": 5,
            "steps": [
                {"id": "again", "service": f"echo-{unique}", "action": "run", "next": "back"},
                {
                    "id": "back",
                    "type": "choice",
                    "choices": [{"when": "{% true %}", "next": "again"}],
                },
            ],
        },
    )
    record = (
        await api.post(f"/workflows/{loop.json()['id']}/execute", json={"input_data": {}})
    ).json()
    assert (record["status"], record["error"]["error_type"]) == ("FAILED", "StepBudgetExceeded")
