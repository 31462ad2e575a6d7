"""The wire models as version 0.1.0 (the seed) shipped them, kept verbatim so the rolling-
upgrade tests can check what today's gateway and workflow send against an old worker."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SERVICE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ACTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
WORKFLOW_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"

ACTION_EXECUTION_PREFIX = "action:"
"""Temporal workflow type prefix of one-action executions (`action:<service>.<action>`)."""

LOAD_DEFINITION_ACTIVITY = "si:load-definition"
"""Activity that loads the latest ACTIVE definition of a workflow by name."""

MAX_STEPS = 100
MAX_ACTIONS = 100


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class PinnedDefinition(_Frozen):
    """The definition an execution runs, fixed when it starts and kept in its history."""

    kind: Literal["workflow", "action"] = "workflow"
    workflow_id: str | None = None
    name: str
    version: int | None = None
    low_latency: bool = False
    entry: str
    steps: list[PinnedStep]

    def step(self, step_id: str) -> PinnedStep:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


class ExecutionOptions(BaseModel):
    """Second argument of the dynamic workflow; absent when started by name with the SDK."""

    model_config = ConfigDict(extra="ignore")

    definition: PinnedDefinition | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class StepCall(BaseModel):
    """Input of the `<service>.<action>` activity."""

    execution_id: str
    step_id: str
    service: str
    endpoint: str
    spec: ActionSpec
    input: dict[str, Any]
    context: dict[str, Any] = Field(default_factory=dict)
    request_id: str
