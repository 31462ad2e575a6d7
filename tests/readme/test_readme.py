"""README.md's code blocks, run as pasted against a real stack.

Every ```bash and ```python block of the README either runs here or is listed in
SKIPPED with the reason. The bash blocks run in document order as one script under
`bash -euo pipefail` (later blocks use `$G` from the walk-through), the python blocks
each with this venv's python; each must exit 0 and print what the README says it prints.
The README's workflow-language example (its ```json block) is stored and run as its prose
says.

The README targets `./run stack` on fixed addresses; `ReadmeStack.rewrites`, one small
table, points them at the test stack (its gateway, the test services' copy of the
example services, the session's dev server, its own task queue) and changes nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness.services import TestServices as Services  # a Test* name pytest would collect
from harness.stack import ROOT, Stack

README = ROOT / "README.md"
BLOCK = re.compile(r"^```(bash|python|json)\n(.*?)^```", re.M | re.S)

SKIPPED = {
    # a text only that block holds -> why it does not run against the test stack
    "./run stack": "starts a stack of its own on the fixed ports (and ./run tests, the "
    "whole suite); this test brings its stack",
    "docker compose up": "builds images and runs containers, not a stack on this machine",
}

EXPECTED_OUTPUT = {
    # a text only that python block holds -> the line it must print (a regex)
    "from temporalio.client import Client": r"positive 1\.0",
    "from shared.utils.src.clients import": r"positive 1\.0 exec-[0-9a-f]+",
}

# The walk-through registers fixed names (text-extraction, sentiment-analysis,
# document-sentiment) and the SDK examples start fixed workflow ids (doc-1, doc-2). So
# the blocks run against a worker and a gateway of their own on the session's dev
# server: an empty registry of their own (no other test's services, and no other test
# sees these names) and a task queue of their own (no other worker runs these steps).
# No other test starts the workflow ids doc-1 or doc-2 on the shared dev server.
# That registry is SQLite whichever backend the session's stack has: once is enough.
ON_A_STACK = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class ReadmeStack:
    url: str
    task_queue: str
    temporal_address: str
    examples_url: str

    def rewrites(self) -> list[tuple[str, str]]:
        """What the README names -> what the test stack has instead; nothing else changes."""
        return [
            ("http://127.0.0.1:8005/api", self.url),  # the gateway
            ("http://127.0.0.1:8006", self.examples_url),  # the example services
            ("127.0.0.1:7233", self.temporal_address),  # the Temporal frontend
            ('task_queue="service-integration"', f'task_queue="{self.task_queue}"'),
            ("--task-queue service-integration", f"--task-queue {self.task_queue}"),
        ]

    def env(self) -> dict[str, str]:
        # The `temporal` CLI reads TEMPORAL_ADDRESS (the README's command names no
        # address: it means the default, 127.0.0.1:7233); the venv has the client, and
        # PYTHONPATH makes sure `shared.utils...` is this checkout's.
        return {**os.environ, "TEMPORAL_ADDRESS": self.temporal_address, "PYTHONPATH": str(ROOT)}


@dataclass
class Block:
    language: str
    text: str
    line: int

    def skip_reason(self) -> str | None:
        return next((why for marker, why in SKIPPED.items() if marker in self.text), None)


def blocks(language: str | None = None) -> list[Block]:
    readme = README.read_text()
    found = [
        Block(m.group(1), m.group(2), readme.count("\n", 0, m.start()) + 1)
        for m in BLOCK.finditer(readme)
    ]
    return [b for b in found if language is None or b.language == language]


def runnable(language: str) -> list[Block]:
    return [b for b in blocks(language) if b.skip_reason() is None]


def rewritten(text: str, stack: ReadmeStack) -> str:
    for readme_says, test_has in stack.rewrites():
        text = text.replace(readme_says, test_has)
    return text


def json_objects(output: str) -> list[Any]:
    """The JSON objects in `output`, in order (curl -s prints them without a newline
    between; other text, such as the temporal CLI's, is passed over)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    at = output.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(output, at)
        except ValueError:
            end = at + 1
        else:
            found.append(value)
        at = output.find("{", end)
    return found


def run_bash(stack: ReadmeStack) -> subprocess.CompletedProcess[str]:
    script = "\n".join(rewritten(b.text, stack) for b in runnable("bash"))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done


@pytest.fixture(scope="module")
def readme_stack(
    stack: Stack, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReadmeStack]:
    registry = tmp_path_factory.mktemp("readme-registry") / "registry.db"
    task_queue = f"readme-{uuid.uuid4().hex[:8]}"
    with stack.pair(DATABASE_URL=f"sqlite+aiosqlite:///{registry}", TASK_QUEUE=task_queue) as url:
        yield ReadmeStack(url, task_queue, stack.temporal_address, f"{services.url}/examples")


@pytest.fixture(scope="module")
def walked_through(readme_stack: ReadmeStack) -> subprocess.CompletedProcess[str]:
    """The bash blocks, run once: the registrations every later block relies on."""
    return run_bash(readme_stack)


def test_every_block_runs_or_is_skipped_with_a_reason() -> None:
    found = blocks()
    assert {b.language for b in found} == {"bash", "python", "json"}, found
    for marker in SKIPPED:
        assert sum(marker in b.text for b in found) == 1, f"SKIPPED: {marker!r} in not one block"
    for block in runnable("python"):
        matches = [marker for marker in EXPECTED_OUTPUT if marker in block.text]
        assert len(matches) == 1, f"README.md:{block.line}: no EXPECTED_OUTPUT for this block"
    assert len(blocks("json")) == 1, "the README's workflow-language example moved"


def test_rewrites_name_what_the_readme_says() -> None:
    """Each rewrite applies to a block that runs: the table cannot go stale unnoticed."""
    stack = ReadmeStack("gateway", "queue", "temporal", "examples")
    texts = [b.text for language in ("bash", "python") for b in runnable(language)]
    for readme_says, _ in stack.rewrites():
        assert any(readme_says in text for text in texts), readme_says


@ON_A_STACK
def test_walk_through_runs_as_pasted(walked_through: subprocess.CompletedProcess[str]) -> None:
    printed = json_objects(walked_through.stdout)
    services = [o for o in printed if "endpoint" in o]
    assert [s["name"] for s in services] == ["text-extraction", "sentiment-analysis"], printed
    records = [o for o in printed if "execution_id" in o]
    execute, by_name = records
    assert execute["status"] == "COMPLETED", execute
    assert execute["result"] == {"sentiment": "positive", "score": 1.0}
    assert execute["context"] == {"project_id": "456", "request_id": "req-123"}
    assert [s["id"] for s in execute["steps"]] == ["extract-text", "analyze-sentiment"]
    assert all(s["attempts"] == 1 and s["started_at"] for s in execute["steps"])
    # The shell start by name (the temporal CLI's summary), read back through the gateway.
    assert re.search(r"WorkflowId\s+doc-2", walked_through.stdout)
    assert re.search(r"Status\s+COMPLETED", walked_through.stdout)
    assert by_name["execution_id"] == "doc-2"
    assert by_name["status"] == "COMPLETED", by_name
    assert by_name["result"] == execute["result"]


@ON_A_STACK
def test_running_the_walk_through_again_is_safe(
    readme_stack: ReadmeStack, walked_through: subprocess.CompletedProcess[str]
) -> None:
    """As the README says: identical definitions return the stored ones."""
    first = json_objects(walked_through.stdout)
    again = json_objects(run_bash(readme_stack).stdout)
    assert [o.get("id") for o in again if "endpoint" in o] == [
        o.get("id") for o in first if "endpoint" in o
    ]
    records = [o for o in again if "execution_id" in o]
    assert [r["status"] for r in records] == ["COMPLETED", "COMPLETED"], records
    first_execute = next(o for o in first if "execution_id" in o)
    assert records[0]["workflow_id"] == first_execute["workflow_id"]


@ON_A_STACK
@pytest.mark.parametrize("marker", list(EXPECTED_OUTPUT))
def test_python_block_runs_as_pasted(
    readme_stack: ReadmeStack, walked_through: subprocess.CompletedProcess[str], marker: str
) -> None:
    (block,) = [b for b in runnable("python") if marker in b.text]
    done = subprocess.run(
        [sys.executable, "-c", rewritten(block.text, readme_stack)],
        cwd=ROOT,
        env=readme_stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (f"README.md:{block.line}", done.stdout, done.stderr)
    assert re.fullmatch(EXPECTED_OUTPUT[marker], done.stdout.strip()), done.stdout


@ON_A_STACK
async def test_workflow_language_example_runs_as_described(
    readme_stack: ReadmeStack, walked_through: subprocess.CompletedProcess[str]
) -> None:
    """The ```json example, with the notifications service the prose registers: a
    complaint routes to the alert, which notifies both channels."""
    (block,) = blocks("json")
    notifications = {
        "name": "notifications",
        "description": "Send a message to a channel",
        "endpoint": rewritten("http://127.0.0.1:8006/notifications", readme_stack),
        "actions": [
            {
                "name": "send",
                "description": "Send a message",
                "input_schema": {
                    "type": "object",
                    "properties": {"channel": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["channel", "message"],
                },
            }
        ],
    }
    async with httpx.AsyncClient(base_url=readme_stack.url, timeout=60) as api:
        registered = await api.post("/services", json=notifications)
        assert registered.status_code in (200, 201), registered.text
        stored = await api.post("/workflows", json=json.loads(block.text))
        assert stored.status_code in (200, 201), stored.text
        workflow_id = stored.json()["id"]
        answer = await api.post(
            f"/workflows/{workflow_id}/execute",
            json={"input_data": {"document_url": "https://example.com/complaint.pdf"}},
        )
        record = answer.json()
        assert answer.status_code == 200 and record["status"] == "COMPLETED", record
        assert sorted(r["channel"] for r in record["result"]) == ["ops", "support"], record
        steps = {s["id"]: s for s in record["steps"]}
        assert steps["route"]["route"] == "alert", steps
        assert (steps["to-support"]["branch"], steps["to-ops"]["branch"]) == (0, 1), steps
        graph = await api.get(f"/workflows/{workflow_id}/graph")
        assert graph.status_code == 200 and {"nodes", "edges"} <= set(graph.json())
