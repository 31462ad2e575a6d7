"""What a new user met in their first hour: bodies the execute endpoints refused to read
as sent, inputs that started executions that could only fail, services and workflows
found by id only, list filters ignored, and test runs among the executions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.support.builders import (
    EXTRACT_INPUT,
    action,
    chain,
    create_workflow,
    document_sentiment,
    register,
    service,
)
from tests.support.polling import eventually

URL = "https://example.com/document.pdf"
WRAP_HINT = 'wrap the workflow input in input_data: {"input_data": {...}}'


async def _echo_workflow(
    api: httpx.AsyncClient, services: Any, unique: str, **action_fields: Any
) -> tuple[dict[str, Any], str]:
    """One echo service and a one-step chain on it; the chain and the service's token."""
    token = services.token()
    name = f"echo-{unique}"
    await register(
        api, service(name, services.endpoint("echo", token), [action("run", **action_fields)])
    )
    return await create_workflow(api, f"wf-{unique}", chain(("only", name, "run"))), token


async def _echo_flow(
    api: httpx.AsyncClient, services: Any, unique: str
) -> tuple[dict[str, Any], str]:
    """A one-task flow on an echo service (its input mapped from the workflow input): the
    definitions /test runs here are flows."""
    token = services.token()
    name = f"echo-{unique}"
    await register(api, service(name, services.endpoint("echo", token), [action("run")]))
    step = {"id": "only", "service": name, "action": "run", "input": {"x": "{% $input.x %}"}}
    return await create_workflow(api, f"flow-{unique}", [step]), token


async def _executions(api: httpx.AsyncClient, workflow: str, **params: Any) -> dict[str, Any]:
    answer = await api.get(f"/workflows/{workflow}/executions", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


# 1. The execute endpoints read the body as sent, or say what was meant


async def test_execute_refuses_an_input_sent_without_its_input_data_wrapper(api, services, unique):
    workflow, token = await _echo_workflow(api, services, unique)
    answer = await api.post(f"/workflows/{workflow['id']}/execute", json={"document_url": URL})
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "document_url"]
    assert problem["type"] == "extra_forbidden"
    assert problem["msg"] == f"unknown field 'document_url': {WRAP_HINT}"
    await asyncio.sleep(1)
    assert (await _executions(api, workflow["id"]))["total"] == 0
    assert services.calls[token] == []


async def test_execute_takes_input_as_an_alias_of_input_data(api, services, unique):
    workflow, token = await _echo_workflow(api, services, unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input": {"x": 1}, "context": {"k": "v"}}
    )
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert (record["status"], record["input"], record["context"]) == (
        "COMPLETED",
        {"x": 1},
        {"k": "v"},
    )
    assert services.calls[token][0].body == {"x": 1}


async def test_execute_answers_a_misspelt_field_with_the_field_meant(api, services, unique):
    workflow, _ = await _echo_workflow(api, services, unique)
    answer = await api.post(f"/workflows/{workflow['id']}/execute", json={"inputs": {"x": 1}})
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "inputs"]
    assert problem["msg"] == "unknown field 'inputs'; did you mean 'input_data'?"


async def test_execute_refuses_an_input_sent_both_as_input_data_and_as_input(api, services, unique):
    workflow, _ = await _echo_workflow(api, services, unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {}, "input": {}}
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "input"]
    assert "sent twice" in problem["msg"]


async def test_an_unknown_field_beside_input_data_names_the_fields_taken(api, services, unique):
    workflow, _ = await _echo_workflow(api, services, unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {}, "callback": "x"}
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["msg"] == "unknown field 'callback'; the body takes input_data, context"


@pytest.mark.parametrize(
    "path",
    [
        "/workflows/{workflow}/executions",
        "/workflows/{workflow}/test",
        "/services/{service}/actions/run/execute",
        "/services/{service}/actions/run/executions",
    ],
)
async def test_every_execute_endpoint_refuses_a_bare_input_with_the_same_hint(
    api, services, unique, path
):
    workflow, token = await _echo_workflow(api, services, unique)
    url = path.format(workflow=workflow["id"], service=f"echo-{unique}")
    answer = await api.post(url, json={"document_url": URL})
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["msg"] == f"unknown field 'document_url': {WRAP_HINT}"
    assert services.calls[token] == []


