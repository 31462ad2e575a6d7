"""One table answers every error (gateway/errors.py): Temporal errors that mean
"unavailable" are 503s, any other Temporal error is a 500 with a JSON body, never a 502
or a 503 by default.

The app is the real one (its lifespan, routes and handlers) in this process, against the
session's Temporal dev server; only its ExecutionService is replaced by a stand-in that
raises what Temporal could."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm.exc import StaleDataError
from temporalio.service import RPCError, RPCStatusCode

from core.settings import Settings
from gateway.app import create_app
from gateway.errors import ERROR_TABLE, answer_for
from registry.errors import InvalidDefinitionError


class RaisingExecutions:
    """An ExecutionService whose reads raise `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def wait_for(self, execution_id: str, timeout: float) -> bool:
        raise self.error

    async def get(self, execution_id: str) -> Any:
        raise self.error


@pytest.fixture
async def app(temporal, tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        temporal_address=temporal.address,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        data_dir=tmp_path,
        environment="test",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def get_execution(app: FastAPI, error: Exception) -> httpx.Response:
    app.state.executions = RaisingExecutions(error)
    # Unexpected errors are answered, then raised on for the server to log: not here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.get("/api/executions/exec-1")


@pytest.mark.parametrize(
    "status",
    [
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.UNKNOWN,
    ],
)
async def test_an_unexpected_temporal_error_is_a_500_with_a_json_body(app, status):
    answer = await get_execution(app, RPCError("the frontend said no", status, b""))
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert status.name in answer.json()["detail"]
    assert "the frontend said no" in answer.json()["detail"]


@pytest.mark.parametrize(
    "status",
    [
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
    ],
)
async def test_a_temporal_error_that_means_unavailable_is_a_503(app, status):
    answer = await get_execution(app, RPCError("down", status, b""))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.json() == {
        "detail": "Temporal is unavailable; retry shortly",
        "component": "temporal",
    }


async def test_a_runtime_error_other_than_failing_to_connect_is_a_500_not_a_503(app):
    answer = await get_execution(app, RuntimeError("a bug, not an outage"))
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error; the gateway's log has the details"}


async def test_the_gateway_adds_the_request_location_to_definition_problems():
    problems = [{"loc": ["steps", 2, "next"], "msg": "no such step", "type": "value_error"}]
    answer = answer_for(InvalidDefinitionError(problems))
    assert answer.status_code == 422
    assert answer.body["detail"][0]["loc"] == ["body", "steps", 2, "next"]
    assert problems[0]["loc"] == ["steps", 2, "next"], "the registry's problem is unchanged"


def test_every_exception_takes_the_entry_of_its_nearest_type():
    class Special(KeyError):
        pass

    assert Exception in ERROR_TABLE
    assert answer_for(Special("x")).status_code == 500
    assert answer_for(ConnectionRefusedError()).status_code == 503


def test_a_row_changed_by_a_concurrent_request_is_409_not_500():
    answer = answer_for(StaleDataError("UPDATE statement on table 'services' matched 0 rows"))
    assert answer.status_code == 409
    assert "another request" in answer.body["detail"]
