"""`parallel`: run every branch at once; the output is the list of branch outputs, in order.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from definitions.graph import Problem
from definitions.names import STEP_ID_PATTERN
from steps.base import (
    Chain,
    Loc,
    Nested,
    RawPart,
    StepKind,
    Transition,
    assign_expressions,
    next_transition,
    step_parts,
)

MAX_BRANCHES = 20


class ParallelStep(StepKind):
    """Run every branch at once; the output is the list of branch outputs, in order."""

    type: Literal["parallel"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    branches: list[Chain] = Field(min_length=1, max_length=MAX_BRANCHES)
    fail_fast: bool = True
    output: Any = None
    assign: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None

    def transitions(self) -> list[Transition]:
        return next_transition(self.next)

    def nested(self) -> list[Nested]:
        return [
            Nested(["branches", number], branch, number, f"branch {number}", kept=True)
            for number, branch in enumerate(self.branches)
        ]

    def problems(self, loc: Loc) -> list[Problem]:
        return []

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        if self.output is not None:
            yield ["output"], self.output
        yield from assign_expressions(self.assign, [])

    def label(self) -> str:
        return f"parallel, {len(self.branches)} branches"

    @classmethod
    def raw_parts(cls, value: dict[str, Any]) -> Iterator[RawPart]:
        branches = value.get("branches")
        if not isinstance(branches, list):
            return
        for number, branch in enumerate(branches):
            if isinstance(branch, dict):
                yield ["branches", number], Chain, branch
                yield from step_parts(branch.get("steps"), ["branches", number])
