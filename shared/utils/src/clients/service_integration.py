"""Clients of the Service Integration gateway: one for mixed sync/async code, one fully async.

`ServiceIntegrationClient` follows the client guide: its writes and executions
are awaitable (`create_*`, `update_*`, `delete_workflow`, `register_service`,
`deregister_service`, `execute_*`, `start_*`, `wait_for_execution`) and its
reads are plain calls (`get_*`). `AsyncServiceIntegrationClient` has the same
methods, all awaitable, for code that must never block its event loop.

Both share the URLs (`_api`), the translation of answers and errors (`_core`),
the sending (`_http`), the retry table (`retry.RETRY_POLICIES`) and one
`CircuitBreaker` per client, that is per base URL. Every write carries an
`Idempotency-Key` that stays the same across its retries, so a retried create or
execute never makes a duplicate; every request carries `X-Request-ID`.

Executions: `execute_workflow` and `execute_service_action` wait for the end and
return an `ExecutionResult`, the output dict (`result["sentiment"]`) with the
execution attached (`result.execution_id`, `result.execution`). An execution
that fails raises `ExecutionFailedError` (`.execution_id`, `.step_id`, `.cause`).
`start_workflow_execution` and `start_service_action` return without waiting.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from shared.utils.src.circuit_breaker import CircuitBreaker
from shared.utils.src.clients import _api
from shared.utils.src.clients._api import Call, Json
from shared.utils.src.clients._core import SERVICE_NAME, ExecutionResult, outcome
from shared.utils.src.clients._http import AsyncSender, LoopBoundAsyncClient, SyncSender
from shared.utils.src.clients.settings import ServiceIntegrationSettings
from shared.utils.src.exceptions import ExecutionStillRunningError
from shared.utils.src.retry import RETRY_POLICIES, Operation, RetryPolicy, Sleep

__all__ = [
    "AsyncServiceIntegrationClient",
    "ExecutionResult",
    "ServiceIntegrationClient",
    "get_service_integration_client",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_EXECUTION_TIMEOUT = 300.0
SERVER_WAIT = 30.0
"""Longest the gateway is asked to hold one execute request; then the client polls."""
FIRST_POLL_DELAY = 0.25
MAX_POLL_DELAY = 2.0


class _BaseClient:
    """Configuration and the awaitable methods, shared by both clients."""

    _async: AsyncSender

    def __init__(
        self,
        base_url: str,
        timeout: float,
        *,
        api_key: str | None,
        execution_timeout: float,
        circuit_breaker: CircuitBreaker | None,
        retry_policies: Mapping[Operation | str, RetryPolicy] | None,
        sleep: Sleep | None,
        clock: Callable[[], float],
    ) -> None:
        if timeout <= 0 or execution_timeout <= 0:
            raise ValueError("timeout and execution_timeout are seconds, more than 0")
        self.base_url = str(httpx.URL(base_url.rstrip("/")))
        self.timeout = timeout
        self.execution_timeout = execution_timeout
        self.circuit_breaker = circuit_breaker or CircuitBreaker(SERVICE_NAME, clock=clock)
        self.retry_policies: Mapping[Operation, RetryPolicy] = {
            **RETRY_POLICIES,
            **{Operation(k): v for k, v in (retry_policies or {}).items()},
        }
        self._api_key = api_key
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, timeout={self.timeout})"

    def _sender_options(self) -> dict[str, Any]:
        return {
            "breaker": self.circuit_breaker,
            "policies": self.retry_policies,
            "timeout": self.timeout,
            "api_key": self._api_key,
            "sleep": self._sleep,
        }

    # Workflows

    async def create_workflow(
        self,
        name: str,
        description: str | None = None,
        steps: Sequence[Json] | None = None,
        *,
        metadata: Json | None = None,
        status: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Store a workflow (version 1) after the gateway checks its steps.

        Args:
            name: Unique name of the workflow.
            description: What it does.
            steps: `{"id", "service", "action", "next"}` dicts; `next` is the id of
                the following step, or None for the last one.
            metadata: Free-form data kept with the workflow.
            status: `"ACTIVE"` (default) or `"INACTIVE"`.
            idempotency_key: Makes a repeat of this create answer with the first
                result; a new key is made per call if not given.

        Returns:
            The workflow: `{"id", "name", "description", "steps", "metadata", "status",
            "version", "created_at", "updated_at"}`.

        Raises:
            ValidationError: the definition is invalid (unknown service or action, ...).
            ConflictError: another workflow has that name.
            MaxRetriesExceededError: the gateway stayed unavailable.
        """
        call = _api.create_workflow(
            name=name, description=description, steps=steps, metadata=metadata, status=status
        )
        return await self._async.send(call, idempotency_key=idempotency_key)

    async def update_workflow(
        self,
        workflow_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        steps: Sequence[Json] | None = None,
        metadata: Json | None = None,
        status: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Change the fields given; new steps make a new version. Running executions keep theirs.

        Returns:
            The updated workflow.

        Raises:
            ResourceNotFoundError: no workflow has that id.
            ValidationError: the new definition is invalid.
            ConflictError: the new name is taken.
        """
        fields = {
            "name": name,
            "description": description,
            "steps": None if steps is None else list(steps),
            "metadata": metadata,
            "status": None if status is None else str(status),
        }
        call = _api.update_workflow(workflow_id, fields)
        return await self._async.send(call, idempotency_key=idempotency_key)

    async def delete_workflow(
        self, workflow_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Delete a workflow and its versions; running executions finish on their copy.

        Returns:
            The deleted workflow.

        Raises:
            ResourceNotFoundError: no workflow has that id.
        """
        call = _api.delete_workflow(workflow_id)
        return await self._async.send(call, idempotency_key=idempotency_key)

    async def execute_workflow(
        self,
        workflow_id: str,
        input_data: Json | None = None,
        context: Json | None = None,
        *,
        wait_timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionResult:
        """Run a workflow and wait for its result.

        Args:
            workflow_id: The workflow to run (its ACTIVE version).
            input_data: The input of the first step.
            context: Tracing data kept with the execution (`project_id`, `request_id`).
            wait_timeout: Seconds to wait for the end; the client's
                `execution_timeout` by default.
            idempotency_key: The same key always means the same execution, so a
                retry never starts a second one; a new key is made per call if not given.

        Returns:
            The workflow's result, a dict (`result["sentiment"]`), with
            `result.execution_id` and the full record in `result.execution`.

        Raises:
            ExecutionFailedError: the execution failed; `.execution_id`, `.step_id`, `.cause`.
            ExecutionStillRunningError: it was still running after `wait_timeout`.
            ResourceNotFoundError: no workflow has that id.
            ConflictError: the workflow is INACTIVE or cannot run.
        """
        return await self._execute(
            lambda wait: _api.execute_workflow(workflow_id, input_data, context, wait=wait),
            wait_timeout=wait_timeout,
            idempotency_key=idempotency_key,
        )

    async def start_workflow_execution(
        self,
        workflow_id: str,
        input_data: Json | None = None,
        context: Json | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start a workflow and return at once.

        Returns:
            `{"execution_id", "run_id", "status": "RUNNING", "status_url"}`; follow it with
            `get_workflow_execution_status(execution_id)` or `wait_for_execution`.

        Raises:
            ResourceNotFoundError: no workflow has that id.
            ConflictError: the workflow is INACTIVE or cannot run.
        """
        call = _api.start_workflow_execution(workflow_id, input_data, context)
        return await self._async.send(call, idempotency_key=idempotency_key)

    async def wait_for_execution(
        self, execution_id: str, *, wait_timeout: float | None = None
    ) -> ExecutionResult:
        """Wait for an execution to end, polling its record.

        Returns:
            Its result, with `.execution_id` and `.execution`.

        Raises:
            ExecutionFailedError: the execution failed.
            ExecutionStillRunningError: it was still running after `wait_timeout`.
            ResourceNotFoundError: no execution has that id.
        """
        started = self._clock()
        deadline = started + self._wait(wait_timeout)
        record, response = await self._async.exchange(_api.get_execution(execution_id))
        return await self._follow(record, response, started=started, deadline=deadline)

    # Services

    async def register_service(
        self,
        name: str,
        description: str | None = None,
        endpoint: str | None = None,
        actions: Sequence[Json] | None = None,
        *,
        metadata: Json | None = None,
        status: str | None = None,
        health_path: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Register a service and its actions; an identical registration returns the stored one.

        Args:
            name: Unique name, used by workflow steps.
            description: What the service does.
            endpoint: Its base URL; an action is called at `{endpoint}/{action}`
                unless the action gives a `path`.
            actions: `{"name", "description", "input_schema", "output_schema"}` dicts,
                optionally with `method`, `path`, `timeout`, `retry_policy`, `mode`.
            metadata: Free-form data kept with the service.
            status: `"ACTIVE"` (default) or `"INACTIVE"`.
            health_path: Path probed by `get_service_health` (default `/health`).
            idempotency_key: Makes a repeat answer with the first result.

        Returns:
            The service: `{"id", "name", "description", "endpoint", "actions",
            "metadata", "status", "health_path", "created_at", "updated_at"}`.

        Raises:
            ValidationError: the definition is invalid.
            ConflictError: another service has that name.
        """
        call = _api.register_service(
            name=name,
            description=description,
            endpoint=endpoint,
            actions=actions,
            metadata=metadata,
            status=status,
            health_path=health_path,
        )
        return await self._async.send(call, idempotency_key=idempotency_key)

    async def update_service(
        self,
        service_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        endpoint: str | None = None,
        actions: Sequence[Json] | None = None,
        metadata: Json | None = None,
        status: str | None = None,
        health_path: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Change the fields given. Running executions keep the definition they started with.

        Returns:
            The updated service.

        Raises:
            ResourceNotFoundError: no service has that id.
            ValidationError: a field is invalid.
            ConflictError: the new name is taken.
        """
        fields = {
            "name": name,
            "description": description,
            "endpoint": endpoint,
            "actions": None if actions is None else list(actions),
            "metadata": metadata,
            "status": None if status is None else str(status),
            "health_path": health_path,
        }
        call = _api.update_service(service_id, fields)
        return await self._async.send(call, idempotency_key=idempotency_key)

    async def deregister_service(
        self, service_id: str, *, force: bool = False, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Deregister a service.

        Args:
            service_id: The service.
            force: Deregister it even though ACTIVE workflows use it.

        Returns:
            The deregistered service.

        Raises:
            ResourceNotFoundError: no service has that id.
            ConflictError: an ACTIVE workflow uses it (and `force` is False).
        """
        call = _api.deregister_service(service_id, force=force)
        return await self._async.send(call, idempotency_key=idempotency_key)

    async def execute_service_action(
        self,
        service_id: str,
        action: str,
        input_data: Json | None = None,
        context: Json | None = None,
        *,
        wait_timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionResult:
        """Run one action of a service as a one-step execution, and wait for its output.

        Args:
            service_id: The service.
            action: The action's name.
            input_data: The action's input.
            context: Tracing data kept with the execution.
            wait_timeout: Seconds to wait for the end; `execution_timeout` by default.
            idempotency_key: The same key always means the same execution.

        Returns:
            The action's output, a dict, with `.execution_id` and `.execution`.

        Raises:
            ExecutionFailedError: the action failed (after its retries).
            ExecutionStillRunningError: it was still running after `wait_timeout`.
            ResourceNotFoundError: no such service or action.
        """
        return await self._execute(
            lambda wait: _api.execute_service_action(
                service_id, action, input_data, context, wait=wait
            ),
            wait_timeout=wait_timeout,
            idempotency_key=idempotency_key,
        )

    async def start_service_action(
        self,
        service_id: str,
        action: str,
        input_data: Json | None = None,
        context: Json | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start one action as an execution and return without waiting for its end.

        Returns:
            `{execution_id, run_id, status, status_url}`; follow it with
            `get_workflow_execution_status` or `wait_for_execution`.
        """
        call = _api.start_service_action(service_id, action, input_data, context)
        return await self._async.send(call, idempotency_key=idempotency_key)

    # Executions, shared by execute_workflow and execute_service_action

    def _wait(self, wait_timeout: float | None) -> float:
        wait = self.execution_timeout if wait_timeout is None else wait_timeout
        if wait <= 0:
            raise ValueError(f"wait_timeout is seconds, more than 0, not {wait}")
        return wait

    async def _execute(
        self,
        make_call: Callable[[float], Call],
        *,
        wait_timeout: float | None,
        idempotency_key: str | None,
    ) -> ExecutionResult:
        wait = self._wait(wait_timeout)
        started = self._clock()
        record, response = await self._async.exchange(
            make_call(min(wait, SERVER_WAIT)), idempotency_key=idempotency_key
        )
        return await self._follow(record, response, started=started, deadline=started + wait)

    async def _follow(
        self,
        record: dict[str, Any],
        response: httpx.Response,
        *,
        started: float,
        deadline: float,
    ) -> ExecutionResult:
        """Long-poll the record until the execution closes or the deadline passes."""
        polls = 0
        asked, asked_at = 0.0, self._clock()
        while True:
            result = outcome(record, response=response)
            if result is not None:
                return result
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ExecutionStillRunningError(
                    str(record.get("execution_id")),
                    waited=self._clock() - started,
                    execution=record,
                    response=response,
                )
            polls += 1
            if polls > 1 and self._clock() - asked_at < asked / 2:
                # The gateway answered without holding the request (one that predates
                # long polls): back off instead of asking in a tight loop.
                await self._pause(
                    min(FIRST_POLL_DELAY * 2 ** (polls - 2), MAX_POLL_DELAY, remaining)
                )
                remaining = deadline - self._clock()
                if remaining <= 0:
                    continue
            asked, asked_at = min(remaining, _api.MAX_LONG_POLL), self._clock()
            record, response = await self._async.exchange(
                _api.get_execution(str(record["execution_id"]), wait=asked)
            )

    async def _pause(self, seconds: float) -> None:
        waited = (self._sleep or asyncio.sleep)(seconds)
        if inspect.isawaitable(waited):
            await waited


class ServiceIntegrationClient(_BaseClient):
    """Client of the Service Integration gateway, as the client guide describes it.

    Writes and executions are awaitable; reads (`get_*`) are plain blocking calls.
    Use it as `with` (sync code) or `async with` (async code) to close its
    connections, or call `close()` / `await aclose()`.

    Args:
        base_url: The gateway's API, e.g. `http://localhost:8005/api`.
        timeout: Seconds for one HTTP request.
        api_key: Sent as `Authorization: Bearer <key>` when the gateway needs one.
        execution_timeout: Seconds `execute_*` wait for an execution to end.
        circuit_breaker: The breaker for this base URL; one with defaults
            (5 failures, 30 s) is made if not given.
        retry_policies: Policies by operation (`"create"`, `"update"`, `"delete"`,
            `"read"`) replacing those of the guide's table.
        transport: An httpx transport for tests (`httpx.MockTransport` serves both the
            blocking and the awaitable methods).
        async_transport: A transport for the awaitable methods, if `transport` is
            blocking only.
        sleep: Waits between retries and polls (`time.sleep` / `asyncio.sleep` by
            default); a stand-in that records the delays makes tests instant.
        clock: Monotonic seconds, for the breaker and the execution deadlines.

    Example:
        >>> client = ServiceIntegrationClient(base_url="http://localhost:8005/api")
        >>> workflow = client.get_workflow(workflow_id="123")  # doctest: +SKIP
        >>> result = await client.execute_workflow(workflow_id="123")  # doctest: +SKIP
        >>> result["sentiment"], result.execution_id  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        api_key: str | None = None,
        execution_timeout: float = DEFAULT_EXECUTION_TIMEOUT,
        circuit_breaker: CircuitBreaker | None = None,
        retry_policies: Mapping[Operation | str, RetryPolicy] | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            base_url,
            timeout,
            api_key=api_key,
            execution_timeout=execution_timeout,
            circuit_breaker=circuit_breaker,
            retry_policies=retry_policies,
            sleep=sleep,
            clock=clock,
        )
        sync_transport, async_transport = _split_transports(transport, async_transport)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=sync_transport)
        self._async_http = LoopBoundAsyncClient(
            lambda: httpx.AsyncClient(
                base_url=self.base_url, timeout=timeout, transport=async_transport
            )
        )
        self._sync = SyncSender(self._http, **self._sender_options())
        self._async = AsyncSender(self._async_http.get, **self._sender_options())

    def close(self) -> None:
        """Close the connections."""
        self._http.close()
        self._async_http.close()

    async def aclose(self) -> None:
        """Close the connections, from async code."""
        self._http.close()
        await self._async_http.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Reads: plain calls

    def get_workflow(self, workflow_id: str, *, version: int | None = None) -> dict[str, Any]:
        """A workflow, at its current version or at `version`.

        Raises:
            ResourceNotFoundError: no workflow has that id (or that version).
        """
        return self._sync.send(_api.get_workflow(workflow_id, version=version))

    def get_workflows(
        self, *, status: str | None = None, page: int | None = None, per_page: int | None = None
    ) -> dict[str, Any]:
        """A page of workflows: `{"items", "total", "page", "per_page", "pages"}`.

        Args:
            status: Only `"ACTIVE"` or only `"INACTIVE"` workflows.
            page: Page number, from 1.
            per_page: Items per page (at most 100).
        """
        return self._sync.send(_api.get_workflows(status=status, page=page, per_page=per_page))

    def get_workflow_execution_status(self, execution_id: str) -> dict[str, Any]:
        """The record of an execution: status, input, context, result or error, and its steps.

        Returns:
            `{"execution_id", "run_id", "kind", "workflow_id", "workflow_name", "status",
            "result", "error", "steps", "started_at", "closed_at", ...}`; `status` is
            RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED or TIMED_OUT.

        Raises:
            ResourceNotFoundError: no execution has that id.
        """
        return self._sync.send(_api.get_execution(execution_id))

    def get_workflow_executions(
        self,
        workflow_id: str,
        *,
        status: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> dict[str, Any]:
        """A page of a workflow's executions, newest first.

        Raises:
            ResourceNotFoundError: no workflow has that id.
        """
        call = _api.get_workflow_executions(
            workflow_id, status=status, page=page, per_page=per_page
        )
        return self._sync.send(call)

    def get_service(self, service_id: str) -> dict[str, Any]:
        """A registered service.

        Raises:
            ResourceNotFoundError: no service has that id.
        """
        return self._sync.send(_api.get_service(service_id))

    def get_services(
        self, *, status: str | None = None, page: int | None = None, per_page: int | None = None
    ) -> dict[str, Any]:
        """A page of services: `{"items", "total", "page", "per_page", "pages"}`."""
        return self._sync.send(_api.get_services(status=status, page=page, per_page=per_page))

    def get_integration_health(self) -> dict[str, Any]:
        """The gateway's health: `{"status": "healthy" | "degraded" | "unhealthy", "components"}`.

        An unhealthy gateway answers 503 with its report; the report is returned.
        """
        return self._sync.send(_api.get_integration_health())

    def get_service_health(self, service_id: str) -> dict[str, Any]:
        """A probe of one service: `{"service_id", "name", "status", "latency_ms", "last_error"}`.

        Raises:
            ResourceNotFoundError: no service has that id.
        """
        return self._sync.send(_api.get_service_health(service_id))


class AsyncServiceIntegrationClient(_BaseClient):
    """Client of the Service Integration gateway whose every method is awaitable.

    The same methods, arguments and errors as `ServiceIntegrationClient`, for
    async applications where a blocking read would stall the event loop. Use it
    as `async with`, or `await aclose()`.

    Args:
        base_url: The gateway's API, e.g. `http://localhost:8005/api`.
        timeout: Seconds for one HTTP request.
        api_key: Sent as `Authorization: Bearer <key>`.
        execution_timeout: Seconds `execute_*` wait for an execution to end.
        circuit_breaker: The breaker for this base URL.
        retry_policies: Policies by operation replacing those of the guide's table.
        transport: An `httpx.AsyncBaseTransport`, for tests.
        sleep: Waits between retries and polls; `asyncio.sleep` by default.
        clock: Monotonic seconds, for the breaker and the execution deadlines.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        api_key: str | None = None,
        execution_timeout: float = DEFAULT_EXECUTION_TIMEOUT,
        circuit_breaker: CircuitBreaker | None = None,
        retry_policies: Mapping[Operation | str, RetryPolicy] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            base_url,
            timeout,
            api_key=api_key,
            execution_timeout=execution_timeout,
            circuit_breaker=circuit_breaker,
            retry_policies=retry_policies,
            sleep=sleep,
            clock=clock,
        )
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                "AsyncServiceIntegrationClient needs an httpx.AsyncBaseTransport "
                f"(httpx.AsyncHTTPTransport, httpx.MockTransport), not {type(transport).__name__}"
            )
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)
        self._async = AsyncSender(lambda: self._http, **self._sender_options())

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Reads: awaitable here

    async def get_workflow(self, workflow_id: str, *, version: int | None = None) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_workflow`."""
        return await self._async.send(_api.get_workflow(workflow_id, version=version))

    async def get_workflows(
        self, *, status: str | None = None, page: int | None = None, per_page: int | None = None
    ) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_workflows`."""
        call = _api.get_workflows(status=status, page=page, per_page=per_page)
        return await self._async.send(call)

    async def get_workflow_execution_status(self, execution_id: str) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_workflow_execution_status`."""
        return await self._async.send(_api.get_execution(execution_id))

    async def get_workflow_executions(
        self,
        workflow_id: str,
        *,
        status: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_workflow_executions`."""
        call = _api.get_workflow_executions(
            workflow_id, status=status, page=page, per_page=per_page
        )
        return await self._async.send(call)

    async def get_service(self, service_id: str) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_service`."""
        return await self._async.send(_api.get_service(service_id))

    async def get_services(
        self, *, status: str | None = None, page: int | None = None, per_page: int | None = None
    ) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_services`."""
        call = _api.get_services(status=status, page=page, per_page=per_page)
        return await self._async.send(call)

    async def get_integration_health(self) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_integration_health`."""
        return await self._async.send(_api.get_integration_health())

    async def get_service_health(self, service_id: str) -> dict[str, Any]:
        """See `ServiceIntegrationClient.get_service_health`."""
        return await self._async.send(_api.get_service_health(service_id))


def _split_transports(
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None,
    async_transport: httpx.AsyncBaseTransport | None,
) -> tuple[httpx.BaseTransport | None, httpx.AsyncBaseTransport | None]:
    """The blocking and the awaitable transport of the mixed client."""
    if transport is None:
        return None, async_transport
    sync = transport if isinstance(transport, httpx.BaseTransport) else None
    if async_transport is None and isinstance(transport, httpx.AsyncBaseTransport):
        async_transport = transport
    if sync is None or async_transport is None:
        raise TypeError(
            "ServiceIntegrationClient has blocking reads and awaitable writes, so it needs a "
            "transport for each: pass one that serves both (httpx.MockTransport), or "
            "transport=<httpx.BaseTransport> and async_transport=<httpx.AsyncBaseTransport>"
        )
    return sync, async_transport


def get_service_integration_client(
    settings: ServiceIntegrationSettings | None = None, **options: Any
) -> ServiceIntegrationClient:
    """A client configured from the environment (`SERVICE_INTEGRATION_URL`, ...).

    Args:
        settings: Settings to use instead of those read from the environment.
        **options: Keyword options of `ServiceIntegrationClient` (`transport=`, ...).

    Returns:
        A new client; close it (or use it as a context manager) when done.
    """
    settings = settings or ServiceIntegrationSettings()
    options.setdefault("api_key", settings.api_key.get_secret_value() if settings.api_key else None)
    options.setdefault("execution_timeout", settings.execution_timeout)
    return ServiceIntegrationClient(settings.url, settings.timeout, **options)
