"""KINDS, the step kinds of the workflow language, and the `Step` union built from them.

A step's `type` picks its kind (no `type` means a task). Adding a kind: write its module
(see steps/base.py StepKind) and list it here; checking, drawing and parsing follow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

from pydantic import Discriminator, Tag

from steps.base import Chain, StepKind
from steps.choice import ChoiceStep
from steps.fail import FailStep
from steps.map import MapStep
from steps.parallel import ParallelStep
from steps.succeed import SucceedStep
from steps.task import TaskStep
from steps.wait import WaitStep
from steps.workflow import WorkflowStep

KINDS: dict[str, type[StepKind]] = {
    "task": TaskStep,
    "choice": ChoiceStep,
    "parallel": ParallelStep,
    "map": MapStep,
    "wait": WaitStep,
    "workflow": WorkflowStep,
    "succeed": SucceedStep,
    "fail": FailStep,
}
"""Step type name -> its model, in the order error messages list them."""


def _step_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "task"))
    return str(getattr(value, "type", "task"))


if TYPE_CHECKING:
    Step: TypeAlias = StepKind
else:
    # The discriminated union of every kind, tagged with its type name.
    Step = Annotated[
        Union[tuple(Annotated[model, Tag(name)] for name, model in KINDS.items())],  # noqa: UP007
        Discriminator(_step_type),
    ]

for _holder in (Chain, ParallelStep, MapStep):
    _holder.model_rebuild(_types_namespace={"Step": Step, "Chain": Chain})
