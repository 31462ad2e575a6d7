"""The API models of an execution: what is sent to start one and what is read back."""

from __future__ import annotations

import difflib
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from definitions.json_values import STEP_VALUE_LIMIT, unstorable


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"


INPUT_FIELD = "input_data"
INPUT_ALIAS = "input"
"""The body field of the input, and the alias every execute endpoint takes for it (the
Step Functions spelling, and that of /test before it took input_data)."""

_INPUT_WRAPPERS = frozenset(
    {"inputs", "data", "payload", "params", "parameters", "arguments", "args", "body", "variables"}
)
"""Names people wrap an input in elsewhere: each is answered "did you mean 'input_data'?"."""


def _unknown_field(key: str, *, known: list[str], wrapped: bool) -> str:
    """What to say of a body field no execute endpoint takes."""
    close = difflib.get_close_matches(key.lower(), [*known, INPUT_ALIAS], n=1, cutoff=0.8)
    if close or key.lower() in _INPUT_WRAPPERS:
        meant = INPUT_FIELD if not close or close[0] == INPUT_ALIAS else close[0]
        return f"unknown field '{key}'; did you mean '{meant}'?"
    if not wrapped:
        return (
            f"unknown field '{key}': wrap the workflow input in input_data: "
            '{"input_data": {...}}'
        )
    return f"unknown field '{key}'; the body takes {', '.join(known)}"


class ExecuteRequest(BaseModel):
    """The body of every endpoint that starts an execution: unknown fields are refused
    with what was meant (a body sent without its input_data wrapper would otherwise start
    an execution of the empty input)."""

    model_config = ConfigDict(extra="forbid")

    input_data: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices(INPUT_FIELD, INPUT_ALIAS),
        description="the workflow input (also taken as `input`)",
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="tracing context, e.g. project_id and request_id"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        """422 for each unknown field, saying what was meant, and for an input sent twice."""
        if not isinstance(data, dict):
            return data
        known = list(cls.model_fields)
        wrapped = INPUT_FIELD in data or INPUT_ALIAS in data
        problems = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "extra_forbidden", _unknown_field(key, known=known, wrapped=wrapped)
                ),
                loc=(key,),
                input=data[key],
            )
            for key in data
            if key not in known and key != INPUT_ALIAS
        ]
        if INPUT_FIELD in data and INPUT_ALIAS in data:
            problems.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "extra_forbidden",
                        "the input is sent twice; send it once, as input_data (or its alias input)",
                    ),
                    loc=(INPUT_ALIAS,),
                    input=data[INPUT_ALIAS],
                )
            )
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return data

    @field_validator("input_data", "context")
    @classmethod
    def _answerable(cls, value: dict[str, Any]) -> dict[str, Any]:
        """422 for values the execution record could not be answered with (no NaN, no lone
        surrogate); NUL characters pass, the registry database never holds them."""
        problem = unstorable(value, nul=False)
        if problem:
            raise PydanticCustomError("unstorable_value", problem)
        return value


def _none(value: Any) -> bool:
    return value is None


def _not(value: Any) -> bool:
    return not value


_TEST_RUN = (
    "present (true) on a test run (POST /api/workflows/{id}/test, every task and workflow "
    "step mocked); lists leave test runs out unless asked with ?include_tests=true"
)


