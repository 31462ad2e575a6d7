"""Checks a definition must pass before the registry stores it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for

from definitions.flow_checks import check_flow
from definitions.graph import Problem, problem
from definitions.language import Flow, TaskStep
from definitions.models import ActionSpec
from definitions.parsing import Parsed
from schemas.rules import pattern_problems
from steps.base import StepKind

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


def validate_definition(
    parsed: Parsed, services: dict[str, list[ActionSpec]], *, workflow_name: str
) -> tuple[list[Problem], list[Problem]]:
    """A parsed definition's problems and warnings, either language: a seed chain is
    checked as the flow of task steps it is read as, with the chain's rules.

    Args:
        parsed: a definition that parsed (no `parsed.problems`).
        services: the registered services its tasks name, with their actions.
        workflow_name: used in the messages.
    """
    return validate_flow(
        parsed.as_flow, services, workflow_name=workflow_name, line=parsed.chain is not None
    )


def validate_flow(
    flow: Flow,
    services: dict[str, list[ActionSpec]],
    *,
    workflow_name: str,
    line: bool = False,
) -> tuple[list[Problem], list[Problem]]:
    """A flow's problems and warnings: the language's checks (definitions/flow_checks.py),
    every task naming a registered service and action, and its input_schema.

    Args:
        flow: the definition.
        services: the registered services its tasks name, with their actions.
        workflow_name: used in the messages.
        line: the flow is a seed chain: check it with the chain's rules (check_flow).
    """

    def output_schema(step: TaskStep) -> dict[str, Any] | None:
        for action in services.get(step.service, []):
            if action.name == step.action:
                return action.output_schema
        return None

    problems, warnings = check_flow(flow, output_schema=output_schema, line=line)
    for loc, step in _located_steps(flow.steps, []):
        called = step.service_call()
        if called is None:
            continue
        service, action = called
        actions = services.get(service)
        if actions is None:
            problems.append(
                problem(
                    [*loc, "service"],
                    f"workflow '{workflow_name}' step '{step.id}' references unknown service "
                    f"'{service}'; register it first (POST /api/services) or fix the name",
                )
            )
        elif action not in [a.name for a in actions]:
            problems.append(
                problem(
                    [*loc, "action"],
                    f"workflow '{workflow_name}' references unknown action '{action}' "
                    f"of service '{service}'; registered actions: "
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
    for loc, step in _located_steps(flow.steps, []):
        out.setdefault(step.id, loc)
    return out


def _located_steps(
    steps: Sequence[StepKind], loc: list[str | int]
) -> Iterator[tuple[list[str | int], StepKind]]:
    """Every step with where it is, depth first, as `iter_steps` gives them."""
    for index, step in enumerate(steps):
        here = [*loc, "steps", index]
        yield here, step
        for nested in step.nested():
            yield from _located_steps(nested.chain.steps, [*here, *nested.loc])
