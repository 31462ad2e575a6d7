"""Save-time checks of a flow (a definition in the workflow language).

Each problem is `{loc, msg}` with `loc` inside the definition (["steps", 2, "next"]);
the gateway answers them as a 422. Warnings have the same shape and do not refuse the
definition. What the registry knows (which services and actions exist, their output
schemas) comes in as arguments, so these checks stay pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from definitions.expressions import check, expressions_in, step_references
from definitions.graph import Problem, problem
from definitions.language import (
    ERROR_NAMES,
    EXPRESSION_FIELDS,
    ChoiceStep,
    FailStep,
    Flow,
    MapStep,
    ParallelStep,
    TaskStep,
    WaitStep,
    entry_of,
    is_expression,
    targets,
)

_HTTP_CODE = re.compile(r"^HTTP\.[1-5]\d\d$")
_PROPERTY_AFTER_OUTPUT = re.compile(
    r"\$steps\.(?:`([^`]+)`|([A-Za-z0-9_]+))\.output\.(?:`([^`]+)`|([A-Za-z_][A-Za-z0-9_]*))"
)
_UNQUOTED_AFTER_STEPS = re.compile(r"\$steps\.([A-Za-z0-9_][A-Za-z0-9_-]*)")
"""What follows `$steps.` up to the first character no step id holds, hyphens included."""

OutputSchemas = Callable[[TaskStep], dict[str, Any] | None]
"""The output_schema of a task's action, or None if the registry does not know it."""


class _Chain:
    """One chain of the definition (the top level, a parallel branch, a map's steps)."""

    def __init__(
        self, steps: Sequence[Any], start_at: str | None, loc: list[str | int], owner: Any
    ) -> None:
        self.steps = list(steps)
        self.start_at = start_at
        self.loc = loc
        self.owner = owner  # the parallel or map step that holds it; None at the top
        self.index = {step.id: i for i, step in enumerate(self.steps)}

    def step_loc(self, step_id: str) -> list[str | int]:
        return [*self.loc, "steps", self.index[step_id]]


def _chains(flow: Flow) -> Iterator[_Chain]:
    pending = [_Chain(flow.steps, flow.start_at, [], None)]
    while pending:
        chain = pending.pop(0)
        yield chain
        for step in chain.steps:
            loc = chain.step_loc(step.id)
            if isinstance(step, ParallelStep):
                for number, branch in enumerate(step.branches):
                    pending.append(
                        _Chain(branch.steps, branch.start_at, [*loc, "branches", number], step)
                    )
            elif isinstance(step, MapStep):
                pending.append(_Chain(step.steps, step.start_at, loc, step))


