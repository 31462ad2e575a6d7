"""The shape of a save-time problem, and a seed chain's run order.

Problems are found by the one checker of both languages (definitions/flow_checks.py);
this module imports no model, so the step kinds (steps/) can report problems too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from definitions.models import StepSpec

Problem = dict[str, Any]
"""One validation problem, `{"loc": [...], "msg": "...", "type": "value_error"}`, shaped
as FastAPI reports them. `loc` is a place in the definition (["steps", 2, "next"]); the
gateway adds where in the request the definition was ("body")."""


def problem(loc: Sequence[str | int], msg: str) -> Problem:
    return {"loc": list(loc), "msg": msg, "type": "value_error"}


def step_order(steps: Sequence[StepSpec]) -> list[str]:
    """The step ids in execution order; the graph must be valid."""
    targets = {step.next for step in steps}
    by_id = {step.id: step for step in steps}
    current: str | None = next(step.id for step in steps if step.id not in targets)
    order: list[str] = []
    while current is not None:
        order.append(current)
        current = by_id[current].next
    return order
