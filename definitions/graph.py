"""Checks of a workflow's step graph: unique ids, known `next`, one entry, no cycle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from definitions.models import StepSpec

Problem = dict[str, Any]
"""One validation problem, `{"loc": [...], "msg": "...", "type": "value_error"}`, shaped
as FastAPI reports them. `loc` is a place in the definition (["steps", 2, "next"]); the
gateway adds where in the request the definition was ("body")."""


def problem(loc: Sequence[str | int], msg: str) -> Problem:
    return {"loc": list(loc), "msg": msg, "type": "value_error"}


def validate_graph(steps: Sequence[StepSpec]) -> list[Problem]:
    """Return every problem of the step graph; an empty list means it is runnable.

    The steps must form one chain: unique ids, each `next` names a step or is null,
    exactly one step that no other step points to (the entry), no cycle, and every
    step reachable from the entry.
    """
    if not steps:
        return [problem(["steps"], "a workflow needs at least one step")]
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id in ids:
            problems.append(
                problem(
                    ["steps", index, "id"],
                    f"step id '{step.id}' is used twice (steps {ids[step.id]} and {index}); "
                    "give each step its own id",
                )
            )
        else:
            ids[step.id] = index
    for index, step in enumerate(steps):
        if step.next is not None and step.next not in ids:
            problems.append(
                problem(
                    ["steps", index, "next"],
                    f"step '{step.id}' has next '{step.next}', which is no step of this "
                    f"workflow; use one of {sorted(ids)} or null",
                )
            )
    if problems:
        return problems

    targets = [step.next for step in steps if step.next is not None]
    pointed_twice = sorted({t for t in targets if targets.count(t) > 1})
    for target in pointed_twice:
        sources = [s.id for s in steps if s.next == target]
        problems.append(
            problem(
                ["steps"],
                f"step '{target}' is the next of several steps ({', '.join(sources)}); "
                "steps form one chain, so each step may follow at most one other",
            )
        )
    entries = [step.id for step in steps if step.id not in set(targets)]
    if len(entries) != 1:
        problems.append(
            problem(
                ["steps"],
                "a workflow needs exactly one entry step (a step no other step names as next); "
                f"found {len(entries)}: {entries}",
            )
        )
    if problems:
        return problems

    by_id = {step.id: step for step in steps}
    seen: list[str] = []
    current: str | None = entries[0]
    while current is not None:
        if current in seen:
            problems.append(
                problem(
                    ["steps"],
                    f"the steps form a cycle: {' -> '.join([*seen, current])}; "
                    "the last step must have next null",
                )
            )
            return problems
        seen.append(current)
        current = by_id[current].next
    unreachable = [step.id for step in steps if step.id not in seen]
    if unreachable:
        problems.append(
            problem(
                ["steps"],
                f"steps {unreachable} cannot be reached from the entry step '{entries[0]}'",
            )
        )
    return problems


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
