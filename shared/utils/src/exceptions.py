"""Errors raised by the Service Integration client.

Every error carries the context it has as attributes: `.request` (the
`httpx.Request` that was sent, or None when nothing was sent) and `.response`
(the `httpx.Response`, or None when no answer came). Mistakes of the caller
(4xx) are kept apart from unavailability (which is retried and counted by the
circuit breaker), from other 5xx answers (counted by the breaker, not retried)
and from executions that ran and failed::

    ServiceIntegrationError                 base of every error below
    ├── RequestRejectedError                a 4xx answer: change the request, do not retry it
    │   ├── ValidationError                 400, 413, 422, or a body that is not JSON
    │   │                                   .validation_errors
    │   ├── UnauthorizedError               401, 403: missing or wrong api_key
    │   ├── ResourceNotFoundError           404      .resource_type, .resource_id
    │   └── ConflictError                   409      .resource_type, .resource_id
    ├── ServiceUnavailableError             502/503/504, connection errors, timeouts
    │   │                                   .service_name, .component, .retry_after
    │   └── CircuitOpenError                the breaker is open; nothing was sent
    ├── MaxRetriesExceededError             retries ran out   .attempts, .last_error
    ├── UnexpectedResponseError             500 and other answers the client cannot use
    └── ExecutionError                      about one execution   .execution_id, .execution
        ├── ExecutionFailedError            ended FAILED, CANCELED, TERMINATED or TIMED_OUT
        │                                   .status, .step_id, .cause
        └── ExecutionStillRunningError      still running when the client stopped waiting

Only `ServiceUnavailableError` is retried (except `CircuitOpenError`, which fails
fast); when the retries run out, `MaxRetriesExceededError` is raised with the
last `ServiceUnavailableError` as `.last_error` and as `__cause__`. It is not a
subclass of `ServiceUnavailableError`, so an `except MaxRetriesExceededError`
after an `except ServiceUnavailableError` is reached, as in the client guide.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "CircuitOpenError",
    "ConflictError",
    "ExecutionError",
    "ExecutionFailedError",
    "ExecutionStillRunningError",
    "MaxRetriesExceededError",
    "RequestRejectedError",
    "ResourceNotFoundError",
    "ServiceIntegrationError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "ValidationError",
]


class ServiceIntegrationError(Exception):
    """Base of every error the Service Integration client raises.

    Attributes:
        message: What went wrong and, where it can, what to do about it.
        request: The request that was sent, or None if nothing was sent.
        response: The answer, or None if none came.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.request = request if request is not None else _request_of(response)

    @property
    def status_code(self) -> int | None:
        """The HTTP status of the answer, or None if no answer came."""
        return None if self.response is None else self.response.status_code

    def __str__(self) -> str:
        return self.message


class RequestRejectedError(ServiceIntegrationError):
    """The gateway refused the request (4xx); sending it again will not help."""


