"""StoredWorkflow on the real dev server, in-process, with stand-in step activities.

As temporalio's samples test workflows: each test runs `async with Worker(...)` on a task
queue of its own, and the `<service>.<action>` activities are stand-ins registered under
those names. No HTTP, no gateway, no database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from core.devserver import DevServer
from core.temporal import connect, ensure_search_attributes
from definitions.contract import (
    CONTRACT_VERSION,
    INVALID_START,
    LOAD_DEFINITION_ACTIVITY,
    START_ACTIVITY,
    STEP_FAILED,
    WORKFLOW_ID_KEY,
    WORKFLOW_VERSION_KEY,
    StepFailure,
)
from definitions.models import (
    ActionSpec,
    ExecutionOptions,
    FirstAttempt,
    PinnedDefinition,
    PinnedStep,
    StartCall,
    StartOutcome,
    StepCall,
)
from worker.main import workflow_options

FAST = {"initial_interval": 0.05, "maximum_interval": 0.1, "maximum_attempts": 3}

EXTRACT_THEN_ANALYZE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("extract", "text.extract", {}),
    (
        "analyze",
        "mood.analyze",
        {"input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    ),
)
"""Two steps; the second declares `text`, so it gets only that of the data."""


@pytest.fixture
async def client(temporal: DevServer) -> AsyncIterator[Client]:
    connected = await connect(temporal.address, "default")
    await ensure_search_attributes(connected)
    yield connected


def queue() -> str:
    return f"wf-{uuid.uuid4().hex[:8]}"


def pinned(
    *steps: tuple[str, str, dict[str, Any]], name: str = "chain", **fields: Any
) -> PinnedDefinition:
    """A chain of (step id, activity type `service.action`, action fields), in order."""
    out = []
    for index, (step_id, activity_type, spec) in enumerate(steps):
        service, action_name = activity_type.split(".")
        out.append(
            PinnedStep(
                id=step_id,
                service=service,
                action=action_name,
                next=steps[index + 1][0] if index + 1 < len(steps) else None,
                endpoint="http://stand-in.invalid",
                spec=ActionSpec(name=action_name, **{"retry_policy": FAST, **spec}),
            )
        )
    return PinnedDefinition(name=name, entry=steps[0][0], steps=out, **fields)


class StandIns:
    """Stand-in step activities that record each call and answer as told."""

    def __init__(self) -> None:
        self.calls: list[StepCall] = []

    def step(self, activity_type: str, answer: Callable[[StepCall], dict[str, Any]]) -> Any:
        @activity.defn(name=activity_type)
        async def run(call: StepCall) -> dict[str, Any]:
            self.calls.append(call)
            return answer(call)

        return run


def worker(client: Client, task_queue: str, *activities: Any) -> Worker:
    return Worker(client, task_queue=task_queue, activities=list(activities), **workflow_options())


async def run(
    client: Client, task_queue: str, definition: PinnedDefinition, data: Any, **options: Any
) -> Any:
    return await client.execute_workflow(
        definition.name,
        args=[data, ExecutionOptions(definition=definition, **options)],
        id=f"exec-{uuid.uuid4().hex}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )


def application_cause(error: WorkflowFailureError) -> ApplicationError:
    assert isinstance(error.cause, ApplicationError), error.cause
    return error.cause


async def test_chain_passes_declared_properties_and_returns_the_last_output(client) -> None:
    stand_ins = StandIns()
    tq = queue()
    definition = pinned(*EXTRACT_THEN_ANALYZE)
    async with worker(
        client,
        tq,
        stand_ins.step("text.extract", lambda call: {"text": "hello", "pages": 1}),
        stand_ins.step("mood.analyze", lambda call: {"sentiment": "positive", "seen": call.input}),
    ):
        result = await run(client, tq, definition, {"url": "u"}, context={"request_id": "r-1"})
    assert result == {"sentiment": "positive", "seen": {"text": "hello"}}
    first, second = stand_ins.calls
    assert first.input == {"url": "u"}
    assert (first.step_id, second.step_id) == ("extract", "analyze")
    assert first.request_id == second.request_id == "r-1"
    assert first.contract == CONTRACT_VERSION
    assert first.execution_id == second.execution_id


async def test_retryable_failure_is_retried_until_it_succeeds(client) -> None:
    stand_ins = StandIns()
    tq = queue()

    def flaky(call: StepCall) -> dict[str, Any]:
        if activity.info().attempt < 3:
            raise ApplicationError("warming up", type="ServiceUnavailable")
        return {"attempt": activity.info().attempt}

    async with worker(client, tq, stand_ins.step("svc.flaky", flaky)):
        result = await run(client, tq, pinned(("only", "svc.flaky", {})), {})
    assert result == {"attempt": 3}
    assert len(stand_ins.calls) == 3


async def test_non_retryable_failure_fails_the_execution_with_step_details(client) -> None:
    stand_ins = StandIns()
    tq = queue()

    def refused(call: StepCall) -> dict[str, Any]:
        raise ApplicationError(
            "refused with HTTP 404",
            {"attempt": activity.info().attempt, "status_code": 404},
            type="ServiceRejected",
            non_retryable=True,
        )

    async with worker(client, tq, stand_ins.step("svc.gone", refused)):
        with pytest.raises(WorkflowFailureError) as failed:
            await run(client, tq, pinned(("only", "svc.gone", {})), {})
    cause = application_cause(failed.value)
    assert cause.type == STEP_FAILED and cause.non_retryable
    details = StepFailure.model_validate(cause.details[0])
    assert (details.step_id, details.service, details.action) == ("only", "svc", "gone")
    assert (details.error_type, details.attempts, details.status_code) == (
        "ServiceRejected",
        1,
        404,
    )
    assert len(stand_ins.calls) == 1


async def test_exhausted_retries_fail_the_step_after_maximum_attempts(client) -> None:
    stand_ins = StandIns()
    tq = queue()

    def down(call: StepCall) -> dict[str, Any]:
        raise ApplicationError("503", {"attempt": activity.info().attempt}, type="Unavailable")

    async with worker(client, tq, stand_ins.step("svc.down", down)):
        with pytest.raises(WorkflowFailureError) as failed:
            await run(client, tq, pinned(("only", "svc.down", {})), {})
    details = StepFailure.model_validate(application_cause(failed.value).details[0])
    assert (details.error_type, details.attempts) == ("Unavailable", 3)
    assert len(stand_ins.calls) == 3


async def test_step_over_its_timeout_fails_as_timeout(client) -> None:
    tq = queue()

    @activity.defn(name="svc.slow")
    async def slow(call: StepCall) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    definition = pinned(
        ("only", "svc.slow", {"timeout": 0.5, "retry_policy": {**FAST, "maximum_attempts": 1}})
    )
    async with worker(client, tq, slow):
        with pytest.raises(WorkflowFailureError) as failed:
            await run(client, tq, definition, {})
    details = StepFailure.model_validate(application_cause(failed.value).details[0])
    assert details.error_type == "Timeout"
    assert "START_TO_CLOSE" in details.message


async def test_local_mode_step_runs_as_a_local_activity(client) -> None:
    stand_ins = StandIns()
    tq = queue()
    definition = pinned(("only", "svc.fast", {"mode": "local"}))
    async with worker(client, tq, stand_ins.step("svc.fast", lambda call: {"ok": True})):
        handle = await client.start_workflow(
            definition.name,
            args=[{}, ExecutionOptions(definition=definition)],
            id=f"exec-{uuid.uuid4().hex}",
            task_queue=tq,
        )
        assert await handle.result() == {"ok": True}
    events = [event.event_type for event in (await handle.fetch_history()).events]
    assert EventType.EVENT_TYPE_MARKER_RECORDED in events
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events


async def test_local_mode_step_failure_fails_with_step_details(client) -> None:
    tq = queue()

    @activity.defn(name="svc.localgone")
    async def refused(call: StepCall) -> dict[str, Any]:
        raise ApplicationError(
            "HTTP 404", {"status_code": 404}, type="ServiceRejected", non_retryable=True
        )

    definition = pinned(("only", "svc.localgone", {"mode": "local"}))
    async with worker(client, tq, refused):
        with pytest.raises(WorkflowFailureError) as failed:
            await run(client, tq, definition, {})
    cause = application_cause(failed.value)
    assert cause.type == STEP_FAILED, repr(cause)
    details = StepFailure.model_validate(cause.details[0])
    assert (details.step_id, details.error_type, details.status_code) == (
        "only",
        "ServiceRejected",
        404,
    )


def starter(
    definition: PinnedDefinition | None = None,
    first: FirstAttempt | None = None,
    *,
    error: ApplicationError | None = None,
    seen: list[StartCall] | None = None,
) -> Any:
    """A stand-in `si:start`: answers the definition and first attempt it is given."""

    @activity.defn(name=START_ACTIVITY)
    async def start(call: StartCall) -> StartOutcome:
        if seen is not None:
            seen.append(call)
        if error is not None:
            raise error
        assert definition is not None
        return StartOutcome(definition=definition, first=first)

    return start


def events_of(history: Any, kind: Any) -> list[Any]:
    return [e for e in history.events if e.event_type == kind]


async def test_started_by_name_pins_with_si_start_and_tags_the_execution(client) -> None:
    stand_ins = StandIns()
    tq = queue()
    definition = pinned(("only", "svc.run", {}), name="by-name", workflow_id="wf-1", version=4)
    seen: list[StartCall] = []

    async with worker(
        client,
        tq,
        starter(definition, seen=seen),
        stand_ins.step("svc.run", lambda call: {"done": 1}),
    ):
        handle = await client.start_workflow(
            "by-name", {"x": 1}, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq
        )
        assert await handle.result() == {"done": 1}
    (call,) = seen
    assert (call.name, call.version, call.input, call.run_first) == (
        "by-name",
        None,
        {"x": 1},
        True,
    )
    assert call.execution_id == handle.id
    assert stand_ins.calls[0].input == {"x": 1}
    assert stand_ins.calls[0].request_id == call.request_id
    description = await handle.describe()
    assert description.typed_search_attributes.get(WORKFLOW_ID_KEY) == "wf-1"
    assert description.typed_search_attributes.get(WORKFLOW_VERSION_KEY) == 4
    assert await description.memo() == {}  # the gateway reads the search attributes
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    ]
    assert scheduled == [START_ACTIVITY, "svc.run"]  # no local activity, no load marker
    markers = events_of(history, EventType.EVENT_TYPE_MARKER_RECORDED)
    assert [m.marker_recorded_event_attributes.marker_name for m in markers] == ["core_patch"]


async def test_the_first_attempt_made_by_si_start_is_not_repeated(client) -> None:
    stand_ins = StandIns()
    tq = queue()
    definition = pinned(*EXTRACT_THEN_ANALYZE, name="two")
    async with worker(
        client,
        tq,
        starter(definition, FirstAttempt(output={"text": "hello"})),
        stand_ins.step("text.extract", lambda call: {"text": "called again"}),
        stand_ins.step("mood.analyze", lambda call: {"seen": call.input}),
    ):
        result = await client.execute_workflow(
            "two", {"url": "u"}, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq
        )
    assert result == {"seen": {"text": "hello"}}
    assert [call.step_id for call in stand_ins.calls] == ["analyze"]


async def test_a_failed_first_attempt_is_retried_with_the_attempts_left(client) -> None:
    tq = queue()
    definition = pinned(("only", "svc.flaky", {}), name="flaky")  # 3 attempts in all
    attempts: list[int] = []

    @activity.defn(name="svc.flaky")
    async def flaky(call: StepCall) -> dict[str, Any]:
        attempts.append(activity.info().attempt)
        raise ApplicationError(
            "HTTP 503", {"attempt": activity.info().attempt}, type="ServiceUnavailable"
        )

    first = FirstAttempt(
        error_type="ServiceUnavailable", message="HTTP 503", details={"attempt": 1}
    )
    async with worker(client, tq, starter(definition, first), flaky):
        handle = await client.start_workflow(
            "flaky", {}, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
    assert attempts == [1, 2]  # 1 inside si:start + 2 = the policy's 3
    details = StepFailure.model_validate(application_cause(failed.value).details[0])
    assert (details.step_id, details.error_type, details.attempts) == (
        "only",
        "ServiceUnavailable",
        3,
    )
    history = await handle.fetch_history()
    (timer,) = events_of(history, EventType.EVENT_TYPE_TIMER_STARTED)
    backoff = timer.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
    assert backoff == timedelta(seconds=FAST["initial_interval"])


async def test_a_first_attempt_retry_after_sets_the_first_delay(client) -> None:
    stand_ins = StandIns()
    tq = queue()
    definition = pinned(("only", "svc.busy", {}), name="busy")
    first = FirstAttempt(
        error_type="HTTP429", message="HTTP 429", details={"attempt": 1}, retry_after=0.3
    )
    async with worker(
        client, tq, starter(definition, first), stand_ins.step("svc.busy", lambda c: {"ok": 1})
    ):
        handle = await client.start_workflow(
            "busy", {}, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq
        )
        assert await handle.result() == {"ok": 1}
    history = await handle.fetch_history()
    (timer,) = events_of(history, EventType.EVENT_TYPE_TIMER_STARTED)
    assert timer.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta() == (
        timedelta(seconds=0.3)
    )


async def test_a_non_retryable_first_attempt_fails_the_step_at_once(client) -> None:
    stand_ins = StandIns()
    tq = queue()
    definition = pinned(("only", "svc.strict", {}), name="strict")
    first = FirstAttempt(
        error_type="ServiceRejected",
        message="refused with HTTP 422",
        details={"attempt": 1, "status_code": 422},
        non_retryable=True,
    )
    async with worker(
        client, tq, starter(definition, first), stand_ins.step("svc.strict", lambda c: {})
    ):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow("strict", {}, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq)
    assert stand_ins.calls == []
    cause = application_cause(failed.value)
    assert cause.type == STEP_FAILED
    details = StepFailure.model_validate(cause.details[0])
    assert (details.error_type, details.attempts, details.status_code) == (
        "ServiceRejected",
        1,
        422,
    )
    assert "refused with HTTP 422" in cause.message


async def test_unknown_name_fails_with_the_loaders_error(client) -> None:
    tq = queue()
    error = ApplicationError(
        "no workflow named 'nothing'", type="NotFoundError", non_retryable=True
    )
    async with worker(client, tq, starter(error=error)):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                "nothing", {}, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq
            )
    cause = application_cause(failed.value)
    assert cause.type == "NotFoundError"
    assert "cannot run stored workflow 'nothing': no workflow named 'nothing'" == cause.message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["not-a-dict"], "the workflow input must be a JSON object"),
        ([[1, 2]], "got list"),
        ([{}, "not-options"], "the second argument must be an object"),
        ([{}, {"context": "not-a-dict"}], "the second argument must be an object"),
        ([{}, {"definition": {"name": "x", "entry": "gone", "steps": []}}], "'gone' is named"),
        ([{}, {}, {}], "started with 3 arguments"),
    ],
    ids=["input-string", "input-list", "options-string", "context-string", "bad-entry", "3-args"],
)
async def test_start_arguments_it_cannot_use_fail_at_once(client, args, expected) -> None:
    tq = queue()
    async with worker(client, tq):
        handle = await client.start_workflow(
            "anything", args=args, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=20)
    cause = application_cause(failed.value)
    assert (cause.type, cause.non_retryable) == (INVALID_START, True)
    assert expected in cause.message
    history = await handle.fetch_history()
    failed_tasks = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed_tasks == []  # failed on the first task, no task retries


@workflow.defn(dynamic=True, sandboxed=False)
class SeedStoredWorkflow:
    """The workflow as the seed shipped it before 'Load a definition by name with a local
    activity': the definition load was a regular activity. Histories it left behind issue
    other commands than today's code."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        definition = await workflow.execute_activity(
            LOAD_DEFINITION_ACTIVITY,
            workflow.info().workflow_type,
            result_type=PinnedDefinition,
            start_to_close_timeout=timedelta(seconds=10),
        )
        step = definition.steps[0]
        return await workflow.execute_activity(
            f"{step.service}.{step.action}",
            StepCall(
                execution_id=workflow.info().workflow_id,
                step_id=step.id,
                service=step.service,
                endpoint=step.endpoint,
                spec=step.spec,
                input={},
                request_id="r",
            ),
            result_type=dict,
            activity_id=step.id,
            start_to_close_timeout=timedelta(seconds=30),
            # The old worker has no stand-in for the step: an attempt it takes fails and is
            # retried, on the new worker.
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=0.1)),
        )


