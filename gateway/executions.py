"""Executions live in Temporal: this module starts them and reads their records back.

Nothing about an execution is stored by the gateway. Status, input, result, error and
per-step state are read from the workflow's description and event history, so any
gateway answers for any execution, and a restarted gateway has lost nothing.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC as _UTC
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar, cast

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from definitions.contract import (
    ACTION_EXECUTION_PREFIX,
    CONTRACT_VERSION,
    LOAD_DEFINITION_ACTIVITY,
    STEP_FAILED,
    WORKFLOW_ID_KEY,
    WORKFLOW_VERSION_KEY,
    ExecutionMemo,
    StepFailure,
)
from definitions.json_values import unstorable
from definitions.models import (
    ExecutionOptions,
    PinnedDefinition,
)
from gateway.errors import TemporalUnavailableError
from registry.errors import NotFoundError

_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"


_FROM_TEMPORAL = {
    WorkflowExecutionStatus.RUNNING: ExecutionStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED: ExecutionStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: ExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: ExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED: ExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: ExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: ExecutionStatus.COMPLETED,
}
_VISIBILITY_STATUS = {
    ExecutionStatus.RUNNING: "Running",
    ExecutionStatus.COMPLETED: "Completed",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELED: "Canceled",
    ExecutionStatus.TERMINATED: "Terminated",
    ExecutionStatus.TIMED_OUT: "TimedOut",
}


class ExecuteRequest(BaseModel):
    input_data: dict[str, Any] = Field(default_factory=dict, description="the workflow input")
    context: dict[str, Any] = Field(
        default_factory=dict, description="tracing context, e.g. project_id and request_id"
    )

    @field_validator("input_data", "context")
    @classmethod
    def _answerable(cls, value: dict[str, Any]) -> dict[str, Any]:
        """422 for values the execution record could not be answered with (no NaN, no lone
        surrogate); NUL characters pass, the registry database never holds them."""
        problem = unstorable(value, nul=False)
        if problem:
            raise PydanticCustomError("unstorable_value", problem)
        return value


class StepState(BaseModel):
    id: str
    service: str
    action: str
    status: str = Field(
        description="PENDING, RUNNING, RETRYING, COMPLETED, FAILED, TIMED_OUT, CANCELED"
    )
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_error: str | None = None
    worker: str | None = Field(default=None, description="identity of the worker that ran it")


class ExecutionError(BaseModel):
    step_id: str | None = None
    service: str | None = None
    action: str | None = None
    error_type: str
    message: str
    attempts: int | None = None


class ExecutionPublic(BaseModel):
    execution_id: str
    run_id: str
    kind: str = Field(description="'workflow' or 'action'")
    workflow_id: str | None = None
    workflow_name: str
    workflow_version: int | None = None
    status: ExecutionStatus
    input: dict[str, Any] | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: ExecutionError | None = None
    started_at: datetime
    closed_at: datetime | None = None
    steps: list[StepState] = Field(default_factory=list)


class ExecutionSummary(BaseModel):
    execution_id: str
    run_id: str
    workflow_id: str | None = None
    workflow_name: str
    workflow_version: int | None = None
    status: ExecutionStatus
    started_at: datetime
    closed_at: datetime | None = None


class ExecutionsPage(BaseModel):
    items: list[ExecutionSummary]
    total: int
    page: int
    per_page: int
    pages: int


class ExecutionStarted(BaseModel):
    execution_id: str
    run_id: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    status_url: str


def execution_id_for(scope: str, idempotency_key: str | None) -> str:
    """A new execution id, or the one an idempotency key always maps to.

    The same key for the same workflow gives the same Temporal workflow id, so a
    retried start finds the first execution instead of starting a second one.
    """
    if idempotency_key:
        digest = hashlib.sha256(f"{scope}\0{idempotency_key}".encode()).hexdigest()[:32]
        return f"exec-{digest}"
    return f"exec-{uuid.uuid4().hex}"


def _status(value: WorkflowExecutionStatus | None) -> ExecutionStatus:
    return _FROM_TEMPORAL.get(value, ExecutionStatus.RUNNING) if value else ExecutionStatus.RUNNING


def _temporal_call(method: _Method) -> _Method:
    """Translate the lazy client's failure to connect (a RuntimeError) into a 503."""

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except RuntimeError as exc:
            raise TemporalUnavailableError(str(exc)) from exc

    return cast(_Method, call)


