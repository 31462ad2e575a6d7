"""Builds an execution's record from its Temporal event history (and, while it runs,
its description).

A closed execution is told whole by its history: the start event holds the input and
the options (pinned definition, context), activity events and local-activity markers
hold each step's attempts and errors, and the closing event holds the result or the
failure. A running execution also needs its description, for the attempts and errors
of activities in flight, which the history only records once they end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes, HistoryEvent
from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError, TimeoutError

from definitions.chain import step_input
from definitions.contract import (
    EXPRESSION_LIMIT,
    INVALID_START,
    LOAD_DEFINITION_ACTIVITY,
    OUTCOME_UPDATE,
    START_ACTIVITY,
    STEP_FAILED,
    SUCCEED_ENDS_EXECUTION_PATCH,
    SUCCEEDED_KEY,
    WORKFLOW_ID_KEY,
    StepFailure,
    unwrap,
)
from definitions.json_values import bounded
from definitions.language import (
    ChoiceStep,
    FailStep,
    Flow,
    MapStep,
    ParallelStep,
    SucceedStep,
    TaskStep,
    WaitStep,
    WorkflowStep,
    entry_of,
    iter_steps,
    tolerated_failures,
)
from definitions.language import catch_names as language_catch_names
from definitions.models import ExecutionOptions, PinnedDefinition, StartOutcome
from executions.models import (
    ExecutionError,
    ExecutionPublic,
    ExecutionStatus,
    StepState,
)
from executions.record import answered_whole, record_from_outcome

FROM_TEMPORAL = {
    WorkflowExecutionStatus.RUNNING: ExecutionStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: ExecutionStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: ExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: ExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED: ExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: ExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: ExecutionStatus.COMPLETED,
}

CLOSED_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: ExecutionStatus.COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: ExecutionStatus.FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: ExecutionStatus.CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: ExecutionStatus.TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: ExecutionStatus.TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: ExecutionStatus.COMPLETED,
}
"""The events that close an execution, and the status each closes it with."""

_ACTIVITY_CLOSING_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: (
        "activity_task_completed_event_attributes",
        "COMPLETED",
    ),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed_event_attributes", "FAILED"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: (
        "activity_task_timed_out_event_attributes",
        "TIMED_OUT",
    ),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: (
        "activity_task_canceled_event_attributes",
        "CANCELED",
    ),
}


def status_from_temporal(value: WorkflowExecutionStatus | None) -> ExecutionStatus:
    """The API status of a Temporal execution status; unknown or missing is RUNNING."""
    return FROM_TEMPORAL.get(value, ExecutionStatus.RUNNING) if value else ExecutionStatus.RUNNING


def is_closed(events: Sequence[HistoryEvent]) -> bool:
    """Whether the history ends with the event that closes the execution."""
    return bool(events) and events[-1].event_type in CLOSED_EVENTS


def continued_as(events: Sequence[HistoryEvent]) -> str | None:
    """The run a run's history continued as new as (the execution goes on there), or None
    when it did not continue as new."""
    if not events:
        return None
    last = events[-1]
    if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return None
    return last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id or None


def run_id_of(events: Sequence[HistoryEvent]) -> str:
    """The run a history is of.

    A run started (or continued as new) names itself in its start event. A reset copies
    the start event, and that run id with it, into the run it makes, and records that
    run's id in the workflow task it fails at the reset point; the last such reset is
    the run's own (the earlier ones, copied from the run reset, made that run).
    """
    run_id = events[0].workflow_execution_started_event_attributes.original_execution_run_id
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failed = event.workflow_task_failed_event_attributes
            if (
                failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
                and failed.new_run_id
            ):
                run_id = failed.new_run_id
    return run_id


_MEMO_KIND = "kind"
"""The ExecutionMemo field every execution of this service carries (definitions.contract)."""


def started_by_this_service(events: Sequence[HistoryEvent], *, task_queue: str) -> bool:
    """Whether the history is of an execution of this service, not another workflow of the
    namespace.

    Ours: started on this service's task queue, and marked as a stored-workflow or
    one-action execution, by the gateway at start (ExecutionMemo; SiWorkflowId) or, for
    a stored workflow started by name with an SDK, by its first command (the `si:start`
    activity) and then the SiWorkflowId it upserts (before `si:start`: SiWorkflowId and
    the memo, upserted once the definition loaded). Reads keys only, decodes nothing.
    """
    if not events:
        return False
    first = events[0]
    if first.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        return False
    started = first.workflow_execution_started_event_attributes
    if started.task_queue.name != task_queue:
        return False
    if _MEMO_KIND in started.memo.fields:
        return True
    if WORKFLOW_ID_KEY.name in started.search_attributes.indexed_fields:
        return True
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == START_ACTIVITY:
                return True
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upserted = event.upsert_workflow_search_attributes_event_attributes
            if WORKFLOW_ID_KEY.name in upserted.search_attributes.indexed_fields:
                return True
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            modified = event.workflow_properties_modified_event_attributes
            if _MEMO_KIND in modified.upserted_memo.fields:
                return True
    return False


@dataclass(frozen=True)
class LocalActivityMarker:
    """What a local activity's marker says: which activity, which attempt, how it ended."""

    activity_id: str
    activity_type: str
    attempt: int
    result: Sequence[Any] | None
    """The result's payloads; None when the activity failed (or recorded no result)."""
    failure: Failure | None


_LOCAL_ACTIVITY_MARKER = "core_local_activity"


async def local_activity_marker(
    event: HistoryEvent, converter: DataConverter
) -> LocalActivityMarker | None:
    """The local activity a MARKER_RECORDED event records, or None for any other marker.

    The only code that knows the SDK's internal marker layout: the marker name
    `core_local_activity`, its `data` detail (a JSON object with `activity_id`,
    `activity_type` and `attempt`) and its `result` detail. If a new SDK changes it, the
    tests in tests/executions/test_history.py, which read recorded histories, say so.
    """
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    attributes = event.marker_recorded_event_attributes
    if attributes.marker_name != _LOCAL_ACTIVITY_MARKER:
        return None
    data_payloads = attributes.details.get("data")
    data: Any = {}
    if data_payloads is not None and data_payloads.payloads:
        data = (await converter.decode(list(data_payloads.payloads)[:1]))[0]
    if not isinstance(data, dict):
        return None
    result = attributes.details.get("result")
    failed = attributes.HasField("failure")
    return LocalActivityMarker(
        activity_id=str(data.get("activity_id", "")),
        activity_type=str(data.get("activity_type", "")),
        attempt=int(data.get("attempt") or 1),
        result=list(result.payloads) if result is not None and not failed else None,
        failure=attributes.failure if failed else None,
    )


async def build_record(
    execution_id: str,
    events: Sequence[HistoryEvent],
    description: WorkflowExecutionDescription | None,
    *,
    converter: DataConverter,
) -> ExecutionPublic:
    """The record of an execution, from its history and (while it runs) its description.

    An execution that continued as new is told by its latest run: its status, result and
    steps are that run's (the steps of the runs before it are not read again), its input
    the one the execution started with.

    Args:
        execution_id: the Temporal workflow id.
        events: the history events of the execution's latest run, from its start event on.
        description: the execution's description; None when the history is closed.
        converter: the data converter the execution's payloads were written with.

    Returns:
        The record. Input the workflow could not use (no JSON object, unreadable
        options) is answered as it was sent, with the execution's own failure.
    """
    return await _Record(execution_id, list(events), description, converter).build()


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime().replace(tzinfo=UTC)


