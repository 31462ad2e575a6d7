"""Shared by the execute endpoints: start, wait within the timeout, answer the record."""

from __future__ import annotations

from fastapi import Response
from fastapi.exceptions import RequestValidationError

from core.settings import Settings
from definitions.models import PinnedDefinition
from executions.models import ExecuteRequest, ExecutionPublic, ExecutionStarted
from executions.service import ExecutionService


def execute_timeout(timeout: float | None, settings: Settings) -> float:
    """Seconds an execute waits: `?timeout=`, or DEFAULT_EXECUTE_TIMEOUT, capped.

    Raises:
        RequestValidationError: the timeout asked for is over MAX_EXECUTE_TIMEOUT.
    """
    limit = settings.max_execute_timeout
    if timeout is None:
        return min(settings.default_execute_timeout, limit)
    if timeout > limit:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "timeout"),
                    "msg": f"timeout is at most {limit:g} seconds (MAX_EXECUTE_TIMEOUT); ask "
                    "for less, or start with POST .../executions and follow the execution",
                    "type": "less_than_equal",
                    "input": timeout,
                    "ctx": {"le": limit},
                }
            ]
        )
    return timeout


def with_request_id(body: ExecuteRequest, request_id: str | None) -> ExecuteRequest:
    """The caller's X-Request-ID becomes the context's request_id unless it has one."""
    if not request_id or body.context.get("request_id"):
        return body
    return body.model_copy(update={"context": {**body.context, "request_id": request_id}})


async def start_and_point(
    executions: ExecutionService,
    definition: PinnedDefinition,
    body: ExecuteRequest,
    execution_id: str,
    response: Response,
) -> ExecutionStarted:
    """Start without waiting: 202 with where to follow the execution."""
    handle = await executions.start(definition, body, execution_id=execution_id)
    status_url = f"/api/executions/{execution_id}"
    response.headers["Location"] = status_url
    return ExecutionStarted(
        execution_id=execution_id, run_id=handle.result_run_id or "", status_url=status_url
    )


async def run_and_answer(
    executions: ExecutionService,
    definition: PinnedDefinition,
    body: ExecuteRequest,
    *,
    execution_id: str,
    timeout: float,
    response: Response,
) -> ExecutionPublic:
    """200 with the closed record, or 202 with the running one when the timeout ran out."""
    handle = await executions.start(definition, body, execution_id=execution_id)
    closed = await executions.wait(handle, timeout)
    record = await executions.get(execution_id)
    response.headers["Location"] = f"/api/executions/{execution_id}"
    response.status_code = 200 if closed else 202
    return record
