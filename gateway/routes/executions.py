"""/api/executions: one execution's record, read from Temporal."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import ExecutionsDep
from gateway.errors import error_responses
from gateway.executions import ExecutionPublic

router = APIRouter(prefix="/executions", tags=["executions"], responses=error_responses(503))


@router.get("/{execution_id}", response_model=ExecutionPublic, responses=error_responses(404))
async def get_execution(execution_id: str, executions: ExecutionsDep) -> ExecutionPublic:
    """Status, input, context, result or error, and per-step state of one execution."""
    return await executions.get(execution_id)
