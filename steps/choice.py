"""`choice`: go to the `next` of the first rule whose `when` is true, else to `default`.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from definitions.graph import Problem, problem
from definitions.names import STEP_ID_PATTERN
from steps.base import Loc, Node, RawPart, StepKind, Transition, is_expression, plain_parts


class ChoiceRule(Node):
    when: str
    next: str


class ChoiceStep(StepKind):
    """Go to the `next` of the first rule whose `when` is true, else to `default`."""

    type: Literal["choice"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    choices: list[ChoiceRule] = Field(min_length=1, max_length=100)
    default: str | None = None

    def transitions(self) -> list[Transition]:
        out = [
            Transition(["choices", index, "next"], rule.next, rule.when)
            for index, rule in enumerate(self.choices)
        ]
        if self.default:
            out.append(Transition(["default"], self.default, "default"))
        return out

    def problems(self, loc: Loc) -> list[Problem]:
        return [
            problem(
                [*loc, "choices", index, "when"],
                'when must be an expression, e.g. "{% $input.score > 0.5 %}"',
            )
            for index, rule in enumerate(self.choices)
            if not is_expression(rule.when)
        ]

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        for index, rule in enumerate(self.choices):
            yield ["choices", index, "when"], rule.when

    def label(self) -> str:
        return f"choice of {len(self.choices)}" + (" or default" if self.default else "")

    @classmethod
    def raw_parts(cls, value: dict[str, Any]) -> Iterator[RawPart]:
        return plain_parts(value.get("choices"), "choices", ChoiceRule)
