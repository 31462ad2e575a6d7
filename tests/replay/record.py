"""Record real histories, one per shape the engine runs, for the replay gate.

    python -m tests.replay.record GROUP [SHAPE ...]

starts its own Temporal dev server, test services, worker and gateway from this
checkout, runs each shape (all of them by default), and writes each execution's history
to `tests/replay/histories/GROUP/<shape>.json`, in the JSON that `temporal workflow show
--output json` and the web UI's export give. GROUP names the code that recorded them
(e.g. `0.2.0`); a file that exists already is never overwritten: history files are only
ever added.

Shapes talk to the gateway over HTTP and to Temporal through the SDK only, so this
script records the same shapes from any version of the code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowFailureError

from core.temporal import connect
from tests.support.builders import (
    FAST_RETRY,
    action,
    chain,
    create_workflow,
    document_sentiment,
    register,
    service,
)
from tests.support.services import TestServices, start_test_services
from tests.support.stack import Stack, start_dev_server, wait_for_workers

HISTORIES = Path(__file__).resolve().parent / "histories"


@dataclass
class Recording:
    api: httpx.AsyncClient
    client: Client
    services: TestServices
    stack: Stack
    suffix: str
    pending: list[Callable[[], Any]] = field(default_factory=list)

    async def execute(self, workflow_id: str, body: dict[str, Any]) -> str:
        answer = await self.api.post(f"/workflows/{workflow_id}/execute", json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["execution_id"])

    async def one_step(self, behaviour: str, token: str, **fields: Any) -> dict[str, Any]:
        name = f"{behaviour}-{token}"
        await register(
            self.api,
            service(name, self.services.endpoint(behaviour, token), [action("run", **fields)]),
        )
        return await create_workflow(self.api, f"wf-{name}", chain(("only", name, "run")))


Shape = Callable[[Recording], Awaitable[str]]
SHAPES: dict[str, Shape] = {}


def shape(function: Shape) -> Shape:
    SHAPES[function.__name__.replace("_", "-")] = function
    return function


@shape
async def gateway_linear_context(r: Recording) -> str:
    """The guide's document-sentiment chain through POST /execute, with context."""
    workflow = await document_sentiment(r.api, f"{r.services.url}/examples", f"{r.suffix}-gw")
    return await r.execute(
        workflow["id"],
        {
            "input_data": {"document_url": "https://example.com/document.pdf"},
            "context": {"project_id": "456", "request_id": "req-123"},
        },
    )


async def _by_name(r: Recording, label: str, args: list[Any]) -> str:
    workflow = await document_sentiment(r.api, f"{r.services.url}/examples", f"{r.suffix}-{label}")
    execution_id = f"sdk-{label}-{r.suffix}"
    await r.client.execute_workflow(
        workflow["name"], args=args, id=execution_id, task_queue=r.stack.task_queue
    )
    return execution_id


@shape
async def sdk_by_name(r: Recording) -> str:
    """Started by name with the Temporal SDK, the input alone: the definition is loaded."""
    return await _by_name(r, "plain", [{"document_url": "https://example.com/document.pdf"}])


@shape
async def sdk_by_name_context(r: Recording) -> str:
    """Started by name with the SDK with a second argument carrying the context."""
    return await _by_name(
        r,
        "ctx",
        [
            {"document_url": "https://example.com/document.pdf"},
            {"context": {"project_id": "456", "request_id": "req-sdk"}},
        ],
    )


@shape
async def retried_step(r: Recording) -> str:
    """A step that answers 503 twice, then 200: three attempts under its retry policy."""
    token = r.services.token()
    r.services.failures[token] = 2
    workflow = await r.one_step("flaky", token, retry_policy=FAST_RETRY)
    return await r.execute(workflow["id"], {"input_data": {"x": 1}})


@shape
async def failed_4xx(r: Recording) -> str:
    """A step refused with HTTP 404: failed at once, the execution FAILED."""
    token = r.services.token()
    name = f"status-{token}"
    await register(r.api, service(name, r.services.endpoint("status", token), [action("404")]))
    workflow = await create_workflow(r.api, f"wf-{name}", chain(("only", name, "404")))
    answer = await r.api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})
    assert answer.json()["status"] == "FAILED", answer.text
    return str(answer.json()["execution_id"])


@shape
async def low_latency(r: Recording) -> str:
    """mode=low_latency: every step a local activity, one of them retried."""
    echo, flaky = r.services.token(), r.services.token()
    r.services.failures[flaky] = 1
    await register(
        r.api, service(f"echo-{echo}", r.services.endpoint("echo", echo), [action("run")])
    )
    await register(
        r.api, service(f"flaky-{flaky}", r.services.endpoint("flaky", flaky), [action("run")])
    )
    workflow = await create_workflow(
        r.api,
        f"fast-{echo}",
        chain(("first", f"echo-{echo}", "run"), ("second", f"flaky-{flaky}", "run")),
        mode="low_latency",
    )
    return await r.execute(workflow["id"], {"input_data": {"x": 1}})


@shape
async def one_action(r: Recording) -> str:
    """POST /services/{id}/actions/{action}/execute: a one-step execution of an action."""
    token = r.services.token()
    name = f"echo-{token}"
    registered = await register(
        r.api, service(name, r.services.endpoint("echo", token), [action("run")])
    )
    answer = await r.api.post(
        f"/services/{registered['id']}/actions/run/execute",
        json={"input_data": {"text": "hello"}, "context": {"request_id": "req-action"}},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["execution_id"])


