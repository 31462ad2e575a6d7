"""Checks a definition must pass before the registry stores it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from definitions.graph import Problem, problem, validate_graph
from definitions.models import ActionSpec, StepSpec

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
