"""The seed's chain: a flow of task steps, how data flows between its steps, and what
each step is called with.

Pure functions, shared by the workflow (workflows/interpreter.py runs a chain as the flow
`chain_flow` makes of it) and the `si:start` activity (activities/start.py), so the entry
step run inside `si:start` gets exactly the call the workflow would have scheduled.
"""

from __future__ import annotations

from typing import Any

from definitions.language import Flow, TaskStep
from definitions.models import PinnedDefinition, PinnedStep, StepCall


def step_input(input_schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The input of a step: the declared properties found in the accumulated data.

    `data` is the workflow input updated with each step's output in turn, so each
    property holds the value of the most recent step output that had it, else the
    workflow input's. A schema that declares no properties gets all of `data`.
    """
    properties = input_schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return dict(data)
    return {name: data[name] for name in properties if name in data}


def chain_step_call(
    step: PinnedStep,
    data: dict[str, Any],
    *,
    contract: int,
    execution_id: str,
    context: dict[str, Any],
    request_id: str,
    signatures: dict[str, str],
) -> StepCall:
    """The `<service>.<action>` activity's input for `step` of a chain."""
    return StepCall(
        contract=contract,
        execution_id=execution_id,
        step_id=step.id,
        service=step.service,
        endpoint=step.endpoint,
        spec=step.spec,
        input=step_input(step.spec.input_schema, data),
        context=context,
        request_id=request_id,
        signature=signatures.get(step.id),
        credential=step.credential,
    )


def chain_flow(definition: PinnedDefinition) -> Flow:
    """A pinned chain as the flow it is: one task step per chain step, each going to its
    `next`, from the chain's entry, with no `input` or `output` (so each step takes its
    declared properties from the data so far, `step_input`, and the flow's result is the
    last step's output, as the chain's always was).

    Built unvalidated: the chain was checked when saved and pinned (PinnedDefinition
    checks the entry, every `next` and that there is no cycle), and this runs in workflow
    code for every execution of a chain.
    """
    return Flow.model_construct(
        start_at=definition.entry,
        steps=[
            TaskStep.model_construct(
                id=step.id, service=step.service, action=step.action, next=step.next
            )
            for step in definition.steps
        ],
    )
