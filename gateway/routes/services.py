"""/api/services: register, read, update and deregister services; run one action."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from core.outbound import (
    OutboundLookupError,
    OutboundPolicy,
    OutboundRefusedError,
    resolve_checked,
)
from core.settings import Settings
from executions.models import ExecuteRequest, ExecutionPublic, ExecutionStarted
from gateway.deps import (
    ExecutionsDep,
    HttpDep,
    NameQuery,
    PageQuery,
    PerPageQuery,
    ReadCacheDep,
    RequestIdHeader,
    SessionDep,
    SettingsDep,
)
from gateway.errors import error_responses
from gateway.idempotency import IdempotencyDep, execution_id_for
from gateway.read_cache import cached_model, cached_read, list_page
from gateway.routes.executing import (
    execute_timeout,
    run_and_answer,
    start_and_point,
    with_request_id,
)
from registry import credentials, services, workflows
from registry.errors import InvalidDefinitionError
from registry.schemas import (
    DefinitionStatus,
    OAuth2ClientCredentials,
    ServiceCreate,
    ServicePublic,
    ServicesPage,
    ServiceUpdate,
)
from registry.tables import ServiceRow

router = APIRouter(prefix="/services", tags=["services"], responses=error_responses(503))

ServiceRef = Annotated[str, Path(description="the service's id, or its name")]

LOOKUP_TIMEOUT = 2.0
"""Seconds the registration's policy check waits for a name to resolve; then no warning."""


async def outbound_warnings(
    settings: Settings,
    endpoint: str | None,
    *,
    loc: tuple[str, ...] = ("endpoint",),
    what: str = "this endpoint, so its steps would fail",
) -> list[str]:
    """What the outbound policy says of an endpoint being registered: [] if it allows it.

    Args:
        loc: where the URL is in the body (a credential's token_url is checked too).
        what: what the refusal means, for the message.

    Raises:
        InvalidDefinitionError: in ENVIRONMENT=production, where a refused endpoint is
            not stored at all.
    """
    if endpoint is None:
        return []
    policy = OutboundPolicy(allowed_hosts=settings.allowed_hosts)
    try:
        refusal = await asyncio.wait_for(
            asyncio.to_thread(policy.refusal, endpoint), LOOKUP_TIMEOUT
        )
    except TimeoutError:
        return []  # checked again on every call the worker makes
    if refusal is None:
        return []
    message = f"the outbound policy refuses {what}: {refusal}"
    if settings.environment == "production":
        raise InvalidDefinitionError([{"loc": list(loc), "msg": message, "type": "value_error"}])
    return [message]


async def credential_warnings(settings: Settings, credential: Any) -> list[str]:
    """The outbound policy on an OAuth2 credential's token_url, as on endpoints."""
    if not isinstance(credential, OAuth2ClientCredentials):
        return []
    return await outbound_warnings(
        settings,
        str(credential.token_url),
        loc=("credential", "token_url"),
        what="this token_url, so the service's steps could get no token and would fail",
    )


def idempotency_request(body: ServiceCreate | ServiceUpdate, settings: Settings) -> Any:
    """What an Idempotency-Key is bound to: the body, with a credential's secrets
    replaced by a keyed digest (a plain hash of a weak password would give it away)."""
    if "credential" not in body.model_fields_set:
        return body
    encoded = jsonable_encoder(body.model_copy(update={"credential": None}))
    encoded["credential"] = {
        "sent": True,
        "digest": credentials.credential_digest(settings.encryption_keys, body.credential),
    }
    return encoded


def _with_warnings(content: Any, warnings: list[str]) -> Any:
    return {**content, "warnings": warnings} if warnings and isinstance(content, dict) else content


@router.post(
    "",
    response_model=ServicePublic,
    status_code=201,
    responses={
        200: {"description": "an identical service (without credential) was already registered"},
        **error_responses(400, 409, 413, 415),
    },
)
async def register_service(
    body: ServiceCreate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    settings: SettingsDep,
    reads: ReadCacheDep,
) -> JSONResponse:
    """Register a service. Registering an identical definition again returns the stored one;
    one with a `credential` is never identical (409 whether its secret matches or not:
    change the service with PATCH), except the same request sent again with its
    Idempotency-Key, which replays the first answer.

    An endpoint (or a credential's token_url) the outbound policy refuses is stored with
    `warnings` (a 422 in ENVIRONMENT=production). A `credential` is stored encrypted and
    never answered: it needs ENCRYPTION_KEYS (422 without).
    """
    warnings = await outbound_warnings(settings, str(body.endpoint))
    warnings += await credential_warnings(settings, body.credential)

    status_code, content = await services.register(
        session,
        body,
        codec=credentials.codec_of(settings.encryption_keys),
        keyed=idempotency.bound("POST /api/services", idempotency_request(body, settings)),
    )
    reads.invalidate()  # committed: a write refused or failed has raised, clearing nothing
    return JSONResponse(_with_warnings(content, warnings), status_code=status_code)


@router.get("", response_model=ServicesPage)
async def list_services(
    request: Request,
    page: PageQuery = 1,
    per_page: PerPageQuery = 20,
    status: DefinitionStatus | None = None,
    name: NameQuery = None,
) -> Response:
    """Oldest first; `?name=` lists only the one of that name (names are unique)."""
    return await list_page(
        request,
        ServiceRow,
        ServicesPage,
        services.to_public,
        status=status,
        page=page,
        per_page=per_page,
        name=name,
        named=services.get_by_name,
    )


