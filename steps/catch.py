"""`catch`: where a failed task or child workflow goes once its retries are exhausted.

Shared by the kinds that have one (steps/task.py, steps/workflow.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from definitions.graph import Problem, problem
from steps.base import Loc, Node, RawPart, Transition, assign_expressions, plain_parts

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

_HTTP_CODE = re.compile(r"^HTTP\.[1-5]\d\d$")


class Catch(Node):
    """Where a failed task goes once its retries are exhausted."""

    errors: list[str] = Field(min_length=1, max_length=20)
    next: str
    assign: dict[str, Any] = Field(default_factory=dict)


def catch_transitions(catches: list[Catch]) -> list[Transition]:
    return [
        Transition(["catch", index, "next"], catch.next, f"catch {', '.join(catch.errors)}")
        for index, catch in enumerate(catches)
    ]


def catch_expressions(catches: list[Catch]) -> Iterator[tuple[Loc, Any]]:
    for index, catch in enumerate(catches):
        yield from assign_expressions(catch.assign, ["catch", index])


def catch_problems(catches: list[Catch], loc: Loc) -> list[Problem]:
    """Every error name a catch lists must be one a failure can have."""
    return [
        problem(
            [*loc, "catch", index, "errors", number],
            f"unknown error name '{name}'; use HTTP.4xx, HTTP.5xx, HTTP.<code> "
            f"(e.g. HTTP.404), {', '.join(n for n in ERROR_NAMES if 'HTTP' not in n)}",
        )
        for index, catch in enumerate(catches)
        for number, name in enumerate(catch.errors)
        if name not in ERROR_NAMES and not _HTTP_CODE.match(name)
    ]


def catch_parts(value: dict[str, Any]) -> Iterator[RawPart]:
    return plain_parts(value.get("catch"), "catch", Catch)