async def test_history_the_code_cannot_replay_fails_at_once_with_a_clear_error(client) -> None:
    """The upgrade that stranded executions: an execution started by the seed's worker is
    taken over mid-step by today's. It fails fast with the mismatch, not RUNNING forever."""
    tq = queue()
    definition = pinned(("only", "svc.held", {}), name="upgrade")
    held = asyncio.Event()

    @activity.defn(name=LOAD_DEFINITION_ACTIVITY)
    async def load(name: str) -> PinnedDefinition:
        return definition

    @activity.defn(name="svc.held")
    async def step(call: StepCall) -> dict[str, Any]:
        await held.wait()
        return {"done": True}

    old = Worker(
        client,
        task_queue=tq,
        workflows=[SeedStoredWorkflow],
        activities=[load],
        max_cached_workflows=0,
    )
    async with old:
        handle = await client.start_workflow(
            "upgrade", {}, id=f"sdk-{uuid.uuid4().hex}", task_queue=tq
        )
        for _ in range(200):  # until the old worker has scheduled the step
            history = await handle.fetch_history()
            if any(
                e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_id == "only"
                for e in history.events
            ):
                break
            await asyncio.sleep(0.05)
    async with worker(client, tq, load, step):
        held.set()
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
    cause = application_cause(failed.value)
    assert "[TMPRL1100] Nondeterminism error" in cause.message
    assert "ActivityTaskScheduled" in cause.message  # names the recorded event that differs
