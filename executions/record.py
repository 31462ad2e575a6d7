"""The execution record from the interpreter's own journal: what the workflow says it did.

An execution the gateway waits for (`POST .../execute`) is started with the si:outcome
update (definitions/contract.py): the workflow answers it once its steps are done, with
its status, its result and its journal (workflows/journal.py). When that answer says
COMPLETED and every task answered at its first attempt, which is the common case, the
record is built here from it and nothing else: no read of the execution's history after
it closed.

Every other case is read from history by executions/history.py: an execution that
failed, was canceled, retried a step (the record then tells each attempt's last error,
which only history holds), continued as new, or is read later by id. The interpreter's
tests assert that the record read from history equals the journal (tests/support/
journal.py), so both tell the same steps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from definitions.models import PinnedDefinition
from executions.models import ExecutionPublic, ExecutionStatus, StepState

_CHAIN_OMITS = ("type", "path")
"""A seed chain's record has one step per chain step, without the flow's `type` and
`path` (executions/models.py StepState)."""


def answered_whole(outcome: dict[str, Any]) -> bool:
    """Whether the journal in `outcome` tells the whole record: the execution completed
    and every task it ran answered at its first attempt."""
    if outcome.get("status") != ExecutionStatus.COMPLETED.value:
        return False
    return all(
        entry.get("status") == "COMPLETED" and entry.get("attempts") in (None, 1)
        if entry.get("type") != "task"
        else entry.get("status") == "COMPLETED" and entry.get("attempts") == 1
        for entry in outcome.get("steps") or []
    )


def record_from_outcome(
    outcome: dict[str, Any],
    *,
    execution_id: str,
    definition: PinnedDefinition,
    input_data: dict[str, Any],
    context: dict[str, Any],
    test_run: bool,
) -> ExecutionPublic:
    """The record of a completed execution from its si:outcome answer (`answered_whole`)."""
    chain = definition.flow is None
    return ExecutionPublic(
        execution_id=execution_id,
        run_id=outcome["run_id"],
        kind=definition.kind,
        workflow_id=definition.workflow_id,
        workflow_name=definition.name,
        workflow_version=definition.version,
        status=ExecutionStatus(outcome["status"]),
        input=input_data,
        context=context,
        result=outcome.get("result"),
        started_at=datetime.fromisoformat(outcome["started_at"]),
        closed_at=datetime.fromisoformat(outcome["closed_at"]),
        steps=[_step(entry, chain=chain) for entry in outcome.get("steps") or []],
        test_run=test_run,
    )


def _step(entry: dict[str, Any], *, chain: bool) -> StepState:
    fields = dict(entry)
    fields["attempts"] = fields.get("attempts") or 0
    if chain:
        for name in _CHAIN_OMITS:
            fields.pop(name, None)
    return StepState.model_validate(fields)
