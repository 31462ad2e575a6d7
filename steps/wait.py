"""`wait`: a durable timer, `seconds` from now or `until` an RFC 3339 time.

run: moves here from workflows/interpreter.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from definitions.graph import Problem, problem
from definitions.names import STEP_ID_PATTERN
from steps.base import Loc, StepKind, Transition, is_expression, next_transition


class WaitStep(StepKind):
    """A durable timer: `seconds` from now, or `until` an RFC 3339 time."""

    type: Literal["wait"]
    id: str = Field(pattern=STEP_ID_PATTERN)
    seconds: Any = None
    until: Any = None
    next: str | None = None

    def transitions(self) -> list[Transition]:
        return next_transition(self.next)

    def problems(self, loc: Loc) -> list[Problem]:
        """Exactly one of `seconds` (0 or more) and `until` (with a time zone), unless an
        expression gives it at run time."""
        if (self.seconds is None) == (self.until is None):
            return [problem(loc, "a wait step needs exactly one of seconds and until")]
        if self.seconds is not None and not is_expression(self.seconds):
            if not isinstance(self.seconds, int | float) or isinstance(self.seconds, bool):
                return [problem([*loc, "seconds"], "seconds must be a number or an expression")]
            if self.seconds < 0:
                return [problem([*loc, "seconds"], "seconds must be 0 or more")]
        if self.until is not None and not is_expression(self.until):
            try:
                moment = datetime.fromisoformat(str(self.until).replace("Z", "+00:00"))
            except ValueError:
                return [
                    problem(
                        [*loc, "until"],
                        "until must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z",
                    )
                ]
            if moment.tzinfo is None:
                return [
                    problem([*loc, "until"], "until needs a time zone offset, e.g. Z or +01:00")
                ]
        return []

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        if self.seconds is not None:
            yield ["seconds"], self.seconds
        if self.until is not None:
            yield ["until"], self.until

    def label(self) -> str:
        if self.seconds is not None:
            return f"wait {self.seconds}s"
        return f"wait until {self.until}"
