"""Shared by the execute endpoints: start, wait within the timeout, answer the record."""

from __future__ import annotations

from fastapi import Response

from definitions.models import PinnedDefinition
from gateway.executions import ExecuteRequest, ExecutionPublic, ExecutionService


async def run_and_answer(
    executions: ExecutionService,
    definition: PinnedDefinition,
    body: ExecuteRequest,
    *,
    execution_id: str,
    timeout: float,
    response: Response,
) -> ExecutionPublic:
    """200 with the closed record, or 202 with the running one when the timeout ran out."""
    handle = await executions.start(definition, body, execution_id=execution_id)
    closed = await executions.wait(handle, timeout)
    record = await executions.get(execution_id)
    response.headers["Location"] = f"/api/executions/{execution_id}"
    response.status_code = 200 if closed else 202
    return record
