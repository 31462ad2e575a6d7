"""One place that maps error types to status codes and bodies; never message text.

Bodies keep FastAPI's `detail` and add what a client needs to act:
`resource_type`/`resource_id` on 404 and 409, `component` on 503.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from temporalio.service import RPCError, RPCStatusCode

from registry.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidDefinitionError,
    NotFoundError,
    NotRunnableError,
)

log = logging.getLogger("gateway")


class IdempotencyKeyReusedError(Exception):
    """An Idempotency-Key came back with a different request."""


class TemporalUnavailableError(Exception):
    """The Temporal frontend cannot be reached."""


def install(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(
            {
                "detail": str(exc),
                "resource_type": exc.resource_type,
                "resource_id": exc.resource_id,
            },
            status_code=404,
        )

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(
            {
                "detail": str(exc),
                "resource_type": exc.resource_type,
                "resource_id": exc.resource_id,
            },
            status_code=409,
        )

    @app.exception_handler(NotRunnableError)
    async def _not_runnable(_: Request, exc: NotRunnableError) -> JSONResponse:
        return JSONResponse(
            {
                "detail": str(exc),
                "resource_type": exc.resource_type,
                "resource_id": exc.resource_id,
            },
            status_code=409,
        )

    @app.exception_handler(InvalidDefinitionError)
    async def _invalid(_: Request, exc: InvalidDefinitionError) -> JSONResponse:
        return JSONResponse({"detail": exc.problems}, status_code=422)

    @app.exception_handler(IdempotencyKeyReusedError)
    async def _key_reused(_: Request, exc: IdempotencyKeyReusedError) -> JSONResponse:
        return JSONResponse(
            {
                "detail": [
                    {"loc": ["header", "Idempotency-Key"], "msg": str(exc), "type": "value_error"}
                ]
            },
            status_code=422,
        )

    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("registry database unavailable: %s", exc)
        return JSONResponse(
            {
                "detail": "the registry database is unavailable; retry shortly "
                "(running executions are not affected)",
                "component": "database",
            },
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for error in (DatabaseUnavailableError, OperationalError, InterfaceError, DBAPIError, OSError):
        app.add_exception_handler(error, _database_down)  # type: ignore[arg-type]

    async def _temporal_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("temporal unavailable: %s", exc)
        return JSONResponse(
            {"detail": "Temporal is unavailable; retry shortly", "component": "temporal"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    app.add_exception_handler(TemporalUnavailableError, _temporal_down)  # type: ignore[arg-type]

    @app.exception_handler(RPCError)
    async def _rpc(request: Request, exc: RPCError) -> JSONResponse:
        if exc.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.RESOURCE_EXHAUSTED,
            RPCStatusCode.CANCELLED,
        ):
            return await _temporal_down(request, exc)
        if exc.status == RPCStatusCode.NOT_FOUND:
            return JSONResponse({"detail": exc.message}, status_code=404)
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            return JSONResponse(
                {"detail": [{"loc": ["body"], "msg": exc.message, "type": "value_error"}]},
                status_code=422,
            )
        log.error("temporal error %s: %s", exc.status, exc.message)
        return JSONResponse({"detail": f"Temporal error: {exc.message}"}, status_code=502)
