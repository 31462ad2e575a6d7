"""The gateway answers for executions of this service only, and lists them by cursor.

Other workflows of the namespace (another task queue, or ours without the marks of a
stored-workflow or one-action execution) are a 404, whatever their input.
"""

from __future__ import annotations

import time
import uuid

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from definitions.contract import WORKFLOW_ID_KEY, WORKFLOW_VERSION_KEY
from executions.service import MAX_LIST_OFFSET, encode_page_token, page_token_key
from tests.support.builders import action, chain, create_workflow, register, service
from tests.support.polling import eventually


async def _workflow(api, services, unique):  # type: ignore[no-untyped-def]
    name = f"own-{unique}"
    await register(api, service(name, services.endpoint("echo", services.token()), [action("run")]))
    return await create_workflow(api, f"wf-own-{unique}", chain(("only", name, "run")))


@pytest.mark.parametrize("payload", ["not-an-object", 42, None, [1, 2], {"a": 1}])
async def test_a_workflow_on_another_task_queue_is_404(api, stack, payload):
    client = await Client.connect(stack.temporal_address)
    execution_id = f"foreign-{uuid.uuid4()}"
    await client.start_workflow(
        "someone-elses-workflow", payload, id=execution_id, task_queue=f"other-{uuid.uuid4()}"
    )
    for params in ({}, {"wait": 0.5}):
        answer = await api.get(f"/executions/{execution_id}", params=params)
        assert answer.status_code == 404, answer.text
        assert answer.json()["resource_id"] == execution_id


async def test_a_workflow_marked_as_ours_but_on_another_task_queue_is_404_and_unlisted(
    api, services, stack, unique
):
    workflow = await _workflow(api, services, unique)
    client = await Client.connect(stack.temporal_address)
    execution_id = f"foreign-{uuid.uuid4()}"
    await client.start_workflow(
        "someone-elses-workflow",
        "input",
        id=execution_id,
        task_queue=f"other-{uuid.uuid4()}",
        memo={"kind": "workflow", "workflow_id": workflow["id"]},
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(WORKFLOW_ID_KEY, workflow["id"]),
                SearchAttributePair(WORKFLOW_VERSION_KEY, 1),
            ]
        ),
    )
    started = await api.post(f"/workflows/{workflow['id']}/executions", json={"input_data": {}})
    assert started.status_code == 202

    async def listed() -> bool:
        page = (await api.get(f"/workflows/{workflow['id']}/executions")).json()
        return page["total"] >= 1

    await eventually(listed, what="visibility to list the execution")
    page = (await api.get(f"/workflows/{workflow['id']}/executions")).json()
    assert [item["execution_id"] for item in page["items"]] == [started.json()["execution_id"]]
    assert (await api.get(f"/executions/{execution_id}")).status_code == 404


async def test_a_workflow_on_our_task_queue_without_our_marks_is_404(api, stack):
    client = await Client.connect(stack.temporal_address)
    execution_id = f"unmarked-{uuid.uuid4()}"
    handle = await client.start_workflow(
        f"no-such-{uuid.uuid4().hex[:6]}", [1, 2], id=execution_id, task_queue=stack.task_queue
    )
    try:
        await handle.result()
    except Exception:  # noqa: BLE001 - it fails: no stored workflow has that name
        pass
    answer = await api.get(f"/executions/{execution_id}")
    assert answer.status_code == 404, answer.text


async def test_one_action_executions_read_back(api, services, unique):
    svc = await register(
        api, service(f"own-act-{unique}", services.endpoint("echo", "t"), [action("run")])
    )
    answer = await api.post(f"/services/{svc['id']}/actions/run/execute", json={"input_data": {}})
    assert answer.status_code == 200, answer.text
    record = (await api.get(f"/executions/{answer.json()['execution_id']}")).json()
    assert (record["kind"], record["status"]) == ("action", "COMPLETED")


async def test_executions_list_pages_by_cursor(api, services, unique):
    workflow = await _workflow(api, services, unique)
    url = f"/workflows/{workflow['id']}/executions"
    started = {
        (await api.post(url, json={"input_data": {"n": n}})).json()["execution_id"]
        for n in range(5)
    }

    async def listed() -> bool:
        # All closed: a running execution that closes between two pages moves in the order.
        return (await api.get(url, params={"status": "COMPLETED"})).json()["total"] == 5

    await eventually(listed, what="visibility to list 5 completed executions")
    seen: list[str] = []
    pages = 0
    params: dict[str, object] = {"per_page": 2}
    while True:
        answer = await api.get(url, params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        seen += [item["execution_id"] for item in body["items"]]
        pages += 1
        if not body.get("next_page_token"):
            break
        params = {"per_page": 2, "page_token": body["next_page_token"]}
    assert pages == 3
    assert len(seen) == 5 and set(seen) == started

    # page= still works (the guide's client), and agrees with the cursor.
    by_number = (await api.get(url, params={"per_page": 2, "page": 2})).json()
    assert [item["execution_id"] for item in by_number["items"]] == seen[2:4]
    assert by_number["next_page_token"]
    last = (await api.get(url, params={"per_page": 2, "page": 3})).json()
    assert [item["execution_id"] for item in last["items"]] == seen[4:]
    assert last.get("next_page_token") is None


async def test_a_page_deeper_than_the_offset_limit_is_422_pointing_to_page_token(
    api, services, unique
):
    workflow = await _workflow(api, services, unique)
    url = f"/workflows/{workflow['id']}/executions"
    deep = await api.get(url, params={"per_page": 100, "page": MAX_LIST_OFFSET // 100 + 1})
    assert deep.status_code == 422, deep.text
    assert deep.json()["detail"][0]["loc"] == ["query", "page"]
    assert "page_token" in deep.json()["detail"][0]["msg"]
    assert (await api.get(url, params={"per_page": 100, "page": 100})).status_code == 200
    assert (await api.get(url, params={"page": 1_000_000})).status_code == 422


@pytest.mark.parametrize("token", ["not base64!", "AAAA", "%%%", "x" * 300])
async def test_a_page_token_not_handed_out_is_422(api, services, unique, token):
    workflow = await _workflow(api, services, unique)
    answer = await api.get(f"/workflows/{workflow['id']}/executions", params={"page_token": token})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "page_token"]


async def test_a_page_token_for_this_list_with_a_forged_cursor_is_422_at_once(
    api, services, stack, unique
):
    workflow = await _workflow(api, services, unique)
    query = f'SiWorkflowId = "{workflow["id"]}" AND TaskQueue = "{stack.task_queue}"'
    for cursor in (b"garbage", b'{"CloseTime": "yesterday"}', b"\x00" * 40):
        forged = encode_page_token(page_token_key("not-the-gateways-key"), query, cursor)
        started = time.monotonic()
        answer = await api.get(
            f"/workflows/{workflow['id']}/executions", params={"page_token": forged}
        )
        assert answer.status_code == 422, answer.text
        assert time.monotonic() - started < 2, "a forged cursor must not reach Temporal"
