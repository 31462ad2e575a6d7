"""What a step kind declares, and the models the kinds share.

A step kind is the pydantic model of one step type of the workflow language (one module
per kind: steps/task.py, steps/choice.py, ...), with the methods below. The generic code
(the save-time checker, the graph, `iter_steps`, the parser) calls these methods and
never asks which kind a step is, so adding a kind means writing its module and listing
it in steps/kinds.py KINDS.

Nothing here does I/O: the workflow sandbox passes this package through with the models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from definitions.graph import Problem

if TYPE_CHECKING:
    from steps.kinds import Step

Loc = list[str | int]
"""A place inside a definition or a step (["choices", 0, "next"])."""

OutputSchemas = Callable[[Any], dict[str, Any] | None]
"""The output_schema of the action a task calls, or None if the registry does not know it."""


def is_expression(value: Any) -> bool:
    """True for a string of the form `{% <expr> %}`."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


def expression_body(value: str) -> str:
    return value[2:-2].strip()


class Node(BaseModel):
    """Definitions cross processes: unknown fields are ignored here; the registry's API
    refuses them (registry/schemas.py)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Transition(NamedTuple):
    """One way from a step to another step of its chain."""

    field: Loc
    """Where the target is written, inside the step (["next"], ["catch", 0, "next"])."""
    to: str
    route: str
    """How the graph labels the edge: `next`, a choice's condition, `catch <errors>`."""


class StepsHolder(Protocol):
    """A chain of steps with its own entry: a Chain (a parallel branch) or a map step."""

    @property
    def start_at(self) -> str | None: ...

    @property
    def steps(self) -> Sequence[StepKind]: ...


class Nested(NamedTuple):
    """A chain a step holds and runs itself (a parallel's branch, a map's iteration)."""

    loc: Loc
    """Where the chain is inside the step: its steps are at [*step, *loc, "steps", i]."""
    chain: StepsHolder
    branch: int | None
    """The branch number the graph gives its nodes (None for a map's iteration)."""
    route: str
    """The graph's label of the edge from the step to the chain's entry."""
    kept: bool
    """The chain's step outputs are still there after the step (a parallel's branches),
    so later steps may name them; a map's iterations are not."""


RawPart = tuple[Loc, type[BaseModel] | None, Any]
"""A part of a raw (unparsed) step: where it is inside the step, the model it must
follow (None: it is a step itself, of whatever kind its `type` says), and its value."""


class StepKind(Node):
    """The base of every step model: what the generic code asks a step.

    Every kind declares `transitions`, `problems`, `expressions` and `label`; the others
    have the answer most kinds give. How a kind runs (`run`) moves here from
    workflows/interpreter.py.
    """

    if TYPE_CHECKING:
        # Declared by each kind (first `type`, then `id`, as the stored JSON has them);
        # a field here would change every model's field order.
        type: str
        id: str

    def transitions(self) -> list[Transition]:
        """Every step id this step can go to next, where it is written, and its route."""
        raise NotImplementedError

    def targets(self) -> list[str]:
        """The step ids this step can go to next."""
        return [transition.to for transition in self.transitions()]

    def nested(self) -> list[Nested]:
        """The chains this step holds (parallel branches, a map's steps)."""
        return []

    def problems(self, loc: Loc) -> list[Problem]:
        """This kind's own save-time problems; `loc` is where the step is."""
        raise NotImplementedError

    def expressions(self) -> Iterator[tuple[Loc, Any]]:
        """Every field whose string values may be `{% <expr> %}` expressions, with where
        it is inside the step (["assign", "total"])."""
        raise NotImplementedError

    def label(self) -> str:
        """What the graph writes on the step's node."""
        raise NotImplementedError

    def service_call(self) -> tuple[str, str] | None:
        """The registered (service, action) this step calls: checked at save time."""
        return None

    def known_output_schema(self, output_schema: OutputSchemas) -> dict[str, Any] | None:
        """The JSON Schema this step's output follows as it is, if the registry knows it:
        `$steps.<id>.output.<property>` is checked against it at save time."""
        return None

    @classmethod
    def raw_parts(cls, value: dict[str, Any]) -> Iterator[RawPart]:
        """The parts of a raw step of this kind that have fields of their own (catches,
        rules, branches, nested steps), for the parser's unknown-field check."""
        return iter(())


class Chain(Node):
    """A chain of steps with its own entry: a parallel branch, or a map's iteration."""

    start_at: str | None = None
    steps: list[Step] = Field(min_length=1, max_length=100)


def entry_of(chain: StepsHolder) -> str:
    """`start_at`, else the one step no other step of the chain points to, else the first."""
    if chain.start_at:
        return chain.start_at
    pointed = {target for step in chain.steps for target in step.targets()}
    for step in chain.steps:
        if step.id not in pointed:
            return step.id
    return chain.steps[0].id


def next_transition(next_step: str | None) -> list[Transition]:
    """The `next` of a step that has one, as its transition."""
    return [Transition(["next"], next_step, "next")] if next_step else []


def assign_expressions(assign: dict[str, Any], loc: Loc) -> Iterator[tuple[Loc, Any]]:
    for name, member in assign.items():
        yield [*loc, "assign", name], member


def plain_parts(items: Any, name: str, model: type[BaseModel]) -> Iterator[RawPart]:
    """Each object of a raw list field (`catch`, `choices`), to be checked against `model`."""
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield [name, index], model, item


def step_parts(steps: Any, loc: Loc) -> Iterator[RawPart]:
    """Each raw step of a raw list of steps at `loc` (a map's, a branch's)."""
    if isinstance(steps, list):
        for index, step in enumerate(steps):
            yield [*loc, "steps", index], None, step
