"""Every example of docs/workflow-language.md, stored and run through the gateway against
the example services, with the input and the result the page states."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.stack import Stack
from tests.support.builders import register, service

SIGNING_KEY = "docs-examples-signing-key-shared-by-gateway-and-worker"

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflow-language.md"
EXAMPLE = re.compile(r"<!-- run: (\{.*?\}) -->\s*```json\n(.*?)```", re.S)
SERVICES = {
    "text-extraction": (
        "extract",
        {"type": "object", "properties": {"document_url": {"type": "string"}}},
    ),
    "sentiment-analysis": (
        "analyze",
        {"type": "object", "properties": {"text": {"type": "string"}}},
    ),
    "notifications": (
        "send",
        {
            "type": "object",
            "properties": {"channel": {"type": "string"}, "message": {"type": "string"}},
        },
    ),
}


def examples() -> list[tuple[dict[str, Any], str]]:
    found = [(json.loads(run), body) for run, body in EXAMPLE.findall(DOC.read_text())]
    assert len(found) >= 8, "docs/workflow-language.md lost its examples"
    return found


def contains(actual: Any, expected: Any) -> bool:
    """`expected` is a part of `actual`: every key it names has that value."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


@pytest.fixture(scope="module")
def signed_url(stack: Stack) -> Any:
    """A gateway and a worker with DEFINITION_SIGNING_KEY (and ENCRYPTION_KEYS), on a task
    queue of their own: the production settings."""
    task_queue = f"docs-signed-{uuid.uuid4().hex[:8]}"
    key = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
    with stack.pair(
        DEFINITION_SIGNING_KEY=SIGNING_KEY, ENCRYPTION_KEYS=key, TASK_QUEUE=task_queue
    ) as url:
        yield url


@pytest.fixture
async def signed_api(signed_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=signed_url, timeout=60) as client:
        yield client


async def test_every_example_runs_as_documented(
    api: httpx.AsyncClient, services: Any, unique: str
) -> None:
    await run_every_example(api, services, unique)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_example_runs_as_documented_with_signing_on(
    signed_api: httpx.AsyncClient, services: Any, unique: str
) -> None:
    """DEFINITION_SIGNING_KEY set: maps, loops and children run as unsigned ones do."""
    await run_every_example(signed_api, services, unique)


async def run_every_example(api: httpx.AsyncClient, services: Any, unique: str) -> None:
    for name, (action_name, schema) in SERVICES.items():
        await register(
            api,
            service(
                f"{name}-{unique}",
                f"{services.url}/examples/{name}",
                [{"name": action_name, "description": action_name, "input_schema": schema}],
            ),
        )
    names: list[str] = []
    for run, body in examples():
        definition = json.loads(body)
        names.append(definition["name"])
        text = body
        for name in SERVICES:
            text = text.replace(f'"service": "{name}"', f'"service": "{name}-{unique}"')
        for name in names:
            for key in ("name", "workflow"):
                text = text.replace(f'"{key}": "{name}"', f'"{key}": "{name}-{unique}"')
        created = await api.post("/workflows", json=json.loads(text))
        assert created.status_code == 201, (definition["name"], created.text)
        answer = await api.post(
            f"/workflows/{created.json()['id']}/execute", json={"input_data": run["input"]}
        )
        record = answer.json()
        assert answer.status_code == 200, (definition["name"], answer.text)
        if "expect_error" in run:
            assert record["status"] == "FAILED", (definition["name"], record)
            assert contains(record["error"], run["expect_error"]), (
                definition["name"],
                record["error"],
            )
        else:
            assert record["status"] == "COMPLETED", (definition["name"], record["error"])
            assert contains(record["result"], run["expect"]), (definition["name"], record["result"])


@pytest.mark.parametrize("index", range(2))
def test_examples_parse(index: int) -> None:
    """The README's workflow too is valid JSON with the language's step types."""
    readme = (DOC.parents[1] / "README.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", readme, re.S)
    definition = json.loads(blocks[0]) if index == 0 else json.loads(examples()[0][1])
    assert {"name", "steps"} <= set(definition)
