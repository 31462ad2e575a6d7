"""The workflow language: step types beyond the seed's chain, and JSONata expressions.

A stored workflow is either the seed's chain (`[{id, service, action, next}]`, run exactly
as it always was) or a *flow*: steps of the types below, with `{% <JSONata> %}`
expressions for data mapping and routing. docs/workflow-language.md is the reference.

These models describe a definition; definitions/flow_checks.py validates one at save
time, and workflows/interpreter.py runs one. They import nothing but pydantic, so the
workflow sandbox passes them through.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from definitions.names import STEP_ID_PATTERN

EXPRESSION_FIELDS = ("input", "output", "assign", "when", "items", "seconds", "until", "cause")
"""The fields whose string values may be `{% <expr> %}` expressions; elsewhere a string
is a literal."""

ERROR_NAMES = (
    "HTTP.4xx",
    "HTTP.5xx",
    "Timeout",
    "Unreachable",
    "OutboundRefused",
    "SchemaMismatch",
    "ExpressionLimit",
    "ALL",
)
"""Error names a `catch` may list, besides `HTTP.<code>` (e.g. `HTTP.404`)."""

MAX_BRANCHES = 20
MAX_MAP_CONCURRENCY = 1000


def is_expression(value: Any) -> bool:
    """True for a string of the form `{% <expr> %}`."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


def expression_body(value: str) -> str:
    return value[2:-2].strip()


class _Node(BaseModel):
    """Definitions cross processes: unknown fields are ignored here; the registry's API
    refuses them (registry/schemas.py)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Catch(_Node):
    """Where a failed task goes once its retries are exhausted."""

    errors: list[str] = Field(min_length=1, max_length=20)
    next: str
    assign: dict[str, Any] = Field(default_factory=dict)


class TaskStep(_Node):
    """Call `service.action` (one Temporal activity with the action's retry policy)."""

    type: Literal["task"] = "task"
    id: str = Field(pattern=STEP_ID_PATTERN)
    service: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=64)
    input: Any = Field(
        default=None,
        description="an object (values may be expressions) or one expression; without it, "
        "the action's declared properties are taken from the data so far",
    )
    output: Any = Field(default=None, description="a projection of $result; default $result")
    assign: dict[str, Any] = Field(default_factory=dict)
    catch: list[Catch] = Field(default_factory=list, max_length=20)
    optional: bool = False
    next: str | None = None


class ChoiceRule(_Node):
    when: str
    next: str


