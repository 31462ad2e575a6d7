"""The sandbox's first-activation cost: building a workflow's sandbox for a new run.

Every new workflow run (and every run evicted from the worker's cache) gets a fresh
sandbox: the workflow's module is imported again inside it, with every module that
is not passed through. This times exactly that step (`runner.prepare_workflow`, which
builds the same instance a new run gets), for our workflow with the worker's runner
(worker/main.py `workflow_runner()`), for our workflow with the SDK's default
restrictions, and for the baseline; and lists the modules our sandbox re-imports.

Run alone: `python -m bench.sandbox`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import temporalio.workflow
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner


def _time(runner: SandboxedWorkflowRunner, cls: type, repeats: int) -> float:
    defn = temporalio.workflow._Definition.must_from_class(cls)
    runner.prepare_workflow(defn)  # the process's first import is not the per-run cost
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        runner.prepare_workflow(defn)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _reimported(runner: SandboxedWorkflowRunner, cls: type) -> list[str]:
    """Modules imported afresh into a new sandbox of `cls` (not passed through)."""
    created: list[Any] = []
    original = sandbox_runner._Instance.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original(self, *args, **kwargs)

    sandbox_runner._Instance.__init__ = spy  # type: ignore[method-assign]
    try:
        runner.prepare_workflow(temporalio.workflow._Definition.must_from_class(cls))
    finally:
        sandbox_runner._Instance.__init__ = original  # type: ignore[method-assign]
    importer = created[0].importer
    modules = getattr(importer, "new_modules", {})
    passed = set(runner.restrictions.passthrough_modules)
    return sorted(
        name
        for name in modules
        if name.split(".")[0] not in passed
        and name not in passed
        and not name.startswith("_")
        and name not in {"builtins", "sys", "__main__"}
    )


async def measure(repeats: int = 50) -> dict[str, Any]:
    """Milliseconds per new sandbox (median), and our re-imported modules.

    Async because the sandbox needs a running event loop to build an instance.
    """
    from bench.baseline import DocumentPipeline
    from worker.main import workflow_runner
    from workflows.dynamic import StoredWorkflow

    ours = workflow_runner()
    return {
        "ours (worker's runner)": _time(ours, StoredWorkflow, repeats),
        "ours (SDK default restrictions)": _time(
            SandboxedWorkflowRunner(), StoredWorkflow, repeats
        ),
        "baseline (SDK default restrictions)": _time(
            SandboxedWorkflowRunner(), DocumentPipeline, repeats
        ),
        "reimported": _reimported(ours, StoredWorkflow),
    }


def main() -> None:
    result = asyncio.run(measure())
    for name, value in result.items():
        print(f"{name}: {value if isinstance(value, list) else f'{value:.2f} ms'}")


if __name__ == "__main__":
    main()
