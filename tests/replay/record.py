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
import json
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
from definitions.language import Flow, TaskStep, entry_of, iter_steps
from definitions.models import ActionSpec, ExecutionOptions, PinnedDefinition, PinnedStep
from harness.services import TestServices, start_test_services
from harness.stack import Stack, start_dev_server, wait_for_workers
from tests.support.builders import (
    FAST_RETRY,
    action,
    chain,
    create_workflow,
    document_sentiment,
    register,
    service,
)

HISTORIES = Path(__file__).resolve().parent / "histories"
IDS_FILE = "workflow-ids.json"


@dataclass
class Recording:
    api: httpx.AsyncClient
    client: Client
    services: TestServices
    stack: Stack
    suffix: str
    pending: list[Callable[[], Any]] = field(default_factory=list)
    more: list[tuple[str, str, str | None]] = field(default_factory=list)
    """Further histories a shape asks for: (name suffix, workflow id, run id or None)."""

    async def run_flow(
        self,
        label: str,
        flow: dict[str, Any],
        data: Any = None,
        *,
        mocks: dict[str, Any] | None = None,
    ) -> str:
        """Start a flow with its definition pinned in the options, as the gateway does,
        its tasks calling the test services: service `echo`, `status` (action = the HTTP
        status it answers), `slow`."""
        parsed = Flow.model_validate(flow)
        token = self.services.token()
        pinned = [
            PinnedStep(
                id=step.id,
                service=step.service,
                action=step.action,
                next=None,
                endpoint=self.services.endpoint(step.service, token),
                spec=ActionSpec(name=step.action, retry_policy=FAST_RETRY),
            )
            for step in iter_steps(parsed.steps)
            if isinstance(step, TaskStep)
        ]
        definition = PinnedDefinition(
            name=f"flow-{label}", entry=entry_of(parsed), steps=pinned, flow=parsed
        )
        execution_id = f"flow-{label}-{self.suffix}"
        handle = await self.client.start_workflow(
            definition.name,
            args=[
                data or {},
                ExecutionOptions(definition=definition, context={"k": "v"}, mocks=mocks or {}),
            ],
            id=execution_id,
            task_queue=self.stack.task_queue,
        )
        try:
            await handle.result()
        except WorkflowFailureError:
            pass
        return execution_id

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


def _task(step_id: str, service_name: str = "echo", action_name: str = "run", **fields: Any):
    return {"id": step_id, "service": service_name, "action": action_name, **fields}


@shape
async def flow_mapping_choice(r: Recording) -> str:
    """Input templates, output projection, assign, a choice, a top-level output."""
    return await r.run_flow(
        "mapping",
        {
            "steps": [
                _task(
                    "fetch",
                    input={"url": "{% $input.url %}", "project": "{% $context.k %}"},
                    assign={"seen": "{% $result.echo.url %}"},
                    next="route",
                ),
                {
                    "id": "route",
                    "type": "choice",
                    "choices": [
                        {"when": "{% $steps.fetch.output.action = 'run' %}", "next": "yes"}
                    ],
                    "default": "no",
                },
                _task("yes", input={"seen": "{% $vars.seen %}"}, output="{% $result.echo %}"),
                _task("no"),
            ],
            "output": {"result": "{% $steps.yes.output %}", "n": "{% $count($steps) %}"},
        },
        {"url": "https://example.com/a"},
    )


@shape
async def flow_parallel(r: Recording) -> str:
    """Two branches at once; the output is both outputs in order."""
    return await r.run_flow(
        "parallel",
        {
            "steps": [
                {
                    "id": "both",
                    "type": "parallel",
                    "branches": [
                        {"steps": [_task("left", "slow")]},
                        {"steps": [_task("right", input={"side": "right"})]},
                    ],
                }
            ]
        },
    )


@shape
async def flow_parallel_fail_fast(r: Recording) -> str:
    """A branch refused with HTTP 404 cancels the other, slower branch."""
    return await r.run_flow(
        "failfast",
        {
            "steps": [
                {
                    "id": "both",
                    "type": "parallel",
                    "branches": [
                        {"steps": [_task("slowpoke", "slow")]},
                        {"steps": [_task("refused", "status", "404")]},
                    ],
                }
            ]
        },
    )


@shape
async def flow_map(r: Recording) -> str:
    """A map over 5 items, 2 at a time, one item routed to a failing task and tolerated."""
    return await r.run_flow(
        "map",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "items": "{% $input.items %}",
                    "max_concurrency": 2,
                    "tolerated_failure_count": 1,
                    "steps": [
                        {
                            "id": "pick",
                            "type": "choice",
                            "choices": [{"when": "{% $item = 'bad' %}", "next": "refused"}],
                            "default": "call",
                        },
                        _task("call", input={"item": "{% $item %}", "i": "{% $index %}"}),
                        _task("refused", "status", "404"),
                    ],
                }
            ]
        },
        {"items": ["a", "b", "bad", "c", "d"]},
    )


