"""`workflow`: run another stored workflow as a Temporal child workflow.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from definitions.graph import Problem
from definitions.names import STEP_ID_PATTERN
from steps.base import Loc, RawPart, StepKind, Transition, assign_expressions, next_transition
from steps.catch import Catch, catch_expressions, catch_parts, catch_problems, catch_transitions


class WorkflowStep(StepKind):
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
        return f"workflow {self.workflow}" + (f" v{self.version}" if self.version else "")

    @classmethod
    def raw_parts(cls, value: dict[str, Any]) -> Iterator[RawPart]:
        return catch_parts(value)
