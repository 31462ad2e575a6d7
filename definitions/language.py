"""The workflow language: step types beyond the seed's chain, and JSONata expressions.

A stored workflow is either the seed's chain (`[{id, service, action, next}]`, run exactly
as it always was) or a *flow*: steps of the types below, with `{% <JSONata> %}`
expressions for data mapping and routing. docs/workflow-language.md is the reference.

Each step type is a kind with a module of its own in steps/ (its model, how it is
checked and drawn); this module re-exports their models and adds what spans kinds: the
`Flow` at the top, walking its steps, what a seed chain is. definitions/flow_checks.py
checks a definition at save time, and workflows/interpreter.py runs one. They import
nothing but pydantic, so the workflow sandbox passes them through.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import Field

from steps.base import Chain, StepKind, entry_of, expression_body, is_expression
from steps.catch import ERROR_NAMES, Catch
from steps.choice import ChoiceRule, ChoiceStep
from steps.fail import FailStep
from steps.kinds import KINDS, Step
from steps.map import MAX_MAP_CONCURRENCY, MapStep
from steps.parallel import MAX_BRANCHES, ParallelStep
from steps.succeed import SucceedStep
from steps.task import TaskStep
from steps.wait import WaitStep
from steps.workflow import WorkflowStep

__all__ = [
    "ERROR_NAMES",
    "EXPRESSION_FIELDS",
    "KINDS",
    "LANGUAGE_ONLY_TOP_LEVEL",
    "MAX_BRANCHES",
    "MAX_MAP_CONCURRENCY",
    "Catch",
    "Chain",
    "ChoiceRule",
    "ChoiceStep",
    "FailStep",
    "Flow",
    "Kind",
    "MapStep",
    "ParallelStep",
    "Step",
    "SucceedStep",
    "TaskStep",
    "WaitStep",
    "WorkflowStep",
    "catch_names",
    "entry_of",
    "expression_body",
    "is_expression",
    "is_seed_chain",
    "iter_steps",
    "raw_tasks",
    "targets",
    "tolerated_failures",
]

EXPRESSION_FIELDS = ("input", "output", "assign", "when", "items", "seconds", "until", "cause")
"""The fields whose string values may be `{% <expr> %}` expressions; elsewhere a string
is a literal. Each kind lists its own (StepKind.expressions)."""


class Flow(Chain):
    """A whole definition in the workflow language (the top level of a stored workflow)."""

    output: Any = Field(default=None, description="the execution's result; default: last output")
    input_schema: dict[str, Any] | None = None
    max_steps: int | None = Field(
        default=None, ge=1, le=1_000_000, description="budget of executed steps; loops need it"
    )


def iter_steps(steps: Sequence[StepKind]) -> Iterator[Any]:
    """Every step of a chain, depth first, nested branches and map chains included."""
    for step in steps:
        yield step
        for nested in step.nested():
            yield from iter_steps(nested.chain.steps)


def targets(step: StepKind) -> list[str]:
    """The step ids a step can go to next."""
    return step.targets()


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


def raw_tasks(steps: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """The task steps of stored steps (plain JSON, seed chain or flow), nested included."""
    for step in steps:
        if not isinstance(step, dict):
            continue
        if step.get("type", "task") == "task" and "service" in step:
            yield step
        kind = KINDS.get(str(step.get("type", "task")))
        if kind is not None:
            inner = [part for _, model, part in kind.raw_parts(step) if model is None]
            yield from raw_tasks(inner)
