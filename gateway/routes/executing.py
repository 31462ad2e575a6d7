"""Shared by the execute endpoints: start, wait within the timeout, answer the record."""

from __future__ import annotations

from fastapi import Response
from fastapi.exceptions import RequestValidationError

from core.settings import Settings
from definitions.json_schema import violations
from definitions.models import PinnedDefinition, StepMock
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


def check_input(definition: PinnedDefinition, body: ExecuteRequest) -> None:
    """A flow's input_schema, checked before anything starts.

    Raises:
        RequestValidationError: the input breaks the schema (one entry per violation).
    """
    schema = definition.flow.input_schema if definition.flow is not None else None
    if schema is None:
        return
    problems = violations(schema, body.input_data, limit=20)
    if problems:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "input_data"),
                    "msg": f"the input does not match the workflow's input_schema: {found}",
                    "type": "value_error",
                }
                for found in problems
            ]
        )


async def start_and_point(
    executions: ExecutionService,
    definition: PinnedDefinition,
    body: ExecuteRequest,
    execution_id: str,
    response: Response,
) -> ExecutionStarted:
    """Start without waiting: 202 with where to follow the execution."""
    check_input(definition, body)
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
    mocks: dict[str, StepMock] | None = None,
) -> ExecutionPublic:
    """200 with the closed record, or 202 with the running one when the timeout ran out."""
    check_input(definition, body)
    handle = await executions.start(definition, body, execution_id=execution_id, mocks=mocks)
    closed = await executions.wait(handle, timeout)
    record = await executions.get(execution_id)
    response.headers["Location"] = f"/api/executions/{execution_id}"
    response.status_code = 200 if closed else 202
    return record
