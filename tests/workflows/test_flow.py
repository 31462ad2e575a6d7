"""The workflow language on the dev server: every step type and error route, with
stand-in `<service>.<action>` activities (no HTTP, no gateway, no database)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.mocks import mock_step
from core.devserver import DevServer
from core.temporal import connect
from definitions.language import Flow, TaskStep, iter_steps
from definitions.models import ActionSpec, ExecutionOptions, PinnedDefinition, PinnedStep, StepCall
from tests.support.journal import differences, journal_and_record
from tests.support.signing import signed_for
from worker.main import workflow_options, workflow_runner
from workflows import interpreter

FAST = {"initial_interval": 0.05, "maximum_interval": 0.1, "maximum_attempts": 2}


@pytest.fixture
async def client(temporal: DevServer) -> AsyncIterator[Client]:
    yield await connect(temporal.address, "default")


def flow_definition(flow: dict[str, Any], name: str = "flow", **spec: Any) -> PinnedDefinition:
    parsed = Flow.model_validate(flow)
    tasks = [s for s in iter_steps(parsed.steps) if isinstance(s, TaskStep)]
    pinned = [
        PinnedStep(
            id=t.id,
            service=t.service,
            action=t.action,
            next=None,
            endpoint="http://stand-in.invalid",
            spec=ActionSpec(name=t.action, retry_policy=FAST, **spec),
        )
        for t in tasks
    ]
    return PinnedDefinition(name=name, entry="-", steps=pinned, flow=parsed)


class Services:
    """Stand-in activities: `svc.echo` answers its input, `svc.fail` answers as told."""

    def __init__(self) -> None:
        self.calls: list[StepCall] = []

    def activities(self) -> list[Any]:
        @activity.defn(name="svc.echo")
        async def echo(call: StepCall) -> dict[str, Any]:
            self.calls.append(call)
            return {"echo": call.input, "step": call.step_id}

        @activity.defn(name="svc.fail")
        async def fail(call: StepCall) -> dict[str, Any]:
            self.calls.append(call)
            code = int(call.input.get("code", 404))
            raise ApplicationError(
                f"HTTP {code}",
                {"attempt": activity.info().attempt, "status_code": code},
                type="ServiceRejected" if code < 500 else "ServiceUnavailable",
                non_retryable=code < 500,
            )

        @activity.defn(name="svc.count")
        async def count(call: StepCall) -> dict[str, Any]:
            self.calls.append(call)
            return {"n": int(call.input.get("n", 0)) + 1}

        @activity.defn(name="svc.slow")
        async def slow(call: StepCall) -> dict[str, Any]:
            self.calls.append(call)
            await asyncio.sleep(float(call.input.get("seconds", 0.1)))
            return {"slept": call.input.get("seconds")}

        return [echo, fail, count, slow]


@pytest.fixture(params=["unsigned", "signed"])
async def run(client: Client, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Runs a flow; each test runs twice, the second time with DEFINITION_SIGNING_KEY on
    (the worker checks the whole definition, and signs the runs it starts itself)."""
    services = Services()
    queue = f"flow-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        activities=[*services.activities(), mock_step],
        max_concurrent_activities=100,
        # The interpreter is shared with the sandbox, so tests can lower its thresholds.
        **{**workflow_options(), "workflow_runner": workflow_runner("workflows.interpreter")},
    ):

        async def execute(
            flow: dict[str, Any],
            data: Any = None,
            *,
            context: dict[str, Any] | None = None,
            mocks: dict[str, Any] | None = None,
        ) -> Any:
            definition = flow_definition(flow)
            options = ExecutionOptions(
                definition=definition, context=context or {}, mocks=mocks or {}
            )
            if request.param == "signed":
                options = signed_for(queue, options)
            handle = await client.start_workflow(
                definition.name,
                args=[data or {}, options],
                id=f"flow-{uuid.uuid4().hex}",
                task_queue=queue,
                execution_timeout=timedelta(seconds=120),
            )
            execute.handle = handle  # type: ignore[attr-defined]
            try:
                return await handle.result()
            finally:
                # Every case of this suite: the record tells the steps the journal does
                # (checked when the test ends, so its own failure comes first).
                journal, record = await journal_and_record(client, handle)
                mismatches.extend(differences(journal, record))

        mismatches: list[str] = []
        execute.services = services  # type: ignore[attr-defined]
        execute.queue = queue  # type: ignore[attr-defined]
        yield execute
        assert not mismatches, "the record differs from the journal:\n" + "\n".join(mismatches)


