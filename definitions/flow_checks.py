"""Save-time checks of a definition: a flow of the workflow language, or a seed chain read
as a flow of task steps.

Each problem is `{loc, msg}` with `loc` inside the definition (["steps", 2, "next"]);
the gateway answers them as a 422. Warnings have the same shape and do not refuse the
definition. What the registry knows (which services and actions exist, their output
schemas) comes in as arguments, so these checks stay pure. What depends on a step's kind
(its targets, its own rules, its expression fields) the kind answers (steps/).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator, Sequence

from definitions.expressions import check, expressions_in, step_references
from definitions.graph import Problem, problem
from definitions.language import Flow, entry_of, iter_steps
from steps.base import OutputSchemas, StepKind

_PROPERTY_AFTER_OUTPUT = re.compile(
    r"\$steps\.(?:`([^`]+)`|([A-Za-z0-9_]+))\.output\.(?:`([^`]+)`|([A-Za-z_][A-Za-z0-9_]*))"
)
_UNQUOTED_AFTER_STEPS = re.compile(r"\$steps\.([A-Za-z0-9_][A-Za-z0-9_-]*)")
"""What follows `$steps.` up to the first character no step id holds, hyphens included."""


class _Chain:
    """One chain of the definition (the top level, a parallel branch, a map's steps)."""

    def __init__(
        self,
        steps: Sequence[StepKind],
        start_at: str | None,
        loc: list[str | int],
        owner: StepKind | None,
    ) -> None:
        self.steps = list(steps)
        self.start_at = start_at
        self.loc = loc
        self.owner = owner  # the step that holds it (a parallel, a map); None at the top
        self.index = {step.id: i for i, step in enumerate(self.steps)}

    def step_loc(self, step_id: str) -> list[str | int]:
        return [*self.loc, "steps", self.index[step_id]]


_Where = dict[str, tuple[_Chain, list[str | int]]]
"""Each step id -> its chain and where it is (its first place, if it is used twice)."""


def _chains(flow: Flow) -> Iterator[_Chain]:
    pending = [_Chain(flow.steps, flow.start_at, [], None)]
    while pending:
        chain = pending.pop(0)
        yield chain
        for step in chain.steps:
            loc = chain.step_loc(step.id)
            for nested in step.nested():
                pending.append(
                    _Chain(nested.chain.steps, nested.chain.start_at, [*loc, *nested.loc], step)
                )


def check_flow(
    flow: Flow, *, output_schema: OutputSchemas | None = None, line: bool = False
) -> tuple[list[Problem], list[Problem]]:
    """Every problem of a definition, and every warning; no problems means it can be stored.

    Both languages are checked here: a seed chain is parsed as a flow of task steps
    (definitions/parsing.py `Parsed.as_flow`) and checked with `line=True`.

    Args:
        flow: the definition.
        output_schema: the output_schema of a task's action, to check the properties
            expressions read from its output; None skips those checks.
        line: the seed chain's rules instead of a flow's: its steps form one line (one
            entry, each step the next of at most one other, no loop), said in the chain's
            words.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    chains = list(_chains(flow))
    where = _unique_ids(chains, problems)
    if line:
        problems.extend(_line_problems(flow.steps, duplicated=bool(problems)))
        upstream_of: dict[str, set[str]] = {}
    else:
        upstream_of = _flow_graph_problems(flow, chains, where, problems)

    for chain in chains:
        for step in chain.steps:
            loc = chain.step_loc(step.id)
            problems.extend(step.problems(loc))
            for field, value in step.expressions():
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


def _unique_ids(chains: list[_Chain], problems: list[Problem]) -> _Where:
    where: _Where = {}
    for chain in chains:
        for index, step in enumerate(chain.steps):
            loc = [*chain.loc, "steps", index]
            if step.id in where:
                problems.append(_used_twice(step.id, where[step.id][1], loc))
            else:
                where[step.id] = (chain, loc)
    return where


def _used_twice(step_id: str, first: list[str | int], again: list[str | int]) -> Problem:
    if len(first) == len(again) == 2:  # both at the top level
        places, scope = f"steps {first[1]} and {again[1]}", ""
    else:
        places = f"{'.'.join(map(str, first))} and {'.'.join(map(str, again))}"
        scope = "; step ids are unique across the whole definition, branches and map steps "
        scope += "included"
    return problem(
        [*again, "id"],
        f"step id '{step_id}' is used twice ({places}); give each step its own id{scope}",
    )


def _line_problems(steps: Sequence[StepKind], *, duplicated: bool) -> list[Problem]:
    """The seed chain's rules: each `next` names a step, exactly one step is no step's
    next (the entry), none is the next of two, and from the entry every step is reached
    once, without coming back. Stops at the first stage with problems, as the rules
    after it would only repeat them."""
    ids = {step.id for step in steps}
    problems = [
        problem(
            ["steps", index, *transition.field],
            f"step '{step.id}' has {'.'.join(map(str, transition.field))} '{transition.to}', "
            f"which is no step of this workflow; use one of {sorted(ids)} or null",
        )
        for index, step in enumerate(steps)
        for transition in step.transitions()
        if transition.to not in ids
    ]
    if duplicated or problems:
        return problems

    targets = [target for step in steps for target in step.targets()]
    for target in sorted({t for t in targets if targets.count(t) > 1}):
        sources = [s.id for s in steps if target in s.targets()]
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
            return [
                problem(
                    ["steps"],
                    f"the steps form a cycle: {' -> '.join([*seen, current])}; "
                    "the last step must have next null",
                )
            ]
        seen.append(current)
        current = next(iter(by_id[current].targets()), None)
    unreachable = [step.id for step in steps if step.id not in seen]
    if unreachable:
        return [
            problem(
                ["steps"],
                f"steps {unreachable} cannot be reached from the entry step '{entries[0]}'",
            )
        ]
    return []


def _flow_graph_problems(
    flow: Flow, chains: list[_Chain], where: _Where, problems: list[Problem]
) -> dict[str, set[str]]:
    """A flow's rules: every target names a step of the same chain, each chain has one
    entry and reaches all its steps, a loop needs max_steps. Returns the steps upstream
    of each step (those whose output it may read)."""
    looped = False
    upstream_of: dict[str, set[str]] = {}
    for chain in chains:
        entry = _entry(chain, problems)
        graph = {step.id: [t for t in step.targets() if t] for step in chain.steps}
        for step in chain.steps:
            loc = chain.step_loc(step.id)
            for transition in step.transitions():
                if transition.to not in chain.index:
                    elsewhere = (
                        " (it is in another branch or chain)" if transition.to in where else ""
                    )
                    problems.append(
                        problem(
                            [*loc, *transition.field],
                            f"'{transition.to}' is not a step of this chain{elsewhere}; name a "
                            f"step of the same chain: {', '.join(chain.index)}",
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
            upstream_of[step.id] = before | _enclosing_upstream(chain, upstream_of)
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
                if other is None:
                    continue
                for nested in _step(other).nested():
                    if nested.kept:
                        inner |= {s.id for s in iter_steps(nested.chain.steps)}
            upstream_of[step.id] = upstream_of.get(step.id, set()) | inner
    return upstream_of


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


def _step(entry: tuple[_Chain, list[str | int]]) -> StepKind:
    chain, loc = entry
    return chain.steps[int(loc[-1])]


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
    pointed = {t for step in chain.steps for t in step.targets()}
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


def _enclosing_upstream(chain: _Chain, upstream_of: dict[str, set[str]]) -> set[str]:
    """A nested chain also sees what was upstream of the parallel or map holding it."""
    if chain.owner is None:
        return set()
    return set(upstream_of.get(chain.owner.id, set()))


def _property_checks(
    expression: str,
    loc: list[str | int],
    where: _Where,
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
        schema = step.known_output_schema(output_schema)
        if not isinstance(schema, dict):
            continue
        source = step.label()  # a task's is its service.action
        properties = schema.get("properties")
        declared = isinstance(properties, dict) and prop in properties
        if declared:
            continue
        if schema.get("additionalProperties") is False:
            problems.append(
                problem(
                    loc,
                    f"$steps.{step_id}.output.{prop}: the output_schema of "
                    f"{source} allows no property '{prop}' "
                    f"(additionalProperties is false); it declares "
                    f"{', '.join(properties) if isinstance(properties, dict) else 'none'}",
                )
            )
        else:
            warnings.append(
                problem(
                    loc,
                    f"$steps.{step_id}.output.{prop}: the output_schema of "
                    f"{source} does not declare '{prop}'",
                )
            )


__all__ = ["check_flow", "entry_of"]
