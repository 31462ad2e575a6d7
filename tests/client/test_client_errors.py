"""The error tree, and the translation tables from HTTP answers and httpx errors."""

from __future__ import annotations

import httpx
import pytest

from shared.utils.src.clients import _api
from shared.utils.src.clients._core import (
    encode_json,
    error_for_response,
    error_for_transport,
    interpret,
    outcome,
)
from shared.utils.src.exceptions import (
    CircuitOpenError,
    ConflictError,
    ExecutionError,
    ExecutionFailedError,
    ExecutionStillRunningError,
    MaxRetriesExceededError,
    RequestRejectedError,
    ResourceNotFoundError,
    ServiceIntegrationError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnexpectedResponseError,
    ValidationError,
)

GET_WORKFLOW = _api.get_workflow("wf-1", version=None)


def answer(status: int, body: object = None, **kwargs: object) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1:8005/api/workflows/wf-1")
    if body is None:
        return httpx.Response(status, request=request, **kwargs)  # type: ignore[arg-type]
    return httpx.Response(status, json=body, request=request, **kwargs)  # type: ignore[arg-type]


def test_tree() -> None:
    rejected = [ValidationError, UnauthorizedError, ResourceNotFoundError, ConflictError]
    assert all(issubclass(e, RequestRejectedError) for e in rejected)
    assert issubclass(CircuitOpenError, ServiceUnavailableError)
    assert issubclass(ExecutionFailedError, ExecutionError)
    assert issubclass(ExecutionStillRunningError, ExecutionError)
    # So that the guide's `except MaxRetriesExceededError`, written after
    # `except ServiceUnavailableError`, is reached.
    assert not issubclass(MaxRetriesExceededError, ServiceUnavailableError)
    every = [
        *rejected,
        RequestRejectedError,
        ServiceUnavailableError,
        CircuitOpenError,
        MaxRetriesExceededError,
        UnexpectedResponseError,
        ExecutionError,
    ]
    assert all(issubclass(e, ServiceIntegrationError) for e in every)


def test_guide_constructors_and_attributes() -> None:
    assert ServiceUnavailableError("svc").service_name == "svc"
    missing = ResourceNotFoundError("workflow", "123")
    assert (missing.resource_type, missing.resource_id) == ("workflow", "123")
    assert str(missing) == "workflow '123' was not found"
    invalid = ValidationError([{"loc": ["body", "name"], "msg": "required", "type": "missing"}])
    assert invalid.validation_errors[0]["msg"] == "required"
    assert "body.name: required" in str(invalid)
    last = ServiceUnavailableError("svc")
    exhausted = MaxRetriesExceededError(4, last)
    assert (exhausted.attempts, exhausted.last_error) == (4, last)
    assert "4 attempts" in str(exhausted)


def test_404_takes_type_and_id_from_the_answer() -> None:
    error = error_for_response(
        GET_WORKFLOW,
        answer(
            404,
            {"detail": "service 'x' not found", "resource_type": "service", "resource_id": "x"},
        ),
    )
    assert isinstance(error, ResourceNotFoundError)
    assert (error.resource_type, error.resource_id) == ("service", "x")
    assert str(error) == "service 'x' not found"
    assert error.status_code == 404
    assert error.request is not None and error.request.url.path == "/api/workflows/wf-1"


def test_404_without_details_falls_back_to_the_call() -> None:
    error = error_for_response(GET_WORKFLOW, answer(404, {"detail": "Not Found"}))
    assert isinstance(error, ResourceNotFoundError)
    assert (error.resource_type, error.resource_id) == ("workflow", "wf-1")
    assert "base_url ends with /api" in str(error)


def test_422_keeps_the_server_list() -> None:
    problems = [{"loc": ["body", "steps", 0, "action"], "msg": "unknown action", "type": "x"}]
    error = error_for_response(GET_WORKFLOW, answer(422, {"detail": problems}))
    assert isinstance(error, ValidationError)
    assert error.validation_errors == problems


@pytest.mark.parametrize("status", [400, 413])
def test_400_and_413_are_validation_errors_with_a_list(status: int) -> None:
    error = error_for_response(GET_WORKFLOW, answer(status, {"detail": "too big"}))
    assert isinstance(error, ValidationError)
    assert error.validation_errors[0]["msg"] == "too big"