@shape
async def flow_wait_catch_optional(r: Recording) -> str:
    """A durable timer, a 404 caught into a fallback, an optional failed task."""
    return await r.run_flow(
        "catch",
        {
            "steps": [
                {"id": "pause", "type": "wait", "seconds": 1, "next": "call"},
                _task(
                    "call",
                    "status",
                    "404",
                    catch=[
                        {
                            "errors": ["HTTP.4xx"],
                            "next": "fallback",
                            "assign": {"why": "{% $error.type %}"},
                        }
                    ],
                    next="fallback",
                ),
                _task("fallback", input={"why": "{% $vars.why %}"}, next="maybe"),
                _task("maybe", "status", "409", optional=True, next="done"),
                {"id": "done", "type": "succeed", "output": "{% $steps.maybe.output %}"},
            ]
        },
    )


@shape
async def flow_fail(r: Recording) -> str:
    """A fail step: the execution FAILED with its error and cause."""
    return await r.run_flow(
        "fail",
        {
            "steps": [
                _task("check", next="stop"),
                {
                    "id": "stop",
                    "type": "fail",
                    "error": "OrderRejected",
                    "cause": "{% 'n=' & $input.n %}",
                },
            ]
        },
        {"n": 3},
    )


def _counting_loop(iterations: int) -> dict[str, Any]:
    return {
        "max_steps": iterations * 2 + 5,
        "steps": [
            _task(
                "inc",
                input={"n": "{% ($exists($vars.n) ? $vars.n : 0) + 1 %}"},
                assign={"n": "{% $result.echo.n %}"},
                next="more",
            ),
            {
                "id": "more",
                "type": "choice",
                "choices": [{"when": f"{{% $vars.n < {iterations} %}}", "next": "inc"}],
                "default": "end",
            },
            {"id": "end", "type": "succeed", "output": {"n": "{% $vars.n %}"}},
        ],
    }


@shape
async def flow_loop(r: Recording) -> str:
    """A loop of 3 iterations under max_steps (activity ids inc, inc#2, inc#3)."""
    return await r.run_flow("loop", _counting_loop(3))


@shape
async def flow_loop_continue_as_new(r: Recording) -> str:
    """A loop long enough to continue as new: the first run (ending in continue-as-new)
    is recorded as flow-loop-continue-as-new-first."""
    execution_id = await r.run_flow("longloop", _counting_loop(260))
    latest = await r.client.get_workflow_handle(execution_id).fetch_history()
    first = latest.events[0].workflow_execution_started_event_attributes.first_execution_run_id
    r.more.append(("first", execution_id, first))
    return execution_id


@shape
async def flow_map_children(r: Recording) -> str:
    """A map over 501 items: two child workflows of up to 500; the first child is
    recorded as flow-map-children-batch."""
    execution_id = await r.run_flow(
        "bigmap",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "items": "{% $input.items %}",
                    "max_concurrency": 50,
                    "steps": [_task("call", input={"i": "{% $index %}"})],
                    "output": "{% $result.echo.i %}",
                }
            ]
        },
        {"items": list(range(501))},
    )
    r.more.append(("batch", f"{execution_id}/each/batch-0", None))
    return execution_id


@shape
async def flow_workflow_step(r: Recording) -> str:
    """A workflow step: a stored seed chain run as a child workflow by name; the child is
    recorded as flow-workflow-step-child."""
    token = r.services.token()
    name = f"echo-{token}"
    await register(r.api, service(name, r.services.endpoint("echo", token), [action("run")]))
    child = await create_workflow(r.api, f"child-{token}", chain(("only", name, "run")))
    execution_id = await r.run_flow(
        "parent",
        {
            "steps": [
                {"id": "sub", "type": "workflow", "workflow": child["name"], "input": {"x": 1}}
            ]
        },
    )
    r.more.append(("child", f"{execution_id}/sub", None))
    return execution_id


@shape
async def flow_input_schema(r: Recording) -> str:
    """A flow with an input_schema (its check is behind the patch flow-input-schema)."""
    return await r.run_flow(
        "schema",
        {
            "input_schema": {"type": "object", "required": ["n"]},
            "steps": [_task("use", input={"n": "{% $input.n %}"})],
        },
        {"n": 1},
    )