class StepState(BaseModel):
    """One step of an execution.

    For the seed's chain: one per step of the chain, in chain order, with the fields up to
    `worker`, and `input` and `output` once the step ran. For a flow (a definition in
    the workflow language): one per step that ran, in the order it ran: one per task or
    child workflow run (map iterations and loop runs each their own, told apart by
    `path`), per wait, per choice, per succeed or fail reached, and one summary per
    parallel or map step before its branches' or iterations' steps. `service` and
    `action` are answered for tasks only, the fields after `worker` only when they apply.
    """

    id: str
    service: str | None = Field(
        default=None,
        exclude_if=_none,
        description="the service a task calls; absent for a step that calls none",
    )
    action: str | None = Field(
        default=None,
        exclude_if=_none,
        description="the action a task calls; absent for a step that calls none",
    )
    status: str = Field(
        description="PENDING, SCHEDULED, RUNNING, RETRYING, COMPLETED, FAILED, TIMED_OUT, CANCELED"
    )
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_error: str | None = None
    worker: str | None = Field(default=None, description="identity of the worker that ran it")
    type: str | None = Field(
        default=None,
        exclude_if=_none,
        description="flows only: task, choice, parallel, map, wait, workflow, succeed, fail",
    )
    path: str | None = Field(
        default=None,
        exclude_if=_none,
        description="flows only: where the step ran, as its activity id says it: `fetch`, "
        "`each[3].call` (4th iteration of map `each`), `inc#3` (3rd run in a loop); "
        "map batches run as child workflows: `each/batch-0`",
    )
    iteration: int | None = Field(
        default=None, exclude_if=_none, description="the (innermost) map iteration it ran in"
    )
    branch: int | None = Field(
        default=None,
        exclude_if=_none,
        description="the (innermost) parallel branch it ran in, from 0",
    )
    count: int | None = Field(
        default=None,
        exclude_if=_none,
        description="parallel: its branches; map: the iterations that ran",
    )
    input: Any = Field(
        default=None,
        exclude_if=_none,
        description="what the task sent (or the child workflow was started with); "
        f"at most {STEP_VALUE_LIMIT} bytes of JSON, else a truncated preview",
    )
    output: Any = Field(
        default=None,
        exclude_if=_none,
        description="what the task answered (before the step's `output` projection), a "
        "child workflow's result, the execution's result at a succeed; an optional task's "
        "failure is `{error}`; bounded as `input`",
    )
    route: str | None = Field(
        default=None,
        exclude_if=_none,
        description="a choice: the step it went to; a task or workflow step whose failure a "
        "catch took: that catch's `next`",
    )
    error: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_none,
        description="a failed step's error as `$error` binds it: type, message, status_code, "
        "step_id, attempts",
    )
    child_execution_id: str | None = Field(
        default=None,
        exclude_if=_none,
        description="a workflow step or map batch: the child execution's id (its own record)",
    )


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
    input: Any = Field(
        default=None,
        description="the input the execution was started with: a JSON object (an SDK start "
        "by name with any other input fails at once, before it becomes an execution of a "
        "stored workflow, and is not answered here)",
    )
    context: dict[str, Any] = Field(default_factory=dict)
    result: Any = Field(
        default=None,
        description="the execution's result: a JSON object for the seed's chain; a flow's "
        "may be any JSON value (a parallel's list, a map's list, a number)",
    )
    error: ExecutionError | None = None
    started_at: datetime
    closed_at: datetime | None = None
    steps: list[StepState] = Field(default_factory=list)
    test_run: bool = Field(default=False, exclude_if=_not, description=_TEST_RUN)


class ExecutionSummary(BaseModel):
    execution_id: str
    run_id: str
    workflow_id: str | None = None
    workflow_name: str
    workflow_version: int | None = None
    status: ExecutionStatus
    started_at: datetime
    closed_at: datetime | None = None
    test_run: bool = Field(default=False, exclude_if=_not, description=_TEST_RUN)


class ExecutionsPage(BaseModel):
    items: list[ExecutionSummary]
    total: int
    page: int = Field(description="the page asked for; 1 when a page_token was sent")
    per_page: int
    pages: int
    next_page_token: str | None = Field(
        default=None,
        description="send as ?page_token= for the next page (with the same status and "
        "include_tests); absent when no execution follows (a full last page may carry one, "
        "to an empty page)",
    )


class ExecutionStarted(BaseModel):
    execution_id: str
    run_id: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    status_url: str


def new_execution_id() -> str:
    """A new execution id (the Temporal workflow id): `exec-` and 32 hex digits."""
    return f"exec-{uuid.uuid4().hex}"