def task(step_id: str, action: str = "echo", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "service": "svc", "action": action, **fields}


async def failure_of(run: Any, flow: dict[str, Any], data: Any = None) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as failed:
        await run(flow, data)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def test_input_templates_map_data_from_input_context_and_earlier_steps(run) -> None:
    result = await run(
        {
            "steps": [
                task("first", input={"url": "{% $input.url %}"}, next="second"),
                task(
                    "second",
                    input={
                        "seen": "{% $steps.first.output.echo.url %}",
                        "project": "{% $context.project_id %}",
                        "both": ["{% $input.n * 2 %}", "literal"],
                    },
                    output="{% $result.echo %}",
                ),
            ]
        },
        {"url": "u", "n": 21},
        context={"project_id": "p-1"},
    )
    assert result == {"seen": "u", "project": "p-1", "both": [42, "literal"]}


async def test_assign_sets_variables_and_top_level_output_shapes_the_result(run) -> None:
    result = await run(
        {
            "steps": [
                task("a", input={"x": 1}, assign={"first": "{% $result.echo.x %}"}, next="b"),
                task("b", input={"x": "{% $vars.first + 1 %}"}),
            ],
            "output": {
                "sum": "{% $vars.first + $steps.b.output.echo.x %}",
                "id": "{% $execution.workflow_name %}",
            },
        }
    )
    assert result == {"sum": 3, "id": "flow"}


async def test_without_input_a_task_gets_the_declared_properties_as_today(run) -> None:
    result = await run({"steps": [task("only")]}, {"document_url": "d"})
    assert result["echo"] == {"document_url": "d"}


async def test_choice_takes_the_first_true_rule_then_default(run) -> None:
    flow = {
        "steps": [
            {
                "id": "route",
                "type": "choice",
                "choices": [
                    {"when": "{% $input.score > 0.5 %}", "next": "high"},
                    {"when": "{% $input.score > 0 %}", "next": "low"},
                ],
                "default": "none",
            },
            task("high", input={"level": "high"}),
            task("low", input={"level": "low"}),
            task("none", input={"level": "none"}),
        ]
    }
    assert (await run(flow, {"score": 0.9}))["echo"] == {"level": "high"}
    assert (await run(flow, {"score": 0.2}))["echo"] == {"level": "low"}
    assert (await run(flow, {"score": -1}))["echo"] == {"level": "none"}


async def test_choice_without_default_fails_when_nothing_matches(run) -> None:
    flow = {
        "steps": [
            {"id": "route", "type": "choice", "choices": [{"when": "{% false %}", "next": "x"}]},
            task("x"),
        ]
    }
    assert (await failure_of(run, flow)).type == "NoChoiceMatched"


async def test_parallel_runs_branches_at_once_and_keeps_their_order(run) -> None:
    result = await run(
        {
            "steps": [
                {
                    "id": "both",
                    "type": "parallel",
                    "branches": [
                        {"steps": [task("slow", "slow", input={"seconds": 0.5})]},
                        {"steps": [task("quick", input={"k": 1})]},
                    ],
                }
            ]
        }
    )
    assert result == [{"slept": 0.5}, {"echo": {"k": 1}, "step": "quick"}]
    history = await run.handle.fetch_history()
    scheduled = [
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    first_completed = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    )
    assert len(scheduled) == 2 and all(s < first_completed for s in scheduled)


async def test_parallel_fail_fast_cancels_the_other_branches(run) -> None:
    flow = {
        "steps": [
            {
                "id": "both",
                "type": "parallel",
                "branches": [
                    {"steps": [task("slow", "slow", input={"seconds": 30})]},
                    {"steps": [task("bad", "fail", input={"code": 404})]},
                ],
            }
        ]
    }
    cause = await failure_of(run, flow)
    assert cause.type == "StepFailed"
    assert cause.details[0]["step_id"] == "bad"


