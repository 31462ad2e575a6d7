"""Checks a definition must pass before the registry stores it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for

from definitions.flow_checks import check_flow
from definitions.graph import Problem, problem, validate_graph
from definitions.language import Flow, MapStep, ParallelStep, TaskStep, iter_steps
from definitions.models import ActionSpec, StepSpec
from schemas.rules import pattern_problems

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def validate_actions(actions: Sequence[ActionSpec]) -> list[Problem]:
    """Action names are unique and both schemas of each action are valid JSON Schemas."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, action in enumerate(actions):
        if action.name in seen:
            problems.append(
                problem(
                    ["actions", index, "name"],
                    f"action '{action.name}' is declared twice; action names must be unique",
                )
            )
        seen.add(action.name)
        for field in ("input_schema", "output_schema"):
            schema = getattr(action, field)
            loc: list[str | int] = ["actions", index, field]
            size = len(json.dumps(schema))
            if size > MAX_SCHEMA_BYTES:
                problems.append(
                    problem(loc, f"{field} is {size} bytes; the limit is {MAX_SCHEMA_BYTES}")
                )
                continue
            if _depth(schema) > MAX_SCHEMA_DEPTH:
                problems.append(
                    problem(loc, f"{field} nests deeper than {MAX_SCHEMA_DEPTH} levels")
                )
                continue
            try:
                validator_for(schema).check_schema(schema)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
                problems.append(
                    problem(
                        loc,
                        f"{field} of action '{action.name}' is not a valid JSON Schema at "
                        f"{where}: {exc.message}",
                    )
                )
                continue
            # Patterns run on RE2 in linear time; one it cannot run is refused here.
            for inner, message in pattern_problems(schema):
                problems.append(problem([*loc, *inner], message))
    return problems


def validate_steps(
    steps: Sequence[StepSpec], services: dict[str, list[ActionSpec]], *, workflow_name: str
) -> list[Problem]:
    """The graph is valid and every step names a registered service and action.

    Args:
        steps: the workflow's steps.
        services: the registered services the steps name, with their actions.
        workflow_name: used in the messages.
    """
    problems = validate_graph(steps)
    for index, step in enumerate(steps):
        actions = services.get(step.service)
        if actions is None:
            problems.append(
                problem(
                    ["steps", index, "service"],
                    f"workflow '{workflow_name}' step '{step.id}' references unknown service "
                    f"'{step.service}'; register it first (POST /api/services) or fix the name",
                )
            )
            continue
        names = [a.name for a in actions]
        if step.action not in names:
            problems.append(
                problem(
                    ["steps", index, "action"],
                    f"workflow '{workflow_name}' references unknown action '{step.action}' "
                    f"of service '{step.service}'; registered actions: {', '.join(names)}",
                )
            )
    return problems


def validate_flow(
    flow: Flow, services: dict[str, list[ActionSpec]], *, workflow_name: str
) -> tuple[list[Problem], list[Problem]]:
    """A flow's problems and warnings: the language's checks (definitions/flow_checks.py),
    every task naming a registered service and action, and its input_schema.

    Args:
        flow: the definition.
        services: the registered services its tasks name, with their actions.
        workflow_name: used in the messages.
    """
    locations = step_locations(flow)

    def output_schema(step: TaskStep) -> dict[str, Any] | None:
        for action in services.get(step.service, []):
            if action.name == step.action:
                return action.output_schema
        return None

    problems, warnings = check_flow(flow, output_schema=output_schema)
    for step in (s for s in iter_steps(flow.steps) if isinstance(s, TaskStep)):
        loc = locations[step.id]
        actions = services.get(step.service)
        if actions is None:
            problems.append(
                problem(
                    [*loc, "service"],
                    f"workflow '{workflow_name}' step '{step.id}' references unknown service "
                    f"'{step.service}'; register it first (POST /api/services) or fix the name",
                )
            )
        elif step.action not in [a.name for a in actions]:
            problems.append(
                problem(
                    [*loc, "action"],
                    f"workflow '{workflow_name}' references unknown action '{step.action}' "
                    f"of service '{step.service}'; registered actions: "
                    f"{', '.join(a.name for a in actions)}",
                )
            )
    if flow.input_schema is not None:
        try:
            validator_for(flow.input_schema, default=Draft202012Validator).check_schema(
                flow.input_schema
            )
        except SchemaError as exc:
            problems.append(
                problem(["input_schema"], f"input_schema is not a valid JSON Schema: {exc.message}")
            )
        for where, message in pattern_problems(flow.input_schema):
            problems.append(problem(["input_schema", *where], message))
    return problems, warnings


def step_locations(flow: Flow) -> dict[str, list[str | int]]:
    """Where each step is in the definition (["steps", 2, "branches", 0, "steps", 1])."""
    out: dict[str, list[str | int]] = {}

    def walk(steps: Sequence[Any], loc: list[str | int]) -> None:
        for index, step in enumerate(steps):
            here = [*loc, "steps", index]
            out.setdefault(step.id, here)
            if isinstance(step, ParallelStep):
                for number, branch in enumerate(step.branches):
                    walk(branch.steps, [*here, "branches", number])
            elif isinstance(step, MapStep):
                walk(step.steps, here)

    walk(flow.steps, [])
    return out