class ChoiceStep(_Node):
    """Go to the `next` of the first rule whose `when` is true, else to `default`."""

    type: Literal["choice"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    choices: list[ChoiceRule] = Field(min_length=1, max_length=100)
    default: str | None = None


class Chain(_Node):
    """A chain of steps with its own entry: a parallel branch, or a map's iteration."""

    start_at: str | None = None
    steps: list[Step] = Field(min_length=1, max_length=100)


class ParallelStep(_Node):
    """Run every branch at once; the output is the list of branch outputs, in order."""

    type: Literal["parallel"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    branches: list[Chain] = Field(min_length=1, max_length=MAX_BRANCHES)
    fail_fast: bool = True
    output: Any = None
    assign: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None


class MapStep(_Node):
    """Run `steps` once per item of `items`; the output is the iteration outputs in order."""

    type: Literal["map"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    items: Any
    steps: list[Step] = Field(min_length=1, max_length=100)
    start_at: str | None = None
    max_concurrency: int = Field(default=10, ge=1, le=MAX_MAP_CONCURRENCY)
    tolerated_failure_count: int | None = Field(default=None, ge=0)
    tolerated_failure_percentage: float | None = Field(default=None, ge=0, le=100)
    output: Any = None
    assign: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None


class WaitStep(_Node):
    """A durable timer: `seconds` from now, or `until` an RFC 3339 time."""

    type: Literal["wait"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    seconds: Any = None
    until: Any = None
    next: str | None = None


class WorkflowStep(_Node):
    """Run another stored workflow as a Temporal child workflow; its result is the output."""

    type: Literal["workflow"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    workflow: str = Field(min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1)
    input: Any = None
    output: Any = None
    assign: dict[str, Any] = Field(default_factory=dict)
    catch: list[Catch] = Field(default_factory=list, max_length=20)
    next: str | None = None


class SucceedStep(_Node):
    """End the execution COMPLETED, with `output` (default: the data so far's last output)."""

    type: Literal["succeed"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    output: Any = None


class FailStep(_Node):
    """End the execution FAILED with the error type `error` and the message `cause`."""

    type: Literal["fail"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    error: str = Field(min_length=1, max_length=128)
    cause: Any = None


def _step_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "task"))
    return str(getattr(value, "type", "task"))


Step = Annotated[
    Annotated[TaskStep, Tag("task")]
    | Annotated[ChoiceStep, Tag("choice")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[MapStep, Tag("map")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[WorkflowStep, Tag("workflow")]
    | Annotated[SucceedStep, Tag("succeed")]
    | Annotated[FailStep, Tag("fail")],
    Discriminator(_step_type),
]

Chain.model_rebuild()
ParallelStep.model_rebuild()
MapStep.model_rebuild()


class Flow(Chain):
    """A whole definition in the workflow language (the top level of a stored workflow)."""

    output: Any = Field(default=None, description="the execution's result; default: last output")
    input_schema: dict[str, Any] | None = None
    max_steps: int | None = Field(
        default=None, ge=1, le=1_000_000, description="budget of executed steps; loops need it"
    )


def iter_steps(steps: list[Any]) -> Any:
    """Every step of a chain, depth first, nested branches and map chains included."""
    for step in steps:
        yield step
        if isinstance(step, ParallelStep):
            for branch in step.branches:
                yield from iter_steps(branch.steps)
        elif isinstance(step, MapStep):
            yield from iter_steps(step.steps)


def entry_of(chain: Chain | MapStep) -> str:
    """`start_at`, else the one step no other step of the chain points to, else the first."""
    if chain.start_at:
        return chain.start_at
    pointed = {target for step in chain.steps for target in targets(step)}
    for step in chain.steps:
        if step.id not in pointed:
            return step.id
    return chain.steps[0].id


def targets(step: Any) -> list[str]:
    """The step ids a step can go to next."""
    out: list[str] = []
    if getattr(step, "next", None):
        out.append(step.next)
    if isinstance(step, ChoiceStep):
        out.extend(rule.next for rule in step.choices)
        if step.default:
            out.append(step.default)
    for catch in getattr(step, "catch", []) or []:
        out.append(catch.next)
    return out


LANGUAGE_ONLY_TOP_LEVEL = ("start_at", "output", "input_schema", "max_steps")


def is_seed_chain(steps: list[dict[str, Any]], top_level: dict[str, Any]) -> bool:
    """True if a definition is the seed's chain: only `{id, service, action, next}` steps
    and no language field at the top. Such a definition runs exactly as it always did."""
    if any(top_level.get(name) is not None for name in LANGUAGE_ONLY_TOP_LEVEL):
        return False
    return all(
        isinstance(step, dict) and set(step) <= {"id", "service", "action", "next"}
        for step in steps
    )


Kind = Literal["chain", "flow"]


def catch_names(error_type: str | None, status_code: int | None) -> set[str]:
    """The `catch` error names a failed task matches (docs/workflow-language.md)."""
    names = {"ALL"}
    if isinstance(status_code, int):
        names.add(f"HTTP.{status_code}")
        if 400 <= status_code < 500:
            names.add("HTTP.4xx")
        elif status_code >= 500:
            names.add("HTTP.5xx")
    if error_type in ("ServiceTimeout", "Timeout"):
        names.add("Timeout")
    elif error_type == "ServiceUnreachable":
        names.add("Unreachable")
    elif error_type == "OutboundRefused":
        names.add("OutboundRefused")
    elif error_type in ("InputSchemaViolation", "OutputSchemaViolation", "InvalidResponse"):
        names.add("SchemaMismatch")
    elif error_type == "ExpressionLimit":
        names.add("ExpressionLimit")
    return names


def tolerated_failures(step: MapStep, count: int) -> int:
    """How many of a map's `count` iterations may fail before the map does."""
    allowed = step.tolerated_failure_count or 0
    if step.tolerated_failure_percentage is not None:
        allowed = max(allowed, int(count * step.tolerated_failure_percentage / 100))
    return allowed


def raw_tasks(steps: list[Any]) -> Iterator[dict[str, Any]]:
    """The task steps of stored steps (plain JSON, seed chain or flow), nested included."""
    for step in steps:
        if not isinstance(step, dict):
            continue
        if step.get("type", "task") == "task" and "service" in step:
            yield step
        for branch in step.get("branches") or []:
            if isinstance(branch, dict):
                yield from raw_tasks(branch.get("steps") or [])
        if step.get("type") == "map":
            yield from raw_tasks(step.get("steps") or [])
