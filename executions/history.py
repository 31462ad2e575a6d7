"""Builds an execution's record from its Temporal event history (and, while it runs,
its description).

A closed execution is told whole by its history: the start event holds the input and
the options (pinned definition, context), activity events and local-activity markers
hold each step's attempts and errors, and the closing event holds the result or the
failure. A running execution also needs its description, for the attempts and errors
of activities in flight, which the history only records once they end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from definitions.contract import (
    LOAD_DEFINITION_ACTIVITY,
    STEP_FAILED,
    WORKFLOW_ID_KEY,
    StepFailure,
)
from definitions.models import ExecutionOptions, PinnedDefinition
from executions.models import ExecutionError, ExecutionPublic, ExecutionStatus, StepState

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


_MEMO_KIND = "kind"
"""The ExecutionMemo field every execution of this service carries (definitions.contract)."""


def started_by_this_service(events: Sequence[HistoryEvent], *, task_queue: str) -> bool:
    """Whether the history is of an execution of this service, not another workflow of the
    namespace.

    Ours: started on this service's task queue, and marked as a stored-workflow or
    one-action execution, by the gateway at start (ExecutionMemo; SiWorkflowId) or, for
    a stored workflow started by name with an SDK, by the workflow once it loaded its
    definition (SiWorkflowId and the memo, upserted). Reads keys only, decodes nothing.
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
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
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
    tests in tests/unit/test_history.py, which read recorded histories, say so.
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

    Args:
        execution_id: the Temporal workflow id.
        events: the execution's history events, from its start event on.
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
        definition = options.definition or await self._loaded_definition()
        result, error = await self._outcome(status)
        steps = await self._steps(definition)
        if error is not None and error.step_id is not None:
            failed = next((s for s in steps if s.id == error.step_id), None)
            if failed is not None and failed.attempts:
                error.attempts = failed.attempts
        return ExecutionPublic(
            execution_id=self._execution_id,
            run_id=self._description.run_id
            if self._description
            else started.original_execution_run_id,
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
        return input_data, options

    async def _loaded_definition(self) -> PinnedDefinition | None:
        """The definition an SDK-started execution loaded: a local activity's marker (or,
        in histories written before that, an activity's result)."""
        scheduled: set[int] = set()
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
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                completed = event.activity_task_completed_event_attributes
                if completed.scheduled_event_id in scheduled:
                    return await self._definition(list(completed.result.payloads))
        return None

    async def _definition(self, payloads: Sequence[Any]) -> PinnedDefinition:
        return (await self._converter.decode(list(payloads), [PinnedDefinition]))[0]

    async def _outcome(
        self, status: ExecutionStatus
    ) -> tuple[dict[str, Any] | None, ExecutionError | None]:
        last = self._events[-1]
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            payloads = list(last.workflow_execution_completed_event_attributes.result.payloads)
            result = (await self._converter.decode(payloads, [dict]))[0] if payloads else None
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
            # InvalidStart, a NondeterminismError the worker failed the execution with,
            # or any other failure: its type and message, as the workflow raised them.
            error_type = (
                failure.type
                if isinstance(failure, ApplicationError) and failure.type
                else type(failure).__name__
            )
            return None, ExecutionError(error_type=error_type, message=str(failure))
        if status in (
            ExecutionStatus.TIMED_OUT,
            ExecutionStatus.TERMINATED,
            ExecutionStatus.CANCELED,
        ):
            return None, ExecutionError(
                error_type=status.value, message=f"the execution was {status.value.lower()}"
            )
        return None, None

    async def _steps(self, definition: PinnedDefinition | None) -> list[StepState]:
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
        by_scheduled: dict[int, StepState] = {}
        for event in self._events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled = event.activity_task_scheduled_event_attributes
                state = states.get(scheduled.activity_id)
                if state is not None and scheduled.activity_type.name != LOAD_DEFINITION_ACTIVITY:
                    state.status = "SCHEDULED"
                    by_scheduled[event.event_id] = state
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                state = by_scheduled.get(started.scheduled_event_id)
                if state is not None:
                    state.status = "RUNNING"
                    state.attempts = started.attempt
                    state.worker = started.identity or None
                    state.started_at = _time(event)
            elif kind in _ACTIVITY_CLOSING_EVENTS:
                field, closed_status = _ACTIVITY_CLOSING_EVENTS[kind]
                attributes = getattr(event, field)
                state = by_scheduled.get(attributes.scheduled_event_id)
                if state is not None:
                    state.status = closed_status
                    state.completed_at = _time(event)
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
                    # Local activities leave a marker, not activity events.
                    state.attempts = marker.attempt
                    state.status = "FAILED" if marker.failure is not None else "COMPLETED"
                    state.completed_at = _time(event)
                    if marker.failure is not None:
                        state.last_error = marker.failure.message
        self._apply_pending(states)
        return [states[i] for i in order]

    def _apply_pending(self, states: dict[str, StepState]) -> None:
        """Activities in flight: their attempts and last errors are only in the description."""
        pending_activities = (
            self._description.raw_description.pending_activities if self._description else []
        )
        for pending in pending_activities:
            state = states.get(pending.activity_id)
            if state is None:
                continue
            state.attempts = max(state.attempts, pending.attempt)
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