async def test_test_takes_input_data_as_execute_does(api, services, unique):
    workflow, token = await _echo_flow(api, services, unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/test",
        json={"input_data": {"x": 1}, "mocks": {"only": {"output": {"mocked": True}}}},
    )
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert (record["status"], record["input"], record["result"]) == (
        "COMPLETED",
        {"x": 1},
        {"mocked": True},
    )
    assert services.calls[token] == []


async def test_test_answers_a_misspelt_mocks_field_with_the_field_meant(api, services, unique):
    workflow, _ = await _echo_workflow(api, services, unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/test", json={"input_data": {}, "mock": {}}
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["msg"] == "unknown field 'mock'; did you mean 'mocks'?"


# 2. An input the first step would refuse starts nothing


async def test_an_input_the_first_steps_schema_refuses_is_422_and_starts_nothing(
    api, services, unique
):
    workflow = await document_sentiment(api, f"{services.url}/examples", unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {"language": "en"}}
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "input_data"]
    assert "input_schema of step 'extract-text'" in problem["msg"]
    assert "'document_url' is a required property" in problem["msg"]
    started = await api.post(
        f"/workflows/{workflow['id']}/executions", json={"input_data": {"language": "en"}}
    )
    assert started.status_code == 422, started.text
    await asyncio.sleep(1)
    assert (await _executions(api, workflow["id"]))["total"] == 0


async def test_a_uri_format_of_the_first_step_is_checked_at_start(api, services, unique):
    workflow = await document_sentiment(api, f"{services.url}/examples", unique)
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {"document_url": "not a uri"}}
    )
    assert answer.status_code == 422, answer.text
    [problem] = answer.json()["detail"]
    assert "document_url: 'not a uri' is not a 'uri'" in problem["msg"]
    ok = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {"document_url": URL}}
    )
    assert ok.json()["status"] == "COMPLETED", ok.text


async def test_the_first_step_is_checked_on_what_it_gets_of_the_input(api, services, unique):
    schema = {**EXTRACT_INPUT, "additionalProperties": False}
    workflow, token = await _echo_workflow(api, services, unique, input_schema=schema)
    # Only the properties the schema declares reach the step: the others break nothing.
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute",
        json={"input_data": {"document_url": URL, "other": 1}},
    )
    assert answer.json()["status"] == "COMPLETED", answer.text
    assert services.calls[token][0].body == {"document_url": URL}


async def test_a_service_actions_input_schema_is_checked_before_it_runs(api, services, unique):
    token = services.token()
    svc = await register(
        api,
        service(
            f"extract-{unique}",
            services.endpoint("echo", token),
            [action("extract", input_schema=EXTRACT_INPUT)],
        ),
    )
    answer = await api.post(
        f"/services/{svc['id']}/actions/extract/execute",
        json={"input_data": {"document_url": "not a uri"}},
    )
    assert answer.status_code == 422, answer.text
    assert "action 'extract' of service" in answer.json()["detail"][0]["msg"]
    assert services.calls[token] == []


async def test_a_catastrophic_pattern_of_the_first_step_is_refused_at_once(api, services, unique):
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|a)*$"}}}
    workflow, _ = await _echo_workflow(api, services, unique, input_schema=schema)
    started = time.monotonic()
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {"s": "a" * 40 + "!"}}
    )
    assert answer.status_code == 422, answer.text
    assert time.monotonic() - started < 5
    assert "does not match '^(a|a)*$'" in answer.json()["detail"][0]["msg"]


# 3. A name works wherever an id does


async def test_a_service_is_read_updated_run_and_deleted_by_its_name(api, services, unique):
    token = services.token()
    name = f"by-name-{unique}"
    created = await register(api, service(name, services.endpoint("echo", token), [action("run")]))
    got = await api.get(f"/services/{name}")
    assert got.status_code == 200, got.text
    assert got.json()["id"] == created["id"]
    health = await api.get(f"/services/{name}/health")
    assert (health.status_code, health.json()["service_id"]) == (200, created["id"])
    run = await api.post(f"/services/{name}/actions/run/execute", json={"input_data": {"x": 1}})
    assert (run.status_code, run.json()["status"]) == (200, "COMPLETED"), run.text
    patched = await api.patch(f"/services/{name}", json={"description": "renamed by name"})
    assert patched.json()["description"] == "renamed by name"
    deleted = await api.delete(f"/services/{name}")
    assert deleted.status_code == 200, deleted.text
    assert (await api.get(f"/services/{created['id']}")).status_code == 404