async def test_map_runs_every_item_in_order_with_item_and_index(run) -> None:
    result = await run(
        {
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "items": "{% $input.names %}",
                    "max_concurrency": 2,
                    "steps": [task("greet", input={"name": "{% $item %}", "i": "{% $index %}"})],
                    "output": "{% $result.echo %}",
                }
            ]
        },
        {"names": ["a", "b", "c"]},
    )
    assert result == [{"name": "a", "i": 0}, {"name": "b", "i": 1}, {"name": "c", "i": 2}]
    ids = sorted(c.step_id for c in run.services.calls)
    assert ids == ["each[0].greet", "each[1].greet", "each[2].greet"]


async def test_map_tolerates_failures_up_to_the_count(run) -> None:
    flow = {
        "steps": [
            {
                "id": "each",
                "type": "map",
                "items": "{% $input.codes %}",
                "tolerated_failure_count": 1,
                "steps": [task("call", "fail", input={"code": "{% $item %}"})],
            }
        ]
    }
    cause = await failure_of(run, flow, {"codes": [404, 400]})
    assert cause.type == "MapFailed"
    flow["steps"][0]["steps"] = [
        {
            "id": "pick",
            "type": "choice",
            "choices": [{"when": "{% $item = 0 %}", "next": "ok"}],
            "default": "call",
        },
        task("ok", input={"fine": True}),
        task("call", "fail", input={"code": "{% $item %}"}),
    ]
    result = await run(flow, {"codes": [0, 404]})
    assert result[0]["echo"] == {"fine": True}
    assert result[1]["error"]["status_code"] == 404


async def test_map_items_that_are_not_an_array_fail(run) -> None:
    flow = {"steps": [{"id": "m", "type": "map", "items": "{% $input.x %}", "steps": [task("t")]}]}
    assert (await failure_of(run, flow, {"x": 5})).type == "MapItemsNotArray"


async def test_wait_is_a_durable_timer(run) -> None:
    result = await run(
        {
            "steps": [
                {"id": "pause", "type": "wait", "seconds": "{% $input.s %}", "next": "after"},
                task("after", input={"done": True}),
            ]
        },
        {"s": 1},
    )
    assert result["echo"] == {"done": True}
    history = await run.handle.fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 1
    assert timers[
        0
    ].timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() == timedelta(seconds=1)


async def test_catch_routes_a_failed_task_by_error_name(run) -> None:
    result = await run(
        {
            "steps": [
                task(
                    "call",
                    "fail",
                    input={"code": 404},
                    catch=[
                        {"errors": ["HTTP.5xx"], "next": "never"},
                        {
                            "errors": ["HTTP.404"],
                            "next": "fallback",
                            "assign": {"why": "{% $error.message %}"},
                        },
                    ],
                    next="never",
                ),
                task("never"),
                task(
                    "fallback",
                    input={"why": "{% $vars.why %}", "code": "{% $steps.call.error.status_code %}"},
                ),
            ]
        }
    )
    assert result["echo"] == {"why": "HTTP 404", "code": 404}


async def test_catch_sees_retries_exhausted_on_a_5xx(run) -> None:
    result = await run(
        {
            "steps": [
                task(
                    "call",
                    "fail",
                    input={"code": 503},
                    catch=[
                        {"errors": ["HTTP.4xx"], "next": "no"},
                        {"errors": ["ALL"], "next": "yes"},
                    ],
                ),
                task("no"),
                task("yes", input={"attempts": "{% $steps.call.error.attempts %}"}),
            ]
        }
    )
    assert result["echo"] == {"attempts": 2}


async def test_optional_task_failure_becomes_its_output(run) -> None:
    result = await run(
        {
            "steps": [
                task("maybe", "fail", input={"code": 409}, optional=True, next="after"),
                task("after", input={"prev": "{% $steps.maybe.output.error.status_code %}"}),
            ]
        }
    )
    assert result["echo"] == {"prev": 409}


async def test_uncaught_failure_fails_the_execution_with_step_details(run) -> None:
    cause = await failure_of(run, {"steps": [task("call", "fail", input={"code": 400})]})
    assert cause.type == "StepFailed"
    assert (cause.details[0]["step_id"], cause.details[0]["status_code"]) == ("call", 400)


async def test_succeed_ends_the_execution_with_its_output(run) -> None:
    result = await run(
        {
            "steps": [
                task("a", input={"v": 1}, next="done"),
                {"id": "done", "type": "succeed", "output": {"v": "{% $steps.a.output.echo.v %}"}},
            ]
        }
    )
    assert result == {"v": 1}


