"""/api/workflows: definitions, validation and versions."""

from __future__ import annotations

import httpx

from tests.support.builders import action, chain, create_workflow, register, service


async def _two_services(api: httpx.AsyncClient, unique: str) -> tuple[str, str]:
    first, second = f"first-{unique}", f"second-{unique}"
    await register(api, service(first, "http://127.0.0.1:9", [action("extract")]))
    await register(
        api, service(second, "http://127.0.0.1:9", [action("summarize"), action("other")])
    )
    return first, second


async def test_create_workflow_starts_active_at_version_1(api: httpx.AsyncClient, unique: str):
    first, second = await _two_services(api, unique)
    answer = await api.post(
        "/workflows",
        json={
            "name": f"wf-{unique}",
            "description": "two steps",
            "steps": chain(("a", first, "extract"), ("b", second, "summarize")),
            "metadata": {"version": "1.0.0", "author": "Berry's Agents Team"},
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    assert (body["status"], body["version"]) == ("ACTIVE", 1)
    assert body["metadata"]["author"] == "Berry's Agents Team"
    assert [s["id"] for s in body["steps"]] == ["a", "b"]


async def test_create_identical_workflow_again_returns_the_stored_one(
    api: httpx.AsyncClient, unique: str
):
    first, _ = await _two_services(api, unique)
    body = {"name": f"wf-{unique}", "steps": chain(("a", first, "extract"))}
    one = await api.post("/workflows", json=body)
    two = await api.post("/workflows", json=body)
    assert (one.status_code, two.status_code) == (201, 200)
    assert one.json()["id"] == two.json()["id"]
    other = await api.post("/workflows", json={**body, "description": "changed"})
    assert other.status_code == 409
    assert f"PATCH /api/workflows/{one.json()['id']}" in other.json()["detail"]


async def test_create_workflow_with_unknown_action_names_registered_actions(
    api: httpx.AsyncClient, unique: str
):
    first, second = await _two_services(api, unique)
    answer = await api.post(
        "/workflows",
        json={
            "name": f"wf-{unique}",
            "steps": chain(("a", first, "extract"), ("b", second, "summarise")),
        },
    )
    assert answer.status_code == 422
    problem = answer.json()["detail"][0]
    assert problem["loc"] == ["body", "steps", 1, "action"]
    assert problem["msg"] == (
        f"workflow 'wf-{unique}' references unknown action 'summarise' of service '{second}'; "
        "registered actions: summarize, other"
    )


async def test_create_workflow_with_unknown_service_is_422(api: httpx.AsyncClient, unique: str):
    answer = await api.post(
        "/workflows", json={"name": f"wf-{unique}", "steps": chain(("a", f"nobody-{unique}", "x"))}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "steps", 0, "service"]
    assert "register it first" in answer.json()["detail"][0]["msg"]


async def test_create_workflow_reports_each_graph_problem(api: httpx.AsyncClient, unique: str):
    first, _ = await _two_services(api, unique)
    cases = {
        "used twice": [
            {"id": "a", "service": first, "action": "extract", "next": None},
            {"id": "a", "service": first, "action": "extract", "next": None},
        ],
        "which is no step": [{"id": "a", "service": first, "action": "extract", "next": "zzz"}],
        "exactly one entry step": [
            {"id": "a", "service": first, "action": "extract", "next": "b"},
            {"id": "b", "service": first, "action": "extract", "next": "a"},
        ],
        "cannot be reached": [
            {"id": "a", "service": first, "action": "extract", "next": None},
            {"id": "b", "service": first, "action": "extract", "next": "c"},
            {"id": "c", "service": first, "action": "extract", "next": "b"},
        ],
    }
    for expected, steps in cases.items():
        answer = await api.post("/workflows", json={"name": f"wf-{unique}", "steps": steps})
        assert answer.status_code == 422, expected
        messages = " | ".join(p["msg"] for p in answer.json()["detail"])
        assert expected in messages or "exactly one entry" in messages, messages


async def test_get_workflow_not_found(api: httpx.AsyncClient):
    answer = await api.get("/workflows/nope")
    assert answer.status_code == 404
    assert (answer.json()["resource_type"], answer.json()["resource_id"]) == ("workflow", "nope")


async def test_update_workflow_steps_makes_a_new_version_and_keeps_the_old(
    api: httpx.AsyncClient, unique: str
):
    first, second = await _two_services(api, unique)
    created = await create_workflow(api, f"wf-{unique}", chain(("a", first, "extract")))
    renamed = await api.patch(f"/workflows/{created['id']}", json={"description": "same steps"})
    assert renamed.json()["version"] == 1
    updated = await api.patch(
        f"/workflows/{created['id']}",
        json={
            "name": f"wf-{unique}-v2",
            "steps": chain(("a", first, "extract"), ("b", second, "summarize")),
            "status": "ACTIVE",
        },
    )
    assert updated.status_code == 200
    assert (updated.json()["version"], updated.json()["name"]) == (2, f"wf-{unique}-v2")
    old = (await api.get(f"/workflows/{created['id']}", params={"version": 1})).json()
    assert (old["version"], len(old["steps"])) == (1, 1)
    current = (await api.get(f"/workflows/{created['id']}")).json()
    assert (current["version"], len(current["steps"])) == (2, 2)
    missing = await api.get(f"/workflows/{created['id']}", params={"version": 9})
    assert missing.status_code == 404
    assert "versions 1 to 2 exist" in missing.json()["detail"]


async def test_update_workflow_with_invalid_steps_is_422_and_changes_nothing(
    api: httpx.AsyncClient, unique: str
):
    first, _ = await _two_services(api, unique)
    created = await create_workflow(api, f"wf-{unique}", chain(("a", first, "extract")))
    answer = await api.patch(
        f"/workflows/{created['id']}", json={"steps": chain(("a", first, "nope"))}
    )
    assert answer.status_code == 422
    assert (await api.get(f"/workflows/{created['id']}")).json()["version"] == 1


async def test_delete_workflow_removes_it_and_its_versions(api: httpx.AsyncClient, unique: str):
    first, _ = await _two_services(api, unique)
    created = await create_workflow(api, f"wf-{unique}", chain(("a", first, "extract")))
    assert (await api.delete(f"/workflows/{created['id']}")).status_code == 200
    assert (await api.get(f"/workflows/{created['id']}")).status_code == 404
    assert (await api.get(f"/workflows/{created['id']}", params={"version": 1})).status_code == 404
    assert (await api.delete(f"/workflows/{created['id']}")).status_code == 404


async def test_list_workflows_filters_by_status_and_paginates(api: httpx.AsyncClient, unique: str):
    first, _ = await _two_services(api, unique)
    for index in range(3):
        await create_workflow(
            api, f"wf-{unique}-{index}", chain(("a", first, "extract")), status="INACTIVE"
        )
    page = (
        await api.get("/workflows", params={"status": "INACTIVE", "per_page": 2, "page": 1})
    ).json()
    assert len(page["items"]) == 2 and page["total"] >= 3
    assert all(w["status"] == "INACTIVE" for w in page["items"])
    beyond = (
        await api.get("/workflows", params={"status": "INACTIVE", "per_page": 2, "page": 999})
    ).json()
    assert beyond["items"] == []