@router.get("/{service_id}", response_model=ServicePublic, responses=error_responses(404))
async def get_service(service_id: ServiceRef, request: Request, session: SessionDep) -> Response:
    async def read() -> ServicePublic:
        return services.to_public(await services.get_row(session, service_id))

    return await cached_read(request, ("service", service_id), read)


@router.patch(
    "/{service_id}",
    response_model=ServicePublic,
    responses=error_responses(400, 404, 409, 413, 415),
)
async def update_service(
    service_id: ServiceRef,
    body: ServiceUpdate,
    session: SessionDep,
    idempotency: IdempotencyDep,
    settings: SettingsDep,
    reads: ReadCacheDep,
) -> JSONResponse:
    """Update the fields sent. Running executions keep the definition they started with.

    A new endpoint (or credential token_url) the outbound policy refuses is stored with
    `warnings` (a 422 in ENVIRONMENT=production). `credential` replaces the stored one,
    `credential: null` removes it; moving the endpoint to another origin needs the
    credential sent again.
    """
    warnings = await outbound_warnings(
        settings, str(body.endpoint) if body.endpoint is not None else None
    )
    warnings += await credential_warnings(settings, body.credential)

    status_code, content = await services.update(
        session,
        service_id,
        body,
        codec=credentials.codec_of(settings.encryption_keys),
        keyed=idempotency.bound(
            f"PATCH /api/services/{service_id}", idempotency_request(body, settings)
        ),
    )
    reads.invalidate()
    return JSONResponse(_with_warnings(content, warnings), status_code=status_code)


@router.delete("/{service_id}", response_model=ServicePublic, responses=error_responses(404, 409))
async def deregister_service(
    service_id: ServiceRef,
    session: SessionDep,
    idempotency: IdempotencyDep,
    reads: ReadCacheDep,
    force: Annotated[
        bool, Query(description="deregister even if active workflows use the service")
    ] = False,
) -> JSONResponse:
    """Deregister a service; refused with 409 while an ACTIVE workflow uses it.

    With an Idempotency-Key, a retry after a lost answer gets the first answer, not a 404.
    """
    status_code, content = await services.deregister(
        session,
        service_id,
        force=force,
        keyed=idempotency.bound(f"DELETE /api/services/{service_id}", {"force": force}),
    )
    reads.invalidate()
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
    service_id: ServiceRef,
    action: str,
    body: ExecuteRequest,
    request: Request,
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
    definition = await cached_model(
        request,
        ("pin-action", service_id, action),
        lambda: workflows.pin_action(session, service_id, action),
    )
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
    service_id: ServiceRef,
    action: str,
    body: ExecuteRequest,
    request: Request,
    session: SessionDep,
    executions: ExecutionsDep,
    response: Response,
    idempotency: IdempotencyDep,
    request_id: RequestIdHeader = None,
) -> ExecutionStarted:
    """Start one action as a one-step execution without waiting; follow it at status_url."""
    definition = await cached_model(
        request,
        ("pin-action", service_id, action),
        lambda: workflows.pin_action(session, service_id, action),
    )
    execution_id = await execution_id_for(
        session, idempotency, scope=f"execute action:{service_id}:{action}", request=body
    )
    await session.close()
    return await start_and_point(
        executions, definition, with_request_id(body, request_id), execution_id, response
    )


@router.get("/{service_id}/health", responses=error_responses(404))
async def get_service_health(
    service_id: ServiceRef, session: SessionDep, http: HttpDep, settings: SettingsDep
) -> dict[str, Any]:
    """Probe the service's health URL (GET {endpoint}{health_path}) with a short timeout.

    `status` is healthy, unhealthy, or refused: the outbound policy refuses the URL (it is
    not probed; ALLOWED_HOSTS lists the exceptions).
    """
    row = await services.get_row(session, service_id)
    await session.close()
    url = row.endpoint + row.health_path
    answer: dict[str, Any] = {
        "service_id": row.id,
        "name": row.name,
        "registry_status": row.status,
        "url": url,
        "status_code": None,
        "latency_ms": None,
    }
    try:
        # The worker's policy, fail closed: a refused target is never connected to, so
        # the answer says nothing of what listens there (no timing, no port state).
        target = await resolve_checked(url, OutboundPolicy(allowed_hosts=settings.allowed_hosts))
    except OutboundRefusedError as exc:
        return {
            **answer,
            "status": "refused",
            "last_error": f"not probed: refused by the outbound policy: {exc}",
        }
    except OutboundLookupError as exc:
        return {**answer, "status": "unhealthy", "last_error": str(exc)}
    started = time.perf_counter()
    status, error, code = "unhealthy", None, None
    try:
        reply = await http.get(
            target.url,
            headers=target.headers,
            extensions=target.extensions,
            timeout=2.0,
            follow_redirects=False,
        )
        code = reply.status_code
        if reply.is_success:
            status = "healthy"
        else:
            error = f"HTTP {reply.status_code}"
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {
        **answer,
        "status": status,
        "status_code": code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "last_error": error,
    }