async def test_an_unknown_service_name_is_404_naming_both(api, unique):
    answer = await api.post(f"/services/none-{unique}/actions/run/execute", json={})
    assert answer.status_code == 404
    assert answer.json()["detail"] == (
        f"service 'none-{unique}' not found; no service has this id or name; list them with "
        "GET /api/services"
    )


async def test_a_workflow_is_read_run_listed_and_deleted_by_its_name(api, services, unique):
    workflow, _ = await _echo_flow(api, services, unique)
    name = workflow["name"]
    got = await api.get(f"/workflows/{name}")
    assert (got.status_code, got.json()["id"]) == (200, workflow["id"])
    assert (await api.get(f"/workflows/{name}/graph")).status_code == 200
    record = (await api.post(f"/workflows/{name}/execute", json={"input_data": {}})).json()
    assert (record["status"], record["workflow_id"]) == ("COMPLETED", workflow["id"])
    started = await api.post(f"/workflows/{name}/executions", json={"input_data": {}})
    assert started.status_code == 202, started.text
    tested = await api.post(f"/workflows/{name}/test", json={"mocks": {"only": {"output": {}}}})
    assert tested.status_code == 200, tested.text

    async def both_listed() -> bool:
        return (await _executions(api, name))["total"] == 2

    await eventually(both_listed, what="both executions listed by the workflow's name")
    patched = await api.patch(f"/workflows/{name}", json={"description": "by name"})
    assert patched.json()["description"] == "by name"
    assert (await api.delete(f"/workflows/{name}")).status_code == 200
    assert (await api.get(f"/workflows/{workflow['id']}")).status_code == 404


async def test_list_services_filters_by_exact_name(api, services, unique):
    for suffix in ("a", "ab"):
        await register(
            api,
            service(f"n-{unique}-{suffix}", services.endpoint("echo", "t"), [action("run")]),
        )
    await api.get("/services", params={"per_page": 100})  # the listing is now held in memory
    page = (await api.get("/services", params={"name": f"n-{unique}-a"})).json()
    assert [s["name"] for s in page["items"]] == [f"n-{unique}-a"]
    assert (page["total"], page["pages"]) == (1, 1)
    inactive = await api.get("/services", params={"name": f"n-{unique}-a", "status": "INACTIVE"})
    assert inactive.json()["total"] == 0
    assert (await api.get("/services", params={"name": f"n-{unique}"})).json()["items"] == []


async def test_list_workflows_filters_by_exact_name(api, services, unique):
    workflow, _ = await _echo_workflow(api, services, unique)
    await api.get("/workflows", params={"per_page": 100})
    page = (await api.get("/workflows", params={"name": workflow["name"]})).json()
    assert [w["id"] for w in page["items"]] == [workflow["id"]]
    assert (await api.get("/workflows", params={"name": "wf-none"})).json()["total"] == 0


# 4. Test runs stay out of the lists unless asked for


async def test_test_runs_are_marked_and_left_out_of_execution_lists(api, services, unique):
    workflow, _ = await _echo_flow(api, services, unique)
    tested = (
        await api.post(
            f"/workflows/{workflow['id']}/test", json={"mocks": {"only": {"output": {}}}}
        )
    ).json()
    assert tested["test_run"] is True
    assert (await api.get(f"/executions/{tested['execution_id']}")).json()["test_run"] is True
    real = (await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})).json()
    assert "test_run" not in real

    async def all_listed() -> bool:
        return (await _executions(api, workflow["id"], include_tests="true"))["total"] == 2

    await eventually(all_listed, what="the test run and the execution listed")
    everything = await _executions(api, workflow["id"], include_tests="true")
    marks = {item["execution_id"]: item.get("test_run", False) for item in everything["items"]}
    assert marks == {tested["execution_id"]: True, real["execution_id"]: False}
    default = await _executions(api, workflow["id"])
    assert [item["execution_id"] for item in default["items"]] == [real["execution_id"]]
    assert default["total"] == 1


# 5. The API description says what a test run's mocks are


async def test_the_schema_describes_mocks_as_task_or_workflow_steps(stack):
    root = stack.url.removesuffix("/api")
    async with httpx.AsyncClient() as client:
        document = (await client.get(f"{root}/openapi.json")).json()
    mocks = document["components"]["schemas"]["WorkflowTest"]["properties"]["mocks"]
    assert mocks["description"].startswith("task or workflow step id ->")
    assert "every task and workflow step must have one" in mocks["description"]
