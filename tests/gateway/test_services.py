"""/api/services against the real gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.support.builders import EXTRACT_INPUT, action, chain, create_workflow, register, service


async def test_register_service_returns_it_active_with_defaults(
    api: httpx.AsyncClient, unique: str
):
    answer = await api.post(
        "/services",
        json=service(
            f"svc-{unique}", "http://127.0.0.1:9/api/", [action("extract")], metadata={"v": "1"}
        ),
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["status"] == "ACTIVE"
    assert body["endpoint"] == "http://127.0.0.1:9/api"
    assert body["actions"][0]["method"] == "POST"
    assert body["actions"][0]["timeout"] == 30.0
    assert body["metadata"] == {"v": "1"}
    fetched = await api.get(f"/services/{body['id']}")
    assert fetched.json() == body


async def test_register_identical_service_again_returns_the_stored_one(
    api: httpx.AsyncClient, unique: str
):
    body = service(f"svc-{unique}", "http://127.0.0.1:9", [action("extract")])
    first = await api.post("/services", json=body)
    second = await api.post("/services", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]


async def test_register_different_service_under_taken_name_conflicts(
    api: httpx.AsyncClient, unique: str
):
    first = await register(api, service(f"svc-{unique}", "http://127.0.0.1:9", [action("a")]))
    answer = await api.post(
        "/services", json=service(f"svc-{unique}", "http://127.0.0.1:10", [action("a")])
    )
    assert answer.status_code == 409
    assert f"PATCH /api/services/{first['id']}" in answer.json()["detail"]


async def test_register_service_with_invalid_json_schema_is_422_with_location(
    api: httpx.AsyncClient, unique: str
):
    bad = action("extract", input_schema={"type": "objekt"})
    answer = await api.post("/services", json=service(f"svc-{unique}", "http://127.0.0.1:9", [bad]))
    assert answer.status_code == 422
    problem = answer.json()["detail"][0]
    assert problem["loc"] == ["body", "actions", 0, "input_schema"]
    assert "not a valid JSON Schema" in problem["msg"]


async def test_register_service_with_bad_fields_lists_each_problem(api: httpx.AsyncClient):
    answer = await api.post(
        "/services", json={"name": "has space", "endpoint": "ftp://x", "actions": []}
    )
    assert answer.status_code == 422
    locs = {tuple(p["loc"]) for p in answer.json()["detail"]}
    assert {("body", "name"), ("body", "endpoint"), ("body", "actions")} <= locs


async def test_register_service_with_duplicate_action_names_is_422(
    api: httpx.AsyncClient, unique: str
):
    answer = await api.post(
        "/services", json=service(f"svc-{unique}", "http://127.0.0.1:9", [action("a"), action("a")])
    )
    assert answer.status_code == 422
    assert "declared twice" in answer.json()["detail"][0]["msg"]


async def test_get_service_not_found_names_type_and_id(api: httpx.AsyncClient):
    answer = await api.get("/services/nope-123")
    assert answer.status_code == 404
    assert answer.json()["resource_type"] == "service"
    assert answer.json()["resource_id"] == "nope-123"


async def test_list_services_paginates_and_filters_by_status(api: httpx.AsyncClient, unique: str):
    for index in range(3):
        await register(
            api,
            service(
                f"page-{unique}-{index}", "http://127.0.0.1:9", [action("a")], status="INACTIVE"
            ),
        )
    first = (await api.get("/services", params={"status": "INACTIVE", "per_page": 2})).json()
    assert first["per_page"] == 2 and first["page"] == 1
    assert len(first["items"]) == 2
    assert first["total"] >= 3
    assert first["pages"] == (first["total"] + 1) // 2
    assert all(item["status"] == "INACTIVE" for item in first["items"])
    second = (
        await api.get("/services", params={"status": "INACTIVE", "per_page": 2, "page": 2})
    ).json()
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


async def test_list_services_refuses_per_page_over_100(api: httpx.AsyncClient):
    answer = await api.get("/services", params={"per_page": 101})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "per_page"]


async def test_update_service_changes_only_the_fields_sent(api: httpx.AsyncClient, unique: str):
    created = await register(api, service(f"svc-{unique}", "http://127.0.0.1:9", [action("a")]))
    answer = await api.patch(
        f"/services/{created['id']}",
        json={
            "name": f"svc-{unique}-v2",
            "endpoint": "http://127.0.0.1:11/v2",
            "status": "INACTIVE",
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["name"], body["endpoint"], body["status"]) == (
        f"svc-{unique}-v2",
        "http://127.0.0.1:11/v2",
        "INACTIVE",
    )
    assert body["actions"] == created["actions"]
    assert body["updated_at"] > created["updated_at"]


async def test_update_service_not_found(api: httpx.AsyncClient):
    answer = await api.patch("/services/missing", json={"description": "x"})
    assert answer.status_code == 404


async def test_deregister_service_used_by_active_workflow_conflicts_unless_forced(
    api: httpx.AsyncClient, unique: str
):
    created = await register(api, service(f"svc-{unique}", "http://127.0.0.1:9", [action("a")]))
    await create_workflow(api, f"wf-{unique}", chain(("only", f"svc-{unique}", "a")))
    refused = await api.delete(f"/services/{created['id']}")
    assert refused.status_code == 409
    assert f"wf-{unique}" in refused.json()["detail"]
    forced = await api.delete(f"/services/{created['id']}", params={"force": "true"})
    assert forced.status_code == 200
    assert (await api.get(f"/services/{created['id']}")).status_code == 404


async def test_renaming_a_service_used_by_active_workflow_conflicts(
    api: httpx.AsyncClient, unique: str
):
    created = await register(api, service(f"svc-{unique}", "http://127.0.0.1:9", [action("a")]))
    await create_workflow(api, f"wf-{unique}", chain(("only", f"svc-{unique}", "a")))
    answer = await api.patch(f"/services/{created['id']}", json={"name": f"other-{unique}"})
    assert answer.status_code == 409


async def test_service_health_reports_healthy_service(
    api: httpx.AsyncClient, services, unique: str
):
    token = services.token()
    created = await register(
        api, service(f"svc-{unique}", services.endpoint("echo", token), [action("run")])
    )
    health = (await api.get(f"/services/{created['id']}/health")).json()
    assert health["status"] == "healthy"
    assert health["latency_ms"] >= 0
    assert health["last_error"] is None


async def test_service_health_reports_failing_and_unreachable_services(
    api: httpx.AsyncClient, services, unique: str
):
    failing = await register(
        api, service(f"down-{unique}", services.endpoint("status", "x"), [action("run")])
    )
    unreachable = await register(
        api, service(f"gone-{unique}", "http://127.0.0.1:9", [action("run")], health_path="/ping")
    )
    first = (await api.get(f"/services/{failing['id']}/health")).json()
    assert (first["status"], first["last_error"]) == ("unhealthy", "HTTP 503")
    second = (await api.get(f"/services/{unreachable['id']}/health")).json()
    assert second["status"] == "unhealthy"
    assert second["url"] == "http://127.0.0.1:9/ping"
    assert "Connect" in second["last_error"]


async def test_register_service_with_idempotency_key_replays_first_answer(
    api: httpx.AsyncClient, unique: str
):
    body = service(f"svc-{unique}", "http://127.0.0.1:9", [action("a", input_schema=EXTRACT_INPUT)])
    headers = {"Idempotency-Key": f"key-{unique}"}
    first = await api.post("/services", json=body, headers=headers)
    again = await api.post("/services", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    reused = await api.post("/services", json={**body, "description": "other"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
