"""`task`: call `service.action`, one Temporal activity with the action's retry policy.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from definitions.graph import Problem
from definitions.names import STEP_ID_PATTERN
from steps.base import (
    Loc,
    OutputSchemas,
    RawPart,
    StepKind,
    Transition,
    assign_expressions,
    next_transition,
)
from steps.catch import Catch, catch_expressions, catch_parts, catch_problems, catch_transitions


class TaskStep(StepKind):
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

    def transitions(self) -> list[Transition]:
        return next_transition(self.next) + catch_transitions(self.catch)

    def problems(self, loc: Loc) -> list[Problem]:
        return catch_problems(self.catch, loc)

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        if self.input is not None:
            yield ["input"], self.input
        if self.output is not None:
            yield ["output"], self.output
        yield from assign_expressions(self.assign, [])
        yield from catch_expressions(self.catch)

    def label(self) -> str:
        return f"{self.service}.{self.action}"

    def service_call(self) -> tuple[str, str] | None:
        return self.service, self.action

    def known_output_schema(self, output_schema: OutputSchemas) -> dict[str, Any] | None:
        # A projected output, or an optional task's (null when it failed), is not the
        # response as the action declares it.
        if self.output is not None or self.optional:
            return None
        return output_schema(self)

    @classmethod
    def raw_parts(cls, value: dict[str, Any]) -> Iterator[RawPart]:
        return catch_parts(value)
