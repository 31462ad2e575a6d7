"""The API models of an execution: what is sent to start one and what is read back."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from definitions.json_values import unstorable


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"


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
    input: Any = Field(
        default=None,
        description="the input the execution was started with: a JSON object (an SDK start "
        "by name with any other input fails at once, before it becomes an execution of a "
        "stored workflow, and is not answered here)",
    )
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
    page: int = Field(description="the page asked for; 1 when a page_token was sent")
    per_page: int
    pages: int
    next_page_token: str | None = Field(
        default=None,
        description="send as ?page_token= for the next page (with the same status); absent "
        "when no execution follows (a full last page may carry one, to an empty page)",
    )


class ExecutionStarted(BaseModel):
    execution_id: str
    run_id: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    status_url: str


def new_execution_id() -> str:
    """A new execution id (the Temporal workflow id): `exec-` and 32 hex digits."""
    return f"exec-{uuid.uuid4().hex}"
