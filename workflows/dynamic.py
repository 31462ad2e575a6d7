"""The one workflow that runs every stored workflow, and every one-action execution.

Its Temporal workflow type is the stored workflow's name (`document-sentiment`), so
the web UI shows that name; each step runs as the activity `<service>.<action>`. What
it does is in workflows/stored.py: the sandbox re-imports this module for every run,
and passes that one through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from definitions.contract import JOURNAL_QUERY, OUTCOME_UPDATE
    from workflows.stored import (
        LOAD_DEFINITION_RETRY,
        START_PATCH,
        START_TIMEOUT,
        StoredWorkflowBody,
    )

__all__ = ["LOAD_DEFINITION_RETRY", "START_PATCH", "START_TIMEOUT", "StoredWorkflow"]


@workflow.defn(dynamic=True, sandboxed=True)
class StoredWorkflow(StoredWorkflowBody):
    """Runs a pinned definition: a flow, or the seed's chain from its entry along `next`.

    Arguments: the workflow input (a JSON object), then optionally the execution
    options (`definition`, `context`). Without a definition, as when a program starts
    the workflow by name with the Temporal SDK, it begins with the `si:start` activity,
    which pins the latest ACTIVE definition of that name (recorded in history as its
    result) and makes the first attempt of a chain's entry step.
    """

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> Any:
        return await self.run_stored(args)

    @workflow.query(name=JOURNAL_QUERY)
    def journal_query(self) -> list[dict[str, Any]]:
        """The journal: one entry per step run so far, as the interpreter ran it."""
        return self.journal_entries()

    @workflow.update(name=OUTCOME_UPDATE)
    async def outcome_update(self) -> dict[str, Any]:
        """Once the steps are done: the status, the result or error, and the journal."""
        return await self.wait_outcome()
