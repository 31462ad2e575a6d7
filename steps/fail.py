"""`fail`: end the execution FAILED with an error type and a message.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from definitions.graph import Problem, problem
from definitions.names import STEP_ID_PATTERN
from steps.base import Loc, StepKind, Transition


class FailStep(StepKind):
    """End the execution FAILED with the error type `error` and the message `cause`."""

    type: Literal["fail"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    error: str = Field(min_length=1, max_length=128)
    cause: Any = None

    def transitions(self) -> list[Transition]:
        return []

    def problems(self, loc: Loc) -> list[Problem]:
        if self.cause is not None and not isinstance(self.cause, str):
            return [problem([*loc, "cause"], "cause must be a string or an expression")]
        return []

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        if self.cause is not None:
            yield ["cause"], self.cause

    def label(self) -> str:
        return f"fail {self.error}"
