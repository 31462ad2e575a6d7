"""`succeed`: end the execution COMPLETED.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from definitions.graph import Problem
from definitions.names import STEP_ID_PATTERN
from steps.base import Loc, StepKind, Transition


class SucceedStep(StepKind):
    """End the execution COMPLETED, with `output` (default: the data so far's last output)."""

    type: Literal["succeed"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    output: Any = None

    def transitions(self) -> list[Transition]:
        return []

    def problems(self, loc: Loc) -> list[Problem]:
        return []

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        if self.output is not None:
            yield ["output"], self.output

    def label(self) -> str:
        return "succeed"
