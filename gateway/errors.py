"""One place that maps error types to status codes and bodies; never message text.

Bodies keep FastAPI's `detail` and add what a client needs to act:
`resource_type`/`resource_id` on 404 and 409, `component` on 503.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from temporalio.service import RPCError, RPCStatusCode

from definitions.json_values import answerable
from executions.errors import TemporalUnavailableError
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


class ErrorBody(BaseModel):
    """Body of an error answer (422 keeps FastAPI's list of {loc, msg, type})."""

    detail: str
    resource_type: str | None = None
    resource_id: str | None = None


class UnavailableBody(BaseModel):
    """Body of a 503: which component is down; retry after the Retry-After header."""

    detail: str
    component: Literal["database", "temporal"]


_ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body could not be parsed (not JSON, not UTF-8)"},
    401: {"model": ErrorBody, "description": "API_KEYS is set and no valid Bearer key was sent"},
    404: {"model": ErrorBody, "description": "nothing of that type has that id"},
    409: {
        "model": ErrorBody,
        "description": "clashes with the stored state: a taken name, a service in use, "
        "or an INACTIVE workflow or service",
    },
    413: {"model": ErrorBody, "description": "the body is over MAX_BODY_BYTES"},
    503: {
        "model": UnavailableBody,
        "description": "the registry database or Temporal is unavailable; retry later",
    },
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error codes an operation can answer."""
    return {code: _ERROR_RESPONSES[code] for code in codes}


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

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each error's input: a lone surrogate or a NaN there
        # fails to render (500), and a deep body overflows the encoder. Echo scalars only.
        detail = []
        for error in exc.errors():
            entry: dict[str, Any] = {
                "loc": [answerable(part) for part in error["loc"]],
                "msg": answerable(str(error["msg"])),
                "type": str(error["type"]),
            }
            if answerable(error.get("input")) is not None:
                entry["input"] = answerable(error["input"])
            if error.get("ctx"):
                entry["ctx"] = {key: answerable(str(v)) for key, v in error["ctx"].items()}
            detail.append(entry)
        return JSONResponse({"detail": detail}, status_code=422)

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