@shape
async def start_without_waiting(r: Recording) -> str:
    """POST /workflows/{id}/executions (202), then a long poll until it closes."""
    token = r.services.token()
    workflow = await r.one_step("echo", token)
    answer = await r.api.post(
        f"/workflows/{workflow['id']}/executions", json={"input_data": {"x": 1}}
    )
    assert answer.status_code == 202, answer.text
    execution_id = str(answer.json()["execution_id"])
    closed = await r.api.get(f"/executions/{execution_id}", params={"wait": 20})
    assert closed.json()["status"] == "COMPLETED", closed.text
    return execution_id


@shape
async def running_mid_step(r: Recording) -> str:
    """Started by name and recorded while its second step is in flight: the history a new
    worker takes over in a rolling upgrade."""
    extract, hang = r.services.token(), r.services.token()
    await register(
        r.api, service(f"echo-{extract}", r.services.endpoint("echo", extract), [action("run")])
    )
    await register(
        r.api, service(f"hang-{hang}", r.services.endpoint("hang", hang), [action("run")])
    )
    workflow = await create_workflow(
        r.api,
        f"mid-{hang}",
        chain(("first", f"echo-{extract}", "run"), ("second", f"hang-{hang}", "run")),
    )
    execution_id = f"sdk-mid-{r.suffix}"
    handle = await r.client.start_workflow(
        workflow["name"], {"x": 1}, id=execution_id, task_queue=r.stack.task_queue
    )
    for _ in range(200):
        if r.services.calls.get(hang):
            break
        await asyncio.sleep(0.05)
    r.pending.append(lambda: r.services.release(hang))
    r.pending.append(handle.result)
    return execution_id


@shape
async def sdk_by_name_unknown(r: Recording) -> str:
    """Started by name with the SDK for a name no stored workflow has: FAILED at once."""
    execution_id = f"sdk-unknown-{r.suffix}"
    try:
        await r.client.execute_workflow(
            f"no-such-workflow-{r.suffix}",
            {"x": 1},
            id=execution_id,
            task_queue=r.stack.task_queue,
        )
    except WorkflowFailureError:
        return execution_id
    raise AssertionError("an unknown workflow name must fail the execution")


@shape
async def sdk_bad_input(r: Recording) -> str:
    """Started by name with the SDK with an input that is not an object: InvalidStart."""
    workflow = await document_sentiment(r.api, f"{r.services.url}/examples", f"{r.suffix}-bad")
    execution_id = f"sdk-bad-{r.suffix}"
    try:
        await r.client.execute_workflow(
            workflow["name"], "not-a-dict", id=execution_id, task_queue=r.stack.task_queue
        )
    except WorkflowFailureError:
        return execution_id
    raise AssertionError("an input that is not an object must fail the execution")


@shape
async def low_latency_failed(r: Recording) -> str:
    """mode=low_latency with a step refused with HTTP 404: a local activity fails it."""
    token = r.services.token()
    name = f"status-{token}"
    await register(r.api, service(name, r.services.endpoint("status", token), [action("404")]))
    workflow = await create_workflow(
        r.api, f"fastfail-{token}", chain(("only", name, "404")), mode="low_latency"
    )
    answer = await r.api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})
    assert answer.json()["status"] == "FAILED", answer.text
    return str(answer.json()["execution_id"])


async def record(group: str, names: list[str], work: Path) -> list[Path]:
    target = HISTORIES / group
    existing = [name for name in names if (target / f"{name}.json").exists()]
    if existing:
        raise SystemExit(
            f"{target} already holds {', '.join(existing)}: histories are never rewritten; "
            "record under a new GROUP"
        )
    server = start_dev_server(work)
    services = start_test_services()
    stack = Stack(
        temporal_address=server.address,
        database_url=f"sqlite+aiosqlite:///{work / 'registry.db'}",
        log_dir=work,
    )
    written: list[Path] = []
    try:
        stack.start_worker()
        stack.start_gateway()
        wait_for_workers(stack.url)
        client = await connect(server.address, "default")  # the project's data converter
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
            target.mkdir(parents=True, exist_ok=True)
            for index, name in enumerate(names):
                recording = Recording(
                    api, client, services, stack, f"r{uuid.uuid4().hex[:6]}{index}"
                )
                execution_id = await SHAPES[name](recording)
                history = await client.get_workflow_handle(execution_id).fetch_history()
                path = target / f"{name}.json"
                path.write_text(history.to_json() + "\n")
                written.append(path)
                for finish in recording.pending:  # let what was left running close
                    done = finish()
                    if asyncio.iscoroutine(done):
                        await done
                print(
                    f"recorded {path.relative_to(HISTORIES.parent)} ({len(history.events)} events)"
                )
    finally:
        stack.stop()
        if services.server is not None:
            services.server.should_exit = True
        server.stop()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.replay.record",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "group", help="folder under tests/replay/histories, named by the code version"
    )
    parser.add_argument("shapes", nargs="*", help=f"default: all of {', '.join(SHAPES)}")
    args = parser.parse_args(argv)
    unknown = [name for name in args.shapes if name not in SHAPES]
    if unknown:
        parser.error(f"unknown shapes {unknown}; known: {', '.join(SHAPES)}")
    with tempfile.TemporaryDirectory(prefix="record-") as work:
        asyncio.run(record(args.group, args.shapes or list(SHAPES), Path(work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