async def test_fail_ends_the_execution_with_its_error_and_cause(run) -> None:
    cause = await failure_of(
        run,
        {
            "steps": [
                {
                    "id": "stop",
                    "type": "fail",
                    "error": "OrderRejected",
                    "cause": "{% 'too big: ' & $input.n %}",
                }
            ]
        },
        {"n": 7},
    )
    assert (cause.type, cause.message) == ("OrderRejected", "too big: 7")


async def test_loop_with_max_steps_runs_until_its_exit(run) -> None:
    result = await run(
        {
            "max_steps": 100,
            "steps": [
                task(
                    "inc",
                    "count",
                    input={"n": "{% $exists($vars.n) ? $vars.n : 0 %}"},
                    assign={"n": "{% $result.n %}"},
                    next="more",
                ),
                {
                    "id": "more",
                    "type": "choice",
                    "choices": [{"when": "{% $vars.n < 5 %}", "next": "inc"}],
                    "default": "end",
                },
                {"id": "end", "type": "succeed", "output": {"n": "{% $vars.n %}"}},
            ],
        }
    )
    assert result == {"n": 5}
    ids = [c.step_id for c in run.services.calls]
    assert ids == ["inc", "inc#2", "inc#3", "inc#4", "inc#5"]


async def test_loop_over_its_budget_fails_with_step_budget_exceeded(run) -> None:
    flow = {
        "max_steps": 6,
        "steps": [
            task("inc", "count", input={"n": 0}, next="again"),
            {"id": "again", "type": "choice", "choices": [{"when": "{% true %}", "next": "inc"}]},
        ],
    }
    assert (await failure_of(run, flow)).type == "StepBudgetExceeded"


async def test_expression_that_fails_names_the_step(run) -> None:
    cause = await failure_of(run, {"steps": [task("t", input={"x": "{% $number('abc') %}"})]})
    assert cause.type == "ExpressionFailed"
    assert "step 't'" in cause.message


async def test_long_loop_continues_as_new_and_finishes(run, monkeypatch) -> None:
    monkeypatch.setattr(interpreter, "CONTINUE_AS_NEW_AFTER", 20)
    result = await run(
        {
            "max_steps": 1000,
            "steps": [
                task(
                    "inc",
                    "count",
                    input={"n": "{% $exists($vars.n) ? $vars.n : 0 %}"},
                    assign={"n": "{% $result.n %}"},
                    next="more",
                ),
                {
                    "id": "more",
                    "type": "choice",
                    "choices": [{"when": "{% $vars.n < 30 %}", "next": "inc"}],
                    "default": "end",
                },
                {
                    "id": "end",
                    "type": "succeed",
                    "output": {"n": "{% $vars.n %}", "input": "{% $input %}"},
                },
            ],
        },
        {"start": True},
    )
    assert result == {"n": 30, "input": {"start": True}}
    history = await run.handle.fetch_history()
    assert history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id


async def test_map_over_many_items_runs_in_child_workflow_batches(run, monkeypatch) -> None:
    monkeypatch.setattr(interpreter, "MAP_CHILD_THRESHOLD", 4)
    monkeypatch.setattr(interpreter, "MAP_BATCH", 4)
    result = await run(
        {
            "steps": [
                {
                    "id": "each",
                    "type": "map",
                    "items": "{% $input.xs %}",
                    "steps": [
                        task(
                            "t",
                            input={"x": "{% $item %}", "i": "{% $index %}", "k": "{% $input.k %}"},
                        )
                    ],
                    "output": "{% $result.echo %}",
                }
            ]
        },
        {"xs": list(range(10)), "k": "outer"},
    )
    assert result == [{"x": i, "i": i, "k": "outer"} for i in range(10)]
    history = await run.handle.fetch_history()
    children = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert len(children) == 3


async def test_mocked_steps_answer_their_mock_and_call_no_service(run) -> None:
    flow = {
        "steps": [
            task("first", "fail", input={"code": 500}, next="second"),
            task(
                "second",
                input={"seen": "{% $steps.first.output.v %}"},
                catch=[{"errors": ["HTTP.404"], "next": "caught"}],
                next="after",
            ),
            task("after"),
            task("caught", input={"code": "{% $steps.second.error.status_code %}"}),
        ]
    }
    result = await run(
        flow,
        mocks={
            "first": {"output": {"v": 7}},
            "second": {"error": {"type": "ServiceRejected", "status_code": 404}},
        },
    )
    assert result["echo"] == {"code": 404}
    assert [c.step_id for c in run.services.calls] == ["caught"]