class ValidationError(RequestRejectedError):
    """The request is invalid (400, 413, 422), or its body cannot be sent as JSON.

    Attributes:
        validation_errors: The problems, as the gateway lists them:
            `[{"loc": [...], "msg": "...", "type": "..."}, ...]`.
    """

    def __init__(
        self,
        validation_errors: list[dict[str, Any]],
        message: str | None = None,
        *,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.validation_errors = validation_errors
        super().__init__(
            message or _validation_message(validation_errors), request=request, response=response
        )


class UnauthorizedError(RequestRejectedError):
    """The gateway needs an API key (401) or refuses this one (403).

    Pass it as `api_key=` or set `SERVICE_INTEGRATION_API_KEY`.
    """


class ResourceNotFoundError(RequestRejectedError):
    """A service, workflow or execution does not exist (404).

    Attributes:
        resource_type: `"service"`, `"workflow"`, `"execution"`, ...
        resource_id: The id (or name) that was looked up.
    """

    def __init__(
        self,
        resource_type: str,
        resource_id: str,
        message: str | None = None,
        *,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        super().__init__(
            message or f"{resource_type} '{resource_id}' was not found",
            request=request,
            response=response,
        )


class ConflictError(RequestRejectedError):
    """The request conflicts with the stored state (409).

    For example: the name is taken, the service is used by an ACTIVE workflow,
    or the workflow is INACTIVE and cannot run.

    Attributes:
        resource_type: The kind of resource in conflict, if the gateway said.
        resource_id: Its id, if the gateway said.
    """

    def __init__(
        self,
        message: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        super().__init__(message, request=request, response=response)


class ServiceUnavailableError(ServiceIntegrationError):
    """The service cannot answer now: 502/503/504, a connection error or a timeout.

    Retried by the client's retry policy, and counted by its circuit breaker.

    Attributes:
        service_name: The service that is unavailable (`"service-integration"`).
        component: What the gateway said is down (`"database"`, `"temporal"`), if it said.
        retry_after: Seconds the gateway asked to wait (Retry-After), if it asked.
    """

    def __init__(
        self,
        service_name: str,
        message: str | None = None,
        *,
        component: str | None = None,
        retry_after: float | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.service_name = service_name
        self.component = component
        self.retry_after = retry_after
        super().__init__(
            message or f"{service_name} is unavailable; retry later",
            request=request,
            response=response,
        )


class CircuitOpenError(ServiceUnavailableError):
    """The circuit breaker is open: the call failed at once and nothing was sent.

    Attributes:
        retry_after: Seconds until the breaker lets a trial call through.
    """


class MaxRetriesExceededError(ServiceIntegrationError):
    """The service stayed unavailable through every retry of the policy.

    Attributes:
        attempts: How many times the call was tried, the first one included.
        last_error: The error of the last attempt (also the `__cause__`).
    """

    def __init__(
        self, attempts: int, last_error: BaseException, message: str | None = None
    ) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            message or f"gave up after {attempts} attempts: {last_error}",
            request=getattr(last_error, "request", None),
            response=getattr(last_error, "response", None),
        )


class UnexpectedResponseError(ServiceIntegrationError):
    """An answer the client cannot use: 500, another status it does not know, or bad JSON.

    A 500 (or another 5xx but 502/503/504) is a fault of the gateway: it is not
    retried, but the circuit breaker counts it as a failure. An answer that is not
    a 5xx (a 200 whose body is not a JSON object) is not counted.
    """


class ExecutionError(ServiceIntegrationError):
    """About one execution of a workflow or an action.

    Attributes:
        execution_id: The execution's id; read its record with
            `client.get_workflow_execution_status(execution_id)`.
        execution: The execution record as last read, or None.
    """

    def __init__(
        self,
        execution_id: str,
        message: str,
        *,
        execution: dict[str, Any] | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.execution = execution
        super().__init__(message, request=request, response=response)


class ExecutionFailedError(ExecutionError):
    """The execution ended without a result: FAILED, CANCELED, TERMINATED or TIMED_OUT.

    Attributes:
        status: The execution's final status.
        step_id: The step that failed, or None if the failure was not a step's.
        cause: The gateway's error object: `{"step_id", "service", "action",
            "error_type", "message", "attempts"}`, or None.
    """

    def __init__(
        self,
        execution_id: str,
        message: str | None = None,
        *,
        status: str,
        step_id: str | None = None,
        cause: dict[str, Any] | None = None,
        execution: dict[str, Any] | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.status = status
        self.step_id = step_id
        self.cause = cause
        super().__init__(
            execution_id,
            message or f"execution '{execution_id}' ended {status}",
            execution=execution,
            request=request,
            response=response,
        )


class ExecutionStillRunningError(ExecutionError):
    """The execution was still running when the client stopped waiting for it.

    It goes on in the service. Follow it with `get_workflow_execution_status`
    or `wait_for_execution`, or wait longer with `wait_timeout=`.

    Attributes:
        waited: Seconds the client waited.
    """

    def __init__(
        self,
        execution_id: str,
        *,
        waited: float,
        execution: dict[str, Any] | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.waited = waited
        super().__init__(
            execution_id,
            f"execution '{execution_id}' is still running after {waited:.1f} s; it goes on "
            f"in the service: follow it with get_workflow_execution_status('{execution_id}') "
            "or wait_for_execution(), or pass a larger wait_timeout=",
            execution=execution,
            request=request,
            response=response,
        )


def _request_of(response: httpx.Response | None) -> httpx.Request | None:
    if response is None:
        return None
    try:
        return response.request
    except RuntimeError:  # a Response built without a request
        return None


def _validation_message(errors: list[dict[str, Any]]) -> str:
    if not errors:
        return "the request is invalid"
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(p) for p in error.get("loc") or ())
        msg = error.get("msg", "invalid")
        parts.append(f"{loc}: {msg}" if loc else str(msg))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "the request is invalid: " + "; ".join(parts) + more