class _Record:
    def __init__(
        self,
        execution_id: str,
        events: list[HistoryEvent],
        description: WorkflowExecutionDescription | None,
        converter: DataConverter,
    ) -> None:
        self._converter = converter
        self._execution_id = execution_id
        self._description = description
        self._events = events
        self._outcomes: dict[int, StartOutcome] = {}
        """si:start results decoded, by completion event id (read for the definition and
        again for the entry step's first attempt)."""

    async def build(self) -> ExecutionPublic:
        first, last = self._events[0], self._events[-1]
        started = first.workflow_execution_started_event_attributes
        closing = CLOSED_EVENTS.get(last.event_type)
        status = closing or (
            status_from_temporal(self._description.status)
            if self._description
            else ExecutionStatus.RUNNING
        )
        input_data, options = await self._start_arguments()
        if closing == ExecutionStatus.COMPLETED and options.definition is not None:
            # Waited for by the gateway: the workflow's own answer, if it tells the whole
            # record, is the record (executions/record.py), as the gateway answered it.
            outcome = await self._outcome_answer()
            if outcome is not None and answered_whole(outcome):
                return record_from_outcome(
                    outcome,
                    execution_id=self._execution_id,
                    definition=options.definition,
                    input_data=input_data,
                    context=options.context,
                    test_run=False,
                )
        definition = options.definition or await self._loaded_definition()
        result, error = await self._outcome(status)
        if definition is not None and definition.flow is not None:
            steps = await self._flow_steps(definition.flow, options, closing, result, error)
        else:
            steps = await self._steps(definition, input_data)
        if error is not None and error.step_id is not None:
            failed = next(
                (s for s in reversed(steps) if s.id == error.step_id and s.error is not None),
                None,
            ) or next((s for s in steps if s.id == error.step_id), None)
            if failed is not None and failed.attempts:
                error.attempts = failed.attempts
        return ExecutionPublic(
            execution_id=self._execution_id,
            run_id=self._description.run_id if self._description else run_id_of(self._events),
            kind=definition.kind if definition else "workflow",
            workflow_id=definition.workflow_id if definition else None,
            workflow_name=definition.name if definition else started.workflow_type.name,
            workflow_version=definition.version if definition else None,
            status=status,
            input=input_data,
            context=options.context,
            result=result,
            error=error,
            started_at=_time(first),
            closed_at=_time(last) if closing else None,
            steps=steps,
        )

    async def _outcome_answer(self) -> dict[str, Any] | None:
        """What the workflow answered the si:outcome update with, if one was sent (the
        gateway's execute-and-wait) and answered: the update's completed event, found from
        the end, and its accepted event naming the update."""
        accepted: dict[int, HistoryEvent] = {
            e.event_id: e
            for e in self._events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        }
        if not accepted:
            return None
        for event in reversed(self._events):
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
                continue
            completed = event.workflow_execution_update_completed_event_attributes
            request = accepted.get(completed.accepted_event_id)
            if request is None or (
                request.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
                != OUTCOME_UPDATE
            ):
                continue
            answer = await _first(list(completed.outcome.success.payloads), self._converter)
            return answer if isinstance(answer, dict) else None
        return None

    async def _start_arguments(self) -> tuple[Any, ExecutionOptions]:
        """The input as sent (any JSON value), and the options if they can be read.

        Started with an SDK, the input may be no object and the options anything: the
        workflow fails such an execution at once (InvalidStart), and its record still
        answers, with the input as sent and default options.
        """
        started = self._events[0].workflow_execution_started_event_attributes
        payloads = list(started.input.payloads)
        input_data = (await self._converter.decode(payloads[:1]))[0] if payloads else None
        options = ExecutionOptions()
        if len(payloads) > 1:
            try:
                options = (await self._converter.decode(payloads[1:2], [ExecutionOptions]))[0]
            except (ValueError, TypeError):
                pass  # the execution failed with InvalidStart; its error says why
        if options.resume:
            # A run a flow continued as new starts with the flow's data so far; the input
            # the execution started with rides in the options, left out when empty (an
            # input that ran is a JSON object: an empty one is {}).
            input_data = options.original_input if options.original_input is not None else {}
        return input_data, options

    async def _loaded_definition(self) -> PinnedDefinition | None:
        """The definition an SDK-started execution loaded: the `si:start` activity's
        result (or, in histories written before it, the load's local-activity marker, or
        before that an activity's result)."""
        scheduled: set[int] = set()
        starts: set[int] = set()
        for event in self._events:
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                marker = await local_activity_marker(event, self._converter)
                if (
                    marker is not None
                    and marker.activity_type == LOAD_DEFINITION_ACTIVITY
                    and marker.result
                ):
                    return await self._definition(marker.result)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == LOAD_DEFINITION_ACTIVITY:
                    scheduled.add(event.event_id)
                elif attributes.activity_type.name == START_ACTIVITY:
                    starts.add(event.event_id)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                completed = event.activity_task_completed_event_attributes
                if completed.scheduled_event_id in scheduled:
                    return await self._definition(list(completed.result.payloads))
                if completed.scheduled_event_id in starts:
                    return (await self._start_outcome(event)).definition
        return None

    async def _start_outcome(self, completed: HistoryEvent) -> StartOutcome:
        """The StartOutcome an ACTIVITY_TASK_COMPLETED of si:start holds."""
        if completed.event_id not in self._outcomes:
            payloads = list(completed.activity_task_completed_event_attributes.result.payloads)
            decoded = await self._converter.decode(payloads, [StartOutcome])
            self._outcomes[completed.event_id] = decoded[0]
        return self._outcomes[completed.event_id]

    async def _definition(self, payloads: Sequence[Any]) -> PinnedDefinition:
        return (await self._converter.decode(list(payloads), [PinnedDefinition]))[0]

    async def _outcome(self, status: ExecutionStatus) -> tuple[Any, ExecutionError | None]:
        last = self._events[-1]
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            payloads = list(last.workflow_execution_completed_event_attributes.result.payloads)
            # A chain's result is an object; a flow's any JSON value.
            result = (await self._converter.decode(payloads))[0] if payloads else None
            return result, None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = await self._converter.decode_failure(
                last.workflow_execution_failed_event_attributes.failure
            )
            if isinstance(failure, ApplicationError) and failure.type == STEP_FAILED:
                step = StepFailure.model_validate(failure.details[0] if failure.details else {})
                return None, ExecutionError(
                    step_id=step.step_id,
                    service=step.service,
                    action=step.action,
                    error_type=step.error_type,
                    message=step.message,
                    attempts=step.attempts,
                )
            # A fail step's error, a flow's own (NoChoiceMatched, InvalidWait, ...: both
            # name their step in their details), InvalidStart, a NondeterminismError the
            # worker failed the execution with, or any other failure: its type, message
            # and step, as the workflow raised them.
            if isinstance(failure, ApplicationError):
                details = failure.details[0] if failure.details else None
                step_id = details.get("step_id") if isinstance(details, dict) else None
                return None, ExecutionError(
                    step_id=step_id if isinstance(step_id, str) else None,
                    error_type=failure.type or type(failure).__name__,
                    message=failure.message,
                )
            return None, ExecutionError(error_type=type(failure).__name__, message=str(failure))
        if status in (
            ExecutionStatus.TIMED_OUT,
            ExecutionStatus.TERMINATED,
            ExecutionStatus.CANCELED,
        ):
            return None, ExecutionError(
                error_type=status.value, message=f"the execution was {status.value.lower()}"
            )
        return None, None

    async def _steps(self, definition: PinnedDefinition | None, input_data: Any) -> list[StepState]:
        """The steps of the seed's chain, in chain order, each with its input and output
        as its task sent and answered them (bounded as a flow's tasks are)."""
        if definition is None:
            return []
        states: dict[str, StepState] = {}
        order: list[str] = []
        step_id: str | None = definition.entry
        while step_id is not None:
            step = definition.step(step_id)
            states[step.id] = StepState(
                id=step.id, service=step.service, action=step.action, status="PENDING"
            )
            order.append(step.id)
            step_id = step.next
        entry = states[definition.entry]
        by_scheduled: dict[int, StepState] = {}
        # A start by name makes the entry step's first attempt inside `si:start`; the
        # step's own activity, if it had to retry, counts its attempts after that one.
        starts: set[int] = set()
        made_before: dict[str, int] = {}
        # The workflow input and each step's output so far: what a local activity, whose
        # marker records no input, was called with (definitions/chain.py).
        data: dict[str, Any] = dict(input_data) if isinstance(input_data, dict) else {}

        def answered(state: StepState, output: Any) -> None:
            if output is not None:
                state.output = bounded(output)
            if isinstance(output, dict):
                data.update(output)

        for event in self._events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled = event.activity_task_scheduled_event_attributes
                state: StepState | None
                if scheduled.activity_type.name == START_ACTIVITY:
                    # A StartCall: its `input` is the workflow input, the entry step's
                    # input what its schema takes of it, as si:start called it.
                    state = entry
                    starts.add(event.event_id)
                    sent = await _call_input(scheduled, self._converter)
                    state.input = bounded(
                        step_input(definition.step(entry.id).spec.input_schema, sent)
                        if isinstance(sent, dict)
                        else None
                    )
                else:
                    state = states.get(scheduled.activity_id)
                    if state is not None:
                        state.input = bounded(await _call_input(scheduled, self._converter))
                if state is not None and scheduled.activity_type.name != LOAD_DEFINITION_ACTIVITY:
                    state.status = "SCHEDULED"
                    by_scheduled[event.event_id] = state
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                state = by_scheduled.get(started.scheduled_event_id)
                if state is not None:
                    state.status = "RUNNING"
                    state.attempts = started.attempt + made_before.get(state.id, 0)
                    state.worker = started.identity or None
                    state.started_at = _time(event)
            elif kind in _ACTIVITY_CLOSING_EVENTS:
                field, closed_status = _ACTIVITY_CLOSING_EVENTS[kind]
                attributes = getattr(event, field)
                state = by_scheduled.get(attributes.scheduled_event_id)
                if state is None:
                    continue
                if attributes.scheduled_event_id in starts:
                    answered(state, await self._first_attempt(event, state, made_before))
                    continue
                state.status = closed_status
                state.completed_at = _time(event)
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                    answered(state, await _output(attributes.result.payloads, self._converter))
                failure = getattr(attributes, "failure", None)
                if failure is not None and attributes.HasField("failure"):
                    cause = failure.cause if failure.HasField("cause") else None
                    state.last_error = failure.message or (cause.message if cause else None)
            elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
                marker = await local_activity_marker(event, self._converter)
                state = states.get(marker.activity_id) if marker else None
                if marker is not None and state is not None:
                    if marker.activity_type == LOAD_DEFINITION_ACTIVITY:
                        continue
                    # Local activities leave a marker, not activity events; the marker
                    # records no input: the step's is what the chain's data gave it.
                    state.attempts = marker.attempt + made_before.get(state.id, 0)
                    state.status = "FAILED" if marker.failure is not None else "COMPLETED"
                    state.completed_at = _time(event)
                    state.input = bounded(
                        step_input(definition.step(state.id).spec.input_schema, data)
                    )
                    if marker.failure is not None:
                        state.last_error = marker.failure.message
                    else:
                        answered(state, await _output(marker.result or [], self._converter))
        self._apply_pending(states, made_before)
        return [states[i] for i in order]

    async def _first_attempt(
        self, event: HistoryEvent, state: StepState, made_before: dict[str, int]
    ) -> dict[str, Any] | None:
        """The entry step as `si:start` left it: done, failed once (its own activity
        retries it, or the execution failed with it), or not run there (PENDING).

        Returns:
            The step's output when its first attempt succeeded, else None.
        """
        first = None
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            first = (await self._start_outcome(event)).first
        if first is None:  # not run inside si:start, or si:start itself failed
            state.status, state.attempts, state.worker, state.started_at = "PENDING", 0, None, None
            state.input = None
            return None
        state.completed_at = _time(event)
        if not first.failed:
            state.status = "COMPLETED"
            return first.output or {}
        state.status = "FAILED"
        state.last_error = first.message
        made_before[state.id] = state.attempts
        return None

    async def _flow_steps(
        self,
        flow: Flow,
        options: ExecutionOptions,
        closing: ExecutionStatus | None,
        result: Any,
        error: ExecutionError | None,
    ) -> list[StepState]:
        """The steps of a flow that ran, from what its history recorded of them."""
        seen = await _observe(self._events, self._converter)
        resume = options.resume or {}
        start = str(resume.get("next_step") or entry_of(flow))
        walk = _FlowWalk(
            seen,
            execution_id=self._execution_id,
            closing=closing,
            closing_event=self._events[-1].event_id if closing else None,
            result=result,
            error=error,
            continued_at=await self._continued_at(),
            first_index=int((options.bindings or {}).get("index_offset") or 0),
        )
        steps = walk.run(flow, start)
        self._apply_pending(walk.by_path)
        return steps

    async def _continued_at(self) -> str | None:
        """The step a flow's run continued as new at: the next run's `resume.next_step`."""
        last = self._events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return None
        payloads = list(last.workflow_execution_continued_as_new_event_attributes.input.payloads)
        options = await _first(payloads[1:], self._converter)
        resume = options.get("resume") if isinstance(options, dict) else None
        step = resume.get("next_step") if isinstance(resume, dict) else None
        return step if isinstance(step, str) else None

    def _apply_pending(
        self, states: dict[str, StepState], made_before: dict[str, int] | None = None
    ) -> None:
        """Activities in flight: their attempts and last errors are only in the description."""
        pending_activities = (
            self._description.raw_description.pending_activities if self._description else []
        )
        for pending in pending_activities:
            state = states.get(pending.activity_id)
            if state is None:
                continue
            state.attempts = max(
                state.attempts, pending.attempt + (made_before or {}).get(state.id, 0)
            )
            state.worker = pending.last_worker_identity or state.worker
            if pending.HasField("last_started_time"):
                state.started_at = pending.last_started_time.ToDatetime().replace(tzinfo=UTC)
            if pending.HasField("last_failure"):
                state.last_error = pending.last_failure.message
            state.status = (
                "RUNNING"
                if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                else ("RETRYING" if pending.attempt > 1 else "SCHEDULED")
            )


