"""The workflow language through the gateway: storing flows, the save-time checks,
/validate, /graph, /test with mocks, input_schema, and the seed chain unchanged."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.builders import action, chain, create_workflow, register, service


async def _echo(api: httpx.AsyncClient, services: Any, unique: str, **fields: Any) -> str:
    name = f"echo-{unique}"
    await register(
        api, service(name, services.endpoint("echo", services.token()), [action("run", **fields)])
    )
    return name


def _task(step_id: str, svc: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "service": svc, "action": "run", **fields}


async def test_a_flow_is_stored_and_answered_as_sent(api, services, unique) -> None:
    svc = await _echo(api, services, unique)
    steps = [
        _task("a", svc, input={"x": "{% $input.x %}"}, next="route"),
        {
            "id": "route",
            "type": "choice",
            "choices": [{"when": "{% $input.x > 1 %}", "next": "b"}],
            "default": "c",
        },
        _task("b", svc),
        {"id": "c", "type": "succeed"},
    ]
    body = {"name": f"flow-{unique}", "steps": steps, "output": "{% $steps.a.output %}"}
    created = await api.post("/workflows", json=body)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert (stored["kind"], stored["steps"], stored["output"]) == ("flow", steps, body["output"])
    again = await api.post("/workflows", json=body)
    assert again.status_code == 200  # identical: the stored one
    assert (await api.get(f"/workflows/{stored['id']}")).json()["steps"] == steps


async def test_a_seed_chain_is_answered_exactly_as_before(api, services, unique) -> None:
    svc = await _echo(api, services, unique)
    workflow = await create_workflow(
        api, f"chain-{unique}", chain(("a", svc, "run"), ("b", svc, "run"))
    )
    assert workflow["steps"] == chain(("a", svc, "run"), ("b", svc, "run"))
    assert workflow["kind"] == "chain"
    assert not {"start_at", "output", "input_schema", "max_steps", "warnings"} & set(workflow)


async def test_save_time_problems_are_422_with_locations(api, services, unique) -> None:
    svc = await _echo(api, services, unique)
    answer = await api.post(
        "/workflows",
        json={
            "name": f"bad-{unique}",
            "steps": [
                _task("a", svc, input={"x": "{% $steps.b.output %}"}, next="b"),
                _task(
                    "b",
                    svc,
                    input={"y": "{% 1 + %}"},
                    catch=[{"errors": ["HTTP.4xx"], "next": "ghost"}],
                ),
                _task("c", "no-such-service"),
                {"id": "m", "type": "map", "items": 3, "steps": [_task("i", svc)]},
                _task("d", svc, nxt="typo"),
            ],
            "start_at": "a",
        },
    )
    assert answer.status_code == 422, answer.text
    found = {tuple(p["loc"]): p["msg"] for p in answer.json()["detail"]}
    assert ("body", "steps", 4, "nxt") in found  # an unknown field, before anything else
    answer = await api.post(
        "/workflows",
        json={
            "name": f"bad-{unique}",
            "steps": [
                _task("a", svc, input={"x": "{% $steps.b.output %}"}, next="b"),
                _task(
                    "b",
                    svc,
                    input={"y": "{% 1 + %}"},
                    catch=[{"errors": ["HTTP.4xx"], "next": "ghost"}],
                ),
                _task("c", "no-such-service"),
                {"id": "m", "type": "map", "items": 3, "steps": [_task("i", svc)]},
            ],
            "start_at": "a",
        },
    )
    found = {tuple(p["loc"]): p["msg"] for p in answer.json()["detail"]}
    assert "not upstream" in found[("body", "steps", 0, "input")]
    assert "does not parse" in found[("body", "steps", 1, "input")]
    assert "not a step of this chain" in found[("body", "steps", 1, "catch", 0, "next")]
    assert "unknown service" in found[("body", "steps", 2, "service")]
    assert "items must be an array" in found[("body", "steps", 3, "items")]
    assert "can never run" in found[("body", "steps", 2)]


async def test_validate_checks_without_storing(api, services, unique) -> None:
    svc = await _echo(
        api, services, unique, output_schema={"type": "object", "properties": {"echo": {}}}
    )
    body = {
        "name": f"checked-{unique}",
        "steps": [
            _task("a", svc, next="b"),
            _task("b", svc, input={"v": "{% $steps.a.output.other %}"}),
        ],
    }
    answer = await api.post("/workflows/validate", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "flow"
    assert "does not declare 'other'" in answer.json()["warnings"][0]["msg"]
    assert (await api.get("/workflows", params={"per_page": 100})).json()["items"] == [
        w
        for w in (await api.get("/workflows", params={"per_page": 100})).json()["items"]
        if w["name"] != body["name"]
    ]
    body["steps"][0]["next"] = "nowhere"
    assert (await api.post("/workflows/validate", json=body)).status_code == 422


async def test_graph_has_nodes_and_routed_edges(api, services, unique) -> None:
    svc = await _echo(api, services, unique)
    workflow = await create_workflow(
        api,
        f"graph-{unique}",
        [
            _task("a", svc, next="route", catch=[{"errors": ["ALL"], "next": "both"}]),
            {
                "id": "route",
                "type": "choice",
                "choices": [{"when": "{% true %}", "next": "both"}],
                "default": "both",
            },
            {
                "id": "both",
                "type": "parallel",
                "branches": [{"steps": [_task("l", svc)]}, {"steps": [_task("r", svc)]}],
            },
        ],
    )
    graph = (await api.get(f"/workflows/{workflow['id']}/graph")).json()
    assert graph["entry"] == "a"
    assert {(n["id"], n["type"], n["parent"]) for n in graph["nodes"]} == {
        ("a", "task", None),
        ("route", "choice", None),
        ("both", "parallel", None),
        ("l", "task", "both"),
        ("r", "task", "both"),
    }
    routes = {(e["from"], e["to"], e["route"]) for e in graph["edges"]}
    assert ("a", "both", "catch ALL") in routes
    assert ("route", "both", "{% true %}") in routes
    assert ("both", "r", "branch 1") in routes


async def test_test_run_uses_mocks_and_calls_no_mocked_service(api, services, unique) -> None:
    token = services.token()
    svc = f"echo-{unique}"
    await register(api, service(svc, services.endpoint("echo", token), [action("run")]))
    child = await create_workflow(api, f"mocked-child-{unique}", [_task("inner", svc)])
    workflow = await create_workflow(
        api,
        f"mocked-{unique}",
        [
            _task("first", svc, next="second"),
            _task(
                "second",
                svc,
                input={"v": "{% $steps.first.output.v %}"},
                catch=[{"errors": ["HTTP.404"], "next": "caught"}],
            ),
            _task(
                "caught", svc, input={"code": "{% $steps.second.error.status_code %}"}, next="child"
            ),
            {"id": "child", "type": "workflow", "workflow": child["name"]},
        ],
        output={
            "code": "{% $steps.second.error.status_code %}",
            "caught": "{% $steps.caught.output %}",
            "child": "{% $steps.child.output %}",
        },
    )
    answer = await api.post(
        f"/workflows/{workflow['id']}/test",
        json={
            "input": {},
            "mocks": {
                "first": {"output": {"v": 1}},
                "second": {"error": {"status_code": 404}},
                "caught": {"output": {"noted": True}},
                "child": {"output": {"from": "child"}},
            },
        },
    )
    record = answer.json()
    assert answer.status_code == 200, answer.text
    assert record["status"] == "COMPLETED", record
    assert record["result"] == {"code": 404, "caught": {"noted": True}, "child": {"from": "child"}}
    assert services.calls[token] == []
    children = await api.get(f"/workflows/{child['id']}/executions")
    assert children.json()["items"] == []
    bad = await api.post(
        f"/workflows/{workflow['id']}/test", json={"mocks": {"ghost": {"output": {}}}}
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "mocks", "ghost"]


async def test_test_run_without_a_mock_for_every_task_and_workflow_step_is_422(
    api, services, unique
) -> None:
    token = services.token()
    svc = f"echo-{unique}"
    await register(api, service(svc, services.endpoint("echo", token), [action("run")]))
    workflow = await create_workflow(
        api,
        f"unmocked-{unique}",
        [
            _task("first", svc, next="each"),
            {
                "id": "each",
                "type": "map",
                "items": "{% [1, 2] %}",
                "steps": [_task("inner", svc)],
                "next": "child",
            },
            {"id": "child", "type": "workflow", "workflow": f"elsewhere-{unique}", "next": "end"},
            {"id": "end", "type": "succeed"},
        ],
    )
    answer = await api.post(
        f"/workflows/{workflow['id']}/test", json={"mocks": {"first": {"output": {}}}}
    )
    assert answer.status_code == 422, answer.text
    found = {tuple(p["loc"]): p["msg"] for p in answer.json()["detail"]}
    assert set(found) == {("body", "mocks", "inner"), ("body", "mocks", "child")}
    assert found[("body", "mocks", "inner")].startswith(
        f"step 'inner' ({svc}.run) has no mock; a test run calls no service: give every task "
        'and workflow step a mock ({"output": {...}} or {"error": {...}})'
    )
    assert (
        f"step 'child' (workflow elsewhere-{unique}) has no mock"
        in found[("body", "mocks", "child")]
    )
    assert services.calls[token] == []


async def test_input_schema_is_checked_at_start(api, services, unique) -> None:
    svc = await _echo(api, services, unique)
    workflow = await create_workflow(
        api,
        f"typed-{unique}",
        [_task("a", svc, input={"n": "{% $input.n %}"})],
        input_schema={
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
        },
    )
    refused = await api.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {"n": "x"}}
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "input_data"]
    ok = await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {"n": 2}})
    assert ok.json()["result"]["echo"] == {"n": 2}


async def test_patch_of_a_flow_makes_a_new_version(api, services, unique) -> None:
    svc = await _echo(api, services, unique)
    workflow = await create_workflow(api, f"versioned-{unique}", [_task("a", svc, input={"v": 1})])
    patched = await api.patch(
        f"/workflows/{workflow['id']}", json={"output": "{% $steps.a.output.echo %}"}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["version"], patched.json()["output"]) == (
        2,
        "{% $steps.a.output.echo %}",
    )
    record = (
        await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})
    ).json()
    assert record["result"] == {"v": 1}
    first = (await api.get(f"/workflows/{workflow['id']}", params={"version": 1})).json()
    assert "output" not in first


async def test_a_test_run_of_a_seed_chain_answers_its_mocks_and_calls_no_service(
    api, services, unique
) -> None:
    token = services.token()
    svc = f"chain-echo-{unique}"
    await register(api, service(svc, services.endpoint("echo", token), [action("run")]))
    workflow = await create_workflow(
        api, f"mocked-chain-{unique}", chain(("one", svc, "run"), ("two", svc, "run"))
    )
    answer = await api.post(
        f"/workflows/{workflow['id']}/test",
        json={
            "input_data": {"a": 1},
            "mocks": {"one": {"output": {"b": 2}}, "two": {"output": {"done": True}}},
        },
    )
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["status"] == "COMPLETED", record
    assert record["result"] == {"done": True}
    assert services.calls[token] == []
