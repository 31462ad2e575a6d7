"""The production settings (ENVIRONMENT=production with API keys, payload encryption and
definition signing) run the language's map, loop, parallel and child workflow."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from harness.stack import Stack
from tests.support.builders import action, create_workflow, register, service

API_KEY = "production-test-key"
ENCRYPTION_KEY = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def production_url(stack: Stack) -> Iterator[str]:
    env = {
        "ENVIRONMENT": "production",
        "API_KEYS": API_KEY,
        "ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "DEFINITION_SIGNING_KEY": "production-signing-key-shared-by-gateway-and-worker",
        "TASK_QUEUE": f"production-{uuid.uuid4().hex[:8]}",
    }
    worker = stack.start_worker(**env)
    url = stack.start_gateway(**env)
    gateway = stack.gateways[-1][0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", headers=HEADERS, timeout=5).json()
        if health["components"]["workers"].get("count", 0) >= 1:
            break
        time.sleep(0.2)
    try:
        yield url
    finally:
        for process in (gateway, worker):
            process.terminate()
            process.wait(30)


@pytest.fixture
async def production_api(production_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=production_url, timeout=60, headers=HEADERS) as api:
        yield api


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_map_loop_parallel_and_child_run_on_the_production_settings(
    production_api: httpx.AsyncClient, services: Any, unique: str
) -> None:
    svc = f"prod-echo-{unique}"
    await register(
        production_api, service(svc, services.endpoint("echo", services.token()), [action("run")])
    )
    child = await create_workflow(
        production_api,
        f"prod-child-{unique}",
        [{"id": "inner", "service": svc, "action": "run", "input": {"from": "child"}}],
    )
    flow = await create_workflow(
        production_api,
        f"prod-flow-{unique}",
        [
            {
                "id": "tick",
                "service": svc,
                "action": "run",
                "input": {"n": "{% $exists($vars.n) ? $vars.n : 0 %}"},
                "assign": {"n": "{% ($exists($vars.n) ? $vars.n : 0) + 1 %}"},
                "next": "again",
            },
            {
                "id": "again",
                "type": "choice",
                "choices": [{"when": "{% $vars.n < 3 %}", "next": "tick"}],
                "default": "each",
            },
            {
                "id": "each",
                "type": "map",
                "items": "{% [1, 2, 3] %}",
                "steps": [
                    {"id": "mi", "service": svc, "action": "run", "input": {"i": "{% $item %}"}}
                ],
                "next": "both",
            },
            {
                "id": "both",
                "type": "parallel",
                "branches": [
                    {"steps": [{"id": "left", "service": svc, "action": "run", "input": {"b": 0}}]},
                    {"steps": [{"id": "sub", "type": "workflow", "workflow": child["name"]}]},
                ],
            },
        ],
        max_steps=50,
        output={"n": "{% $vars.n %}", "mapped": "{% $count($steps.each.output) %}"},
    )
    answer = await production_api.post(f"/workflows/{flow['id']}/execute", json={"input_data": {}})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["status"] == "COMPLETED", record["error"]
    assert record["result"] == {"n": 3, "mapped": 3}
    paths = {step.get("path") for step in record["steps"]}
    assert {"tick#3", "each[2].mi", "sub"} <= paths, paths
