"""Pydantic models of service actions, workflow steps and pinned execution definitions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from definitions.language import Flow
from definitions.names import (
    ACTION_NAME_PATTERN,
    CONTEXT_KEY_PATTERN,
    SERVICE_NAME_PATTERN,
    STEP_ID_PATTERN,
    WORKFLOW_NAME_PATTERN,
)

__all__ = [
    "ACTION_NAME_PATTERN",
    "CONTEXT_KEY_PATTERN",
    "SERVICE_NAME_PATTERN",
    "STEP_ID_PATTERN",
    "WORKFLOW_NAME_PATTERN",
]

MAX_STEPS = 100
MAX_ACTIONS = 100


def _empty(value: object) -> bool:
    """Fields added after 0.1.0 are left out of a payload while empty: 0.1.0's workers
    refuse unknown fields inside a definition (docs/versioning.md)."""
    return not value


class _Frozen(BaseModel):
    """Crosses process boundaries (workflow input, activity input and result): unknown
    fields are ignored, so a newer sender and an older receiver work side by side. The
    registry's API refuses unknown fields with its own subclasses (registry/schemas.py)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class RetryPolicySpec(_Frozen):
    """Retry policy of one action, in seconds. Every field has the project default."""

    initial_interval: float = Field(default=1.0, gt=0, le=3600)
    backoff_coefficient: float = Field(default=2.0, ge=1, le=100)
    maximum_interval: float = Field(default=30.0, gt=0, le=86400)
    maximum_attempts: int = Field(
        default=5, ge=1, le=1000, description="attempts in all, the first one included"
    )


DEFAULT_RETRY_POLICY = RetryPolicySpec()


class ActionSpec(_Frozen):
    """One named action of a registered service."""

    name: str = Field(pattern=ACTION_NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str | None = Field(
        default=None,
        max_length=500,
        description="path under the service endpoint; default /{action name}",
    )
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="seconds for one attempt (start-to-close)"
    )
    retry_policy: RetryPolicySpec = Field(default_factory=RetryPolicySpec)
    mode: Literal["activity", "local"] = Field(
        default="activity",
        description="'local' runs the step as a Temporal local activity (low latency, short steps)",
    )
    forward_context: list[Annotated[str, Field(pattern=CONTEXT_KEY_PATTERN)]] = Field(
        default_factory=list,
        max_length=50,
        exclude_if=_empty,
        description="context keys sent to this action as X-Context-<key> headers; none by default",
    )


class StepSpec(_Frozen):
    """One step of a stored workflow: call `service.action`, then go to `next`."""

    id: str = Field(pattern=STEP_ID_PATTERN)
    service: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=64)
    next: str | None = None


class PinnedStep(_Frozen):
    """A step with everything needed to run it, copied from the registry at start."""

    id: str
    service: str
    action: str
    next: str | None
    endpoint: str
    spec: ActionSpec
    credential: bool = Field(
        default=False,
        exclude_if=_empty,
        description="the service had a credential when pinned: the worker looks it up at "
        "call time (never part of the definition)",
    )


class PinnedDefinition(_Frozen):
    """The definition an execution runs, fixed when it starts and kept in its history."""

    kind: Literal["workflow", "action"] = "workflow"
    workflow_id: str | None = None
    name: str
    version: int | None = None
    low_latency: bool = False
    entry: str
    steps: list[PinnedStep]
    signatures: dict[str, str] = Field(
        default_factory=dict,
        exclude_if=_empty,
        description="step id -> HMAC of the step (core/signing.py), set by the loader",
    )
    flow: Flow | None = Field(
        default=None,
        exclude_if=_empty,
        description="a definition in the workflow language; `steps` then holds its task "
        "steps, pinned (endpoint and action spec), and `entry` is unused",
    )

    @model_validator(mode="after")
    def _runnable(self) -> PinnedDefinition:
        """A definition the workflow can follow: the entry and every `next` name a step,
        and the chain from the entry never comes back to a step. For a flow: every task
        step is pinned (definitions/flow_checks.py checks the rest at save time)."""
        ids = [step.id for step in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        if self.flow is not None:
            from definitions.language import TaskStep, iter_steps

            unpinned = [
                step.id
                for step in iter_steps(self.flow.steps)
                if isinstance(step, TaskStep) and step.id not in ids
            ]
            if unpinned:
                raise ValueError(f"task steps {unpinned} are not pinned")
            return self
        seen: set[str] = set()
        current: str | None = self.entry
        while current is not None:
            if current not in ids:
                raise ValueError(f"step '{current}' is named but not defined")
            if current in seen:
                raise ValueError(f"the chain comes back to step '{current}'")
            seen.add(current)
            current = self.steps[ids.index(current)].next
        return self

    def step(self, step_id: str) -> PinnedStep:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


class ExecutionOptions(BaseModel):
    """Second argument of the dynamic workflow; absent when started by name with the SDK."""

    model_config = ConfigDict(extra="ignore")

    contract: int = Field(default=1, description="contract version of the sender; absent: 1")
    definition: PinnedDefinition | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    signatures: dict[str, str] = Field(
        default_factory=dict,
        exclude_if=_empty,
        description="step id -> HMAC of the step, set by the gateway (core/signing.py)",
    )
    definition_signature: str | None = Field(
        default=None,
        exclude_if=_empty,
        description="HMAC of these options whole (definition, mocks, bindings), set by the "
        "gateway and by workflow code for the runs it starts (core/signing.py)",
    )
    version: int | None = Field(
        default=None,
        exclude_if=_empty,
        description="started by name (e.g. a `workflow` step): load this version, not the latest",
    )
    resume: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_empty,
        description="where a flow continued as new resumes (workflows/interpreter.py)",
    )
    original_input: Any = Field(
        default=None, exclude_if=_empty, description="$input of a flow continued as new"
    )
    bindings: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_empty,
        description="the enclosing scope of a map batch run as a child workflow",
    )
    mocks: dict[str, StepMock] = Field(
        default_factory=dict,
        exclude_if=_empty,
        description="a test run: step id -> what the step answers instead of its service",
    )
    depth: int = Field(
        default=0,
        exclude_if=_empty,
        description="how many `workflow` steps deep this execution runs (0: started from outside)",
    )
    step_budget: int | None = Field(
        default=None,
        exclude_if=_empty,
        description="a map batch or child workflow: the steps its parent had left",
    )


