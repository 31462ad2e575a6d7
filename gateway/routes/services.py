"""/api/services: register, read, update and deregister services; run one action."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from core.outbound import OutboundPolicy
from executions.models import ExecuteRequest, ExecutionPublic, ExecutionStarted
from gateway.deps import (
    ExecutionsDep,
    HttpDep,
    PageDep,
    RequestIdHeader,
    SessionDep,
    SettingsDep,
)
from gateway.errors import error_responses
from gateway.idempotency import IdempotencyDep, execution_id_for, write_once
from gateway.read_cache import cached_read
from gateway.routes.executing import (
    execute_timeout,
    run_and_answer,
    start_and_point,
    with_request_id,
)
from registry import services, workflows
from registry.paging import public_page
from registry.schemas import (
    DefinitionStatus,
    ServiceCreate,
    ServicePublic,
    ServicesPage,
    ServiceUpdate,
)
from registry.tables import ServiceRow

router = APIRouter(prefix="/services", tags=["services"], responses=error_responses(503))


@router.post(
    "",
    response_model=ServicePublic,
    status_code=201,
    responses={
        200: {"description": "an identical service was already registered"},
        **error_responses(400, 409, 413, 415),
    },
)
async def register_service(
    body: ServiceCreate, session: SessionDep, idempotency: IdempotencyDep
) -> JSONResponse:
    """Register a service. Registering an identical definition again returns the stored one."""

    async def write() -> tuple[int, Any]:
        row, created = await services.register(session, body)
        return (201 if created else 200), jsonable_encoder(services.to_public(row))

    status_code, content = await write_once(
        session, idempotency, scope="POST /api/services", request=body, write=write
    )
    return JSONResponse(content, status_code=status_code)


@router.get("", response_model=ServicesPage)
async def list_services(
    request: Request, session: SessionDep, paging: PageDep, status: DefinitionStatus | None = None
) -> Response:
    async def read() -> ServicesPage:
        return await public_page(
            session,
            ServiceRow,
            ServicesPage,
            services.to_public,
            status=status,
            page=paging.page,
            per_page=paging.per_page,
        )

    return await cached_read(request, ("services", status, paging.page, paging.per_page), read)


@router.get("/{service_id}", response_model=ServicePublic, responses=error_responses(404))
async def get_service(service_id: str, request: Request, session: SessionDep) -> Response:
    async def read() -> ServicePublic:
        return services.to_public(await services.get_row(session, service_id))

    return await cached_read(request, ("service", service_id), read)


@router.patch(
    "/{service_id}",
    response_model=ServicePublic,
    responses=error_responses(400, 404, 409, 413, 415),
)
async def update_service(
    service_id: str, body: ServiceUpdate, session: SessionDep, idempotency: IdempotencyDep
) -> JSONResponse:
    """Update the fields sent. Running executions keep the definition they started with."""

    async def write() -> tuple[int, Any]:
        updated = await services.update(session, service_id, body, commit=False)
        return 200, jsonable_encoder(updated)

    status_code, content = await write_once(
        session, idempotency, scope=f"PATCH /api/services/{service_id}", request=body, write=write
    )
    return JSONResponse(content, status_code=status_code)


@router.delete("/{service_id}", response_model=ServicePublic, responses=error_responses(404, 409))
async def deregister_service(
    service_id: str,
    session: SessionDep,
    idempotency: IdempotencyDep,
    force: Annotated[
        bool, Query(description="deregister even if active workflows use the service")
    ] = False,
) -> JSONResponse:
    """Deregister a service; refused with 409 while an ACTIVE workflow uses it.

    With an Idempotency-Key, a retry after a lost answer gets the first answer, not a 404.
    """

    async def write() -> tuple[int, Any]:
        removed = await services.deregister(session, service_id, force=force, commit=False)
        return 200, jsonable_encoder(removed)

    status_code, content = await write_once(
        session,
        idempotency,
        scope=f"DELETE /api/services/{service_id}",
        request={"force": force},
        write=write,
    )
    return JSONResponse(content, status_code=status_code)


@router.post(
    "/{service_id}/actions/{action}/execute",
    response_model=ExecutionPublic,
    responses={
        202: {"description": "still running when the timeout ran out"},
        **error_responses(400, 404, 409, 413, 415),
    },
)
async def execute_service_action(
    service_id: str,
    action: str,
    body: ExecuteRequest,
    session: SessionDep,
    executions: ExecutionsDep,
    settings: SettingsDep,
    response: Response,
    idempotency: IdempotencyDep,
    timeout: Annotated[
        float | None, Query(gt=0, le=3600, description="seconds to wait for the end")
    ] = None,
    request_id: RequestIdHeader = None,
) -> ExecutionPublic:
    """Run one action as a one-step execution, with the action's retries, and wait for it."""
    wait = execute_timeout(timeout, settings)
    definition = await workflows.pin_action(session, service_id, action)
    execution_id = await execution_id_for(
        session, idempotency, scope=f"execute action:{service_id}:{action}", request=body
    )
    await session.close()
    return await run_and_answer(
        executions,
        definition,
        with_request_id(body, request_id),
        execution_id=execution_id,
        timeout=wait,
        response=response,
    )


@router.post(
    "/{service_id}/actions/{action}/executions",
    response_model=ExecutionStarted,
    status_code=202,
    responses=error_responses(400, 404, 409, 413, 415),
)
async def start_service_action(
    service_id: str,
    action: str,
    body: ExecuteRequest,
    session: SessionDep,
    executions: ExecutionsDep,
    response: Response,
    idempotency: IdempotencyDep,
    request_id: RequestIdHeader = None,
) -> ExecutionStarted:
    """Start one action as a one-step execution without waiting; follow it at status_url."""
    definition = await workflows.pin_action(session, service_id, action)
    execution_id = await execution_id_for(
        session, idempotency, scope=f"execute action:{service_id}:{action}", request=body
    )
    await session.close()
    return await start_and_point(
        executions, definition, with_request_id(body, request_id), execution_id, response
    )


@router.get("/{service_id}/health", responses=error_responses(404))
async def get_service_health(
    service_id: str, session: SessionDep, http: HttpDep, settings: SettingsDep
) -> dict[str, Any]:
    """Probe the service's health URL (GET {endpoint}{health_path}) with a short timeout."""
    row = await services.get_row(session, service_id)
    await session.close()
    url = row.endpoint + row.health_path
    started = time.perf_counter()
    status, error, code = "unhealthy", None, None
    if not OutboundPolicy(allowed_hosts=settings.allowed_hosts).allows(url):
        error = f"{url} is not in ALLOWED_HOSTS; not probed"
    else:
        try:
            answer = await http.get(url, timeout=2.0, follow_redirects=False)
            code = answer.status_code
            if answer.is_success:
                status = "healthy"
            else:
                error = f"HTTP {answer.status_code}"
        except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {
        "service_id": row.id,
        "name": row.name,
        "registry_status": row.status,
        "status": status,
        "url": url,
        "status_code": code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "last_error": error,
    }
