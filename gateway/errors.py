"""Every error answer comes from one table: exception type -> status code and body.

    NotFoundError                         404  {detail, resource_type, resource_id}
    ConflictError, NotRunnableError       409  {detail, resource_type, resource_id}
    StaleDataError                        409  {detail}: changed by a concurrent request
    UnsupportedMediaTypeError             415  {detail}: send application/json
    RequestValidationError                422  {detail: [{loc, msg, type, input?, ctx?}]}
    InvalidDefinitionError                422  the registry's problems, located in "body"
    IdempotencyKeyReusedError             422  located in the Idempotency-Key header
    InvalidPageTokenError                 422  located in the page_token query parameter
    DatabaseUnavailableError, SQLAlchemy
      OperationalError/InterfaceError/
      DBAPIError, OSError                 503  {detail, component: "database"}, Retry-After
    TemporalUnavailableError              503  {detail, component: "temporal"}, Retry-After
    RPCError                              by its status: UNAVAILABLE, DEADLINE_EXCEEDED,
                                          RESOURCE_EXHAUSTED, CANCELLED -> 503 (temporal);
                                          NOT_FOUND -> 404; INVALID_ARGUMENT -> 422;
                                          any other -> 500
    any other Exception                   500  {detail}

An exception is answered by the entry of the nearest type in its class hierarchy, by
one handler (`answer`), never by its message text. Bodies keep FastAPI's `detail` and
add what a client needs to act: `resource_type`/`resource_id` on 404 and 409,
`component` on 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from temporalio.service import RPCError, RPCStatusCode

from definitions.json_values import answerable
from executions.errors import InvalidPageTokenError, TemporalUnavailableError
from registry.errors import (
    ConflictError,
    DatabaseUnavailableError,
    IdempotencyKeyReusedError,
    InvalidDefinitionError,
    NotFoundError,
    NotRunnableError,
)

log = logging.getLogger("gateway")

RETRY_AFTER_SECONDS = "2"
BODY = "body"
"""Where in the request the registry's definitions come from: its problems' `loc` is
domain-only (["steps", 2, "next"]) and gets this prefix in the answer."""


class UnsupportedMediaTypeError(Exception):
    """A request body that is not declared as JSON."""

    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        super().__init__(
            f"the request body was sent with {sent}; send it as JSON with "
            "'Content-Type: application/json'"
        )


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
    415: {"model": ErrorBody, "description": "the body is not sent as application/json"},
    503: {
        "model": UnavailableBody,
        "description": "the registry database or Temporal is unavailable; retry later",
    },
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error codes an operation can answer."""
    return {code: _ERROR_RESPONSES[code] for code in codes}


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to an exception."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status_code, headers=self.headers or None)


def _resource(status_code: int) -> Callable[[Any], Answer]:
    def answer(exc: NotFoundError | ConflictError | NotRunnableError) -> Answer:
        return Answer(
            status_code,
            {
                "detail": str(exc),
                "resource_type": exc.resource_type,
                "resource_id": exc.resource_id,
            },
        )

    return answer


def _unavailable(component: Literal["database", "temporal"]) -> Callable[[Exception], Answer]:
    detail = {
        "database": "the registry database is unavailable; retry shortly "
        "(running executions are not affected)",
        "temporal": "Temporal is unavailable; retry shortly",
    }[component]

    def answer(exc: Exception) -> Answer:
        log.warning("%s unavailable: %s", component, exc)
        return Answer(
            503,
            {"detail": detail, "component": component},
            {"Retry-After": RETRY_AFTER_SECONDS},
        )

    return answer


def _stale(_: StaleDataError) -> Answer:
    return Answer(
        409,
        {
            "detail": "the resource was changed or deleted by another request at the same "
            "time; read it again, then retry"
        },
    )


def _unsupported_media_type(exc: UnsupportedMediaTypeError) -> Answer:
    return Answer(415, {"detail": str(exc)}, {"Accept": "application/json"})


def _request_problems(exc: RequestValidationError) -> Answer:
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
    return Answer(422, {"detail": detail})


def _definition_problems(exc: InvalidDefinitionError) -> Answer:
    return Answer(
        422, {"detail": [{**problem, "loc": [BODY, *problem["loc"]]} for problem in exc.problems]}
    )


def _key_reused(exc: IdempotencyKeyReusedError) -> Answer:
    problem = {"loc": ["header", "Idempotency-Key"], "msg": str(exc), "type": "value_error"}
    return Answer(422, {"detail": [problem]})


def _page_token(exc: InvalidPageTokenError) -> Answer:
    problem = {
        "loc": ["query", "page_token"],
        "msg": f"{exc}; send the next_page_token of the previous page, or leave it out "
        "for the first page",
        "type": "value_error",
    }
    return Answer(422, {"detail": [problem]})


_TEMPORAL_UNAVAILABLE = _unavailable("temporal")
_RPC_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
}


def _rpc(exc: RPCError) -> Answer:
    if exc.status in _RPC_UNAVAILABLE:
        return _TEMPORAL_UNAVAILABLE(exc)
    if exc.status == RPCStatusCode.NOT_FOUND:
        return Answer(404, {"detail": exc.message})
    if exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return Answer(422, {"detail": [{"loc": [BODY], "msg": exc.message, "type": "value_error"}]})
    log.error("unexpected Temporal error %s: %s", exc.status.name, exc.message)
    return Answer(500, {"detail": f"unexpected Temporal error {exc.status.name}: {exc.message}"})


def _unexpected(_: Exception) -> Answer:
    # Starlette raises the exception on after this answer, and the server logs it.
    return Answer(500, {"detail": "internal error; the gateway's log has the details"})


ERROR_TABLE: dict[type[Exception], Callable[[Any], Answer]] = {
    NotFoundError: _resource(404),
    ConflictError: _resource(409),
    NotRunnableError: _resource(409),
    StaleDataError: _stale,
    UnsupportedMediaTypeError: _unsupported_media_type,
    RequestValidationError: _request_problems,
    InvalidDefinitionError: _definition_problems,
    IdempotencyKeyReusedError: _key_reused,
    InvalidPageTokenError: _page_token,
    DatabaseUnavailableError: _unavailable("database"),
    OperationalError: _unavailable("database"),
    InterfaceError: _unavailable("database"),
    DBAPIError: _unavailable("database"),
    OSError: _unavailable("database"),
    TemporalUnavailableError: _TEMPORAL_UNAVAILABLE,
    RPCError: _rpc,
    Exception: _unexpected,
}
"""Exception type -> its answer; an exception takes the entry of its nearest type."""


def answer_for(exc: Exception) -> Answer:
    """The answer to `exc`, from the entry of the nearest type in its class hierarchy."""
    for kind in type(exc).__mro__:
        translate = ERROR_TABLE.get(kind)
        if translate is not None:
            return translate(exc)
    return _unexpected(exc)


async def answer(_: Request, exc: Exception) -> JSONResponse:
    """The one exception handler: looks the exception up in ERROR_TABLE."""
    return answer_for(exc).response()


def install(app: FastAPI) -> None:
    for kind in ERROR_TABLE:
        app.add_exception_handler(kind, answer)
