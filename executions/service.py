"""ExecutionService: starts executions on Temporal and reads them back from it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from definitions.contract import (
    ACTION_EXECUTION_PREFIX,
    CONTRACT_VERSION,
    WORKFLOW_ID_KEY,
    WORKFLOW_VERSION_KEY,
    ExecutionMemo,
)
from definitions.models import ExecutionOptions, PinnedDefinition
from executions.errors import TemporalUnavailableError
from executions.history import build_record, is_closed, status_from_temporal
from executions.models import (
    ExecuteRequest,
    ExecutionPublic,
    ExecutionsPage,
    ExecutionStatus,
    ExecutionSummary,
)
from registry.errors import NotFoundError

_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])

_VISIBILITY_STATUS = {
    ExecutionStatus.RUNNING: "Running",
    ExecutionStatus.COMPLETED: "Completed",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELED: "Canceled",
    ExecutionStatus.TERMINATED: "Terminated",
    ExecutionStatus.TIMED_OUT: "TimedOut",
}

_FAILED_TO_CONNECT = "Failed client connect"
"""How the SDK's lazy client says it could not connect: a bare RuntimeError with this
message is all it raises (temporalio 1.x), so it is recognised here and nowhere else."""


def _temporal_call(method: _Method) -> _Method:
    """Translate the lazy client's failure to connect into TemporalUnavailableError.

    Any other RuntimeError is a bug or an unexpected answer and goes on as it is.
    """

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except RuntimeError as exc:
            if str(exc).startswith(_FAILED_TO_CONNECT):
                raise TemporalUnavailableError(str(exc)) from exc
            raise

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
            description = None if is_closed(history.events) else await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFoundError("execution", execution_id) from exc
            raise
        return await build_record(
            execution_id, history.events, description, converter=self._client.data_converter
        )

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
                memo = ExecutionMemo.model_validate(await execution.memo())
                items.append(
                    ExecutionSummary(
                        execution_id=execution.id,
                        run_id=execution.run_id,
                        workflow_id=memo.workflow_id or workflow_id,
                        workflow_name=memo.workflow_name or execution.workflow_type,
                        workflow_version=execution.typed_search_attributes.get(
                            WORKFLOW_VERSION_KEY
                        ),
                        status=status_from_temporal(execution.status),
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