class MockError(_Frozen):
    """A mocked failure: the error type and, for an HTTP answer, its status code."""

    type: str = Field(default="ServiceRejected", min_length=1, max_length=128)
    status_code: int | None = Field(default=None, ge=100, le=599)
    message: str = Field(default="mocked failure", max_length=2000)


class StepMock(_Frozen):
    """What a mocked step answers: an output, or an error (retries are not run)."""

    output: Any = None
    error: MockError | None = None


class StepCall(BaseModel):
    """Input of the `<service>.<action>` activity (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    contract: int = Field(default=1, description="contract version of the sender; absent: 1")
    execution_id: str
    step_id: str
    service: str
    endpoint: str
    spec: ActionSpec
    input: dict[str, Any]
    context: dict[str, Any] = Field(default_factory=dict)
    request_id: str
    signature: str | None = Field(
        default=None, exclude_if=_empty, description="the step's HMAC, if the definition had one"
    )
    credential: bool = Field(
        default=False,
        exclude_if=_empty,
        description="look the service's credential up and add it (the step's PinnedStep)",
    )
    report: bool = Field(
        default=False,
        exclude_if=_empty,
        description="answer the output with the attempt and the worker "
        "(definitions/contract.py STEP_RESULT_KEY)",
    )


class StartCall(BaseModel):
    """Input of the `si:start` activity: a start by name, and what its first step needs."""

    model_config = ConfigDict(extra="ignore")

    contract: int = Field(default=1, description="contract version of the sender; absent: 1")
    name: str = Field(description="the stored workflow's name (the workflow type)")
    version: int | None = Field(default=None, exclude_if=_empty)
    execution_id: str
    input: dict[str, Any]
    context: dict[str, Any] = Field(default_factory=dict)
    request_id: str
    signatures: dict[str, str] = Field(default_factory=dict, exclude_if=_empty)
    run_first: bool = Field(
        default=True, description="make the first attempt of a chain's entry step"
    )


class FirstAttempt(BaseModel):
    """How the first attempt of a chain's entry step ended inside `si:start`."""

    model_config = ConfigDict(extra="ignore")

    output: dict[str, Any] | None = None
    error_type: str | None = Field(default=None, exclude_if=_empty)
    message: str | None = Field(default=None, exclude_if=_empty)
    details: dict[str, Any] = Field(default_factory=dict, exclude_if=_empty)
    non_retryable: bool = Field(default=False, exclude_if=_empty)
    retry_after: float | None = Field(
        default=None, exclude_if=_empty, description="the service's Retry-After, seconds"
    )
    worker: str | None = Field(
        default=None, exclude_if=_empty, description="the worker that made the attempt"
    )

    @property
    def failed(self) -> bool:
        return self.error_type is not None


class StartOutcome(BaseModel):
    """Result of `si:start`: the pinned definition and, for a chain, its first attempt."""

    model_config = ConfigDict(extra="ignore")

    definition: PinnedDefinition
    first: FirstAttempt | None = Field(
        default=None, description="None: the entry step was not run (a flow, or mocks)"
    )