class ExecutionService:
    """Starts executions on the task queue and reads them back from Temporal."""

    def __init__(self, client: Client, *, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @property
    def client(self) -> Client:
        return self._client

    @_temporal_call
    async def start(
        self,
        definition: PinnedDefinition,
        request: ExecuteRequest,
        *,
        execution_id: str,
    ) -> WorkflowHandle[Any, Any]:
        """Start an execution of a pinned definition; an existing id is reused, not restarted."""
        workflow_type = (
            definition.name
            if definition.kind == "workflow"
            else f"{ACTION_EXECUTION_PREFIX}{definition.name}"
        )
        attributes: list[SearchAttributePair[Any]] = []
        if definition.workflow_id is not None and definition.version is not None:
            attributes = [
                SearchAttributePair(WORKFLOW_ID_KEY, definition.workflow_id),
                SearchAttributePair(WORKFLOW_VERSION_KEY, definition.version),
            ]
        try:
            return await self._client.start_workflow(
                workflow_type,
                args=[
                    request.input_data,
                    ExecutionOptions(
                        contract=CONTRACT_VERSION, definition=definition, context=request.context
                    ),
                ],
                id=execution_id,
                task_queue=self._task_queue,
                memo=ExecutionMemo(
                    kind=definition.kind,
                    workflow_id=definition.workflow_id,
                    workflow_name=definition.name,
                    version=definition.version,
                ).to_memo(),
                search_attributes=TypedSearchAttributes(attributes),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # Taken only when this process runs a worker (GATEWAY_EMBEDDED_WORKER).
                request_eager_start=definition.low_latency,
            )
        except WorkflowAlreadyStartedError:
            # The key was used before and that execution has closed: answer with it.
            return self._client.get_workflow_handle(execution_id)

    @_temporal_call
    async def wait(self, handle: WorkflowHandle[Any, Any], timeout: float) -> bool:
        """Wait up to `timeout` seconds for the execution to close; True if it did."""
        try:
            await asyncio.wait_for(handle.result(follow_runs=False), timeout=timeout)
        except WorkflowFailureError:
            return True  # failed, canceled, terminated or timed out: closed all the same
        except TimeoutError:
            return False
        return True

    async def wait_for(self, execution_id: str, timeout: float) -> bool:
        """`wait` for an execution known by id; an unknown id is left to `get` to report."""
        try:
            return await self.wait(self._client.get_workflow_handle(execution_id), timeout)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise

    @_temporal_call
    async def get(self, execution_id: str) -> ExecutionPublic:
        """The execution record, read from Temporal.

        Raises:
            NotFoundError: no execution has that id.
        """
        handle = self._client.get_workflow_handle(execution_id)
        try:
            history = await handle.fetch_history()
            # A closed execution is told whole by its history; a running one also needs
            # its description, for the attempts and errors of activities in flight.
            closed = history.events and history.events[-1].event_type in _CLOSED_EVENTS
            description = None if closed else await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFoundError("execution", execution_id) from exc
            raise
        return await _Record(self._client, execution_id, history, description).build()

    @_temporal_call
    async def list(
        self,
        *,
        workflow_id: str,
        status: ExecutionStatus | None,
        page: int,
        per_page: int,
    ) -> ExecutionsPage:
        """A page of a workflow's executions, newest first, from Temporal visibility."""
        query = f'{WORKFLOW_ID_KEY.name} = "{workflow_id}"'
        if status is not None:
            query += f' AND ExecutionStatus = "{_VISIBILITY_STATUS[status]}"'
        total = (await self._client.count_workflows(query)).count
        skip = (page - 1) * per_page
        items: list[ExecutionSummary] = []
        index = 0
        async for execution in self._client.list_workflows(query, page_size=min(per_page, 1000)):
            if index >= skip:
                memo = await execution.memo()
                items.append(
                    ExecutionSummary(
                        execution_id=execution.id,
                        run_id=execution.run_id,
                        workflow_id=memo.get("workflow_id") or workflow_id,
                        workflow_name=memo.get("workflow_name") or execution.workflow_type,
                        workflow_version=execution.typed_search_attributes.get(
                            WORKFLOW_VERSION_KEY
                        ),
                        status=_status(execution.status),
                        started_at=execution.start_time,
                        closed_at=execution.close_time,
                    )
                )
                if len(items) >= per_page:
                    break
            index += 1
        return ExecutionsPage(
            items=items,
            total=total,
            page=page,
            per_page=per_page,
            pages=(total + per_page - 1) // per_page,
        )


class _Record:
    """Builds an ExecutionPublic from a history, and a description while it runs."""

    def __init__(
        self, client: Client, execution_id: str, history: Any, description: Any | None
    ) -> None:
        self._converter = client.data_converter
        self._execution_id = execution_id
        self._description = description
        self._events = list(history.events)

    async def build(self) -> ExecutionPublic:
        first, last = self._events[0], self._events[-1]
        started = first.workflow_execution_started_event_attributes
        closing = _CLOSED_EVENTS.get(last.event_type)
        status = closing or (
            _status(self._description.status) if self._description else ExecutionStatus.RUNNING
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

    async def _start_arguments(self) -> tuple[dict[str, Any] | None, ExecutionOptions]:
        started = self._events[0].workflow_execution_started_event_attributes
        payloads = list(started.input.payloads)
        input_data = None
        options = ExecutionOptions()
        if payloads:
            input_data = (await self._converter.decode(payloads[:1], [dict]))[0]
        if len(payloads) > 1:
            options = (await self._converter.decode(payloads[1:2], [ExecutionOptions]))[0]
        return input_data, options

    async def _loaded_definition(self) -> PinnedDefinition | None:
        """The definition an SDK-started execution loaded: a local activity's marker (or,
        in histories written before that, an activity's result)."""
        scheduled: set[int] = set()
        for event in self._events:
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                data, details = await self._local_activity_data(event)
                result = details.get("result") if data else None
                if data.get("activity_type") == LOAD_DEFINITION_ACTIVITY and result is not None:
                    payloads = list(result.payloads)
                    return (await self._converter.decode(payloads, [PinnedDefinition]))[0]
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == LOAD_DEFINITION_ACTIVITY:
                    scheduled.add(event.event_id)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attributes = event.activity_task_completed_event_attributes
                if attributes.scheduled_event_id in scheduled:
                    return (
                        await self._converter.decode(
                            list(attributes.result.payloads), [PinnedDefinition]
                        )
                    )[0]
        return None

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
                attributes = event.activity_task_scheduled_event_attributes
                state = states.get(attributes.activity_id)
                if state is not None and attributes.activity_type.name != LOAD_DEFINITION_ACTIVITY:
                    state.status = "SCHEDULED"
                    by_scheduled[event.event_id] = state
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                state = by_scheduled.get(attributes.scheduled_event_id)
                if state is not None:
                    state.status = "RUNNING"
                    state.attempts = attributes.attempt
                    state.worker = attributes.identity or None
                    state.started_at = _time(event)
            elif kind in _CLOSING_EVENTS:
                attributes = getattr(event, _CLOSING_EVENTS[kind][0])
                state = by_scheduled.get(attributes.scheduled_event_id)
                if state is not None:
                    state.status = _CLOSING_EVENTS[kind][1]
                    state.completed_at = _time(event)
                    failure = getattr(attributes, "failure", None)
                    if failure is not None and attributes.HasField("failure"):
                        cause = failure.cause if failure.HasField("cause") else None
                        state.last_error = failure.message or (cause.message if cause else None)
            elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
                await self._local_activity(event, states)
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
                state.started_at = pending.last_started_time.ToDatetime().replace(tzinfo=_UTC)
            if pending.HasField("last_failure"):
                state.last_error = pending.last_failure.message
            state.status = (
                "RUNNING"
                if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                else ("RETRYING" if pending.attempt > 1 else "SCHEDULED")
            )
        return [states[i] for i in order]

    async def _local_activity_data(self, event: Any) -> tuple[dict[str, Any], Any]:
        """The `data` of a local activity's marker (id, type, attempt), and its details."""
        attributes = event.marker_recorded_event_attributes
        if attributes.marker_name != "core_local_activity":
            return {}, {}
        data_payloads = attributes.details.get("data")
        if data_payloads is None or not data_payloads.payloads:
            return {}, attributes.details
        data = (await self._converter.decode(list(data_payloads.payloads)[:1], [dict]))[0]
        return data, attributes.details

    async def _local_activity(self, event: Any, states: dict[str, StepState]) -> None:
        """Local activities leave a marker, not activity events; read the step from it."""
        attributes = event.marker_recorded_event_attributes
        data, _ = await self._local_activity_data(event)
        if data.get("activity_type") == LOAD_DEFINITION_ACTIVITY:
            return
        state = states.get(str(data.get("activity_id", "")))
        if state is None:
            return
        state.attempts = int(data.get("attempt") or 1)
        state.status = "FAILED" if attributes.HasField("failure") else "COMPLETED"
        state.completed_at = _time(event)
        if attributes.HasField("failure"):
            state.last_error = attributes.failure.message


_CLOSED_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: ExecutionStatus.COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: ExecutionStatus.FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: ExecutionStatus.CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: ExecutionStatus.TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: ExecutionStatus.TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: ExecutionStatus.COMPLETED,
}


def _time(event: Any) -> datetime:
    return event.event_time.ToDatetime().replace(tzinfo=_UTC)


_CLOSING_EVENTS = {
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

__all__ = [
    "ExecuteRequest",
    "ExecutionPublic",
    "ExecutionService",
    "ExecutionStarted",
    "ExecutionStatus",
    "ExecutionsPage",
    "execution_id_for",
]