@shape
async def flow_test_run(r: Recording) -> str:
    """A test run (POST /workflows/{id}/test): mocked tasks are si:mock-step local
    activities, one answering an output, one an error that a catch routes."""
    return await r.run_flow(
        "mocked",
        {
            "steps": [
                _task("first", next="second"),
                _task("second", catch=[{"errors": ["HTTP.404"], "next": "caught"}]),
                _task("caught", input={"code": "{% $steps.second.error.status_code %}"}),
            ]
        },
        mocks={"first": {"output": {"v": 1}}, "second": {"error": {"status_code": 404}}},
    )


@shape
async def flow_succeed_in_branch(r: Recording) -> str:
    """A `succeed` in a parallel branch ends the execution and cancels the slow sibling
    (behind the patch succeed-ends-execution)."""
    return await r.run_flow(
        "succeed-branch",
        {
            "steps": [
                {
                    "id": "both",
                    "type": "parallel",
                    "branches": [
                        {"steps": [_task("slow-one", "slow", next="after"), _task("after")]},
                        {
                            "steps": [
                                _task("quick", next="done"),
                                {"id": "done", "type": "succeed", "output": {"early": True}},
                            ]
                        },
                    ],
                    "next": "never",
                },
                _task("never"),
            ]
        },
    )


def _finding_map(items: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "each",
                "type": "map",
                "items": items,
                "max_concurrency": 1,
                "steps": [
                    {
                        "id": "look",
                        "type": "choice",
                        "choices": [{"when": "{% $item = $input.find %}", "next": "found"}],
                        "default": "call",
                    },
                    _task("call", input={"i": "{% $item %}"}),
                    {"id": "found", "type": "succeed", "output": {"found": "{% $item %}"}},
                ],
                "next": "never",
            },
            _task("never"),
        ]
    }


@shape
async def flow_succeed_in_map(r: Recording) -> str:
    """A `succeed` in a map iteration ends the execution."""
    return await r.run_flow("succeed-map", _finding_map("{% [0..4] %}"), {"find": 2})


@shape
async def flow_succeed_in_map_batch(r: Recording) -> str:
    """A `succeed` in the second child batch of a 502-item map ends the execution; the
    batch is recorded as flow-succeed-in-map-batch-batch."""
    execution_id = await r.run_flow("succeed-bigmap", _finding_map("{% [0..501] %}"), {"find": 500})
    r.more.append(("batch", f"{execution_id}/each/batch-1", None))
    return execution_id


@shape
async def flow_mocked_workflow_step(r: Recording) -> str:
    """A test run mocks a `workflow` step: no child starts, a si:mock-step answers."""
    return await r.run_flow(
        "mocked-child",
        {
            "steps": [
                {"id": "sub", "type": "workflow", "workflow": "not-started", "next": "use"},
                _task("use", input={"v": "{% $steps.sub.output.v %}"}),
            ]
        },
        mocks={"sub": {"output": {"v": 3}}, "use": {"output": {"ok": True}}},
    )


@shape
async def flow_invalid_wait(r: Recording) -> str:
    """A wait longer than the longest wait fails with InvalidWait (once an
    OverflowError that retried the workflow task forever)."""
    return await r.run_flow(
        "long-wait", {"steps": [{"id": "w", "type": "wait", "seconds": "{% 1e14 %}"}]}
    )


@shape
async def flow_expression_limit(r: Recording) -> str:
    """An expression stopped by its budget fails the execution with ExpressionLimit."""
    return await r.run_flow(
        "expression-limit",
        {"steps": [{"id": "s", "type": "succeed", "output": '{% $pad("", 1000000000, "a") %}'}]},
    )


@shape
async def flow_catch_expression_limit(r: Recording) -> str:
    """A task whose input is stopped by a limit is routed by its catch; no call is made."""
    return await r.run_flow(
        "catch-limit",
        {
            "steps": [
                _task(
                    "big",
                    input={"v": "{% [1..10000].[1..10000] %}"},
                    catch=[{"errors": ["ExpressionLimit"], "next": "fallback"}],
                ),
                _task("fallback", input={"why": "{% $steps.big.error.type %}"}),
            ]
        },
    )


@shape
async def flow_map_too_large(r: Recording) -> str:
    """A map over more than 10,000 items fails with MapTooLarge before any item runs."""
    return await r.run_flow(
        "map-too-large",
        {
            "steps": [
                {"id": "each", "type": "map", "items": "{% [0..10000] %}", "steps": [_task("t")]}
            ]
        },
    )