# ---------------------------------------------------------------------- flows
#
# A flow's history records what ran, not the flow's decisions: each task is an activity
# (or a local activity's marker) whose id says where it ran, each wait a timer named
# `wait '<id>'`, each workflow step and map batch a child workflow. _observe collects
# those; _FlowWalk follows the flow's structure through them (as workflows/interpreter.py
# ran it), inferring what left no event: a choice's route (the target that ran next), a
# caught failure's catch, the succeed or fail that ended the execution.


@dataclass
class _Ran:
    """A task (activity, local activity or mock) or a child workflow the history records."""

    key: str
    """The activity id, or the child workflow's id."""
    first_event: int
    last_event: int
    status: str = "SCHEDULED"
    attempts: int = 0
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    """type, message, status_code, attempts: as the interpreter binds `$error`."""
    last_error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    worker: str | None = None
    claimed: bool = False


@dataclass
class _Timer:
    step_id: str
    first_event: int
    last_event: int
    status: str = "RUNNING"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    claimed: bool = False


@dataclass
class _Seen:
    tasks: dict[str, _Ran] = field(default_factory=dict)
    children: dict[str, _Ran] = field(default_factory=dict)
    timers: list[_Timer] = field(default_factory=list)
    patches: set[str] = field(default_factory=set)
    """The ids of the `workflow.patched` markers the run recorded."""


