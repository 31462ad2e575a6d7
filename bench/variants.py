"""A change to workflows/dynamic.py, measured before anyone makes it.

`StoredWorkflowLocalLoad` is the project's StoredWorkflow with one difference: an
SDK-started run (no definition argument) loads its definition with a *local*
activity instead of an activity. The definition is still recorded in history (as the
local activity's marker), but the load runs inside the first workflow task, so the
run saves one activity dispatch and one workflow-task round trip.

`python -m bench.variants` runs the deployed worker (worker/main.py main) with only
the workflow class swapped, on the TASK_QUEUE of its environment.

This change has since been made in workflows/dynamic.py, so c-localload now measures
the same code as c (a control for run-to-run noise). Replace the class here to measure
the next proposed change the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from definitions.contract import LOAD_DEFINITION_ACTIVITY
    from definitions.models import PinnedDefinition
    from workflows.dynamic import LOAD_DEFINITION_RETRY, StoredWorkflow


@workflow.defn(dynamic=True, sandboxed=True)
class StoredWorkflowLocalLoad(StoredWorkflow):
    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        return await super().run(args)

    async def _load_definition(self) -> PinnedDefinition:
        definition = await workflow.execute_local_activity(
            LOAD_DEFINITION_ACTIVITY,
            workflow.info().workflow_type,
            result_type=PinnedDefinition,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOAD_DEFINITION_RETRY,
        )
        self._record(definition)
        return definition

    def _record(self, definition: PinnedDefinition) -> None:
        # The same search attributes and memo as StoredWorkflow._load_definition.
        from definitions.contract import WORKFLOW_ID_KEY, WORKFLOW_VERSION_KEY

        if definition.workflow_id is not None and definition.version is not None:
            workflow.upsert_search_attributes(
                [
                    WORKFLOW_ID_KEY.value_set(definition.workflow_id),
                    WORKFLOW_VERSION_KEY.value_set(definition.version),
                ]
            )
            workflow.upsert_memo(
                {
                    "workflow_id": definition.workflow_id,
                    "workflow_name": definition.name,
                    "version": definition.version,
                    "kind": definition.kind,
                }
            )


def main() -> None:
    import worker.main as worker_main

    worker_main.StoredWorkflow = StoredWorkflowLocalLoad  # type: ignore[misc]
    worker_main.main()


if __name__ == "__main__":
    main()