def test_409_is_a_conflict_with_its_resource() -> None:
    body = {"detail": "name taken", "resource_type": "workflow", "resource_id": "wf-1"}
    error = error_for_response(GET_WORKFLOW, answer(409, body))
    assert isinstance(error, ConflictError)
    assert (error.resource_type, error.resource_id) == ("workflow", "wf-1")
    assert str(error) == "name taken"


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_say_how_to_authenticate(status: int) -> None:
    error = error_for_response(GET_WORKFLOW, answer(status, {"detail": "missing key"}))
    assert isinstance(error, UnauthorizedError)
    assert "api_key=" in str(error)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_unavailability(status: int) -> None:
    error = error_for_response(
        GET_WORKFLOW,
        answer(
            status,
            {"detail": "Temporal is unavailable", "component": "temporal"},
            headers={"Retry-After": "2"},
        ),
    )
    assert isinstance(error, ServiceUnavailableError)
    assert error.service_name == "service-integration"
    assert error.component == "temporal"
    assert error.retry_after == 2.0
    assert error.response is not None and error.response.status_code == status


def test_500_is_unexpected_and_points_at_the_logs() -> None:
    error = error_for_response(GET_WORKFLOW, answer(500, text="Internal Server Error"))
    assert type(error) is UnexpectedResponseError
    assert "see its logs" in str(error)


def test_other_4xx_are_rejections() -> None:
    error = error_for_response(GET_WORKFLOW, answer(405, {"detail": "Method Not Allowed"}))
    assert type(error) is RequestRejectedError


def test_success_that_is_not_json_is_unexpected() -> None:
    with pytest.raises(UnexpectedResponseError, match="not a JSON object"):
        interpret(GET_WORKFLOW, answer(200, text="<html>dashboard</html>"))


def test_health_503_with_a_report_is_returned() -> None:
    report = {"status": "unhealthy", "components": {}}
    assert interpret(_api.get_integration_health(), answer(503, report)) == report
    with pytest.raises(ServiceUnavailableError):
        interpret(_api.get_integration_health(), answer(503, text="Service Unavailable"))
    with pytest.raises(ServiceUnavailableError):
        interpret(GET_WORKFLOW, answer(503, report))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("refused"), ServiceUnavailableError),
        (httpx.ReadTimeout("slow"), ServiceUnavailableError),
        (httpx.ConnectTimeout("slow"), ServiceUnavailableError),
        (httpx.RemoteProtocolError("peer closed"), ServiceUnavailableError),
        (httpx.ReadError("reset"), ServiceUnavailableError),
        (httpx.UnsupportedProtocol("ftp"), ServiceIntegrationError),
        (httpx.TooManyRedirects("loop"), ServiceIntegrationError),
    ],
)
def test_transport_table(error: httpx.RequestError, expected: type[Exception]) -> None:
    request = httpx.Request("GET", "http://127.0.0.1:1/api/health")
    translated = error_for_transport(error, request)
    assert type(translated) is expected
    assert translated.request is request
    assert translated.response is None


def test_body_that_is_not_json_is_a_validation_error_with_its_location() -> None:
    with pytest.raises(ValidationError) as caught:
        encode_json({"name": "x", "steps": [{"id": "a"}, ...]})
    assert caught.value.validation_errors[0]["loc"] == ["body", "steps", 1]
    assert caught.value.request is None


def test_empty_id_is_refused_before_sending() -> None:
    with pytest.raises(ValidationError) as caught:
        _api.get_workflow("", version=None)
    assert caught.value.validation_errors[0]["loc"] == ["path", "workflow_id"]


def test_ids_cannot_change_the_path() -> None:
    assert _api.get_service("../workflows").path == "/services/..%2Fworkflows"


def test_outcome_of_records() -> None:
    running = {"execution_id": "e1", "status": "RUNNING"}
    assert outcome(running) is None
    done = outcome({"execution_id": "e1", "status": "COMPLETED", "result": {"sentiment": "good"}})
    assert done == {"sentiment": "good"}
    assert done is not None and done.execution_id == "e1" and done.status == "COMPLETED"
    cause = {
        "step_id": "analyze-sentiment",
        "service": "sentiment-analysis",
        "action": "analyze",
        "error_type": "HTTPStatusError",
        "message": "500 from the service",
        "attempts": 3,
    }
    with pytest.raises(ExecutionFailedError) as caught:
        outcome({"execution_id": "e2", "status": "FAILED", "workflow_name": "w", "error": cause})
    failed = caught.value
    assert (failed.execution_id, failed.status) == ("e2", "FAILED")
    assert failed.step_id == "analyze-sentiment"
    assert failed.cause == cause
    assert "at step 'analyze-sentiment' (sentiment-analysis.analyze) after 3 attempt(s)" in str(
        failed
    )
    with pytest.raises(ExecutionFailedError) as caught:
        outcome({"execution_id": "e3", "status": "TIMED_OUT", "error": None})
    assert caught.value.step_id is None and caught.value.status == "TIMED_OUT"
