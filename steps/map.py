"""`map`: run `steps` once per item of `items`; the output is the iteration outputs in order.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from definitions.graph import Problem, problem
from definitions.names import STEP_ID_PATTERN
from steps.base import (
    Loc,
    Nested,
    RawPart,
    StepKind,
    Transition,
    assign_expressions,
    is_expression,
    next_transition,
    step_parts,
)

if TYPE_CHECKING:
    from steps.kinds import Step

MAX_MAP_CONCURRENCY = 1000


class MapStep(StepKind):
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

    def transitions(self) -> list[Transition]:
        return next_transition(self.next)

    def nested(self) -> list[Nested]:
        # The iteration's steps sit in the map step itself, at [*map, "steps", i].
        return [Nested([], self, None, "each item", kept=False)]

    def problems(self, loc: Loc) -> list[Problem]:
        if is_expression(self.items) or isinstance(self.items, list):
            return []
        return [
            problem(
                [*loc, "items"],
                "items must be an array or an expression that yields one, e.g. "
                '"{% $input.documents %}"',
            )
        ]

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        if self.output is not None:
            yield ["output"], self.output
        yield from assign_expressions(self.assign, [])
        if self.items is not None:
            yield ["items"], self.items

    def label(self) -> str:
        return f"map over {self.items} ({self.max_concurrency} at a time)"

    @classmethod
    def raw_parts(cls, value: dict[str, Any]) -> Iterator[RawPart]:
        return step_parts(value.get("steps"), [])