async def test_input_against_the_input_schema_fails_at_once(run) -> None:
    flow = {
        "input_schema": {"type": "object", "required": ["n"]},
        "steps": [task("a", input={"n": "{% $input.n %}"})],
    }
    cause = await failure_of(run, flow, {"m": 1})
    assert cause.type == "InvalidStart" and "'n' is a required property" in cause.message
    assert run.services.calls == []
    assert (await run(flow, {"n": 1}))["echo"] == {"n": 1}


# ---------------------------------------------------------------- hardening (issue 17)


async def test_succeed_in_a_branch_ends_the_execution_and_withdraws_the_rest(run) -> None:
    """`succeed` means the execution ends, wherever it stands: the sibling branch's
    running step is cancelled and its next step never runs."""
    flow = {
        "steps": [
            {
                "id": "both",
                "type": "parallel",
                "branches": [
                    {
                        "steps": [
                            task("slow", "slow", input={"seconds": 2}, next="after-slow"),
                            task("after-slow"),
                        ]
                    },
                    {
                        "steps": [
                            task("quick", next="done"),
                            {"id": "done", "type": "succeed", "output": {"early": True}},
                        ]
                    },
                ],
                "next": "never",
            },
            task("never"),
        ]
    }
    assert await run(flow) == {"early": True}
    called = {c.step_id for c in run.services.calls}
    assert "after-slow" not in called and "never" not in called
    history = await run.handle.fetch_history()
    assert any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED for e in history.events
    ), "the running step is withdrawn"


async def test_succeed_in_a_map_iteration_ends_the_execution(run) -> None:
    flow = {
        "steps": [
            {
                "id": "each",
                "type": "map",
                "items": "{% $input.xs %}",
                "max_concurrency": 1,
                "steps": [
                    {
                        "id": "stop",
                        "type": "choice",
                        "choices": [{"when": "{% $item = 2 %}", "next": "found"}],
                        "default": "t",
                    },
                    task("t", input={"x": "{% $item %}"}),
                    {"id": "found", "type": "succeed", "output": {"found": "{% $item %}"}},
                ],
                "next": "never",
            },
            task("never"),
        ]
    }
    assert await run(flow, {"xs": [0, 1, 2, 3, 4]}) == {"found": 2}
    assert [c.input for c in run.services.calls] == [{"x": 0}, {"x": 1}]


async def test_succeed_in_a_map_batch_run_as_a_child_ends_the_execution(run, monkeypatch) -> None:
    monkeypatch.setattr(interpreter, "MAP_CHILD_THRESHOLD", 2)
    monkeypatch.setattr(interpreter, "MAP_BATCH", 2)
    flow = {
        "steps": [
            {
                "id": "each",
                "type": "map",
                "items": "{% $input.xs %}",
                "steps": [
                    {
                        "id": "stop",
                        "type": "choice",
                        "choices": [{"when": "{% $item = 3 %}", "next": "found"}],
                        "default": "t",
                    },
                    task("t", input={"x": "{% $item %}"}),
                    {"id": "found", "type": "succeed", "output": {"found": "{% $item %}"}},
                ],
                "next": "never",
            },
            task("never"),
        ]
    }
    assert await run(flow, {"xs": [0, 1, 2, 3, 4, 5]}) == {"found": 3}
    assert "never" not in {c.step_id for c in run.services.calls}
    assert {4, 5}.isdisjoint({c.input.get("x") for c in run.services.calls})


@pytest.mark.parametrize(
    "wait",
    [{"seconds": "{% 1e14 %}"}, {"seconds": 400 * 24 * 3600}, {"until": "9999-12-31T00:00:00Z"}],
)
async def test_a_wait_longer_than_the_limit_fails_with_invalid_wait(run, wait) -> None:
    cause = await failure_of(run, {"steps": [{"id": "w", "type": "wait", **wait}]})
    assert cause.type == "InvalidWait", cause
    assert "longest wait" in cause.message


