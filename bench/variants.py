"""The workflow as it was before a change to workflows/dynamic.py, measured beside it.

`StoredWorkflowLocalLoad` is the project's StoredWorkflow with one difference: a start by
name loads its definition with the `si:load-definition` local activity, as before the
`start-activity` patch, instead of beginning with the `si:start` activity (which pins the
definition and makes the entry step's first attempt). Both record the definition in
history; the local activity costs one more activity task and workflow activation.

`python -m bench.variants` runs the deployed worker (worker/main.py main) with only the
workflow class swapped, on the TASK_QUEUE of its environment. Replace the class here to
measure the next proposed change the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from workflows.dynamic import StoredWorkflow


@workflow.defn(dynamic=True, sandboxed=True)
class StoredWorkflowLocalLoad(StoredWorkflow):
    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        return await super().run(args)

    def _starts_with_activity(self) -> bool:
        return False  # the branch histories from before the patch take


def main() -> None:
    import worker.main as worker_main

    worker_main.StoredWorkflow = StoredWorkflowLocalLoad  # type: ignore[misc]
    worker_main.main()


if __name__ == "__main__":
    main()
