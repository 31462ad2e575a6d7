"""Reading a stored workflow's steps: the seed's chain, or a flow of the workflow language.

The registry's API refuses unknown fields (a typo is a 422, not a silently ignored
option), while the models that cross processes ignore them (docs/versioning.md); this
module does the refusing for flows, whose steps are a tagged union.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ValidationError

from definitions.graph import Problem, problem
from definitions.language import KINDS, Flow, TaskStep, is_seed_chain
from definitions.models import StepSpec
from steps.base import StepKind

TOP_LEVEL_FIELDS = ("start_at", "output", "input_schema", "max_steps")


@dataclass
class Parsed:
    """A workflow's steps as the engine will run them, or the problems that prevent it."""

    chain: list[StepSpec] | None = None
    flow: Flow | None = None
    """Set for a flow only: storage and pinning tell the languages apart by it."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "flow" if self.flow is not None else "chain"

    @cached_property
    def as_flow(self) -> Flow:
        """The definition in the workflow language, what the checker and the graph read:
        the flow, or the seed chain as a flow of task steps."""
        if self.flow is not None:
            return self.flow
        assert self.chain is not None, "a definition with problems has no flow"
        return chain_flow(self.chain)


def chain_flow(chain: Sequence[StepSpec]) -> Flow:
    """A seed chain as the flow of task steps it means, entered at its entry step (when
    it has exactly one: otherwise the checker says so)."""
    pointed = {step.next for step in chain}
    entries = [step.id for step in chain if step.id not in pointed]
    return Flow(
        start_at=entries[0] if len(entries) == 1 else None,
        steps=[
            TaskStep(id=step.id, service=step.service, action=step.action, next=step.next)
            for step in chain
        ],
    )


def parse_definition(steps: Sequence[Any], top_level: dict[str, Any]) -> Parsed:
    """The seed's chain if `steps` has that shape and no language field is set at the top,
    else a flow. Problems are located inside the definition (["steps", 2, "next"])."""
    raw = list(steps)
    if not raw:
        return Parsed(problems=[problem(["steps"], "a workflow needs at least one step")])
    if is_seed_chain(raw, top_level):
        try:
            return Parsed(chain=[StepSpec.model_validate(step) for step in raw])
        except ValidationError:
            pass  # reported below with locations, as a flow would be
        problems: list[Problem] = []
        for index, step in enumerate(raw):
            try:
                StepSpec.model_validate(step)
            except ValidationError as exc:
                problems.extend(_problems(exc, ["steps", index]))
        return Parsed(problems=problems)
    problems = []
    for index, step in enumerate(raw):
        problems.extend(_unknown_fields(step, ["steps", index]))
    document = {"steps": raw, **{k: v for k, v in top_level.items() if v is not None}}
    try:
        flow = Flow.model_validate(document)
    except ValidationError as exc:
        return Parsed(problems=problems + _problems(exc, []))
    if problems:
        return Parsed(problems=problems)
    return Parsed(flow=flow)


def stored_steps(parsed: Parsed) -> list[dict[str, Any]]:
    """The steps as stored and answered: the seed's `{id, service, action, next}`, or a
    flow's steps as sent (known fields only)."""
    if parsed.chain is not None:
        return [step.model_dump(mode="json") for step in parsed.chain]
    assert parsed.flow is not None
    return [step.model_dump(mode="json", exclude_unset=True) for step in parsed.flow.steps]


def _problems(exc: ValidationError, prefix: list[str | int]) -> list[Problem]:
    out = []
    for error in exc.errors():
        loc: list[str | int] = []
        for part in error["loc"]:
            # A tagged union puts the tag in the location (steps.0.choice.choices): drop it.
            if isinstance(part, str) and part in KINDS and loc and isinstance(loc[-1], int):
                continue
            loc.append(part)
        message = str(error["msg"])
        if error["type"] == "union_tag_invalid":
            message = f"unknown step type; use one of {', '.join(KINDS)}"
        out.append(problem([*prefix, *loc], message))
    return out


def _unknown_fields(value: Any, loc: list[str | int]) -> list[Problem]:
    """Fields no model of the language has, anywhere in a raw step."""
    if not isinstance(value, dict):
        return []
    kind = value.get("type", "task")
    model = KINDS.get(str(kind))
    if model is None:
        return []  # the model validation names the bad type
    return _check(model, value, loc)


def _check(model: type[StepKind], value: dict[str, Any], loc: list[str | int]) -> list[Problem]:
    out = []
    known = set(model.model_fields)
    for key in value:
        if key not in known:
            out.append(
                problem(
                    [*loc, key],
                    f"unknown field '{key}' for a {value.get('type', 'task')} step; its fields "
                    f"are {', '.join(sorted(known))}",
                )
            )
    for where, part_model, part in model.raw_parts(value):
        if part_model is None:
            out.extend(_unknown_fields(part, [*loc, *where]))
        else:
            out.extend(_check_plain(part_model, part, [*loc, *where]))
    return out


def _check_plain(
    model: type[BaseModel], value: dict[str, Any], loc: list[str | int]
) -> list[Problem]:
    known = set(model.model_fields)
    return [
        problem([*loc, key], f"unknown field '{key}'; the fields are {', '.join(sorted(known))}")
        for key in value
        if key not in known
    ]
