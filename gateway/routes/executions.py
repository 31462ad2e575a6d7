"""/api/executions: one execution's record, read from Temporal."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import ExecutionsDep
from gateway.executions import ExecutionPublic

router = APIRouter(prefix="/executions", tags=["executions"])


@router.get("/{execution_id}", response_model=ExecutionPublic)
async def get_execution(execution_id: str, executions: ExecutionsDep) -> ExecutionPublic:
    """Status, input, context, result or error, and per-step state of one execution."""
    return await executions.get(execution_id)
