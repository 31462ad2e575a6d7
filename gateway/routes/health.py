"""/api/health: the database, Temporal, the workers, and the registered services."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
)

from gateway.deps import is_authenticated
from registry import services

router = APIRouter(tags=["health"])

PROBE_TIMEOUT = 3.0


async def _database(request: Request) -> tuple[dict[str, Any], dict[str, int] | None]:
    started = time.perf_counter()
    try:
        async with request.app.state.sessions() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), PROBE_TIMEOUT)
            counts = await services.counts_by_status(session)
        return {
            "status": "healthy",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "backend": request.app.state.engine.dialect.name,
        }, counts
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"[:300]}, None


async def _temporal(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    client = request.app.state.executions.client
    settings = request.app.state.settings
    started = time.perf_counter()
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace),
            timeout=timedelta(seconds=PROBE_TIMEOUT),
        )
        temporal = {
            "status": "healthy",
            "address": settings.temporal_address,
            "namespace": client.namespace,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    except Exception as exc:  # noqa: BLE001
        return (
            {
                "status": "unhealthy",
                "address": settings.temporal_address,
                "namespace": settings.temporal_namespace,
                "error": f"{type(exc).__name__}: {exc}"[:300],
            },
            {"status": "unknown", "task_queue": settings.task_queue},
        )
    pollers: dict[str, list[str]] = {}
    for name, kind in (
        ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    ):
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=settings.task_queue),
                task_queue_type=kind,
            )
        )
        pollers[name] = sorted({p.identity for p in answer.pollers})
    workers = sorted(set(pollers["workflow"]) | set(pollers["activity"]))
    return temporal, {
        "status": "healthy" if pollers["workflow"] and pollers["activity"] else "degraded",
        "task_queue": settings.task_queue,
        "count": len(workers),
        "pollers": workers,
        **({} if workers else {"error": "no worker polls the task queue; start one"}),
    }


@router.get(
    "/health",
    responses={503: {"description": "the database or Temporal is unhealthy; the body says which"}},
)
async def integration_health(request: Request) -> JSONResponse:
    """Overall `healthy`, `degraded` or `unhealthy` (503), with each component's state.

    With API_KEYS set, a caller without a valid key gets the overall status only: the
    components name internal addresses and worker identities.
    """
    (database, counts), (temporal, workers) = await asyncio.gather(
        _database(request), _temporal(request)
    )
    if database["status"] != "healthy" or temporal["status"] != "healthy":
        overall = "unhealthy"
    elif workers["status"] != "healthy":
        overall = "degraded"
    else:
        overall = "healthy"
    status_code = 503 if overall == "unhealthy" else 200
    if not is_authenticated(request):
        return JSONResponse({"status": overall}, status_code=status_code)
    body = {
        "status": overall,
        "components": {
            "database": database,
            "temporal": temporal,
            "workers": workers,
            "services": {
                "total": sum(counts.values()) if counts is not None else None,
                "by_status": counts,
            },
        },
    }
    return JSONResponse(body, status_code=status_code)