_PATCH_MARKER = "core_patch"
"""The SDK's marker of a `workflow.patched` call; its `patch-data` detail is
`{"id": <patch id>, "deprecated": <bool>}`."""


async def _patch_id(event: HistoryEvent, converter: DataConverter) -> str | None:
    """The patch a MARKER_RECORDED event records, or None for any other marker."""
    attributes = event.marker_recorded_event_attributes
    if attributes.marker_name != _PATCH_MARKER:
        return None
    data = attributes.details.get("patch-data")
    decoded = await _first(data.payloads, converter) if data is not None else None
    patch = decoded.get("id") if isinstance(decoded, dict) else None
    return patch if isinstance(patch, str) else None


_WAIT_SUMMARY = re.compile(r"^wait '(?P<id>.+)'$")

_CHILD_CLOSED = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "COMPLETED",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "FAILED",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "CANCELED",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "FAILED",
}


async def _first(payloads: Sequence[Any], converter: DataConverter) -> Any:
    if not payloads:
        return None
    try:
        return (await converter.decode(list(payloads)[:1]))[0]
    except Exception:  # noqa: BLE001 - a record answers whatever it cannot decode as absent
        return None


async def _output(payloads: Sequence[Any], converter: DataConverter) -> Any:
    """A step activity's output: its result, without what StepCall.report adds."""
    return unwrap(await _first(payloads, converter)).output


async def _call_input(
    scheduled: ActivityTaskScheduledEventAttributes, converter: DataConverter
) -> Any:
    """What a task sent, from its scheduled activity's argument: the `input` of its
    StepCall (of a chain's step or a flow's task); of `si:start`'s StartCall, the
    workflow input. None when it has none."""
    call = await _first(scheduled.input.payloads, converter)
    return call.get("input") if isinstance(call, dict) else None


async def _error_of(failure: Failure, converter: DataConverter) -> dict[str, Any]:
    """The `$error` a failed attempt binds (workflows/tasks.py `cause_of`, then
    workflows/interpreter.py `error_binding`), without its step_id."""
    decoded = await converter.decode_failure(failure)
    status_code = attempts = None
    if isinstance(decoded, ApplicationError):
        error_type, message = decoded.type or "ApplicationError", decoded.message
        details = decoded.details[0] if decoded.details else None
        if isinstance(details, dict):
            status_code, attempts = details.get("status_code"), details.get("attempt")
    elif isinstance(decoded, TimeoutError):
        kind = decoded.type.name if decoded.type else "timeout"
        error_type, message = "Timeout", f"{kind}: {decoded.message}"
    else:
        error_type, message = type(decoded).__name__, str(decoded)
    return {
        "type": error_type,
        "message": message,
        "status_code": status_code,
        "attempts": attempts,
    }


async def _child_error_of(failure: Failure, converter: DataConverter) -> dict[str, Any]:
    """A failed child workflow's `$error` (workflows/interpreter.py `child`)."""
    cause = await converter.decode_failure(failure)
    error_type = (cause.type if isinstance(cause, ApplicationError) else None) or type(
        cause
    ).__name__
    return {"type": error_type, "message": str(cause), "status_code": None, "attempts": None}