@shape
async def chain_test_run(r: Recording) -> str:
    """POST /workflows/{id}/test on a seed chain: each step answers its mock (behind the
    patch chain-mocks), no service is called."""
    token = r.services.token()
    name = f"echo-{token}"
    await r.api.post(
        "/services", json=service(name, r.services.endpoint("echo", token), [action("run")])
    )
    workflow = await create_workflow(
        r.api, f"mocked-chain-{token}", chain(("one", name, "run"), ("two", name, "run"))
    )
    answer = await r.api.post(
        f"/workflows/{workflow['id']}/test",
        json={
            "input_data": {"a": 1},
            "mocks": {"one": {"output": {"b": 2}}, "two": {"output": {}}},
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["execution_id"])


async def _start_by_name(r: Recording, name: str, label: str) -> str:
    execution_id = f"sdk-{label}-{r.suffix}"
    try:
        await r.client.execute_workflow(
            name, {"x": 1}, id=execution_id, task_queue=r.stack.task_queue
        )
    except WorkflowFailureError:
        pass
    return execution_id


@shape
async def sdk_by_name_retried_first(r: Recording) -> str:
    """By name, the entry step answering 503 twice: its first attempt inside si:start
    fails, a timer waits the policy's interval, its own activity makes attempts 2 and 3."""
    token = r.services.token()
    r.services.failures[token] = 2
    workflow = await r.one_step("flaky", token, retry_policy=FAST_RETRY)
    return await _start_by_name(r, workflow["name"], "retried-first")


@shape
async def sdk_by_name_4xx_first(r: Recording) -> str:
    """By name, the entry step refused with HTTP 404 inside si:start: FAILED at once."""
    token = r.services.token()
    name = f"status-{token}"
    await register(r.api, service(name, r.services.endpoint("status", token), [action("404")]))
    workflow = await create_workflow(r.api, f"wf-{name}", chain(("only", name, "404")))
    return await _start_by_name(r, workflow["name"], "4xx-first")


@shape
async def sdk_by_name_low_latency(r: Recording) -> str:
    """By name, mode=low_latency, the entry step failing once: its first attempt inside
    si:start, the retry a local activity, the next step a local activity."""
    flaky, echo = r.services.token(), r.services.token()
    r.services.failures[flaky] = 1
    await register(
        r.api,
        service(
            f"flaky-{flaky}",
            r.services.endpoint("flaky", flaky),
            [action("run", retry_policy=FAST_RETRY)],
        ),
    )
    await register(
        r.api, service(f"echo-{echo}", r.services.endpoint("echo", echo), [action("run")])
    )
    workflow = await create_workflow(
        r.api,
        f"fast-by-name-{echo}",
        chain(("first", f"flaky-{flaky}", "run"), ("second", f"echo-{echo}", "run")),
        mode="low_latency",
    )
    return await _start_by_name(r, workflow["name"], "low-latency")


@shape
async def sdk_by_name_flow(r: Recording) -> str:
    """By name, a stored flow: si:start pins it and runs nothing; the flow runs its tasks."""
    token = r.services.token()
    name = f"echo-{token}"
    await register(r.api, service(name, r.services.endpoint("echo", token), [action("run")]))
    workflow = await create_workflow(
        r.api,
        f"flow-by-name-{token}",
        [
            _task("first", name, input={"x": "{% $input.x %}"}, next="second"),
            _task("second", name, input={"seen": "{% $steps.first.output %}"}),
        ],
    )
    return await _start_by_name(r, workflow["name"], "flow")


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
            # Workflow ids, which child workflow ids are made from: the replay needs them.
            ids_file = target / IDS_FILE
            ids: dict[str, str] = json.loads(ids_file.read_text()) if ids_file.exists() else {}
            for index, name in enumerate(names):
                recording = Recording(
                    api, client, services, stack, f"r{uuid.uuid4().hex[:6]}{index}"
                )
                execution_id = await SHAPES[name](recording)
                history = await client.get_workflow_handle(execution_id).fetch_history()
                path = target / f"{name}.json"
                path.write_text(history.to_json() + "\n")
                ids[name] = execution_id
                written.append(path)
                for finish in recording.pending:  # let what was left running close
                    done = finish()
                    if asyncio.iscoroutine(done):
                        await done
                for suffix, workflow_id, run_id in recording.more:
                    extra = await client.get_workflow_handle(
                        workflow_id, run_id=run_id
                    ).fetch_history()
                    (target / f"{name}-{suffix}.json").write_text(extra.to_json() + "\n")
                    ids[f"{name}-{suffix}"] = workflow_id
                print(
                    f"recorded {path.relative_to(HISTORIES.parent)} ({len(history.events)} events)"
                )
            ids_file.write_text(json.dumps(ids, indent=1, sort_keys=True) + "\n")
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