def check_flow(
    flow: Flow, *, output_schema: OutputSchemas | None = None
) -> tuple[list[Problem], list[Problem]]:
    """Every problem of a flow, and every warning; no problems means it can be stored."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    chains = list(_chains(flow))
    where: dict[str, tuple[_Chain, list[str | int]]] = {}
    for chain in chains:
        for step in chain.steps:
            loc = chain.step_loc(step.id)
            if step.id in where:
                problems.append(
                    problem(
                        [*loc, "id"],
                        f"step id '{step.id}' is used twice; step ids are unique across the "
                        "whole definition, branches and map steps included",
                    )
                )
            else:
                where[step.id] = (chain, loc)

    looped = False
    upstream_of: dict[str, set[str]] = {}
    for chain in chains:
        entry = _entry(chain, problems)
        graph = {step.id: [t for t in targets(step) if t] for step in chain.steps}
        for step in chain.steps:
            loc = chain.step_loc(step.id)
            for field, target in _named_targets(step):
                if target not in chain.index:
                    elsewhere = " (it is in another branch or chain)" if target in where else ""
                    problems.append(
                        problem(
                            [*loc, *field],
                            f"'{target}' is not a step of this chain{elsewhere}; name a step of "
                            f"the same chain: {', '.join(chain.index)}",
                        )
                    )
        if entry is None:
            continue
        reachable = _reachable(graph, entry)
        for step in chain.steps:
            if step.id not in reachable:
                problems.append(
                    problem(
                        chain.step_loc(step.id),
                        f"step '{step.id}' can never run: no step of its chain leads to it "
                        f"from the entry '{entry}'",
                    )
                )
        if _has_cycle(graph, entry):
            looped = True
        for step in chain.steps:
            before = {s for s in reachable if step.id in _reachable(graph, s) and s != step.id}
            if step.id in _reachable_from_successors(graph, step.id):
                before.add(step.id)  # in a loop, its own earlier output
            upstream_of[step.id] = before | _enclosing_upstream(chain, chains, upstream_of)
    if looped and flow.max_steps is None:
        problems.append(
            problem(
                ["max_steps"],
                "the definition loops (a step leads back to an earlier one); set max_steps, "
                "the most steps one execution may run",
            )
        )

    # After a parallel, its branches' steps are upstream too (their outputs are kept).
    for chain in chains:
        for step in chain.steps:
            inner = set()
            for other_id in upstream_of.get(step.id, set()):
                other = where.get(other_id)
                if other and isinstance(_step(other), ParallelStep):
                    inner |= {s.id for b in _step(other).branches for s in _all(b.steps)}
            upstream_of[step.id] = upstream_of.get(step.id, set()) | inner

    for chain in chains:
        for step in chain.steps:
            loc = chain.step_loc(step.id)
            problems.extend(_step_problems(step, loc))
            for field, value in _expression_fields(step):
                for expression in expressions_in(value):
                    hyphenated = _hyphenated_ids(expression, where)
                    reason = check(expression)
                    if reason:
                        hint = _backtick_hint(hyphenated.values())
                        problems.append(problem([*loc, *field], f"{expression!r} {reason}{hint}"))
                        continue
                    for ref in sorted(step_references(expression)):
                        if ref not in where:
                            hint = _backtick_hint([hyphenated[ref]] if ref in hyphenated else [])
                            problems.append(
                                problem(
                                    [*loc, *field],
                                    f"$steps.{ref} names no step of this definition{hint}",
                                )
                            )
                        elif ref not in upstream_of.get(step.id, set()) and not (
                            ref == step.id and field[0] in ("output", "assign")
                        ):
                            problems.append(
                                problem(
                                    [*loc, *field],
                                    f"$steps.{ref} is not upstream of step '{step.id}': it "
                                    "has not run when this step runs",
                                )
                            )
                    if output_schema is not None:
                        _property_checks(
                            expression, [*loc, *field], where, output_schema, problems, warnings
                        )
    for expression in expressions_in(flow.output):
        reason = check(expression)
        if reason:
            hint = _backtick_hint(_hyphenated_ids(expression, where).values())
            problems.append(problem(["output"], f"{expression!r} {reason}{hint}"))
    return problems, warnings


def _hyphenated_ids(expression: str, known: Container[str]) -> dict[str, str]:
    """Unquoted references to hyphenated step ids: `$steps.extract-text.output` parses as
    `$steps.extract - text.output`, so it reads step `extract`. Maps each such `extract`
    to the longest known step id written there (`extract-text`)."""
    meant: dict[str, str] = {}
    for written in _UNQUOTED_AFTER_STEPS.findall(expression):
        parts = written.split("-")
        for end in range(len(parts), 1, -1):
            candidate = "-".join(parts[:end])
            if candidate in known:
                meant.setdefault(parts[0], candidate)
                break
    return meant


def _backtick_hint(step_ids: Iterable[str]) -> str:
    """What to append to a problem caused by unquoted hyphenated step ids (or "")."""
    quoted = ", ".join(f"$steps.`{step_id}`" for step_id in sorted(set(step_ids)))
    if not quoted:
        return ""
    return f"; did you mean {quoted}? Step ids with '-' are quoted with backticks in expressions"


def _step(entry: tuple[_Chain, list[str | int]]) -> Any:
    chain, loc = entry
    return chain.steps[int(loc[-1])]


def _all(steps: Sequence[Any]) -> Iterator[Any]:
    for step in steps:
        yield step
        if isinstance(step, ParallelStep):
            for branch in step.branches:
                yield from _all(branch.steps)
        elif isinstance(step, MapStep):
            yield from _all(step.steps)


def _entry(chain: _Chain, problems: list[Problem]) -> str | None:
    if chain.start_at is not None:
        if chain.start_at not in chain.index:
            problems.append(
                problem(
                    [*chain.loc, "start_at"],
                    f"start_at '{chain.start_at}' is not a step of this chain",
                )
            )
            return None
        return chain.start_at
    pointed = {t for step in chain.steps for t in targets(step)}
    entries = [step.id for step in chain.steps if step.id not in pointed]
    if len(entries) > 1:
        problems.append(
            problem(
                [*chain.loc, "steps"],
                f"steps {', '.join(entries)} are all entries (no step points to them); "
                "set start_at, or link them",
            )
        )
        return None
    return entries[0] if entries else chain.steps[0].id


def _named_targets(step: Any) -> Iterator[tuple[list[str | int], str]]:
    if getattr(step, "next", None):
        yield ["next"], step.next
    if isinstance(step, ChoiceStep):
        for index, rule in enumerate(step.choices):
            yield ["choices", index, "next"], rule.next
        if step.default:
            yield ["default"], step.default
    for index, catch in enumerate(getattr(step, "catch", []) or []):
        yield ["catch", index, "next"], catch.next


def _reachable(graph: dict[str, list[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        if node in seen or node not in graph:
            continue
        seen.add(node)
        stack.extend(graph[node])
    return seen


def _reachable_from_successors(graph: dict[str, list[str]], node: str) -> set[str]:
    out: set[str] = set()
    for successor in graph.get(node, []):
        out |= _reachable(graph, successor)
    return out


def _has_cycle(graph: dict[str, list[str]], entry: str) -> bool:
    return any(node in _reachable_from_successors(graph, node) for node in _reachable(graph, entry))


def _enclosing_upstream(
    chain: _Chain, chains: list[_Chain], upstream_of: dict[str, set[str]]
) -> set[str]:
    """A nested chain also sees what was upstream of the parallel or map holding it."""
    if chain.owner is None:
        return set()
    return set(upstream_of.get(chain.owner.id, set()))


def _expression_fields(step: Any) -> Iterator[tuple[list[str | int], Any]]:
    for field in EXPRESSION_FIELDS:
        value = getattr(step, field, None)
        if value is None:
            continue
        if field == "assign":
            for name, member in value.items():
                yield ["assign", name], member
        else:
            yield [field], value
    if isinstance(step, ChoiceStep):
        for index, rule in enumerate(step.choices):
            yield ["choices", index, "when"], rule.when
    for index, catch in enumerate(getattr(step, "catch", []) or []):
        for name, member in catch.assign.items():
            yield ["catch", index, "assign", name], member


def _step_problems(step: Any, loc: list[str | int]) -> list[Problem]:
    out: list[Problem] = []
    for index, catch in enumerate(getattr(step, "catch", []) or []):
        for number, name in enumerate(catch.errors):
            if name not in ERROR_NAMES and not _HTTP_CODE.match(name):
                out.append(
                    problem(
                        [*loc, "catch", index, "errors", number],
                        f"unknown error name '{name}'; use HTTP.4xx, HTTP.5xx, HTTP.<code> "
                        f"(e.g. HTTP.404), {', '.join(n for n in ERROR_NAMES if 'HTTP' not in n)}",
                    )
                )
    if isinstance(step, ChoiceStep):
        for index, rule in enumerate(step.choices):
            if not is_expression(rule.when):
                out.append(
                    problem(
                        [*loc, "choices", index, "when"],
                        'when must be an expression, e.g. "{% $input.score > 0.5 %}"',
                    )
                )
    if isinstance(step, MapStep) and not is_expression(step.items):
        if not isinstance(step.items, list):
            out.append(
                problem(
                    [*loc, "items"],
                    "items must be an array or an expression that yields one, e.g. "
                    '"{% $input.documents %}"',
                )
            )
    if isinstance(step, WaitStep):
        out.extend(_wait_problems(step, loc))
    if isinstance(step, FailStep) and step.cause is not None and not isinstance(step.cause, str):
        out.append(problem([*loc, "cause"], "cause must be a string or an expression"))
    return out


def _wait_problems(step: WaitStep, loc: list[str | int]) -> list[Problem]:
    if (step.seconds is None) == (step.until is None):
        return [problem(loc, "a wait step needs exactly one of seconds and until")]
    if step.seconds is not None and not is_expression(step.seconds):
        if not isinstance(step.seconds, int | float) or isinstance(step.seconds, bool):
            return [problem([*loc, "seconds"], "seconds must be a number or an expression")]
        if step.seconds < 0:
            return [problem([*loc, "seconds"], "seconds must be 0 or more")]
    if step.until is not None and not is_expression(step.until):
        try:
            moment = datetime.fromisoformat(str(step.until).replace("Z", "+00:00"))
        except ValueError:
            return [
                problem(
                    [*loc, "until"], "until must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z"
                )
            ]
        if moment.tzinfo is None:
            return [problem([*loc, "until"], "until needs a time zone offset, e.g. Z or +01:00")]
    return []


def _property_checks(
    expression: str,
    loc: list[str | int],
    where: dict[str, tuple[_Chain, list[str | int]]],
    output_schema: OutputSchemas,
    problems: list[Problem],
    warnings: list[Problem],
) -> None:
    """`$steps.X.output.p`: refused if X's output_schema rules p out, a warning if it does
    not declare it (only for tasks whose output is the response as it is)."""
    for quoted_id, plain_id, quoted_prop, plain_prop in _PROPERTY_AFTER_OUTPUT.findall(expression):
        step_id, prop = quoted_id or plain_id, quoted_prop or plain_prop
        found = where.get(step_id)
        if found is None:
            continue
        step = _step(found)
        if not isinstance(step, TaskStep) or step.output is not None or step.optional:
            continue
        schema = output_schema(step)
        if not isinstance(schema, dict):
            continue
        properties = schema.get("properties")
        declared = isinstance(properties, dict) and prop in properties
        if declared:
            continue
        if schema.get("additionalProperties") is False:
            problems.append(
                problem(
                    loc,
                    f"$steps.{step_id}.output.{prop}: the output_schema of "
                    f"{step.service}.{step.action} allows no property '{prop}' "
                    f"(additionalProperties is false); it declares "
                    f"{', '.join(properties) if isinstance(properties, dict) else 'none'}",
                )
            )
        else:
            warnings.append(
                problem(
                    loc,
                    f"$steps.{step_id}.output.{prop}: the output_schema of "
                    f"{step.service}.{step.action} does not declare '{prop}'",
                )
            )


__all__ = ["check_flow", "entry_of"]
