"""The gateway's endpoints, as `Call`s: the one place that knows URLs, methods and bodies.

Each function returns the description of one request; the senders in `_http.py`
send it, and both clients use the same functions. Paths are relative to the
client's base URL (`http://localhost:8005/api`). Options left as None are not
sent, so the gateway applies its own defaults and reports what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shared.utils.src.exceptions import ValidationError
from shared.utils.src.retry import Operation

MAX_SERVER_WAIT = 3600.0
MAX_LONG_POLL = 20.0
"""Longest wait the client asks of GET /executions/{id}?wait= (the gateway allows 60)."""
"""The longest `?timeout=` the gateway accepts on the execute endpoints."""

Json = Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """One request to the gateway, before headers and retries.

    Attributes:
        operation: Which row of the retry table applies.
        method: The HTTP method.
        path: The path under the base URL, ids already quoted.
        params: Query parameters.
        json: The JSON body, if any.
        about: `(resource_type, resource_id)` a 404 refers to when the answer does not say.
        server_wait: Seconds the gateway may hold the request open; added to the HTTP timeout.
        report_when_unavailable: A 503 that carries a JSON report is returned, not raised
            (the health endpoint answers 503 with its report when unhealthy).
    """

    operation: Operation
    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Json | None = None
    about: tuple[str, str] | None = None
    server_wait: float = 0.0
    report_when_unavailable: bool = False


def _segment(name: str, value: Any) -> str:
    """A path segment for an id, quoted so that no id can change the path."""
    text = "" if value is None else str(value)
    if not text:
        raise ValidationError(
            [
                {
                    "loc": ["path", name],
                    "msg": f"{name} must be a non-empty string",
                    "type": "missing",
                }
            ]
        )
    return quote(text, safe="")


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _page(status: Any, page: int | None, per_page: int | None) -> dict[str, Any]:
    return _present(status=None if status is None else str(status), page=page, per_page=per_page)


def _execute_body(input_data: Json | None, context: Json | None) -> dict[str, Any]:
    return {"input_data": dict(input_data or {}), "context": dict(context or {})}


def _server_wait(seconds: float) -> float:
    """The gateway wants 0 < timeout <= 3600; millisecond precision is plenty."""
    return round(min(max(seconds, 0.001), MAX_SERVER_WAIT), 3)


def _execution_call(
    path: str,
    about: tuple[str, str],
    input_data: Json | None,
    context: Json | None,
    *,
    wait: float | None,
) -> Call:
    """POST an execution: with `wait`, the gateway holds it up to that many seconds."""
    if wait is None:
        return Call(
            Operation.CREATE, "POST", path, json=_execute_body(input_data, context), about=about
        )
    server_wait = _server_wait(wait)
    return Call(
        Operation.CREATE,
        "POST",
        path,
        params={"timeout": server_wait},
        json=_execute_body(input_data, context),
        about=about,
        server_wait=server_wait,
    )


# Services


def register_service(
    *,
    name: str,
    description: str | None,
    endpoint: str | None,
    actions: Sequence[Json] | None,
    metadata: Json | None,
    status: str | None,
    health_path: str | None,
) -> Call:
    body = _present(
        name=name,
        description=description,
        endpoint=endpoint,
        actions=None if actions is None else list(actions),
        metadata=metadata,
        status=None if status is None else str(status),
        health_path=health_path,
    )
    return Call(Operation.CREATE, "POST", "/services", json=body)


def get_services(*, status: str | None, page: int | None, per_page: int | None) -> Call:
    return Call(Operation.READ, "GET", "/services", params=_page(status, page, per_page))


def get_service(service_id: str) -> Call:
    path = f"/services/{_segment('service_id', service_id)}"
    return Call(Operation.READ, "GET", path, about=("service", str(service_id)))


def update_service(service_id: str, fields: Json) -> Call:
    path = f"/services/{_segment('service_id', service_id)}"
    return Call(
        Operation.UPDATE, "PATCH", path, json=_present(**fields), about=("service", str(service_id))
    )


def deregister_service(service_id: str, *, force: bool) -> Call:
    path = f"/services/{_segment('service_id', service_id)}"
    params = {"force": "true"} if force else {}
    return Call(Operation.DELETE, "DELETE", path, params=params, about=("service", str(service_id)))


def execute_service_action(
    service_id: str, action: str, input_data: Json | None, context: Json | None, *, wait: float
) -> Call:
    path = (
        f"/services/{_segment('service_id', service_id)}"
        f"/actions/{_segment('action', action)}/execute"
    )
    return _execution_call(path, ("service", str(service_id)), input_data, context, wait=wait)


def start_service_action(
    service_id: str, action: str, input_data: Json | None, context: Json | None
) -> Call:
    path = (
        f"/services/{_segment('service_id', service_id)}"
        f"/actions/{_segment('action', action)}/executions"
    )
    return _execution_call(path, ("service", str(service_id)), input_data, context, wait=None)


def get_service_health(service_id: str) -> Call:
    path = f"/services/{_segment('service_id', service_id)}/health"
    return Call(Operation.READ, "GET", path, about=("service", str(service_id)))


# Workflows


def create_workflow(
    *,
    name: str,
    description: str | None,
    steps: Sequence[Json] | None,
    metadata: Json | None,
    status: str | None,
) -> Call:
    body = _present(
        name=name,
        description=description,
        steps=None if steps is None else list(steps),
        metadata=metadata,
        status=None if status is None else str(status),
    )
    return Call(Operation.CREATE, "POST", "/workflows", json=body)


def get_workflows(*, status: str | None, page: int | None, per_page: int | None) -> Call:
    return Call(Operation.READ, "GET", "/workflows", params=_page(status, page, per_page))


def get_workflow(workflow_id: str, *, version: int | None) -> Call:
    path = f"/workflows/{_segment('workflow_id', workflow_id)}"
    return Call(
        Operation.READ,
        "GET",
        path,
        params=_present(version=version),
        about=("workflow", str(workflow_id)),
    )


def update_workflow(workflow_id: str, fields: Json) -> Call:
    path = f"/workflows/{_segment('workflow_id', workflow_id)}"
    return Call(
        Operation.UPDATE,
        "PATCH",
        path,
        json=_present(**fields),
        about=("workflow", str(workflow_id)),
    )


def delete_workflow(workflow_id: str) -> Call:
    path = f"/workflows/{_segment('workflow_id', workflow_id)}"
    return Call(Operation.DELETE, "DELETE", path, about=("workflow", str(workflow_id)))


def execute_workflow(
    workflow_id: str, input_data: Json | None, context: Json | None, *, wait: float
) -> Call:
    path = f"/workflows/{_segment('workflow_id', workflow_id)}/execute"
    return _execution_call(path, ("workflow", str(workflow_id)), input_data, context, wait=wait)


def start_workflow_execution(
    workflow_id: str, input_data: Json | None, context: Json | None
) -> Call:
    path = f"/workflows/{_segment('workflow_id', workflow_id)}/executions"
    return _execution_call(path, ("workflow", str(workflow_id)), input_data, context, wait=None)


def get_workflow_executions(
    workflow_id: str, *, status: str | None, page: int | None, per_page: int | None
) -> Call:
    path = f"/workflows/{_segment('workflow_id', workflow_id)}/executions"
    return Call(
        Operation.READ,
        "GET",
        path,
        params=_page(status, page, per_page),
        about=("workflow", str(workflow_id)),
    )


# Executions and health


def get_execution(execution_id: str, *, wait: float | None = None) -> Call:
    """One execution's record; with `wait`, the gateway holds the request (long poll)
    until the execution closes or `wait` seconds pass."""
    path = f"/executions/{_segment('execution_id', execution_id)}"
    if wait is None:
        return Call(Operation.READ, "GET", path, about=("execution", str(execution_id)))
    server_wait = round(min(max(wait, 0.001), MAX_LONG_POLL), 3)
    return Call(
        Operation.READ,
        "GET",
        path,
        params={"wait": server_wait},
        about=("execution", str(execution_id)),
        server_wait=server_wait,
    )


def get_integration_health() -> Call:
    return Call(Operation.READ, "GET", "/health", report_when_unavailable=True)