async def test_a_map_over_more_items_than_the_limit_fails(run, monkeypatch) -> None:
    monkeypatch.setattr(interpreter, "MAX_MAP_ITEMS", 5)
    flow = {
        "steps": [
            {"id": "each", "type": "map", "items": "{% [1..6] %}", "steps": [task("t")]},
        ]
    }
    cause = await failure_of(run, flow)
    assert cause.type == "MapTooLarge", cause
    assert run.services.calls == []


async def test_nesting_queues_work_under_the_pending_limit(run, monkeypatch) -> None:
    """A parallel of maps puts no more than MAX_PENDING activities in flight: the rest
    wait their turn, and every item completes."""
    monkeypatch.setattr(interpreter, "MAX_PENDING", 3)

    def fan(map_id: str, task_id: str) -> dict[str, Any]:
        return {
            "id": map_id,
            "type": "map",
            "items": "{% [1..4] %}",
            "steps": [task(task_id, "slow", input={"seconds": 0.2})],
        }

    flow = {
        "steps": [
            {
                "id": "both",
                "type": "parallel",
                "branches": [{"steps": [fan("each-a", "ta")]}, {"steps": [fan("each-b", "tb")]}],
            }
        ]
    }
    result = await run(flow)
    assert [len(r) for r in result] == [4, 4]
    history = await run.handle.fetch_history()
    in_flight = most = 0
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            in_flight += 1
            most = max(most, in_flight)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            in_flight -= 1
    assert most <= 3, most


async def test_an_unexpected_error_in_workflow_code_fails_the_execution(run, monkeypatch) -> None:
    """A bug (here a RecursionError from a choice) fails the execution with its type and
    message at once; it does not retry the workflow task forever."""

    def boom(value: Any) -> bool:
        raise RecursionError("maximum recursion depth exceeded (injected)")

    monkeypatch.setattr(interpreter, "_truthy", boom)
    flow = {
        "steps": [
            {"id": "c", "type": "choice", "choices": [{"when": "{% true %}", "next": "t"}]},
            task("t"),
        ]
    }
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(run(flow), timeout=30)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RecursionError", cause
    assert "injected" in cause.message


RUNAWAY_EXPRESSIONS = [
    "($loop := function($n){ $loop($n+1) }; $loop(0))",
    "$count([1..10000].[1..10000])",
    '$length($reduce([1..31], function($a,$b){$a & $a}, "x"))',
    '$pad("", 1000000000, "a")',
]


@pytest.mark.parametrize("expression", RUNAWAY_EXPRESSIONS)
async def test_a_runaway_expression_fails_with_expression_limit_and_the_worker_goes_on(
    run, expression
) -> None:
    """Each fails its execution within seconds with ExpressionLimit, naming the step, the
    field and the limit; a normal execution on the same worker then runs as usual."""
    normal = {"steps": [task("t", input={"k": 1})]}
    started = time.perf_counter()
    await run(normal)
    usual = time.perf_counter() - started
    started = time.perf_counter()
    cause = await failure_of(
        run, {"steps": [{"id": "s", "type": "succeed", "output": "{% " + expression + " %}"}]}
    )
    assert time.perf_counter() - started < 10
    assert cause.type == "ExpressionLimit", cause
    assert cause.non_retryable
    details = cause.details[0]
    assert details["step_id"] == "s" and details["field"] == "output" and details["limit"]
    started = time.perf_counter()
    await run(normal)
    assert time.perf_counter() - started < usual + 1.0


async def test_a_catastrophic_regex_runs_in_linear_time(run) -> None:
    """`/^(a|a)*$/` backtracks exponentially on Python's re; on RE2 it answers at once."""
    flow = {
        "steps": [
            {
                "id": "s",
                "type": "succeed",
                "output": '{% $contains($pad("", 40, "a") & "b", /^(a|a)*$/) %}',
            }
        ]
    }
    started = time.perf_counter()
    assert await run(flow) is False
    assert time.perf_counter() - started < 10


async def test_a_catch_routes_a_task_input_stopped_by_a_limit(run) -> None:
    flow = {
        "steps": [
            task(
                "big",
                input={"v": '{% $pad("", 1000000000, "a") %}'},
                catch=[{"errors": ["ExpressionLimit"], "next": "fallback"}],
            ),
            task("fallback", input={"why": "{% $steps.big.error.type %}"}),
        ]
    }
    result = await run(flow)
    assert result["echo"] == {"why": "ExpressionLimit"}
    assert [c.step_id for c in run.services.calls] == ["fallback"]