async def _observe(events: Sequence[HistoryEvent], converter: DataConverter) -> _Seen:
    """What a flow's history records of its steps: tasks by activity id, child workflows
    by workflow id, timers (of wait steps) in the order they started."""
    seen = _Seen()
    activities: dict[int, _Ran] = {}
    children: dict[int, _Ran] = {}
    timers: dict[int, _Timer] = {}
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name in (LOAD_DEFINITION_ACTIVITY, START_ACTIVITY):
                continue  # a flow's entry step never runs inside si:start
            ran = _Ran(
                key=scheduled.activity_id,
                first_event=event.event_id,
                last_event=event.event_id,
                input=await _call_input(scheduled, converter),
            )
            activities[event.event_id] = ran
            seen.tasks.setdefault(ran.key, ran)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            ran_or_none = activities.get(started.scheduled_event_id)
            if ran_or_none is not None:
                ran_or_none.status = "RUNNING"
                ran_or_none.attempts = started.attempt
                ran_or_none.worker = started.identity or None
                ran_or_none.started_at = _time(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
            requested = event.activity_task_cancel_requested_event_attributes
            ran_or_none = activities.get(requested.scheduled_event_id)
            if ran_or_none is not None:
                ran_or_none.status = "CANCELED"
                ran_or_none.last_event = event.event_id
        elif kind in _ACTIVITY_CLOSING_EVENTS:
            name, closed_status = _ACTIVITY_CLOSING_EVENTS[kind]
            attributes = getattr(event, name)
            ran_or_none = activities.get(attributes.scheduled_event_id)
            if ran_or_none is None:
                continue
            ran_or_none.status = closed_status
            ran_or_none.last_event = event.event_id
            ran_or_none.completed_at = _time(event)
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                ran_or_none.output = await _output(attributes.result.payloads, converter)
            elif closed_status != "CANCELED" and attributes.HasField("failure"):
                failure = attributes.failure
                cause = failure.cause if failure.HasField("cause") else None
                ran_or_none.last_error = failure.message or (cause.message if cause else None)
                # An activity's timeout wraps the last attempt's failure as its cause.
                ran_or_none.error = await _error_of(
                    cause if cause is not None and not failure.message else failure, converter
                )
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            patch = await _patch_id(event, converter)
            if patch is not None:
                seen.patches.add(patch)
                continue
            marker = await local_activity_marker(event, converter)
            if marker is None or marker.activity_type == LOAD_DEFINITION_ACTIVITY:
                continue
            ran = _Ran(
                key=marker.activity_id,
                first_event=event.event_id,
                last_event=event.event_id,
                status="FAILED" if marker.failure is not None else "COMPLETED",
                attempts=marker.attempt,
                completed_at=_time(event),
                output=await _output(marker.result or [], converter),
            )
            if marker.failure is not None:
                ran.last_error = marker.failure.message
                ran.error = await _error_of(marker.failure, converter)
            seen.tasks.setdefault(ran.key, ran)
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            initiated = event.start_child_workflow_execution_initiated_event_attributes
            payloads = list(initiated.input.payloads)
            body = await _first(payloads, converter)
            if len(payloads) > 1 and body == {}:
                # A map batch: its items are in the options' bindings.
                options = await _first(payloads[1:], converter)
                bindings = options.get("bindings") if isinstance(options, dict) else None
                if isinstance(bindings, dict) and "batch" in bindings:
                    body = bindings["batch"]
            ran = _Ran(
                key=initiated.workflow_id,
                first_event=event.event_id,
                last_event=event.event_id,
                input=body,
            )
            children[event.event_id] = ran
            seen.children.setdefault(ran.key, ran)
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
            start_failed = event.start_child_workflow_execution_failed_event_attributes
            ran_or_none = children.get(start_failed.initiated_event_id)
            if ran_or_none is not None:
                ran_or_none.status = "FAILED"
                ran_or_none.last_event = event.event_id
                ran_or_none.completed_at = _time(event)
                ran_or_none.error = {
                    "type": "ChildWorkflowStartFailed",
                    "message": f"the child workflow did not start: {start_failed.cause}",
                    "status_code": None,
                    "attempts": None,
                }
                ran_or_none.last_error = ran_or_none.error["message"]
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            child_started = event.child_workflow_execution_started_event_attributes
            ran_or_none = children.get(child_started.initiated_event_id)
            if ran_or_none is not None:
                ran_or_none.status = "RUNNING"
                ran_or_none.attempts = 1
                ran_or_none.started_at = _time(event)
        elif kind in _CHILD_CLOSED:
            name = EventType.Name(kind).removeprefix("EVENT_TYPE_").lower() + "_event_attributes"
            attributes = getattr(event, name)
            ran_or_none = children.get(attributes.initiated_event_id)
            if ran_or_none is None:
                continue
            ran_or_none.status = _CHILD_CLOSED[kind]
            ran_or_none.last_event = event.event_id
            ran_or_none.completed_at = _time(event)
            if kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
                ran_or_none.output = await _first(attributes.result.payloads, converter)
            elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
                ran_or_none.error = await _child_error_of(attributes.failure, converter)
            else:
                what = _CHILD_CLOSED[kind] if ran_or_none.status != "FAILED" else "TERMINATED"
                ran_or_none.error = {
                    "type": what.title().replace("_", ""),
                    "message": f"the child workflow was {what.lower().replace('_', ' ')}",
                    "status_code": None,
                    "attempts": None,
                }
            if ran_or_none.error is not None:
                ran_or_none.last_error = ran_or_none.error["message"]
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            summary = None
            if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
                summary = await _first([event.user_metadata.summary], converter)
            match = _WAIT_SUMMARY.match(summary) if isinstance(summary, str) else None
            if match is None:
                continue
            timer = _Timer(
                step_id=match["id"],
                first_event=event.event_id,
                last_event=event.event_id,
                started_at=_time(event),
            )
            timers[event.event_id] = timer
            seen.timers.append(timer)
        elif kind in (EventType.EVENT_TYPE_TIMER_FIRED, EventType.EVENT_TYPE_TIMER_CANCELED):
            fired = kind == EventType.EVENT_TYPE_TIMER_FIRED
            started_event_id = (
                event.timer_fired_event_attributes.started_event_id
                if fired
                else event.timer_canceled_event_attributes.started_event_id
            )
            timer_or_none = timers.get(started_event_id)
            if timer_or_none is not None:
                timer_or_none.status = "COMPLETED" if fired else "CANCELED"
                timer_or_none.last_event = event.event_id
                timer_or_none.completed_at = _time(event)
    return seen


def catch_names(error: dict[str, Any]) -> set[str]:
    """The catch names a recorded failure matches (definitions/language.py)."""
    code = error.get("status_code")
    return language_catch_names(error.get("type"), code if isinstance(code, int) else None)


@dataclass(frozen=True)
class _Where:
    """Where a chain runs: the activity-id prefix of its map iterations, and the innermost
    map iteration and parallel branch around it."""

    prefix: str = ""
    iteration: int | None = None
    branch: int | None = None
    top: bool = False


@dataclass
class _Entry:
    state: StepState
    after: int
    """The event the step cannot have run before (the end of the step before it)."""
    anchor: int | None
    """Its first event; None for a step that left none (it runs where the next one does)."""


_DONE, _FAILED, _PENDING, _STOPPED = "DONE", "FAILED", "PENDING", "STOPPED"
"""How a chain ended: it finished; a step failed uncaught; its next step has not run yet
(the execution runs); it stopped (canceled, or the execution closed before it ended)."""
_ENDED = "ENDED"
"""A `succeed` in it (in a branch or an iteration) ended the whole execution."""

_FAILED_STATUSES = ("FAILED", "TIMED_OUT")

Outcome = tuple[str, str | None, int]
"""A step's outcome: _DONE..._STOPPED or "NEXT", the next step, the event it ended with."""


class _FlowWalk:
    """Follows a flow through what its history recorded, as workflows/interpreter.py ran
    it: the same activity ids (`_activity_id`), the same chains, the same catches."""

    def __init__(
        self,
        seen: _Seen,
        *,
        execution_id: str,
        closing: ExecutionStatus | None,
        closing_event: int | None,
        result: Any,
        error: ExecutionError | None,
        continued_at: str | None = None,
        first_index: int = 0,
    ) -> None:
        self.seen = seen
        self.continued_at = continued_at
        """The step the next run starts at, when this run continued as new."""
        self.first_index = first_index
        """The index of a map's first item: a map batch's first item's in its map."""
        self.succeed_ends = SUCCEED_ENDS_EXECUTION_PATCH in seen.patches
        """A `succeed` in a branch or an iteration ends the execution (workflows/
        interpreter.py asks the patch the first time one runs)."""
        self._unnamed_claimed = False
        self.execution_id = execution_id
        self.closing = closing
        self.closing_event = closing_event
        self.result = result
        self.error = error
        self.runs: dict[str, int] = {}
        """Task and workflow step runs per key, as the interpreter counts them."""
        self.visits: dict[str, int] = {}
        """Runs of the other steps, for their paths."""
        self.entries: list[_Entry] = []
        self.by_path: dict[str, StepState] = {}
        self._budget = 4 * (len(seen.tasks) + len(seen.children) + len(seen.timers)) + 1000

    @property
    def closed(self) -> bool:
        return self.closing is not None

    def run(self, flow: Flow, start: str) -> list[StepState]:
        self.chain(flow.steps, start, _Where(top=True), 0)
        return self._ordered()

    def _ordered(self) -> list[StepState]:
        """In the order they ran: by first event; a step that left none sits just before
        the next one that did (a choice before the step it chose, a summary before its
        first iteration's step)."""
        keys: list[tuple[int, int]] = []
        following: int | None = None
        for index in range(len(self.entries) - 1, -1, -1):
            entry = self.entries[index]
            if entry.anchor is not None:
                following = entry.anchor
                keys.append((entry.anchor, index))
            else:
                at = following if following is not None and following >= entry.after else None
                keys.append((at if at is not None else entry.after, index))
        keys.sort()
        return [self.entries[index].state for _, index in keys]

    # ------------------------------------------------------------------ bookkeeping

    def _add(self, state: StepState, after: int, anchor: int | None = None) -> StepState:
        self.entries.append(_Entry(state, after, anchor))
        if state.path is not None:
            self.by_path.setdefault(state.path, state)
        return state

    def _task_key(self, where: _Where, step_id: str, *, peek: bool = False) -> str:
        """workflows/interpreter.py `_activity_id`: `<prefix><id>`, `#n` from the 2nd run."""
        key = f"{where.prefix}{step_id}"
        count = self.runs.get(key, 0) + 1
        if not peek:
            self.runs[key] = count
        return key if count == 1 else f"{key}#{count}"

    def _path(self, where: _Where, step_id: str) -> str:
        key = f"{where.prefix}{step_id}"
        count = self.visits.get(key, 0) + 1
        self.visits[key] = count
        return key if count == 1 else f"{key}#{count}"

    def _state(self, step: Any, where: _Where, path: str, status: str, **fields: Any) -> StepState:
        return StepState(
            id=step.id,
            type=step.type,
            path=path,
            iteration=where.iteration,
            branch=where.branch,
            status=status,
            **fields,
        )

    def _from_run(self, step: Any, where: _Where, ran: _Ran, **fields: Any) -> StepState:
        status = ran.status
        if self.closed and status in ("SCHEDULED", "RUNNING"):
            status = "CANCELED"  # the execution closed while it ran
        ran.claimed = True
        return self._state(
            step,
            where,
            ran.key if "path" not in fields else fields.pop("path"),
            status,
            attempts=ran.attempts,
            started_at=ran.started_at,
            completed_at=ran.completed_at,
            last_error=ran.last_error,
            worker=ran.worker,
            input=bounded(ran.input),
            output=bounded(ran.output),
            error={**ran.error, "step_id": step.id} if ran.error is not None else None,
            **fields,
        )

    def _own_failure(self, step: Any, where: _Where) -> dict[str, Any] | None:
        """The execution's error as the step's own, when the step raised it (the
        interpreter names the step in the error's details: a fail step, a failed
        expression, an invalid wait, no matching choice); None when it did not. A map
        iteration's failures are its map's, never the execution's."""
        error = self.error
        if error is None or error.step_id != step.id or where.iteration is not None:
            return None
        return {"type": error.error_type, "message": error.message, "step_id": step.id}

    def _failure_at(self, step: Any, where: _Where) -> dict[str, Any] | None:
        """The step's own failure; or, for the first step outside map iterations that
        stopped without an event (a choice or a map, whose evaluation raised), a failure
        of the execution that names no step: a bug in workflow code the worker failed
        the execution with (its type and message, no details). The execution's error
        then names that step."""
        own = self._own_failure(step, where)
        error = self.error
        if (
            own is not None
            or error is None
            or error.step_id is not None
            or error.error_type == INVALID_START
            or self.closing != ExecutionStatus.FAILED
            or where.iteration is not None
            or self._unnamed_claimed
        ):
            return own
        self._unnamed_claimed = True
        error.step_id = step.id
        return {"type": error.error_type, "message": error.message, "step_id": step.id}

    # ------------------------------------------------------------------ chains

    def chain(self, steps: list[Any], start: str, where: _Where, after: int) -> tuple[str, int]:
        """Walks one chain from `start`; how it ended and the last event it ran to."""
        by_id = {step.id: step for step in steps}
        current: str | None = start
        while current is not None:
            self._budget -= 1
            step = by_id.get(current)
            if step is None or self._budget < 0:
                return _STOPPED, after
            outcome, current, after = self.step(step, by_id, where, after)
            if outcome != "NEXT":
                return outcome, after
        return _DONE, after

    def _unfinished(self) -> str:
        return _STOPPED if self.closed else _PENDING

    def step(self, step: Any, by_id: dict[str, Any], where: _Where, after: int) -> Outcome:
        if isinstance(step, TaskStep | WorkflowStep):
            return self.task(step, by_id, where, after)
        if isinstance(step, ChoiceStep):
            return self.choice(step, by_id, where, after)
        if isinstance(step, ParallelStep):
            return self.parallel(step, where, after)
        if isinstance(step, MapStep):
            return self.map(step, by_id, where, after)
        if isinstance(step, WaitStep):
            return self.wait(step, by_id, where, after)
        if isinstance(step, SucceedStep | FailStep):
            return self.end(step, where, after)
        return _STOPPED, None, after

    def task(
        self, step: TaskStep | WorkflowStep, by_id: dict[str, Any], where: _Where, after: int
    ) -> Outcome:
        key = self._task_key(where, step.id)
        if isinstance(step, TaskStep):
            ran = self.seen.tasks.get(key)
            fields: dict[str, Any] = {"service": step.service, "action": step.action}
        else:
            child_id = f"{self.execution_id}/{key}"
            ran = self.seen.children.get(child_id)
            fields = {"path": key, "child_execution_id": child_id}
            if ran is None and key in self.seen.tasks:
                # A test run's mock: a local activity answered it, no child started.
                ran, fields = self.seen.tasks[key], {}
        if ran is None:
            own = self._own_failure(step, where)
            if own is None:
                return self._input_stopped(step, by_id, where, key, after)
            # It failed before its call (its input expression, the workflow depth).
            called = (
                {"service": step.service, "action": step.action}
                if isinstance(step, TaskStep)
                else {}
            )
            failed = self._state(step, where, key, "FAILED", error=own, **called)
            self._add(failed, after, self.closing_event)
            return _FAILED, None, self.closing_event or after
        state = self._add(self._from_run(step, where, ran, **fields), after, ran.first_event)
        if state.status == "COMPLETED":
            return "NEXT", step.next, ran.last_event
        if state.status in _FAILED_STATUSES and state.error is not None:
            names = catch_names(state.error)
            for catch in step.catch:
                if any(name in names for name in catch.errors):
                    state.route = catch.next
                    return "NEXT", catch.next, ran.last_event
            if isinstance(step, TaskStep) and step.optional:
                state.output = bounded({"error": state.error})
                return "NEXT", step.next, ran.last_event
            return _FAILED, None, ran.last_event
        if state.status in _FAILED_STATUSES:
            return _FAILED, None, ran.last_event
        if state.status == "CANCELED":
            return _STOPPED, None, ran.last_event
        return self._unfinished(), None, ran.last_event

    def _input_stopped(
        self,
        step: TaskStep | WorkflowStep,
        by_id: dict[str, Any],
        where: _Where,
        key: str,
        after: int,
    ) -> Outcome:
        """A task that left no event and did not fail the execution: its `input`
        expression was stopped by a limit and a catch took it, when that catch's next
        step ran; else it has not run (yet)."""
        if isinstance(step, TaskStep) and step.input is not None:
            names = catch_names({"type": EXPRESSION_LIMIT})
            for catch in step.catch:
                if not any(name in names for name in catch.errors):
                    continue
                if self.ran(by_id, catch.next, where, set()):
                    error = {
                        "type": EXPRESSION_LIMIT,
                        "message": f"step '{step.id}': the input expression was stopped by a limit",
                        "step_id": step.id,
                    }
                    failed = self._state(
                        step,
                        where,
                        key,
                        "FAILED",
                        service=step.service,
                        action=step.action,
                        error=error,
                        route=catch.next,
                    )
                    self._add(failed, after)
                    return "NEXT", catch.next, after
                break  # the first catch that matches takes the failure
        return self._unfinished(), None, after

    def choice(self, step: ChoiceStep, by_id: dict[str, Any], where: _Where, after: int) -> Outcome:
        targets = [rule.next for rule in step.choices]
        if step.default is not None:
            targets.append(step.default)
        targets = list(dict.fromkeys(targets))
        route = next((t for t in targets if self.ran(by_id, t, where, set())), None)
        if route is None:
            route = self._terminal(by_id, targets, where)
        state = self._state(step, where, self._path(where, step.id), "COMPLETED", route=route)
        own = self._failure_at(step, where) if route is None else None
        if own is not None:  # no rule matched, or a rule's expression failed
            state.status, state.error = "FAILED", own
        self._add(state, after)
        if route is None:
            return (_FAILED if state.status == "FAILED" else self._unfinished()), None, after
        return "NEXT", route, after

    def _terminal(self, by_id: dict[str, Any], targets: list[str], where: _Where) -> str | None:
        """The route of a choice none of whose targets left an event: where the run
        continued as new, the step the execution failed at (a fail step, or a step that
        failed before it left an event), or a succeed or fail it chose, if exactly one
        fits how the execution ended."""
        if where.top and self.continued_at is not None:
            # The run continued as new at a choice's route: it runs in the next run.
            return self.continued_at if self.continued_at in targets else None
        error = self.error
        if (
            self.closing == ExecutionStatus.FAILED
            and error is not None
            and error.step_id in targets
            and where.iteration is None
        ):
            return error.step_id
        ends = [t for t in targets if isinstance(by_id.get(t), SucceedStep | FailStep)]
        if where.top:
            if self.closing == ExecutionStatus.COMPLETED:
                ends = [t for t in ends if isinstance(by_id[t], SucceedStep)]
            else:
                ends = []
        return ends[0] if len(ends) == 1 else None

    def ran(self, by_id: dict[str, Any], step_id: str, where: _Where, visited: set[str]) -> bool:
        """Whether the step, reached now, left an event (or a step after it did)."""
        if step_id in visited or step_id not in by_id:
            return False
        visited.add(step_id)
        step = by_id[step_id]
        if isinstance(step, TaskStep):
            return self._task_key(where, step.id, peek=True) in self.seen.tasks
        if isinstance(step, WorkflowStep):
            key = self._task_key(where, step.id, peek=True)
            return f"{self.execution_id}/{key}" in self.seen.children or key in self.seen.tasks
        if isinstance(step, WaitStep):
            if any(t.step_id == step.id and not t.claimed for t in self.seen.timers):
                return True
            return step.next is not None and self.ran(by_id, step.next, where, visited)
        if isinstance(step, ChoiceStep):
            targets = [rule.next for rule in step.choices] + [step.default or ""]
            return any(self.ran(by_id, t, where, visited) for t in targets if t)
        if isinstance(step, ParallelStep):
            return any(
                self.ran({s.id: s for s in b.steps}, entry_of(b), where, visited)
                for b in step.branches
            )
        if isinstance(step, MapStep):
            return bool(self._indices(where, step)) or bool(self._batches(step, peek=True))
        return False

    def wait(self, step: WaitStep, by_id: dict[str, Any], where: _Where, after: int) -> Outcome:
        timer = next((t for t in self.seen.timers if t.step_id == step.id and not t.claimed), None)
        if timer is None:
            # No timer: a wait of 0 s (or one not reached yet).
            went_on = step.next is not None and self.ran(by_id, step.next, where, set())
            own = None if went_on else self._own_failure(step, where)
            if own is not None:  # an invalid wait: its time, or its expression
                state = self._state(step, where, self._path(where, step.id), "FAILED", error=own)
                self._add(state, after, self.closing_event)
                return _FAILED, None, self.closing_event or after
            if not went_on and not (step.next is None and self.closed):
                return self._unfinished(), None, after
            self._add(self._state(step, where, self._path(where, step.id), "COMPLETED"), after)
            return "NEXT", step.next, after
        timer.claimed = True
        status = timer.status
        if status == "RUNNING" and self.closed:
            status = "CANCELED"
        state = self._state(
            step,
            where,
            self._path(where, step.id),
            status,
            started_at=timer.started_at,
            completed_at=timer.completed_at,
        )
        self._add(state, after, timer.first_event)
        if status == "COMPLETED":
            return "NEXT", step.next, timer.last_event
        if status == "CANCELED":
            return _STOPPED, None, timer.last_event
        return _PENDING, None, timer.last_event

    def end(self, step: SucceedStep | FailStep, where: _Where, after: int) -> Outcome:
        """A succeed or fail step: it ends its chain (at the top, the execution; a
        succeed in a branch or an iteration ends the execution too, since the patch)."""
        final = where.top and self.closing is not None
        ends_all = not where.top and self.succeed_ends
        own = self._own_failure(step, where)
        anchor = self.closing_event if final or own is not None else None
        state = self._state(
            step,
            where,
            self._path(where, step.id),
            "COMPLETED" if isinstance(step, SucceedStep) and own is None else "FAILED",
        )
        if isinstance(step, SucceedStep):
            if own is None:
                if (final or ends_all) and self.closing == ExecutionStatus.COMPLETED:
                    state.output = bounded(self._succeeded_output())
                self._add(state, after, anchor)
                return _ENDED if ends_all else _DONE, None, anchor or after
            state.error = own  # its output expression failed
        else:  # the message is known where it failed the execution
            state.error = own or {"type": step.error, "message": None, "step_id": step.id}
        self._add(state, after, anchor)
        return _FAILED, None, anchor or after

    def _succeeded_output(self) -> Any:
        """The value the execution's `succeed` ended it with: its result (a map batch's
        wrapped for its parent)."""
        result = self.result
        if isinstance(result, dict) and set(result) == {SUCCEEDED_KEY}:
            return result[SUCCEEDED_KEY]
        return result

    # ------------------------------------------------------------------ parallel and map

    def _summary(self, state: StepState, first: int, last: int) -> None:
        """A parallel's or map's times: from the first to the last of its steps."""
        inner = [e.state for e in self.entries[first:last]]
        starts = [s.started_at for s in inner if s.started_at is not None]
        ends = [s.completed_at for s in inner if s.completed_at is not None]
        state.started_at = min(starts) if starts else None
        if state.status not in ("RUNNING", "PENDING"):
            state.completed_at = max(ends) if ends else None

    def parallel(self, step: ParallelStep, where: _Where, after: int) -> Outcome:
        state = self._state(
            step, where, self._path(where, step.id), "RUNNING", count=len(step.branches)
        )
        self._add(state, after)
        first = len(self.entries)
        outcomes: list[str] = []
        end = after
        for index, branch in enumerate(step.branches):
            outcome, last = self.chain(
                branch.steps, entry_of(branch), replace(where, branch=index, top=False), after
            )
            outcomes.append(outcome)
            end = max(end, last)
        if _ENDED in outcomes:  # the others were withdrawn
            state.status, outcome = "COMPLETED", _ENDED
        elif _FAILED in outcomes:
            state.status, outcome = "FAILED", _FAILED
        elif all(o == _DONE for o in outcomes):
            state.status, outcome = "COMPLETED", "NEXT"
        elif self.closed:
            state.status, outcome = "CANCELED", _STOPPED
        else:
            state.status, outcome = "RUNNING", _PENDING
        self._summary(state, first, len(self.entries))
        return outcome, step.next if outcome == "NEXT" else None, end

    def _indices(self, where: _Where, step: MapStep) -> list[int]:
        """The iterations of a map run here that left an activity (or child workflow)."""
        prefix = f"{where.prefix}{step.id}["
        own = f"{self.execution_id}/"
        keys = [*self.seen.tasks, *(k.removeprefix(own) for k in self.seen.children)]
        found: set[int] = set()
        for key in keys:
            if key.startswith(prefix):
                number, bracket, _ = key[len(prefix) :].partition("].")
                if bracket and number.isdigit():
                    found.add(int(number))
        return sorted(found)

    def _batches(self, step: MapStep, *, peek: bool = False) -> list[_Ran]:
        """The next run's batches of a map over more than 500 items: child workflows
        `<execution>/<map>/batch-N` (`-r<steps run>` after the first step)."""
        pattern = re.compile(
            rf"^{re.escape(self.execution_id)}/{re.escape(step.id)}/batch-(\d+)(-r\d+)?$"
        )
        groups: dict[str, list[_Ran]] = {}
        for key, ran in self.seen.children.items():
            match = pattern.match(key)
            if match and not ran.claimed:
                groups.setdefault(match[2] or "", []).append(ran)
        if not groups:
            return []
        group = min(groups.values(), key=lambda runs: min(r.first_event for r in runs))
        group.sort(key=lambda r: int(pattern.match(r.key)[1]))  # type: ignore[index]
        if not peek:
            for ran in group:
                ran.claimed = True
        return group

    def map(self, step: MapStep, by_id: dict[str, Any], where: _Where, after: int) -> Outcome:
        state = self._state(step, where, self._path(where, step.id), "RUNNING")
        self._add(state, after)
        first = len(self.entries)
        batches = self._batches(step)
        went_on = step.next is not None and self.ran(by_id, step.next, where, set())
        if not batches and not self._indices(where, step) and not went_on:
            own = self._failure_at(step, where)
            if own is not None:  # its items failed to evaluate, or were too many
                state.status, state.error, state.count = "FAILED", own, 0
                return _FAILED, None, after
        failures = pending = 0
        ended = False
        end = after
        if batches:
            count = 0
            for ran in batches:
                batch = self._from_run(
                    step,
                    where,
                    ran,
                    path=ran.key.removeprefix(f"{self.execution_id}/"),
                    child_execution_id=ran.key,
                )
                batch.type = "workflow"
                self._add(batch, after, ran.first_event)
                end = max(end, ran.last_event)
                if batch.status in ("SCHEDULED", "RUNNING"):
                    pending += 1
                elif batch.status != "COMPLETED":
                    failures += 1
                    state.error = batch.error
                elif isinstance(ran.output, dict) and SUCCEEDED_KEY in ran.output:
                    ended = True  # a `succeed` in the batch ended the execution
                elif isinstance(ran.output, list):
                    failures += sum(
                        1 for r in ran.output if isinstance(r, dict) and set(r) == {"error"}
                    )
                # The items of the batches that started (a batch's are its input).
                count += len(ran.input if isinstance(ran.input, list) else ran.output or [])
        else:
            indices = self._indices(where, step)
            for index in indices:
                outcome, last = self.chain(
                    step.steps, entry_of(step), self._iteration(step, where, index), after
                )
                end = max(end, last)
                failures += outcome == _FAILED
                pending += outcome in (_PENDING, _STOPPED)
                ended = ended or outcome == _ENDED
            if not ended and self._ended_within(step, by_id, where):
                # The iteration that ended it left no event: the one after the last that
                # did (iterations start in order; the first to reach a `succeed` without
                # a command ends the map before the next one starts).
                index = max(indices) + 1 if indices else self.first_index
                ended = self._ended_in(step, where, index, end)
                indices = [*indices, index] if ended else indices
            count = len(indices)
        state.count = count
        if ended:  # the rest were withdrawn, or never started
            state.status, outcome = "COMPLETED", _ENDED
        elif failures > tolerated_failures(step, count):
            state.status, outcome = "FAILED", _FAILED
        elif pending and self.closed:
            state.status, outcome = "CANCELED", _STOPPED
        elif pending:
            state.status, outcome = "RUNNING", _PENDING
        else:
            state.status, outcome = "COMPLETED", "NEXT"
        self._summary(state, first, len(self.entries))
        return outcome, step.next if outcome == "NEXT" else None, end

    def _iteration(self, step: MapStep, where: _Where, index: int) -> _Where:
        return _Where(
            prefix=f"{where.prefix}{step.id}[{index}].", iteration=index, branch=where.branch
        )

    def _ended_within(self, step: MapStep, by_id: dict[str, Any], where: _Where) -> bool:
        """Whether a `succeed` in one of the map's iterations ended the execution, as far
        as the history tells: the execution completed (since the patch), the map holds a
        succeed, and the step after the map did not run (in a map batch's own history:
        its result says so)."""
        if not (self.succeed_ends and self.closing == ExecutionStatus.COMPLETED):
            return False
        if not any(isinstance(s, SucceedStep) for s in iter_steps(step.steps)):
            return False
        if isinstance(self.result, dict) and set(self.result) == {SUCCEEDED_KEY}:
            return True
        return step.next is not None and not self.ran(by_id, step.next, where, set())

    def _ended_in(self, step: MapStep, where: _Where, index: int, after: int) -> bool:
        """Walks iteration `index`, which left no event, and keeps its steps when it
        reached a `succeed` that ended the execution."""
        entries, visits, runs = len(self.entries), dict(self.visits), dict(self.runs)
        outcome, _ = self.chain(
            step.steps, entry_of(step), self._iteration(step, where, index), after
        )
        if outcome == _ENDED:
            return True
        for entry in self.entries[entries:]:
            if entry.state.path is not None and self.by_path.get(entry.state.path) is entry.state:
                del self.by_path[entry.state.path]
        del self.entries[entries:]
        self.visits, self.runs = visits, runs
        return False
