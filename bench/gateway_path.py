"""What POST /api/workflows/{id}/execute does, step by step, timed in this process.

The route (gateway/routes/workflows.py execute_workflow, then routes/executing.py
run_and_answer) pins the definition from the registry, starts the execution, waits
for it (ExecutionService.wait) and answers the record (ExecutionService.get). Each
step is called here with the gateway's own objects and code, so d - c' splits into
them; what is left is HTTP, FastAPI and uvicorn.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client

from bench.workload import TASK_QUEUE
from executions.history import build_record
from executions.models import ExecuteRequest
from executions.service import ExecutionService

STEPS = ("pin (registry)", "start", "wait (ExecutionService.wait)", "record (ExecutionService.get)")
PARTS = ("of a record: the history read (one RPC)", "of a record: its build from the events")
"""The record step split, timed again on the same closed execution (not in the sum)."""


async def measure(
    client: Client, *, database_url: str, workflow_id: str, rounds: int
) -> dict[str, float]:
    """Median milliseconds of each step over `rounds` sequential executions of the
    stored workflow `workflow_id`."""
    from registry import workflows
    from registry.db import create_engine, session_factory

    engine = create_engine(database_url)
    sessions = session_factory(engine)
    service = ExecutionService(client, task_queue=TASK_QUEUE)
    samples: dict[str, list[float]] = {step: [] for step in (*STEPS, *PARTS)}
    try:
        for index in range(rounds + 3):
            marks = [time.perf_counter()]
            async with sessions() as session:
                definition = await workflows.pin(
                    session, await workflows.get_row(session, workflow_id)
                )
            marks.append(time.perf_counter())
            execution_id = f"bench-{uuid.uuid4().hex}"
            handle = await service.start(
                definition,
                ExecuteRequest(input_data={"document_url": "x"}),
                execution_id=execution_id,
            )
            marks.append(time.perf_counter())
            await service.wait(handle, 60)
            marks.append(time.perf_counter())
            await service.get(execution_id)
            marks.append(time.perf_counter())
            request = GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=execution_id)
            )
            parts = [time.perf_counter()]
            answer = await client.workflow_service.get_workflow_execution_history(request)
            parts.append(time.perf_counter())
            await build_record(
                execution_id, list(answer.history.events), None, converter=client.data_converter
            )
            parts.append(time.perf_counter())
            if index >= 3:
                for step, start, end in zip(STEPS, marks, marks[1:], strict=False):
                    samples[step].append((end - start) * 1000)
                for part, start, end in zip(PARTS, parts, parts[1:], strict=False):
                    samples[part].append((end - start) * 1000)
    finally:
        await engine.dispose()
    medians: dict[str, Any] = {step: statistics.median(values) for step, values in samples.items()}
    medians["sum of steps"] = sum(medians[s] for s in STEPS)
    return medians
