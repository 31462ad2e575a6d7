"""What both clients share besides URLs: request preparation and the reading of answers.

No I/O happens here. `prepare` turns a `Call` into the arguments of
`httpx.Client.build_request`; `interpret` turns an answer into a result or an
error; `error_for_response` and `error_for_transport` are the two translation
tables from HTTP and httpx to the errors of `shared.utils.src.exceptions`;
`outcome` reads an execution record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from shared.utils.src.clients._api import Call
from shared.utils.src.exceptions import (
    ConflictError,
    ExecutionFailedError,
    RequestRejectedError,
    ResourceNotFoundError,
    ServiceIntegrationError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnexpectedResponseError,
    ValidationError,
)
from shared.utils.src.request_id import REQUEST_ID_HEADER, current_request_id, new_request_id
from shared.utils.src.retry import Operation

SERVICE_NAME = "service-integration"
"""`service_name` of the errors about the gateway itself."""

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
USER_AGENT = "service-integration-client/0.1"

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"


# Requests


def prepare(
    call: Call,
    *,
    timeout: float,
    api_key: str | None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Arguments of `build_request` for every attempt of one logical call.

    The headers are fixed here, once: a write's `Idempotency-Key` (the caller's or
    a new one) and the `X-Request-ID` (the context's or a new one) stay the same
    across retries, so the gateway can recognise a retry and answer it as before.

    Raises:
        ValidationError: the body cannot be encoded as JSON.
    """
    headers = {
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        REQUEST_ID_HEADER: current_request_id() or new_request_id(),
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if call.operation is not Operation.READ:
        headers[IDEMPOTENCY_KEY_HEADER] = idempotency_key or str(uuid.uuid4())
    content = None
    if call.json is not None:
        content = encode_json(call.json)
        headers["Content-Type"] = "application/json"
    return {
        "method": call.method,
        "url": call.path.lstrip("/"),
        "params": dict(call.params),
        "content": content,
        "headers": headers,
        "timeout": timeout + call.server_wait,
    }


def encode_json(body: Mapping[str, Any]) -> bytes:
    """The body as compact JSON.

    Raises:
        ValidationError: a value is not JSON (an object, a set, `...`, NaN); its
            location is in `validation_errors[0]["loc"]`.
    """
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        loc = ["body", *_unencodable(body)]
        raise ValidationError(
            [
                {
                    "loc": loc,
                    "msg": f"{exc}; send only dicts, lists, strings, numbers, booleans and None",
                    "type": "type_error",
                }
            ]
        ) from exc


def _unencodable(value: Any, loc: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """The location of the first value json.dumps refuses (`loc` if it is `value`)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key is not None and not isinstance(key, str | int | float | bool):
                return (*loc, repr(key))
            if not _is_json(item):
                return _unencodable(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if not _is_json(item):
                return _unencodable(item, (*loc, index))
    return loc


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# Answers


def interpret(call: Call, response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a successful answer (an empty dict for an empty body).

    Raises:
        ServiceIntegrationError: the error `error_for_response` gives for the answer.
        UnexpectedResponseError: a success whose body is not a JSON object.
    """
    if response.is_success:
        if response.status_code == 204 or not response.content:
            return {}
        body = _json(response)
        if not isinstance(body, dict):
            raise UnexpectedResponseError(
                f"{_what(call, response)} answered {response.status_code} with a body that is "
                f"not a JSON object: {response.text[:200]!r}; check that base_url points at the "
                "gateway's /api",
                response=response,
            )
        return body
    if call.report_when_unavailable and response.status_code == 503:
        report = _json(response)
        if isinstance(report, dict) and "status" in report:
            return report
    raise error_for_response(call, response)


def error_for_response(call: Call, response: httpx.Response) -> ServiceIntegrationError:
    """The error for an answer that is not a success, by status code (table below)."""
    body = _json(response)
    status = response.status_code
    factory = _FROM_STATUS.get(status)
    if factory is None:
        factory = _rejected if 400 <= status < 500 else _unexpected
    return factory(call, response, body)


def _validation(call: Call, response: httpx.Response, body: Any) -> ServiceIntegrationError:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        errors = [
            dict(e) if isinstance(e, dict) else {"loc": [], "msg": str(e), "type": "value_error"}
            for e in detail
        ]
    else:
        kind = "payload_too_large" if response.status_code == 413 else "value_error"
        loc = ["body"] if response.status_code == 413 else []
        errors = [{"loc": loc, "msg": _detail(body, response), "type": kind}]
    return ValidationError(errors, response=response)


def _unauthorized(call: Call, response: httpx.Response, body: Any) -> ServiceIntegrationError:
    what = "refused the API key" if response.status_code == 403 else "needs an API key"
    return UnauthorizedError(
        f"{_what(call, response)}: the gateway {what} ({_detail(body, response)}); pass "
        "api_key= to the client or set SERVICE_INTEGRATION_API_KEY",
        response=response,
    )


def _not_found(call: Call, response: httpx.Response, body: Any) -> ServiceIntegrationError:
    said = body if isinstance(body, dict) else {}
    about_type, about_id = call.about or ("resource", call.path)
    resource_type = str(said.get("resource_type") or about_type)
    resource_id = str(said.get("resource_id") or about_id)
    if said.get("resource_type"):
        message = _detail(body, response)
    else:
        message = (
            f"{resource_type} '{resource_id}' was not found: {_what(call, response)} answered "
            f"404 ({_detail(body, response)}); check the id, and that base_url ends with /api"
        )
    return ResourceNotFoundError(resource_type, resource_id, message, response=response)


def _conflict(call: Call, response: httpx.Response, body: Any) -> ServiceIntegrationError:
    said = body if isinstance(body, dict) else {}
    return ConflictError(
        _detail(body, response),
        resource_type=said.get("resource_type"),
        resource_id=said.get("resource_id"),
        response=response,
    )


def _unavailable(call: Call, response: httpx.Response, body: Any) -> ServiceIntegrationError:
    said = body if isinstance(body, dict) else {}
    return ServiceUnavailableError(
        SERVICE_NAME,
        f"{SERVICE_NAME} is unavailable: {_what(call, response)} answered "
        f"{response.status_code} ({_detail(body, response)})",
        component=said.get("component"),
        retry_after=_retry_after(response),
        response=response,
    )


def _rejected(call: Call, response: httpx.Response, body: Any) -> ServiceIntegrationError:
    return RequestRejectedError(
        f"{_what(call, response)} was refused with {response.status_code}: "
        f"{_detail(body, response)}",
        response=response,
    )


def _unexpected(call: Call, response: httpx.Response, body: Any) -> ServiceIntegrationError:
    request_id = response.request.headers.get(REQUEST_ID_HEADER, "?")
    return UnexpectedResponseError(
        f"{_what(call, response)} answered {response.status_code}: {_detail(body, response)}; "
        f"this is a fault of the gateway: see its logs for request id {request_id}",
        response=response,
    )


_Factory = Callable[[Call, httpx.Response, Any], ServiceIntegrationError]

_FROM_STATUS: Mapping[int, _Factory] = {
    400: _validation,
    401: _unauthorized,
    403: _unauthorized,
    404: _not_found,
    409: _conflict,
    413: _validation,
    422: _validation,
    502: _unavailable,
    503: _unavailable,
    504: _unavailable,
}
"""Status code -> error. Other 4xx: RequestRejectedError; anything else: UnexpectedResponseError."""


_FROM_TRANSPORT: tuple[tuple[type[httpx.RequestError], str], ...] = (
    (httpx.TimeoutException, "did not answer in time"),
    (httpx.NetworkError, "could not be reached"),
    (httpx.RemoteProtocolError, "closed the connection without a complete answer"),
    (httpx.ProxyError, "could not be reached through the proxy"),
)
"""httpx error -> what it says about the service; each becomes a ServiceUnavailableError.

Any other httpx error (unsupported scheme, too many redirects, ...) is a mistake
of configuration and becomes a plain ServiceIntegrationError, not retried.
"""


def error_for_transport(exc: httpx.RequestError, request: httpx.Request) -> ServiceIntegrationError:
    """The error for a request that got no usable answer."""
    cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    for kind, what in _FROM_TRANSPORT:
        if isinstance(exc, kind):
            return ServiceUnavailableError(
                SERVICE_NAME,
                f"{SERVICE_NAME} at {request.url} {what} ({cause})",
                request=request,
            )
    return ServiceIntegrationError(
        f"could not send {request.method} {request.url} ({cause}); check base_url",
        request=request,
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else json.dumps(detail)[:500]
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase


def _what(call: Call, response: httpx.Response) -> str:
    try:
        return f"{response.request.method} {response.request.url}"
    except RuntimeError:
        return f"{call.method} {call.path}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    date = response.headers.get("Date")
    now = parsedate_to_datetime(date) if date else None
    if now is None:
        return None
    return max(0.0, (moment - now).total_seconds())


# Executions


class ExecutionResult(dict[str, Any]):
    """The result of a completed execution: a dict, with the execution attached.

    Index it like the workflow's (or action's) output, `result["sentiment"]`,
    and reach the execution through its attributes.

    Attributes:
        execution: The execution record, as `GET /executions/{execution_id}` gives it
            (status, input, context, result, steps, timestamps).
    """

    def __init__(self, result: Mapping[str, Any] | None, execution: dict[str, Any]) -> None:
        super().__init__(result or {})
        self.execution = execution

    @property
    def execution_id(self) -> str:
        """The execution's id (also the Temporal workflow id)."""
        return str(self.execution.get("execution_id", ""))

    @property
    def status(self) -> str:
        """`COMPLETED`."""
        return str(self.execution.get("status", COMPLETED))

    def __repr__(self) -> str:
        return f"ExecutionResult({dict.__repr__(self)}, execution_id={self.execution_id!r})"


def outcome(
    record: dict[str, Any], *, response: httpx.Response | None = None
) -> ExecutionResult | None:
    """The result of a closed execution, or None while it runs.

    Raises:
        ExecutionFailedError: the execution ended FAILED, CANCELED, TERMINATED or TIMED_OUT.
    """
    status = record.get("status")
    if status == RUNNING:
        return None
    if status == COMPLETED:
        return ExecutionResult(record.get("result"), record)
    raise execution_failed(record, response=response)


def execution_failed(
    record: dict[str, Any], *, response: httpx.Response | None = None
) -> ExecutionFailedError:
    execution_id = str(record.get("execution_id", ""))
    status = str(record.get("status"))
    error = record.get("error") if isinstance(record.get("error"), dict) else None
    kind = record.get("kind") or "workflow"
    message = f"execution '{execution_id}' of {kind} '{record.get('workflow_name')}' ended {status}"
    step_id = error.get("step_id") if error else None
    if error:
        if step_id:
            message += f" at step '{step_id}' ({error.get('service')}.{error.get('action')})"
        if error.get("attempts"):
            message += f" after {error['attempts']} attempt(s)"
        message += f": {error.get('error_type')}: {error.get('message')}"
    message += f"; its record: get_workflow_execution_status('{execution_id}')"
    return ExecutionFailedError(
        execution_id,
        message,
        status=status,
        step_id=step_id,
        cause=error,
        execution=record,
        response=response,
    )
