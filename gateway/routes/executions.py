"""/api/executions: one execution's record, read from Temporal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from executions.models import ExecutionPublic, ExecutionStatus
from gateway.deps import ExecutionsDep
from gateway.errors import error_responses

router = APIRouter(prefix="/executions", tags=["executions"], responses=error_responses(503))


@router.get("/{execution_id}", response_model=ExecutionPublic, responses=error_responses(404))
async def get_execution(
    execution_id: str,
    executions: ExecutionsDep,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            le=60,
            description="seconds to wait for the execution to close before answering; "
            "a long poll instead of polling",
        ),
    ] = None,
) -> ExecutionPublic:
    """Status, input, context, result or error, and per-step state of one execution.

    Only executions of this service are answered; any other workflow is a 404.
    """
    record = await executions.get(execution_id)
    if wait is None or record.status != ExecutionStatus.RUNNING:
        return record
    await executions.wait_for(execution_id, wait)
    return await executions.get(execution_id)
