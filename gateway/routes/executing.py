"""Shared by the execute endpoints: start, wait within the timeout, answer the record."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from fastapi.exceptions import RequestValidationError

from core.settings import Settings
from definitions.chain import step_input
from definitions.language import TaskStep, entry_of
from definitions.models import PinnedDefinition, PinnedStep, StepMock
from executions.models import ExecuteRequest, ExecutionPublic, ExecutionStarted
from executions.service import ExecutionService
from schemas.validation import violations


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


MAX_INPUT_PROBLEMS = 20
"""Violations a 422 for an input lists at most."""


def _entry_task(definition: PinnedDefinition) -> PinnedStep | None:
    """The step the input goes to whole, and fails at once if its input_schema refuses
    it: the entry step of a chain (or of a one-action execution), or a flow's entry task
    without `input` (its input is then taken from the workflow input as in a chain) and
    without `catch` or `optional` (a failure there could be caught and routed on).
    None: no step gets the input as it is sent."""
    if definition.flow is None:
        return definition.step(definition.entry)
    entry = entry_of(definition.flow)
    task = next((s for s in definition.flow.steps if s.id == entry), None)
    if not isinstance(task, TaskStep) or task.input is not None or task.catch or task.optional:
        return None
    return definition.step(task.id)


def _problem(message: str) -> dict[str, Any]:
    return {"loc": ("body", "input_data"), "msg": message, "type": "value_error"}


def check_input(definition: PinnedDefinition, body: ExecuteRequest) -> None:
    """The input, checked before anything starts: against a flow's input_schema, and
    against the input_schema of the step it goes to first (what that step would get of
    it: `definitions.chain.step_input`), so an input that step would refuse at once
    starts no execution that can only fail. Formats are checked (json_schema.py); the
    validators are the ones the activities use, compiled once per schema.

    Raises:
        RequestValidationError: the input breaks a schema (one entry per violation).
    """
    data = body.input_data
    problems: list[dict[str, Any]] = []
    schema = definition.flow.input_schema if definition.flow is not None else None
    if schema is not None:
        problems += [
            _problem(f"the input does not match the workflow's input_schema: {found}")
            for found in violations(schema, data, limit=MAX_INPUT_PROBLEMS)
        ]
    step = _entry_task(definition) if not problems else None
    if step is not None:
        what = (
            f"action '{step.action}' of service '{step.service}'"
            if definition.kind == "action"
            else f"step '{step.id}' (action '{step.action}' of service '{step.service}'), "
            "the first step"
        )
        schema = step.spec.input_schema
        problems += [
            _problem(f"the input does not match the input_schema of {what}: {found}")
            for found in violations(schema, step_input(schema, data), limit=MAX_INPUT_PROBLEMS)
        ]
    if problems:
        raise RequestValidationError(problems)


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
    record, closed = await executions.run(
        definition, body, execution_id=execution_id, timeout=timeout, mocks=mocks
    )
    response.headers["Location"] = f"/api/executions/{execution_id}"
    response.status_code = 200 if closed else 202
    return record
