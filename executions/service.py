"""ExecutionService: starts executions on Temporal and reads them back from it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import decode_typed_search_attributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.signing import definition_signatures, options_signature
from definitions.contract import (
    ACTION_EXECUTION_PREFIX,
    CONTRACT_VERSION,
    OUTCOME_UPDATE,
    TEST_RUN_KEY,
    WORKFLOW_ID_KEY,
    WORKFLOW_VERSION_KEY,
    ExecutionMemo,
)
from definitions.models import ExecutionOptions, PinnedDefinition, StepMock
from executions.errors import InvalidPageTokenError, TemporalUnavailableError
from executions.history import (
    build_record,
    continued_as,
    is_closed,
    run_id_of,
    started_by_this_service,
    status_from_temporal,
)
from executions.models import (
    ExecuteRequest,
    ExecutionPublic,
    ExecutionsPage,
    ExecutionStatus,
    ExecutionSummary,
)
from executions.record import answered_whole, record_from_outcome
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

MAX_LIST_OFFSET = 10_000
"""How deep `page=` may reach into a workflow's executions (page * per_page); past it,
pages are followed with `page_token`, which costs one visibility call per page."""

_VISIBILITY_PAGE = 1000
"""The most executions one visibility call returns."""

_MAX_REREADS = 3
"""How often a record is read again when the run it read closed while it was read (an
execution continuing as new every few milliseconds could otherwise be chased forever);
past it the record answers the run as last described."""

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


_PROCESS_TOKEN_KEY = secrets.token_bytes(32)
"""Signs page tokens without DEFINITION_SIGNING_KEY: valid on this gateway process only."""

_TAG_BYTES = 16


def page_token_key(signing_key: str) -> bytes:
    """The key page tokens are signed with: derived from DEFINITION_SIGNING_KEY, so every
    gateway accepts every other's tokens, or this process's own without it."""
    if not signing_key:
        return _PROCESS_TOKEN_KEY
    return hashlib.sha256(b"si-page-token\0" + signing_key.encode()).digest()


def _tag(key: bytes, query: str, token: bytes) -> bytes:
    return hmac.new(key, query.encode() + b"\0" + token, hashlib.sha256).digest()[:_TAG_BYTES]


def encode_page_token(key: bytes, query: str, token: bytes | None) -> str | None:
    """Temporal's page token as an opaque URL-safe string, signed and tied to its list.

    Signed, a token nobody was handed never reaches Temporal (which retries for seconds
    on a cursor it cannot read before it answers).
    """
    if not token:
        return None
    return base64.urlsafe_b64encode(_tag(key, query, token) + token).decode().rstrip("=")


def decode_page_token(key: bytes, query: str, token: str) -> bytes:
    """Temporal's page token inside a token from `encode_page_token` for this list.

    Raises:
        InvalidPageTokenError: it is not one.
    """
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidPageTokenError("page_token is not a token this service handed out") from exc
    tag, raw = decoded[:_TAG_BYTES], decoded[_TAG_BYTES:]
    if not raw or not hmac.compare_digest(tag, _tag(key, query, raw)):
        raise InvalidPageTokenError(
            "page_token is not a token this service handed out for this list (same workflow, "
            "status and include_tests)"
        )
    return raw


class ExecutionService:
    """Starts executions on the task queue and reads them back from Temporal.

    Only executions of this service are answered: started on its task queue as a stored
    workflow or a one-action execution. Any other workflow of the namespace is unknown
    here (NotFoundError), whoever started it.
    """

    def __init__(self, client: Client, *, task_queue: str, signing_key: str = "") -> None:
        self._client = client
        self._task_queue = task_queue
        self._signing_key = signing_key
        self._token_key = page_token_key(signing_key)

    @property
    def client(self) -> Client:
        return self._client

    def _start_arguments(
        self,
        definition: PinnedDefinition,
        request: ExecuteRequest,
        mocks: dict[str, StepMock] | None,
    ) -> tuple[str, list[Any], dict[str, Any]]:
        """The workflow type, arguments and start options of an execution."""
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
        if mocks is not None:
            attributes.append(SearchAttributePair(TEST_RUN_KEY, True))
        options = ExecutionOptions(
            contract=CONTRACT_VERSION,
            definition=definition,
            context=request.context,
            # Empty without DEFINITION_SIGNING_KEY, and then left out of the payload.
            signatures=definition_signatures(self._signing_key, definition),
            mocks=mocks or {},
        )
        if self._signing_key:
            # The whole definition, mocks included: the worker checks it before it runs
            # anything (workflows/integrity.py).
            options = options.model_copy(
                update={
                    "definition_signature": options_signature(
                        self._signing_key, options.model_dump(mode="json")
                    )
                }
            )
        start = {
            "task_queue": self._task_queue,
            "memo": ExecutionMemo(
                kind=definition.kind,
                workflow_id=definition.workflow_id,
                workflow_name=definition.name,
                version=definition.version,
            ).to_memo(),
            "search_attributes": TypedSearchAttributes(attributes),
            "id_conflict_policy": WorkflowIDConflictPolicy.USE_EXISTING,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        }
        return workflow_type, [request.input_data, options], start

    @_temporal_call
    async def start(
        self,
        definition: PinnedDefinition,
        request: ExecuteRequest,
        *,
        execution_id: str,
        mocks: dict[str, StepMock] | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Start an execution of a pinned definition; an existing id is reused, not restarted.

        Args:
            mocks: a test run (POST /workflows/{id}/test): what mocked steps answer. A
                test run, even of a definition with nothing to mock ({}), carries the
                TEST_RUN_KEY search attribute: lists leave it out unless asked.
        """
        workflow_type, args, start = self._start_arguments(definition, request, mocks)
        try:
            return await self._client.start_workflow(
                workflow_type,
                args=args,
                id=execution_id,
                # Taken only when this process runs a worker (GATEWAY_EMBEDDED_WORKER).
                request_eager_start=definition.low_latency,
                **start,
            )
        except WorkflowAlreadyStartedError:
            # The key was used before and that execution has closed: answer with it.
            return self._client.get_workflow_handle(execution_id)

    @_temporal_call
    async def run(
        self,
        definition: PinnedDefinition,
        request: ExecuteRequest,
        *,
        execution_id: str,
        timeout: float,
        mocks: dict[str, StepMock] | None = None,
    ) -> tuple[ExecutionPublic, bool]:
        """Start an execution and wait up to `timeout` seconds for it to close: its
        record, and whether it closed.

        Started with the si:outcome update (update-with-start): the workflow answers it
        with its journal once its steps are done, so a completed execution's record
        needs no read of its history (executions/record.py). Otherwise (it failed, a step
        retried, it continued as new, it is still running, the id was used before) the
        record is read as `get` reads it. A low-latency definition starts eagerly on
        this process's worker, which update-with-start cannot: it is started and waited
        for as before.
        """
        if definition.low_latency:
            handle = await self.start(definition, request, execution_id=execution_id, mocks=mocks)
            closed = await self.wait(handle, timeout)
            return await self.get(execution_id), closed
        workflow_type, args, start = self._start_arguments(definition, request, mocks)
        operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            workflow_type, args=args, id=execution_id, **start
        )
        waiting = asyncio.ensure_future(
            self._client.execute_update_with_start_workflow(
                OUTCOME_UPDATE, start_workflow_operation=operation, result_type=dict
            )
        )
        done, _ = await asyncio.wait({waiting}, timeout=timeout)
        if not done:
            # Still running. The update stays with the workflow, which answers it when
            # done; the plain start (the same id, USE_EXISTING) makes sure the execution
            # exists before it is read, whether or not the request it rode on got there.
            waiting.add_done_callback(_consumed)
            waiting.cancel()
            await self.start(definition, request, execution_id=execution_id, mocks=mocks)
            return await self.get(execution_id), False
        try:
            outcome = waiting.result()
        except (
            WorkflowUpdateFailedError,
            WorkflowUpdateRPCTimeoutOrCancelledError,
            RPCError,
            WorkflowAlreadyStartedError,
        ):
            # Closed before it answered (continued as new, terminated), or the id names an
            # execution that closed before: told by its history.
            closed = await self.wait_for(execution_id, timeout)
            return await self.get(execution_id), closed
        if not answered_whole(outcome):
            closed = await self.wait_for(execution_id, timeout)
            return await self.get(execution_id), closed
        record = record_from_outcome(
            outcome,
            execution_id=execution_id,
            definition=definition,
            input_data=request.input_data,
            context=request.context,
            test_run=mocks is not None,
        )
        return record, True

    @_temporal_call
    async def wait(self, handle: WorkflowHandle[Any, Any], timeout: float) -> bool:
        """Wait up to `timeout` seconds for the execution to close; True if it did.

        An execution that continues as new (a long loop) is followed from run to run to
        the run that closes it; one that closes in its first run costs the one long poll
        of its close event.
        """
        try:
            await asyncio.wait_for(handle.result(follow_runs=True), timeout=timeout)
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
            NotFoundError: no execution of this service has that id.
        """
        try:
            # No run id: the latest run, the one a reset or a continue-as-new made.
            events = await self._run_history(execution_id, None)
            if not started_by_this_service(events, task_queue=self._task_queue):
                raise NotFoundError("execution", execution_id)
            # A closed execution is told whole by its history; a running one also needs
            # its description, for the attempts and errors of activities in flight.
            description = None
            rereads = 0
            while not is_closed(events):
                run_id = run_id_of(events)
                description = await self._client.get_workflow_handle(
                    execution_id, run_id=run_id
                ).describe()
                if (
                    description.status in (None, WorkflowExecutionStatus.RUNNING)
                    or rereads == _MAX_REREADS
                ):
                    break
                # It closed between the two reads: its history now tells it whole (else
                # the record would say COMPLETED with no result yet), or where it went on.
                rereads += 1
                events = await self._run_history(execution_id, run_id)
                description = None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFoundError("execution", execution_id) from exc
            raise
        record = await build_record(
            execution_id, events, description, converter=self._client.data_converter
        )
        if _is_test_run(events):
            record.test_run = True
        return record

    async def _run_history(self, execution_id: str, run_id: str | None) -> Sequence[HistoryEvent]:
        """The history of a run (the latest without `run_id`), or, when that run continued
        as new, of the run it continued as (and so on): the run the execution is at.

        A run that closed otherwise costs one read; only a continue-as-new costs more.
        """
        while True:
            history = await self._client.get_workflow_handle(
                execution_id, run_id=run_id
            ).fetch_history()
            run_id = continued_as(history.events)
            if run_id is None:
                return history.events

    @_temporal_call
    async def list(
        self,
        *,
        workflow_id: str,
        name: str | None = None,
        status: ExecutionStatus | None,
        page: int,
        per_page: int,
        page_token: str | None = None,
        include_tests: bool = False,
    ) -> ExecutionsPage:
        """A page of a workflow's executions, newest first, from Temporal visibility.

        Args:
            page: the page number, when no `page_token` is given; page * per_page must
                stay within MAX_LIST_OFFSET.
            page_token: the `next_page_token` of the previous page.
            include_tests: list test runs (TEST_RUN_KEY) too; left out by default.

        Raises:
            ValueError: page * per_page is over MAX_LIST_OFFSET.
            InvalidPageTokenError: page_token is not one this service handed out.
        """
        query = f'{WORKFLOW_ID_KEY.name} = "{workflow_id}"'
        if name is not None:
            # Started by name with an SDK and not closed yet: its search attributes are
            # upserted with its last command (workflows/stored.py), so until then it is
            # found by its workflow type, the stored workflow's name (a stored workflow
            # name needs no quoting: definitions/names.py).
            query = f'({query} OR (WorkflowType = "{name}" AND {WORKFLOW_ID_KEY.name} IS NULL))'
        query += f' AND TaskQueue = "{self._task_queue}"'
        if not include_tests:
            # Only test runs set it (to true): every other execution has none.
            query += f" AND {TEST_RUN_KEY.name} IS NULL"
        if status is not None:
            query += f' AND ExecutionStatus = "{_VISIBILITY_STATUS[status]}"'
        if page_token is not None:
            start, end = 0, per_page
            token: bytes | None = decode_page_token(self._token_key, query, page_token)
            page = 1
        else:
            start, end = (page - 1) * per_page, page * per_page
            if end > MAX_LIST_OFFSET:
                raise ValueError(f"page * per_page is over {MAX_LIST_OFFSET}")
            token = None
        total = (await self._client.count_workflows(query)).count
        iterator = self._client.list_workflows(query, page_size=per_page, next_page_token=token)
        fetched: list[WorkflowExecution] = []
        try:
            # Visibility pages may differ in size: fetching exactly `end` executions leaves
            # the next page token at the end of the page answered.
            while len(fetched) < end:
                await iterator.fetch_next_page(page_size=min(end - len(fetched), _VISIBILITY_PAGE))
                fetched.extend(iterator.current_page or [])
                if iterator.next_page_token is None:
                    break
        except RPCError as exc:
            # Temporal answers a token it cannot read with INVALID_ARGUMENT or UNKNOWN
            # (SQL visibility), never with an unavailability.
            if token is not None and exc.status in (
                RPCStatusCode.INVALID_ARGUMENT,
                RPCStatusCode.UNKNOWN,
                RPCStatusCode.INTERNAL,
            ):
                raise InvalidPageTokenError(
                    "page_token is not a token this service handed out for this list"
                ) from exc
            raise
        items = [await self._summary(execution, workflow_id) for execution in fetched[start:end]]
        return ExecutionsPage(
            items=items,
            total=total,
            page=page,
            per_page=per_page,
            pages=(total + per_page - 1) // per_page,
            next_page_token=encode_page_token(self._token_key, query, iterator.next_page_token)
            if len(fetched) >= end
            else None,
        )

    async def _summary(self, execution: WorkflowExecution, workflow_id: str) -> ExecutionSummary:
        memo = ExecutionMemo.model_validate(await execution.memo())
        return ExecutionSummary(
            execution_id=execution.id,
            run_id=execution.run_id,
            workflow_id=memo.workflow_id or workflow_id,
            workflow_name=memo.workflow_name or execution.workflow_type,
            workflow_version=execution.typed_search_attributes.get(WORKFLOW_VERSION_KEY),
            status=status_from_temporal(execution.status),
            started_at=execution.start_time,
            closed_at=execution.close_time,
            test_run=bool(execution.typed_search_attributes.get(TEST_RUN_KEY)),
        )


def _consumed(task: asyncio.Future[Any]) -> None:
    """Retrieve a withdrawn task's error, which nobody awaits (else asyncio logs it)."""
    if not task.cancelled():
        task.exception()


def _is_test_run(events: Sequence[HistoryEvent]) -> bool:
    """Whether the execution was started as a test run (TEST_RUN_KEY set at start)."""
    started = events[0].workflow_execution_started_event_attributes
    if TEST_RUN_KEY.name not in started.search_attributes.indexed_fields:
        return False
    attributes = decode_typed_search_attributes(started.search_attributes)
    return bool(attributes.get(TEST_RUN_KEY))
